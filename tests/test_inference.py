"""A smoke-trained model through the tools users run: train → predict (with a corrupt photo) → evaluate.

One tiny phantom and one smoke run per test session (the `smoke_run` fixture of conftest.py; real
training, seconds to a minute on a CPU); the tools are run as subprocesses, as a user runs them.
"""
from __future__ import annotations

import functools
import logging
import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import PIL.Image
import pytest
import yaml

from conftest import run_tool
from spine_d2.angles import ANGLE_NAMES
from spine_d2.data.images import read_image
from spine_d2.engine.config import build_d2_cfg, load_d2_cfg
from spine_d2.engine.inference import SpinePredictor, config_for_checkpoint, load_model
from test_engine_support import smoke_cfg


def test_training_run_writes_its_artifacts_and_spine_metrics(smoke_run):
    _, run_dir = smoke_run
    for name in ("model_final.pth", "d2_config.yaml", "metrics.json", "last_checkpoint"):
        assert (run_dir / name).is_file(), name
    records = [json.loads(line) for line in (run_dir / "metrics.json").read_text().splitlines()]
    evals = [r for r in records if "spine/dice_mean" in r]
    assert evals, "the spine evaluator's results must reach the event storage (metrics.json)"
    per_image = pd.read_csv(run_dir / "eval" / "per_image.csv")
    assert evals[-1]["spine/dice_mean"] == pytest.approx(per_image["dice"].mean(), abs=1e-9)
    report = run_dir / "eval" / "report.html"
    assert report.is_file() and "Bland" in report.read_text()


def test_the_model_built_from_a_checkpoint_keeps_the_runs_test_settings(smoke_run, tmp_path):
    """test.nms_thresh, score_thresh and detections_per_image reach the ROI heads of the model that
    evaluate (config_for_checkpoint → load_model), predict and serve (SpinePredictor) build from a
    run's checkpoint and its d2_config.yaml."""
    _, run_dir = smoke_run
    run = tmp_path / "run"  # the smoke run's weights, in a run dumped with other test settings
    run.mkdir()
    shutil.copy(run_dir / "model_final.pth", run)
    trained = build_d2_cfg(smoke_cfg(run, "test.nms_thresh=0.37", "test.score_thresh=0.2",
                                     "test.detections_per_image=17"), datasets={"train": "x", "test": "y"})
    (run / "d2_config.yaml").write_text(trained.dump())
    evaluated = load_model(config_for_checkpoint(run / "model_final.pth", "cpu"))
    predicted = SpinePredictor.from_checkpoint(run / "model_final.pth", "cpu", highres=True).model
    for model in (evaluated, predicted):
        box = model.roi_heads.box_predictor
        assert (box.test_nms_thresh, box.test_score_thresh, box.test_topk_per_image) == (0.37, 0.2, 17)


def _dumped_before(smoke_run, tmp_path, *keys) -> Path:
    """A checkpoint beside the smoke run's config less the settings `keys` (dotted, e.g.
    "SPINE.TIEBREAK_TURNS"): a model dumped before those settings existed. Only the config is read."""
    ck = tmp_path / "before" / "model.pth"
    ck.parent.mkdir()
    ck.write_bytes(b"")
    cfg = yaml.safe_load((smoke_run[1] / "d2_config.yaml").read_text())
    for key in keys:
        *parents, leaf = key.split(".")
        node = functools.reduce(dict.__getitem__, parents, cfg)
        del node[leaf]  # a KeyError: the smoke run's config lacks the key, nothing to test
    ck.with_suffix(".yaml").write_text(yaml.safe_dump(cfg))
    return ck


def test_s1s_corners_from_the_windows_are_on_unless_switched_off(smoke_run, tmp_path):
    ck = smoke_run[1] / "model_final.pth"
    assert config_for_checkpoint(ck, "cpu").SPINE.HIGHRES.SACRUM_CORNERS is True
    assert config_for_checkpoint(ck, "cpu", sacrum_corners=False).SPINE.HIGHRES.SACRUM_CORNERS is False
    before = _dumped_before(smoke_run, tmp_path, "SPINE.HIGHRES.SACRUM_CORNERS")
    assert config_for_checkpoint(before, "cpu").SPINE.HIGHRES.SACRUM_CORNERS is True  # the default where it predates it


