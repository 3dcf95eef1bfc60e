"""The measurement's last step: endplates and femoral heads in the image frame (px) → measuring frame → degrees.

`endplate_angles` maps the endplates (`[anterior, posterior]`) and femoral heads (`[cx, cy, r]`)
of a photo through the inverse of the radiograph→image homography when there is one (the
radiograph frame), else keeps the image frame, leaves out the levels that may not feed an angle
(`excluded`: level → reason) and calls `spine_d2.angles.sagittal_angles`, the project's one angle
definition. `measure_instances` ends with it, and the page's corrections (`POST /api/angles`)
call it on the moved endplates, so an unmoved set gives exactly the measurement's angles.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from spine_d2.angles import (ANGLE_NAMES, NEEDS_FEMORAL_HEADS, REQUIRED_ENDPLATES, Angle, anterior_sign,
                             sagittal_angles)
from spine_d2.frames import map_circles, map_endplates

HEADS_NOT_IN_VIEW = "femoral heads not in view"
LEVEL_NOT_FOUND = "level not found"  # why a plate is missing where its level was not named


def measuring_frame(endplates: Mapping, heads: Sequence[Sequence[float]], H: np.ndarray | None,
                    sign: int) -> tuple[dict, list[list[float]], int, str]:
    """(endplates, heads, anterior sign, frame name) in the measuring frame: the radiograph frame
    through `H` (radiograph → image) when given, else the image frame as given. `sign` (+1:
    anterior to +x in the image) is read again from the mapped endplates when they tell it."""
    plates = {lv: {side: np.asarray(seg, float) for side, seg in sides.items() if seg is not None}
              for lv, sides in endplates.items()}
    circles = [[float(v) for v in h] for h in heads]
    if H is None:
        return plates, circles, sign, "image"
    Hinv = np.linalg.inv(np.asarray(H, float))
    plates, circles = map_endplates(Hinv, plates), map_circles(Hinv, circles)
    try:  # the mapped plates keep [anterior, posterior]: read the sign in the new frame
        sign = anterior_sign([seg for sides in plates.values() for seg in sides.values()])
    except ValueError:
        pass
    return plates, circles, sign, "radiograph"


def missing_reason(name: str, usable: Mapping, excluded: Mapping[str, str], circles: Sequence,
                   heads_reason: str = HEADS_NOT_IN_VIEW) -> str:
    """Why angle `name` has no value: the endplates it lacks (with the reason each was left out)
    or the femoral heads."""
    parts = [f"{lv} {side}: {excluded.get(f'{lv} {side}', excluded.get(lv, LEVEL_NOT_FOUND))}"
             for lv, side in REQUIRED_ENDPLATES[name] if not (lv in usable and side in usable[lv])]
    if parts:
        return "; ".join(parts)
    if name in NEEDS_FEMORAL_HEADS and not circles:
        return heads_reason or HEADS_NOT_IN_VIEW
    return "not measurable"


def endplate_angles(endplates: Mapping, heads: Sequence[Sequence[float]], H: np.ndarray | None, sign: int,
                    excluded: Mapping[str, str] | None = None,
                    heads_reason: str = HEADS_NOT_IN_VIEW) -> tuple[dict[str, Angle], str]:
    """({angle: Angle}, frame name) from image-frame endplates and heads (see the module docstring)."""
    excluded = dict(excluded or {})
    plates, circles, sign, frame = measuring_frame(endplates, heads, H, sign)
    usable = {lv: sides for lv, sides in plates.items() if lv not in excluded and sides}
    angles = sagittal_angles(usable, circles, sign=sign) if usable else {}
    out = {}
    for name in ANGLE_NAMES:
        a = angles.get(name)
        if a is not None and a.measured and math.isfinite(a.value):
            out[name] = a
        else:
            out[name] = Angle.missing(missing_reason(name, usable, excluded, circles, heads_reason))
    return out, frame
