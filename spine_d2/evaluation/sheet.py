"""The specialists' sheet (measurements.csv) against the angles its own annotations give; degrees.

A sheet and its annotations should agree within a reader's few degrees. Where a whole column does
not, the sheet usually follows another convention than ours (`spine_d2.angles`): an angle written
with the opposite sign (lordosis negative, as some viewers report it), or LL measured from L1 to
S1 where ours ends at L5 (the reference study's; L1–S1 is our LL_S1). Every model trained or
scored on such a column learns or is judged against the wrong angle, so `check_sheet` says so
before any training (`tools/measure.py`): per angle, the films paired, their median absolute
difference, the films farther apart than `FAR_DEG` (a typing slip, or a level annotated one off),
and a hint where one of those conventions fits the column far better than ours. An evaluation
does the same with the model's angles in place of the annotations' (`reference_hints`, in its
summary). Plain data in (image → angle → degrees, NaN = not measured), plain data out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from spine_d2.angles import ANGLE_NAMES
from spine_d2.data.measurements import NEGATE_ADVICE, measurements_by_image, read_measurements

#: degrees: a film whose sheet and annotations differ by more than this is listed
FAR_DEG = 10.0
#: films an angle needs, paired, before its column is judged as a whole
MIN_FILMS = 5
#: a convention fits when it brings the column's median difference under this fraction of ours
FITS_FRACTION = 0.4
#: and ours is off by at least this (degrees): below it no convention is worth naming
MIN_OFF_DEG = 4.0
#: how a hint's line begins, after the angle's name
HINT = "the sheet may follow another convention:"
#: the sheet's column → the annotations' angle it may have been measured as, and what that means
OTHER_ANGLE = {"LL": ("LL_S1", "L1–S1, which is LL_S1 here (our LL ends at L5, the reference study's)"),
               "LL_S1": ("LL", "L1–L5, which is LL here (our LL_S1 ends at S1)")}


@dataclass
class SheetCheck:
    """One angle of the sheet against the annotations (degrees)."""

    angle: str
    n: int                                        # films with both values
    median_abs: float                             # median |sheet − annotations|; NaN with no pair
    far: list[tuple[str, float]] = field(default_factory=list)  # (image, sheet − annotations), worst first
    hint: str = ""                                # a convention the column fits better than ours


def _pairs(sheet: Mapping[str, Mapping[str, float]], geometry: Mapping[str, Mapping[str, float]],
           angle: str, as_angle: str | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Images with the sheet's `angle` and the annotations' `as_angle` (default: the same), and
    the two value arrays."""
    images, s, g = [], [], []
    for image, row in sheet.items():
        a, b = row.get(angle, math.nan), geometry.get(image, {}).get(as_angle or angle, math.nan)
        if math.isfinite(a) and math.isfinite(b):
            images.append(image)
            s.append(a)
            g.append(b)
    return images, np.asarray(s, float), np.asarray(g, float)


def _hint(sheet, geometry, angle: str, s: np.ndarray, g: np.ndarray, ours: float, against: str) -> str:
    """The convention the column fits far better than ours, in words (`against`: what the sheet is
    set against, "the annotations"); "" for none."""
    if len(s) < MIN_FILMS or ours < MIN_OFF_DEG:
        return ""
    flipped = float(np.median(np.abs(s + g)))
    if flipped < FITS_FRACTION * ours:
        return (f"its values are {against}' with the sign reversed (median |sheet + {against}| "
                f"{flipped:.1f}° against |sheet − {against}| {ours:.1f}°): {NEGATE_ADVICE}")
    if angle in OTHER_ANGLE:
        other, meaning = OTHER_ANGLE[angle]
        _, s2, g2 = _pairs(sheet, geometry, angle, other)
        if len(s2) >= MIN_FILMS:
            theirs = float(np.median(np.abs(s2 - g2)))
            if theirs < FITS_FRACTION * ours:
                return (f"it agrees with {against}' {meaning} (median {theirs:.1f}° apart against "
                        f"{ours:.1f}°): rename the column {other}")
    return ""


def check_sheet(sheet: Mapping[str, Mapping[str, float]], geometry: Mapping[str, Mapping[str, float]],
                against: str = "the annotations") -> list[SheetCheck]:
    """Each angle of `ANGLE_NAMES` that the sheet (image → angle → degrees) gives for any film,
    against `geometry`, the angles measured on the same films' annotations (`tools/measure.py`'s
    rows, by image; or a model's: `against` says which, in the hints)."""
    out = []
    for angle in ANGLE_NAMES:
        if not any(math.isfinite(row.get(angle, math.nan)) for row in sheet.values()):
            continue
        images, s, g = _pairs(sheet, geometry, angle)
        diff = s - g
        ours = float(np.median(np.abs(diff))) if len(diff) else math.nan
        far = sorted(((im, float(d)) for im, d in zip(images, diff) if abs(d) > FAR_DEG), key=lambda x: -abs(x[1]))
        out.append(SheetCheck(angle, len(images), ours, far, _hint(sheet, geometry, angle, s, g, ours, against)))
    return out


def format_checks(checks: list[SheetCheck], shown: int = 5) -> list[str]:
    """One line per angle (and one per hint), for the log."""
    lines = []
    for c in checks:
        if not c.n:
            lines.append(f"{c.angle}: no film with both the sheet's value and one from the annotations")
            continue
        line = f"{c.angle}: median |sheet − annotations| {c.median_abs:.1f}° over {c.n} films"
        if c.far:
            worst = ", ".join(f"{im} ({d:+.1f}°)" for im, d in c.far[:shown])
            more = f" and {len(c.far) - shown} more" if len(c.far) > shown else ""
            line += f"; {len(c.far)} beyond {FAR_DEG:g}°: {worst}{more}"
        lines.append(line)
        if c.hint:
            lines.append(f"{c.angle}: {HINT} {c.hint}")
    return lines


def sheet_against_rows(path, rows: list[dict]) -> list[str]:
    """`format_checks` of the sheet at `path` (measurements.csv, its names resolved among the rows'
    images) against `rows` (`tools/measure.py`'s: image and the six angles)."""
    sheet = measurements_by_image(read_measurements(path, [r["image"] for r in rows]))
    return format_checks(check_sheet(sheet, {r["image"]: r for r in rows}))


def reference_hints(per_image) -> dict[str, str]:
    """Angle → `check_sheet`'s hint for an evaluation's table (`<angle>_true`, the reference, set
    against `<angle>_pred`, the model's): a reference column that fits a model's angles far better
    with its sign reversed or as L1–S1 was written in another convention than ours."""
    from spine_d2.evaluation.per_image import pairs

    images = [str(i) for i in (per_image["image"] if "image" in per_image else range(len(per_image)))]
    both = {a: pairs(per_image, a) for a in ANGLE_NAMES}
    sheet = {im: {a: float(both[a][0][k]) for a in ANGLE_NAMES} for k, im in enumerate(images)}
    model = {im: {a: float(both[a][1][k]) for a in ANGLE_NAMES} for k, im in enumerate(images)}
    return {c.angle: c.hint for c in check_sheet(sheet, model, "the automatic angles") if c.hint}
