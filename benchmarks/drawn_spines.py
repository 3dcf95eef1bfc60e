"""Lateral spines drawn independently of the project's phantom, as Labelme folders; radiograph frame in mm → px.

A second source of ground truth, written apart from `spine_d2.synthetic` so that the measurement
is checked on outlines someone else could have drawn: the only project code it uses is
`spine_d2.angles` (the angle definitions, for the true values).

- **Spine** (`draw_spine`): built bottom-up from the sacral plate, each body a wedge whose
  endplates are exact straight edges (2–8 points each) and whose walls are bowed inwards
  (0–6 points, up to 12 % of the depth); lordosis and kyphosis spread over bodies and discs
  (TK 5–75°, LL_S1 25–85°, SS 20–60°, PT −5…35°); upper thoracic levels keep turning.
- **Sacrum** in one of several shapes (3–30 points): a three-point triangle, a five-point wedge,
  a curved sacrum with a concave front, one with a promontory lip overhanging the front, or a
  plain S1 box.
- **Femoral heads**: two circles (Labelme circles or 24-point polygons) about the hip axis, PT
  off the vertical, 2.6–4 plate lengths from the plate's midpoint.
- **Pictures** (`render`): the film itself (flat, no perspective), or a pinhole phone photo of
  the film on a monitor on a desk (yaw/pitch up to `view_deg`, roll up to `roll_deg`, 26 mm-
  equivalent lens, the photo then cropped by up to `crop` of each side: principal point off
  centre), or a photo of a printed photo (`kind="photo_of_photo"`: two pinhole views in a row,
  a keystone no single centred view makes).

`write_folder` writes images/, annotations/ (Labelme 5 JSON with the true homography under
`spine_d2`) and measurements.csv (names with their extension, as specialists' sheets have them).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from spine_d2.angles import ANGLE_NAMES, sagittal_angles

THORACIC = [f"T{i}" for i in range(1, 13)]
LUMBAR = [f"L{i}" for i in range(1, 6)]
SACRUM_SHAPES = ("triangle", "wedge5", "curved", "promontory", "box")
KINDS = ("flat", "photo", "photo_of_photo")


@dataclass
class Drawing:
    """One drawn spine in the radiograph frame (px, x right, y down) and its exact angles."""

    polygons: dict[str, np.ndarray]                      # level → (N, 2)
    heads: list[tuple[float, float, float]]             # (cx, cy, r)
    endplates: dict[str, dict[str, np.ndarray]]          # level → side → [anterior, posterior]
    angles: dict[str, float]
    film: tuple[int, int]                                # (width, height) px
    sacrum: str = ""
    head_style: str = "circle"
    info: dict = field(default_factory=dict)


def plate_axes(tilt: float, facing: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors of an endplate of `tilt` degrees: posterior → anterior, and its cranial normal."""
    t = math.radians(tilt)
    u = np.array([facing * math.cos(t), -math.sin(t)])
    return u, np.array([-facing * math.sin(t), -math.cos(t)])


def _edge(a: np.ndarray, b: np.ndarray, k: int, bow: float = 0.0, inward: np.ndarray | None = None) -> list:
    """`k` points strictly between a and b (uniform), pushed by bow·sin(πs) along `inward`."""
    s = np.linspace(0, 1, k + 2)[1:-1]
    pts = a + s[:, None] * (b - a)
    if bow and inward is not None:
        pts = pts + (bow * np.sin(np.pi * s))[:, None] * inward
    return list(pts)


