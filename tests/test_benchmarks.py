"""benchmarks/: measurement variants side by side, statistics and tables, timing maths, provenance; tiny real data."""
import json
import math
import shutil

import cv2
import numpy as np
import pytest

import _common
import compare_evaluations
import inverted
import measure_geometry
import record_accuracy
import side_by_side as sbs
import speed
from measure_factory import toy_spine

from spine_d2.angles import ANGLE_NAMES, Angle
from spine_d2.data.labelme import load_labelme_dataset
from spine_d2.evaluation.agreement import summarize
from spine_d2.evaluation.per_image import image_row, per_image_table
from spine_d2.levels import get_class_map
from spine_d2.measure.instances import Instance
from spine_d2.measure.pipeline import MeasureConfig
from spine_d2.measure.reads import mean_of_reads
from spine_d2.measure.rectify import given_frame
from spine_d2.synthetic.generate import generate_dataset

CLASSES = get_class_map("default").classes


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """A 3-image phantom (seed 4: two phone photos turned by 1.1° and −5.5°, one screenshot)."""
    root = generate_dataset(tmp_path_factory.mktemp("bench") / "phantom", 3, 4, workers=1, progress=False)
    return root, load_labelme_dataset(root, "default")


# ------------------------------------------------------------------------------------------------
# side_by_side: variants

def test_variant_switches_reach_the_measure_config_and_keep_the_base():
    base = {"chain_rule": "slope", "slope_threshold": 1.5, "min_area": 10.0, "frame": {"max_side": 400}}
    c = sbs.Variant("rectangle", frame=False, cleanup=False).config(base)
    assert (c.method, c.frame.enabled, c.chain_rule) == ("rectangle", False, "off")
    assert c.min_area == 10.0 and c.frame.max_side == 400
    d = sbs.Variant().config(base)
    assert (d.method, d.frame.enabled, d.chain_rule, d.slope_threshold) == (MeasureConfig().method, True, "slope", 1.5)
    assert base == {"chain_rule": "slope", "slope_threshold": 1.5, "min_area": 10.0,
                    "frame": {"max_side": 400}}  # not changed
    vs = sbs.variants()
    assert len({v.name for v in vs}) == 12 and vs[0] == sbs.Variant()  # the default's row first


def test_cleanup_off_keeps_the_stray_that_cleanup_on_removes():
    spine = toy_spine()
    insts = spine.instances()
    l3 = spine.polygons["L3"].mean(axis=0)
    x, y = l3[0] + 150, l3[1] + 20
    stray = Instance("lumbar", polygon=np.array([[x, y], [x + 30, y], [x + 30, y + 30], [x, y + 30]]), score=0.9)
    ms = sbs.measure_variants(insts + [stray], spine.shape, None,
                              [sbs.Variant(frame=False), sbs.Variant(frame=False, cleanup=False)])
    on, off = ms[sbs.Variant(frame=False).name], ms[sbs.Variant(frame=False, cleanup=False).name]
    assert any("off the spine's chain" in r.reason for r in on.removals)
    assert not any("off the spine's chain" in r.reason for r in off.removals)
    assert len(off.instances) == len(on.instances) + 1
    assert all(i.level is None for i in insts + [stray])  # each variant measured its own copy


def test_frame_on_undoes_a_photo_rotation_and_frame_off_keeps_it():
    upright, turned = toy_spine(), toy_spine(rotate_deg=6.0)
    t = math.radians(6.0)
    R = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    c = np.array([turned.shape[1] / 2, turned.shape[0] / 2])
    H = np.eye(3)
    H[:2, :2], H[:2, 2] = R, c - R @ c  # radiograph (upright) → image (turned)
    vs = [sbs.Variant(), sbs.Variant(frame=False)]
    ms = sbs.measure_variants(turned.instances(), turned.shape, None, vs, frame=given_frame(H, turned.shape))
    on, off = ms[vs[0].name], ms[vs[1].name]
    assert (on.frame, off.frame) == ("radiograph", "image")
    assert on.angles["SS"].value == pytest.approx(upright.expected["SS"], abs=0.2)
    assert off.angles["SS"].value == pytest.approx(upright.expected["SS"] - 6.0, abs=0.3)
    assert off.angles["TK"].value == pytest.approx(on.angles["TK"].value, abs=0.2)  # a Cobb angle does not turn


def test_ground_truth_controls_name_levels_as_a_model_of_the_map_would(phantom):
    _, records = phantom
    masks = _common.ground_truth_instances(records[0], CLASSES, "masks")
    assert masks and all(i.label is None and i.mask is not None for i in masks)
    per_level = get_class_map("per_level").classes
    recs = load_labelme_dataset(phantom[0], "per_level")
    kept = _common.ground_truth_instances(recs[0], per_level, "polygons")
    assert any(i.label for i in kept) and all(i.polygon is not None or i.circle is not None for i in kept)
    with pytest.raises(ValueError, match="masks or polygons"):
        _common.ground_truth_instances(records[0], CLASSES, "boxes")


