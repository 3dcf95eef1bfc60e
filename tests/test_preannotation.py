"""Predictions as Labelme pre-annotations: written beside each photo, read by labelme's own `LabelFile` and by
the project's loader, accepted by tools/check_dataset.py, and measured by tools/measure.py into the angles
predict gave; corner points and the level_uncertain flag go round the loop; nothing is ever overwritten.

The phantom's ground truth stands in for a model (`AnnotationPredictor`) so that real angles come out;
the session's smoke-trained checkpoint runs the tool end to end.
"""
from __future__ import annotations

import io
import json
import logging
import math
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import PIL.Image
import pytest
from conftest import REPO, run_tool
from labelme._label_file import LabelFile
from loguru import logger
from measure_factory import toy_spine
from standin import AnnotationPredictor

from spine_d2.angles import ANGLE_NAMES
from spine_d2.data.images import read_image, within_pixels
from spine_d2.data.labelme import load_labelme_dataset
from spine_d2.data.summary import run_check
from spine_d2.engine.inference import image_paths, measure_image, predict_paths
from spine_d2.levels import LEVELS
from spine_d2.measure import Instance, instances_from_predictions, instances_from_record, measure_instances
from spine_d2.measure.dataset import measure_dataset
from spine_d2.measure.instances import mask_contour
from spine_d2.measure.preannotation import labelme_document, write_new_json
from spine_d2.polygons import rasterize
from spine_d2.synthetic.generate import generate_dataset

logger.disable("labelme")


def pinned_labelme() -> str:
    return re.search(r"^labelme==(\S+)$", (REPO / "requirements.txt").read_text(), re.M).group(1)


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    """Six phantom photos (seed 5): screenshots and phone photos, some measured in the radiograph frame."""
    return generate_dataset(tmp_path_factory.mktemp("pre") / "phantom", 6, seed=5, workers=1, progress=False)


def photo_folder(phantom: Path, dest: Path) -> Path:
    shutil.copytree(phantom / "images", dest)
    return dest


def test_predict_labelme_round_trip_gives_back_predicts_angles(phantom, tmp_path, caplog):
    photos = photo_folder(phantom, tmp_path / "photos")
    table = predict_paths(AnnotationPredictor(phantom), image_paths(photos), tmp_path / "out", labelme=True)
    table = table.set_index("image")
    for photo in image_paths(photos):
        path = photo.with_suffix(".json")
        raw = json.loads(path.read_text())
        assert raw["version"] == pinned_labelme() and raw["imageData"] is None and raw["imagePath"] == photo.name
        with PIL.Image.open(photo) as im:
            assert (raw["imageWidth"], raw["imageHeight"]) == im.size
        lf = LabelFile(str(path))  # labelme's own reader: checks the sizes against the photo, too
        truth = json.loads((phantom / "annotations" / f"{photo.stem}.json").read_text())["shapes"]
        levels = [s["label"] for s in lf.shapes if s["shape_type"] == "polygon"]
        assert levels == [lv for lv in LEVELS if lv in {s["label"] for s in truth}]  # top to bottom
        heads = [s for s in lf.shapes if s["label"] == "FH"]
        assert all(s["shape_type"] == "circle" and len(s["points"]) == 2 for s in heads)
        assert len(heads) == min(2, sum(s["label"] == "FH" for s in truth))
        assert all(s["description"].startswith("score 1.000") for s in lf.shapes)
        assert all(s["flags"] == {"level_uncertain": False} for s in lf.shapes if s["label"] in LEVELS)
        said, want = raw["spine_d2"]["prediction"]["angles"]["LL"], table.loc[photo.stem, "LL"]
        assert said is None if math.isnan(want) else said == pytest.approx(want, abs=1e-3)  # what the model said

    assert len(load_labelme_dataset(photos)) == 6
    check = run_tool("check_dataset.py", f"dataset.root={photos}")
    assert "OK: every file is good" in check.stdout
    run_tool("measure.py", f"dataset.root={photos}", f"out={tmp_path / 'measured.csv'}")
    measured = pd.read_csv(tmp_path / "measured.csv").set_index("image")
    compared = 0
    for stem in table.index:
        for name in ANGLE_NAMES:
            want, got = table.loc[stem, name], measured.loc[stem, name]
            assert math.isnan(want) == math.isnan(got), (stem, name, want, got, measured.loc[stem, "notes"])
            if not math.isnan(want):
                assert got == pytest.approx(want, abs=0.1), (stem, name)
                compared += 1
        assert measured.loc[stem, "frame"] == table.loc[stem, "frame"]
    assert compared >= 25 and "radiograph" in set(table["frame"])  # the photos corrected, mapped back and forth

    before = {p: p.read_bytes() for p in photos.glob("*.json")}
    with caplog.at_level(logging.WARNING):
        predict_paths(AnnotationPredictor(phantom), image_paths(photos)[:2], tmp_path / "again", labelme=True)
    assert {p: p.read_bytes() for p in photos.glob("*.json")} == before
    assert caplog.text.count("already exists: kept as it is") == 2


