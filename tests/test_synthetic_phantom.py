"""The synthetic phantom: exact ground truth, honest partial views, determinism, readable by labelme."""
from __future__ import annotations

import csv
import json
import math
import multiprocessing as mp
import os
from pathlib import Path

import numpy as np
import pytest

from spine_d2.angles import ANGLE_NAMES, REQUIRED_ENDPLATES, NEEDS_FEMORAL_HEADS, angle_values, sagittal_angles
from spine_d2.frames import apply_homography
from spine_d2.synthetic.anatomy import Anatomy, Body, build_anatomy, sample_patient
from spine_d2.synthetic.capture import Capture
from spine_d2.synthetic.balance import balance_trunk
from spine_d2.synthetic.generate import ONE_BLAS_THREAD, _environ, annotate, generate_dataset, split_counts

N = 6


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    # half the films partial and half mirrored so both cases are in six images
    return generate_dataset(tmp_path_factory.mktemp("ph") / "ds", N, seed=11, workers=2, observer_sd=2.0,
                            progress=False, partial_fraction=0.5, mirror_fraction=0.5)


@pytest.fixture(scope="module")
def partial(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("ph") / "partial", 5, seed=5, workers=2, progress=False,
                            partial_fraction=1.0)


def _docs(root: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((root / "annotations").glob("*.json"))}


def _csv(path: Path) -> dict[str, dict[str, float]]:
    with open(path, newline="") as f:
        return {r["image"]: {k: (float(r[k]) if r[k] else math.nan) for k in ANGLE_NAMES} for r in csv.DictReader(f)}


def test_patient_geometry_gives_the_intended_angles():
    for i in range(20):
        rng = np.random.default_rng([3, i])
        p = sample_patient(rng)
        a = build_anatomy(p, rng)
        eps = {lv: {"superior": b.superior, "inferior": b.inferior} for lv, b in a.bodies.items()}
        got = angle_values(sagittal_angles(eps, a.heads))
        for name in ANGLE_NAMES:
            assert got[name] == pytest.approx(getattr(a.plan, name), abs=1e-6), (i, name)
            if name != "TK":  # the trunk's balance may move TK, nothing else
                assert getattr(a.plan, name) == getattr(p, name)


def _plate_deg(plate: np.ndarray) -> float:
    (ax, ay), (px, py) = plate
    return math.degrees(math.atan2(py - ay, ax - px))


@pytest.mark.parametrize("offset, tk_moves, balanced", [
    (6.0, "down", True),     # leaning 6° forward at TK 60: less kyphosis, the junction the rest
    (-10.0, "up", True),     # leaning 10° back: more kyphosis
    (-3.0, "no", True),      # nearly balanced: the junction alone
    (60.0, "down", False),   # TK moves at most 15°, the junction 4°: the rest is imbalance
])
def test_balance_trunk_moves_tk_first_then_the_junction(offset, tk_moves, balanced):
    """On a plain plan whose lean grows by 0.6° per degree of TK (the chain's is about 0.5)."""
    per_degree = {"T8": -0.5, "disc T8": -0.5}
    wedge, disc = {"T8": -30.0}, {"T8": -30.0, "T12": 0.0}

    def lean():  # kyphosis of T5-T12 is -(wedge + disc) of T8 here
        return offset + 0.6 * (-(wedge["T8"] + disc["T8"]) - 60.0)

    tk = balance_trunk(lean, wedge, disc, per_degree, 60.0)
    assert -(wedge["T8"] + disc["T8"]) == pytest.approx(tk, abs=1e-9)  # the plan has that TK
    assert {"down": tk < 59.0, "up": tk > 61.0, "no": tk == 60.0}[tk_moves]
    assert 45.0 - 1e-9 <= tk <= 75.0 and abs(disc["T12"]) <= 4.0
    assert (lean() - disc["T12"] == pytest.approx(0.0, abs=1e-9)) == balanced
    if not balanced:
        assert tk == pytest.approx(45.0) and disc["T12"] == pytest.approx(4.0)


