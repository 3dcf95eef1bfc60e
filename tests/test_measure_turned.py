"""A photo turned a quarter or a half (spine_d2/measure/turned.py): the turned pixels and the note; the
shipped model on a film lying on its side in test_inference.py."""
from __future__ import annotations

import numpy as np

from spine_d2.angles import ANGLE_NAMES, Angle
from spine_d2.measure.pipeline import Measurement
from spine_d2.measure.turned import QUARTER_TURNS, lying, turned, turned_note


def test_a_turned_photo_is_its_pixels_turned_and_its_note_names_the_turn():
    photo = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert turned(photo, 1).tolist() == [[2, 5], [1, 4], [0, 3]]  # counter-clockwise, as it looks
    assert turned(photo, 3).tolist() == [[3, 0], [4, 1], [5, 2]] and turned(photo, 1).flags["C_CONTIGUOUS"]
    assert sorted(QUARTER_TURNS) == [1, 2, 3]
    assert "turned 90° counter-clockwise" in turned_note(1) and "turned 90° clockwise" in turned_note(3)
    assert "turned 180°" in turned_note(2) and "EXIF orientation" in turned_note(2)


def test_a_lying_spine_is_named_and_none_of_its_angles_kept():
    m = Measurement(angles={name: Angle(12.0) if name == "SS" else Angle.missing("level not found")
                            for name in ANGLE_NAMES}, flags=["frame: image"])
    out = lying(m, 3)
    assert out.flags == [turned_note(3), "frame: image"]
    assert not any(a.measured for a in out.angles.values())
    assert out.angles["SS"].reason == "the spine lies in the photo (upright when turned 90° clockwise)"
    assert m.angles["SS"].value == 12.0  # the measurement given is left as it was
