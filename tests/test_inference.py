"""A smoke-trained model through the tools users run: train → predict (with a corrupt photo) → evaluate.

One tiny phantom and one smoke run per test session (the `smoke_run` fixture of conftest.py; real
training, seconds to a minute on a CPU); the tools are run as subprocesses, as a user runs them.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import PIL.Image
import pytest

from conftest import run_tool
from spine_d2.angles import ANGLE_NAMES
from spine_d2.data.images import read_image

REPO = Path(__file__).resolve().parents[1]


def test_training_run_writes_its_artifacts_and_spine_metrics(smoke_run):
    _, run_dir = smoke_run
    for name in ("model_final.pth", "d2_config.yaml", "metrics.json", "last_checkpoint"):
        assert (run_dir / name).is_file(), name
    records = [json.loads(line) for line in (run_dir / "metrics.json").read_text().splitlines()]
    evals = [r for r in records if "spine/dice_mean" in r]
    assert evals, "the spine evaluator's results must reach the event storage (metrics.json)"
    assert 0.0 <= evals[-1]["spine/dice_mean"] <= 1.0
    report = run_dir / "eval" / "report.html"
    assert report.is_file() and "Bland" in report.read_text()


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
    run_tool("predict.py", f"checkpoint={run_dir / 'model_final.pth'}", f"input={photos}", f"out={out}")

    table = pd.read_csv(out / "predictions.csv")
    assert list(table.columns) == ["image", *ANGLE_NAMES, "frame", "notes"]
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
        # every angle is a number or NaN with a reason in the notes
        for name in ANGLE_NAMES:
            assert math.isnan(row[name]) or -180 <= row[name] <= 180
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
