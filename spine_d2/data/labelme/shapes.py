"""Labelme shapes → outlines in the image frame (px): polygons, rectangles, circles, masks, corner points.

`shape_polygon` turns one outline shape into a polygon (N×2) and, for a circle, ``[cx, cy, r]``;
`corner_point` reads an endplate's corner point; `annotation` is the detectron2 annotation of an
outline. A shape that cannot be used adds its problem to the file's `FileCheck` and gives None.
"""
from __future__ import annotations

import numpy as np

from spine_d2.data.labelme.problems import FileCheck
from spine_d2.levels import KNOWN_LABELS
from spine_d2.polygons import polygon_area

MIN_POLYGON_AREA = 1.0  # px²: a smaller polygon is "zero area"
#: Points farther outside than this fraction of the longer side (at least 5 px) are "far outside";
#: nearer ones are clipped to the image.
OUTSIDE_TOLERANCE = 0.02
CIRCLE_VERTICES = 32  # polygon vertices that stand for a Labelme circle


def label_hint(label: str) -> str:
    """' (did you mean …?)' for a misspelt known label, else the list of known labels."""
    by_fold = {k.lower(): k for k in KNOWN_LABELS}
    guess = by_fold.get(label.strip().lower().replace(" ", ""))
    return f" (did you mean {guess!r}?)" if guess else f"; known: {', '.join(KNOWN_LABELS)}"


def _mask_polygon(shape: dict, pts: np.ndarray) -> np.ndarray:
    """Outer contour of a Labelme 'mask' shape (a PNG patch whose top-left corner is points[0])."""
    import cv2
    from labelme.utils import img_b64_to_arr

    mask = img_b64_to_arr(shape["mask"]).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.zeros((0, 2))
    return max(contours, key=cv2.contourArea)[:, 0, :].astype(float) + pts.min(axis=0)


def _points(shape: dict, where: str, fc: FileCheck) -> np.ndarray | None:
    try:
        pts = np.asarray(shape.get("points"), dtype=float)
        if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
            raise ValueError
    except (TypeError, ValueError):
        fc.add("format", f"{where}: points are not a list of [x, y] numbers")
        return None
    return pts


def _circle(pts: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """A Labelme circle (centre, a point on the rim) as a polygon and [cx, cy, r]."""
    (cx, cy), rim = pts[0], pts[1]
    r = float(np.hypot(*(rim - pts[0])))
    t = np.linspace(0, 2 * np.pi, CIRCLE_VERTICES, endpoint=False)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1), [float(cx), float(cy), r]


def _outline(shape: dict, kind: str, pts: np.ndarray, where: str, fc: FileCheck):
    """(polygon, circle or None) of one shape by its type, or None after adding a problem."""
    if kind in ("polygon", "oriented_rectangle") or (kind == "rectangle" and len(pts) != 2):
        return pts, None
    if kind == "rectangle":
        (x0, y0), (x1, y1) = pts
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float), None
    if kind == "circle":
        if len(pts) != 2:
            fc.add("polygon", f"{where}: a circle needs 2 points (centre, rim), got {len(pts)}")
            return None
        return _circle(pts)
    if kind == "mask" and isinstance(shape.get("mask"), str):
        try:
            return _mask_polygon(shape, pts), None
        except Exception as e:  # noqa: BLE001 - any decode failure is this file's problem
            fc.add("format", f"{where}: mask cannot be decoded ({e})")
            return None
    fc.add("shape", f"{where}: shape type {kind!r} cannot outline a structure (use polygon, rectangle or circle)")
    return None


def shape_polygon(shape: dict, i: int, fc: FileCheck) -> tuple[np.ndarray, list | None] | None:
    """Polygon (N×2) and optional circle [cx, cy, r] of a shape, or None after adding a problem."""
    label, kind = shape["label"], shape.get("shape_type") or "polygon"
    where = f"shape {i} {label!r}"
    pts = _points(shape, where, fc)
    got = None if pts is None else _outline(shape, kind, pts, where, fc)
    if got is None:
        return None
    poly, circle = got
    if len(poly) < 3:
        fc.add("polygon", f"{where}: {kind} has {len(poly)} point(s), needs at least 3")
        return None
    area = polygon_area(poly)
    if area < MIN_POLYGON_AREA:
        fc.add("polygon", f"{where}: {kind} has zero area ({area:.2g} px²)")
        return None
    return poly, circle


def check_inside(pts: np.ndarray, width: int, height: int, where: str, fc: FileCheck) -> bool:
    """True when no point lies farther outside the image than the tolerance; else adds a problem."""
    tol = max(5.0, OUTSIDE_TOLERANCE * max(width, height))
    over = np.maximum.reduce([-pts[:, 0], -pts[:, 1], pts[:, 0] - width, pts[:, 1] - height])
    if over.max() > tol:
        x, y = pts[int(over.argmax())]
        fc.add("outside", f"{where}: point ({x:.0f}, {y:.0f}) lies {over.max():.0f} px outside "
                          f"the {width}×{height} image")
        return False
    return True


def corner_point(shape: dict, i: int, label: str, width: int, height: int, have_image: bool,
                 fc: FileCheck) -> list[float] | None:
    """[x, y] of a corner point, or None after adding a problem."""
    where = f"shape {i} {label!r}"
    if (shape.get("shape_type") or "polygon") != "point":
        fc.add("shape", f"{where}: a corner is a point, not a {shape.get('shape_type')!r}")
        return None
    try:
        pts = np.asarray(shape.get("points"), dtype=float)
        if pts.shape != (1, 2) or not np.isfinite(pts).all():
            raise ValueError
    except (TypeError, ValueError):
        fc.add("format", f"{where}: a point needs one [x, y]")
        return None
    if have_image and not check_inside(pts, width, height, where, fc):
        return None
    return [float(v) for v in pts[0]]


def annotation(poly: np.ndarray, circle: list | None, label: str, category_id: int,
               flags: dict | None = None, corners: dict | None = None) -> dict:
    """The detectron2 annotation of an outline (XYXY_ABS box, one polygon), with its label, circle,
    corners and `level_uncertain` flag."""
    from detectron2.structures import BoxMode  # here: checking a folder needs no torch

    x0, y0 = poly.min(axis=0)
    x1, y1 = poly.max(axis=0)
    ann = {
        "bbox": [float(x0), float(y0), float(x1), float(y1)],
        "bbox_mode": BoxMode.XYXY_ABS,
        "segmentation": [[float(v) for v in poly.reshape(-1)]],
        "category_id": int(category_id),
        "label": label,
    }
    if circle is not None:
        ann["circle"] = circle
    if isinstance(flags, dict) and flags.get("level_uncertain") is True:
        ann["level_uncertain"] = True
    if corners:
        ann["corners"] = corners
    return ann