def test_the_trunk_balances_through_tk_not_a_kinked_thoracolumbar_junction():
    """Adults' T12-L1 disc turns a few degrees, and TK follows the lordosis below it (r ≈ 0.4–0.6);
    the trunk's balance over the sacrum once turned the T12-L1 disc by up to 25°."""
    junction, kinds, drawn, built, lls1 = [], [], [], [], []
    for i in range(150):
        rng = np.random.default_rng([5, i])
        p = sample_patient(rng)
        a = build_anatomy(p, rng)
        junction.append(_plate_deg(a.bodies["L1"].superior) - _plate_deg(a.bodies["T12"].inferior))
        kinds.append(p.kind), drawn.append(p.TK), built.append(a.plan.TK), lls1.append(p.LL_S1)
    junction, drawn, built, lls1 = map(np.array, (junction, drawn, built, lls1))
    assert np.median(np.abs(junction)) < 5.0 and np.abs(junction).max() < 12.0
    assert np.abs(built - drawn).max() <= 15.0 + 1e-9 and np.abs(built - drawn).max() > 5.0
    adult = np.array(kinds) == "adult"
    assert np.corrcoef(built[adult], lls1[adult])[0, 1] > 0.3


def test_s1_lies_at_least_half_a_level_down_the_spine_from_l5():
    """What naming's S1 check (`measure.naming`: a sacrum instance less than a quarter of a level's
    step down from the lowest body is not S1) leaves room for, over patients of every kind."""
    drops = []
    for i in range(300):
        rng = np.random.default_rng([6, i])
        a = build_anatomy(sample_patient(rng), rng)
        l4, l5, s1 = (a.bodies[lv].polygon.mean(axis=0) for lv in ("L4", "L5", "S1"))
        drops.append(np.dot(s1 - l5, l5 - l4) / np.dot(l5 - l4, l5 - l4))
    assert min(drops) > 0.5


def test_patients_cover_the_study_ranges():
    ps = [sample_patient(np.random.default_rng([9, i])) for i in range(3000)]
    tk, ll, ss = (np.array([getattr(p, k) for p in ps]) for k in ("TK", "LL", "SS"))
    assert tk.min() < 3 and tk.max() > 68
    assert ll.min() < 18 and ll.max() > 86
    assert ss.min() < 10 and ss.max() > 70
    adults = [p for p in ps if p.kind == "adult"]
    pi, lls1 = np.array([p.PI for p in adults]), np.array([p.LL_S1 for p in adults])
    slope = np.polyfit(pi, lls1, 1)[0]
    assert 0.35 < slope < 0.75  # LL_S1 ≈ 0.54·PI + 27.6 (Le Huec 2016)


def test_angles_recomputed_from_stored_endplates_match_json_and_csv(dataset):
    rows = _csv(dataset / "measurements.csv")
    assert list(rows) == sorted(_docs(dataset))
    for stem, doc in _docs(dataset).items():
        gt = doc["spine_d2"]
        again = angle_values(sagittal_angles(gt["endplates"], gt["femoral_heads"]))
        for name in ANGLE_NAMES:
            stored = gt["angles"][name]
            if math.isnan(again[name]):
                assert stored is None and math.isnan(rows[stem][name]), (stem, name)
            else:
                assert stored == pytest.approx(again[name], abs=0.01)
                assert rows[stem][name] == pytest.approx(again[name], abs=0.01)
        if gt["angles"]["PI"] is not None:
            assert gt["angles"]["PI"] == pytest.approx(gt["angles"]["PT"] + gt["angles"]["SS"], abs=1e-9)


def _outline_distance(poly: np.ndarray, p: np.ndarray) -> float:
    a, b = poly, np.roll(poly, -1, axis=0)
    t = np.clip(((p - a) * (b - a)).sum(1) / np.maximum(((b - a) ** 2).sum(1), 1e-12), 0.0, 1.0)
    return float(np.min(np.linalg.norm(a + t[:, None] * (b - a) - p, axis=1)))