def _body(p0, tilt_inf, tilt_sup, depth, h_post, facing, rng) -> tuple[np.ndarray, dict]:
    """A vertebral body from its posterior-inferior corner: exact endplates, walls bowed inwards."""
    u0, n0 = plate_axes(tilt_inf, facing)
    u1, _ = plate_axes(tilt_sup, facing)
    a0 = p0 + depth * u0
    p1 = p0 + h_post * n0
    a1 = p1 + depth * u1
    centre = (p0 + a0 + p1 + a1) / 4
    bow = rng.uniform(0, 0.12) * depth if rng.random() < 0.8 else 0.0
    pts = [p0] + _edge(p0, a0, int(rng.integers(0, 7)))
    pts += [a0] + _edge(a0, a1, int(rng.integers(1, 7)), bow, _unit(centre - (a0 + a1) / 2))
    pts += [a1] + _edge(a1, p1, int(rng.integers(0, 7)))
    pts += [p1] + _edge(p1, p0, int(rng.integers(1, 7)), bow, _unit(centre - (p0 + p1) / 2))
    return np.array(pts), {"superior": np.array([a1, p1]), "inferior": np.array([a0, p0])}


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def sacrum_outline(ps, ss, depth, facing, shape, rng) -> tuple[np.ndarray, np.ndarray]:
    """The S1 outline under its plate (posterior corner `ps`, slope `ss`), and the plate [ant, post]."""
    u, n = plate_axes(-ss, facing)
    v = -n                                   # into the sacrum
    a = ps + depth * u
    length = depth * rng.uniform(0.9, 2.6)
    on_plate = _edge(a, ps, int(rng.integers(0, 5)))  # anterior → posterior along the plate
    if shape == "triangle":
        tip = ps + length * v + 0.15 * depth * u
        pts = [a, *on_plate, ps, tip]
    elif shape == "wedge5":
        pts = [a, ps, ps + 0.5 * length * v - 0.08 * depth * u, ps + length * v + 0.25 * depth * u,
               a + 0.45 * length * v - 0.12 * depth * u]
        on_plate = []
    elif shape == "box":
        h = depth * rng.uniform(0.7, 0.95)
        pts = [a, *on_plate, ps, ps + h * v, a + h * v + 0.05 * depth * u]
    else:  # curved (concave front) or promontory: arcs of a sacrum bending backwards
        k = int(rng.integers(6, 12))
        s = np.linspace(0, 1, k)
        back = ps + length * s[:, None] * v - (0.35 * depth * s ** 2)[:, None] * u        # posterior face
        front = a + length * s[:, None] * v - (depth * (0.55 * s + 0.15 * np.sin(np.pi * s)))[:, None] * u
        front = front[1:]
        if shape == "promontory":  # the lip: the front first steps back under the plate's corner
            lip = a - 0.12 * depth * u + 0.08 * length * v
            front = np.vstack([lip, front[1:]])
        pts = [a, *on_plate, ps, *back[1:], *front[::-1]]
    return np.array(pts), np.array([a, ps])


