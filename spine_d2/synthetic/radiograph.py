"""A lateral spine radiograph of a 3-D patient: framing, beam geometry, projection, film, labels.

The sagittal plan (`anatomy`) is thickened into solids (`scene`), projected by a divergent beam
(`projection`: one source per exposure — single films at 100–150 cm, stitched full-spine films of
2–3 exposures at ~180 cm, or a slot scanner, parallel along the spine) and developed like a CR/DR
film (`film`). Labels come from the same geometry: each body's outline is the shadow of its
outline solid, an endplate the projection of its rim points in the level's mid-sagittal plane, a
femoral head the projected sphere. Frames: patient mm → film px (radiograph frame) through the
mid-plane matrix `M` of `frame_film` and the beam.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from spine_d2.levels import LEVELS
from spine_d2.synthetic.anatomy import Anatomy, Body, Patient
from spine_d2.synthetic.film import Exposure, develop, fractal_noise, lowpass
from spine_d2.synthetic.knobs import Knobs
from spine_d2.synthetic.pathology import Pathology
from spine_d2.synthetic.projection import Beam, Geometry, line_integrals, magnification, project, silhouette
from spine_d2.synthetic.scene import Scene, build_scene
from spine_d2.synthetic.soft_tissue import trunk_chords
from spine_d2.synthetic.solids import BONE, METAL, SOFT, TRABECULAR

SOFT_SCALE = 0.25  # soft tissue and organs are smooth: rendered at a quarter of the film's pixels


@dataclass
class Film:
    image: np.ndarray  # uint8 (H, W), bone bright
    labels: Anatomy  # labelled bodies (outline, endplates) and femoral heads, film px
    geometry: Geometry
    info: dict


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


def beams(view: str, M: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> tuple[tuple[Beam, ...], dict]:
    """Exposures forming the film: (beams, description). Full-spine films are stitched from 2–3
    exposures at ~180 cm or slot-scanned (parallel along y); partial views are single exposures."""
    h, w = size
    Minv = np.linalg.inv(M)
    mid = lambda u, v: Minv[:2, :2] @ [u, v] + Minv[:2, 2]  # noqa: E731
    oid = rng.uniform(140.0, 260.0)  # mid-sagittal plane to detector, mm
    kind = "single"
    if view == "full":
        kind = str(rng.choice(["stitched", "slot", "single"], p=[0.55, 0.25, 0.2]))
    sid = rng.uniform(1700.0, 1850.0) if view == "full" else rng.uniform(1000.0, 1500.0)
    sz = sid - oid
    if kind == "stitched":
        n = int(rng.choice([2, 3]))
        cuts = np.linspace(0, h, n + 1).round().astype(int)
        cuts[1:-1] += rng.integers(-h // 12, h // 12, n - 1)
        out = tuple(Beam((*mid(w * rng.uniform(0.4, 0.6), (a + b) / 2), sz), (int(a), int(b)))
                    for a, b in zip(cuts[:-1], cuts[1:]))
    elif kind == "slot":
        step = 24
        cx = mid(w * rng.uniform(0.4, 0.6), 0)[0]
        out = tuple(Beam((cx, mid(0, min(v + step / 2, h))[1], sz), (v, min(v + step, h))) for v in range(0, h, step))
    else:
        out = (Beam((*mid(w * rng.uniform(0.35, 0.65), h * rng.uniform(0.4, 0.6)), sz), (0, h)),)
    return out, {"exposure": kind, "sid_mm": round(float(sid), 1), "oid_mm": round(float(oid), 1)}


def _labels(scene: Scene, geom: Geometry) -> Anatomy:
    """Film-px ground truth: each labelled body's shadow outline and endplates, the femoral heads."""
    bodies = {}
    for lv in LEVELS:
        if lv not in scene.outlines:
            continue
        poly = silhouette(scene.outlines[lv], geom)
        if poly is None or len(poly) < 3:
            continue
        sup, inf = (project(geom, scene.rims[lv][side]) for side in ("superior", "inferior"))
        bodies[lv] = Body(poly, sup, inf)
    heads = np.array([[*project(geom, [h[:3]])[0], h[3] * magnification(geom, h[:3])] for h in scene.heads])
    return Anatomy(bodies, heads.reshape(-1, 3), np.zeros((0, 2)))


