"""Polygons in pixels (x right, y down, any frame): their area and their mask.

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
