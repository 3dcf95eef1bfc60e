"""Writes a synthetic phantom dataset: images, Labelme JSON with exact ground truth, CSV, splits, gallery.

Layout (datasets/README.md): ``images/<stem>.jpg|png``, ``annotations/<stem>.json``,
``measurements.csv`` (image,TK,LL,LL_S1,SS,PT,PI; degrees, empty = not measurable),
``splits/{train,test}.txt``, ``gallery.jpg``, ``phantom.json`` (how it was made), and with
``observer_sd`` also ``measurements_observer.csv``.

Ground truth. Shapes are in the image frame (px). ``spine_d2.endplates`` and
``spine_d2.femoral_heads`` are in the radiograph frame (px of the film) and ``spine_d2.angles`` is
`spine_d2.angles.sagittal_angles` of exactly those stored values (radiograph frame): the one
definition of the project. ``spine_d2.homography`` maps radiograph → image; each stored endplate
point mapped through it is a vertex of its level's polygon.

Out-of-frame rule (the image ∩ the viewer's viewport ∩ the film is the *visible region*):
- a level is labelled only if ≥ 50 % of its polygon's area (image frame) is visible; its polygon is
  then clipped to the visible region; a level under 50 % is dropped with its endplates (a body the
  film's edge cuts counts against the quadrilateral of its two endplates, which the film leaves
  whole: a sliver of a body at the film's edge is not a level);
- an endplate of a labelled level is stored only if both its points lie ≥ 1 px inside the visible
  region (otherwise the angles that need it are null, with the reason);
- a femoral head is labelled and used only if its centre lies ≥ 0.75 r inside the visible region.
Angles that cannot be measured are null in the JSON and empty in the CSV, never invented.

Observer noise (``observer_sd`` = s degrees, optional): a reader's value is the truth plus
independent Gaussian errors N(0, s²) on TK, LL, LL_S1, SS and PT; PI is read as PT + SS (so
PI = PT + SS still holds and PI's error has SD s·√2); values are rounded to 0.1° as a reader
reports them; NaN stays NaN. Its RNG is seeded from (seed, index, 1), independent of the image.

Reproducibility: image i draws everything from ``numpy.random.default_rng([seed, i])``; images are
encoded by OpenCV with fixed parameters; no timestamps: the same seed gives byte-identical files
(same library versions; OpenCV runs single-threaded in the workers).
"""
from __future__ import annotations

import contextlib
import json
import math
import multiprocessing as mp
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np

from spine_d2.angles import ANGLE_NAMES, sagittal_angles
from spine_d2.frames import apply_homography, map_circles
from spine_d2.levels import LEVELS
from spine_d2.synthetic.anatomy import Anatomy, build_anatomy, sample_patient
from spine_d2.synthetic.capture import Capture, capture, clip_polygon, inside_depth, polygon_area
from spine_d2.synthetic.knobs import Knobs, as_dict, knobs_for
from spine_d2.synthetic.pathology import Pathology
from spine_d2.synthetic.radiograph import render_radiograph

LABELME_VERSION = "6.3.1"  # what labelme 6.3.1 (pinned in requirements.txt) writes
MIN_VISIBLE_FRACTION = 0.5
ENDPLATE_MARGIN_PX = 1.0
HEAD_MARGIN_RADII = 0.75
MIN_LEVELS = 4
STUDY_SPLIT = (428, 300)  # the reference study: 300 train / 128 test
GALLERY_IMAGES = 12


def stem_of(index: int, n: int) -> str:
    return f"phantom_{index:0{max(4, len(str(n - 1)))}d}"


def _shape(label: str, points, shape_type: str) -> dict:
    return {"label": label, "points": [[float(x), float(y)] for x, y in points], "group_id": None,
            "description": "", "shape_type": shape_type, "flags": {}, "mask": None}


