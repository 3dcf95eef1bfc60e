"""Image formation and a CR/DR system's processing: line integrals (nats) → the displayed film (uint8).

Beer–Lambert with the heel effect, scatter (single scatter from the patient: a blurred A·e^−A,
behind an anti-scatter grid on most films), quantum noise,
detector blur, then the log image and what CR/DR consoles do to it: large-kernel unsharp masking
(equalisation), edge enhancement, window/level from the exposed field, a sigmoid LUT; stitched
films get a gain step and a seam per exposure. Bone is bright. Frames: film pixels; lengths given
in mm use `px_per_mm`.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from spine_d2.synthetic.knobs import Knobs


def fractal_noise(rng: np.random.Generator, shape: tuple[int, int], beta: float = 2.6,
                  base: int = 256, stretch: float = 1.0) -> np.ndarray:
    """Power-law (1/f^β) noise, zero mean, unit SD, float32 of `shape` (made at `base` and resized);
    `stretch` > 1 elongates its grain along y (trabeculae along the spine)."""
    h, w = shape
    bh, bw = max(16, int(base * h / max(h, w))), max(16, int(base * w / max(h, w)))
    fy = np.fft.fftfreq(bh)[:, None] * stretch
    fx = np.fft.rfftfreq(bw)[None, :]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    amp = f ** (-beta / 2)
    amp[0, 0] = 0.0
    phase = rng.uniform(0, 2 * np.pi, amp.shape)
    field = np.fft.irfft2(amp * np.exp(1j * phase), s=(bh, bw)).astype(np.float32)
    field = (field - field.mean()) / (field.std() + 1e-6)
    return cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)


def lowpass(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur of SD `sigma_px`; a wide one computed at reduced size (it is smooth)."""
    f = int(max(1, sigma_px // 6))
    if f == 1:
        return cv2.GaussianBlur(img, (0, 0), sigma_px)
    h, w = img.shape
    small = cv2.resize(img, (max(4, w // f), max(4, h // f)), interpolation=cv2.INTER_AREA)
    return cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma_px / f), (w, h), interpolation=cv2.INTER_LINEAR)


@dataclass(frozen=True)
class Exposure:
    """How the film was taken and processed (sampled per film)."""

    photons: float  # quanta per pixel behind the thickest part of the spine (sets the noise)
    scatter: float  # scatter per nat of patient: scatter-to-primary ratio ≈ scatter × A (grid: low)
    heel: float  # relative intensity change from top to bottom
    blur_mm: float  # detector unsharpness, SD in mm
    equalise: float  # strength of the large-kernel unsharp mask (0: none, a plain DRR look)
    equalise_mm: float
    detail: float  # gain of the mid frequencies (bone edges), multiscale processing
    detail_mm: float
    enhance: float  # small-kernel edge enhancement
    window: tuple[float, float]  # low/high quantiles of the exposed field mapped to black/white
    gamma: float
    sigmoid: float  # 0: linear LUT
    seams: tuple[int, ...]  # film rows where a stitched film's exposures meet

    @staticmethod
    def sample(rng: np.random.Generator, knobs: Knobs, seams=()) -> "Exposure":
        j = knobs.exposure_jitter
        plain = rng.random() < 0.1  # little processing, as a DRR or a film from an old console looks
        return Exposure(
            photons=float(np.exp(rng.uniform(np.log(300), np.log(6000)))) / max(knobs.quantum_noise / 0.02, 0.05) ** 2,
            scatter=float((rng.uniform(0.02, 0.15) if rng.random() < 0.85 else rng.uniform(0.15, 0.4))
                          * knobs.scatter / 0.3),  # with a grid; without one
            heel=float(rng.uniform(-0.25, 0.25)),
            blur_mm=float(rng.uniform(0.15, 0.9) if rng.random() < 0.85 else rng.uniform(0.9, 2.0)),
            equalise=float(rng.uniform(0.3, 0.6) if plain else rng.uniform(0.75, 0.97)),
            equalise_mm=float(rng.uniform(30, 60) if plain else rng.uniform(12, 40)),
            detail=float(rng.uniform(0.0, 0.3) if plain else rng.uniform(0.3, 1.2)),
            detail_mm=float(rng.uniform(2.0, 6.0)),
            enhance=0.0 if plain else float(rng.uniform(0.0, 0.5)),
            window=(float(rng.uniform(0.003, 0.06 + 0.3 * j)), float(rng.uniform(0.99, 0.9995))),
            gamma=float(np.exp(rng.normal(0.0, 0.25 * j + 0.1))),
            sigmoid=float(rng.uniform(0.0, 4.0)),
            seams=tuple(int(s) for s in seams),
        )


    @staticmethod
    def drr(rng: np.random.Generator) -> "Exposure":
        """A DRR of a CT: no quanta to count, no scatter, no heel; a plain window on the log image."""
        return Exposure(photons=1e9, scatter=0.0, heel=0.0, blur_mm=float(rng.uniform(0.2, 0.8)),
                        equalise=float(rng.uniform(0.0, 0.5)), equalise_mm=float(rng.uniform(20, 60)), detail=0.0,
                        detail_mm=3.0, enhance=0.0, window=(float(rng.uniform(0.002, 0.05)), float(rng.uniform(0.99, 0.9995))),
                        gamma=float(np.exp(rng.normal(0.0, 0.2))), sigmoid=float(rng.uniform(0.0, 3.0)), seams=())


def develop(A: np.ndarray, exposed: np.ndarray, region: np.ndarray, px_per_mm: float, exp: Exposure,
            rng: np.random.Generator, gains: np.ndarray | None = None) -> np.ndarray:
    """The displayed film (uint8) of line integrals `A` (nats, film px); `exposed`: bool mask of
    the collimated field; `region`: where the window is set (the spine and its surroundings, as a
    radiographer or the console's histogram analysis would); `gains`: per-row log gain offsets."""
    h, w = A.shape
    heel = 1.0 + exp.heel * (np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None])
    body = exposed & region
    body = body if body.sum() > 0.02 * body.size else exposed
    primary = np.exp(-A) * heel
    if gains is not None:
        primary *= np.exp(gains)[:, None].astype(np.float32)
    # scatter arises in the patient (none from the open beam or outside the collimation): single
    # scatter from a slab of A nats reaching the detector goes as A·e^−A, spread ~40 mm
    source = np.where(exposed, A * np.exp(-A) * heel, 0.0).astype(np.float32)
    signal = primary + exp.scatter * lowpass(source, 40.0 * px_per_mm)
    ref = float(np.percentile(signal[exposed], 5)) if exposed.any() else float(signal.min())
    n0 = exp.photons / max(ref, 1e-6)  # quanta per unit signal
    cv2.setRNGSeed(int(rng.integers(2**31)))
    noise = np.empty((h, w), np.float32)
    cv2.randn(noise, 0.0, 1.0)
    quanta = np.maximum(signal * n0 + np.sqrt(np.maximum(signal * n0, 1e-3)) * noise, 0.5)
    quanta = cv2.GaussianBlur(quanta, (0, 0), max(exp.blur_mm * px_per_mm, 0.3))
    p = -np.log(quanta / n0)
    if exp.equalise:
        low = lowpass(p, exp.equalise_mm * px_per_mm)
        p = p - exp.equalise * (low - float(np.median(low[body])))
    if exp.detail:
        p = p + exp.detail * (p - lowpass(p, exp.detail_mm * px_per_mm))
    if exp.enhance:
        p = p + exp.enhance * (p - cv2.GaussianBlur(p, (0, 0), 1.2))
    lo, hi = np.quantile(p[body][::7], exp.window)
    x = np.clip((p - lo) / max(hi - lo, 1e-6), 0.0, 1.0) ** exp.gamma
    if exp.sigmoid:
        k = exp.sigmoid
        x = (1 / (1 + np.exp(-k * (x - 0.5))) - 1 / (1 + np.exp(k / 2))) / (1 / (1 + np.exp(-k / 2)) - 1 / (1 + np.exp(k / 2)))
    for s in exp.seams:  # stitching: a faint blend line
        if rng.random() < 0.6:
            x[max(s - 1, 0):s + 1] = np.clip(x[max(s - 1, 0):s + 1] * rng.uniform(0.93, 1.07), 0, 1)
    x[~exposed] = 1.0 if rng.random() < 0.5 else 0.0  # outside the collimation: unexposed or shuttered
    return (x * 255 + 0.5).astype(np.uint8)
