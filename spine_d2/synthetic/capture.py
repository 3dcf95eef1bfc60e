"""How a film reaches the user: a PACS viewer on a monitor, then a phone photo of it or a screenshot.

Frames: the film (radiograph frame, px) → the screen canvas (px) by the viewer's affine display
transform → the output image (px) by a crop/resize (screenshot, a similarity) or a pinhole
camera's view of the flat screen (photo of the monitor: H = K·[r1 r2 t] with a phone's focal
length, the screen turned by pitch/yaw, the camera's roll, distance and aim; `phone_camera`).
`Capture.H` is the composed 3×3 homography radiograph → image and `Capture.visible` the convex
polygon (image frame) where the film can be seen at all: the image ∩ the viewer's viewport ∩ the
displayed film. Artefacts follow CheXphoto (Phillips 2020): tilt, rotation, crop, bezel and desk,
moiré, glare, vignetting, blur, noise, colour cast, JPEG; the screen adds PACS corner text,
toolbar, ruler, cursor and letterboxing.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from spine_d2.synthetic.knobs import Knobs

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_NAMES = ("DOE^JANE", "SMITH^J", "MULLER^K", "ROSSI^M", "TANAKA^Y", "SILVA^A", "NOVAK^P", "ANON^0427")
_STUDIES = ("XR SPINE LAT", "XR LUMBAR SPINE 2V", "XR WHOLE SPINE STANDING", "XR THORACOLUMBAR LAT",
            "RX COLONNE TOTALE PROFIL", "XR L-SPINE FLEX/EXT")
_SITES = ("CITY HOSPITAL", "ORTHO CLINIC", "RADIOLOGY DEPT", "UNIV. MED. CENTER", "SPINE CENTER")


@dataclass
class Capture:
    image: np.ndarray  # BGR uint8
    H: np.ndarray  # 3×3 radiograph → image
    visible: np.ndarray  # (k, 2) convex polygon, image frame
    params: dict
    ext: str  # ".jpg" or ".png"
    encode: list  # cv2.imencode params


def _rect(x0, y0, x1, y1) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def _map(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.hstack([pts, np.ones((len(pts), 1))]) @ H.T
    return p[:, :2] / p[:, 2:3]


def clip_polygon(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Sutherland–Hodgman: `subject` (any simple polygon) ∩ `clip` (convex). Inside vertices are kept
    exactly (the same coordinates), so a vertex inside the clip region stays a vertex."""
    clip = np.asarray(clip, float)
    area2 = np.sum(clip[:, 0] * np.roll(clip[:, 1], -1) - np.roll(clip[:, 0], -1) * clip[:, 1])
    orient = 1.0 if area2 > 0 else -1.0
    out = [np.asarray(p, float) for p in subject]
    for i in range(len(clip)):
        a, b = clip[i], clip[(i + 1) % len(clip)]
        side = lambda p: orient * ((b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]))  # noqa: E731
        inp, out = out, []
        if not inp:
            break
        prev = inp[-1]
        for cur in inp:
            sc, sp = side(cur), side(prev)
            if sc >= 0:
                if sp < 0:
                    out.append(prev + (cur - prev) * (sp / (sp - sc)))
                out.append(cur)
            elif sp >= 0:
                out.append(prev + (cur - prev) * (sp / (sp - sc)))
            prev = cur
    return np.array(out).reshape(-1, 2)


def polygon_area(p: np.ndarray) -> float:
    if len(p) < 3:
        return 0.0
    return 0.5 * abs(float(np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1])))


def inside_depth(points: np.ndarray, convex: np.ndarray) -> np.ndarray:
    """Signed distance of each point to the boundary of the convex polygon (positive inside)."""
    c = np.asarray(convex, float)
    area2 = np.sum(c[:, 0] * np.roll(c[:, 1], -1) - np.roll(c[:, 0], -1) * c[:, 1])
    orient = 1.0 if area2 > 0 else -1.0
    pts = np.asarray(points, float).reshape(-1, 2)
    d = np.full(len(pts), np.inf)
    for i in range(len(c)):
        a, b = c[i], c[(i + 1) % len(c)]
        e = b - a
        n = np.linalg.norm(e)
        if n == 0:
            continue
        dist = orient * (e[0] * (pts[:, 1] - a[1]) - e[1] * (pts[:, 0] - a[0])) / n
        d = np.minimum(d, dist)
    return d


