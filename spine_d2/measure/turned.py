"""A photo turned a quarter or a half: the turn in which the spine stands upright, named in the notes.

A phone photo whose EXIF orientation was lost on the way, or a viewer's rotate, shows the spine
lying or upside down; the model has only seen it standing, and finds none, or reads an angle or two
from bodies it scores low (seed 1048's first 10 films each turned 90° either way and 180°: 2 of the
30 read one angle; benchmarks/results/turned-photos-seed1048.md). Where no spine is seen as the
photo shows it, nor on its negative (`spine_d2.measure.negative`),
`spine_d2.engine.inference.measure_image` measures the photo's quarter and half turns
(`QUARTER_TURNS`), and the notes name the one whose spine is seen best, its named bodies' scores
summing highest (`turned_note`: an upside-down thoracic view, with no sacrum to tell its ends apart,
may pass for a spine too, but is seen less well); every angle is left out (`lying`): the turned
photo's measurement is not taken, since its outlines, overlay and pre-annotation would lie in the
turned photo's pixels, not the photo's.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from spine_d2.angles import Angle

#: the turns measured, as `np.rot90`'s k (counter-clockwise quarter turns)
QUARTER_TURNS = (1, 3, 2)
_WORDS = {1: "90° counter-clockwise", 3: "90° clockwise", 2: "180°"}


def turned(image: np.ndarray, k: int) -> np.ndarray:
    """`image` turned by `k` quarter turns counter-clockwise (as it looks), a new contiguous array."""
    return np.ascontiguousarray(np.rot90(image, k))


def turned_note(k: int) -> str:
    """What the notes say of a photo whose spine stands upright when turned by `k` quarter turns."""
    return (f"no spine found as the photo shows it, but one with the photo turned {_WORDS[k % 4]}: turn it so "
            f"(or mend its EXIF orientation) and measure it again")


def lying(m, k: int):
    """`m` (a measurement of a photo whose spine stands upright when turned by `k` quarter turns)
    with `turned_note` first in its notes and every angle left out: what it read from the lying
    spine is not the spine's (a few angles from bodies the model scored low)."""
    why = f"the spine lies in the photo (upright when turned {_WORDS[k % 4]})"
    return replace(m, flags=[turned_note(k), *m.flags], angles={name: Angle.missing(why) for name in m.angles})