def test_predict_tool_writes_pre_annotations_a_reader_can_open(smoke_run, tmp_path):
    root, run_dir = smoke_run
    photos = photo_folder(root, tmp_path / "photos")
    (photos / "p.json").write_text("{}")  # a file Labelme did not write stays as it is
    run_tool("predict.py", f"checkpoint={run_dir / 'model_final.pth'}", f"input={photos}", "labelme=true",
             f"out={tmp_path / 'out'}", "device=cpu")
    assert (photos / "p.json").read_text() == "{}"
    (photos / "p.json").unlink()
    written = sorted(photos.glob("*.json"))
    table = pd.read_csv(tmp_path / "out" / "predictions.csv")
    assert 1 <= len(written) <= len(table)  # a photo with nothing named gets no file
    for path in written:
        assert LabelFile(str(path)).shapes
        raw = json.loads(path.read_text())
        assert raw["spine_d2"]["prediction"]["model"] == str(run_dir / "model_final.pth")
    assert run_tool("check_dataset.py", f"dataset.root={photos}").returncode == 0
    assert len(load_labelme_dataset(photos)) == len(written)


def test_a_mask_outline_measures_as_its_mask():
    spine = toy_spine(rotate_deg=7.0)
    masks = [Instance(i.class_name, mask=rasterize(i.polygon, spine.shape), label=i.label) if i.polygon is not None
             else i for i in spine.instances()]
    outlines = [Instance(i.class_name, polygon=mask_contour(i.mask), label=i.label) if i.mask is not None else i
                for i in masks]
    a = measure_instances(masks, spine.shape)
    b = measure_instances(outlines, spine.shape)
    assert a.values() == b.values()
    assert all(not math.isnan(v) for v in a.values().values())


def corners_of(endplates: dict) -> np.ndarray:
    """(N, 4, 3) keypoints x, y, score in the order sa, sp, ia, ip (S1's inferior ones: its superior)."""
    out = []
    for level in endplates:
        sup = endplates[level]["superior"]
        inf = endplates[level].get("inferior", sup)
        out.append([[*sup[0], 0.9], [*sup[1], 0.8], [*inf[0], 0.7], [*inf[1], 0.6]])
    return np.array(out, float)


def blank_photo(path: Path, shape) -> Path:
    PIL.Image.new("RGB", (shape[1], shape[0]), (20, 20, 20)).save(path)
    return path


