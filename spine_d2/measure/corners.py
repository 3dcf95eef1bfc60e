"""Vertebral body corners: sub-pixel keypoints from heatmaps, endplates from corners, corners from
outlines; image frame, pixels.

A body has four corners in the anatomical order of `spine_d2.levels.CORNERS` (superior-anterior,
superior-posterior, inferior-anterior, inferior-posterior; the S1 segment: only its two superior
ones). Anatomical, not left/right: a horizontally flipped image keeps each corner's name, so a
flip needs no keypoint swap. A corner is (x, y, score) with score in [0, 1] (0: not found).
"""
from __future__ import annotations

import functools
from typing import Mapping

import numpy as np

from spine_d2.levels import CORNER_SIDES, CORNERS

#: [anterior, posterior] indices into CORNERS per endplate
SIDES = {side: (CORNERS.index(a), CORNERS.index(p)) for side, (a, p) in CORNER_SIDES.items()}
#: the side (cells) of the square of logits around a heatmap's peak whose least-squares quadratic
#: surface places the corner: 5 read LL, LL_S1, SS and PI 0.05-0.07° nearer than the parabolas
#: through the peak's four neighbours (0) on twelve held-out sets (1,228 films), TK and PT alike;
#: 3 and 7 read TK worse than either (benchmarks/README.md, session 68)
PEAK_FIT_CELLS = 5


def heatmap_peaks(heatmaps: np.ndarray, boxes: np.ndarray, fit: int = PEAK_FIT_CELLS) -> np.ndarray:
    """(R, K, 3) corners x, y, score from keypoint logits (R, K, M, M) over boxes (R, 4) x0 y0 x1 y1.

    The peak cell is refined to sub-pixel (detectron2's own decoding takes an integer argmax) by the
    vertex of a quadratic surface fitted by least squares to the logits of the `fit` × `fit` cells
    around it (moved inside the map at its edges); where that surface has no maximum within 1.5
    cells of the peak, or `fit` is 0, by a parabola through the peak and its two neighbours along
    each axis. The score is the spatial softmax mass of the 3×3 cells around the peak."""
    maps = np.asarray(heatmaps, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    r, k, m, _ = maps.shape
    if r == 0 or k == 0:
        return np.zeros((r, k, 3))
    flat = maps.reshape(r, k, m * m)
    peak = np.argmax(flat, axis=-1)  # (R, K), the first maximum as np.argmax
    row, col = np.divmod(peak, m)
    ii, jj = np.ogrid[:r, :k]

    def at(a: np.ndarray, dr: int, dc: int) -> np.ndarray:
        """(R, K): `a` at each peak's neighbour (dr, dc), clipped to the map."""
        return a[ii, jj, np.clip(row + dr, 0, m - 1), np.clip(col + dc, 0, m - 1)]

    centre = at(maps, 0, 0)
    dx = np.where((col > 0) & (col < m - 1), _vertex(at(maps, 0, -1), centre, at(maps, 0, 1)), 0.0)
    dy = np.where((row > 0) & (row < m - 1), _vertex(at(maps, -1, 0), centre, at(maps, 1, 0)), 0.0)
    e = np.exp(maps - centre[..., None, None])  # the spatial softmax, unnormalised
    near = np.zeros((r, k))
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            inside = (row + dr >= 0) & (row + dr < m) & (col + dc >= 0) & (col + dc < m)
            near += np.where(inside, at(e, dr, dc), 0.0)
    mass = near / e.sum(axis=(2, 3))
    if fit and m >= fit:
        vx, vy, ok = _surface_vertex(maps, row, col, fit)
        dx, dy = np.where(ok, vx - col, dx), np.where(ok, vy - row, dy)
    w = np.maximum(boxes[:, 2] - boxes[:, 0], 1e-6)[:, None]
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-6)[:, None]
    return np.stack([boxes[:, :1] + (col + 0.5 + dx) / m * w, boxes[:, 1:2] + (row + 0.5 + dy) / m * h, mass], axis=-1)


@functools.lru_cache(maxsize=None)
def _surface_fit(n: int) -> np.ndarray:
    """(6, n²): least squares of 1, x, y, x², y², xy over the cells of an n × n square (row-major)."""
    y, x = np.divmod(np.arange(n * n, dtype=float), n)
    return np.linalg.pinv(np.stack([np.ones(n * n), x, y, x * x, y * y, x * y], axis=1))


