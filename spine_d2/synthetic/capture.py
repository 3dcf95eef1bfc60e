"""How a film reaches the user: a PACS viewer on a monitor, then a phone photo of it or a screenshot.

Frames: the film (radiograph frame, px) → the screen canvas (px) by the viewer's affine display
transform (`spine_d2.synthetic.screen`) → the output image (px) by a crop/resize (screenshot, a
similarity) or a pinhole camera's view of the flat screen (photo of the monitor,
`spine_d2.synthetic.phone`). `Capture.H` is the composed 3×3 homography radiograph → image and
`Capture.visible` the convex polygon (image frame) where the film can be seen at all: the image ∩
the viewer's viewport ∩ the displayed film. Artefacts follow CheXphoto (Phillips 2020): tilt,
rotation, crop, bezel and desk, moiré, glare, vignetting, blur, noise, colour cast, JPEG; the
screen adds PACS corner text, toolbar, ruler, cursor and letterboxing.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from spine_d2.frames import apply_homography
from spine_d2.polygons import polygon_area
from spine_d2.synthetic.knobs import Knobs
from spine_d2.synthetic.phone import photograph
from spine_d2.synthetic.screen import rect, show_on_screen

__all__ = ["Capture", "capture", "clip_polygon", "inside_depth", "polygon_area"]


@dataclass
class Capture:
    image: np.ndarray  # BGR uint8
    H: np.ndarray  # 3×3 radiograph → image
    visible: np.ndarray  # (k, 2) convex polygon, image frame
    params: dict
    ext: str  # ".jpg" or ".png"
    encode: list  # cv2.imencode params


def clip_polygon(subject: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """Sutherland–Hodgman: `subject` (any simple polygon) ∩ `clip` (convex). Inside vertices are kept
    exactly (the same coordinates, in order), so a vertex inside the clip region stays a vertex and
    a seed gives the same Labelme polygons: shapely's intersection renumbers and rounds them."""
    clip = np.asarray(clip, float)
    area2 = np.sum(clip[:, 0] * np.roll(clip[:, 1], -1) - np.roll(clip[:, 0], -1) * clip[:, 1])
    orient = 1.0 if area2 > 0 else -1.0
    out = [np.asarray(p, float) for p in subject]
    for i in range(len(clip)):
        a, b = clip[i], clip[(i + 1) % len(clip)]
        inp, out = out, []
        if not inp:
            break
        pts = np.array(inp)  # each vertex's side of the edge a→b, all at once (the same arithmetic)
        sides = orient * ((b[0] - a[0]) * (pts[:, 1] - a[1]) - (b[1] - a[1]) * (pts[:, 0] - a[0]))
        prev, sp = inp[-1], sides[-1]
        for cur, sc in zip(inp, sides):
            if sc >= 0:
                if sp < 0:
                    out.append(prev + (cur - prev) * (sp / (sp - sc)))
                out.append(cur)
            elif sp >= 0:
                out.append(prev + (cur - prev) * (sp / (sp - sc)))
            prev, sp = cur, sc
    return np.array(out).reshape(-1, 2)


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


def capture(film: np.ndarray, rng: np.random.Generator, knobs: Knobs) -> Capture:
    """A screenshot or a phone photo of `film` (uint8 grey) shown in a PACS viewer."""
    canvas, A, viewport, params = show_on_screen(film, rng, knobs)
    hf, wf = film.shape[:2]
    film_rect = rect(0, 0, wf, hf)
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
    visible = clip_polygon(clip_polygon(rect(0, 0, w, h), apply_homography(S, viewport)), apply_homography(H, film_rect))
    png = rng.random() < 0.5
    q = int(rng.integers(80, 96))
    params.update(kind="screenshot", crop=[x0, y0, x1, y1], scale=round(float(f), 5),
                  format="png" if png else "jpg", jpeg_quality=None if png else q)
    enc = [cv2.IMWRITE_PNG_COMPRESSION, 1] if png else [cv2.IMWRITE_JPEG_QUALITY, q]
    return Capture(np.ascontiguousarray(img), H, visible, params, ".png" if png else ".jpg", enc)


def _photo(canvas, A, viewport, film_rect, rng, knobs: Knobs, params) -> Capture:
    out, Hsp, photo_params = photograph(canvas, rng, knobs)
    hp, wp = out.shape[:2]
    H = Hsp @ A
    visible = clip_polygon(clip_polygon(rect(0, 0, wp, hp), apply_homography(Hsp, viewport)),
                           apply_homography(H, film_rect))
    params.update(photo_params)
    return Capture(out, H, visible, params, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, photo_params["jpeg_quality"]])