def test_the_turned_windows_are_on_unless_switched_off(smoke_run, tmp_path):
    ck = smoke_run[1] / "model_final.pth"
    assert config_for_checkpoint(ck, "cpu").SPINE.HIGHRES.TURNS == (-5.0, 5.0)
    assert config_for_checkpoint(ck, "cpu", turns=[]).SPINE.HIGHRES.TURNS == ()
    assert config_for_checkpoint("zoo:phantom-fast-long", "cpu", turns=[3]).SPINE.HIGHRES.TURNS == (3.0,)
    assert SpinePredictor.from_checkpoint(ck, "cpu", turns=[]).cfg.SPINE.HIGHRES.TURNS == ()  # predict.py, serve.py
    from spine_d2.engine.inference import InferenceError
    for bad in (5, ["left"]):  # turns=5, turns=[left] on the command line
        with pytest.raises(InferenceError, match=r"turns=.*: a list of degrees"):
            config_for_checkpoint(ck, "cpu", turns=bad)
    assert config_for_checkpoint(ck, "cpu").SPINE.HIGHRES.TURN_STRIP is True
    assert config_for_checkpoint(ck, "cpu", turn_strip=False).SPINE.HIGHRES.TURN_STRIP is False
    assert config_for_checkpoint(ck, "cpu").SPINE.HIGHRES.FLIP_TURNS is True
    assert config_for_checkpoint(ck, "cpu", flip_turns=False).SPINE.HIGHRES.FLIP_TURNS is False
    before = _dumped_before(smoke_run, tmp_path, "SPINE.HIGHRES.FLIP_TURNS", "SPINE.TIEBREAK_TURNS")
    before = config_for_checkpoint(before, "cpu")
    assert before.SPINE.HIGHRES.FLIP_TURNS is True and before.SPINE.TIEBREAK_TURNS == (4.0, -4.0)  # predates them
    assert config_for_checkpoint(ck, "cpu", tiebreak_turns=[]).SPINE.TIEBREAK_TURNS == ()


def test_the_turned_looks_read_corners_in_given_boxes_unless_asked_to_detect_again(smoke_run, tmp_path):
    from spine_d2.engine.inference import InferenceError

    ck = smoke_run[1] / "model_final.pth"
    assert config_for_checkpoint(ck, "cpu").SPINE.HIGHRES.TURNED_BOXES == "given"
    assert config_for_checkpoint(ck, "cpu", turned_boxes="own").SPINE.HIGHRES.TURNED_BOXES == "own"
    before = config_for_checkpoint(_dumped_before(smoke_run, tmp_path, "SPINE.HIGHRES.TURNED_BOXES"), "cpu")
    assert before.SPINE.HIGHRES.TURNED_BOXES == "given"  # predates the key: the faster looks, as accurate
    with pytest.raises(InferenceError, match="turned_boxes=mine: choose one of given, own"):
        config_for_checkpoint(ck, "cpu", turned_boxes="mine")


def test_the_shipped_model_reads_the_corners_of_bodies_given_in_their_boxes_as_in_its_own_look(tmp_path):
    """`_corners_in_boxes` (the turned looks, `test.highres.turned_boxes` given): a look's own sure
    bodies handed back in their boxes get the corners that look read, within a fraction of a pixel
    (the box head refines a box it put there itself), without proposals or masks."""
    import torch
    from detectron2.structures import Instances

    from spine_d2.data.transforms import model_input
    from spine_d2.engine.highres import _corners_in_boxes
    from spine_d2.synthetic.generate import generate_dataset

    root = generate_dataset(tmp_path / "ph", 1, seed=3, difficulty="easy", workers=1, progress=False)
    image = read_image(next((root / "images").iterdir()))
    cfg = config_for_checkpoint("zoo:phantom-fast-long", "cpu")
    net = load_model(cfg)
    inp = model_input(image, cfg)
    with torch.no_grad():
        own = net.inference([inp], do_postprocess=False)[0]
    own = own[own.scores >= 0.5]
    assert len(own) >= 10 and own.has("pred_keypoints")
    given = Instances(own.image_size)
    given.pred_boxes, given.pred_classes = own.pred_boxes, own.pred_classes
    ran = []
    for part in (net.proposal_generator, net.roi_heads.mask_head):
        part.register_forward_hook(lambda m, i, o: ran.append(type(m).__name__))
    with torch.no_grad():
        (read,) = _corners_in_boxes(net, [inp], [given])
    assert not ran, "no proposals and no masks"
    assert torch.equal(read.pred_classes, own.pred_classes)
    apart = (read.pred_keypoints[:, :, :2] - own.pred_keypoints[:, :, :2]).abs().amax(dim=2)  # input px
    assert float(apart.median()) < 0.3 and float(apart.max()) < 2.0


def test_the_shipped_model_makes_the_mirrored_run_beside_the_photos_with_the_same_predictions(tmp_path):
    """On a CPU with two torch threads `SpinePredictor` makes the mirrored run on a copy of the model
    in a second thread, each run with one thread (`spine_d2.engine.test_time.side_by_side`): the
    predictions and both reads are those the runs give one after the other with one thread, as an
    evaluation in two processes makes them."""
    import torch

    from spine_d2.engine.test_time import refine_with_reads
    from spine_d2.synthetic.generate import generate_dataset

    root = generate_dataset(tmp_path / "ph", 1, seed=5, difficulty="easy", workers=1, progress=False)
    image = read_image(next((root / "images").iterdir()))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        predictor = SpinePredictor(config_for_checkpoint("zoo:phantom-fast-long", "cpu"))
        assert predictor.twin is not None
        fused, reads = predictor.predict(image)
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        expected, expected_reads = refine_with_reads(predictor.model, predictor.cfg, predictor._model_format(image))
    finally:
        torch.set_num_threads(before)
    assert len(fused) >= 10 and len(reads) == 2
    for a, b in zip([fused, *reads], [expected, *expected_reads]):
        assert torch.equal(a.pred_keypoints, b.pred_keypoints) and torch.equal(a.pred_masks, b.pred_masks)
        assert torch.equal(a.pred_classes, b.pred_classes) and torch.equal(a.scores, b.scores)