def annotate(anat: Anatomy, cap: Capture) -> dict:
    """Labelme shapes (image frame) and ground truth (radiograph frame) for one captured film."""
    H = cap.H
    shapes, endplates, heads, dropped = [], {}, [], {}
    for level in LEVELS:
        if level not in anat.bodies:
            dropped[level] = "outside the film"
            continue
        body = anat.bodies[level]
        poly = apply_homography(H, body.polygon)
        # the film's own edge already cut the outline of a body it half covers: measure what is
        # in view against the body, whose plates' quadrilateral the film does not cut
        plates = apply_homography(H, np.vstack([body.superior, body.inferior[::-1]]))
        area = max(polygon_area(poly), polygon_area(plates))
        kept = clip_polygon(poly, cap.visible)
        frac = polygon_area(kept) / area if area > 0 else 0.0
        if frac < MIN_VISIBLE_FRACTION or len(kept) < 3:
            dropped[level] = f"{frac:.0%} of the polygon in view"
            continue
        shapes.append(_shape(level, np.round(kept, 4), "polygon"))
        sides = {}
        for side in ("superior", "inferior"):
            ep = getattr(body, side)
            if inside_depth(apply_homography(H, ep), cap.visible).min() >= ENDPLATE_MARGIN_PX:
                sides[side] = ep.tolist()
            else:
                dropped[f"{level} {side}"] = "endplate out of view"
        if sides:
            endplates[level] = sides
    for i, head in enumerate(anat.heads):
        cx, cy, r = map_circles(H, [head])[0]
        depth = inside_depth(np.array([[cx, cy]]), cap.visible)[0]
        if depth < HEAD_MARGIN_RADII * r:
            dropped[f"FH{i + 1}"] = "femoral head out of view"
            continue
        heads.append([float(v) for v in head])
        rims = np.array([[cx + r, cy], [cx - r, cy], [cx, cy + r], [cx, cy - r]])
        rim = rims[int(np.argmax(inside_depth(rims, cap.visible)))]
        shapes.append(_shape("FH", [[round(cx, 4), round(cy, 4)], np.round(rim, 4)], "circle"))
    angles = sagittal_angles(endplates, heads)
    return {"shapes": shapes, "endplates": endplates, "femoral_heads": heads, "angles": angles,
            "dropped": dropped}


def _rounded(anat: Anatomy) -> Anatomy:
    """Labelled geometry rounded to 1e-4 px once, so stored values and polygon vertices agree."""
    for b in anat.bodies.values():
        b.polygon, b.superior, b.inferior = (np.round(b.polygon, 4), np.round(b.superior, 4),
                                             np.round(b.inferior, 4))
    anat.heads = np.round(anat.heads, 4)
    return anat


def make_image(index: int, seed: int, n: int, knobs: Knobs, out: Path) -> dict:
    """Render, capture, label and write image `index`; returns its measurements row and view."""
    rng = np.random.default_rng([seed, index])
    patient = sample_patient(rng, knobs.deformity_fraction, knobs.cover_fraction)
    pathology = Pathology.sample(rng, knobs.pathology_fraction, knobs.hardware_fraction)
    anat_mm = build_anatomy(patient, rng, pathology)
    patient = anat_mm.plan  # TK as the trunk's balance left it
    mirror = bool(rng.random() < knobs.mirror_fraction)
    film = render_radiograph(patient, anat_mm, rng, knobs, mirror, pathology)
    anat = _rounded(film.labels)
    for _ in range(5):  # a capture that leaves almost no spine in view is taken again
        cap = capture(film.image, rng, knobs)
        labels = annotate(anat, cap)
        if sum(s["label"] != "FH" for s in labels["shapes"]) >= MIN_LEVELS:
            break
    stem = stem_of(index, n)
    ok, buf = cv2.imencode(cap.ext, cap.image, cap.encode)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode image {stem}{cap.ext}")
    (out / "images" / f"{stem}{cap.ext}").write_bytes(buf.tobytes())
    values = {k: (None if math.isnan(a.value) else a.value) for k, a in labels["angles"].items()}
    hh, ww = cap.image.shape[:2]
    doc = {
        "version": LABELME_VERSION, "flags": {}, "shapes": labels["shapes"],
        "imagePath": f"../images/{stem}{cap.ext}", "imageData": None, "imageHeight": hh, "imageWidth": ww,
        "spine_d2": {
            "frame": "endplates, femoral_heads and angles: radiograph frame (px); shapes: image frame (px)",
            "homography": cap.H.tolist(),
            "endplates": labels["endplates"],
            "femoral_heads": labels["femoral_heads"],
            "angles": values,
            "angle_notes": {k: a.reason for k, a in labels["angles"].items() if not a.measured},
            "not_labelled": labels["dropped"],
            "visible_region": np.round(cap.visible, 4).tolist(),
            "capture": {**cap.params, **film.info, "mirrored": mirror,
                        "film_size": [film.image.shape[1], film.image.shape[0]],
                        "film_px_per_mm": round(float(film.info["film_px_per_mm"]), 6)},
            "patient_intended": {"kind": patient.kind, **{k: round(getattr(patient, k), 4)
                                                           for k in ("TK", "LL", "LL_S1", "SS", "PT", "PI")}},
            "pathology": pathology.describe(),
        },
    }
    (out / "annotations" / f"{stem}.json").write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    return {"image": stem, **values}


