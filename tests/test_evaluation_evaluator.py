"""SpineEvaluator fed the ground truth as predictions: Dice and IoU 1, COCO AP 100, the phantom's true angles."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, Instances

from spine_d2.angles import ANGLE_NAMES
from spine_d2.data.register import register_spine_dataset
from spine_d2.evaluation.evaluator import SpineEvaluator
from spine_d2.evaluation.segmentation import polygons_to_mask
from spine_d2.measure.reads import measure_with_reads
from spine_d2.synthetic.generate import generate_dataset


def as_predictions(record: dict, stray: bool = False) -> Instances:
    """A dataset dict's annotated shapes as detectron2 predictions: the ground truth's masks (the
    project's rasterisation; detectron2's pycocotools one differs by a pixel's edge, about 4 % of
    the phantom's small bodies' Dice), their boxes, classes, scores of 1; with `stray`, also a
    thoracic mask in the top left corner scoring 0.1."""
    h, w = record["height"], record["width"]
    masks = np.stack([polygons_to_mask(a["segmentation"], (h, w)) for a in record["annotations"]])
    classes, scores = [a["category_id"] for a in record["annotations"]], [1.0] * len(masks)
    if stray:
        corner = np.zeros((1, h, w), bool)
        corner[0, 2:30, 2:40] = True
        masks, classes, scores = np.concatenate([masks, corner]), classes + [0], scores + [0.1]
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    out = Instances((h, w))
    out.pred_masks = torch.from_numpy(masks)
    out.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    out.pred_classes = torch.tensor(classes)
    out.scores = torch.tensor(scores)
    return out


def test_ground_truth_predictions_give_dice_1_and_the_true_angles(tmp_path, monkeypatch):
    """With a doubted stray beside them: scored in 'all_dice' only. The first film's output also
    carries two reads and the call making its turned looks (as `test.flip` gives them): the
    measurement gets that call, making the measurement's instances. The second film's output is
    the photo's run alone, three bodies short, and the call making the mirrored run (as
    `test.flip_when=doubt` gives them): the measurement, made to doubt, makes it, and the Dice and
    COCO's AP take its detections."""
    import spine_d2.evaluation.evaluator as evaluator_module
    import spine_d2.measure.reads as reads_module

    root = generate_dataset(tmp_path / "phantom", 6, seed=3, difficulty="easy", workers=1, progress=False)
    names = register_spine_dataset("evaluator_gt", root, test_fraction=0.5)
    handed = []

    def spy(insts, reads, *args, looks=None, **kwargs):
        handed.append((len(reads), looks))
        return measure_with_reads(insts, reads, *args, looks=looks, **kwargs)

    monkeypatch.setattr(evaluator_module, "measure_with_reads", spy)
    monkeypatch.setattr(reads_module, "doubted", lambda m, score: "made to doubt")
    try:
        ev = SpineEvaluator(names["test"], None, str(tmp_path / "eval"), distributed=False)
        ev.reset()
        records = DatasetCatalog.get(names["test"])
        for k, r in enumerate(records):
            out = {"instances": as_predictions(r, stray=True)}
            if k == 0:
                out.update(reads=[out["instances"]] * 2, tiebreak_looks=lambda r=r: [as_predictions(r)] * 2)
            if k == 1:
                whole = out["instances"]
                out = {"instances": whole[3:], "mirrored_run": lambda w=whole: (w, [w[3:], w])}
            ev.process([{"image_id": r["image_id"]}], [out])
        results = ev.evaluate()
    finally:
        for name in names.values():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
    assert handed[0][0] == 2 and all(n == 0 and looks is None for n, looks in handed[1:])
    looks = handed[0][1]()
    assert len(looks) == 2 and {i.class_name for i in looks[0]} >= {"thoracic", "lumbar"}  # the measurement's instances
    spine = results["spine"]
    assert spine["n_images"] == len(records) >= 2
    assert spine["dice_mean"] == pytest.approx(1.0) and spine["miou_mean"] == pytest.approx(1.0)
    assert spine["named_dice_mean"] == pytest.approx(1.0)     # every true vertebra found is named
    assert spine["all_dice_mean"] < 0.995                     # the doubted stray counts there alone
    assert results["segm"]["AP50"] == pytest.approx(100.0) and results["bbox"]["AP50"] == pytest.approx(100.0)
    # every named level lies on the annotated level of its name (T1…S1 of each film, the stray unnamed)
    assert spine["levels_misnamed"] == 0 and spine["images_misnamed"] == 0
    assert spine["levels_named"] >= 15 * len(records) and spine["images_named"] == len(records)
    table = pd.read_csv(ev.report_dir / "per_image.csv").set_index("image")
    assert [("mirrored run made: made to doubt" in str(n)) for n in table.loc[[r["image"] for r in records], "TK_note"]
            ] == [k == 1 for k in range(len(records))]
    assert (table["levels_named"] >= 15).all() and (table["levels_misnamed"] == 0).all()
    truth = pd.read_csv(root / "measurements.csv").set_index("image")
    assert sorted(table.index) == sorted(r["image"] for r in records)
    for stem in table.index:
        for name in ANGLE_NAMES:
            assert table.loc[stem, f"{name}_true"] == pytest.approx(truth.loc[stem, name], abs=1e-6, nan_ok=True)
            # masks of the true outlines differ from the rim points a reader clicks by up to a few
            # degrees: far from the central ray an endplate's shadow is an oval (benchmarks/README.md)
            assert table.loc[stem, f"{name}_pred"] == pytest.approx(truth.loc[stem, name], abs=5.0, nan_ok=True), (stem, name)


def test_the_split_coco_json_folder_goes_when_the_process_ends(tmp_path):
    """Every evaluating process writes its splits' COCO json to a scratch folder; sweeps and test
    runs start hundreds of them, so the folder must not outlive its process."""
    root = generate_dataset(tmp_path / "phantom", 2, seed=3, difficulty="easy", workers=1, progress=False)
    script = (
        "from spine_d2.data.register import register_spine_dataset\n"
        "from spine_d2.evaluation.evaluator import coco_json_file\n"
        "import os, sys\n"
        f"names = register_spine_dataset('coco_json_scratch', {str(root)!r}, test_fraction=0.5)\n"
        "path = coco_json_file(names['test'])\n"
        "assert os.path.getsize(path) > 0\n"
        "print(os.path.dirname(path))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    folder = Path(done.stdout.strip().splitlines()[-1])
    assert folder.name.startswith("spine_d2_coco_json_")
    assert not folder.exists()