def test_the_mirrored_run_waits_for_the_measurements_doubt_only_where_asked(smoke_run, tmp_path):
    from spine_d2.engine.inference import InferenceError

    ck = smoke_run[1] / "model_final.pth"
    assert config_for_checkpoint(ck, "cpu").SPINE.FLIP_WHEN == "always"
    assert config_for_checkpoint(ck, "cpu", flip_when="doubt").SPINE.FLIP_WHEN == "doubt"
    before = config_for_checkpoint(_dumped_before(smoke_run, tmp_path, "SPINE.FLIP_WHEN"), "cpu")
    assert before.SPINE.get("FLIP_WHEN", "always") == "always"  # predates the key: made always, as then
    with pytest.raises(InferenceError, match="flip_when=sometimes: choose one of always, doubt"):
        config_for_checkpoint(ck, "cpu", flip_when="sometimes")
    assert build_d2_cfg(smoke_cfg(tmp_path, "test.flip_when=doubt")).SPINE.FLIP_WHEN == "doubt"
    with pytest.raises(Exception, match="sometimes"):  # Hydra's schema: always or doubt
        smoke_cfg(tmp_path, "test.flip_when=sometimes")


def test_a_model_loaded_for_the_cpu_runs_channels_last_with_the_same_features(smoke_run):
    """On the CPU `load_model` lays the weights out channels-last (oneDNN's faster convolutions);
    the features are those of the plain layout, up to float rounding."""
    import copy

    import torch

    model = load_model(config_for_checkpoint(smoke_run[1] / "model_final.pth", "cpu"))
    def kernels(m):  # the weights whose two layouts differ (1×1 kernels or one channel: the same)
        return [p for p in m.parameters() if p.dim() == 4 and p.shape[1] > 1 and p.shape[2] > 1]

    assert kernels(model) and all(p.is_contiguous(memory_format=torch.channels_last) for p in kernels(model))
    plain = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    assert not any(p.is_contiguous(memory_format=torch.channels_last) for p in kernels(plain))
    x = torch.rand(1, 3, 128, 96) * 255
    with torch.no_grad():
        a, b = model.backbone(x), plain.backbone(x)
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-4 * float(b[k].abs().max())), k


def test_predict_measures_every_readable_photo_and_reports_the_corrupt_one(smoke_run, tmp_path):
    root, run_dir = smoke_run
    photos = tmp_path / "photos"
    photos.mkdir()
    sources = sorted((root / "images").iterdir())[:2]
    for src in sources:
        (photos / src.name).write_bytes(src.read_bytes())
    (photos / "corrupt.jpg").write_bytes(sources[0].read_bytes()[:300])
    (photos / "notes.txt").write_text("not an image; ignored")
    # twins of the first photo as an iPhone's HEIC and a DICOM viewer's 16-bit PNG
    shown = read_image(sources[0], "RGB")
    PIL.Image.fromarray(shown).save(photos / "twin.HEIC", format="HEIF", quality=90)
    cv2.imwrite(str(photos / "twin16.png"), shown[..., ::-1].astype(np.uint16) * 257)
    out = tmp_path / "pred"
    proc = run_tool("predict.py", f"checkpoint={run_dir / 'model_final.pth'}", f"input={photos}", f"out={out}")
    # the libraries' deprecation noise stays out of what users read (spine_d2.library_warnings)
    assert "meshgrid" not in proc.stderr and "is_fx_tracing" not in proc.stderr, proc.stderr[-2000:]

    table = pd.read_csv(out / "predictions.csv")
    assert list(table.columns) == ["image", *ANGLE_NAMES, "frame", "notes", "model"]
    assert (table["model"] == str(run_dir / "model_final.pth")).all()  # which model measured
    assert sorted(table["image"]) == sorted(["corrupt", "twin", "twin16"] + [s.stem for s in sources])
    corrupt = table.set_index("image").loc["corrupt"]
    assert "corrupt.jpg" in corrupt["notes"] and "damaged or incomplete" in corrupt["notes"]
    rows = table.set_index("image")
    for twin in ("twin", "twin16"):
        assert not str(rows.loc[twin, "notes"]).startswith("skipped") and (out / f"{twin}_overlay.jpg").is_file()
    first = rows.loc[sources[0].stem]
    for name in ANGLE_NAMES:  # the same pixels: the same masks and angles
        assert first[name] == rows.loc["twin16", name] or (math.isnan(first[name]) and math.isnan(rows.loc["twin16", name]))
    for src in sources:
        overlay = cv2.imread(str(out / f"{src.stem}_overlay.jpg"))
        photo = cv2.imread(str(src))
        assert overlay is not None and overlay.shape == photo.shape
        row = table.set_index("image").loc[src.stem]
        assert row["frame"] in ("image", "radiograph")
        # an angle is NaN exactly when the notes name it with a reason ("TK/LL NaN: <reason>")
        groups = [p.split(" NaN: ") for p in str(row["notes"]).split("; ") if " NaN: " in p]
        assert all(reason for _, reason in groups), row["notes"]
        for name in ANGLE_NAMES:
            assert math.isnan(row[name]) == any(name in names.split("/") for names, _ in groups), (name, row["notes"])
    assert not (out / "corrupt_overlay.jpg").exists()

    again = run_tool("predict.py", f"checkpoint={run_dir / 'model_final.pth'}", f"input={photos}",
                     f"out={out}", check=False)
    assert again.returncode != 0 and "already holds predictions.csv" in again.stderr