def _fmt(v: Any) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def write_measurements(path: Path, rows: list[dict]) -> None:
    lines = ["image," + ",".join(ANGLE_NAMES)]
    lines += [",".join([r["image"]] + [_fmt(r[k]) for k in ANGLE_NAMES]) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def observer_rows(rows: list[dict], seed: int, sd: float) -> list[dict]:
    """A reader's values (noise model: module docstring)."""
    out = []
    for i, r in enumerate(rows):
        rng = np.random.default_rng([seed, i, 1])
        e = dict(zip(("TK", "LL", "LL_S1", "SS", "PT"), rng.normal(0.0, sd, 5)))
        o = {k: (None if r[k] is None else round(r[k] + e[k], 1)) for k in e}
        o["PI"] = None if (o["PT"] is None or o["SS"] is None or r["PI"] is None) else round(o["PT"] + o["SS"], 1)
        out.append({"image": r["image"], **o})
    return out


def split_counts(n: int) -> tuple[int, int]:
    """(train, test): the study's 300/128 for 428 images, the same fraction otherwise."""
    train = STUDY_SPLIT[1] if n == STUDY_SPLIT[0] else int(round(n * STUDY_SPLIT[1] / STUDY_SPLIT[0]))
    return train, n - train


def write_splits(out: Path, stems: list[str], seed: int) -> None:
    train_n, _ = split_counts(len(stems))
    order = np.random.default_rng([seed, 2**31 - 1]).permutation(len(stems))
    train = sorted(stems[i] for i in order[:train_n])
    test = sorted(stems[i] for i in order[train_n:])
    (out / "splits").mkdir()
    (out / "splits" / "train.txt").write_text("".join(s + "\n" for s in train), encoding="utf-8")
    (out / "splits" / "test.txt").write_text("".join(s + "\n" for s in test), encoding="utf-8")


def write_gallery(out: Path, stems: list[str], path: Path, cell: int = 440, cols: int = 4) -> None:
    """Contact sheet: each image with its polygons, endplate lines, femoral heads and angles."""
    tiles = []
    for stem in stems:
        doc = json.loads((out / "annotations" / f"{stem}.json").read_text(encoding="utf-8"))
        img = cv2.imread(str((out / "annotations" / doc["imagePath"]).resolve()), cv2.IMREAD_COLOR)
        f = cell / max(img.shape[:2])
        img = cv2.resize(img, (int(round(img.shape[1] * f)), int(round(img.shape[0] * f))), interpolation=cv2.INTER_AREA)
        for s in doc["shapes"]:
            p = np.asarray(s["points"]) * f
            if s["shape_type"] == "polygon":
                cv2.polylines(img, [np.round(p * 4).astype(np.int32)], True, (0, 200, 0), 1, cv2.LINE_AA, 2)
            else:
                r = float(np.linalg.norm(p[1] - p[0]))
                cv2.circle(img, tuple(np.round(p[0] * 4).astype(int)), int(r * 4), (255, 160, 0), 1, cv2.LINE_AA, 2)
        H = np.asarray(doc["spine_d2"]["homography"])
        for sides in doc["spine_d2"]["endplates"].values():
            for ep in sides.values():
                q = apply_homography(H, ep) * f
                cv2.line(img, tuple(np.round(q[0] * 4).astype(int)), tuple(np.round(q[1] * 4).astype(int)),
                         (0, 0, 255), 1, cv2.LINE_AA, 2)
        ang = doc["spine_d2"]["angles"]
        text = [" ".join(f"{k} {'-' if ang[k] is None else f'{ang[k]:.1f}'}" for k in ks)
                for ks in (("TK", "LL", "LL_S1"), ("SS", "PT", "PI"))]
        for i, t in enumerate([stem] + text):
            cv2.putText(img, t, (4, 14 + 15 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(img, t, (4, 14 + 15 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 255, 255), 1, cv2.LINE_AA)
        tile = np.full((cell + 4, cell + 4, 3), 40, np.uint8)
        y0, x0 = (cell + 4 - img.shape[0]) // 2, (cell + 4 - img.shape[1]) // 2
        tile[y0:y0 + img.shape[0], x0:x0 + img.shape[1]] = img
        tiles.append(tile)
    rows = [np.hstack(tiles[i:i + cols] + [np.full_like(tiles[0], 40)] * (cols - len(tiles[i:i + cols])))
            for i in range(0, len(tiles), cols)]
    ok, buf = cv2.imencode(".jpg", np.vstack(rows), [cv2.IMWRITE_JPEG_QUALITY, 88])
    path.write_bytes(buf.tobytes())


#: the workers' BLAS pools: one thread. The phantom's small products gain nothing from more, and
#: OpenBLAS's idle threads spin between calls: a third of a worker's CPU time, taken from the others
ONE_BLAS_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@contextlib.contextmanager
def _environ(values: Mapping[str, str]):
    """os.environ with `values` set (for processes started inside), then as it was."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _init_worker() -> None:
    cv2.setNumThreads(1)


def _job(args) -> dict:
    return make_image(*args)


def generate_dataset(out, n: int, seed: int, difficulty: str = "realistic", workers: int | None = None,
                     observer_sd: float | None = None, progress: bool = True, **knobs) -> Path:
    """Write an `n`-image phantom dataset to the new folder `out` (never overwrites); returns its path.

    `knobs` override the `difficulty` preset (names: `spine_d2.synthetic.knobs.Knobs`). The folder is
    written under a temporary name and renamed when complete.
    """
    out = Path(out)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file: the phantom never overwrites; choose another out=")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty: the phantom never overwrites a dataset; "
                              "choose another out= or remove it")
    k = knobs_for(difficulty, **knobs)
    tmp = out.parent / f".{out.name}.partial"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "images").mkdir(parents=True)
    (tmp / "annotations").mkdir()
    workers = max(1, min(workers or os.cpu_count() or 1, n))
    jobs = [(i, int(seed), n, k, tmp) for i in range(n)]
    from tqdm import tqdm

    bar = tqdm(total=n, desc=f"phantom {out.name}", unit="img", disable=not progress)
    if workers == 1:
        _init_worker()
        rows = []
        for j in jobs:
            rows.append(_job(j))
            bar.update()
    else:
        # spawn, not fork: a forked child can inherit a locked OpenCV/BLAS thread pool and hang
        ctx = mp.get_context("spawn")
        with _environ(ONE_BLAS_THREAD):  # read by the workers as they start (numpy loads BLAS on import)
            pool = ctx.Pool(workers, initializer=_init_worker)
        with pool:
            rows = []
            for r in pool.imap(_job, jobs, chunksize=2):
                rows.append(r)
                bar.update()
    bar.close()
    stems = [r["image"] for r in rows]
    write_measurements(tmp / "measurements.csv", rows)
    if observer_sd:
        write_measurements(tmp / "measurements_observer.csv", observer_rows(rows, int(seed), float(observer_sd)))
    write_splits(tmp, stems, int(seed))
    write_gallery(tmp, stems[:GALLERY_IMAGES], tmp / "gallery.jpg")
    meta = {"generator": "spine_d2.synthetic", "n": n, "seed": int(seed), "difficulty": difficulty,
            "observer_sd": observer_sd, "knobs": as_dict(k), "labelme_version": LABELME_VERSION,
            "rules": {"min_visible_fraction": MIN_VISIBLE_FRACTION, "endplate_margin_px": ENDPLATE_MARGIN_PX,
                      "femoral_head_margin_radii": HEAD_MARGIN_RADII}}
    (tmp / "phantom.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if out.exists():
        out.rmdir()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp.rename(out)
    return out


def ensure_dataset(dataset_cfg: Mapping, train_extra: bool = False) -> Path:
    """The dataset folder `dataset_cfg.root`, generated from `dataset_cfg.generate` when absent;
    with `train_extra`, its `train_extra` folders too (what training needs; a test does not)."""
    root = _ensure_folder(dataset_cfg["root"], dataset_cfg.get("generate"), "dataset.root")
    if train_extra:
        for i, extra in enumerate(dataset_cfg.get("train_extra") or ()):
            _ensure_folder(extra["root"], extra.get("generate"), f"dataset.train_extra[{i}].root")
    return root


def _ensure_folder(root: str | Path, gen: Mapping | None, key: str) -> Path:
    """`root`, generated from `gen` (a GenerateConfig node) when absent; `key` names it in the error."""
    root = Path(str(root))
    if root.exists():
        return root
    if gen is None:
        raise FileNotFoundError(f"dataset folder {root} does not exist and is never generated "
                                f"({key.rsplit('.', 1)[0]}.generate is null): set {key} to an existing "
                                f"Labelme folder")
    gen = dict(gen)
    knobs = {k: v for k, v in dict(gen.pop("knobs", None) or {}).items() if v is not None}
    return generate_dataset(root, int(gen.pop("n")), int(gen.pop("seed")), gen.pop("difficulty", "realistic"),
                            **gen, **knobs)
