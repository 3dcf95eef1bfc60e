"""A Measurement as the web API's JSON: angles (degrees, null + reason when missing), frame, notes, overlay PNG.

The overlay is `spine_d2.measure.draw_overlay` drawn on the decoded pixels, shrunk to a long side of
at most `max_side` and encoded afresh as PNG by OpenCV, which writes no metadata: nothing of the
upload's EXIF (GPS, time, device) can reach the answer. `row` is the `measurement_row` of
tools/predict.py's predictions.csv, so the page's CSV has the same columns. `geometry` is what the
angles were computed from, in the image frame of the decoded photo (px): the endplates, femoral
heads, the radiograph→image homography when the angles are in the radiograph frame, the anterior
side and what was left out; the page moves its endplates and sends it back to `POST /api/angles`.
`labelme` is the photo's Labelme pre-annotation (`spine_d2.measure.preannotation`).
"""
from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from spine_d2.angles import ANGLE_NAMES
from spine_d2.evaluation.agreement import json_safe
from spine_d2.measure import Measurement, draw_overlay, measurement_row
from spine_d2.measure.preannotation import labelme_document

FRAME_TEXT = {
    "radiograph": "radiograph frame: the photo's rotation/perspective was corrected before measuring",
    "image": "image frame: no rotation/perspective correction was found or trusted, so SS and PT are "
             "relative to the picture's horizontal (right for a screenshot; a tilted photo tilts them by as much)",
}


def overlay_png(image_bgr: np.ndarray, m: Measurement, max_side: int = 1600) -> bytes:
    """The overlay as PNG bytes (pixels only: no EXIF, no text chunks), long side ≤ `max_side`."""
    out = draw_overlay(image_bgr, m)
    scale = max_side / max(out.shape[:2])
    if scale < 1:
        out = cv2.resize(out, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", out, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise RuntimeError("PNG encoding of the overlay failed")
    return buf.tobytes()


def data_url(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def geometry_json(m: Measurement) -> dict[str, Any]:
    """What the angles were computed from (image frame, px): see the module docstring."""
    return {
        "frame": m.frame,
        "homography": m.correction.H.tolist() if m.frame == "radiograph" else None,  # radiograph → image
        "anterior_sign": int(m.sign),
        "endplates": {lv: {side: np.asarray(seg, float).tolist() for side, seg in sides.items()}
                      for lv, sides in m.endplates.items()},
        "femoral_heads": [[float(v) for v in h] for h in m.femoral_heads],
        "excluded": dict(m.excluded),
        "heads_reason": m.heads_reason,
    }


def measurement_json(name: str, m: Measurement, image_shape, png: bytes, photo_shape=None) -> dict[str, Any]:
    """The API's answer for one photo (see the module docstring); `image_shape` (H, W): what was
    measured, the frame of the geometry and the overlay; `photo_shape`: the photo's, where that was
    a scaled copy of it (the Labelme document is in the photo's pixels)."""
    angles = {}
    for key in ANGLE_NAMES:
        a = m.angles[key]
        measured = a.measured and math.isfinite(a.value)
        angles[key] = {"value": float(a.value) if measured else None, "reason": "" if measured else a.reason}
    return {
        "image": name,
        "width": int(image_shape[1]),
        "height": int(image_shape[0]),
        "units": "degrees",
        "angles": angles,
        "frame": m.frame,
        "frame_text": FRAME_TEXT.get(m.frame, m.frame),
        "frame_detail": m.correction.describe() if m.correction is not None else "frame: image (no correction)",
        "method": m.method,
        "flags": list(m.flags),
        "notes": m.notes,
        "row": json_safe(measurement_row(Path(name).stem, m)),  # keyed as predictions.csv
        "overlay_png": data_url(png),
        "geometry": geometry_json(m),
        "labelme": labelme_document(m, Path(name).name or "photo.jpg", photo_shape=photo_shape),
    }