def test_predict_names_an_empty_input_and_a_missing_checkpoint(tmp_path):
    proc = run_tool("predict.py", f"checkpoint={tmp_path / 'nope.pth'}", f"input={tmp_path}",
                    f"out={tmp_path / 'o'}", check=False)
    assert proc.returncode != 0 and "no images" in proc.stderr and "Traceback" not in proc.stderr
    cv2.imwrite(str(tmp_path / "photo.png"), np.full((64, 32, 3), 90, np.uint8))
    proc = run_tool("predict.py", f"checkpoint={tmp_path / 'nope.pth'}", f"input={tmp_path}",
                    f"out={tmp_path / 'o'}", check=False)
    assert proc.returncode != 0 and "nope.pth" in proc.stderr and "Traceback" not in proc.stderr
    for tool, where in (("predict.py", [f"input={tmp_path}", f"out={tmp_path / 'o'}"]),
                        ("evaluate.py", [f"hydra.run.dir={tmp_path / 'e'}"])):  # a bad measure.* value: named first
        proc = run_tool(tool, "checkpoint=zoo:phantom-fast-long", *where, "measure.max_wedge_deg=-5", check=False)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert "measure.max_wedge_deg must be degrees over 0" in proc.stderr


def test_evaluate_writes_a_report_recomputable_from_per_image_csv(smoke_run, tmp_path):
    root, run_dir = smoke_run
    out = tmp_path / "ev"
    proc = run_tool("evaluate.py", f"run_dir={run_dir}", f"dataset.root={root}",
                    "dataset.test_fraction=0.5", f"hydra.run.dir={out}")
    assert "reference study" in proc.stdout
    ev = out / "eval"
    for name in ("per_image.csv", "summary.json", "report.md", "report.html", "coco"):
        assert (ev / name).exists(), name
    per_image = pd.read_csv(ev / "per_image.csv")
    summary = json.loads((ev / "summary.json").read_text())
    test_stems = (root / "splits" / "test.txt").read_text().split()
    assert sorted(per_image["image"]) == sorted(test_stems)
    assert summary["n_images"] == len(test_stems)
    assert summary["dice_mean"] == pytest.approx(float(np.mean(per_image["dice"])), abs=1e-9)
    truth = pd.read_csv(root / "measurements.csv").set_index("image")
    for stem, value in zip(per_image["image"], per_image["SS_true"]):
        assert value == pytest.approx(truth.loc[stem, "SS"]) or (math.isnan(value) and math.isnan(truth.loc[stem, "SS"]))
    assert 0 <= summary["coco_segm_ap"] <= 1  # a fraction, like Dice (detectron2 AP / 100)


def test_evaluate_needs_exactly_one_model(tmp_path):
    proc = run_tool("evaluate.py", f"hydra.run.dir={tmp_path / 'ev'}", check=False)
    assert proc.returncode != 0 and "exactly one of checkpoint" in proc.stderr
    proc = run_tool("evaluate.py", "checkpoint=none.pth", "processes=0", f"hydra.run.dir={tmp_path / 'ev2'}", check=False)
    assert proc.returncode != 0 and "processes=0: a whole number" in proc.stderr and "Traceback" not in proc.stderr