def _surface_vertex(maps: np.ndarray, row: np.ndarray, col: np.ndarray, n: int):
    """(x, y, ok), cells: the maximum of the least-squares quadratic surface through the logits of
    the n × n cells around each peak (row, col: (R, K)) of `maps` (R, K, M, M); ok where the surface
    has a maximum within 1.5 cells of the peak."""
    r, k, m, _ = maps.shape
    r0, c0 = np.clip(row - n // 2, 0, m - n), np.clip(col - n // 2, 0, m - n)
    gy, gx = np.divmod(np.arange(n * n), n)
    z = maps[np.arange(r)[:, None, None], np.arange(k)[None, :, None], r0[..., None] + gy, c0[..., None] + gx]
    _, b, c, d, e, f = np.moveaxis(z @ _surface_fit(n).T, -1, 0)  # (R, K, n²) → the six coefficients
    det = 4 * d * e - f * f  # > 0 with d, e < 0: a maximum (curved beyond rounding: a ridge has none)
    ok = (d < -1e-9) & (e < -1e-9) & (det > 1e-12)
    safe = np.where(ok, det, 1.0)
    x = c0 + np.where(ok, (f * c - 2 * e * b) / safe, 0.0)
    y = r0 + np.where(ok, (f * b - 2 * d * c) / safe, 0.0)
    return x, y, ok & (np.abs(x - col) <= 1.5) & (np.abs(y - row) <= 1.5)


def _vertex(a, b, c):
    """Offset (−0.5..0.5) of the vertex of the parabola through (−1, a), (0, b), (1, c); arrays."""
    den = a - 2.0 * b + c
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den < 0, np.clip(0.5 * (a - c) / np.where(den < 0, den, -1.0), -0.5, 0.5), 0.0)


def endplates_from_corners(corners: np.ndarray, min_score: float = 0.05) -> dict[str, tuple[np.ndarray, float]]:
    """{side: ([anterior, posterior] (2, 2), confidence)} for each endplate whose two corners both
    have a score ≥ `min_score`; confidence = the smaller of the two scores."""
    c = np.asarray(corners, dtype=float).reshape(-1, 3)
    out = {}
    for side, (a, p) in SIDES.items():
        if max(a, p) >= len(c):
            continue
        conf = float(min(c[a, 2], c[p, 2]))
        if conf >= min_score and np.linalg.norm(c[a, :2] - c[p, :2]) > 1.0:
            out[side] = (np.stack([c[a, :2], c[p, :2]]), conf)
    return out


def average_agreeing(first: np.ndarray, *others: np.ndarray, agree: float = 0.3) -> np.ndarray:
    """(K, 3) corners of one body from several predictions of it (e.g. the photo and its mirror
    image, mapped back; windows turned a few degrees): for each endplate, the mean of `first`'s two
    corners and those of every other estimate whose two corners lie within `agree` × the
    endplate's length (the longer of the two estimates) of `first`'s, scored by the highest score
    among them (runs agreeing is evidence); where none agrees, `first`'s corners as they are."""
    a_ = np.asarray(first, dtype=float).reshape(-1, 3)
    bs = [np.asarray(b, dtype=float).reshape(-1, 3) for b in others]
    out = a_.copy()
    for a, p in SIDES.values():
        if max(a, p) >= len(a_):
            continue
        near = []
        for b_ in bs:
            if max(a, p) >= len(b_):
                continue
            length = max(np.linalg.norm(a_[a, :2] - a_[p, :2]), np.linalg.norm(b_[a, :2] - b_[p, :2]), 1.0)
            if max(np.linalg.norm(a_[k, :2] - b_[k, :2]) for k in (a, p)) <= agree * length:
                near.append(b_)
        if near:
            for k in (a, p):
                out[k] = (*np.mean([a_[k, :2]] + [b_[k, :2] for b_ in near], axis=0),
                          max([a_[k, 2]] + [b_[k, 2] for b_ in near]))
    return out


def corners_from_endplates(endplates: Mapping[str, np.ndarray]) -> np.ndarray:
    """(4, 3) corners (score 1 where known, 0 where not) from {side: [anterior, posterior]}: the
    rule that turns exact endplates (the phantom's) or fitted ones (a user's outline) into corners."""
    out = np.zeros((4, 3))
    for side, (a, p) in SIDES.items():
        ep = endplates.get(side)
        if ep is None:
            continue
        ep = np.asarray(ep, dtype=float).reshape(2, 2)
        out[a] = (*ep[0], 1.0)
        out[p] = (*ep[1], 1.0)
    return out


def fuse(mask_line: np.ndarray | None, corner_line: np.ndarray | None, corner_conf: float,
         mask_weight: float = 0.5) -> np.ndarray | None:
    """One endplate [anterior, posterior] from the mask's fitted line and the corners' line: the
    direction and the midpoint averaged with weights (the corners' confidence, `mask_weight` for
    the mask); the length is the corners'."""
    if corner_line is None:
        return mask_line
    if mask_line is None:
        return corner_line
    m, c = np.asarray(mask_line, float), np.asarray(corner_line, float)
    w = corner_conf / (corner_conf + mask_weight)
    dm, dc = m[0] - m[1], c[0] - c[1]
    if dm @ dc < 0:  # the mask's line ordered the other way round
        dm = -dm
    u = w * dc / np.linalg.norm(dc) + (1 - w) * dm / np.linalg.norm(dm)
    u /= np.linalg.norm(u)
    mid = w * c.mean(axis=0) + (1 - w) * m.mean(axis=0)
    half = np.linalg.norm(dc) / 2
    return np.stack([mid + u * half, mid - u * half])