def _attenuation(scene: Scene, anat_mm: Anatomy, geom: Geometry, rng: np.random.Generator, ct: bool = False):
    """(Σ μ·length along every ray (nats, film px): bone with trabecular texture, soft tissue,
    metal; the mask of the skeleton and 10 mm around it). `ct`: a DRR of a CT volume instead —
    the trunk cut to the scanner's round field of view, the table behind the back, the slice
    thickness blurring along the spine."""
    h, w = geom.shape
    bone = line_integrals(scene.bones, geom)
    soft = line_integrals(scene.soft, geom, SOFT_SCALE)[SOFT]
    sh, sw = soft.shape
    Minv = np.linalg.inv(geom.M)
    uu, vv = np.meshgrid((np.arange(sw) + 0.5) / SOFT_SCALE, (np.arange(sh) + 0.5) / SOFT_SCALE)
    xy = np.stack([Minv[0, 0] * uu + Minv[0, 2], Minv[1, 1] * vv + Minv[1, 2]], -1)
    trunk = trunk_chords(anat_mm, scene.habitus, xy, rng, fov=_ct_field(anat_mm, rng) if ct else None)
    soft = soft + trunk.astype(np.float32)
    soft = cv2.resize(soft, (w, h), interpolation=cv2.INTER_CUBIC)
    px_per_mm = abs(geom.M[0, 0])
    grain = fractal_noise(rng, (h, w), beta=rng.uniform(1.7, 2.3), base=int(min(max(h, w), 384)),
                          stretch=rng.uniform(1.0, 2.5))
    coarse = fractal_noise(rng, (h, w), beta=2.4, base=64)
    texture = 1.0 + rng.uniform(0.12, 0.35) * grain + 0.12 * coarse
    A = bone[BONE] + bone[TRABECULAR] * texture + bone[METAL] + soft
    if ct:
        A = cv2.GaussianBlur(A, (0, 0), 0.3, sigmaY=rng.uniform(0.5, 2.5) * px_per_mm / 2.355)  # slice thickness
    spine = lowpass(((bone[BONE] + bone[TRABECULAR]) > 0.05).astype(np.float32), 6.0 * px_per_mm) > 0.05
    return A, spine


def _ct_field(anat_mm: Anatomy, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """A CT's reconstructed field (x centre, radius, mm) and its table (x of its top, thickness)."""
    c = np.array([b.corners.mean(axis=0) for lv, b in anat_mm.bodies.items() if lv[0] in "TL"])
    x0 = float(c[:, 0].mean()) + rng.uniform(20.0, 80.0)
    back = float(c[:, 0].min()) - rng.uniform(90.0, 130.0)
    return x0, rng.uniform(180.0, 250.0), back - rng.uniform(0.0, 30.0), rng.uniform(8.0, 30.0)


def _marker(A: np.ndarray, px_per_mm: float, rng: np.random.Generator) -> None:
    """A lead side marker (L or R) in a corner of the field: opaque, so it develops white."""
    if rng.random() > 0.7:
        return
    h, w = A.shape
    x0, y0 = int(w * rng.uniform(0.05, 0.8)), int(h * rng.uniform(0.03, 0.12))
    mask = np.zeros_like(A, dtype=np.uint8)
    cv2.putText(mask, "L" if rng.random() < 0.5 else "R", (x0, y0 + int(12 * px_per_mm)), cv2.FONT_HERSHEY_SIMPLEX,
                0.4 * px_per_mm, 255, max(1, int(1.2 * px_per_mm)), cv2.LINE_AA)
    A += mask.astype(np.float32) / 255.0 * 4.0


def render_radiograph(patient: Patient, anat_mm: Anatomy, rng: np.random.Generator, knobs: Knobs,
                      mirror: bool, pathology: Pathology | None = None) -> Film:
    """Frame, pose, project and develop one lateral film of `patient` (plan `anat_mm`)."""
    view, M, size, px_per_mm = frame_film(anat_mm, rng, knobs, mirror)
    bm, info = beams(view, M, size, rng)
    geom = Geometry(M, size, bm)
    ct = bool(rng.random() < knobs.ct_fraction)
    scene = build_scene(patient, anat_mm, rng, source_side=float(rng.choice([-1.0, 1.0])),
                        scoliosis=knobs.scoliosis, pathology=pathology, arms="none" if ct else None)
    A, region = _attenuation(scene, anat_mm, geom, rng, ct)
    gains = np.zeros(size[0], np.float32)
    if ct:
        info["exposure"] = "ct"
        exposed, exposure = np.ones(size, bool), Exposure.drr(rng)
    else:
        _marker(A, px_per_mm, rng)
        exposed = _collimation(size, rng)
        seams = [b.rows[0] for b in bm[1:]] if info["exposure"] == "stitched" else []
        for b in bm[1:] if info["exposure"] == "stitched" else ():
            gains[b.rows[0]:] += rng.normal(0.0, 0.08)
        exposure = Exposure.sample(rng, knobs, seams)
    film = develop(A, exposed, region, px_per_mm, exposure, rng, gains)
    info.update({"view": view, "film_px_per_mm": float(px_per_mm), "arms": scene.info["arms"],
                 "turn_deg": round(scene.info["turn_deg"], 3)})
    return Film(film, _labels(scene, geom), geom, info)


def _collimation(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """The exposed field: the whole film, or with collimator blades in from some edges."""
    h, w = size
    mask = np.ones(size, bool)
    if rng.random() < 0.35:
        for edge in range(4):
            if rng.random() < 0.5:
                d = int(rng.uniform(0.01, 0.06) * (w if edge < 2 else h))
                if edge == 0:
                    mask[:, :d] = False
                elif edge == 1:
                    mask[:, w - d:] = False
                elif edge == 2:
                    mask[:d] = False
                else:
                    mask[h - d:] = False
    return mask
