"""X-ray-like rendering of an `Anatomy` given in the radiograph frame (pixels of the film).

Attenuation is summed from soft tissue (a blurred body outline, darker lungs, shoulders and hips
thicker), bone (vertebral bodies with trabecular power-law texture and a denser cortical rim,
posterior elements, sacrum, ilium, ischium, femora, femoral heads, double-contoured ribs); then
I = 1 − exp(−μA), a scatter veil, detector unsharpness and edge enhancement, quantum noise and a
random window/level/gamma. Output: uint8 grey image, bright = dense, like a PACS display.
"""
from __future__ import annotations

import cv2
import numpy as np

from spine_d2.synthetic.anatomy import Anatomy
from spine_d2.synthetic.knobs import Knobs


def fractal_noise(rng: np.random.Generator, shape: tuple[int, int], beta: float = 2.6,
                  base: int = 256) -> np.ndarray:
    """Power-law (1/f^β) noise, zero mean, unit SD, float32 of `shape` (made at `base` and resized)."""
    h, w = shape
    bh, bw = max(16, int(base * h / max(h, w))), max(16, int(base * w / max(h, w)))
    fy = np.fft.fftfreq(bh)[:, None]
    fx = np.fft.rfftfreq(bw)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    amp = f ** (-beta / 2)
    amp[0, 0] = 0.0
    phase = rng.uniform(0, 2 * np.pi, amp.shape)
    field = np.fft.irfft2(amp * np.exp(1j * phase), s=(bh, bw)).astype(np.float32)
    field = (field - field.mean()) / (field.std() + 1e-6)
    return cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)


def _poly(p: np.ndarray) -> list[np.ndarray]:
    return [np.round(np.asarray(p) * 8).astype(np.int32)]


def _fill(img: np.ndarray, polys, value: float) -> None:
    cv2.fillPoly(img, [q for p in polys for q in _poly(p)], float(value), lineType=cv2.LINE_AA, shift=3)


def _outline(img: np.ndarray, polys, value: float, thickness: int) -> None:
    cv2.polylines(img, [q for p in polys for q in _poly(p)], True, float(value), max(1, thickness), cv2.LINE_AA, 3)


def _thick_outline(line: np.ndarray, half_width: float) -> np.ndarray:
    """Closed outline of a polyline widened to ±`half_width` (a bone shaft)."""
    d = np.gradient(np.asarray(line, float), axis=0)
    n = np.stack([-d[:, 1], d[:, 0]], 1) / (np.linalg.norm(d, axis=1, keepdims=True) + 1e-9) * half_width
    return np.vstack([line + n, (line - n)[::-1]])