def test_corner_points_of_a_keypoint_model_become_labelme_points_and_are_measured(tmp_path):
    spine = toy_spine(ss=38.0)
    # the model's S1 corners make a plate at 25° (anterior end caudal), not the outline's 38°
    mid = np.mean(spine.endplates["S1"]["superior"], axis=0)
    t = math.radians(25.0)
    d = 20.0 * np.array([math.cos(t), math.sin(t)])  # the spine faces +x; y down
    endplates = dict(spine.endplates, S1={"superior": [(mid + d).tolist(), (mid - d).tolist()]})
    levels = list(spine.polygons)
    classes = ["thoracic", "lumbar", "sacrum", "femoral_head"]
    cls = [2 if lv == "S1" else 0 if lv.startswith("T") else 1 for lv in levels]
    pred = SimpleNamespace(pred_masks=np.stack([rasterize(spine.polygons[lv], spine.shape) for lv in levels]),
                           pred_classes=np.array(cls), scores=np.full(len(levels), 0.9),
                           pred_keypoints=corners_of({lv: endplates[lv] for lv in levels}))
    m = measure_instances(instances_from_predictions(pred, classes), spine.shape)
    assert m.angles["SS"].value == pytest.approx(25.0, abs=1e-9)
    assert m.angles["TK"].value == pytest.approx(spine.expected["TK"], abs=1e-6)

    doc = labelme_document(m, "spine.png")
    points = {s["label"]: s for s in doc["shapes"] if s["shape_type"] == "point"}
    assert {"S1_sa", "S1_sp", "L3_sa", "L3_sp", "L3_ia", "L3_ip", "T4_ip"} <= set(points)
    assert points["L3_ia"]["points"] == [pytest.approx(spine.endplates["L3"]["inferior"][0], abs=1e-3)]
    assert points["L3_sp"]["description"] == "score 0.800"
    folder = tmp_path / "photos"
    folder.mkdir()
    blank_photo(folder / "spine.png", spine.shape)
    assert write_new_json(folder / "spine.json", doc)
    assert not write_new_json(folder / "spine.json", {"shapes": []})  # never replaced
    assert LabelFile(str(folder / "spine.json")).shapes
    report = io.StringIO()
    assert run_check({"root": str(folder)}, out=report) == 0
    assert f"and {len(points)} corner point(s) (endplate ends, e.g. L3_sa) in 1 image(s)" in report.getvalue()
    (row,) = measure_dataset(folder)
    assert row["SS"] == pytest.approx(25.0, abs=0.01) and row["TK"] == pytest.approx(m.angles["TK"].value, abs=0.01)


def test_the_heads_written_are_those_measured_so_the_file_measures_the_same_pt(tmp_path):
    """A stray circle scoring second lies far from the best head: PT uses the best head and the
    weaker one beside it, and the file holds those two, so measuring it gives the same PT and PI."""
    spine = toy_spine()
    heads = [i for i in spine.instances() if i.class_name == "femoral_head"]
    heads[0].score, heads[1].score = 0.98, 0.25
    cx, cy, r = heads[0].circle
    stray = Instance("femoral_head", circle=(cx + 5 * r, cy - 2 * r, 25.0), score=0.75)
    m = measure_instances(spine.instances(heads=False) + heads + [stray], spine.shape)
    doc = labelme_document(m, "spine.png")
    written = [s for s in doc["shapes"] if s["label"] == "FH"]
    assert [w["points"][0] for w in written] == [pytest.approx(list(h.circle[:2]), abs=1e-3) for h in heads]
    assert all("not used" not in w["description"] for w in written)
    folder = tmp_path / "photos"
    folder.mkdir()
    blank_photo(folder / "spine.png", spine.shape)
    write_new_json(folder / "spine.json", doc)
    (row,) = measure_dataset(folder)
    for name in ("PT", "PI"):
        assert row[name] == pytest.approx(m.angles[name].value, abs=0.01), name


