"""Mapping points between the radiograph frame (the original film) and the image frame (the photo).

Both frames are pixels, x right, y down. A homography `H` (3×3) maps radiograph → image; its
inverse maps back. The synthetic phantom stores `H` in each Labelme JSON under key ``spine_d2``.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from spine_d2.angles import Endplates


def apply_homography(H: np.ndarray, points: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Map (N, 2) points through the 3×3 homography `H`; returns (N, 2) float64. (Not
    cv2.perspectiveTransform: it multiplies by 1/w where this divides by w, and the last-bit
    differences move the phantom's rounded Labelme coordinates: a seed would no longer give the
    same dataset.)"""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    homog = np.hstack([pts, np.ones((len(pts), 1))]) @ np.asarray(H, dtype=float).T
    return homog[:, :2] / homog[:, 2:3]


def map_endplates(H: np.ndarray, endplates: Endplates) -> dict[str, dict[str, np.ndarray]]:
    """Endplates (level → side → [anterior, posterior]) mapped through `H`."""
    return {
        level: {side: apply_homography(H, pts) for side, pts in sides.items() if pts is not None}
        for level, sides in endplates.items()
    }


def map_circles(H: np.ndarray, circles: Sequence[Sequence[float]]) -> list[list[float]]:
    """Circles ``[cx, cy, r]`` mapped through `H`: centre mapped, radius scaled by the local scale."""
    out = []
    for cx, cy, r in circles:
        c, e = apply_homography(H, [[cx, cy], [cx + r, cy]])
        out.append([float(c[0]), float(c[1]), float(np.linalg.norm(e - c))])
    return out


def rotation_deg(H: np.ndarray, at: Sequence[float] | None = None) -> float:
    """In-plane rotation (degrees, counter-clockwise on screen positive) that `H` applies near `at`.

    Measured as the turn of a short horizontal radiograph segment at `at` (default: the origin).
    """
    x, y = (0.0, 0.0) if at is None else (float(at[0]), float(at[1]))
    a, b = apply_homography(H, [[x, y], [x + 1.0, y]])
    d = b - a
    return float(np.degrees(np.arctan2(-d[1], d[0])))


def as_matrix(H: Mapping | Sequence | np.ndarray) -> np.ndarray:
    """A 3×3 float array from a nested list (as stored in JSON); raises ValueError otherwise."""
    m = np.asarray(H, dtype=float)
    if m.shape != (3, 3) or not np.all(np.isfinite(m)):
        raise ValueError(f"a homography must be a finite 3×3 matrix, got shape {m.shape}")
    return m


def direction_change(H_a: np.ndarray, H_b: np.ndarray, shape) -> float:
    """The largest change (degrees) any direction's angle gets between two radiograph → image
    homographies, at the radiograph point seen at the image centre through `H_b`."""
    h, w = shape[:2]
    at = apply_homography(np.linalg.inv(H_b), [[w / 2, h / 2]])[0]
    resid = np.linalg.inv(H_a) @ H_b
    worst = 0.0
    for t in np.radians(np.arange(0, 180, 15)):
        d = np.array([np.cos(t), np.sin(t)])
        a, b = apply_homography(resid, [at, at + 5.0 * d])
        e = b - a
        change = (np.degrees(np.arctan2(e[1], e[0]) - t) + 180) % 360 - 180
        worst = max(worst, abs(change))
    return float(worst)


def frame_error(estimate, H_true, image_shape) -> dict[str, float]:
    """How far an estimated radiograph → image homography (an array, or anything with `.H`, e.g.
    a `FrameEstimate`) is from the known `H_true`, at the image centre.

    `rotation_error_deg`: estimated minus true in-plane rotation; `max_angle_error_deg`: the
    largest change the estimate's residual (H_est⁻¹ ∘ H_true) makes to any direction's angle —
    what it would add to an SS or PT measured in the corrected frame (`direction_change`).
    """
    H_est = np.asarray(getattr(estimate, "H", estimate), dtype=float)
    H_true = np.asarray(H_true, dtype=float)
    h, w = image_shape[:2]
    centre = [[w / 2, h / 2]]
    at_true = apply_homography(np.linalg.inv(H_true), centre)[0]
    at_est = apply_homography(np.linalg.inv(H_est), centre)[0]
    return {
        "rotation_error_deg": float(rotation_deg(H_est, at_est) - rotation_deg(H_true, at_true)),
        "max_angle_error_deg": direction_change(H_est, H_true, image_shape),
    }
