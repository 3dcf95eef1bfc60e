"""Divergent-beam projection of a `Scene` onto the film: line integrals of attenuation, outlines.

Frames. Patient frame: mm, x anterior, y caudal, z towards the source; the mid-sagittal plane is
z = 0. Film (radiograph frame): pixels, x right, y down. A ray runs from a point source S
(z = S_z > 0, the source-to-mid-plane distance) through the film pixel's point Q = (x', y', 0) of
the mid-sagittal plane, where (x', y') = M⁻¹·(u, v) and `M` (3×3, diagonal ± scale and a shift)
maps mid-plane mm to film pixels; the detector lies behind, parallel to it. A point P projects to
x' = S_x + (P_x − S_x)·S_z/(S_z − P_z) (likewise y'), then through M: structures in the mid-plane
keep M's scale, the near and far sides of the body are magnified differently, and endplates away
from the central ray are seen obliquely (double contours), as on a film.

Each `Beam` exposes a band of film rows from its own source: one beam for a single film, two or
three for a stitched full-spine film, one per few rows for a slot scanner (parallel along y).

Chord lengths are exact: along X = S + t·(Q − S) a quadric region is A t² + B t + C ≤ 0 and a
half-space g + t h ≤ 0; the chord is (t_hi − t_lo)·|Q − S|. A compiled kernel walks each solid's
pixel box.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
from numba import njit

from spine_d2.synthetic.solids import CHANNELS, Solid



@dataclass(frozen=True)
class Beam:
    source: tuple[float, float, float]  # mm, patient frame (S_z > 0)
    rows: tuple[int, int]  # film rows [first, last) this exposure forms


@dataclass(frozen=True)
class Geometry:
    M: np.ndarray  # 3×3, mid-plane mm → film px
    shape: tuple[int, int]  # film (height, width) px
    beams: tuple[Beam, ...]

    def beam_for_row(self, v: float) -> Beam:
        for b in self.beams:
            if b.rows[0] <= v < b.rows[1]:
                return b
        return self.beams[0] if v < self.beams[0].rows[0] else self.beams[-1]


def to_midplane(points: np.ndarray, source) -> np.ndarray:
    """(N, 3) patient-frame points → (N, 2) mid-plane points along rays from `source` (mm)."""
    p = np.asarray(points, float).reshape(-1, 3)
    sx, sy, sz = source
    f = sz / (sz - p[:, 2])
    return np.stack([sx + (p[:, 0] - sx) * f, sy + (p[:, 1] - sy) * f], axis=1)


def _film(M: np.ndarray, xy: np.ndarray) -> np.ndarray:
    return xy @ M[:2, :2].T + M[:2, 2]


def project(geom: Geometry, points: np.ndarray) -> np.ndarray:
    """(N, 3) patient-frame points → (N, 2) film px, each through the beam of the rows it lands in."""
    pts = np.asarray(points, float).reshape(-1, 3)
    out = _film(geom.M, to_midplane(pts, geom.beams[0].source))
    for b in geom.beams[1:]:
        alt = _film(geom.M, to_midplane(pts, b.source))
        use = alt[:, 1] >= b.rows[0]
        out[use] = alt[use]
    return out


def magnification(geom: Geometry, point, row: float | None = None) -> float:
    """Film px per mm at the depth of `point` (patient frame), for the beam forming `row`."""
    b = geom.beam_for_row(project(geom, [point])[0, 1] if row is None else row)
    sz = b.source[2]
    return float(abs(geom.M[0, 0]) * sz / (sz - float(np.asarray(point)[2])))


# --------------------------------------------------------------------------------------------
MAX_QUADRICS, MAX_PLANES = 2, 10


def pack(solids: list[Solid]) -> dict[str, np.ndarray]:
    """The solids as flat arrays for the compiled kernel (at most 2 quadrics, 10 planes each)."""
    n = len(solids)
    quad = np.zeros((n, MAX_QUADRICS, 15))
    planes = np.zeros((n, MAX_PLANES, 4))
    counts = np.zeros((n, 2), np.int64)
    for i, s in enumerate(solids):
        if len(s.quadrics) > MAX_QUADRICS or len(s.planes) > MAX_PLANES:
            raise ValueError(f"solid {s.tag or i}: at most {MAX_QUADRICS} quadrics and {MAX_PLANES} planes")
        for j, q in enumerate(s.quadrics):
            quad[i, j] = np.concatenate([q.centre, np.asarray(q.axes).ravel(), q.k])
        for j, (nrm, d0) in enumerate(s.planes):
            planes[i, j] = [*nrm, d0]
        counts[i] = len(s.quadrics), len(s.planes)
    mu = np.array([s.mu for s in solids], float)
    channel = np.array([s.channel for s in solids], np.int64)
    signs = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], float)
    corners = np.stack([s.box_centre + (signs * s.box_half) @ s.box_axes for s in solids]) if n else np.zeros((0, 8, 3))
    return {"quad": quad, "planes": planes, "counts": counts, "mu": mu, "channel": channel, "corners": corners}


def _bboxes(packed, geom: Geometry, beam: Beam, scale: float, shape) -> np.ndarray:
    """(n, 4) int pixel boxes [u0, v0, u1, v1) of each solid on the scaled film for `beam` (empty: u1 ≤ u0)."""
    c = packed["corners"]
    sx, sy, sz = beam.source
    z = np.minimum(c[..., 2], sz * 0.98)
    f = sz / (sz - z)
    xy = np.stack([sx + (c[..., 0] - sx) * f, sy + (c[..., 1] - sy) * f], -1)
    uv = (xy @ geom.M[:2, :2].T + geom.M[:2, 2]) * scale
    h, w = shape
    r0, r1 = max(int(round(beam.rows[0] * scale)), 0), min(int(round(beam.rows[1] * scale)), h)
    box = np.stack([np.floor(uv[..., 0].min(1)), np.floor(uv[..., 1].min(1)),
                    np.ceil(uv[..., 0].max(1)) + 1, np.ceil(uv[..., 1].max(1)) + 1], 1)
    box = np.nan_to_num(box, nan=0.0, posinf=w, neginf=0.0)
    box[:, [0, 2]] = np.clip(box[:, [0, 2]], 0, w)
    box[:, [1, 3]] = np.clip(box[:, [1, 3]], r0, r1)
    return box.astype(np.int64)


@njit(cache=True)
def _kernel(quad, planes, counts, mu, channel, boxes, minv, source, scale, out, only):  # pragma: no cover
    sx, sy, sz = source[0], source[1], source[2]
    for i in range(quad.shape[0]):
        if only >= 0 and i != only:
            continue
        u0, v0, u1, v1 = boxes[i, 0], boxes[i, 1], boxes[i, 2], boxes[i, 3]
        if u1 <= u0 or v1 <= v0:
            continue
        nq, npl = counts[i, 0], counts[i, 1]
        # per solid: the source in each quadric's local frame, and each plane's value at the source
        so = np.empty((nq, 3))
        for j in range(nq):
            for a in range(3):
                so[j, a] = (quad[i, j, 3 + 3 * a] * (sx - quad[i, j, 0]) + quad[i, j, 4 + 3 * a] * (sy - quad[i, j, 1])
                            + quad[i, j, 5 + 3 * a] * (sz - quad[i, j, 2]))
        gs = np.empty(npl)
        for j in range(npl):
            gs[j] = planes[i, j, 0] * sx + planes[i, j, 1] * sy + planes[i, j, 2] * sz + planes[i, j, 3]
        for v in range(v0, v1):
            dy = minv[1, 1] * (v + 0.5) / scale + minv[1, 2] - sy
            for u in range(u0, u1):
                dx = minv[0, 0] * (u + 0.5) / scale + minv[0, 2] - sx
                dz = -sz
                lo, hi = -1e30, 1e30
                for j in range(nq):
                    A, B, C = 0.0, 0.0, -1.0
                    for a in range(3):
                        k = quad[i, j, 12 + a]
                        d = quad[i, j, 3 + 3 * a] * dx + quad[i, j, 4 + 3 * a] * dy + quad[i, j, 5 + 3 * a] * dz
                        A += k * d * d
                        B += 2.0 * k * so[j, a] * d
                        C += k * so[j, a] * so[j, a]
                    disc = B * B - 4.0 * A * C
                    if A <= 1e-18 or disc <= 0.0:
                        if A <= 1e-18 and C <= 0.0:
                            continue
                        hi = -1e30
                        break
                    r = np.sqrt(disc)
                    t0, t1 = (-B - r) / (2.0 * A), (-B + r) / (2.0 * A)
                    lo = max(lo, t0)
                    hi = min(hi, t1)
                if hi <= lo:
                    continue
                for j in range(npl):
                    h = planes[i, j, 0] * dx + planes[i, j, 1] * dy + planes[i, j, 2] * dz
                    if h > 0.0:
                        hi = min(hi, -gs[j] / h)
                    elif h < 0.0:
                        lo = max(lo, -gs[j] / h)
                    elif gs[j] > 0.0:
                        hi = -1e30
                if hi > lo:
                    out[channel[i], v, u] += mu[i] * (hi - lo) * np.sqrt(dx * dx + dy * dy + dz * dz)


def line_integrals(solids: list[Solid], geom: Geometry, scale: float = 1.0) -> np.ndarray:
    """Σ μ·chord per channel: (CHANNELS, H·scale, W·scale) float32 on the film grid scaled by `scale`."""
    h, w = int(round(geom.shape[0] * scale)), int(round(geom.shape[1] * scale))
    out = np.zeros((CHANNELS, h, w), np.float64)
    if not solids:
        return out.astype(np.float32)
    packed = pack(solids)
    minv = np.linalg.inv(geom.M)
    for beam in geom.beams:
        boxes = _bboxes(packed, geom, beam, scale, (h, w))
        _kernel(packed["quad"], packed["planes"], packed["counts"], packed["mu"], packed["channel"], boxes, minv,
                np.array(beam.source, float), float(scale), out, -1)
    return out.astype(np.float32)


def silhouette(solid: Solid, geom: Geometry, supersample: int = 4) -> np.ndarray | None:
    """Outline (K, 2) film px of where `solid` casts a shadow, from a `supersample`× mask; None if unseen."""
    s = float(supersample)
    h, w = int(geom.shape[0] * s), int(geom.shape[1] * s)
    packed = pack([replace(solid, mu=1.0, channel=0)])
    boxes = [(b, _bboxes(packed, geom, b, s, (h, w))) for b in geom.beams]
    boxes = [(b, bb) for b, bb in boxes if bb[0, 2] > bb[0, 0] and bb[0, 3] > bb[0, 1]]
    if not boxes:
        return None
    u0, v0 = min(bb[0, 0] for _, bb in boxes), min(bb[0, 1] for _, bb in boxes)
    u1, v1 = max(bb[0, 2] for _, bb in boxes), max(bb[0, 3] for _, bb in boxes)
    img = np.zeros((1, v1 - v0 + 2, u1 - u0 + 2))
    shift = np.array([[1.0, 0, (u0 - 1) / s], [0, 1.0, (v0 - 1) / s], [0, 0, 1.0]])  # local grid → film
    local = np.linalg.inv(shift) @ geom.M
    for b, bb in boxes:
        bb = bb - [u0 - 1, v0 - 1, u0 - 1, v0 - 1]
        _kernel(packed["quad"], packed["planes"], packed["counts"], packed["mu"], packed["channel"], bb,
                np.linalg.inv(local), np.array(b.source, float), s, img, -1)
    mask = (img[0] > 1e-6).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    cnt = max(contours, key=cv2.contourArea)
    cnt = cv2.approxPolyDP(cnt, 0.5, True)[:, 0, :].astype(float)
    return (cnt + 0.5) / s + [(u0 - 1) / s, (v0 - 1) / s]


def interval(solid: Solid, origin, direction) -> tuple[float, float] | None:
    """Where the line origin + t·direction (mm, patient frame) is inside `solid`: (t_in, t_out)."""
    o, d = np.asarray(origin, float), np.asarray(direction, float)
    lo, hi = -np.inf, np.inf
    for q in solid.quadrics:
        oo, dd = q.axes @ (o - q.centre), q.axes @ d
        A, B, C = np.sum(q.k * dd * dd), 2 * np.sum(q.k * oo * dd), np.sum(q.k * oo * oo) - 1.0
        disc = B * B - 4 * A * C
        if A <= 1e-15 or disc <= 0:
            if A <= 1e-15 and C <= 0:
                continue
            return None
        r = np.sqrt(disc)
        lo, hi = max(lo, (-B - r) / (2 * A)), min(hi, (-B + r) / (2 * A))
    for n, d0 in solid.planes:
        g, h = n @ o + d0, n @ d
        if h > 0:
            hi = min(hi, -g / h)
        elif h < 0:
            lo = max(lo, -g / h)
        elif g > 0:
            return None
    return (float(lo), float(hi)) if hi > lo else None