def test_endplates_lie_on_the_outlines_of_their_bodies_inside_the_image(dataset):
    """An endplate's ends (rim points in the level's mid-sagittal plane) lie on the shadow outline
    of its body, up to what obliquity, axial rotation and a tilted patient do (≤ 5 mm)."""
    mirrored, dists = set(), []
    for stem, doc in _docs(dataset).items():
        gt = doc["spine_d2"]
        H = np.asarray(gt["homography"])
        polys = {s["label"]: np.asarray(s["points"]) for s in doc["shapes"] if s["shape_type"] == "polygon"}
        w, h = doc["imageWidth"], doc["imageHeight"]
        for label, poly in polys.items():
            assert len(poly) >= 3
            assert (poly >= -1e-6).all() and (poly[:, 0] <= w + 1e-6).all() and (poly[:, 1] <= h + 1e-6).all()
        per_mm = gt["capture"]["film_px_per_mm"]
        for level, sides in gt["endplates"].items():
            film_poly = apply_homography(np.linalg.inv(H), polys[level])
            for side, ep in sides.items():
                for pt in np.asarray(ep):
                    dists.append(_outline_distance(film_poly, pt) / per_mm)
                    assert dists[-1] < 5.0, (stem, level, side, dists[-1])
        for level in gt["not_labelled"]:
            if " " not in level and not level.startswith("FH"):
                assert level not in polys and level not in gt["endplates"]
        ep = np.asarray(next(iter(next(iter(gt["endplates"].values())).values())))
        if ep[0][0] < ep[1][0]:  # anterior point left of the posterior one: patient faces left
            mirrored.add(stem)
        assert gt["capture"]["mirrored"] == (stem in mirrored)
    assert mirrored and len(mirrored) < N
    assert np.median(dists) < 0.5


def test_a_body_the_film_cuts_is_a_level_only_if_half_of_it_is_in_view():
    """The film's edge cuts a body's outline before the photo does (the outline is its shadow on the
    film): the share in view is of the whole body, its two endplates' quadrilateral, not of what the
    film left. A sliver at the film's edge (seen: 0.2 px², which no loader takes) is no level."""
    plates = {"superior": np.array([[60.0, 100.0], [20.0, 100.0]]),
              "inferior": np.array([[60.0, 130.0], [20.0, 130.0]])}

    def body(y0):  # the shadow of a 40 × 30 px body the film's top edge, at y0, cuts
        return Body(np.array([[20.0, y0], [60.0, y0], [60.0, 130.0], [20.0, 130.0]]), **plates)

    anat = Anatomy({"T8": body(129.8), "T9": body(112.0), "T10": body(100.0)}, np.zeros((0, 3)), np.zeros((0, 2)))
    cap = Capture(np.zeros((200, 100, 3), np.uint8), np.eye(3), np.array([[0.0, 0.0], [100.0, 0.0], [100.0, 200.0], [0.0, 200.0]]),
                  {}, ".png", [])
    labels = annotate(anat, cap)
    assert [s["label"] for s in labels["shapes"]] == ["T9", "T10"]  # 60 % and all of the body in view
    assert labels["dropped"]["T8"] == "1% of the polygon in view"


def test_partial_views_leave_unmeasurable_angles_empty(partial):
    rows = _csv(partial / "measurements.csv")
    nulls = 0
    for stem, doc in _docs(partial).items():
        gt = doc["spine_d2"]
        view = gt["capture"]["view"]
        have = {(lv, side) for lv, sides in gt["endplates"].items() for side in sides}
        for name in ANGLE_NAMES:
            needs = set(REQUIRED_ENDPLATES[name]) <= have and (name not in NEEDS_FEMORAL_HEADS or gt["femoral_heads"])
            assert (gt["angles"][name] is not None) == bool(needs), (stem, name)
            assert math.isnan(rows[stem][name]) == (not needs)
            if not needs:
                assert gt["angle_notes"][name]
        labels = {s["label"] for s in doc["shapes"]}
        if view == "lumbopelvic":
            assert gt["angles"]["TK"] is None and "T5" not in labels
        if view in ("thoracolumbar", "thoracic"):
            assert gt["angles"]["PT"] is None and gt["femoral_heads"] == [] and "FH" not in labels
        nulls += sum(v is None for v in gt["angles"].values())
    assert nulls > 0


def test_same_seed_gives_identical_bytes(tmp_path):
    a = generate_dataset(tmp_path / "a", 3, seed=4, workers=1, progress=False)
    b = generate_dataset(tmp_path / "b", 3, seed=4, workers=2, progress=False)
    c = generate_dataset(tmp_path / "c", 3, seed=5, workers=1, progress=False)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert (a / "measurements.csv").read_bytes() != (c / "measurements.csv").read_bytes()


def test_workers_start_with_one_blas_thread_and_the_parent_keeps_its_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    with _environ(ONE_BLAS_THREAD):
        pool = mp.get_context("spawn").Pool(1)
    with pool:
        seen = pool.starmap(os.getenv, [("OPENBLAS_NUM_THREADS",), ("OMP_NUM_THREADS",)])
    assert seen == ["1", "1"]
    assert os.environ["OMP_NUM_THREADS"] == "7" and "OPENBLAS_NUM_THREADS" not in os.environ