def test_a_doubted_level_is_flagged_and_left_out_until_a_reader_clears_the_flag(tmp_path):
    spine = toy_spine()
    insts = spine.instances(labels=True)
    for inst in insts:
        if inst.label == "L1":
            inst.uncertain = "counted across a gap"
    m = measure_instances(insts, spine.shape)
    assert math.isnan(m.angles["LL"].value) and not math.isnan(m.angles["TK"].value)
    doc = labelme_document(m, "spine.png")
    l1 = next(s for s in doc["shapes"] if s["label"] == "L1")
    assert l1["flags"] == {"level_uncertain": True} and "level uncertain: counted across a gap" in l1["description"]

    folder = tmp_path / "photos"
    folder.mkdir()
    blank_photo(folder / "spine.png", spine.shape)
    write_new_json(folder / "spine.json", doc)
    (row,) = measure_dataset(folder)
    assert math.isnan(row["LL"]) and "L1 superior: level name uncertain (flagged level_uncertain" in row["notes"]
    assert row["TK"] == pytest.approx(m.angles["TK"].value, abs=0.01)  # vertices written to 0.001 px

    l1["flags"]["level_uncertain"] = False  # the reader checked the level in Labelme
    (folder / "spine.json").write_text(json.dumps(doc))
    (row,) = measure_dataset(folder)
    clean = measure_instances(spine.instances(labels=True), spine.shape)
    assert row["LL"] == pytest.approx(clean.angles["LL"].value, abs=0.01)


class ScaledTruth(AnnotationPredictor):
    """One photo's ground truth (`stem`'s) at whatever size it is given (a copy scaled as the photo)."""

    def __init__(self, root: Path, stem: str):
        super().__init__(root)
        self.stem = stem

    def instances(self, image_bgr):
        rec = next(r for r in self.records.values() if Path(r["file_name"]).stem == self.stem)
        fx, fy = image_bgr.shape[1] / rec["width"], image_bgr.shape[0] / rec["height"]
        out = []
        for inst in instances_from_record(rec, self.class_names):
            poly = None if inst.polygon is None else (inst.polygon + 0.5) * [fx, fy] - 0.5
            circle = None if inst.circle is None else [inst.circle[0] * fx, inst.circle[1] * fy, inst.circle[2] * fx]
            out.append(Instance(inst.class_name, polygon=poly, circle=circle, score=inst.score))
        return out


def test_a_photo_over_the_pixel_budget_is_measured_scaled_and_pre_annotated_in_its_own_pixels(phantom, tmp_path):
    photo = sorted((phantom / "images").iterdir())[0]
    photos = tmp_path / "photos"
    photos.mkdir()
    with PIL.Image.open(photo) as im:  # a photo twice the phantom's size, over a budget of a quarter of its pixels
        w, h = 2 * im.size[0], 2 * im.size[1]
        im.resize((w, h), PIL.Image.BICUBIC).save(photos / photo.name, quality=95)
    model = ScaledTruth(phantom, photo.stem)
    row = predict_paths(model, [photos / photo.name], tmp_path / "out", labelme=True, max_pixels=w * h // 4).iloc[0]
    assert row["notes"].startswith("measured on a copy scaled to") and f"the photo: {w}×{h}" in row["notes"]
    copy = within_pixels(read_image(photos / photo.name), w * h // 4)
    with PIL.Image.open(tmp_path / "out" / f"{photo.stem}_overlay.jpg") as im:
        assert im.size == (copy.shape[1], copy.shape[0]) and 0.9 * w * h // 4 <= im.size[0] * im.size[1] <= w * h // 4
    measured = measure_image(model, copy)
    for name in ANGLE_NAMES:  # the copy's angles (the stand-in's masks, rasterised at its size)
        assert row[name] == pytest.approx(measured.angles[name].value, abs=0.01, nan_ok=True), name
    doc = json.loads((photos / f"{photo.stem}.json").read_text())
    assert (doc["imageWidth"], doc["imageHeight"]) == (w, h)
    truth = {s["label"]: (np.array(s["points"]) + 0.5) * 2 - 0.5 for s in json.loads((phantom / "annotations" / f"{photo.stem}.json").read_text())["shapes"]
             if s["shape_type"] == "polygon"}
    written = [s for s in doc["shapes"] if s["shape_type"] == "polygon"]
    assert len(written) >= 10
    for s in written:  # in the photo's pixels: over the annotated body, not at half its coordinates
        got, want = rasterize(np.array(s["points"]), (h, w)), rasterize(truth[s["label"]], (h, w))
        assert (got & want).sum() / (got | want).sum() > 0.85, s["label"]
