"""The sacral plate checked against L5's: the lumbosacral angle (degrees, image frame, px).

L5–S1 is the spine's most lordotic segment, about 20° in adults (PHANTOM.md: 22° of the
segmental share) and rarely outside 0–35°: its two endplates almost face each other. An S1
superior endplate that makes this angle kyphotic by more than 10° or lordotic by more than 40°
(`LUMBOSACRAL_DEG`) is not the sacrum's top edge: on a steep or partly hidden sacrum the corner
points can land on its anterior face or on a fragment. When the S1 plate came from the corner
points and the outline's fit gives another one, the one inside the window is taken; with no
other plate, or both outside it (then L5's own plate is the likelier fault), the plate stays.

A sacral slope at or beyond ±90° (`MAX_SS_DEG`) would have the S1 plate face backwards, which no
spine does (adults' SS lies within about 0–80°): the plate was read the wrong way round, steep
sacrum and side vote against each other. A sacral slope under 0° (`measure.min_ss_deg`) has the
plate tilted the wrong way, its anterior end the higher, which no standing adult's is (the
reference study's patients: 8–72°): the plate, or S1 itself, was misread. SS and the angles that
take the plate's direction from it (LL_S1, PI) are then not measured (`backward_s1`,
`wrong_way_s1`) rather than reported 70°, or for the latter about 30°, off (benchmarks/README.md,
session 65).

S1's superior plate is about as long as L5's inferior one (the phantom's truth: 0.90–1.16 times).
One far shorter (`short_s1_plate`, under `measure.s1_plate_min_ratio`) is a fragment of the sacrum
or not S1 at all, and the levels may be counted up from it: the lumbar and pelvic angles are left
out (benchmarks/README.md, session 57). It needs no femoral heads, which also doubt a short plate
where they are in view (`femoral_heads.s1_plate_doubted`).
"""
from __future__ import annotations

import math

import numpy as np

from spine_d2.angles import Angle, left_out
from spine_d2.measure.endplates import plate_length
from spine_d2.measure.flags import judged

LUMBOSACRAL_DEG = (-10.0, 40.0)  # the L5–S1 segment's plausible lordosis (kyphosis negative)
MAX_SS_DEG = 90.0  # |SS| from here on: an S1 plate facing backwards, read the wrong way round
S1_PLATE_ANGLES = ("SS", "LL_S1", "PI")  # the angles that take the S1 plate's direction


def plate_tilt(segment, anterior, up) -> float:
    """Degrees an endplate (two ends, px, any order) rises toward the unit vector `anterior`,
    measured against the axis square to the unit vector `up` (positive: anterior end higher). In
    the spine's own axes, unlike `spine_d2.angles.endplate_tilt` (the film's horizontal), so two
    steep plates of a turned photo still subtract to their angle."""
    d = np.asarray(segment, float)[1] - np.asarray(segment, float)[0]
    a, u = np.asarray(anterior, float), np.asarray(up, float)
    if d @ a < 0:
        d = -d
    return math.degrees(math.atan2(float(d @ u), float(d @ a)))


def tilt_difference(a: float, b: float) -> float:
    """`a` − `b` (two `plate_tilt`s, degrees) wrapped into [−90°, 90°): an endplate is a line, so
    two tilts 180° apart are one direction. Plates standing near square to the spine's axis (L5 and
    S1 under a lordosis of 80–90°) lie near ±90°, and a plain difference across that edge read an L5
    whose plates lie 8° apart as wedging −171° (hardware s8014 phantom_0024; benchmarks/README.md)."""
    return (a - b + 90.0) % 180.0 - 90.0


def lumbosacral_angle(l5_inferior, s1_superior, anterior, up) -> float:
    """The L5–S1 segment's lordosis (degrees, positive lordotic) between L5's inferior and S1's
    superior endplate (two ends each, px, one frame); `anterior`, `up`: unit vectors in it."""
    return tilt_difference(plate_tilt(l5_inferior, anterior, up), plate_tilt(s1_superior, anterior, up))


def plausible_s1(raw: dict, outline_s1, anterior, up, window=LUMBOSACRAL_DEG,
                 flags: list[str] | None = None) -> bool:
    """Replace `raw["S1"]["superior"]` (corner points) by `outline_s1` (the outline's fit) when
    only the latter makes a lumbosacral angle inside `window` with `raw["L5"]["inferior"]`;
    `raw`: level → side → endplate (image frame). Returns whether it was replaced (noted in
    `flags`)."""
    l5 = raw.get("L5", {}).get("inferior")
    s1 = raw.get("S1", {}).get("superior")
    if l5 is None or s1 is None or outline_s1 is None or not window:
        return False
    lo, hi = window
    given = lumbosacral_angle(l5, s1, anterior, up)
    other = lumbosacral_angle(l5, outline_s1, anterior, up)
    if lo <= given <= hi or not lo <= other <= hi:
        return False
    raw["S1"]["superior"] = np.asarray(outline_s1, float)
    if flags is not None:
        judged(flags, "S1", f"S1 superior corners make L5-S1 {given:.0f}° (outside {lo:g}° to {hi:g}°): "
                            f"the outline's endplate used ({other:.0f}°)")
    return True


def short_s1_plate(raw: dict, min_ratio: float) -> str:
    """Why S1's superior plate is doubted for its length, or "": shorter than `min_ratio` of L5's
    inferior plate (`raw`: level → side → endplate, image frame, px; both needed). 0: never."""
    l5 = raw.get("L5", {}).get("inferior")
    s1 = raw.get("S1", {}).get("superior")
    if min_ratio <= 0 or l5 is None or s1 is None:
        return ""
    n5, n1 = plate_length(l5), plate_length(s1)
    if n5 <= 0 or n1 >= min_ratio * n5:
        return ""
    return (f"S1's plate doubted: {n1:.0f} px, {n1 / n5:.2f} of L5's inferior plate "
            f"(expected ≥ {min_ratio:g})")


def backward_s1(angles: dict[str, Angle]) -> dict[str, Angle]:
    """`angles` (degrees) with SS, LL_S1 and PI not measured when |SS| ≥ `MAX_SS_DEG`, the reason
    saying so: the S1 plate was read facing backwards. PT, which takes only its midpoint, stays."""
    ss = angles.get("SS")
    if ss is None or not ss.measured or abs(ss.value) < MAX_SS_DEG:
        return angles
    why = f"S1 plate read facing backwards (SS {ss.value:.0f}°, beyond ±{MAX_SS_DEG:g}°)"
    return left_out(angles, S1_PLATE_ANGLES, why)


def wrong_way_s1(angles: dict[str, Angle], min_ss_deg: float) -> dict[str, Angle]:
    """`angles` (degrees) with SS, LL_S1 and PI not measured when SS < `min_ss_deg`, the reason
    saying so: the S1 plate was read tilted the wrong way, its anterior end the higher. PT, which
    takes only its midpoint, stays."""
    ss = angles.get("SS")
    if ss is None or not ss.measured or ss.value >= min_ss_deg:
        return angles
    why = f"S1 plate read tilted the wrong way (SS {ss.value:.1f}°, under {min_ss_deg:g}°: no standing adult's)"
    return left_out(angles, S1_PLATE_ANGLES, why)