def test_the_two_class_setting_trains_and_evaluates_end_to_end(smoke_run, tmp_path):
    """The study's two classes (dataset.class_map=two_class: thoracic, lumbar): a smoke training with
    its evaluation, then evaluate.py on its checkpoint (the model's classes decide). Without a sacrum
    or femoral-head class SS, PT and PI cannot be measured, and the notes say why."""
    root, _ = smoke_run
    run, ev = tmp_path / "run", tmp_path / "ev"
    run_tool("train.py", "experiment=smoke", f"dataset.root={root}", "dataset.class_map=two_class",
             f"hydra.run.dir={run}")
    cfg = load_d2_cfg(run / "d2_config.yaml")
    assert (cfg.MODEL.ROI_HEADS.NUM_CLASSES, cfg.SPINE.CLASS_MAP) == (2, "two_class")
    final = json.loads((run / "final_metrics.json").read_text())
    assert final["iteration"] == cfg.SOLVER.MAX_ITER and "segm/AP" in final["metrics"] and "spine/dice_mean" in final["metrics"]
    # evaluate.py in two processes (each registers the split with the model's classes): the same table
    run_tool("evaluate.py", f"run_dir={run}", f"dataset.root={root}", "processes=2", f"hydra.run.dir={ev}")
    assert (ev / "log.txt.rank1").is_file()
    tables = [pd.read_csv(d / "eval" / "per_image.csv").sort_values("image") for d in (run, ev)]
    np.testing.assert_allclose(tables[0]["dice"], tables[1]["dice"], atol=1e-6)
    test_stems = (root / "splits" / "test.txt").read_text().split()
    for table in tables:
        assert sorted(table["image"]) == sorted(test_stems)
        assert {c for c in table.columns if c.startswith("dice_") and not c[5:6].isupper()} == \
            {"dice_thoracic", "dice_lumbar"}  # per class: the two classes only
        for name in ("SS", "PT", "PI"):
            assert table[f"{name}_pred"].isna().all() and table[f"{name}_true"].notna().all()
            assert table[f"{name}_note"].str.contains("SS/PT/PI NaN: S1 superior").all(), table[f"{name}_note"].tolist()


def test_test_amp_runs_the_backbone_in_bfloat16_and_hands_on_float32_features(smoke_run, monkeypatch):
    """`test.amp` (`amp=` in config_for_checkpoint) on a CPU with bfloat16 units: the backbone of an
    evaluating model runs under the CPU's bfloat16 autocast, its features float32 and within
    bfloat16's rounding of the plain ones; a model in training mode runs it unchanged; off by
    default."""
    import copy

    import torch

    from spine_d2.engine import precision
    from spine_d2.engine.test_time import autocast_at_test

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)  # where it has none, torch emulates it alike

    ck = smoke_run[1] / "model_final.pth"
    assert config_for_checkpoint(ck, "cpu").SPINE.TEST_AMP is False
    cfg = config_for_checkpoint(ck, "cpu", amp=True)
    plain, model = load_model(cfg), load_model(cfg)
    assert autocast_at_test(model, cfg) is model and autocast_at_test(model, cfg) is model  # once
    clone = copy.deepcopy(model)  # its forward runs the copy's weights, not the original's
    assert clone.backbone.forward.__self__ is clone.backbone and clone.backbone.plain_forward.__self__ is clone.backbone
    assert not hasattr(autocast_at_test(plain, config_for_checkpoint(ck, "cpu")).backbone, "plain_forward")
    seen = []
    model.backbone.bottom_up.register_forward_hook(lambda m, i, o: seen.append({v.dtype for v in o.values()}))
    x = torch.rand(1, 3, 128, 96) * 255
    with torch.no_grad():
        a, b = model.backbone(x), plain.backbone(x)
        assert seen[-1] == {torch.bfloat16}  # inside: bfloat16
        for k in b:
            assert a[k].dtype == torch.float32
            assert torch.allclose(a[k], b[k], rtol=0.05, atol=0.05 * float(b[k].abs().max())), k
            assert not torch.equal(a[k], b[k])
        model.train()
        c = model.backbone(x)
        assert seen[-1] == {torch.float32} and all(torch.equal(c[k], plain.backbone.train()(x)[k]) for k in c)


def test_test_amp_corners_runs_the_corner_heads_convolutions_in_bfloat16_too(tmp_path, monkeypatch):
    """`test.amp_corners` (on by default) with `test.amp`: the corner head's convolutions run under
    the CPU's bfloat16 autocast, each handing on float32, so its heatmaps are float32 and within
    bfloat16's rounding of the plain head's; the RPN's and the mask head's convolutions stay as
    they were; amp_corners=false leaves the head alone; a model in training mode runs it unchanged."""
    import copy

    import torch
    from detectron2.modeling import build_model

    from spine_d2.engine import precision
    from spine_d2.engine.test_time import autocast_at_test, corner_convs

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    cfg = build_d2_cfg(smoke_cfg(tmp_path, "model.corners=true", "test.amp=true"))
    assert cfg.SPINE.TEST_AMP_CORNERS is True
    torch.manual_seed(0)
    plain = build_model(cfg).eval()
    model = autocast_at_test(copy.deepcopy(plain), cfg)
    convs = corner_convs(model)
    assert len(convs) == len(cfg.MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS)
    assert all(hasattr(c, "plain_forward") for c in convs) and hasattr(model.backbone, "plain_forward")
    assert not any(hasattr(m, "plain_forward") for m in [*model.proposal_generator.modules(),
                                                         *model.roi_heads.mask_head.modules()])
    head, plain_head = model.roi_heads.keypoint_head, plain.roi_heads.keypoint_head
    x = torch.rand(3, cfg.MODEL.FPN.OUT_CHANNELS, 14, 14)
    with torch.no_grad():
        a, b = head.layers(x), plain_head.layers(x)
        assert a.dtype == torch.float32 and a.shape == b.shape and not torch.equal(a, b)
        assert torch.allclose(a, b, rtol=0.05, atol=0.02 * float(b.abs().max()))
        head.train(), plain_head.train()
        assert torch.equal(head.layers(x), plain_head.layers(x))
    off = build_d2_cfg(smoke_cfg(tmp_path, "model.corners=true", "test.amp=true", "test.amp_corners=false"))
    model = autocast_at_test(copy.deepcopy(plain), off)
    assert hasattr(model.backbone, "plain_forward") and not any(hasattr(c, "plain_forward") for c in corner_convs(model))