def test_named_by_truth_gives_matched_masks_the_true_class_and_level(phantom):
    from spine_d2.evaluation.evaluator import ground_truth_masks

    _, records = phantom
    gt_masks, gt_classes, gt_labels = ground_truth_masks(records[0], CLASSES)
    k = gt_labels.index("L3")
    # a model that calls L3 thoracic, a stray in the corner, and a shrunken T8 (still IoU > 0.3)
    t8 = gt_labels.index("T8")
    ys = np.nonzero(gt_masks[t8])[0]
    shrunk = gt_masks[t8].copy()
    shrunk[ys.min():ys.min() + (ys.max() - ys.min()) // 4] = False
    stray = np.zeros_like(gt_masks[k])
    stray[:20, :20] = True
    preds = [Instance("thoracic", mask=gt_masks[k], score=0.9), Instance("lumbar", mask=stray, score=0.8),
             Instance("thoracic", mask=shrunk, score=0.7)]
    named = sbs.named_by_truth(preds, gt_masks, gt_classes, gt_labels)
    assert [(i.class_name, i.label) for i in named] == [("lumbar", "L3"), ("thoracic", "T8")]
    assert np.array_equal(named[1].mask, shrunk)  # the model's own mask is kept


def test_variants_on_the_phantoms_ground_truth(phantom):
    root, records = phantom
    truth = _common.phantom_truth(records, root)
    rows = sbs.run_images(records, CLASSES, truth, sbs.variants(), controls=("polygons", "masks"))
    stats = sbs.statistics(rows)
    assert set(stats) == {"ground-truth polygons", "ground-truth masks"}
    for by_variant in stats.values():
        assert [*by_variant] == [v.name for v in sbs.variants()]
        for s in by_variant.values():
            for k in ANGLE_NAMES:  # every measurable angle is counted, measured or missing
                assert s[k]["n"] + s[k]["missing"] == sum(not math.isnan(t[k]) for t in truth.values())
    poly = stats["ground-truth polygons"]

    def total(name):
        return sum(poly[name][k]["mae"] for k in ANGLE_NAMES)

    assert total(sbs.Variant().name) <= total(sbs.Variant("rectangle").name)
    assert poly[sbs.Variant().name]["SS"]["mae"] < poly[sbs.Variant(frame=False).name]["SS"]["mae"]  # turned photo


def test_table_row_shows_mae_and_the_share_measured():
    rows = [image_row("a", true={"TK": 10.0, "LL": 20.0}, pred={"TK": 12.0, "LL": math.nan}),
            image_row("b", true={"TK": 30.0, "LL": 40.0}, pred={"TK": 29.0, "LL": 41.0})]
    s = summarize(per_image_table(rows))
    assert sbs.measured_fraction(s) == pytest.approx(3 / 4)
    line = sbs.table_row(["model", "ours"], s)
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:4] == ["model", "ours", "1.50", "1.00"] and cells[-1] == "75%"
    assert cells[2 + ANGLE_NAMES.index("SS")] == "—"


def test_difficulty_phantoms_are_made_once_then_reused(tmp_path):
    root = sbs.ensure_phantom(tmp_path, "easy", 2, 5)
    stamp = (root / "phantom.json").stat().st_mtime_ns
    assert sbs.ensure_phantom(tmp_path, "easy", 2, 5) == root
    assert (root / "phantom.json").stat().st_mtime_ns == stamp
    meta = json.loads((root / "phantom.json").read_text())
    (root / "phantom.json").write_text(json.dumps({**meta, "seed": 6}))
    with pytest.raises(SystemExit, match="not a 2-image 'easy' phantom of seed 5"):
        sbs.ensure_phantom(tmp_path, "easy", 2, 5)


# ------------------------------------------------------------------------------------------------
# speed: statistics and timing on plain numbers

def test_spread_and_paired_ratio():
    s = speed.spread([3.0, 1.0, 2.0])
    assert (s["median"], s["min"], s["max"], s["n"]) == (2.0, 1.0, 3.0, 3)
    r = speed.paired_ratio([2.0, 4.0, 9.0], [1.0, 2.0, 3.0])
    assert r["values"] == [2.0, 2.0, 3.0] and r["median"] == 2.0
    with pytest.raises(ValueError, match="equally long"):
        speed.paired_ratio([1.0], [1.0, 2.0])


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def spend(self, seconds):
        self.now += seconds
        return seconds


def test_timed_repeats_interleaves_jobs_and_leaves_out_warmup_and_preparation():
    clock = FakeClock()
    calls = []

    def job(factor):
        def fn(x):
            calls.append((factor, x))
            return clock.spend(factor * x)
        return fn

    series, last = speed.timed_repeats({"a": job(1), "b": job(3)}, [1, 2, 3], repeats=2, warmup=1,
                                       prepare=lambda x: clock.spend(100.0) and x, clock=clock)
    assert series == {"a": [2.0, 2.0], "b": [6.0, 6.0]}
    assert last == {"a": [1, 2, 3], "b": [3, 6, 9]}
    assert calls[:2] == [(1, 1), (3, 1)]  # one warm-up call per job, untimed
    assert [f for f, _ in calls[2:]] == [1, 1, 1, 3, 3, 3] * 2  # every repeat runs every job in turn
    assert speed.paired_ratio(series["b"], series["a"])["median"] == 3.0


def test_ratios_pair_only_series_that_exist():
    inference = {"fast": [1.0, 2.0], "paper": [3.0, 5.0]}
    phantom = {"workers=1": [4.0, 4.0], "workers=2": [6.0, 8.0]}
    r = speed.ratios(inference, {}, phantom)
    assert set(r) == {"inference paper / fast (same input)", "phantom images/s workers=2 / workers=1"}
    assert r["inference paper / fast (same input)"]["values"] == [3.0, 2.5]
    assert r["phantom images/s workers=2 / workers=1"]["median"] == 1.75