def draw_spine(rng: np.random.Generator, px_per_mm: float = 3.2, kyphosis: float | None = None,
               sacrum: str | None = None) -> Drawing:
    """A random lateral spine T1–S1 with two femoral heads (see the module docstring)."""
    facing = int(rng.choice([-1, 1]))
    ss = rng.uniform(20, 60)
    pt = rng.uniform(-5, 35)
    ll_s1 = float(np.clip(ss + rng.uniform(-5, 30), 25, 85))  # lordosis follows the sacral slope
    tk = rng.uniform(5, 75) if kyphosis is None else kyphosis
    shape = sacrum or SACRUM_SHAPES[int(rng.integers(len(SACRUM_SHAPES)))]
    mm = px_per_mm
    # lordosis spread over L5-S1 … L1 (discs and bodies, most at the bottom)
    w = rng.dirichlet(np.array([6, 2, 4, 1.5, 3, 1, 2, 0.8, 1.5, 0.6]))  # disc L5S1, L5, disc L45, L4, …
    lum_steps = list(ll_s1 * w)
    th_w = rng.dirichlet(np.full(16, 2.0))
    th_steps = list(-tk * th_w)  # T12 body, T11-12 disc, … up to T5 body (8 bodies, 8 discs)
    t5 = ll_s1 - ss - tk  # about the tilt of the T5 plate: T4 … T1 go on turning, T1 at most 60° down
    upper = float(np.clip(tk / 8 * rng.uniform(0.6, 1.4), 0.5, max(0.5, (60 + t5) / 4)))

    polys, plates = {}, {}
    ps = np.zeros(2)
    s1_depth = rng.uniform(36, 44) * mm
    polys["S1"], plate = sacrum_outline(ps, ss, s1_depth, facing, shape, rng)
    plates["S1"] = {"superior": plate}
    tilt = -ss
    corner = ps  # posterior corner of the endplate below the next disc
    levels = list(reversed(THORACIC + LUMBAR))  # L5 … T1
    for k, lv in enumerate(levels):
        lumbar = lv.startswith("L")
        li = LUMBAR.index(lv) if lumbar else THORACIC.index(lv)
        if lumbar:
            d_disc, d_body = lum_steps[2 * (4 - li)], lum_steps[2 * (4 - li) + 1]
            depth = (33 + 1.6 * li) * mm * rng.uniform(0.95, 1.05)
            height = (24 + 0.8 * li) * mm * rng.uniform(0.93, 1.07)
            disc = (7 + 1.2 * li) * mm * rng.uniform(0.8, 1.2)
        else:
            if lv == "T12":
                d_disc = rng.uniform(-3, 3)  # the thoracolumbar disc
            elif li >= 4:
                d_disc = th_steps[2 * (11 - li) - 1]
            else:
                d_disc = -upper * rng.uniform(0.2, 0.5)
            d_body = th_steps[2 * (11 - li)] if li >= 4 else -upper * rng.uniform(0.5, 0.8)
            depth = (22 + 0.9 * li) * mm * rng.uniform(0.95, 1.05)
            height = (16 + 0.5 * li) * mm * rng.uniform(0.93, 1.07)
            disc = (3 + 0.15 * li) * mm * rng.uniform(0.8, 1.2)
        _, n = plate_axes(tilt, facing)
        u_next, _ = plate_axes(tilt + d_disc, facing)
        p0 = corner + disc * n + rng.uniform(-1, 1) * mm * u_next  # a little listhesis
        tilt_inf = tilt + d_disc
        tilt_sup = tilt_inf + d_body
        polys[lv], plates[lv] = _body(p0, tilt_inf, tilt_sup, depth, height, facing, rng)
        tilt = tilt_sup
        corner = plates[lv]["superior"][1]
    # hip axis: PT off the vertical, from the plate's midpoint
    mid = plate.mean(axis=0)
    dist = np.linalg.norm(plate[0] - plate[1]) * rng.uniform(2.6, 4.0)
    axis = mid + dist * np.array([facing * math.sin(math.radians(pt)), math.cos(math.radians(pt))])
    r = rng.uniform(22, 26) * mm
    off = np.array([rng.uniform(2, 6), rng.uniform(-4, 4)]) * mm
    heads = [(*(axis + off), r), (*(axis - off), r * rng.uniform(0.95, 1.05))]
    return _placed(polys, plates, heads, facing, shape, rng, tk=tk)


def _placed(polys, plates, heads, facing, shape, rng, tk) -> Drawing:
    """Shift everything into a film with margins; the true angles from spine_d2.angles."""
    pts = np.vstack([*polys.values(), *[np.array(h[:2]) + [[h[2], h[2]], [-h[2], -h[2]]] for h in heads]])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    margin = np.array([rng.uniform(60, 160), rng.uniform(60, 120)])
    shift = margin - lo
    w, h = (hi - lo + 2 * margin).astype(int) + 1
    polys = {k: v + shift for k, v in polys.items()}
    plates = {k: {s: p + shift for s, p in v.items()} for k, v in plates.items()}
    heads = [(cx + shift[0], cy + shift[1], r) for cx, cy, r in heads]
    truth = sagittal_angles(plates, heads, sign=facing)
    angles = {k: truth[k].value for k in ANGLE_NAMES}
    style = "circle" if rng.random() < 0.5 else "polygon"
    return Drawing(polys, heads, plates, angles, (int(w), int(h)), shape, style, {"facing": facing, "tk_drawn": tk})


# ---------------------------------------------------------------------------------------------
# pictures