def render_radiograph(anat: Anatomy, size: tuple[int, int], px_per_mm: float,
                      rng: np.random.Generator, knobs: Knobs) -> np.ndarray:
    """The film (uint8, `size` = (height, width)) of `anat` (radiograph frame, px)."""
    h, w = size
    mm = px_per_mm
    # --- soft tissue at quarter resolution (it is smooth) ---------------------------------------
    q = 0.25
    sh, sw = max(8, int(h * q)), max(8, int(w * q))
    soft = np.zeros((sh, sw), np.float32)
    _fill(soft, [anat.skin * q], 1.0)
    extra = np.zeros_like(soft)
    if anat.lungs is not None:
        _fill(extra, [anat.lungs * q], -0.55)
        _fill(extra, [anat.heart * q], 0.35)
    for cx, cy, r in anat.heads:  # hips, thighs and buttocks are thick
        cv2.ellipse(extra, (int(cx * q), int(cy * q)), (int(5 * r * q), int(4 * r * q)), 0, 0, 360, 0.45, -1)
    t2 = anat.bodies["T2"].superior.mean(axis=0)
    lum = anat.bodies["L3"].superior
    ant = np.sign(lum[0][0] - lum[1][0])
    for _ in range(int(rng.integers(0, 7))):  # bowel gas in front of the lumbar spine
        c = lum[0] + [ant * rng.uniform(20, 140) * mm, rng.uniform(-60, 120) * mm]
        cv2.ellipse(extra, (int(c[0] * q), int(c[1] * q)), (int(rng.uniform(8, 30) * mm * q), int(rng.uniform(6, 20) * mm * q)),
                    float(rng.uniform(0, 180)), 0, 360, -0.5, -1)
    cv2.ellipse(extra, (int(t2[0] * q), int((t2[1] + 20 * mm) * q)), (int(110 * mm * q), int(70 * mm * q)),
                0, 0, 360, 0.7, -1)  # shoulders over the upper thoracic spine
    extra += 0.12 * fractal_noise(rng, (sh, sw), beta=2.4, base=64)  # fat, bowel content
    soft = cv2.GaussianBlur(soft, (0, 0), 12 * mm * q) + cv2.GaussianBlur(soft * 0 + extra, (0, 0), 18 * mm * q) * soft
    soft = cv2.resize(soft, (w, h), interpolation=cv2.INTER_LINEAR)

    # --- bone -----------------------------------------------------------------------------------
    trab = fractal_noise(rng, (h, w), beta=rng.uniform(1.2, 1.7), base=384)
    cortex = max(1, int(round(rng.uniform(0.9, 1.5) * mm)))
    dense = np.zeros((h, w), np.float32)  # bodies, sacrum, femora, heads
    light = np.zeros((h, w), np.float32)  # posterior elements, ilium, ischium, ribs (adds on top)
    rims = np.zeros((h, w), np.float32)  # cortical outlines
    femora = [_thick_outline(fm, 13 * mm) for fm in anat.femora]
    # sclerotic, slightly concave endplates
    plates = []
    for b in anat.bodies.values():
        for ep, sag in ((b.superior, 1.0), (b.inferior, -1.0)):
            d = ep[0] - ep[1]
            nrm = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-9)
            nrm *= np.sign(nrm[1]) * sag  # into the body: down for the superior plate
            mid = (ep[0] + ep[1]) / 2 + nrm * rng.uniform(0.3, 1.2) * mm
            plates.append(np.array([ep[0], (ep[0] + mid) / 2 + nrm * 0.2 * mm, mid, (ep[1] + mid) / 2 + nrm * 0.2 * mm, ep[1]]))
    # aortic calcification in front of the lumbar spine (older patients)
    if rng.random() < 0.3:
        side = np.sign(anat.bodies["L3"].superior[0][0] - anat.bodies["L3"].superior[1][0])
        for lv in ("L1", "L2", "L3", "L4"):
            a = anat.bodies[lv].superior[0] + [side * rng.uniform(12, 22) * mm, rng.uniform(0, 20) * mm]
            if rng.random() < 0.6:
                cv2.ellipse(rims, (int(a[0] * 8), int(a[1] * 8)), (int(rng.uniform(1, 2.5) * mm * 8), int(rng.uniform(3, 9) * mm * 8)),
                            0.0, 0, 360, 0.35, -1, cv2.LINE_AA, 3)
    _fill(light, [b.posterior for b in anat.bodies.values() if b.posterior is not None], 0.12)
    _fill(light, anat.ilium, 0.08)
    _fill(light, anat.ischium, 0.1)
    _fill(dense, [anat.sacrum], 0.24)
    _fill(dense, femora, 0.3)
    _fill(dense, [b.polygon for b in anat.bodies.values()], 0.3)
    _outline(rims, [b.polygon for b in anat.bodies.values()] + [anat.sacrum], 0.32, cortex)
    cv2.polylines(rims, [q for p in plates for q in _poly(p)], False, 0.3, max(1, cortex), cv2.LINE_AA, 3)
    _outline(rims, [b.posterior for b in anat.bodies.values() if b.posterior is not None], 0.07, cortex)
    _outline(rims, anat.ilium + anat.ischium, 0.16, cortex)
    _outline(rims, femora, 0.45, cortex + 1)
    for cx, cy, r in anat.heads:
        c = (int(round(cx * 8)), int(round(cy * 8)))
        cv2.circle(dense, c, int(round(r * 8)), 0.2, -1, cv2.LINE_AA, 3)
        cv2.circle(rims, c, int(round(r * 8)), 0.14, cortex, cv2.LINE_AA, 3)
        cv2.ellipse(rims, c, (int(round((r + 3 * mm) * 8)),) * 2, 0.0, 180.0 + rng.uniform(-40, 0),
                    360.0 + rng.uniform(0, 40), 0.15, max(1, cortex // 2), cv2.LINE_AA, 3)  # acetabular roof
    width = anat.rib_width
    for rb in anat.ribs:
        n = np.gradient(rb, axis=0)
        n = np.stack([-n[:, 1], n[:, 0]], 1) / (np.linalg.norm(n, axis=1, keepdims=True) + 1e-9) * width / 2
        for part, val in zip(np.array_split(np.arange(len(rb)), 3), (1.0, 0.6, 0.25)):
            sl = slice(max(0, part[0] - 1), part[-1] + 1)
            cv2.polylines(light, _poly(rb[sl]), False, 0.04 * val, max(2, int(width)), cv2.LINE_AA, 3)
            cv2.polylines(rims, _poly(rb[sl] + n[sl]) + _poly(rb[sl] - n[sl]), False, 0.22 * val, cortex, cv2.LINE_AA, 3)
    dens = dense * (1 + 0.22 * trab) + light * (1 + 0.3 * trab) + rims
    dens = cv2.GaussianBlur(dens, (0, 0), 0.5 + 0.25 * mm)

    # --- X-ray image formation (display ∝ attenuation, as a PACS shows a digital film) ---------
    a = 0.55 * soft * np.float32(rng.uniform(0.8, 1.2)) + dens
    s = rng.uniform(0.3, 1.0) * knobs.scatter
    veil = cv2.resize(cv2.GaussianBlur(cv2.resize(a, (sw, sh), interpolation=cv2.INTER_AREA), (0, 0), 8),
                      (w, h), interpolation=cv2.INTER_LINEAR)
    a = (1 - s) * a + s * veil
    unsharp = cv2.GaussianBlur(a, (0, 0), 1.0 + 1.5 * rng.random())
    a = a + np.float32(rng.uniform(0.0, 1.0)) * (a - unsharp)  # PACS edge enhancement
    img = 1.0 - np.exp(-np.float32(rng.uniform(0.8, 1.3)) * a)
    qn = knobs.quantum_noise * rng.uniform(0.4, 1.0)
    cv2.setRNGSeed(int(rng.integers(2**31)))
    noise = np.empty((h, w), np.float32)
    cv2.randn(noise, 0.0, float(qn))
    img += noise
    # window / level from the image's own range, jittered
    j = knobs.exposure_jitter
    sub = img[::7, ::7]
    p_soft, p_top = np.percentile(sub, [45.0, 99.9])
    lo = np.float32(p_soft * rng.uniform(0.2, 0.7 + j))
    hi = np.float32(max(p_top * rng.uniform(1.0 - 0.5 * j, 1.12), lo + 0.05))
    img = np.clip((img - lo) / (hi - lo), 0, 1)
    img = img ** np.float32(np.exp(rng.normal(0.15, 0.4 * j + 0.05)))
    out = (img * 255).astype(np.uint8)
    # lead marker (L/R), burned into the film
    if rng.random() < 0.7:
        x0, y0 = int(w * rng.uniform(0.05, 0.8)), int(h * rng.uniform(0.03, 0.12))
        cv2.rectangle(out, (x0, y0), (x0 + int(14 * mm), y0 + int(16 * mm)), 235, -1)
        cv2.putText(out, "L" if rng.random() < 0.5 else "R", (x0 + int(2.5 * mm), y0 + int(13 * mm)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4 * mm, 20, max(1, int(mm)), cv2.LINE_AA)
    return out


#: views of the film and the share of partial views each takes
VIEWS = {"full": 0.0, "lumbopelvic": 0.45, "thoracolumbar": 0.35, "thoracic": 0.2}


def frame_film(anat_mm: Anatomy, rng: np.random.Generator, knobs: Knobs,
               mirror: bool) -> tuple[str, np.ndarray, tuple[int, int], float]:
    """Pick a view and collimate the film around it: (view, M mm→px 3×3, (height, width), px/mm).

    `full` runs from the lower cervical spine to below the femoral heads; `lumbopelvic` starts
    below T5 (TK not measurable); `thoracolumbar` stops above the femoral heads (PT, PI not
    measurable); `thoracic` stops in the upper lumbar spine (LL, SS, PT, PI not measurable).
    """
    p = knobs.partial_fraction
    names = list(VIEWS)
    probs = np.array([1.0 - p] + [p * VIEWS[v] for v in names[1:]])
    view = names[int(rng.choice(len(names), p=probs / probs.sum()))]
    b = anat_mm.bodies
    top_y = lambda lv: float(b[lv].polygon[:, 1].min())  # noqa: E731
    bot_y = lambda lv: float(b[lv].polygon[:, 1].max())  # noqa: E731
    heads_bottom = float((anat_mm.heads[:, 1] + anat_mm.heads[:, 2]).max())
    heads_top = float((anat_mm.heads[:, 1] - anat_mm.heads[:, 2]).min())
    if view == "full":
        y0, y1 = top_y("C6") - rng.uniform(5, 30), heads_bottom + rng.uniform(10, 60)
    elif view == "lumbopelvic":
        y0, y1 = top_y(str(rng.choice(["T9", "T10", "T11"]))) - rng.uniform(5, 20), heads_bottom + rng.uniform(15, 80)
    elif view == "thoracolumbar":
        y0 = top_y(str(rng.choice(["T1", "T2", "T3"]))) - rng.uniform(5, 20)
        y1 = min(bot_y("S1") + rng.uniform(5, 30), heads_top - 8.0)
    else:
        y0, y1 = top_y("T1") - rng.uniform(10, 30), bot_y(str(rng.choice(["L2", "L3"]))) + rng.uniform(5, 25)
    inside = [lv for lv in b if top_y(lv) < y1 and bot_y(lv) > y0]
    pts = np.vstack([b[lv].polygon for lv in inside] + [b[lv].posterior for lv in inside if b[lv].posterior is not None])
    if view in ("full", "lumbopelvic"):
        pts = np.vstack([pts, anat_mm.heads[:, :2] + [[30.0, 0.0]]])
    x0, x1 = pts[:, 0].min() - rng.uniform(40, 90), pts[:, 0].max() + rng.uniform(50, 120)
    height = y1 - y0
    aspect = rng.uniform(0.4, 0.9)  # width / height of the film
    if (x1 - x0) < aspect * height:
        extra = aspect * height - (x1 - x0)
        f = rng.uniform(0.3, 0.7)
        x0, x1 = x0 - f * extra, x1 + (1 - f) * extra
    width = x1 - x0
    long_px = rng.uniform(720, 1050)
    k = long_px / max(height, width)
    W, H = int(round(width * k)), int(round(height * k))
    if mirror:
        M = np.array([[-k, 0.0, W + k * x0], [0.0, k, -k * y0], [0, 0, 1]])
    else:
        M = np.array([[k, 0.0, -k * x0], [0.0, k, -k * y0], [0, 0, 1]])
    return view, M, (H, W), k