def test_inference_configs_are_the_two_architectures_with_random_weights(phantom):
    fast, paper = (speed.inference_cfg(m, 840, 360) for m in ("fast", "paper"))
    for cfg in (fast, paper):
        assert (cfg.SPINE.INPUT.HEIGHT, cfg.SPINE.INPUT.WIDTH, cfg.SPINE.INPUT.FIT) == (840, 360, "resize")
        assert cfg.MODEL.WEIGHTS == "" and cfg.MODEL.DEVICE == "cpu"
    assert (fast.MODEL.RESNETS.DEPTH, fast.MODEL.RESNETS.NORM) == (18, "GN")
    assert (paper.MODEL.RESNETS.DEPTH, paper.MODEL.RESNETS.NORM) == (50, "FrozenBN")  # as with COCO weights
    from spine_d2.data.images import read_image
    from spine_d2.engine.inference import SpinePredictor

    predictor = SpinePredictor(fast)
    speed.steady_boxes(predictor.model)
    image = read_image(phantom[1][0]["file_name"])
    out = predictor(image)
    assert len(out) == fast.TEST.DETECTIONS_PER_IMAGE and out.pred_masks.shape[1:] == image.shape[:2]


# ------------------------------------------------------------------------------------------------
# _common and the scripts that use it

def test_options_and_lists():
    o = _common.options(["n=3", "difficulties=[easy, hard]"], {"n": "all", "difficulties": "x"}, "s.py")
    assert o["n"] == "3" and _common.as_list(o["difficulties"]) == ["easy", "hard"]
    with pytest.raises(SystemExit, match="unknown option 'm=1'"):
        _common.options(["m=1"], {"n": "all"}, "s.py")
    with pytest.raises(SystemExit, match="unknown option 'n'"):
        _common.options(["n"], {"n": "all"}, "s.py")


def test_provenance_names_command_date_machine_and_commit():
    meta = _common.provenance("benchmarks/x.py", ["a=1", "b=two words"], ("benchmarks/_common.py",),
                              torch_threads=2, root="r")
    assert meta["command"] == "python benchmarks/x.py a=1 'b=two words'"
    assert meta["date"].endswith("UTC") and "torch 2 threads" in meta["machine"] and meta["root"] == "r"
    assert meta["commit"] == "unknown" or len(meta["commit"].split()[0]) >= 7
    line = _common.provenance_line(meta, 12.3)
    assert meta["command"] in line and meta["commit"] in line and line.endswith("12 s")


def test_phantom_truth_is_checked_against_the_csv(phantom, tmp_path):
    root, records = phantom
    truth = _common.phantom_truth(records, root)
    assert set(truth) == {r["image"] for r in records}
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    csv = (copy / "measurements.csv").read_text().splitlines()
    head, first = csv[0].split(","), csv[1].split(",")
    col = head.index("TK")
    first[col] = f"{float(first[col]) + 2:.4f}"
    (copy / "measurements.csv").write_text("\n".join([csv[0], ",".join(first), *csv[2:]]) + "\n")
    with pytest.raises(SystemExit, match="disagrees with the JSON ground truth by 2"):
        _common.phantom_truth(records, copy)


def test_measure_geometry_still_measures_and_records(phantom, tmp_path):
    root, _ = phantom
    measure_geometry.main([f"root={root}", f"out={tmp_path}", "frames=truth", "sources=polygons", "methods=paper"])
    result = json.loads((tmp_path / "geometry.json").read_text())
    assert result["meta"]["command"].startswith("python benchmarks/measure_geometry.py root=")
    assert result["meta"]["images"] == 3 and result["meta"]["commit"]
    # the stored homography: what is left is the outline against the rim points (projection)
    assert result["results"]["paper/polygons/truth"]["TK"]["mae"] < 2.0
    assert "commit" in (tmp_path / "geometry.md").read_text()


def test_frame_summary_names_the_corrections_that_turn_the_photo_wrong():
    """The median hides a screenshot corrected by a 20° turn it never had: listed by name."""
    def record(image, kind):
        return {"image": image, "height": 400, "width": 300, "spine_d2": {"capture": {"kind": kind}, "homography": np.eye(3).tolist()}}

    records = [record("a", "screenshot"), record("b", "screenshot"), record("c", "photo")]
    frames = {"a": given_frame(np.eye(3)), "b": given_frame(_rotation(20.0)), "c": given_frame(_rotation(2.0))}
    out = measure_geometry.frame_summary(records, frames)
    assert list(out["screenshot"]["wrong"]) == ["b"]
    assert out["screenshot"]["wrong"]["b"]["max_angle_error_deg"] == pytest.approx(20.0, abs=0.1)
    assert out["screenshot"]["wrong"]["b"]["uncorrected_deg"] == pytest.approx(0.0, abs=1e-9)
    assert out["photo"]["wrong"] == {}  # 2° is not listed


def _rotation(deg: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 150.0 - 150.0 * c + 200.0 * s], [s, c, 200.0 - 150.0 * s - 200.0 * c], [0.0, 0.0, 1.0]])


def test_record_accuracy_adds_provenance_to_the_summary(tmp_path, monkeypatch):
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"dice_mean": 0.9, "TK": {"mae": 1.0}}))
    monkeypatch.setattr(record_accuracy, "RESULTS", tmp_path)
    record_accuracy.main(str(summary), "demo", "make demo", "a note")
    rec = json.loads((tmp_path / "accuracy-demo.json").read_text())
    assert (rec["config"], rec["command"], rec["note"], rec["dice_mean"]) == ("demo", "make demo", "a note", 0.9)
    assert rec["date"] and rec["commit"] and "core" in rec["machine"] and "load" not in rec["machine"]