def test_never_overwrites(dataset):
    with pytest.raises(FileExistsError, match="never overwrites"):
        generate_dataset(dataset, 2, seed=1, progress=False)


def test_splits_and_observer_file(dataset):
    assert split_counts(428) == (300, 128)
    train = (dataset / "splits" / "train.txt").read_text().split()
    test = (dataset / "splits" / "test.txt").read_text().split()
    assert (len(train), len(test)) == split_counts(N)
    assert sorted(train + test) == sorted(_docs(dataset))
    truth, seen = _csv(dataset / "measurements.csv"), _csv(dataset / "measurements_observer.csv")
    diffs = []
    for stem in truth:
        for name in ANGLE_NAMES:
            assert math.isnan(truth[stem][name]) == math.isnan(seen[stem][name])
            if not math.isnan(truth[stem][name]):
                diffs.append(seen[stem][name] - truth[stem][name])
        if not math.isnan(seen[stem]["PI"]):
            assert seen[stem]["PI"] == pytest.approx(seen[stem]["PT"] + seen[stem]["SS"], abs=0.051)
    assert 0.3 < np.std(diffs) < 6.0


def test_labelme_opens_every_file(dataset):
    from labelme import __version__
    from labelme._label_file import LabelFile

    for path in sorted((dataset / "annotations").glob("*.json")):
        raw = json.loads(path.read_text())
        assert raw["version"] == __version__ and raw["imageData"] is None
        lf = LabelFile(filename=str(path))
        labels = [s["label"] for s in lf.shapes]
        assert labels and set(labels) <= {*(f"T{i}" for i in range(1, 13)), *(f"L{i}" for i in range(1, 6)), "S1", "FH"}
        assert all(len(s["points"]) == 2 for s in lf.shapes if s["shape_type"] == "circle")
        assert "spine_d2" in lf.other_data and lf.image_data


def test_project_loader_registers_the_phantom(dataset):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from spine_d2.data.labelme import load_labelme_dataset
    from spine_d2.data.register import register_spine_dataset

    records = load_labelme_dataset(dataset)
    assert len(records) == N
    for r in records:
        assert Path(r["file_name"]).is_file() and r["spine_d2"]["homography"]
        assert {a["label"] for a in r["annotations"]} >= {"L1"} or r["spine_d2"]["capture"]["view"] == "thoracic"
    names = register_spine_dataset("phantom_test", dataset)
    train, test = DatasetCatalog.get(names["train"]), DatasetCatalog.get(names["test"])
    assert (len(train), len(test)) == split_counts(N)
    meas = MetadataCatalog.get(names["test"]).measurements
    stem = test[0]["image"]
    truth = _csv(dataset / "measurements.csv")[stem]
    for name in ANGLE_NAMES:
        v = meas[stem][name]
        assert (math.isnan(v) and math.isnan(truth[name])) or v == pytest.approx(truth[name], abs=1e-3)


def test_photos_are_pinhole_views_of_the_flat_screen(dataset):
    """A phone photo's homography is K·[r1 r2 t] of a camera (stored focal length and principal
    point) times the viewer's similarity: K⁻¹·H has orthogonal first columns of equal length."""
    from spine_d2.synthetic.knobs import knobs_for

    tilt = knobs_for("realistic").tilt
    photos = [d["spine_d2"] for d in _docs(dataset).values() if d["spine_d2"]["capture"]["kind"] == "photo"]
    assert photos
    for gt in photos:
        cap = gt["capture"]
        K = np.array([[cap["focal_px"], 0, cap["principal_point"][0]], [0, cap["focal_px"], cap["principal_point"][1]],
                      [0, 0, 1.0]])
        m = np.linalg.solve(K, np.asarray(gt["homography"]))
        r1, r2 = m[:, 0], m[:, 1]
        assert abs(r1 @ r2) / (np.linalg.norm(r1) * np.linalg.norm(r2)) < 1e-5
        assert np.linalg.norm(r1) / np.linalg.norm(r2) == pytest.approx(1.0, abs=1e-5)
        assert abs(cap["pitch_deg"]) <= tilt and abs(cap["yaw_deg"]) <= tilt
