"""Endplate lines of a vertebral body from its outline: by its rectangle or by its border; image frame, pixels.

Both take the closed outline of one body ((N, 2) points, x right, y down) and `cranial`, a unit
vector pointing up the spine at that body (from the neighbouring centres), and return
``{"superior": (2, 2), "inferior": (2, 2)}`` — each the two ends of the fitted line, in no
particular order (`order_anterior_posterior` orders them once the anterior side is known).

- ``rectangle`` (the reference study's): minimum-area rectangle of the outline; each outline point
  goes to the nearest rectangle side; a least-squares line (offset from the side as a function of
  the position along it) through the points of the upper and of the lower side.
- ``border``: the outline's own normals pick the border facing cranially (caudally): the longest run
  of points whose outward normal lies within 55° of `cranial`. Its rounded corners are cut off
  (8 % at each end), a total-least-squares line is fitted and refitted without outliers
  (residual > 2.5 robust σ); a border shorter than 30 % of the body's width is no endplate. Neither the rectangle nor the image axes bias the line, so wedged
  bodies, rounded corners and the steep sacral plate are fitted as they are.
- ``rectangle+border`` (the default): ``rectangle`` for the vertebral bodies, ``border`` for the
  sacral plate (S1). The rectangle's prior suits a box-like body when its outline is ragged (a
  model's mask at a small scale); the sacrum is no box (benchmarks/README.md, side by side).

The names before this release, ``paper``, ``ours`` and ``mixed`` (and `paper_endplates`,
`ours_endplates`), are accepted as aliases for one more release (`OLD_METHOD_NAMES`).
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

SIDES = ("superior", "inferior")


class EndplateError(ValueError):
    """The outline gives no usable endplate; the message is the reason (it ends up in notes)."""


# ---------------------------------------------------------------------------------------------
# line helpers


def tls_line(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Total-least-squares line: (a point on it, unit direction). (cv2.fitLine works in float32,
    ~5e-6° off, and its Huber weights are not the MAD-trimmed refit `_robust_side` does.)"""
    c = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - c, full_matrices=False)
    return c, vt[0]


def _segment_on_line(c: np.ndarray, d: np.ndarray, points: np.ndarray) -> np.ndarray:
    t = (points - c) @ d
    return np.stack([c + t.min() * d, c + t.max() * d])


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    n = np.linalg.norm(v)
    if not np.isfinite(n) or n == 0:
        raise EndplateError("no direction along the spine")
    return v / n


def _check_outline(contour: np.ndarray) -> np.ndarray:
    pts = np.asarray(contour, dtype=float).reshape(-1, 2)
    if len(pts) < 8:
        raise EndplateError(f"outline too short ({len(pts)} points)")
    if cv2.contourArea(pts.astype(np.float32)) < 4.0:
        raise EndplateError("outline encloses no area")
    return pts


# ---------------------------------------------------------------------------------------------
# rectangle: the study's method


def rectangle_endplates(contour: np.ndarray, cranial, which=SIDES) -> dict[str, np.ndarray]:
    """Min-area rectangle → nearest-side points → least-squares line per endplate side."""
    pts = _check_outline(contour)
    u = _unit(cranial)
    box = cv2.boxPoints(cv2.minAreaRect(pts.astype(np.float32))).astype(float)
    centre = box.mean(axis=0)
    sides = [(box[i], box[(i + 1) % 4]) for i in range(4)]
    normals = [_unit((a + b) / 2 - centre) for a, b in sides]
    # Distance of each outline point to each side's segment; nearest side wins.
    dist = np.stack([_dist_to_segment(pts, a, b) for a, b in sides], axis=1)
    nearest = dist.argmin(axis=1)
    out = {}
    for side, direction in (("superior", u), ("inferior", -u)):
        if side not in which:
            continue
        k = int(np.argmax([n @ direction for n in normals]))
        sel = pts[nearest == k]
        if len(sel) < 3:
            raise EndplateError(f"{side} side of the rectangle has {len(sel)} outline points")
        a, b = sides[k]
        d = _unit(b - a)
        n = np.array([-d[1], d[0]])
        t, s = (sel - a) @ d, (sel - a) @ n
        if np.ptp(t) < 2:
            raise EndplateError(f"{side} side too short to fit a line")
        slope, icpt = np.polyfit(t, s, 1)
        ends = np.array([t.min(), t.max()])
        out[side] = a + ends[:, None] * d + (slope * ends + icpt)[:, None] * n
    return out