# ------------------------------------------------------------------------------------------------
# junction: an angle's error against the T12–L1 disc angle or the trunk's lean of the phantom

def test_the_t12_l1_disc_angle_the_trunks_lean_and_errors_binned_by_them():
    import junction

    flat = [[0.0, 0.0], [30.0, 0.0]]
    turned = [[0.0, 0.0], [30.0 * math.cos(math.radians(160)), 30.0 * math.sin(math.radians(160))]]  # 20° the other way
    assert junction.disc_angle({"T12": {"inferior": flat}, "L1": {"superior": turned}}) == pytest.approx(20.0)
    assert junction.disc_angle({"T12": {"inferior": turned[::-1]}, "L1": {"superior": flat}}) == pytest.approx(20.0)
    assert junction.disc_angle({"T12": {"superior": flat}, "L1": {"superior": flat}}) is None
    bins = junction.error_by_bins([(2.0, 1.0), (8.0, 3.0), (12.0, 5.0), (25.0, math.nan), (math.nan, 9.0)],
                                  edges=(0, 10, 20, 90))
    assert [(b["n"], b["mae"]) for b in bins[:2]] == [(2, 2.0), (1, 5.0)]
    assert bins[2]["n"] == 0 and math.isnan(bins[2]["mae"])
    up = {"S1": {"superior": [[10.0, 100.0], [-10.0, 100.0]]}, "T5": {"superior": [[10.0, 0.0], [-10.0, 0.0]]}}
    assert junction.trunk_lean(up) == pytest.approx(0.0)
    ahead = {**up, "T5": {"superior": [[110.0, 0.0], [90.0, 0.0]]}}  # T5 100 px ahead, 100 px up
    assert junction.trunk_lean(ahead) == pytest.approx(45.0)
    assert junction.trunk_lean({"T5": up["T5"]}) is None


def test_the_central_rays_angle_to_s1_and_t5_and_signed_errors_binned_by_it():
    import junction

    plate = [[420.0, 690.0], [380.0, 710.0]]  # midpoint 700 px down a film 800 px high
    block = {"capture": {"exposure": "single", "film_size": [500, 800], "film_px_per_mm": 2.0,
                         "sid_mm": 1300.0, "oid_mm": 200.0},
             "endplates": {"S1": {"superior": plate}}}
    # 150 mm below the middle row, 1100 mm from the source
    assert junction.s1_beam(block) == pytest.approx(math.degrees(math.atan(150.0 / 1100.0)))
    above = {**block, "endplates": {"S1": {"superior": [[420.0, 90.0], [380.0, 110.0]]}}}
    assert junction.s1_beam(above) == pytest.approx(-math.degrees(math.atan(150.0 / 1100.0)))
    assert junction.s1_beam({**block, "capture": {**block["capture"], "exposure": "stitched"}}) is None
    assert junction.s1_beam({**block, "endplates": {"L5": {"inferior": plate}}}) is None
    t5 = {**block, "endplates": {"T5": {"superior": [[420.0, 90.0], [380.0, 110.0]]}, "S1": {"superior": plate}}}
    assert junction.t5_beam(t5) == pytest.approx(-math.degrees(math.atan(150.0 / 1100.0)))
    assert junction.t5_beam(block) is None and "t5_beam" in junction.PROPERTIES
    bins = junction.error_by_bins([(2.0, 3.0), (3.0, -1.0), (9.0, 4.0), (9.5, 6.0)], edges=(0, 5, 10))
    assert [(b["n"], b["mae"], b["bias"]) for b in bins] == [(2, 2.0, 1.0), (2, 5.0, 5.0)]


