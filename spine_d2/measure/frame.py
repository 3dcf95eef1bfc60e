"""Estimate how a photo is rotated and skewed relative to the radiograph it shows; image frame, pixels.

A phone photo of a monitor sees the screen (and the viewer's panels, and the film inside them) as
a quadrilateral; its straight borders are the longest straight edges in the photo and all run
along the radiograph's axes. `estimate_frame` finds them (Canny edges → probabilistic Hough
segments → segments grouped into lines, near-horizontal and near-vertical) and builds a
homography `H` from a rectified radiograph-like frame to the image frame:

- four borders (top, bottom, left, right) → their corners → `H` for the full perspective; the
  width:height of the rectified frame is `aspect` when the config gives it, else recovered from
  the quadrilateral with a pinhole camera (Zhang & He 2007; principal point at the image centre),
  else the mean side lengths;
- fewer borders that agree → a rotation about the image centre;
- nothing, or borders that disagree → no correction (`trusted=False`): angles stay in the image
  frame, which is right for screenshots and untouched films.

`H` maps the rectified frame → image frame, the same direction as the phantom's stored
homography (`spine_d2.frames`); it equals the radiograph frame up to scale and shift, which no
angle depends on. `frame_error` compares an estimate with a known homography.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from spine_d2.frames import apply_homography, rotation_deg


@dataclass(frozen=True)
class FrameConfig:
    enabled: bool = True
    max_side: int = 800               # px: the photo is shrunk to this for the search
    min_line_fraction: float = 0.25   # a border is at least this fraction of the image side
    max_tilt_deg: float = 30.0        # borders deviate at most this from horizontal/vertical
    agree_deg: float = 1.5            # borders of one estimate agree within this
    min_area_fraction: float = 0.15   # a quadrilateral covers at least this share of the photo
    perspective: bool = True          # use four borders for a homography (else rotation only)
    aspect: float | None = None       # known width:height of the bordered rectangle, if any
    max_rotation_deg: float = 25.0    # larger corrections are not trusted

    @classmethod
    def from_cfg(cls, cfg: Any) -> "FrameConfig":
        if cfg is None:
            return cls()
        if isinstance(cfg, cls):
            return cfg
        if not isinstance(cfg, Mapping):
            from omegaconf import OmegaConf
            cfg = OmegaConf.to_container(cfg, resolve=True)
        unknown = set(cfg) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown measure.frame option(s) {sorted(unknown)}")
        return cls(**cfg)


@dataclass
class FrameEstimate:
    """The estimated radiograph(rectified)→image homography, whether to trust it, and why."""

    H: np.ndarray = field(default_factory=lambda: np.eye(3))
    trusted: bool = False
    kind: str = "none"               # none | rotation | perspective | given
    rotation_deg: float = 0.0        # in-plane rotation at the image centre, CCW on screen positive
    reason: str = ""
    corners: np.ndarray | None = None  # the quadrilateral found (image frame), TL, TR, BR, BL

    def describe(self) -> str:
        if not self.trusted:
            return f"frame: image ({self.reason or 'no correction'})"
        return f"frame: radiograph via {self.kind} correction, rotation {self.rotation_deg:+.2f}°"


def given_frame(H: Any, image_shape: Sequence[int] | None = None) -> FrameEstimate:
    """A known radiograph→image homography (e.g. the phantom's) as a trusted estimate."""
    H = np.asarray(H, dtype=float).reshape(3, 3)
    at = None if image_shape is None else _centre_in_source(H, image_shape)
    return FrameEstimate(H, True, "given", rotation_deg(H, at), "given homography")


def _centre_in_source(H: np.ndarray, image_shape: Sequence[int]) -> np.ndarray:
    h, w = image_shape[:2]
    return apply_homography(np.linalg.inv(H), [[w / 2, h / 2]])[0]


# ---------------------------------------------------------------------------------------------
# borders


@dataclass
class _Line:
    angle: float     # degrees in (−90, 90], direction of the line
    point: np.ndarray  # a point on it (full-resolution px)
    length: float    # summed length of its segments

    def homog(self) -> np.ndarray:
        t = np.radians(self.angle)
        d = np.array([np.cos(t), np.sin(t)])
        p = self.point
        return np.cross([p[0], p[1], 1.0], [p[0] + d[0], p[1] + d[1], 1.0])


def _segments(gray: np.ndarray, cfg: FrameConfig) -> tuple[np.ndarray, float]:
    h, w = gray.shape
    scale = min(1.0, cfg.max_side / max(h, w))
    small = cv2.resize(gray, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 0)
    med = float(np.median(small))
    edges = cv2.Canny(small, max(5.0, 0.5 * med), max(20.0, 1.2 * med + 20))
    min_len = cfg.min_line_fraction * min(small.shape) * 0.5
    segs = cv2.HoughLinesP(edges, 1, np.pi / 720, threshold=max(20, int(min_len / 2)),
                           minLineLength=min_len, maxLineGap=max(5, int(min_len / 10)))
    if segs is None:
        return np.zeros((0, 4)), scale
    return segs.reshape(-1, 4).astype(float) / scale, scale


def _group(segs: np.ndarray, tol_deg: float, tol_px: float) -> list[_Line]:
    """Merge collinear segments into lines (angle within tol_deg, offset within tol_px)."""
    lines: list[list] = []  # [angle, normal offset, length, points]
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
    out = []
    for _, _, length, parts in lines:
        pts = np.array([[p[0], p[1]] for p in parts] + [[p[2], p[3]] for p in parts])
        wts = np.array([p[4] for p in parts] * 2)
        c = (pts * wts[:, None]).sum(0) / wts.sum()
        cov = ((pts - c) * wts[:, None]).T @ (pts - c)
        evals, evecs = np.linalg.eigh(cov)
        d = evecs[:, -1]
        ang = (np.degrees(np.arctan2(d[1], d[0])) + 90) % 180 - 90
        out.append(_Line(float(ang), c, float(length)))
    return out


def _borders(lines: list[_Line], shape, cfg: FrameConfig) -> dict[str, _Line]:
    h, w = shape
    out: dict[str, _Line] = {}
    horiz = [ln for ln in lines if abs(ln.angle) <= cfg.max_tilt_deg and ln.length >= cfg.min_line_fraction * w]
    vert = [ln for ln in lines if abs(ln.angle) >= 90 - cfg.max_tilt_deg and ln.length >= cfg.min_line_fraction * h]
    # the outermost long line on each side: longest first, ties to the outer one
    for name, group, coord, half, sign in (
        ("top", horiz, 1, h / 2, -1), ("bottom", horiz, 1, h / 2, 1),
        ("left", vert, 0, w / 2, -1), ("right", vert, 0, w / 2, 1),
    ):
        cand = [ln for ln in group if sign * (ln.point[coord] - half) > 0]
        if cand:
            longest = max(ln.length for ln in cand)
            strong = [ln for ln in cand if ln.length >= 0.6 * longest]
            out[name] = max(strong, key=lambda ln: sign * ln.point[coord])
    return out


def _intersect(a: _Line, b: _Line) -> np.ndarray:
    p = np.cross(a.homog(), b.homog())
    return p[:2] / p[2] if abs(p[2]) > 1e-12 else np.array([np.nan, np.nan])


def quad_aspect(corners: np.ndarray, image_shape) -> float:
    """width:height of the rectangle seen as `corners` (TL, TR, BR, BL): pinhole camera with the
    principal point at the image centre (Zhang & He 2007); mean side lengths when that is
    ill-conditioned (nearly fronto-parallel) or inconsistent."""
    tl, tr, br, bl = np.asarray(corners, dtype=float)
    top, bottom = np.linalg.norm(tr - tl), np.linalg.norm(br - bl)
    left, right = np.linalg.norm(bl - tl), np.linalg.norm(br - tr)
    fallback = (top + bottom) / (left + right)
    h, w = image_shape[:2]
    c = np.array([w / 2, h / 2])
    m1, m2, m3, m4 = (np.array([*(p - c), 1.0]) for p in (tl, tr, bl, br))
    k2 = np.dot(np.cross(m1, m4), m3) / np.dot(np.cross(m2, m4), m3)
    k3 = np.dot(np.cross(m1, m4), m2) / np.dot(np.cross(m3, m4), m2)
    n2, n3 = k2 * m2 - m1, k3 * m3 - m1
    if abs(n2[2]) < 1e-3 or abs(n3[2]) < 1e-3:
        return float(fallback)
    f2 = -(n2[0] * n3[0] + n2[1] * n3[1]) / (n2[2] * n3[2])
    if not np.isfinite(f2) or f2 <= (0.3 * max(h, w)) ** 2 or f2 >= (20 * max(h, w)) ** 2:
        return float(fallback)
    a_inv2 = np.diag([1 / f2, 1 / f2, 1.0])
    ratio = np.sqrt((n2 @ a_inv2 @ n2) / (n3 @ a_inv2 @ n3))
    if not np.isfinite(ratio) or abs(ratio / fallback - 1) > 0.25:
        return float(fallback)
    return float(ratio)


def estimate_frame(image: np.ndarray, cfg: FrameConfig | Mapping | None = None) -> FrameEstimate:
    """Estimate the rectified(radiograph)→image homography of a photo (see the module docstring)."""
    cfg = FrameConfig.from_cfg(cfg)
    img = np.asarray(image)
    if img.ndim == 3:
        gray = cv2.cvtColor(img[..., :3].astype(np.uint8), cv2.COLOR_BGR2GRAY)
    elif img.ndim == 2:
        gray = img.astype(np.uint8)
    else:
        return FrameEstimate(reason=f"not an image (shape {img.shape})")
    h, w = gray.shape
    segs, _ = _segments(gray, cfg)
    if len(segs) == 0:
        return FrameEstimate(reason="no straight border found")
    lines = _group(segs, tol_deg=1.0, tol_px=max(3.0, 0.004 * max(h, w)))
    b = _borders(lines, (h, w), cfg)
    if not b:
        return FrameEstimate(reason="no straight border found")
    # each border's deviation from its axis, as a rotation (CCW on screen positive)
    rot = {k: (-ln.angle if k in ("top", "bottom") else -(ln.angle - 90 if ln.angle > 0 else ln.angle + 90))
           for k, ln in b.items()}
    centre = np.array([w / 2, h / 2])
    if cfg.perspective and len(b) == 4:
        corners = np.array([_intersect(b["top"], b["left"]), _intersect(b["top"], b["right"]),
                            _intersect(b["bottom"], b["right"]), _intersect(b["bottom"], b["left"])])
        est = _from_quad(corners, (h, w), cfg)
        if est.trusted:
            return est
        why = est.reason
    else:
        why = f"{len(b)} of 4 borders"
    vals = np.array(list(rot.values()))
    if len(vals) >= 2 and np.ptp(vals) <= cfg.agree_deg:
        r = float(np.mean(vals))
        if abs(r) > cfg.max_rotation_deg:
            return FrameEstimate(reason=f"rotation {r:.1f}° too large to trust")
        return FrameEstimate(_rotation_about(centre, r), True, "rotation", r,
                             f"{len(vals)} borders agree ({why})")
    return FrameEstimate(rotation_deg=float(np.mean(vals)),
                         reason=f"{why}; borders disagree or too few for a rotation "
                                f"({', '.join(f'{k} {v:+.1f}°' for k, v in rot.items())})")


def _rotation_about(centre: np.ndarray, deg: float) -> np.ndarray:
    """Homography rotating the rectified frame by `deg` (CCW on screen) about `centre` into the image."""
    t = np.radians(deg)
    # y down: a CCW turn on screen is x' = cos·x + sin·y, y' = −sin·x + cos·y
    R = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    H = np.eye(3)
    H[:2, :2] = R
    H[:2, 2] = centre - R @ centre
    return H


def _from_quad(corners: np.ndarray, shape, cfg: FrameConfig) -> FrameEstimate:
    h, w = shape
    if not np.all(np.isfinite(corners)):
        return FrameEstimate(reason="borders do not meet")
    margin = 0.5 * max(h, w)
    if np.any(corners < -margin) or np.any(corners[:, 0] > w + margin) or np.any(corners[:, 1] > h + margin):
        return FrameEstimate(reason="border corners far outside the photo")
    area = cv2.contourArea(corners.astype(np.float32))
    if not cv2.isContourConvex(corners.astype(np.float32)) or area < cfg.min_area_fraction * h * w:
        return FrameEstimate(reason="borders make no plausible quadrilateral", corners=corners)
    aspect = cfg.aspect or quad_aspect(corners, shape)
    tl, tr, br, bl = corners
    height = (np.linalg.norm(bl - tl) + np.linalg.norm(br - tr)) / 2
    width = aspect * height
    src = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    # place the rectified frame over the quadrilateral's centre (scale/shift do not change angles)
    src += (corners.mean(axis=0) - src.mean(axis=0)).astype(np.float32)
    H = cv2.getPerspectiveTransform(src, corners.astype(np.float32)).astype(float)
    at = _centre_in_source(H, shape)
    r = rotation_deg(H, at)
    if abs(r) > cfg.max_rotation_deg:
        return FrameEstimate(reason=f"rotation {r:.1f}° too large to trust", corners=corners)
    return FrameEstimate(H, True, "perspective", r, "screen/film borders", corners)


def frame_error(estimate: FrameEstimate | np.ndarray, H_true: Any, image_shape) -> dict[str, float]:
    """How far an estimate is from a known radiograph→image homography, at the image centre.

    `rotation_error_deg`: estimated minus true in-plane rotation; `max_angle_error_deg`: the
    largest change the estimate's residual (H_est⁻¹ ∘ H_true) makes to any direction's angle —
    what it would add to an SS or PT measured in the corrected frame.
    """
    H_est = estimate.H if isinstance(estimate, FrameEstimate) else np.asarray(estimate, dtype=float)
    H_true = np.asarray(H_true, dtype=float)
    h, w = image_shape[:2]
    c_img = np.array([[w / 2, h / 2]])
    at_true = apply_homography(np.linalg.inv(H_true), c_img)[0]
    at_est = apply_homography(np.linalg.inv(H_est), c_img)[0]
    resid = np.linalg.inv(H_est) @ H_true  # true radiograph → estimated frame
    worst = 0.0
    for t in np.radians(np.arange(0, 180, 15)):
        d = np.array([np.cos(t), np.sin(t)])
        a, b = apply_homography(resid, [at_true, at_true + 5.0 * d])
        e = b - a
        change = np.degrees(np.arctan2(e[1], e[0]) - t)
        change = (change + 180) % 360 - 180
        worst = max(worst, abs(change))
    return {
        "rotation_error_deg": float(rotation_deg(H_est, at_est) - rotation_deg(H_true, at_true)),
        "max_angle_error_deg": float(worst),
    }
