"""A pinhole camera's view of a plane, from the plane's straight lines; image frame (px), degrees.

A photo of a screen or a film is a view of a plane whose borders run along two orthogonal
directions. `fit_camera` finds the camera rotation R (plane → camera) and focal length f under
which each line points at its direction's vanishing point K·r1 or K·r2; `camera_homography` is
then the plane → image homography K·[r1 r2 t]. The principal point is taken at the image centre,
which a cropped photo moves: `fit_spread` says how far the rectification would move under what
the lines do not fix (the focal length when held at the phone prior, the principal point within a
crop), the basis of the frame estimate's confidence (`spine_d2.measure.rectify`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spine_d2.frames import direction_change


@dataclass
class Line:
    """A long straight line of the photo (full-resolution px)."""

    angle: float     # degrees in (−90, 90], direction of the line
    point: np.ndarray  # a point on it
    length: float    # summed length of its segments
    extent: float = 0.0  # length of the stretch they cover

    def homog(self) -> np.ndarray:
        t = np.radians(self.angle)
        d = np.array([np.cos(t), np.sin(t)])
        p = self.point
        return np.cross([p[0], p[1], 1.0], [p[0] + d[0], p[1] + d[1], 1.0])


def intrinsics(f: float, shape, pp=None) -> np.ndarray:
    """K of a camera with focal length `f` px and principal point `pp` (default: the image centre)."""
    h, w = shape[:2]
    cx, cy = (w / 2, h / 2) if pp is None else pp
    return np.array([[f, 0, cx], [0, f, cy], [0, 0, 1.0]])


FOCAL_CANDIDATES = (0.45, 0.8, 1.2, 1.7)  # image diagonals tried besides the prior (ultra-wide … 3× tele)


def _plane_normals(lines: list[Line], K: np.ndarray) -> np.ndarray:
    """Unit normals (camera frame) of the planes through the camera centre and each image line."""
    m = np.array([K.T @ ln.homog() for ln in lines])
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def _residuals(R: np.ndarray, f: float, lines: list[Line], family: np.ndarray, shape, pp=None) -> np.ndarray:
    """Degrees by which each line misses the vanishing point K·r of its family (0: the screen's
    horizontals, r1; 1: its verticals, r2); principal point `pp` (default: the image centre)."""
    K = intrinsics(f, shape, pp)
    v = (K @ R[:, :2])[:, family].T  # (n, 3) vanishing point of each line's family
    pts = np.array([ln.point for ln in lines])
    d = v[:, :2] - pts * v[:, 2:3]
    t = np.radians([ln.angle for ln in lines])
    cross = (d[:, 0] * np.sin(t) - d[:, 1] * np.cos(t)) / (np.linalg.norm(d, axis=1) + 1e-12)
    return np.degrees(np.arcsin(np.clip(cross, -1, 1)))


def _cross(a, b) -> np.ndarray:
    """a × b for 3-vectors (np.cross's set-up costs more than the product; this runs in loops)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _unit(v: np.ndarray) -> np.ndarray | None:
    n = math.sqrt(float(v @ v))
    return None if n < 1e-9 else v / n


def _hypothesis(m: np.ndarray, pair: tuple[int, int], other: int, fam: int) -> np.ndarray | None:
    """The screen's axes from two lines of one family and one of the other (focal length known)."""
    ra = _unit(_cross(m[pair[0]], m[pair[1]]))
    if ra is None:
        return None
    ra = ra if ra[fam] > 0 else -ra  # r1 points right, r2 down
    rb = _unit(_cross(ra, m[other]))
    if rb is None:
        return None
    rb = rb if rb[1 - fam] > 0 else -rb
    r1, r2 = (ra, rb) if fam == 0 else (rb, ra)
    r3 = _cross(r1, r2)
    return np.column_stack([r1, r2, r3]) if r3[2] > 0 else None


@dataclass
class CameraFit:
    """A fitted camera: rotation, focal length (px), each line's residual (degrees), which lines it
    was fitted to, their summed length, and whether the lines fixed f (else: the prior or a candidate)."""

    R: np.ndarray
    f: float
    residuals: np.ndarray
    inliers: np.ndarray
    score: float
    focal_fixed: bool


def _consensus(lines: list[Line], family: np.ndarray, shape, cfg) -> tuple[np.ndarray | None, float, float]:
    """(R, score, f) of the minimal-set hypothesis whose inliers (within `cfg.fit_tol_deg`) are
    longest, trying the prior focal length and `FOCAL_CANDIDATES`; R is None when none is possible."""
    diag = float(np.hypot(*shape[:2]))
    f0 = cfg.focal_prior * diag
    length = np.array([ln.length for ln in lines])
    best, best_score, best_f = None, 0.0, f0
    for fc in [f0] + [k * diag for k in FOCAL_CANDIDATES if abs(k * diag / f0 - 1) > 0.1]:
        m = _plane_normals(lines, intrinsics(fc, shape))
        for fam in (0, 1):
            idx = np.flatnonzero(family == fam)
            for a in range(len(idx)):
                for b in range(a + 1, len(idx)):
                    for o in np.flatnonzero(family != fam):
                        R = _hypothesis(m, (idx[a], idx[b]), o, fam)
                        if R is None or np.degrees(np.arccos(np.clip(R[2, 2], -1, 1))) > cfg.max_view_deg:
                            continue
                        score = length[np.abs(_residuals(R, fc, lines, family, shape)) <= cfg.fit_tol_deg].sum()
                        # focal lengths other than the prior must do clearly better
                        if score > best_score * (1.0 if fc == f0 else 1.05):
                            best, best_score, best_f = R, score, fc
    return best, best_score, best_f


def _refine(R0: np.ndarray, f_start: float, lines: list[Line], family: np.ndarray, shape,
            f0: float) -> tuple[np.ndarray, float, bool]:
    """Least squares on the lines (weighted by length): R and f, f held near the prior `f0` by a
    weak penalty; f is kept at `f_start` unless the lines fix it within 0.35–3 image diagonals
    (SD of log f under 0.1 for 0.1° of noise on a full-length line) → (R, f, fixed)."""
    from scipy.optimize import least_squares
    from scipy.spatial.transform import Rotation

    diag = float(np.hypot(*shape[:2]))
    wts = np.sqrt(np.array([ln.length for ln in lines]) / max(shape[:2]))

    def res(p, free_f):
        R = Rotation.from_rotvec(p[:3]).as_matrix()
        f = np.exp(p[3]) if free_f else f_start
        r = _residuals(R, f, lines, family, shape) * wts
        return np.append(r, 0.05 * (p[3] - np.log(f0)) / 0.7) if free_f else r

    x0 = np.append(Rotation.from_matrix(R0).as_rotvec(), np.log(f_start))
    fit = least_squares(res, x0, args=(True,), x_scale=np.array([0.1, 0.1, 0.1, 0.3]))
    f = float(np.exp(fit.x[3]))
    J = fit.jac[:-1]
    try:
        var = float(np.linalg.inv(J.T @ J)[3, 3])
        sd_logf = 0.1 * np.sqrt(var) if var > 0 else np.inf
    except np.linalg.LinAlgError:
        sd_logf = np.inf
    fixed = 0.35 * diag <= f <= 3.0 * diag and sd_logf <= 0.1
    if not fixed:
        fit = least_squares(res, x0[:3], args=(False,), x_scale=0.1)
        f = f_start
    return Rotation.from_rotvec(fit.x[:3]).as_matrix(), f, fixed


def fit_camera(lines: list[Line], family: np.ndarray, shape, cfg) -> CameraFit:
    """Rotation R (screen → camera) and focal length f of a pinhole camera whose view of the screen's
    two orthogonal directions explains the most of `lines` (by length): each line must point at its
    family's vanishing point K·r (family 0: the screen's horizontals, 1: its verticals).

    Consensus first, with f at the phone prior (`cfg.focal_prior` image diagonals): every pair of
    one family with each line of the other fixes R; the one whose inliers (within
    `cfg.fit_tol_deg`) are longest wins. Then least squares on its inliers refines R and f, f held
    near the prior by a weak penalty so that only a clear perspective moves it, and kept at the prior
    when the data would put it outside 0.35–3 diagonals. `cfg`: focal_prior, fit_tol_deg, max_view_deg
    (a `FrameConfig`)."""
    f0 = cfg.focal_prior * float(np.hypot(*shape[:2]))
    best, best_score, best_f = _consensus(lines, family, shape, cfg)
    if best is None:
        return CameraFit(np.eye(3), f0, np.full(len(lines), np.inf), np.zeros(len(lines), bool), 0.0, False)
    inl = np.abs(_residuals(best, best_f, lines, family, shape)) <= cfg.fit_tol_deg
    R, f, fixed = _refine(best, best_f, [ln for ln, k in zip(lines, inl) if k], family[inl], shape, f0)
    return CameraFit(R, f, _residuals(R, f, lines, family, shape), inl, float(best_score), fixed)


def camera_homography(R: np.ndarray, f: float, shape, pp=None) -> np.ndarray:
    """Plane → image homography K·[r1 r2 t] of a camera (R, f, `pp`), the plane's origin on the
    image centre and its scale about one pixel there (neither changes an angle)."""
    h, w = shape[:2]
    K = intrinsics(f, shape, pp)
    t = f * np.linalg.solve(K, [w / 2, h / 2, 1.0])
    H = K @ np.column_stack([R[:, 0], R[:, 1], t])
    return H / H[2, 2]


def refit_rotation(R: np.ndarray, f: float, lines: list[Line], family: np.ndarray, shape, pp=None) -> np.ndarray:
    """R refitted (least squares, line length weighted) for a given focal length and principal point."""
    from scipy.optimize import least_squares
    from scipy.spatial.transform import Rotation

    wts = np.sqrt(np.array([ln.length for ln in lines]) / max(shape[:2]))
    fit = least_squares(lambda p: _residuals(Rotation.from_rotvec(p).as_matrix(), f, lines, family, shape, pp) * wts,
                        Rotation.from_matrix(R).as_rotvec(), x_scale=0.1)
    return Rotation.from_rotvec(fit.x).as_matrix()


def fit_spread(R: np.ndarray, f: float, lines: list[Line], family: np.ndarray, shape, focal_fixed_by_lines: bool,
               focal_range=(0.45, 1.2), crop: float = 0.2) -> dict[str, float]:
    """How far the rectification could move (degrees, `direction_change`) under what the lines do
    not fix: `focal` — refitted at the ends of `focal_range` (image diagonals, a phone's ultra-wide to
    2× lenses) unless the lines fixed f; `centre` — refitted with the principal point where a crop
    of up to `crop` of each side would have put it (±crop/2 of the width and of the height)."""
    h, w = shape[:2]
    H = camera_homography(R, f, shape)
    diag = float(np.hypot(h, w))
    focal = 0.0
    if not focal_fixed_by_lines:
        for k in focal_range:
            Rk = refit_rotation(R, k * diag, lines, family, shape)
            focal = max(focal, direction_change(camera_homography(Rk, k * diag, shape), H, shape))
    centre = 0.0
    for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        pp = (w / 2 + dx * crop / 2 * w, h / 2 + dy * crop / 2 * h)
        Rp = refit_rotation(R, f, lines, family, shape, pp)
        centre = max(centre, direction_change(camera_homography(Rp, f, shape, pp), H, shape))
    return {"focal": focal, "centre": centre}