def test_errors_by_how_the_film_was_taken_one_row_per_kind(phantom, tmp_path, monkeypatch):
    import junction

    root, _ = phantom
    stems = sorted(p.stem for p in (root / "annotations").glob("*.json"))
    kinds = {s: json.loads((root / "annotations" / f"{s}.json").read_text())["spine_d2"]["capture"]["kind"]
             for s in stems}
    assert sorted(kinds.values()) == ["photo", "photo", "screenshot"]
    errors = dict(zip(stems, (1.0, 4.0, 2.5)))
    table = tmp_path / "per_image.csv"
    table.write_text("image,TK_true,TK_pred\n" + "".join(f"{s},30.0,{30.0 + e}\n" for s, e in errors.items()))
    monkeypatch.setattr(junction, "RESULTS", tmp_path)
    junction.main([f"per_image={table}", f"root={root}", "by=capture", "angle=TK", "name=t"])
    rec = json.loads((tmp_path / "junction-t.json").read_text())
    photos = [e for s, e in errors.items() if kinds[s] == "photo"]
    shot = [e for s, e in errors.items() if kinds[s] == "screenshot"]
    assert rec["values"]["counts"] == {"photo": 2, "screenshot": 1}
    assert [(b["kind"], b["n"]) for b in rec["bins"]] == [("photo", 2), ("screenshot", 1)]
    assert rec["bins"][0]["mae"] == pytest.approx(np.mean(photos)) and rec["bins"][1]["mae"] == pytest.approx(shot[0])
    assert "| screenshot | 1 |" in (tmp_path / "junction-t.md").read_text()
    assert junction.error_by_kind([("a", 1.0), (None, 5.0), ("a", math.nan), ("b", -2.0)]) == [
        {"kind": "a", "n": 1, "mae": 1.0, "median": 1.0, "bias": 1.0},
        {"kind": "b", "n": 1, "mae": 2.0, "median": 2.0, "bias": -2.0}]
    with pytest.raises(SystemExit, match="no LL_pred"):
        junction.main([f"per_image={table}", f"root={root}", "by=capture", "angle=LL", "name=t"])
    # a number of the film's truth, binned: its true sacral slope
    ss = {s: json.loads((root / "annotations" / f"{s}.json").read_text())["spine_d2"]["angles"]["SS"] for s in stems}
    junction.main([f"per_image={table}", f"root={root}", "by=SS", "angle=TK", "name=t", "edges=-90,35,90"])
    bins = json.loads((tmp_path / "junction-t.json").read_text())["bins"]
    for b in bins:
        inside = [e for s, e in errors.items() if ss[s] is not None and b["from"] <= ss[s] < b["to"]]
        assert b["n"] == len(inside) and (not inside or b["mae"] == pytest.approx(np.mean(inside)))
    assert sum(b["n"] for b in bins) == sum(v is not None for v in ss.values())
    # the same within each kind of capture: photos and the screenshot binned apart
    junction.main([f"per_image={table}", f"root={root}", "by=SS", "angle=TK", "name=t", "edges=-90,90",
                   "within=capture"])
    rec = json.loads((tmp_path / "junction-t.json").read_text())
    assert rec["within"] == "capture"
    for b in rec["bins"]:
        inside = [e for s, e in errors.items() if kinds[s] == b["kind"] and ss[s] is not None]
        assert b["n"] == len(inside) and (not inside or b["mae"] == pytest.approx(np.mean(inside)))
    assert sorted(b["kind"] for b in rec["bins"]) == ["photo", "screenshot"]
    assert "| photo | -90–90° |" in (tmp_path / "junction-t.md").read_text()
    with pytest.raises(SystemExit, match="within= takes a kind"):
        junction.main([f"per_image={table}", f"root={root}", "by=capture", "angle=TK", "name=t", "within=view"])


# ------------------------------------------------------------------------------------------------
# average_checkpoints: a run's checkpoints averaged into one loadable model

def test_checkpoints_averaged_parameter_by_parameter_beside_their_config(tmp_path):
    import torch

    import average_checkpoints

    run = tmp_path / "run"
    run.mkdir()
    (run / "d2_config.yaml").write_text("MODEL:\n  META_ARCHITECTURE: GeneralizedRCNN\n")
    for i, scale in enumerate((1.0, 3.0)):
        torch.save({"model": {"w": torch.full((2, 2), scale), "n": torch.tensor([2 * i], dtype=torch.int64)},
                    "trainer": {"iteration": i}}, run / f"model_{i}.pth")
    out = tmp_path / "avg"
    average_checkpoints.main([f"out={out}", f"checkpoints={run / 'model_0.pth'},{run / 'model_1.pth'}"])
    state = torch.load(out / "model_final.pth", weights_only=False)
    assert torch.equal(state["model"]["w"], torch.full((2, 2), 2.0)) and state["model"]["n"].dtype == torch.int64
    assert int(state["model"]["n"]) == 1 and set(state) == {"model"}
    assert (out / "d2_config.yaml").read_text() == (run / "d2_config.yaml").read_text()
    torch.save({"model": {"v": torch.zeros(1)}}, run / "other.pth")
    with pytest.raises(SystemExit, match="other parameters"):
        average_checkpoints.main([f"out={out}", f"checkpoints={run / 'model_0.pth'},{run / 'other.pth'}"])


# ------------------------------------------------------------------------------------------------
# reads: what measure.reads_apart withholds, measure.reads_trust_clean takes, measure.reads_mean changes


def _film(true, fused, a, b, clean=(False, False)):
    """A film as reads.py writes it, its "mean" from `mean_of_reads` as `read_angles` takes it;
    `clean`: whether each read made no judgement call (on every angle)."""
    nan = float("nan")
    full = lambda d: {k: d.get(k, nan) for k in ANGLE_NAMES}  # noqa: E731
    angles = lambda d: {k: Angle(v) for k, v in full(d).items()}  # noqa: E731
    mean = mean_of_reads(angles(fused), [angles(a), angles(b)])
    return {"true": full(true), "fused": full(fused), "reads": [full(a), full(b)],
            "clean": [{k: c for k in ANGLE_NAMES} for c in clean], "mean": {k: x.value for k, x in mean.items()}}