def film_image(d: Drawing, rng: np.random.Generator) -> np.ndarray:
    """The radiograph (grey uint8, film size): soft tissue, bright bodies with a rim, heads."""
    w, h = d.film
    y, x = np.mgrid[0:h, 0:w]
    img = 35 + 25 * np.exp(-((x - w * rng.uniform(0.4, 0.6)) / (0.35 * w)) ** 2) + 8 * y / h
    img = img.astype(np.float32)
    layer = np.zeros((h, w), np.uint8)
    for cx, cy, r in d.heads:
        cv2.circle(layer, (int(cx * 16), int(cy * 16)), int(r * 16), 150, -1, cv2.LINE_AA, 4)
    for poly in d.polygons.values():
        p = np.round(poly * 16).astype(np.int32).reshape(-1, 1, 2)
        cv2.fillPoly(layer, [p], 170, cv2.LINE_AA, 4)
        cv2.polylines(layer, [p], True, 215, 3, cv2.LINE_AA, 4)
    img += layer.astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 1.2) + rng.normal(0, 4, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _camera(rng, centre, target_h, photo_size, view_deg, roll_deg, fill) -> np.ndarray:
    """Homography plane(px) → photo(px) of a pinhole camera (centred principal point, 26 mm-
    equivalent focal length) aimed at `centre` of the plane from yaw/pitch ≤ view_deg and roll ≤
    roll_deg, at the distance where a plane height of `target_h` px fills `fill` of the photo."""
    W, H = photo_size
    f = 0.6 * math.hypot(W, H)
    yaw, pitch = (math.radians(rng.uniform(-view_deg, view_deg)) for _ in range(2))
    roll = math.radians(rng.uniform(-roll_deg, roll_deg))
    Ry = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    Rx = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]])
    Rz = np.array([[math.cos(roll), -math.sin(roll), 0], [math.sin(roll), math.cos(roll), 0], [0, 0, 1]])
    K = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]])
    # plane point (x, y) is the world point (x − cx, y − cy, 0); the camera sees R·X + (0, 0, dist)
    M = Rz @ Rx @ Ry @ np.array([[1, 0, -centre[0]], [0, 1, -centre[1]], [0, 0, 0]], float)
    M[:, 2] += [0, 0, f * target_h / (fill * H)]
    Hm = K @ M
    return Hm / Hm[2, 2]


