"""A reader's corrections on the page: moved endplates (image frame, px) → the angles again (degrees), a Labelme JSON.

`POST /api/angles` takes the `geometry` that `POST /api/measure` returned, with endplate ends
moved, and recomputes the angles with `spine_d2.measure.frame_angles.endplate_angles` — the
measurement's own last step, so the angle definitions stay in `spine_d2.angles` and an unmoved
geometry gives the measurement's angles exactly. Points are in the image frame the overlay
shows; when the angles were measured in the radiograph frame they are mapped through the same
homography first. `POST /api/labelme` adds the corrected endplates to the photo's Labelme
pre-annotation as corner points. Bad input raises `CorrectionError` with a message in plain words.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from spine_d2.angles import ANGLE_NAMES, REQUIRED_ENDPLATES
from spine_d2.evaluation.agreement import json_safe
from spine_d2.levels import is_level
from spine_d2.measure.frame_angles import HEADS_NOT_IN_VIEW, endplate_angles
from spine_d2.measure.preannotation import with_endplates

SIDES = ("superior", "inferior")


class CorrectionError(ValueError):
    """A geometry the server cannot use; the message says what is wrong."""


def _point(p: Any, where: str) -> list[float]:
    try:
        x, y = (float(v) for v in p)
    except (TypeError, ValueError):
        raise CorrectionError(f"{where}: a point is [x, y], got {p!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise CorrectionError(f"{where}: a point must be finite, got {p!r}")
    return [x, y]


def parse_endplates(endplates: Any) -> dict[str, dict[str, list[list[float]]]]:
    """level → side → [[x, y] anterior, [x, y] posterior], checked; CorrectionError otherwise."""
    if not isinstance(endplates, Mapping):
        raise CorrectionError("endplates: expected {level: {superior|inferior: [[x, y], [x, y]]}}")
    out: dict[str, dict[str, list[list[float]]]] = {}
    for level, sides in endplates.items():
        if not is_level(str(level)) or not isinstance(sides, Mapping):
            raise CorrectionError(f"endplates: {level!r} is not a level (T1 … L5, S1) with its sides")
        for side, seg in sides.items():
            where = f"endplates {level} {side}"
            if side not in SIDES or not isinstance(seg, (list, tuple)) or len(seg) != 2:
                raise CorrectionError(f"{where}: expected superior|inferior: [[x, y] anterior, [x, y] posterior]")
            a, p = _point(seg[0], where), _point(seg[1], where)
            if a == p:
                raise CorrectionError(f"{where}: both ends at the same point: an endplate needs two")
            out.setdefault(str(level), {})[side] = [a, p]
    return out


def _homography(h: Any) -> np.ndarray | None:
    if h is None:
        return None
    try:
        m = np.asarray(h, dtype=float)
    except (TypeError, ValueError):
        m = np.zeros(0)
    if m.shape != (3, 3) or not np.all(np.isfinite(m)) or abs(np.linalg.det(m)) < 1e-12:
        raise CorrectionError("homography: expected the 3×3 invertible matrix /api/measure returned, or null")
    return m


def _heads(heads: Any) -> list[list[float]]:
    try:
        out = [[float(v) for v in h] for h in heads or []]
    except (TypeError, ValueError):
        out = [[]]
    if any(len(h) != 3 or not all(map(math.isfinite, h)) for h in out):
        raise CorrectionError("femoral_heads: expected [[cx, cy, r], …]")
    return out


def recompute(body: Mapping[str, Any]) -> dict[str, Any]:
    """The answer of POST /api/angles (see the module docstring): the six angles (null + reason
    when missing, `corrected` when an endplate it uses was moved), the frame, and the CSV row."""
    endplates = parse_endplates(body.get("endplates"))
    sign = body.get("anterior_sign", 1)
    if sign not in (1, -1):
        raise CorrectionError(f"anterior_sign: +1 or -1, got {sign!r}")
    corrected = [str(k) for k in body.get("corrected") or []]
    unknown = [k for k in corrected if k.rpartition(" ")[0] not in endplates
               or k.rpartition(" ")[2] not in endplates[k.rpartition(" ")[0]]]
    if unknown:
        raise CorrectionError(f"corrected: {', '.join(unknown)} not among the endplates sent ('L1 superior', …)")
    excluded = {str(k): str(v) for k, v in (body.get("excluded") or {}).items()}
    angles, frame = endplate_angles(endplates, _heads(body.get("femoral_heads")), _homography(body.get("homography")),
                                    int(sign), excluded, str(body.get("heads_reason") or HEADS_NOT_IN_VIEW))
    moved = set(corrected)
    out = {}
    for name in ANGLE_NAMES:
        a = angles[name]
        uses = {f"{lv} {side}" for lv, side in REQUIRED_ENDPLATES[name]}
        out[name] = {"value": a.value if a.measured else None, "reason": a.reason,
                     "corrected": bool(uses & moved)}
    note = correction_note(endplates, corrected)
    row = {"image": str(body.get("image", "")), **{n: out[n]["value"] for n in ANGLE_NAMES}, "frame": frame,
           "notes": "; ".join(p for p in (str(body.get("notes") or ""), note) if p)}
    return json_safe({"angles": out, "frame": frame, "corrected": corrected, "note": note, "row": row})


def correction_note(endplates: Mapping, corrected: list[str]) -> str:
    """One line naming the corrected endplates and where their ends now are (image px)."""
    parts = []
    for key in corrected:
        level, _, side = key.rpartition(" ")
        (xa, ya), (xp, yp) = endplates[level][side]
        parts.append(f"{key} ({xa:.1f}, {ya:.1f})–({xp:.1f}, {yp:.1f})")
    return f"endplates corrected by a reader (anterior–posterior, image px): {', '.join(parts)}" if parts else ""


def labelme_with_corrections(body: Mapping[str, Any]) -> dict[str, Any]:
    """The answer of POST /api/labelme: `labelme` (the document /api/measure returned) with
    `endplates` (the corrected ones) added as corner points flagged `corrected`."""
    doc = body.get("labelme")
    if not isinstance(doc, Mapping) or not isinstance(doc.get("shapes"), list):
        raise CorrectionError("labelme: expected the Labelme document /api/measure returned")
    return with_endplates(doc, parse_endplates(body.get("endplates") or {}))
