"""Drawing a Measurement over its photo: masks, level names, endplate lines, femoral heads, angles; image frame.

`draw_overlay(image, measurement)` returns a new BGR uint8 image of the same size (the input is not
changed): each kept instance filled translucent in its region's colour with its outline, its
level name at its centre ("L5?" where the name is uncertain: `Measurement.uncertain`, the angles
taking it left out), superior endplates in yellow and inferior in cyan (a dot on the
anterior end), femoral heads and the hip-axis → S1 line, and a legend box with the six angles
(NaN as "n/a"; OpenCV's fonts have no "°"), the frame they are in, whether they were read on the
photo's negative (a film shown inverted: `spine_d2.measure.negative`), and any flags.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from spine_d2.angles import ANGLE_NAMES, endplate_midpoint
from spine_d2.measure.negative import NEGATIVE_NOTE

COLOURS = {  # BGR
    "thoracic": (230, 160, 60),
    "lumbar": (80, 200, 80),
    "sacrum": (60, 120, 240),
    "femoral_head": (200, 80, 200),
    "other": (160, 160, 160),
}
SUPERIOR, INFERIOR, TEXT = (0, 230, 255), (255, 230, 0), (255, 255, 255)


def _bgr(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img.copy()


def _pt(p) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def draw_overlay(image: np.ndarray, measurement, alpha: float = 0.35) -> np.ndarray:
    """The photo with the measurement drawn on it (see the module docstring)."""
    out = _bgr(image)
    h, w = out.shape[:2]
    unit = max(1.0, max(h, w) / 1000.0)
    thick = max(1, int(round(2 * unit)))
    font = 0.5 * unit

    fill = out.copy()
    outlines = []
    for inst in measurement.instances:
        colour = COLOURS.get(inst.region, COLOURS["other"])
        if inst.circle is not None and inst.mask is None and inst.polygon is None:
            cx, cy, r = inst.circle
            cv2.circle(fill, _pt((cx, cy)), int(round(r)), colour, -1)
            continue
        mask = inst.bool_mask((h, w))
        if mask.shape != (h, w):
            continue
        fill[mask] = colour
        contour = inst.contour()
        if len(contour):
            outlines.append((np.round(contour).astype(np.int32).reshape(-1, 1, 2), colour))
    out = cv2.addWeighted(fill, alpha, out, 1 - alpha, 0)
    for contour, colour in outlines:
        cv2.polylines(out, [contour], True, colour, max(1, thick // 2))

    for level, sides in measurement.endplates.items():
        for side, seg in sides.items():
            a, p = np.asarray(seg, dtype=float)
            colour = SUPERIOR if side == "superior" else INFERIOR
            cv2.line(out, _pt(a), _pt(p), colour, thick, cv2.LINE_AA)
            cv2.circle(out, _pt(a), thick + 1, colour, -1)
    for level, i in measurement.levels.items():
        c = measurement.instances[i].centre()
        if np.all(np.isfinite(c)):
            _text(out, level + ("?" if level in measurement.uncertain else ""), _pt(c), font, thick)

    for cx, cy, r in measurement.femoral_heads:
        cv2.circle(out, _pt((cx, cy)), int(round(r)), COLOURS["femoral_head"], thick, cv2.LINE_AA)
    s1 = measurement.endplates.get("S1", {}).get("superior")
    if s1 is not None and measurement.femoral_heads:
        axis = np.mean([fh[:2] for fh in measurement.femoral_heads], axis=0)
        cv2.line(out, _pt(axis), _pt(endplate_midpoint(s1)), COLOURS["femoral_head"], thick, cv2.LINE_AA)

    lines = [f"{name} {_fmt(measurement.angles[name].value)}" for name in ANGLE_NAMES]
    c = measurement.correction  # a correction taken with low confidence is marked as an uncertain level is
    lines.append(f"frame: {measurement.frame}" + ("?" if measurement.frame == "radiograph" and c is not None
                                                 and c.confidence == "low" else ""))
    if NEGATIVE_NOTE in measurement.flags:  # a film shown inverted: the outlines are its negative's
        lines.append("read on its negative")
    if measurement.flags:
        lines.append(f"{len(measurement.flags)} flag(s): see notes")
    y = int(20 * unit)
    box_w = int(170 * unit)
    cv2.rectangle(out, (0, 0), (box_w, int(y + 22 * unit * len(lines))), (0, 0, 0), -1)
    for line in lines:
        y += int(20 * unit)
        cv2.putText(out, line, (int(8 * unit), y), cv2.FONT_HERSHEY_SIMPLEX, font, TEXT,
                    max(1, thick // 2), cv2.LINE_AA)
    return out


def _fmt(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.1f} deg"


def _text(img, s, org, font, thick):
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, font, TEXT, max(1, thick // 2), cv2.LINE_AA)