def test_the_reads_rule_table_counts_what_it_withholds_and_how_far_off_it_was():
    import reads

    films = [_film({"TK": 40}, {"TK": 41}, {"TK": 41}, {"TK": 43}),    # agree: kept
             _film({"TK": 40}, {"TK": 62}, {"TK": 62}, {"TK": 39}, (False, True)),   # 23° apart, the fused
             _film({"TK": 40}, {"TK": 40.5}, {"TK": 40}, {"TK": 58}, (True, False)),  # 22° off; 18°, right
             _film({"TK": 40}, {"TK": 45}, {"TK": 45}, {}),            # one read has none: kept
             _film({"TK": 40}, {}, {"TK": 10}, {"TK": 70}),            # not measured: nothing to withhold
             _film({"PT": 20}, {"PT": 18}, {"PT": 18}, {"PT": 21})]    # PT: the reads' mean, 19.5°
    assert reads.withheld(films[1], "TK", 20.0) and not reads.withheld(films[2], "TK", 20.0)
    assert reads.withheld(films[2], "TK", 15.0) and not reads.withheld(films[3], "TK", 1.0)
    assert not reads.withheld(films[4], "TK", 1.0)
    rows = {(r["angle"], r["apart"]): r for r in reads.rule_table(films, [15.0, 20.0])}
    t20, t15 = rows["TK", 20.0], rows["TK", 15.0]
    assert (t20["films"], t20["measured"], t20["mae"]) == (5, 4, pytest.approx((1 + 22 + 0.5 + 5) / 4))
    assert (rows["PT", 20.0]["mae_with"], rows["PT", 20.0]["mae_mean"]) == (pytest.approx(2.0), pytest.approx(0.5))
    assert (t20["withheld"], t20["over_5"], t20["over_10"], t20["measured_with"]) == (1, 1, 1, 3)
    assert t20["mae_with"] == pytest.approx((1 + 0.5 + 5) / 3)
    assert t20["mae_mean"] == pytest.approx(t20["mae_with"])  # TK: the fused
    assert (t15["withheld"], t15["over_5"], t15["measured_with"]) == (2, 1, 2)
    assert rows["LL", 20.0]["films"] == 0 and math.isnan(rows["LL", 20.0]["mae"])
    # the clean read taken back: the mirror image's own 39° (1° off), at 15° also the photo's, the fused 40.5°
    assert (t20["taken"], t20["taken_nearer"], t20["measured_clean"]) == (1, 1, 4)
    assert t20["mae_clean"] == pytest.approx((1 + 0.5 + 5 + 1) / 4)
    assert (t15["taken"], t15["taken_nearer"], t15["mae_clean"]) == (2, 2, pytest.approx((1 + 5 + 1 + 0.5) / 4))
    wrong = reads.rule_table([_film({"TK": 40}, {"TK": 62}, {"TK": 62}, {"TK": 39}, (True, False))], [20.0])[0]
    assert (wrong["taken"], wrong["taken_nearer"], wrong["mae_clean"]) == (1, 0, pytest.approx(22))
    both = reads.rule_table([_film({"TK": 40}, {"TK": 62}, {"TK": 62}, {"TK": 39}, (True, True))], [20.0])[0]
    assert (both["taken"], both["measured_clean"]) == (0, 0)  # both clean: no read to trust over the other
    sacrum = reads.rule_table([_film({"SS": 40}, {"SS": 62}, {"SS": 62}, {"SS": 39}, (False, True))], [20.0])
    assert [r["taken"] for r in sacrum if r["angle"] == "SS"] == [0]  # S1's plate: not settled by a clean read
    lines = reads.markdown({"name": "t", "roots": "x", "split": "all", "command": "c", "date": "d", "machine": "m",
                            "python": "3", "commit": "abc"}, list(rows.values()), 6, 1.0)
    assert "| TK | 20° | 7.12° | 80.0 % | 2.17° | 60.0 % | 1 | 1 | 1 | 1 (1) | 1.88° | 80.0 % | 2.17° |" in lines


def test_reads_runs_a_checkpoint_over_a_phantom_folder(smoke_run, tmp_path, monkeypatch):
    """The smoke model has no corner head, so no mirrored run: every film has no reads and the
    rule withholds nothing; the files name the command and hold every film."""
    import reads

    monkeypatch.setattr(reads, "RESULTS", tmp_path)
    root, run_dir = smoke_run
    reads.main([f"checkpoint={run_dir / 'model_final.pth'}", f"root={root}", "apart=20", "name=smoke"])
    doc = json.loads((tmp_path / "reads-smoke.json").read_text())
    assert len(doc["films"]) == 6 and all(f["reads"] == [] for f in doc["films"])
    assert all(f["mean"] == f["fused"] for f in doc["films"])  # no reads: nothing to average
    assert doc["command"].startswith("python benchmarks/reads.py checkpoint=") and not doc["amp"]
    assert len(doc["table"]) == len(ANGLE_NAMES) and all(r["withheld"] == 0 for r in doc["table"])
    assert (tmp_path / "reads-smoke.md").read_text().startswith("# The photo's and its mirror image's reads: smoke")
    with pytest.raises(SystemExit, match="give checkpoint=FILE root=DIR"):
        reads.main([f"root={root}"])


def test_the_tiebreak_benchmark_reads_each_take_from_the_measurements_flags():
    import tiebreak

    from spine_d2.measure.reads import measure_with_reads

    fused = toy_spine(ll=45.0)
    reads = [toy_spine(ll=44.0).instances(), toy_spine(ll=70.0).instances()]
    for looks, k, value in (((46.0, 41.0), 0, 45.0), ((72.0, 66.0), 1, 70.0)):
        m = measure_with_reads(fused.instances(), reads, fused.shape,
                               looks=lambda lls=looks: [toy_spine(ll=ll).instances() for ll in lls])
        (take,) = tiebreak.takes(m.flags, m.angles, {"LL": 60.0, "TK": 40.0})
        assert take["angle"] == "LL" and take["reads"] == [44.0, 70.0] and take["taken"] == k
        assert take["value"] == pytest.approx(value, abs=0.1)
        assert take["error"] == pytest.approx(abs(value - 60.0), abs=0.1)
        assert take["nearer"] is (k == 1)  # 70° is nearer 60° than 44°
    assert tiebreak.takes(measure_with_reads(fused.instances(), reads, fused.shape).flags, {}, {}) == []


