"""The PACS viewer on the monitor: the film shown in a viewport, with toolbar, thumbnails, ruler, corner text and cursor.

Frames: the film (radiograph frame, px) → the screen canvas (px) by the viewer's affine display
transform (`show_on_screen`'s `A`: scale and shift, the film upright). What a screenshot or a
phone photo then makes of the canvas is `spine_d2.synthetic.capture`'s.
"""
from __future__ import annotations

import cv2
import numpy as np

from spine_d2.synthetic.knobs import Knobs

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_NAMES = ("DOE^JANE", "SMITH^J", "MULLER^K", "ROSSI^M", "TANAKA^Y", "SILVA^A", "NOVAK^P", "ANON^0427")
_STUDIES = ("XR SPINE LAT", "XR LUMBAR SPINE 2V", "XR WHOLE SPINE STANDING", "XR THORACOLUMBAR LAT",
            "RX COLONNE TOTALE PROFIL", "XR L-SPINE FLEX/EXT")
_SITES = ("CITY HOSPITAL", "ORTHO CLINIC", "RADIOLOGY DEPT", "UNIV. MED. CENTER", "SPINE CENTER")


def rect(x0, y0, x1, y1) -> np.ndarray:
    """The corners of an axis-aligned rectangle, clockwise on screen from the top left."""
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)


def _layout(film_shape, rng: np.random.Generator, knobs: Knobs) -> dict:
    """Screen size, viewer chrome (toolbar height `top`, thumbnail column `left`, px) and the
    display scale `s` and shift (tx, ty) of the film on the screen."""
    aspect = float(rng.choice([16 / 9, 16 / 10, 4 / 3, 5 / 4, 3 / 4, 9 / 16]))  # portrait PACS monitors
    long_side = rng.uniform(1000, 1400)
    ws, hs = (long_side, long_side / aspect) if aspect >= 1 else (long_side * aspect, long_side)
    ws, hs = int(ws), int(hs)
    ui = rng.random() < knobs.ui
    top = int(hs * rng.uniform(0.03, 0.06)) if ui else 0
    left = int(ws * rng.uniform(0.06, 0.12)) if ui and rng.random() < 0.5 else 0
    vx0, vy0, vx1, vy1 = left, top, ws, hs
    hf, wf = film_shape[:2]
    s = min((vx1 - vx0) / wf, (vy1 - vy0) / hf) * (1.0 + rng.uniform(0.0, knobs.zoom) if rng.random() < 0.6 else 1.0)
    dw, dh = wf * s, hf * s
    tx = vx0 + ((vx1 - vx0) - dw) * rng.uniform(0.2, 0.8) if dw < vx1 - vx0 else vx0 - (dw - (vx1 - vx0)) * rng.random()
    ty = vy0 + ((vy1 - vy0) - dh) * rng.uniform(0.2, 0.8) if dh < vy1 - vy0 else vy0 - (dh - (vy1 - vy0)) * rng.random()
    return dict(ws=ws, hs=hs, ui=ui, top=top, left=left, viewport=(vx0, vy0, vx1, vy1), s=s, tx=tx, ty=ty)


def _chrome(canvas: np.ndarray, film: np.ndarray, rng: np.random.Generator, lay: dict) -> None:
    """The viewer's toolbar, thumbnail column and ruler, drawn on the canvas."""
    hs, ws, top, left = lay["hs"], lay["ws"], lay["top"], lay["left"]
    vx0, vy0, vx1, vy1 = lay["viewport"]
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
        for k, y in enumerate(range(vy0 + int(hs * 0.2), vy1 - int(hs * 0.2), max(4, int(10 * lay["s"])))):
            cv2.line(canvas, (x, y), (x - (12 if k % 5 == 0 else 6), y), (200, 200, 200), 1)


def _cursor(canvas: np.ndarray, rng: np.random.Generator, viewport) -> None:
    vx0, vy0, vx1, vy1 = viewport
    cx, cy = rng.uniform(vx0, vx1), rng.uniform(vy0, vy1)
    arrow = np.array([[0, 0], [0, 17], [4, 13], [7, 20], [9, 19], [6, 12], [12, 12]], np.float64) * canvas.shape[0] / 900
    cv2.fillPoly(canvas, [np.round(arrow + [cx, cy]).astype(np.int32)], (255, 255, 255))
    cv2.polylines(canvas, [np.round(arrow + [cx, cy]).astype(np.int32)], True, (0, 0, 0), 1)


def show_on_screen(film: np.ndarray, rng: np.random.Generator, knobs: Knobs):
    """The viewer on the screen: (canvas BGR, display affine 3×3 film → canvas, viewport rect, params)."""
    lay = _layout(film.shape, rng, knobs)
    hs, ws, s = lay["hs"], lay["ws"], lay["s"]
    vx0, vy0, vx1, vy1 = lay["viewport"]
    canvas = np.zeros((hs, ws, 3), np.uint8)
    A = np.array([[s, 0.0, lay["tx"]], [0.0, s, lay["ty"]], [0.0, 0.0, 1.0]])
    T = np.array([[1.0, 0.0, -vx0], [0.0, 1.0, -vy0], [0.0, 0.0, 1.0]]) @ A
    view = cv2.warpAffine(film, T[:2], (vx1 - vx0, vy1 - vy0), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    canvas[vy0:vy1, vx0:vx1] = view[:, :, None]
    if lay["ui"]:
        _chrome(canvas, film, rng, lay)
    params = {"screen": [ws, hs], "viewport": [vx0, vy0, vx1, vy1], "display_scale": round(float(s), 5)}
    if rng.random() < knobs.text:
        _corner_text(canvas, (vx0, vy0, vx1, vy1), rng, s)
    if lay["ui"] and rng.random() < 0.5:  # mouse cursor
        _cursor(canvas, rng, lay["viewport"])
    return canvas, A, rect(vx0, vy0, vx1, vy1), params


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


