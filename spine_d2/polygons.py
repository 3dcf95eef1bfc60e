"""Polygons in pixels (x right, y down, any frame): their area and their mask; a mask's box and the
pixels two masks share.

One rasterisation for the whole project: a pixel belongs to a polygon when its centre (integer
coordinates, OpenCV's convention) lies inside, vertices kept to 1/16 px. detectron2's
`polygons_to_bitmask` (pycocotools) puts pixel centres at +0.5 and gives other pixels (about 15 %
of a small body's): the geometry benchmark's numbers rest on this one.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

SUBPIXEL_BITS = 4  # vertex precision of the fill: 1/16 px


def polygon_area(poly) -> float:
    """Area (px²) of a simple polygon ((N, 2) points; OpenCV's contourArea on float32 vertices:
    the phantom and the geometry benchmark come out the same as with float64); 0 under three points."""
    pts = np.asarray(poly, dtype=float).reshape(-1, 2)
    if len(pts) < 3:
        return 0.0
    return float(cv2.contourArea(pts.astype(np.float32)))


def rasterize(poly, shape: Sequence[int]) -> np.ndarray:
    """Boolean (H, W) mask of a polygon, as a model's mask would be: pixel centres inside it."""
    h, w = int(shape[0]), int(shape[1])
    mask = np.zeros((h, w), np.uint8)
    pts = np.round(np.asarray(poly, dtype=float) * (1 << SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillPoly(mask, [pts.reshape(-1, 1, 2)], 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
    return mask.astype(bool)


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """x0, y0, x1, y1 (x1, y1 exclusive; pixels) of a mask's non-zero pixels; None when it has none."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def shared_pixels(a: np.ndarray, box_a, b: np.ndarray, box_b) -> int:
    """Pixels two boolean masks of one image share, counted only inside the overlap of their boxes
    (`mask_box`; None for an empty mask): cheap for small objects on big photos."""
    if box_a is None or box_b is None:
        return 0
    x0, y0 = max(box_a[0], box_b[0]), max(box_a[1], box_b[1])
    x1, y1 = min(box_a[2], box_b[2]), min(box_a[3], box_b[3])
    if x1 <= x0 or y1 <= y0:
        return 0
    return int(np.count_nonzero(a[y0:y1, x0:x1] & b[y0:y1, x0:x1]))
