"""The long straight lines of a photo (screen, viewer and film borders); image frame, px, degrees.

Canny edges → probabilistic Hough segments → collinear segments merged into `Line`s (`find_lines`);
tangles of lines at different angles, as bones and text make, are dropped (`uncluttered`); the
outermost long line on each side is a border (`borders`); a line lying mostly over the bones the
model found is a bone's edge, not a border (`over_bones`). The frame estimate
(`spine_d2.measure.rectify`) explains these lines with a camera or a rotation, and an endplate
lying along one of them is an edge of the film, not of the bone (`along_a_line`). OpenCV does the
edges and segments; merging segments into lines is ours (OpenCV has no grouping of Hough segments).
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from spine_d2.measure.camera import Line

NOISE_FACTOR = 4.0  # the high Canny threshold stays this many times over the median gradient (noise)


def segments(gray: np.ndarray, cfg: Any) -> np.ndarray:
    """Hough segments (N, 4: x0, y0, x1, y1, full-resolution px) of a grey photo shrunk to
    `cfg.max_side`, at least `cfg.min_line_fraction` of half its shorter side long."""
    h, w = gray.shape
    scale = min(1.0, cfg.max_side / max(h, w))
    small = cv2.resize(gray, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 0)
    med = float(np.median(small))
    # low enough for a dark viewer panel on a dark bezel, above the picture's own noise (Canny's
    # L1 Sobel magnitude; the median gradient of a photo is mostly noise)
    gx, gy = cv2.Sobel(small, cv2.CV_32F, 1, 0), cv2.Sobel(small, cv2.CV_32F, 0, 1)
    noise = NOISE_FACTOR * float(np.median(np.abs(gx) + np.abs(gy)))
    edges = cv2.Canny(small, max(5.0, 0.25 * med, 0.4 * noise), max(20.0, 0.6 * med + 10, noise))
    min_len = cfg.min_line_fraction * min(small.shape) * 0.5
    segs = cv2.HoughLinesP(edges, 1, np.pi / 720, threshold=max(20, int(min_len / 2)),
                           minLineLength=min_len, maxLineGap=max(5, int(min_len / 10)))
    if segs is None:
        return np.zeros((0, 4))
    return segs.reshape(-1, 4).astype(float) / scale


def _merged(parts: list) -> Line:
    """One line through collinear segments (x0, y0, x1, y1, length): the length-weighted principal
    direction of their ends (weights: OpenCV's fitLine takes none)."""
    pts = np.array([[p[0], p[1]] for p in parts] + [[p[2], p[3]] for p in parts])
    wts = np.array([p[4] for p in parts] * 2)
    c = (pts * wts[:, None]).sum(0) / wts.sum()
    cov = ((pts - c) * wts[:, None]).T @ (pts - c)
    d = np.linalg.eigh(cov)[1][:, -1]
    ang = (np.degrees(np.arctan2(d[1], d[0])) + 90) % 180 - 90
    along = (pts - c) @ d
    return Line(float(ang), c, float(sum(p[4] for p in parts)), float(along.max() - along.min()))


def group(segs: np.ndarray, tol_deg: float, tol_px: float) -> list[Line]:
    """Merge collinear segments into lines (angle within tol_deg, offset within tol_px)."""
    lines: list[list] = []  # [angle, normal offset, length, parts]
    for x0, y0, x1, y1 in segs:
        ang = np.degrees(np.arctan2(y1 - y0, x1 - x0))
        ang = (ang + 90) % 180 - 90
        length = float(np.hypot(x1 - x0, y1 - y0))
        t = np.radians(ang)
        n = np.array([-np.sin(t), np.cos(t)])
        off = float(n @ [(x0 + x1) / 2, (y0 + y1) / 2])
        for ln in lines:
            da = abs((ang - ln[0] + 90) % 180 - 90)
            if da < tol_deg and abs(off - ln[1]) < tol_px:
                ln[3].append((x0, y0, x1, y1, length))
                ln[2] += length
                break
        else:
            lines.append([ang, off, length, [(x0, y0, x1, y1, length)]])
    return [_merged(parts) for _, _, _, parts in lines]


def find_lines(gray: np.ndarray, cfg: Any) -> list[Line]:
    """The photo's long straight lines (see the module docstring)."""
    h, w = gray.shape
    segs = segments(gray, cfg)
    return group(segs, tol_deg=1.0, tol_px=max(3.0, 0.004 * max(h, w))) if len(segs) else []


def axis_family(line: Line, max_tilt_deg: float) -> int | None:
    """0 when `line` runs within `max_tilt_deg` of the photo's horizontal, 1 of its vertical, else
    None: the lines a screen's, viewer's or film's border could be."""
    a = abs(line.angle)
    return 0 if a <= max_tilt_deg else 1 if a >= 90 - max_tilt_deg else None


def borders(lines: list[Line], shape, cfg: Any) -> dict[str, Line]:
    """The outermost long line on each side (top, bottom, left, right) within `cfg.max_tilt_deg` of
    its axis and at least `cfg.min_line_fraction` of the image side long: longest first, ties to the
    outer one."""
    h, w = shape
    out: dict[str, Line] = {}
    horiz = [ln for ln in lines if axis_family(ln, cfg.max_tilt_deg) == 0 and ln.length >= cfg.min_line_fraction * w]
    vert = [ln for ln in lines if axis_family(ln, cfg.max_tilt_deg) == 1 and ln.length >= cfg.min_line_fraction * h]
    for name, candidates, coord, half, sign in (
        ("top", horiz, 1, h / 2, -1), ("bottom", horiz, 1, h / 2, 1),
        ("left", vert, 0, w / 2, -1), ("right", vert, 0, w / 2, 1),
    ):
        cand = [ln for ln in candidates if sign * (ln.point[coord] - half) > 0]
        if cand:
            longest = max(ln.length for ln in cand)
            strong = [ln for ln in cand if ln.length >= 0.6 * longest]
            out[name] = max(strong, key=lambda ln: sign * ln.point[coord])
    return out


def intersect(a: Line, b: Line) -> np.ndarray:
    """Where two lines meet; NaN when they are parallel."""
    p = np.cross(a.homog(), b.homog())
    return p[:2] / p[2] if abs(p[2]) > 1e-12 else np.array([np.nan, np.nan])


def uncluttered(lines: list[Line], shape, clutter: int) -> list[Line]:
    """Drop lines with `clutter` or more neighbours (midpoints within 6 % of the image diagonal)
    running at another angle (over 1.5° apart): the edges of bones, ribs and text come in such
    tangles, the borders of a screen, a viewer panel or a film do not (0: keep all)."""
    if not lines or clutter <= 0:
        return lines
    pts = np.array([ln.point for ln in lines])
    ang = np.array([ln.angle for ln in lines])
    near = np.linalg.norm(pts[:, None] - pts[None], axis=2) < 0.06 * float(np.hypot(*shape))
    turned = np.abs((ang[:, None] - ang[None] + 90) % 180 - 90) > 1.5
    count = (near & turned).sum(axis=1)
    return [ln for ln, c in zip(lines, count) if c < clutter]


def over_bones(line: Line, bones: np.ndarray, share: float, samples: int = 41) -> bool:
    """Whether at least `share` of `line`'s stretch (its `extent`, sampled at `samples` points)
    lies on `bones` (H×W bool, image frame; `bones_mask`): the edge of a vertebra or a femoral
    head, or a line just beside them (the mask's grown margin), which a camera or a rotation would
    otherwise take for a screen's border. A film's or screen's border that cuts a body runs on past
    it, mostly off the bones."""
    t = np.radians(line.angle)
    s = np.linspace(-line.extent / 2, line.extent / 2, samples)
    pts = np.round(line.point + s[:, None] * np.array([np.cos(t), np.sin(t)])).astype(int)
    h, w = bones.shape[:2]
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    on = np.zeros(samples, bool)
    on[inside] = bones[pts[inside, 1], pts[inside, 0]]
    return bool(on.mean() >= share)


# an endplate lies along a line when both its ends are this close to it (px, or this share of the
# endplate's length, the more), it runs within ALONG_DEG of it, the line covers at least ALONG_LONGER
# times the endplate's length, and the endplate's middle lies within half that of the line's centre
ALONG_PX, ALONG_SHARE, ALONG_DEG, ALONG_LONGER = 3.0, 0.1, 5.0, 2.5


def along_a_line(segment: np.ndarray, lines: list[Line]) -> Line | None:
    """The first of the photo's long straight `lines` (image frame, px) that the endplate
    `segment` (two ends, px) lies along, or None. A body cut by the film's, viewer's or screen's
    border (a partial view, a film smaller than the patient) ends in that border: its mask and its
    corners follow the cut, which no endplate does over a line several times its length."""
    seg = np.asarray(segment, float).reshape(2, 2)
    length = float(np.linalg.norm(seg[1] - seg[0]))
    if length <= 0:
        return None
    seg_deg = float(np.degrees(np.arctan2(*(seg[1] - seg[0])[::-1])))
    for ln in lines:
        if ln.extent < ALONG_LONGER * length:
            continue
        t = np.radians(ln.angle)
        along, across = np.array([np.cos(t), np.sin(t)]), np.array([-np.sin(t), np.cos(t)])
        rel = seg - ln.point
        if (np.abs(rel @ across).max() <= max(ALONG_PX, ALONG_SHARE * length)
                and abs((seg_deg - ln.angle + 90) % 180 - 90) <= ALONG_DEG
                and abs(float(rel.mean(axis=0) @ along)) <= ln.extent / 2):
            return ln
    return None