# ------------------------------------------------------------------------------- the screen ----
def _screen(film: np.ndarray, rng: np.random.Generator, knobs: Knobs):
    """The viewer on the screen: (canvas BGR, display affine 3×3, viewport rect, params)."""
    aspect = float(rng.choice([16 / 9, 16 / 10, 4 / 3, 5 / 4, 3 / 4, 9 / 16]))  # portrait PACS monitors
    long_side = rng.uniform(1000, 1400)
    ws, hs = (long_side, long_side / aspect) if aspect >= 1 else (long_side * aspect, long_side)
    ws, hs = int(ws), int(hs)
    canvas = np.zeros((hs, ws, 3), np.uint8)
    ui = rng.random() < knobs.ui
    top = int(hs * rng.uniform(0.03, 0.06)) if ui else 0
    left = int(ws * rng.uniform(0.06, 0.12)) if ui and rng.random() < 0.5 else 0
    vx0, vy0, vx1, vy1 = left, top, ws, hs
    hf, wf = film.shape[:2]
    s = min((vx1 - vx0) / wf, (vy1 - vy0) / hf) * (1.0 + rng.uniform(0.0, knobs.zoom) if rng.random() < 0.6 else 1.0)
    dw, dh = wf * s, hf * s
    tx = vx0 + ((vx1 - vx0) - dw) * rng.uniform(0.2, 0.8) if dw < vx1 - vx0 else vx0 - (dw - (vx1 - vx0)) * rng.random()
    ty = vy0 + ((vy1 - vy0) - dh) * rng.uniform(0.2, 0.8) if dh < vy1 - vy0 else vy0 - (dh - (vy1 - vy0)) * rng.random()
    A = np.array([[s, 0.0, tx], [0.0, s, ty], [0.0, 0.0, 1.0]])
    T = np.array([[1.0, 0.0, -vx0], [0.0, 1.0, -vy0], [0.0, 0.0, 1.0]]) @ A
    view = cv2.warpAffine(film, T[:2], (vx1 - vx0, vy1 - vy0), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    canvas[vy0:vy1, vx0:vx1] = view[:, :, None]
    if ui:
        canvas[:top] = rng.integers(35, 70)
        for i in range(int(rng.integers(6, 16))):  # toolbar icons
            x = 8 + i * (top + 6)
            cv2.rectangle(canvas, (x, top // 5), (x + top * 3 // 5, top * 4 // 5), (150, 150, 150), 1)
        if left:
            canvas[top:, :left] = rng.integers(25, 50)
            for j in range(3):
                y = top + 10 + j * int(left * 1.4)
                th = cv2.resize(film, (left - 16, int(left * 1.2)), interpolation=cv2.INTER_AREA) // 2
                if y + th.shape[0] < hs:
                    canvas[y:y + th.shape[0], 8:8 + th.shape[1]] = th[:, :, None] if j == 0 else 40
                    cv2.rectangle(canvas, (6, y - 2), (left - 6, y + th.shape[0] + 2), (200, 160, 60) if j == 0 else (90, 90, 90), 1)
        # ruler along the right edge of the viewport
        if rng.random() < 0.6:
            x = vx1 - int(ws * 0.03)
            for k, y in enumerate(range(vy0 + int(hs * 0.2), vy1 - int(hs * 0.2), max(4, int(10 * s)))):
                cv2.line(canvas, (x, y), (x - (12 if k % 5 == 0 else 6), y), (200, 200, 200), 1)
    params = {"screen": [ws, hs], "viewport": [vx0, vy0, vx1, vy1], "display_scale": round(float(s), 5)}
    if rng.random() < knobs.text:
        _corner_text(canvas, (vx0, vy0, vx1, vy1), rng, s)
    if ui and rng.random() < 0.5:  # mouse cursor
        cx, cy = rng.uniform(vx0, vx1), rng.uniform(vy0, vy1)
        arrow = np.array([[0, 0], [0, 17], [4, 13], [7, 20], [9, 19], [6, 12], [12, 12]], np.float64) * hs / 900
        cv2.fillPoly(canvas, [np.round(arrow + [cx, cy]).astype(np.int32)], (255, 255, 255))
        cv2.polylines(canvas, [np.round(arrow + [cx, cy]).astype(np.int32)], True, (0, 0, 0), 1)
    viewport = _rect(vx0, vy0, vx1, vy1)
    return canvas, A, viewport, params


def _corner_text(canvas: np.ndarray, vp, rng: np.random.Generator, scale: float) -> None:
    vx0, vy0, vx1, vy1 = vp
    hs = canvas.shape[0]
    fs = hs / 1000 * rng.uniform(0.4, 0.6)
    colour = [(255, 255, 255), (0, 230, 255), (120, 255, 120), (230, 230, 230)][int(rng.integers(4))]
    d = f"20{rng.integers(12, 25)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d}"
    blocks = {
        "tl": [str(rng.choice(_NAMES)), f"ID {rng.integers(10**7, 10**8)}",
               f"DOB 19{rng.integers(35, 99)}-{rng.integers(1, 13):02d}-{rng.integers(1, 29):02d} {rng.choice(['F', 'M'])}",
               str(rng.choice(_STUDIES))],
        "tr": [str(rng.choice(_SITES)), f"{d} {rng.integers(7, 19):02d}:{rng.integers(0, 60):02d}",
               f"Acc {rng.integers(10**6, 10**7)}", f"Se: {rng.integers(1, 5)}  Im: 1/{rng.integers(1, 4)}"],
        "bl": [f"W: {rng.integers(1500, 4096)} L: {rng.integers(800, 2500)}", f"Zoom: {int(scale * 100)}%",
               f"kVp {rng.integers(75, 110)}  mAs {rng.integers(10, 60)}"],
        "br": ["LAT", f"{rng.integers(150, 250) / 1000:.3f} mm/px", "DX"],
    }
    lh = int(28 * fs) + 4
    for corner, lines in blocks.items():
        for i, text in enumerate(lines):
            (tw, _), _ = cv2.getTextSize(text, _FONT, fs, 1)
            x = vx0 + 8 if corner[1] == "l" else vx1 - tw - 8
            y = vy0 + 8 + lh * (i + 1) if corner[0] == "t" else vy1 - 8 - lh * (len(lines) - 1 - i)
            cv2.putText(canvas, text, (int(x), int(y)), _FONT, fs, colour, 1, cv2.LINE_AA)


# ------------------------------------------------------------------------------- capture -------
def capture(film: np.ndarray, rng: np.random.Generator, knobs: Knobs) -> Capture:
    """A screenshot or a phone photo of `film` (uint8 grey) shown in a PACS viewer."""
    canvas, A, viewport, params = _screen(film, rng, knobs)
    hf, wf = film.shape[:2]
    film_rect = _rect(0, 0, wf, hf)
    if rng.random() >= knobs.photo_fraction:
        return _screenshot(canvas, A, viewport, film_rect, rng, params)
    return _photo(canvas, A, viewport, film_rect, rng, knobs, params)


def _screenshot(canvas, A, viewport, film_rect, rng, params) -> Capture:
    hs, ws = canvas.shape[:2]
    # the user grabs the whole screen or a window of it, sometimes at a lower scale
    x0, y0 = int(ws * rng.uniform(0, 0.06)), int(hs * rng.uniform(0, 0.06))
    x1, y1 = ws - int(ws * rng.uniform(0, 0.06)), hs - int(hs * rng.uniform(0, 0.06))
    f = 1.0 if rng.random() < 0.5 else rng.uniform(0.7, 1.0)
    img = canvas[y0:y1, x0:x1]
    w, h = int(round((x1 - x0) * f)), int(round((y1 - y0) * f))
    if f != 1.0:
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    S = np.array([[w / (x1 - x0), 0, 0], [0, h / (y1 - y0), 0], [0, 0, 1]]) @ np.array(
        [[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], dtype=float)
    H = S @ A
    visible = clip_polygon(clip_polygon(_rect(0, 0, w, h), _map(S, viewport)), _map(H, film_rect))
    png = rng.random() < 0.5
    q = int(rng.integers(80, 96))
    params.update(kind="screenshot", crop=[x0, y0, x1, y1], scale=round(float(f), 5),
                  format="png" if png else "jpg", jpeg_quality=None if png else q)
    enc = [cv2.IMWRITE_PNG_COMPRESSION, 1] if png else [cv2.IMWRITE_JPEG_QUALITY, q]
    return Capture(np.ascontiguousarray(img), H, visible, params, ".png" if png else ".jpg", enc)


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
    corners = _map(H, _rect(0, 0, ws, hs))
    r = lambda v, d=4: round(float(v), d)  # noqa: E731
    return {"H": H, "screen_corners": np.round(corners, 3).tolist(), "rotation_deg": r(roll),
            "pitch_deg": r(pitch), "yaw_deg": r(yaw), "focal_mm_equiv": r(f_mm, 3), "focal_px": r(f, 3),
            "principal_point": [r(pp[0], 3), r(pp[1], 3)], "distance_screen_px": r(z, 2), "fill": r(fill)}


def _photo(canvas, A, viewport, film_rect, rng, knobs: Knobs, params) -> Capture:
    hs, ws = canvas.shape[:2]
    long_side = int(rng.uniform(1000, 1450))
    portrait = (hs > ws) if rng.random() < 0.8 else (hs <= ws)
    wp, hp = (int(long_side * 0.75), long_side) if portrait else (long_side, int(long_side * 0.75))
    cam = phone_camera(ws, hs, wp, hp, rng, knobs)
    Hsp = cam.pop("H")
    # the screen glows (blacks lifted); the phone's white balance is off (applied here: the
    # background is of random colour anyway)
    lift = rng.uniform(0.02, 0.12)
    cc = knobs.color_cast
    cgain = 1 + np.clip(rng.normal(0, cc, 3), -1.5 * cc, 1.5 * cc)
    m = np.hstack([np.diag(cgain * (1 - lift)), (255 * lift * cgain)[:, None]])
    screen = cv2.transform(canvas, m)
    photo = _background(hp, wp, rng)
    bz = ws * rng.uniform(0.015, 0.05)
    bezel = _map(Hsp, _rect(-bz, -bz, ws + bz, hs + bz))
    cv2.fillConvexPoly(photo, np.round(bezel * 8).astype(np.int32), tuple(int(v) for v in rng.integers(8, 50) + rng.integers(-3, 4, 3)),
                       cv2.LINE_AA, 3)
    cv2.warpPerspective(screen, Hsp, (wp, hp), dst=photo, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)
    applied: dict = {}
    gain = _vignette((hp, wp), v := rng.uniform(0, knobs.vignette))
    if rng.random() < knobs.moire:
        o = rng.uniform(0.05, 1.0) * knobs.moire_opacity
        gain *= _moire(Hsp, (hp, wp), (hs, ws), rng, o)
        applied["moire"] = round(float(o), 4)
    g8 = cv2.convertScaleAbs(gain, alpha=255.0)
    out = cv2.multiply(photo, cv2.merge([g8, g8, g8]), scale=1.0 / 255.0)
    if rng.random() < knobs.glare:
        a = rng.uniform(0.2, 1.0) * knobs.glare_alpha
        gl = cv2.convertScaleAbs(_glare((hp, wp), rng, a * 255))
        out = cv2.add(out, cv2.merge([gl, gl, gl]))
        applied["glare"] = round(float(a), 4)
    applied.update(vignette=round(float(v), 4), color_gain=[round(float(x), 4) for x in cgain])
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
    nsd = rng.uniform(0, knobs.noise_sd)
    out = add_noise(out, nsd, rng)
    q = int(rng.integers(knobs.jpeg_quality_min, 96))
    H = Hsp @ A
    visible = clip_polygon(clip_polygon(_rect(0, 0, wp, hp), _map(Hsp, viewport)), _map(H, film_rect))
    params.update(kind="photo", **cam,
                  blur_sigma=round(float(sigma), 4), noise_sd=round(float(nsd), 4), jpeg_quality=q,
                  format="jpg", **applied)
    return Capture(out, H, visible, params, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, q])


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
