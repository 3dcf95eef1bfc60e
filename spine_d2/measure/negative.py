"""A film shown inverted, bones dark: measured again on the photo's negative where no spine was seen.

A PACS viewer inverts a film at a click, and a MONOCHROME1 DICOM (its lowest value white) saved as a
picture without that inversion applied shows the bones dark. The model has only seen bones bright:
on such a photo it finds no spine, and every angle is left out, or a few are measured from bodies
it is unsure of, all far off (the default phantom's 128 test films inverted: 120 with no angle, 8
with 1-3 angles 8.5-143° off; benchmarks/README.md, session 73).
Where a photo's measurement has no angle, or names few bodies or bodies the model scores low
(`unseen_spine`), the model runs again on the photo's negative (`negative`: the same pixels' places,
so the same image frame), and the negative's measurement is taken where it is the better seen spine
(`better_of`), its notes saying so. A photo whose spine was seen is never run twice.
`test.negative` (on by default) switches it; `spine_d2.engine.inference.measure_image` (prediction,
the page) and the evaluation's test-time passes (`TestTimeModel`, `SpineEvaluator`) use it.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

#: what the notes of a measurement taken from the photo's negative say
NEGATIVE_NOTE = "no spine found as the photo shows it; measured on its negative (a film shown inverted, bones dark)"


def negative(image: np.ndarray) -> np.ndarray:
    """The photo's negative (unsigned integer pixels, any channels; image frame unchanged)."""
    image = np.asarray(image)
    if image.dtype.kind != "u":
        raise ValueError(f"a photo's negative is taken of unsigned integer pixels, got {image.dtype}")
    return np.iinfo(image.dtype).max - image


def measured_angles(m) -> int:
    """How many of the measurement's angles have a value."""
    return sum(bool(a.measured) for a in m.angles.values())


def negative_on(cfg: Any) -> bool:
    """Whether `test.negative` is on in a model's detectron2 config (on where the config predates
    the key; off without a config: a stand-in for a model, not one)."""
    spine = getattr(cfg, "SPINE", None)
    return bool(spine.get("NEGATIVE", True)) if spine is not None else False


#: the model's mean score of the bodies a measurement names, under which it may not have seen the
#: spine: on 144 of the phantom's films (partial views and a held-out seed's) it reads 0.70-1.0
#: (median 0.94-0.98; a few films read right score 0.66-0.75: their negative is measured, and not
#: taken), on 64 of its test films shown inverted 0.05-0.90 (median 0.39), where the few angles
#: measured came from bodies scoring 0.11-0.69 on average (benchmarks/README.md, session 73)
SEEN_SCORE = 0.75


def named_scores(m) -> list[float]:
    """The model's scores of the bodies the measurement names a level."""
    return [m.instances[k].score for k in m.levels.values()]


#: a spine is a chain: a measurement naming fewer bodies than this has not seen one (an angle read
#: from one or two bodies found in a turned photo's negative: benchmarks/README.md, session 73)
SEEN_LEVELS = 3


def unseen_spine(m) -> bool:
    """Whether the measurement may not have seen the spine: no angle measured, fewer than
    `SEEN_LEVELS` bodies named, or those it names scoring under `SEEN_SCORE` on average."""
    scores = named_scores(m)
    return measured_angles(m) == 0 or len(scores) < SEEN_LEVELS or sum(scores) / len(scores) < SEEN_SCORE


def negative_asked(cfg: Any, m) -> bool:
    """Whether the photo's negative is to be measured: `test.negative` on and `unseen_spine`."""
    return negative_on(cfg) and unseen_spine(m)


def better_of(m, on_negative):
    """(the measurement taken, whether it is the negative's): `on_negative` (with `NEGATIVE_NOTE`)
    where it names a chain (`SEEN_LEVELS` bodies or more), measures as many angles as `m` or more,
    and the bodies it names score more in all (`named_scores`: more of them, surer), else `m` as it
    was. (Not `SEEN_SCORE`: a film read right may score its bodies 0.66-0.75 on average.)"""
    scores = named_scores(on_negative)
    if (len(scores) >= SEEN_LEVELS and measured_angles(on_negative) >= measured_angles(m)
            and sum(scores) > sum(named_scores(m))):
        return replace(on_negative, flags=[NEGATIVE_NOTE, *on_negative.flags]), True
    return m, False