def test_inference_only_holds_the_autocast_convolutions_weights_in_bfloat16_with_the_same_numbers(
        tmp_path, monkeypatch):
    """`autocast_at_test(..., inference_only=True)` (the predictor's and tools/evaluate.py's model):
    the backbone's and the corner head's convolutions hold their weights and biases in bfloat16,
    the group norms' and every other module's stay float32, and the features and corner heatmaps
    are bit for bit those of the same model casting at every call."""
    import copy

    import torch
    from detectron2.modeling import build_model

    from spine_d2.engine import precision
    from spine_d2.engine.test_time import autocast_at_test, corner_convs

    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    cfg = build_d2_cfg(smoke_cfg(tmp_path, "model.corners=true", "test.amp=true"))
    torch.manual_seed(0)
    plain = build_model(cfg).eval()
    casting = autocast_at_test(copy.deepcopy(plain), cfg)
    held = autocast_at_test(copy.deepcopy(plain), cfg, inference_only=True)
    convs = [m for mod in [held.backbone, *corner_convs(held)] for m in mod.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) > 20 and all(c.weight.dtype == torch.bfloat16 for c in convs)
    assert all(c.bias is None or c.bias.dtype == torch.bfloat16 for c in convs)
    in_convs = {id(p) for c in convs for p in (c.weight, c.bias) if p is not None}
    rest = [p for p in held.parameters() if id(p) not in in_convs]
    assert rest and all(p.dtype == torch.float32 for p in rest)  # norms, RPN, box, mask heads
    assert any(isinstance(m, torch.nn.GroupNorm) for m in held.backbone.modules())
    x = torch.rand(1, 3, 128, 96) * 255
    rois = torch.rand(3, cfg.MODEL.FPN.OUT_CHANNELS, 14, 14)
    with torch.no_grad():
        a, b = held.backbone(x), casting.backbone(x)
        assert all(a[k].dtype == torch.float32 and torch.equal(a[k], b[k]) for k in b)
        assert torch.equal(held.roi_heads.keypoint_head.layers(rois), casting.roi_heads.keypoint_head.layers(rois))
    assert all(p.dtype == torch.float32 for p in autocast_at_test(copy.deepcopy(plain), cfg).parameters())


@pytest.mark.parametrize("soft", [False, True])
def test_a_first_pass_reads_the_corners_later_with_the_numbers_of_its_corner_head(tmp_path, soft):
    """`first_pass` (a run's own first pass, which the windows mostly replace): the detections,
    masks and outlines of `one_pass`, without corners; read later, for any of its detections in any
    order, the corners are those `detections` decodes from `one_pass`'s heatmaps: bit for bit for
    all of them, up to float rounding for a few (a convolution over fewer boxes may add in another
    order)."""
    import torch
    from detectron2.modeling import build_model

    from spine_d2.engine.soft_masks import with_soft_masks
    from spine_d2.engine.test_time import first_pass, one_pass
    from spine_d2.measure.corners import heatmap_peaks

    cfg = build_d2_cfg(smoke_cfg(tmp_path, "model.corners=true", f"test.soft_masks={str(soft).lower()}"))
    cfg.defrost()
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0  # random weights: every box up to the cap
    torch.manual_seed(0)
    model = with_soft_masks(build_model(cfg).eval(), cfg)
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (300, 220, 3), dtype=np.uint8), (9, 9), 3)
    one = one_pass(model, cfg, image)
    first, read = first_pass(model, cfg, image)
    assert len(one) >= 10 and read is not None
    assert not first.has("pred_keypoint_heatmaps") and not first.has("pred_keypoints")
    for field in ("pred_masks", "pred_classes", "scores"):
        assert torch.equal(first.get(field), one.get(field)), field
    assert torch.equal(first.pred_boxes.tensor, one.pred_boxes.tensor)
    assert first.has("pred_contours") is soft and (not soft or all(
        np.array_equal(a, b) for a, b in zip(first.pred_contours, one.pred_contours)))
    expected = heatmap_peaks(one.pred_keypoint_heatmaps.numpy(), one.pred_boxes.tensor.numpy())  # as `detections`
    assert np.array_equal(read(range(len(first))), expected)
    some = read([5, 0, 3])
    assert np.allclose(some, expected[[5, 0, 3]], rtol=1e-6, atol=1e-6)
    assert np.allclose(read([4]), expected[[4]], rtol=1e-6, atol=1e-6)
    net = model.model if soft else model
    assert not net.training and net.roi_heads.keypoint_on  # the corner head back on


