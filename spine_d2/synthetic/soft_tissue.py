"""Soft tissue and organs: the trunk's outline (body habitus) as a line-integral map, and the air
and organs inside it (lungs under their diaphragm domes, heart, trachea, stomach and bowel gas) and
outside it (breasts, buttocks, arms) as solids.

Patient frame (mm, x anterior, y caudal, z lateral). The trunk at height y is a superellipse in
the axial plane between the back and the front skin (x) and ±half its width (z), with a layer of
subcutaneous fat; its chord along the (nearly lateral) ray is closed-form. Organ solids carry
attenuation relative to soft tissue (air and lung < 0); what lies outside the trunk carries the
absolute attenuation of soft tissue.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from spine_d2.levels import LUMBAR, THORACIC
from spine_d2.synthetic.anatomy import Anatomy
from spine_d2.synthetic.solids import (MU_FAT, MU_LUNG, MU_SOFT, SOFT, Solid, cylinder, ellipsoid,
                                       frame)
from spine_d2.synthetic.thorax import chest

AIR = -MU_SOFT  # air, relative to the soft tissue it displaces


@dataclass(frozen=True)
class Habitus:
    """Body build: `girth` scales the chest, `belly` the abdomen and hips (1 average, up to ~1.8
    obese), `fat` the subcutaneous fat (mm), `breasts` in mm of projection (0: none)."""

    girth: float
    belly: float
    fat: float
    breasts: float

    @staticmethod
    def sample(rng: np.random.Generator, size: float) -> "Habitus":
        belly = float(np.clip(rng.lognormal(np.log(1.1), 0.22), 0.8, 1.9))
        breasts = float(rng.uniform(30, 80)) if rng.random() < 0.45 else 0.0
        return Habitus(size * rng.uniform(0.9, 1.1), belly, float(rng.uniform(6, 20) * belly ** 2), breasts)


def _profile(anat: Anatomy, hab: Habitus, rng: np.random.Generator) -> np.ndarray:
    """Rows (y, back x, front x, half width, superellipse exponent) every 5 mm from the neck to the
    thighs: landmark values along the spine, interpolated and smoothed over ~30 mm."""
    b = anat.bodies
    ch = chest(anat, hab.girth)
    y = lambda lv: float(b[lv].corners[:, 1].mean())  # noqa: E731
    post = lambda lv: float(b[lv].corners[[1, 2], 0].mean())  # noqa: E731
    ant = lambda lv: float(b[lv].corners[[0, 3], 0].mean())  # noqa: E731
    hip = anat.pelvis["axis"]
    s1 = b["S1"].corners
    fat = hab.fat
    rows = [(y("C6") - 60, post("C6") - 60, ant("C6") + 55, 55.0, 2.0),
            (y("C7"), post("C7") - 70, ant("C7") + 70, 70.0, 2.0)]
    for i, lv in enumerate(THORACIC):
        xc, yc, a, bb = ch[lv]
        shoulder = max(0.0, 1.0 - abs(i - 1.5) / 3.5) * 60.0 * hab.girth
        rows.append((yc, post(lv) - 68 - 0.4 * fat, xc + a + 12 + 0.6 * fat + (hab.breasts * 0.3 if 3 <= i <= 8 else 0),
                     bb + 12 + shoulder + 0.5 * fat, 2.2))
    for i, lv in enumerate(LUMBAR):
        rows.append((y(lv), post(lv) - 75 - 0.5 * fat - 8 * i, ant(lv) + (70 + 18 * i) * hab.belly + fat,
                     (120 + 8 * i) * hab.belly ** 0.7 + fat, 2.4))
    rows.append((float(s1[:, 1].mean()), float(s1[[1, 2], 0].mean()) - 70 - fat, hip[0] + 100 * hab.belly + fat,
                 155 * hab.belly ** 0.6 + fat, 2.6))
    rows.append((hip[1], hip[0] - 120 - 1.2 * fat, hip[0] + 85 + fat, 165 * hab.belly ** 0.6 + fat, 2.8))
    rows.append((hip[1] + 120, hip[0] - 95 - fat, hip[0] + 80 + fat, 150 * hab.belly ** 0.6 + fat, 2.5))
    rows.append((hip[1] + 450, hip[0] - 60, hip[0] + 70, 120.0, 2.2))
    arr = np.array(rows)
    arr = arr[np.argsort(arr[:, 0])]
    grid = np.arange(arr[0, 0], arr[-1, 0], 5.0)
    out = np.stack([grid] + [np.interp(grid, arr[:, 0], arr[:, k]) for k in range(1, 5)], 1)
    out[:, 1:3] += np.cumsum(rng.normal(0.0, 0.6, (len(grid), 2)), 0)  # skin that is not a drawing
    out[:, 1:] = gaussian_filter1d(out[:, 1:], 6.0, axis=0, mode="nearest")
    return out


def trunk_chords(anat: Anatomy, hab: Habitus, xy: np.ndarray, rng: np.random.Generator,
                 fov: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """Σ μ·chord through the trunk (nats) at mid-plane points `xy` (..., 2) mm, rays taken lateral.
    `fov` (x centre, radius, table top x, table thickness; mm): a CT's round field of view cuts
    the trunk (a chord at most the circle's) and its table lies behind the back."""
    prof = _profile(anat, hab, rng)
    x, y = xy[..., 0], xy[..., 1]
    back, front, half, p = (np.interp(y, prof[:, 0], prof[:, k]) for k in (1, 2, 3, 4))
    out = np.zeros_like(x)
    for shrink, mu in ((0.0, MU_FAT), (hab.fat, MU_SOFT - MU_FAT)):
        xc, a = (back + front) / 2, np.maximum((front - back) / 2 - shrink, 1.0)
        b = np.maximum(half - shrink, 1.0)
        r = np.clip(np.abs(x - xc) / a, 0.0, 1.0)
        chord = 2.0 * b * (1.0 - r ** p) ** (1.0 / p)
        if fov is not None:
            chord = np.minimum(chord, 2.0 * np.sqrt(np.maximum(fov[1] ** 2 - (x - fov[0]) ** 2, 0.0)))
        out += mu * chord
    if fov is not None:  # the table: a carbon-fibre shell seen edge-on, across the whole field
        top, thick = fov[2], fov[3]
        inside = (x < top) & (x > top - thick)
        out += np.where(inside, 0.6 * MU_SOFT * 2.0 * np.sqrt(np.maximum(fov[1] ** 2 - (x - fov[0]) ** 2, 0.0)), 0.0)
    return out


def organs(anat: Anatomy, hab: Habitus, rng: np.random.Generator) -> list[Solid]:
    """Lungs (each cut by its diaphragm dome), heart and great vessels, trachea and bronchi, stomach and bowel gas,
    breasts; all on the SOFT channel."""
    ch = chest(anat, hab.girth)
    x1, y1, a1, b1 = ch["T1"]
    x7, y7, a7, b7 = ch["T7"]
    x10, y10, a10, b10 = ch["T10"]
    out = []
    dome_y = {-1.0: ch["T10"][1] + rng.uniform(-25, 15), 1.0: ch["T10"][1] + rng.uniform(-5, 35)}
    for side in (-1.0, 1.0):  # z < 0: the patient's right (liver: the higher dome)
        top, bottom = y1 - 25.0, dome_y[side] + 60.0
        lung_c = np.array([x7 - 0.12 * a7, (top + bottom) / 2, side * 0.5 * b7])
        semi = np.array([0.92 * a7, (bottom - top) / 2, 0.47 * b7])
        lung = ellipsoid(lung_c, np.eye(3), semi, MU_LUNG - MU_SOFT, SOFT)
        tilt = np.radians(rng.uniform(15, 30))  # the dome reaches lower behind
        rows = np.array([[np.cos(tilt), -np.sin(tilt), 0.0], [np.sin(tilt), np.cos(tilt), 0.0], [0, 0, 1.0]])
        dome_c = np.array([x10 + 0.3 * a10, dome_y[side] + 95.0, side * 0.5 * b10])
        dome = ellipsoid(dome_c, rows, [1.9 * a10, 95.0, 0.55 * b10], 0.0, SOFT)
        cut = ellipsoid(lung_c, np.eye(3), semi, MU_SOFT - MU_LUNG, SOFT)
        cut.quadrics.append(dome.quadrics[0])
        out += [lung, cut]
    heart_c = np.array([x10 + 0.4 * a10, min(dome_y.values()) - 5.0, 15.0])  # resting on the diaphragm
    heart_rows = frame([0.4, -1.0, 0.2], [1.0, 0.0, 0.0])
    heart_semi = np.array([48.0, 58.0, 50.0]) * rng.uniform(0.85, 1.1) * hab.girth
    # the great vessels above it (aorta, pulmonary trunk, caval veins): a softer column up to the
    # thoracic inlet, so that the heart's shadow fades upwards into the mediastinum
    vessels_c = heart_c + [-0.35 * heart_semi[0], -1.3 * heart_semi[1], 0.0]
    vessels_semi = [0.45 * heart_semi[0], max(0.5 * (vessels_c[1] - y1), 30.0) + 0.6 * heart_semi[1], 0.45 * heart_semi[2]]
    for lung in out[0:4:2]:
        for c, rows, semi in ((heart_c, heart_rows, heart_semi), (vessels_c, np.eye(3), vessels_semi)):
            h = ellipsoid(c, rows, semi, MU_SOFT - MU_LUNG, SOFT)
            h.quadrics.append(lung.quadrics[0])
            out.append(h)
    c6 = anat.bodies["C6"].corners
    trach_top = np.array([float(c6[[0, 3], 0].mean()) + 15.0, float(c6[:, 1].min()) - 20.0, 0.0])
    carina = np.array([ch["T5"][0] - 0.1 * ch["T5"][2], ch["T5"][1], 0.0])
    out.append(cylinder(trach_top, carina, (9.0, 8.0), AIR, SOFT))
    for side in (-1.0, 1.0):
        out.append(cylinder(carina, carina + [-10.0, 35.0, side * 35.0], (6.0, 6.0), AIR, SOFT))
    if rng.random() < 0.6:  # gastric air under the left dome
        semi = [rng.uniform(15, 30), rng.uniform(8, 18), rng.uniform(15, 30)]
        out.append(ellipsoid([x10 + 0.4 * a10, dome_y[1.0] + 20.0, 70.0], np.eye(3), semi, AIR, SOFT))
    l1, l5 = anat.bodies["L1"].corners, anat.bodies["L5"].corners
    for _ in range(int(rng.integers(0, 9))):  # bowel gas, small bubbles and colon segments
        c = np.array([rng.uniform(l1[0, 0] + 5, l1[0, 0] + 170 * hab.belly), rng.uniform(l1[0, 1] - 20, l5[3, 1] + 60),
                      rng.uniform(-120, 120)])
        long_axis = rng.normal(0, 1, 3)
        semi = [rng.uniform(5, 14), rng.uniform(5, 14), rng.uniform(8, 40)]  # bubbles and colon segments
        out.append(ellipsoid(c, frame(long_axis, [1.0, 0.0, 0.0]), semi, AIR, SOFT))
    if hab.breasts:
        for side in (-1.0, 1.0):
            c = np.array([x7 + a7 + 10.0, y7 + 15.0, side * 0.45 * b7])
            out.append(ellipsoid(c, np.eye(3), [hab.breasts, hab.breasts * 0.9, hab.breasts * 1.1], MU_SOFT, SOFT))
    return out
