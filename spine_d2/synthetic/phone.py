"""A phone photographing the monitor: the pinhole camera, and what the photo adds (desk, glare, moiré, blur, noise).

Frames: screen canvas (px) → photo (px) by `phone_camera`'s homography H = K·[r1 r2 t] (a phone's
focal length, the screen turned by pitch/yaw, the camera's roll, distance and aim). The artefacts
follow CheXphoto (Phillips 2020). Every random draw comes from the `rng` passed in, in a fixed
order, so a seed gives the same photo.
"""
from __future__ import annotations

import cv2
import numpy as np

from spine_d2.frames import apply_homography
from spine_d2.synthetic.knobs import Knobs
from spine_d2.synthetic.screen import rect

# a phone's main camera: 35 mm-equivalent focal length (mm) and the share of 2× (telephoto) shots
FOCAL_MM = (23.0, 30.0)
TELE_MM, TELE_FRACTION = (46.0, 56.0), 0.15
FULL_FRAME_DIAGONAL_MM = 43.27


def camera_matrix(f_px: float, principal_point) -> np.ndarray:
    return np.array([[f_px, 0.0, principal_point[0]], [0.0, f_px, principal_point[1]], [0.0, 0.0, 1.0]])


def pose_rotation(pitch_deg: float, yaw_deg: float, roll_deg: float) -> np.ndarray:
    """Screen plane → camera axes (x right, y down, z forward): the plane turned by pitch (about its
    horizontal axis) and yaw (about its vertical axis), then the camera's roll turns the picture
    in-plane (positive roll turns x toward y: clockwise as seen in the photo)."""
    a, b, c = np.radians([pitch_deg, yaw_deg, roll_deg])
    Rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    Ry = np.array([[np.cos(b), 0, np.sin(b)], [0, 1, 0], [-np.sin(b), 0, np.cos(b)]])
    Rz = np.array([[np.cos(c), -np.sin(c), 0], [np.sin(c), np.cos(c), 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def pinhole_homography(K: np.ndarray, R: np.ndarray, t, screen_size) -> np.ndarray:
    """Screen px (plane z = 0, origin at the screen centre after the shift) → image px: K·[r1 r2 t]."""
    ws, hs = screen_size
    H = K @ np.column_stack([R[:, 0], R[:, 1], np.asarray(t, float)]) @ np.array(
        [[1.0, 0.0, -ws / 2], [0.0, 1.0, -hs / 2], [0.0, 0.0, 1.0]])
    return H / H[2, 2]


def phone_camera(ws: int, hs: int, wp: int, hp: int, rng: np.random.Generator, knobs: Knobs) -> dict:
    """A pinhole phone camera photographing the (flat) screen: the screen plane is turned by pitch
    and yaw (each up to ± `knobs.tilt` degrees), the camera rolls by up to ± `knobs.rotation_deg`,
    stands at the distance that makes the screen fill `fill` of the frame (before the tilt) and aims
    near the screen's centre. Returns the screen → image homography `H` and the parameters (JSON-ready)."""
    tele = rng.random() < TELE_FRACTION
    f_mm = rng.uniform(*(TELE_MM if tele else FOCAL_MM))
    f = f_mm / FULL_FRAME_DIAGONAL_MM * float(np.hypot(wp, hp))
    pp = np.array([wp / 2, hp / 2]) + np.clip(rng.normal(0, 0.004, 2), -0.01, 0.01) * [wp, hp]
    K = camera_matrix(f, pp)
    pitch, yaw = rng.uniform(-knobs.tilt, knobs.tilt, 2)
    roll = rng.uniform(-knobs.rotation_deg, knobs.rotation_deg)
    R = pose_rotation(pitch, yaw, roll)
    fill = rng.uniform(0.75, 1.0 + knobs.crop)
    z = f / (fill * min(wp / ws, hp / hs))  # screen px: the distance at which it fills `fill`
    centre = np.array([wp / 2, hp / 2]) + rng.normal(0, 0.03, 2) * [wp, hp]  # where its centre lands
    t = np.array([*((centre - pp) * z / f), z])
    H = pinhole_homography(K, R, t, (ws, hs))
    corners = apply_homography(H, rect(0, 0, ws, hs))
    r = lambda v, d=4: round(float(v), d)  # noqa: E731
    return {"H": H, "screen_corners": np.round(corners, 3).tolist(), "rotation_deg": r(roll),
            "pitch_deg": r(pitch), "yaw_deg": r(yaw), "focal_mm_equiv": r(f_mm, 3), "focal_px": r(f, 3),
            "principal_point": [r(pp[0], 3), r(pp[1], 3)], "distance_screen_px": r(z, 2), "fill": r(fill)}


def _screen_on_desk(canvas: np.ndarray, Hsp: np.ndarray, size, rng: np.random.Generator, knobs: Knobs):
    """The screen as the phone sees it, in its bezel on a desk → (photo BGR, colour gain): the
    screen glows (blacks lifted); the phone's white balance is off (applied here: the background is
    of random colour anyway)."""
    wp, hp = size
    hs, ws = canvas.shape[:2]
    lift = rng.uniform(0.02, 0.12)
    cc = knobs.color_cast
    cgain = 1 + np.clip(rng.normal(0, cc, 3), -1.5 * cc, 1.5 * cc)
    m = np.hstack([np.diag(cgain * (1 - lift)), (255 * lift * cgain)[:, None]])
    screen = cv2.transform(canvas, m)
    photo = _background(hp, wp, rng)
    bz = ws * rng.uniform(0.015, 0.05)
    bezel = apply_homography(Hsp, rect(-bz, -bz, ws + bz, hs + bz))
    cv2.fillConvexPoly(photo, np.round(bezel * 8).astype(np.int32), tuple(int(v) for v in rng.integers(8, 50) + rng.integers(-3, 4, 3)),
                       cv2.LINE_AA, 3)
    cv2.warpPerspective(screen, Hsp, (wp, hp), dst=photo, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    return photo, cgain


def _light(photo: np.ndarray, Hsp: np.ndarray, screen_shape, rng: np.random.Generator, knobs: Knobs, cgain):
    """Vignetting, moiré and glare → (photo, what was applied)."""
    hp, wp = photo.shape[:2]
    applied: dict = {}
    gain = _vignette((hp, wp), v := rng.uniform(0, knobs.vignette))
    if rng.random() < knobs.moire:
        o = rng.uniform(0.05, 1.0) * knobs.moire_opacity
        gain *= _moire(Hsp, (hp, wp), screen_shape, rng, o)
        applied["moire"] = round(float(o), 4)
    g8 = cv2.convertScaleAbs(gain, alpha=255.0)
    out = cv2.multiply(photo, cv2.merge([g8, g8, g8]), scale=1.0 / 255.0)
    if rng.random() < knobs.glare:
        a = rng.uniform(0.2, 1.0) * knobs.glare_alpha
        gl = cv2.convertScaleAbs(_glare((hp, wp), rng, a * 255))
        out = cv2.add(out, cv2.merge([gl, gl, gl]))
        applied["glare"] = round(float(a), 4)
    applied.update(vignette=round(float(v), 4), color_gain=[round(float(x), 4) for x in cgain])
    return out, applied


def _blur(out: np.ndarray, rng: np.random.Generator, knobs: Knobs, applied: dict) -> tuple[np.ndarray, float]:
    """Defocus (Gaussian, its sigma returned) and, sometimes, motion blur (in `applied`)."""
    sigma = rng.uniform(0, knobs.blur_sigma)
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    if rng.random() < knobs.motion_blur:
        n = int(rng.integers(5, 13))
        kern = np.zeros((n, n), np.float32)
        kern[n // 2] = 1.0 / n
        M = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), float(rng.uniform(0, 180)), 1.0)
        kern = cv2.warpAffine(kern, M, (n, n))
        out = cv2.filter2D(out, -1, kern / kern.sum())
        applied["motion_blur"] = n
    return out, sigma


def photograph(canvas: np.ndarray, rng: np.random.Generator, knobs: Knobs) -> tuple[np.ndarray, np.ndarray, dict]:
    """A phone photo of the screen canvas → (photo BGR uint8, screen → photo homography, params
    (JSON-ready): the camera's, then blur, noise, JPEG quality and the artefacts applied)."""
    hs, ws = canvas.shape[:2]
    long_side = int(rng.uniform(1000, 1450))
    portrait = (hs > ws) if rng.random() < 0.8 else (hs <= ws)
    wp, hp = (int(long_side * 0.75), long_side) if portrait else (long_side, int(long_side * 0.75))
    cam = phone_camera(ws, hs, wp, hp, rng, knobs)
    Hsp = cam.pop("H")
    photo, cgain = _screen_on_desk(canvas, Hsp, (wp, hp), rng, knobs)
    out, applied = _light(photo, Hsp, (hs, ws), rng, knobs, cgain)
    out, sigma = _blur(out, rng, knobs, applied)
    nsd = rng.uniform(0, knobs.noise_sd)
    out = add_noise(out, nsd, rng)
    q = int(rng.integers(knobs.jpeg_quality_min, 96))
    params = dict(kind="photo", **cam, blur_sigma=round(float(sigma), 4), noise_sd=round(float(nsd), 4),
                  jpeg_quality=q, format="jpg", **applied)
    return out, Hsp, params


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Desk and wall behind the monitor: smooth tinted gradient with some texture, BGR uint8."""
    base = rng.uniform(40, 190) * (1 + rng.normal(0, 0.08, 3))  # greys, wood, walls: low saturation
    g = np.linspace(0, 1, 8, dtype=np.float32)
    small = np.zeros((8, 8, 3), np.float32)
    dx, dy = rng.normal(0, 35) + rng.normal(0, 5, 3), rng.normal(0, 35) + rng.normal(0, 5, 3)
    for c in range(3):
        small[:, :, c] = base[c] + dx[c] * g[None, :] + dy[c] * g[:, None]
    small += rng.normal(0, 8, (8, 8, 1)).astype(np.float32)
    if rng.random() < 0.5:  # desk edge / keyboard
        y = int(8 * rng.uniform(0.75, 0.95))
        small[y:] *= rng.uniform(0.3, 0.8)
    small = np.clip(small, 0, 255).astype(np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def add_noise(img: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise on a uint8 image: luminance noise of SD `sd` plus coarser chroma noise (OpenCV's
    RNG, seeded from `rng`, so the result is reproducible)."""
    if sd <= 0:
        return img
    cv2.setRNGSeed(int(rng.integers(2**31)))
    h, w = img.shape[:2]
    lum = np.empty((h, w), np.int16)
    cv2.randn(lum, 0, float(sd))
    chroma = np.empty((h // 4 + 1, w // 4 + 1, 3), np.int16)
    cv2.randn(chroma, 0, float(sd) * 0.5)
    noise = cv2.resize(chroma, (w, h), interpolation=cv2.INTER_NEAREST)
    noise = cv2.add(noise, cv2.merge([lum, lum, lum])) if img.ndim == 3 else lum
    return cv2.add(img, noise, dtype=cv2.CV_8U)


def _moire(Hsp, shape, screen_shape, rng, opacity) -> np.ndarray:
    """Screen pixel grid sampled by the camera: aliasing makes the curved moiré bands."""
    hp, wp = shape
    Hi = np.linalg.inv(Hsp).astype(np.float32)
    xs = np.arange(wp, dtype=np.float32)[None, :]
    ys = np.arange(hp, dtype=np.float32)[:, None]
    den = Hi[2, 0] * xs + Hi[2, 1] * ys + Hi[2, 2]
    u = (Hi[0, 0] * xs + Hi[0, 1] * ys + Hi[0, 2]) / den
    v = (Hi[1, 0] * xs + Hi[1, 1] * ys + Hi[1, 2]) / den
    pitch = np.float32(rng.uniform(0.35, 0.9))  # screen pixels per canvas pixel (the monitor is finer)
    th = np.radians(rng.normal(0, 1.0))
    g = np.cos((2 * np.pi / pitch) * u) + np.cos((2 * np.pi / pitch) * (v * np.cos(th) + u * np.sin(th)))
    g = cv2.GaussianBlur(g, (0, 0), 1.2)
    g = g / (np.abs(g).max() + 1e-6)
    return (1.0 - opacity * 0.5 * (1.0 + g)).astype(np.float32)


def _glare(shape, rng, alpha) -> np.ndarray:
    hp, wp = shape
    q = 8
    ys, xs = np.mgrid[0:hp // q + 1, 0:wp // q + 1].astype(np.float32) * q
    cx, cy = rng.uniform(0.1, 0.9) * wp, rng.uniform(0.1, 0.9) * hp
    sx, sy = rng.uniform(50, 200, 2) * max(hp, wp) / 1200
    th = rng.uniform(0, np.pi)
    dx, dy = xs - cx, ys - cy
    a = (dx * np.cos(th) + dy * np.sin(th)) / sx
    b = (-dx * np.sin(th) + dy * np.cos(th)) / sy
    g = np.exp(-0.5 * (a * a + b * b)) * alpha
    return cv2.resize(g, (wp, hp), interpolation=cv2.INTER_LINEAR)


def _vignette(shape, strength) -> np.ndarray:
    hp, wp = shape
    ys, xs = np.mgrid[0:33, 0:33].astype(np.float32) / 32 - 0.5
    r2 = (xs * xs + ys * ys) / 0.5
    return cv2.resize((1 - strength * r2).astype(np.float32), (wp, hp), interpolation=cv2.INTER_LINEAR)