def _dist_to_segment(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ab = b - a
    t = np.clip(((p - a) @ ab) / max(ab @ ab, 1e-12), 0.0, 1.0)
    return np.linalg.norm(p - (a + t[:, None] * ab), axis=1)


# ---------------------------------------------------------------------------------------------
# border


def outward_normals(pts: np.ndarray, window: int = 3) -> np.ndarray:
    """Unit outward normals of a closed outline (central differences over ±`window` points)."""
    tangent = np.roll(pts, -window, axis=0) - np.roll(pts, window, axis=0)
    norm = np.linalg.norm(tangent, axis=1, keepdims=True)
    tangent = tangent / np.where(norm == 0, 1, norm)
    normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    if np.mean(np.sum((pts - pts.mean(axis=0)) * normal, axis=1)) < 0:
        normal = -normal
    return normal


def _longest_run(flags: np.ndarray) -> np.ndarray:
    """Indices of the longest cyclic run of True in `flags` (empty when none)."""
    n = len(flags)
    if not flags.any():
        return np.zeros(0, int)
    if flags.all():
        return np.arange(n)
    start = int(np.argmin(flags))  # a False: runs do not wrap past it
    best, cur = [], []
    for k in range(1, n + 1):
        i = (start + k) % n
        if flags[i]:
            cur.append(i)
            if len(cur) > len(best):
                best = list(cur)
        else:
            cur = []
    return np.asarray(best, int)


def _robust_side(pts: np.ndarray, normals: np.ndarray, direction: np.ndarray, side: str,
                 cone_deg: float, corner_trim: float, min_extent: float = 0.3,
                 resid_floor: float = 0.75) -> np.ndarray:
    run = _longest_run(normals @ direction > np.cos(np.radians(cone_deg)))
    if len(run) < 5:
        raise EndplateError(f"no {side} border found in the outline")
    border = pts[run]
    c, d = tls_line(border)
    t = (border - c) @ d
    lo, hi = t.min(), t.max()
    across = np.array([-direction[1], direction[0]])
    width = np.ptp(pts @ across)
    if hi - lo < min_extent * width:
        raise EndplateError(f"{side} border too short ({hi - lo:.0f} px of a {width:.0f} px wide body)")
    core = border[(t >= lo + corner_trim * (hi - lo)) & (t <= hi - corner_trim * (hi - lo))]
    if len(core) < 4:
        core = border
    c, d = tls_line(core)
    for _ in range(2):
        r = (core - c) @ np.array([-d[1], d[0]])
        sigma = 1.4826 * np.median(np.abs(r - np.median(r)))
        keep = np.abs(r - np.median(r)) <= max(resid_floor, 2.5 * sigma)
        if keep.sum() < 4 or keep.all():
            break
        core = core[keep]
        c, d = tls_line(core)
    return _segment_on_line(c, d, _reach(pts, run, c, d, resid_floor))


def _reach(pts: np.ndarray, run: np.ndarray, c: np.ndarray, d: np.ndarray, tol: float) -> np.ndarray:
    """The run of outline points, extended both ways along the outline while the points stay
    within `tol` px of the line (c, d): the border's true ends, where the outline leaves the line,
    not where its normals start to turn."""
    n = len(pts)
    normal = np.array([-d[1], d[0]])
    near = np.abs((pts - c) @ normal) <= tol
    lo = int(run[0])
    hi = lo + len(run) - 1  # the run is contiguous along the closed outline (it may wrap)
    while hi - lo + 1 < n and near[(lo - 1) % n]:
        lo -= 1
    while hi - lo + 1 < n and near[(hi + 1) % n]:
        hi += 1
    return pts[np.arange(lo, hi + 1) % n]


def border_endplates(contour: np.ndarray, cranial, which=SIDES, cone_deg: float = 55.0,
                   corner_trim: float = 0.08, resid_floor: float = 0.75) -> dict[str, np.ndarray]:
    """Normal-selected borders, corners trimmed, robust total-least-squares line per endplate."""
    pts = _check_outline(contour)
    u = _unit(cranial)
    normals = outward_normals(pts)
    return {
        side: _robust_side(pts, normals, direction, side, cone_deg, corner_trim, resid_floor=resid_floor)
        for side, direction in (("superior", u), ("inferior", -u)) if side in which
    }


METHODS: dict[str, Callable[..., dict[str, np.ndarray]]] = {"rectangle": rectangle_endplates,
                                                            "border": border_endplates}
BY_LEVEL = {"rectangle+border": ("rectangle", {"S1": "border"})}  # method → (default, level → method)
OLD_METHOD_NAMES = {"paper": "rectangle", "ours": "border", "mixed": "rectangle+border"}  # until the next release
#: Every name `fit_endplates` takes: the methods, then the old names.
METHOD_NAMES = (*BY_LEVEL, *METHODS, *OLD_METHOD_NAMES)
paper_endplates, ours_endplates = rectangle_endplates, border_endplates  # old names, until the next release


def method_name(method: str) -> str:
    """The current name of an endplate method given by its current or its old name; ValueError otherwise."""
    name = str(OLD_METHOD_NAMES.get(method, method))  # a plain str, also for a config's enum member
    if name not in METHODS and name not in BY_LEVEL:
        raise ValueError(f"unknown endplate method {method!r}; choose one of {', '.join(METHOD_NAMES)}")
    return name


def fit_endplates(contour: np.ndarray, cranial, method: str = "border", level: str | None = None,
                  which=SIDES) -> dict[str, np.ndarray]:
    """The endplate lines `which` (superior, inferior) by `method` ('rectangle' | 'border' |
    'rectangle+border', which picks by `level`, e.g. 'L3'; or an old name); raises EndplateError."""
    name = method_name(method)
    if name in BY_LEVEL:
        default, by_level = BY_LEVEL[name]
        name = by_level.get(level, default)
    return METHODS[name](contour, cranial, which)


def plate_length(segment) -> float:
    """An endplate's length: the distance between its two ends (px, in the segment's frame)."""
    return float(np.linalg.norm(np.subtract(*np.asarray(segment, dtype=float))))


def order_anterior_posterior(segment: np.ndarray, anterior) -> np.ndarray:
    """The segment's two ends as [anterior, posterior], `anterior` a vector pointing anterior."""
    seg = np.asarray(segment, dtype=float)
    return seg if (seg[0] - seg[1]) @ np.asarray(anterior, dtype=float) >= 0 else seg[::-1].copy()