def _apply(H: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ H.T
    return p[:, :2] / p[:, 2:3]


def _screen(film: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """The film on a monitor (viewer panel, bezel) on a desk: the plane image and film → plane."""
    fh, fw = film.shape
    pad_panel = int(rng.uniform(0.03, 0.12) * fw)
    pad_bezel = int(rng.uniform(0.03, 0.06) * fw)
    pad_desk = int(0.35 * max(fw, fh))
    total = pad_panel + pad_bezel + pad_desk
    plane = np.full((fh + 2 * total, fw + 2 * total), rng.uniform(110, 170), np.float32)
    plane += rng.normal(0, 6, plane.shape).astype(np.float32)
    b0 = pad_desk
    plane[b0:-b0, b0:-b0] = 18                                         # bezel
    p0 = pad_desk + pad_bezel
    plane[p0:-p0, p0:-p0] = rng.uniform(45, 70)                        # viewer panel
    plane[total:total + fh, total:total + fw] = film
    T = np.array([[1, 0, total], [0, 1, total], [0, 0, 1]], float)
    return np.clip(plane, 0, 255).astype(np.uint8), T


def render(d: Drawing, rng: np.random.Generator, kind: str = "flat", view_deg: float = 18.0,
           roll_deg: float = 8.0, crop: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(BGR photo, homography radiograph → photo) of a drawing (see the module docstring)."""
    film = film_image(d, rng)
    if kind == "flat":
        return cv2.cvtColor(film, cv2.COLOR_GRAY2BGR), np.eye(3)
    plane, T = _screen(film, rng)
    W, H = (1200, 1600) if d.film[1] >= d.film[0] else (1600, 1200)
    centre = T[:2, 2] + np.array(d.film) / 2
    Hf = _camera(rng, centre, d.film[1], (W, H), view_deg, roll_deg, rng.uniform(0.6, 0.9)) @ T
    photo = cv2.warpPerspective(plane, Hf @ np.linalg.inv(T), (W, H), flags=cv2.INTER_LINEAR, borderValue=120)
    if kind == "photo_of_photo":  # print it on paper with a white margin, photograph the print
        pad = 200
        paper = np.full((H + 2 * pad, W + 2 * pad), 235, np.uint8)
        paper[pad:pad + H, pad:pad + W] = photo
        T2 = np.array([[1, 0, pad], [0, 1, pad], [0, 0, 1]], float)
        H2 = _camera(rng, (W / 2 + pad, H / 2 + pad), H, (W, H), view_deg, roll_deg, rng.uniform(0.8, 0.95))
        photo = cv2.warpPerspective(paper, H2, (W, H), flags=cv2.INTER_LINEAR, borderValue=90)
        Hf = H2 @ T2 @ Hf
    photo = cv2.GaussianBlur(photo, (0, 0), 0.7)
    if crop > 0:
        photo, Hf = _crop(photo, Hf, d, rng, crop)
    return cv2.cvtColor(photo, cv2.COLOR_GRAY2BGR), Hf / Hf[2, 2]


def _crop(photo, Hf, d, rng, crop) -> tuple[np.ndarray, np.ndarray]:
    """Cut up to `crop` of the width and of the height (split at random between the two sides),
    never into the drawn structures."""
    H, W = photo.shape[:2]
    pts = _apply(Hf, np.vstack([*d.polygons.values(), *[np.array(h[:2]) + h[2] * np.array([[1, 1], [-1, -1], [1, -1], [-1, 1]])
                                                         for h in d.heads]]))
    lo, hi = pts.min(axis=0) - 25, pts.max(axis=0) + 25
    cx, cy = rng.uniform(0.3, 1.0) * crop * W, rng.uniform(0.3, 1.0) * crop * H
    left = min(rng.uniform(0, 1) * cx, max(lo[0], 0))
    top = min(rng.uniform(0, 1) * cy, max(lo[1], 0))
    right = min(cx - left, max(W - hi[0], 0))
    bottom = min(cy - top, max(H - hi[1], 0))
    x0, y0, x1, y1 = int(left), int(top), int(W - right), int(H - bottom)
    S = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], float)
    return np.ascontiguousarray(photo[y0:y1, x0:x1]), S @ Hf


# ---------------------------------------------------------------------------------------------
# a Labelme folder


def _shapes(d: Drawing, H: np.ndarray) -> list[dict]:
    out = []
    for lv, poly in d.polygons.items():
        out.append({"label": lv, "points": np.round(_apply(H, poly), 3).tolist(), "group_id": None,
                    "shape_type": "polygon", "flags": {}})
    for cx, cy, r in d.heads:
        if d.head_style == "circle" and np.allclose(H, np.eye(3)):
            out.append({"label": "FH", "points": [[cx, cy], [cx + r, cy]], "group_id": None,
                        "shape_type": "circle", "flags": {}})
        else:
            t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
            ring = np.c_[cx + r * np.cos(t), cy + r * np.sin(t)]
            out.append({"label": "FH", "points": np.round(_apply(H, ring), 3).tolist(), "group_id": None,
                        "shape_type": "polygon", "flags": {}})
    return out


def write_folder(root: str | Path, n: int, seed: int, kind: str = "flat", crop: float = 0.0,
                 view_deg: float = 18.0, roll_deg: float = 8.0, kyphosis: float | None = None,
                 crop_all: bool = False) -> Path:
    """`n` drawn spines as a Labelme folder at `root`; with crop > 0 every other photo (or all,
    `crop_all`) is cropped by up to `crop` of its width and of its height."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = ["image," + ",".join(ANGLE_NAMES)]
    for i in range(n):
        d = draw_spine(rng, kyphosis=kyphosis)
        c = crop if (crop > 0 and (crop_all or i % 2 == 0)) else 0.0
        image, H = render(d, rng, kind, view_deg, roll_deg, c)
        name = f"drawn_{i:03d}.jpg"
        cv2.imwrite(str(root / "images" / name), image, [cv2.IMWRITE_JPEG_QUALITY, 93])
        meta = {"homography": H.tolist(), "angles": d.angles, "sacrum": d.sacrum, "kind": kind,
                "cropped": bool(c), "facing": d.info["facing"]}
        (root / "annotations" / f"drawn_{i:03d}.json").write_text(json.dumps({
            "version": "5.4.1", "flags": {}, "shapes": _shapes(d, H), "imagePath": f"../images/{name}",
            "imageData": None, "imageHeight": int(image.shape[0]), "imageWidth": int(image.shape[1]),
            "spine_d2": meta}))
        lines.append(name + "," + ",".join(f"{d.angles[k]:.4f}" for k in ANGLE_NAMES))
    (root / "measurements.csv").write_text("\n".join(lines) + "\n")
    return root