def test_tiebreak_runs_a_checkpoint_over_a_phantom_folder(smoke_run, tmp_path, monkeypatch):
    """The smoke model has no corner head, so no mirrored run: no reads, no looks, no takes."""
    import tiebreak

    monkeypatch.setattr(tiebreak, "RESULTS", tmp_path)
    root, run_dir = smoke_run
    tiebreak.main([f"checkpoint={run_dir / 'model_final.pth'}", f"root={root}", "split=all", "name=smoke"])
    doc = json.loads((tmp_path / "tiebreak-smoke.json").read_text())
    assert len(doc["films"]) == 6 and all(f["looks_s"] is None and f["takes"] == [] for f in doc["films"])
    assert all(f["seconds"] > 0 for f in doc["films"]) and doc["turns"] == [4.0, -4.0]
    assert (tmp_path / "tiebreak-smoke.md").read_text().startswith("# Turned looks breaking the reads' ties: smoke")
    with pytest.raises(SystemExit, match="give checkpoint=FILE"):
        tiebreak.main(["root=x"])


def test_plate_errors_in_the_radiograph_frame_wrapped_and_gross_ones_apart():
    import plates

    from spine_d2.frames import apply_homography

    H = np.array([[0.9, 0.05, 30.0], [-0.04, 1.1, 12.0], [1e-5, 2e-5, 1.0]])  # radiograph → photo
    truth = {"T5": {"superior": [[100.0, 200.0], [140.0, 204.0]]}, "L1": {"superior": [[90.0, 400.0], [135.0, 398.0]]}}
    c, s3 = np.cos(np.radians(3.0)), np.sin(np.radians(3.0))
    (x0, y0), (x1, y1) = truth["L1"]["superior"]
    turned = [[x0, y0], [x0 + c * (x1 - x0) - s3 * (y1 - y0), y0 + s3 * (x1 - x0) + c * (y1 - y0)]]  # 3° (y down)
    drawn = {"T5": {"superior": apply_homography(H, truth["T5"]["superior"][::-1]).tolist(),  # drawn the other way
                    "inferior": [[0.0, 0.0], [10.0, 0.0]]},                                  # no truth: not compared
             "L1": {"superior": apply_homography(H, turned).tolist()}}
    errors = plates.plate_errors(drawn, truth, H)
    assert set(errors) == {"T5 superior", "L1 superior"}
    assert errors["T5 superior"] == pytest.approx(0.0, abs=1e-6)  # a direction, not an arrow
    assert errors["L1 superior"] == pytest.approx(3.0, abs=1e-6)
    s = plates.summary([{"errors": errors}, {"errors": {"T12 inferior": -2.0, "L5 inferior": 40.0}}])
    assert (s["films"], s["plates"], s["gross"]) == (2, 4, 1)
    assert s["mae"] == pytest.approx(5.0 / 3) and s["key"]["L1 superior"] == pytest.approx(3.0)
    assert s["key"]["L5 inferior"] is None  # its one plate was gross


@pytest.mark.parametrize("facing", [1, -1])
def test_a_plate_read_towards_a_typical_spine_leans_negative(facing):
    """Films of TK 20°–60° facing either way (a mirror flips each plate's direction), whose T5
    superior plate is read 10 % of the way back to the mean TK's (a share of TK's error of −0.1 per
    degree) and whose T12 inferior plate is right: T5's lean −0.1, T12's 0; signs follow the facing."""
    import plates

    def seg(deg):  # a plate through the origin at `deg` (image axes, y down)
        t = np.radians(deg)
        return [[0.0, 0.0], [40.0 * np.cos(t), 40.0 * facing * np.sin(t)]]

    films = []
    for tk in (20.0, 30.0, 40.0, 50.0, 60.0):
        truth = {"T5": {"superior": seg(tk / 2)}, "T12": {"inferior": seg(-tk / 2)}}
        signs = plates.plate_signs(truth, {"TK": tk})
        assert signs == {"T5 superior": facing, "T12 inferior": -facing}
        share = -0.1 * (tk - 40.0)  # TK's error through T5's plate
        films.append({"angles": {"TK": tk}, "signs": signs,
                      "errors": {"T5 superior": share * signs["T5 superior"], "T12 inferior": 0.0}})
    lean = plates.leans(films)
    assert lean["T5 superior"] == pytest.approx(-0.1) and lean["T12 inferior"] == pytest.approx(0.0, abs=1e-9)
    assert lean["L1 superior"] is None  # no film gives it


def test_plates_runs_a_checkpoint_over_a_phantom_folder(smoke_run, tmp_path, monkeypatch):
    import plates

    monkeypatch.setattr(plates, "RESULTS", tmp_path)
    root, run_dir = smoke_run
    plates.main([f"checkpoint={run_dir / 'model_final.pth'}", f"root={root}", "name=smoke"])
    doc = json.loads((tmp_path / "plates-smoke.json").read_text())
    assert len(doc["films"]) == 6 and doc["table"][str(root)]["films"] == 6
    assert all(abs(e) <= 90 for f in doc["films"] for e in f["errors"].values())
    assert (tmp_path / "plates-smoke.md").read_text().startswith("# Endplates against the truth: smoke")
    assert set(doc["table"][str(root)]["lean"]) == {"T5 superior", "T12 inferior", "L1 superior", "L5 inferior"}


# ------------------------------------------------------------------------------------------------
# compare_evaluations: two settings' evaluations of the same films, paired
def _evaluation(folder, rows):
    (folder / "eval").mkdir(parents=True)
    per_image_table(rows).to_csv(folder / "eval" / "per_image.csv", index=False)
    return folder