def test_test_amp_runs_float32_on_a_cpu_without_bfloat16_units(smoke_run, monkeypatch, caplog):
    """Where the CPU would emulate bfloat16, slower than float32, `test.amp` leaves the backbone in
    float32 and says so, naming the option; where it has the units, it autocasts, silent."""
    import logging

    from spine_d2.engine import precision
    from spine_d2.engine.test_time import autocast_at_test

    cfg = config_for_checkpoint(smoke_run[1] / "model_final.pth", "cpu", amp=True)
    for has_units in (True, False):
        monkeypatch.setattr(precision, "cpu_has_bf16", lambda: has_units)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="spine_d2.engine.precision"):
            model = autocast_at_test(load_model(cfg), cfg)
        warned = [r.getMessage() for r in caplog.records if "bfloat16 units" in r.getMessage()]
        assert bool(warned) is not has_units, warned
        assert hasattr(model.backbone, "plain_forward") is has_units
    assert "test.amp=true" in warned[0] and "runs in float32" in warned[0]


def test_measure_image_makes_the_mirrored_run_only_where_the_measurement_doubts(tmp_path, monkeypatch):
    """`test.flip_when=doubt` through `measure_image`: a predictor whose photo run lacks a body
    and whose mirrored run, made on the measurement's call, has it (the phantom's annotations as
    predictions)."""
    import spine_d2.measure.reads as reads_module
    from spine_d2.engine.inference import measure_image
    from spine_d2.synthetic.generate import generate_dataset
    from standin import AnnotationPredictor

    root = generate_dataset(tmp_path / "phantom", 1, seed=3, difficulty="easy", workers=1, progress=False)
    photo = read_image(next((root / "images").iterdir()))
    made = []

    class Lazy(AnnotationPredictor):
        def predict_lazily(self, image):
            whole = self(image)

            def mirrored():
                made.append(1)
                return whole, [whole[1:], whole]
            return whole[1:], [], mirrored

    lazy, whole = Lazy(root), AnnotationPredictor(root)
    same = lambda a, b: all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a.values(), b.values()))
    monkeypatch.setattr(reads_module, "doubted", lambda m, score: "asked")
    asked = measure_image(lazy, photo)
    assert made == [1] and "mirrored run made: asked" in asked.notes
    assert same(asked, measure_image(whole, photo)) and len(asked.instances) == len(measure_image(whole, photo).instances)
    monkeypatch.setattr(reads_module, "doubted", lambda m, score: "")
    alone = measure_image(lazy, photo)
    assert made == [1] and "mirrored run" not in alone.notes
    assert len(alone.instances) == len(asked.instances) - 1  # the photo's run, as it came


