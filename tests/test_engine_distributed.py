"""Two CPU processes (gloo, DistributedDataParallel): training, one set of checkpoints, and an
evaluation over every rank's predictions equal to a one-process evaluation of the same model; and
a one-process run whose final test runs in two (`test.processes`)."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer

from spine_d2.engine.config import build_d2_cfg
from spine_d2.engine.run import FINAL_METRICS, train
from spine_d2.engine.trainer import SpineTrainer
from test_engine_support import TinyRegister, register_tiny, smoke_cfg


def predictions(path):
    rows = json.loads(path.read_text())
    return sorted(rows, key=lambda r: (r["image_id"], r["category_id"], -r["score"]))


def test_two_process_run_equals_one_process_evaluation(tmp_path):
    out = tmp_path / "run"
    c = smoke_cfg(out, "launch.processes_per_machine=2", "test.score_thresh=0.0")
    value = train(c, register=TinyRegister(tmp_path / "data"))
    assert (out / "model_final.pth").exists() and (out / "log.txt.rank1").exists()
    assert (out / "last_checkpoint").read_text().strip() == "model_final.pth"
    records = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    assert [r["iteration"] for r in records if "total_loss" in r] == [0, 1, 2, 3]
    final = json.loads((out / FINAL_METRICS).read_text())["metrics"]
    assert value == final["segm/AP"] or (math.isnan(value) and math.isnan(final["segm/AP"]))

    results, one = one_process_test(c, tmp_path, out)
    assert_same_evaluation(out / "eval", one)
    for key in ("bbox/AP", "segm/AP", "segm/AP50"):
        task, metric = key.split("/")
        assert results[task][metric] == pytest.approx(final[key], nan_ok=True)


def test_a_one_process_run_tests_in_test_processes_with_the_same_numbers(tmp_path):
    out = tmp_path / "run"
    c = smoke_cfg(out, "test.processes=2", "test.score_thresh=0.0")
    value = train(c, register=TinyRegister(tmp_path / "data"))
    # trained in this process (no rank-1 training log), tested in two that log beside the report
    assert (out / "model_final.pth").exists() and (out / "log.txt.rank1").exists()
    assert "Start inference on 2 batches" in (out / "log.txt").read_text()  # each rank: half the images
    final = json.loads((out / FINAL_METRICS).read_text())["metrics"]
    assert "total_loss" in final and value == pytest.approx(final["segm/AP"], nan_ok=True)
    assert (out / "eval" / "report.html").is_file()

    results, one = one_process_test(c, tmp_path, out)
    assert_same_evaluation(out / "eval", one)
    for key in ("bbox/AP", "segm/AP", "spine/dice_mean"):
        task, metric = key.split("/")
        assert results[task][metric] == pytest.approx(final[key], nan_ok=True)


def one_process_test(c, tmp_path, out):
    """The run's model_final.pth tested in this process: (results, report folder)."""
    names = register_tiny(tmp_path / "data")
    cfg = build_d2_cfg(c, datasets=names)
    model = SpineTrainer.build_model(cfg)
    DetectionCheckpointer(model).load(str(out / "model_final.pth"))
    one = tmp_path / "one"
    results = SpineTrainer.test(cfg, model, [SpineTrainer.build_evaluator(cfg, names["test"], str(one))])
    return results, one


def assert_same_evaluation(two_dir, one):
    two, single = predictions(two_dir / "coco" / "coco_instances_results.json"), \
        predictions(one / "coco" / "coco_instances_results.json")
    assert len(single) > 0 and {r["image_id"] for r in two} == {0, 1, 2, 3}  # both ranks' images
    assert len(two) == len(single)
    for a, b in zip(two, single):
        assert (a["image_id"], a["category_id"]) == (b["image_id"], b["category_id"])
        assert a["score"] == pytest.approx(b["score"], abs=1e-5)
        assert torch.allclose(torch.tensor(a["bbox"]), torch.tensor(b["bbox"]), atol=1e-3)
    # the spine evaluator gathers every rank's images too: the same per-image table
    two_rows = pd.read_csv(two_dir / "per_image.csv")
    one_rows = pd.read_csv(one / "per_image.csv")
    assert sorted(two_rows["image"]) == sorted(one_rows["image"]) == [f"img{i}" for i in range(4)]
    np.testing.assert_allclose(two_rows["dice"], one_rows["dice"], atol=1e-6)


def test_usable_processes_follow_the_machine(monkeypatch):
    from spine_d2.engine.processes import usable_processes

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert [usable_processes(n, "cpu") for n in (0, 1, 2, 3)] == [1, 1, 2, 3]  # CPU processes, gloo
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [usable_processes(n, "cuda") for n in (1, 2, 4)] == [1, 2, 2]  # one per GPU
    assert usable_processes(2, "cpu") == 1  # launch would join CPU processes with NCCL