def test_two_evaluations_compared_film_by_film_pooled_over_pairs(tmp_path, monkeypatch, capsys):
    true = {"TK": 40.0, "LL": 50.0}
    left_out = Angle(math.nan, "L5 inferior: endplate along a straight edge of the photo")
    a1 = _evaluation(tmp_path / "a1", [image_row("p1", true=true, pred={"TK": 42.0, "LL": 70.0}),
                                       image_row("p2", true=true, pred={"TK": 39.0, "LL": 51.0})])
    b1 = _evaluation(tmp_path / "b1", [image_row("p1", true=true, pred={"TK": 42.0, "LL": left_out}),
                                       image_row("p2", true=true, pred={"TK": 39.0, "LL": 51.0})])
    a2 = _evaluation(tmp_path / "a2", [image_row("q1", true={"TK": 30.0}, pred={"TK": 33.0})])
    b2 = _evaluation(tmp_path / "b2", [image_row("q1", true={"TK": 30.0}, pred={"TK": 31.0})])
    compare_evaluations.main([f"before={a1},{a2}", f"after={b1},{b2}", "name=t", "what=a change",
                              f"out={tmp_path}"])
    rec = json.loads((tmp_path / "compare-t.json").read_text())
    tk, ll = rec["angles"]["TK"], rec["angles"]["LL"]
    assert tk["before"]["mae"] == pytest.approx(2.0) and tk["after"]["mae"] == pytest.approx(4 / 3)
    assert ll["before"]["mae"] == pytest.approx(10.5) and ll["before"]["share"] == 1.0
    assert ll["after"]["mae"] == pytest.approx(1.0) and ll["after"]["share"] == 0.5
    assert [(m["image"], m["angle"], m["error_before"], m["error_after"]) for m in rec["moved"]] == \
        [("p1", "LL", 20.0, None), ("q1", "TK", 3.0, 1.0)]
    md = (tmp_path / "compare-t.md").read_text()
    assert "# a change" in md and "20.0° off → left out (L5 inferior: endplate along a straight edge" in md
    assert rec["meta"]["commit"]
    assert "misnamed" not in rec and "misnamed against" not in md  # neither checked the level names
    with pytest.raises(SystemExit, match="different films"):
        compare_evaluations.main([f"before={a1}", f"after={b2}", f"out={tmp_path}"])


def test_films_whose_level_names_changed_are_listed(tmp_path):
    """Both evaluations checked the names: p1 mended, p2 newly misnamed, p3 misnamed alike in both."""
    def rows(names):
        return [image_row(im, true={"TK": 40.0}, pred={"TK": 41.0},
                          extra={"levels_named": 17, "levels_misnamed": int(bool(m)), "misnamed": m})
                for im, m in names.items()]
    a = _evaluation(tmp_path / "a", rows({"p1": "T5–T12 on T4–T11", "p2": "", "p3": "T2 on T1"}))
    b = _evaluation(tmp_path / "b", rows({"p1": "", "p2": "L5 on S1", "p3": "T2 on T1"}))
    compare_evaluations.main([f"before={a}", f"after={b}", "name=n", f"out={tmp_path}"])
    rec = json.loads((tmp_path / "compare-n.json").read_text())
    assert rec["misnamed"] == {"before": 2, "after": 2, "checked": 3}
    assert [(r["image"], r["before"], r["after"]) for r in rec["renamed"]] == \
        [("p1", "T5–T12 on T4–T11", ""), ("p2", "", "L5 on S1")]
    md = (tmp_path / "compare-n.md").read_text()
    assert "Films with a level misnamed against the annotation: 2 → 2 of 3" in md
    assert "- b p1: T5–T12 on T4–T11 → named right" in md and "- b p2: named right → L5 on S1" in md


def test_the_inverted_copy_holds_each_photo_of_the_split_as_its_negative_with_its_truth(tmp_path):
    """benchmarks/inverted.py: a split's photos shown inverted, lossless, beside their annotations
    and the split's measurements, loadable as a dataset whose truth is the original's."""
    root = generate_dataset(tmp_path / "ph", 4, seed=21, difficulty="easy", workers=1, progress=False)
    (root / "splits").mkdir(exist_ok=True)
    (root / "splits" / "test.txt").write_text("phantom_0001\nphantom_0003\n")
    (root / "splits" / "train.txt").write_text("phantom_0000\nphantom_0002\n")
    out = tmp_path / "inverted"
    assert inverted.inverted_copy(root, "test", out) == ["phantom_0001", "phantom_0003"]
    originals = {r["image"]: r for r in load_labelme_dataset(root)}
    copies = load_labelme_dataset(out)
    assert [r["image"] for r in copies] == ["phantom_0001", "phantom_0003"]
    for r in copies:
        photo = cv2.imread(originals[r["image"]]["file_name"])
        assert np.array_equal(cv2.imread(r["file_name"]), 255 - photo)
        assert r["spine_d2"]["angles"] == originals[r["image"]]["spine_d2"]["angles"]
    sheet = (out / "measurements.csv").read_text().splitlines()
    assert sheet[0].startswith("image,") and [line.split(",")[0] for line in sheet[1:]] == ["phantom_0001", "phantom_0003"]
    with pytest.raises(SystemExit, match="exists"):
        inverted.inverted_copy(root, "test", out)
    assert len(inverted.inverted_copy(root, "all", tmp_path / "whole")) == 4
    with pytest.raises(SystemExit, match="split=val: choose one of train, test, all"):
        inverted.inverted_copy(root, "val", tmp_path / "val")