def test_predict_names_photos_of_one_stem_apart_and_keeps_going_past_a_failed_one(tmp_path, caplog):
    """`predict_paths` (no model: the phantom's annotations as predictions): two photos of one stem
    (scan.png, scan.jpg) get a row and an overlay each; a photo whose measurement raises gets a row
    saying so, with the error in the log, and the photos after it are measured."""
    from spine_d2.engine.inference import image_paths, predict_paths
    from spine_d2.synthetic.generate import generate_dataset
    from standin import AnnotationPredictor

    root = generate_dataset(tmp_path / "phantom", 3, seed=4, difficulty="easy", workers=1, progress=False)
    first, second, third = sorted((root / "images").iterdir())
    photos = tmp_path / "photos"
    photos.mkdir()
    image = read_image(first)
    cv2.imwrite(str(photos / "scan.png"), image)  # the same pixels twice, as PNG and as (lossy) JPEG
    cv2.imwrite(str(photos / "scan.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 100])
    shutil.copy(second, photos / "b_broken.jpg")
    shutil.copy(third, photos / "c_after.jpg")
    broken = read_image(second)

    class FailsOnOne(AnnotationPredictor):
        def __call__(self, image_bgr):
            if image_bgr.shape == broken.shape and np.array_equal(image_bgr, broken):
                raise RuntimeError("a bug deep inside")
            return super().__call__(image_bgr)

    with caplog.at_level(logging.ERROR):
        table = predict_paths(FailsOnOne(root), image_paths(photos), tmp_path / "out")
    rows = table.set_index("image")
    assert sorted(rows.index) == ["b_broken", "c_after", "scan_jpg", "scan_png"]
    assert rows.loc["b_broken", "notes"] == "failed: RuntimeError: a bug deep inside"
    assert "b_broken.jpg" in caplog.text and "a bug deep inside" in caplog.text  # with its traceback
    assert not math.isnan(rows.loc["c_after", "LL"])  # measured after the failure
    assert not math.isnan(rows.loc["scan_png", "LL"])
    overlays = sorted(p.name for p in (tmp_path / "out").glob("*_overlay.jpg"))
    assert overlays == ["c_after_overlay.jpg", "scan_jpg_overlay.jpg", "scan_png_overlay.jpg"]
    saved = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert list(saved["image"]) == list(table["image"]) and saved["notes"].str.startswith("failed").sum() == 1


def _inverted_phantom(tmp_path: Path, n: int, seed: int) -> Path:
    """An easy phantom whose photos are shown inverted (bones dark), as a viewer's invert shows them."""
    from spine_d2.synthetic.generate import generate_dataset

    root = generate_dataset(tmp_path / "inverted", n, seed=seed, difficulty="easy", workers=1, progress=False)
    for f in (root / "images").iterdir():
        cv2.imwrite(str(f), 255 - cv2.imread(str(f)), [cv2.IMWRITE_JPEG_QUALITY, 100])
    return root


def test_a_film_shown_inverted_is_measured_on_its_negative_and_a_seen_spine_only_once(tmp_path):
    """The shipped model sees no spine on a film shown inverted (bones dark); `measure_image` then
    measures the photo's negative, the film as the model knows it, and says so; with `test.negative`
    off the inverted film keeps its unseen spine; a film as shown runs once."""
    from spine_d2.engine.inference import measure_image
    from spine_d2.measure.negative import NEGATIVE_NOTE

    root = _inverted_phantom(tmp_path, 1, seed=11)
    shown = read_image(next((root / "images").iterdir()))
    predictor = SpinePredictor(config_for_checkpoint("zoo:phantom-fast-long", "cpu"))
    runs = []
    own = predictor.predict_lazily
    predictor.predict_lazily = lambda image: runs.append(image.mean()) or own(image)

    film = measure_image(predictor, 255 - shown)
    assert len(runs) == 1 and NEGATIVE_NOTE not in film.notes
    assert sum(a.measured for a in film.angles.values()) >= 5
    inverted = measure_image(predictor, shown)
    assert len(runs) == 3 and inverted.notes.startswith(NEGATIVE_NOTE)
    assert inverted.values() == film.values()  # the negative is the film: the same numbers
    off = SpinePredictor(config_for_checkpoint("zoo:phantom-fast-long", "cpu", negative=False))
    unseen = measure_image(off, shown)
    assert NEGATIVE_NOTE not in unseen.notes
    assert sum(a.measured for a in unseen.angles.values()) < sum(a.measured for a in film.angles.values())


def test_evaluation_measures_a_film_shown_inverted_on_its_negative(tmp_path):
    """tools/evaluate.py's path (`evaluate_checkpoint`, the test-time passes of `TestTimeModel`):
    on films shown inverted the shipped model's angles and masks come from the negatives, each
    film's notes saying so, and with `test.negative` off it finds no spine there."""
    from spine_d2.data.register import register_spine_dataset
    from spine_d2.engine.inference import evaluate_checkpoint
    from spine_d2.measure.negative import NEGATIVE_NOTE

    root = _inverted_phantom(tmp_path, 2, seed=12)
    names = register_spine_dataset("inverted_films_test", root)
    rows = {}
    for negative in (True, False):
        cfg = config_for_checkpoint("zoo:phantom-fast-long", "cpu", negative=negative)
        summary = evaluate_checkpoint(cfg, names["all"], tmp_path / f"eval-{negative}")
        rows[negative] = pd.read_csv(Path(summary["report_dir"]) / "per_image.csv")
    on, off = rows[True], rows[False]
    assert on["TK_note"].fillna("").str.startswith(NEGATIVE_NOTE).all()
    assert (on["dice"] > 0.85).all() and (off["dice"].fillna(0) < 0.5).all()
    measured = lambda t: t[[f"{k}_pred" for k in ANGLE_NAMES]].notna().to_numpy().sum()
    assert measured(on) >= 10 and measured(off) < measured(on)


def test_a_photo_turned_a_quarter_is_named_with_the_turn_that_stands_its_spine_upright(tmp_path):
    """A film photographed lying on its side (its EXIF orientation lost): the shipped model sees no
    spine, nor on the negative; the notes name the turn in which it stands and ask for it, and the
    angles stay unmeasured (the outlines would lie in the turned photo's pixels)."""
    from spine_d2.engine.inference import measure_image
    from spine_d2.measure.turned import turned_note
    from spine_d2.synthetic.generate import generate_dataset

    root = generate_dataset(tmp_path / "ph", 1, seed=13, difficulty="easy", workers=1, progress=False)
    upright = read_image(next((root / "images").iterdir()))
    predictor = SpinePredictor(config_for_checkpoint("zoo:phantom-fast-long", "cpu"))
    lying = measure_image(predictor, cv2.rotate(upright, cv2.ROTATE_90_CLOCKWISE))
    assert lying.notes.startswith(turned_note(1)) and "90° counter-clockwise" in lying.notes
    assert not any(a.measured for a in lying.angles.values())
    assert lying.image_shape == (upright.shape[1], upright.shape[0])  # the photo's own frame
    assert "turned" not in measure_image(predictor, upright).notes
