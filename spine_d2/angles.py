"""The sagittal angle definitions (TK, LL, LL_S1, SS, PT, PI), coded once for the whole project.

Points are pixels in a frame with x right and y down (the photo's image frame or the original
radiograph's frame); angles are degrees. Cobb angles (TK, LL, LL_S1) do not depend on the frame's
rotation; SS, PT and PI are measured against that frame's horizontal/vertical, so the caller picks
the frame (see `spine_d2.frames`). Definitions and signs follow shared/PHANTOM.md:

- An endplate is two points ``[anterior, posterior]``. Its *tilt* is its angle to the horizontal,
  positive when the anterior end is cranial (higher on the film).
- TK    = tilt(T12 inferior) − tilt(T5 superior)      kyphosis positive
- LL    = tilt(L1 superior)  − tilt(L5 inferior)      lordosis positive (the reference study's)
- LL_S1 = tilt(L1 superior)  − tilt(S1 superior)      lordosis positive
- SS    = −tilt(S1 superior)                           the sacral plate faces anterior-superior
- PT    = angle from the vertical to the line S1-midpoint → hip axis, positive when the hip axis
          lies anterior of the S1 midpoint
- PI    = angle between the S1 plate's perpendicular (into the sacrum) and that same line; with
          these conventions PI = PT + SS holds exactly.

An angle that cannot be measured is NaN with a reason, never a guess.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Collection, Iterable, Mapping, Sequence

import numpy as np

ANGLE_NAMES: tuple[str, ...] = ("TK", "LL", "LL_S1", "SS", "PT", "PI")

#: Which endplates each angle needs: (level, side) pairs.
REQUIRED_ENDPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "TK": (("T5", "superior"), ("T12", "inferior")),
    "LL": (("L1", "superior"), ("L5", "inferior")),
    "LL_S1": (("L1", "superior"), ("S1", "superior")),
    "SS": (("S1", "superior"),),
    "PT": (("S1", "superior"),),
    "PI": (("S1", "superior"),),
}
NEEDS_FEMORAL_HEADS = frozenset({"PT", "PI"})

Endplates = Mapping[str, Mapping[str, Sequence[Sequence[float]]]]
"""level → {"superior"|"inferior": [[x_anterior, y_anterior], [x_posterior, y_posterior]]}."""


@dataclass(frozen=True)
class Angle:
    """A measured angle in degrees, or NaN with the reason it could not be measured."""

    value: float
    reason: str = ""

    @property
    def measured(self) -> bool:
        return not math.isnan(self.value)

    @classmethod
    def missing(cls, reason: str) -> "Angle":
        return cls(float("nan"), reason)


def _wrap180(deg: float) -> float:
    """Angle wrapped into (−180°, 180°]."""
    return -((-deg + 180.0) % 360.0 - 180.0)


def anterior_sign(endplates: Iterable[Sequence[Sequence[float]]]) -> int:
    """+1 when anterior points to +x (the patient faces right in the frame), −1 when to −x.

    Decided by the sum of (x_anterior − x_posterior) over the endplates given.
    """
    total = sum(float(ep[0][0]) - float(ep[1][0]) for ep in endplates)
    if total == 0:
        raise ValueError("cannot tell anterior from posterior: no endplate, or all are vertical")
    return 1 if total > 0 else -1


def endplate_tilt(endplate: Sequence[Sequence[float]], sign: int) -> float:
    """Angle (degrees) of an endplate to the horizontal, positive when its anterior end is higher.

    `endplate` is ``[anterior, posterior]`` in an x-right, y-down frame; `sign` from `anterior_sign`.
    """
    (xa, ya), (xp, yp) = endplate
    return math.degrees(math.atan2(-(ya - yp), sign * (xa - xp)))


def endplate_midpoint(endplate: Sequence[Sequence[float]]) -> np.ndarray:
    return np.asarray(endplate, dtype=float).mean(axis=0)


def hip_axis(femoral_heads: Sequence[Sequence[float]]) -> np.ndarray | None:
    """Midpoint of the femoral-head centres (each ``[cx, cy]`` or ``[cx, cy, r]``); None if none.

    With one head in view (both heads superimpose on a true lateral film) that head is the axis.
    """
    if len(femoral_heads) == 0:
        return None
    centres = np.asarray([fh[:2] for fh in femoral_heads], dtype=float)
    return centres.mean(axis=0)


def pelvic_tilt(s1_superior: Sequence[Sequence[float]], axis: Sequence[float], sign: int) -> float:
    """PT in degrees: vertical → line from the S1 plate's midpoint to the hip axis."""
    mid = endplate_midpoint(s1_superior)
    dx, dy = float(axis[0]) - mid[0], float(axis[1]) - mid[1]
    return math.degrees(math.atan2(sign * dx, dy))


def sagittal_angles(
    endplates: Endplates,
    femoral_heads: Sequence[Sequence[float]] = (),
    sign: int | None = None,
) -> dict[str, Angle]:
    """All of ANGLE_NAMES from endplates and femoral heads given in one x-right, y-down frame.

    `sign` (+1: anterior to +x) is inferred from the endplates when None. Returns name → Angle;
    missing inputs give NaN with a reason naming what is missing.
    """
    plates = {
        (level, side): np.asarray(pts, dtype=float)
        for level, sides in endplates.items()
        for side, pts in sides.items()
        if pts is not None
    }
    if sign is None:
        if not plates:
            return {name: Angle.missing("no endplates") for name in ANGLE_NAMES}
        sign = anterior_sign(plates.values())
    tilt = {key: endplate_tilt(pts, sign) for key, pts in plates.items()}
    axis = hip_axis(femoral_heads)

    def missing_reason(name: str) -> str:
        absent = [f"{lvl} {side}" for lvl, side in REQUIRED_ENDPLATES[name] if (lvl, side) not in tilt]
        if absent:
            return "endplate not measured: " + ", ".join(absent)
        if name in NEEDS_FEMORAL_HEADS and axis is None:
            return "femoral heads not in view"
        return ""

    values: dict[str, float] = {}
    if not missing_reason("TK"):
        values["TK"] = tilt[("T12", "inferior")] - tilt[("T5", "superior")]
    if not missing_reason("LL"):
        values["LL"] = tilt[("L1", "superior")] - tilt[("L5", "inferior")]
    if not missing_reason("LL_S1"):
        values["LL_S1"] = tilt[("L1", "superior")] - tilt[("S1", "superior")]
    if not missing_reason("SS"):
        values["SS"] = -tilt[("S1", "superior")]
    if not missing_reason("PT"):
        values["PT"] = pelvic_tilt(plates[("S1", "superior")], axis, sign)
        # The S1 plate's perpendicular into the sacrum makes the angle tilt(S1) with the downward
        # vertical, on the same signed scale as PT, so PI = PT − tilt(S1) = PT + SS.
        values["PI"] = values["PT"] - tilt[("S1", "superior")]

    return {
        name: Angle(_wrap180(values[name])) if name in values else Angle.missing(missing_reason(name))
        for name in ANGLE_NAMES
    }


def left_out(angles: Mapping[str, Angle], names: Collection[str], why: str) -> dict[str, Angle]:
    """`angles` with those measured among `names` made missing, `why` their reason."""
    return {name: Angle.missing(why) if name in names and a.measured else a for name, a in angles.items()}


def angle_values(angles: Mapping[str, Angle]) -> dict[str, float]:
    """name → degrees (NaN where not measured)."""
    return {name: angles[name].value for name in ANGLE_NAMES if name in angles}
