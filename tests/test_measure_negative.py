"""A film shown inverted: when the photo's negative is measured, and which measurement is taken
(spine_d2/measure/negative.py). Plain measurements here; the shipped model on inverted phantom
films in test_inference.py."""
from __future__ import annotations

import math

import numpy as np
import pytest

from spine_d2.angles import ANGLE_NAMES, Angle
from spine_d2.measure import Instance
from spine_d2.measure.negative import (NEGATIVE_NOTE, SEEN_LEVELS, SEEN_SCORE, better_of, negative,
                                       negative_asked, unseen_spine)
from spine_d2.measure.pipeline import Measurement


def _measurement(scores: list[float], angles: int) -> Measurement:
    """A measurement naming one body per score (T1, T2, …) and measuring the first `angles` angles."""
    bodies = [Instance("thoracic", polygon=[[0, 10 * i], [5, 10 * i], [5, 10 * i + 5]], score=s)
              for i, s in enumerate(scores)]
    values = {name: Angle(20.0 + k) if k < angles else Angle.missing("level not found")
              for k, name in enumerate(ANGLE_NAMES)}
    return Measurement(angles=values, instances=bodies, levels={f"T{i + 1}": i for i in range(len(scores))},
                       flags=["frame: image"])


def test_the_negative_inverts_the_pixels_in_place_of_any_unsigned_depth():
    photo = np.array([[[0, 10, 255]]], np.uint8)
    assert negative(photo).tolist() == [[[255, 245, 0]]] and negative(photo).dtype == np.uint8
    assert negative(np.array([[0, 65535]], np.uint16)).tolist() == [[65535, 0]]
    with pytest.raises(ValueError, match="unsigned integer pixels, got float32"):
        negative(np.zeros((2, 2), np.float32))


def test_a_spine_counts_as_unseen_with_no_angle_few_or_unsure_named_bodies():
    assert not unseen_spine(_measurement([0.95] * 12, angles=6))
    assert not unseen_spine(_measurement([0.9] * 8, angles=1))  # a thoracic view: TK only, bodies sure
    assert unseen_spine(_measurement([0.95] * 12, angles=0))
    assert unseen_spine(_measurement([0.3] * 8, angles=2))  # a few angles from bodies the model doubts
    assert unseen_spine(_measurement([], angles=0))
    assert unseen_spine(_measurement([0.95] * (SEEN_LEVELS - 1), angles=1))  # sure, but no chain
    assert not unseen_spine(_measurement([0.95] * SEEN_LEVELS, angles=1))
    edge = _measurement([SEEN_SCORE - 0.01, SEEN_SCORE + 0.01 - 1e-9, SEEN_SCORE - 0.01], angles=3)
    assert unseen_spine(edge)


def test_the_negative_is_asked_only_where_switched_on():
    class Cfg:
        def __init__(self, spine):
            self.SPINE = spine

    unseen = _measurement([0.2] * 5, angles=1)
    assert negative_asked(Cfg({}), unseen)  # a config from before the key: on
    assert not negative_asked(None, unseen)  # no model's config (a stand-in): off
    assert negative_asked(Cfg({"NEGATIVE": True}), unseen)
    assert not negative_asked(Cfg({"NEGATIVE": False}), unseen)
    assert not negative_asked(Cfg({"NEGATIVE": True}), _measurement([0.95] * 12, angles=6))


def test_the_negatives_measurement_is_taken_only_where_it_sees_the_spine_better():
    photo = _measurement([0.4, 0.3, 0.5], angles=1)
    seen = _measurement([0.97] * 16, angles=6)
    taken, is_negative = better_of(photo, seen)
    assert is_negative and taken.notes.startswith(NEGATIVE_NOTE)
    assert taken.values() == seen.values() and taken.flags[1:] == seen.flags
    # the photo's own measurement stays where the negative's names less, or measures fewer angles
    for worse in (_measurement([0.35] * 3, angles=1), _measurement([0.97] * 16, angles=0)):
        kept, is_negative = better_of(photo, worse)
        assert kept is photo and not is_negative
    kept, _ = better_of(_measurement([0.9] * 8, angles=1), _measurement([0.5] * 4, angles=1))
    assert math.isclose(kept.values()["TK"], 20.0) and NEGATIVE_NOTE not in kept.notes
    # nor is a negative taken that names no chain, however it compares: two sure bodies, one angle
    nothing = _measurement([0.8], angles=0)
    kept, is_negative = better_of(nothing, _measurement([0.99, 0.98], angles=1))
    assert kept is nothing and not is_negative
    # a film read right may score its bodies under SEEN_SCORE on average: still taken over nothing
    taken, is_negative = better_of(nothing, _measurement([SEEN_SCORE - 0.05] * 14, angles=3))
    assert is_negative and unseen_spine(taken)

