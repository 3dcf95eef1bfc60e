"""Labelme folders → detectron2 dicts: formats, EXIF, embedded images, every bad-input case."""
import base64
import io
import json
import logging
import shutil

import cv2
import numpy as np
import PIL.Image
import pytest
from detectron2.data import DatasetMapper
from detectron2.structures import BoxMode
from labelme.utils import apply_exif_orientation
from labelme_factory import (
    SIZE,
    edit_json,
    image_cache,  # noqa: F401 - fixture
    make_dataset,
    shape,
    snapshot,
    spine_shapes,
    write_image,
    write_labelme,
)

from spine_d2.data.labelme import (
    CIRCLE_VERTICES,
    DatasetError,
    image_cache_dir,
    load_labelme_dataset,
)
from spine_d2.data.images import oriented_size, read_image
from spine_d2.levels import CLASS_MAPS, LEVELS

pytestmark = pytest.mark.usefixtures("image_cache")
W, H = SIZE


def _by_label(record):
    return {a["label"]: a for a in record["annotations"]}


def test_loads_a_folder_written_by_labelme(tmp_path):
    root = make_dataset(tmp_path / "ds", n=3)
    records = load_labelme_dataset(root)
    assert [r["image"] for r in records] == ["img0", "img1", "img2"]
    assert [r["image_id"] for r in records] == [0, 1, 2]
    for r in records:
        assert r["file_name"] == str((root / "images" / f"{r['image']}.png").resolve())
        assert (r["width"], r["height"]) == (W, H)
        assert "spine_d2" not in r
    anns = records[0]["annotations"]
    assert [a["label"] for a in anns] == ["L1", "L2", "L3", "L4", "L5", "S1", "FH", "FH"]
    default = CLASS_MAPS["default"]
    assert [a["category_id"] for a in anns] == [default.category_id(a["label"]) for a in anns]
    assert {default.classes[a["category_id"]] for a in anns} == {"lumbar", "sacrum", "femoral_head"}
    for a in anns:
        poly = np.reshape(a["segmentation"][0], (-1, 2))
        assert a["bbox_mode"] == BoxMode.XYXY_ABS and len(poly) >= 3
        assert a["bbox"] == pytest.approx([*poly.min(axis=0), *poly.max(axis=0)])


def test_rectangle_becomes_four_corners_and_circle_a_polygon(tmp_path):
    root = make_dataset(tmp_path / "ds", n=1)
    raw = json.loads((root / "annotations" / "img0.json").read_text())
    rect = next(s for s in raw["shapes"] if s["shape_type"] == "rectangle")
    circ = next(s for s in raw["shapes"] if s["shape_type"] == "circle")
    anns = _by_label(load_labelme_dataset(root)[0])
    (x0, y0), (x1, y1) = rect["points"]
    corners = np.reshape(anns[rect["label"]]["segmentation"][0], (-1, 2))
    assert sorted(map(tuple, corners)) == sorted([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    (cx, cy), (px, py) = circ["points"]
    r = np.hypot(px - cx, py - cy)
    fh = next(a for a in load_labelme_dataset(root)[0]["annotations"] if a["label"] == "FH")
    assert fh["circle"] == pytest.approx([cx, cy, r])
    ring = np.reshape(fh["segmentation"][0], (-1, 2))
    assert len(ring) == CIRCLE_VERTICES
    assert np.hypot(ring[:, 0] - cx, ring[:, 1] - cy) == pytest.approx(np.full(len(ring), r))


@pytest.mark.parametrize("name,kept", [
    ("two_class", ["L1", "L2", "L3", "L4", "L5"]),
    ("per_level", ["L1", "L2", "L3", "L4", "L5", "S1", "FH", "FH"]),
])
def test_class_map_keeps_and_numbers_labels(tmp_path, name, kept):
    root = make_dataset(tmp_path / "ds", n=1)
    anns = load_labelme_dataset(root, class_map=name)[0]["annotations"]
    assert [a["label"] for a in anns] == kept
    cmap = CLASS_MAPS[name]
    assert [cmap.classes[a["category_id"]] for a in anns] == [cmap.label_to_class[k] for k in kept]


def test_region_labels_are_accepted(tmp_path):
    img = write_image(tmp_path / "ds" / "images" / "a.png")
    shapes = spine_shapes(levels=["thoracic", "thoracic", "lumbar", "lumbar"], femoral_heads=0)
    write_labelme(tmp_path / "ds" / "annotations" / "a.json", img, shapes)
    anns = load_labelme_dataset(tmp_path / "ds", class_map="two_class")[0]["annotations"]
    assert [a["category_id"] for a in anns] == [0, 0, 1, 1]


def test_spine_d2_ground_truth_passes_through(tmp_path):
    img = write_image(tmp_path / "ds" / "images" / "a.png")
    truth = {"homography": np.eye(3).tolist(), "angles": {"TK": 30.0}}
    write_labelme(tmp_path / "ds" / "annotations" / "a.json", img, spine_shapes(),
                  other_data={"spine_d2": truth})
    assert load_labelme_dataset(tmp_path / "ds")[0]["spine_d2"] == truth


# ---- images: EXIF, embedded data, where the JSON lies --------------------------------------


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_oriented_size_agrees_with_labelme(tmp_path, orientation, suffix):
    path = write_image(tmp_path / f"o{suffix}", (30, 50), orientation=orientation)
    with PIL.Image.open(path) as im:
        size = oriented_size(im)
    with PIL.Image.open(path) as im:
        assert size == apply_exif_orientation(im).size == (30, 50)


@pytest.mark.parametrize("orientation", [3, 5, 6, 8])
def test_exif_rotated_phone_photo_matches_what_labelme_shows(tmp_path, orientation):
    """The record's size and points are those of the displayed photo, and detectron2's reader
    shows the same pixels: the annotated bright block is bright."""
    root = tmp_path / "ds"
    img = write_image(root / "images" / "phone.jpg", (W, H), orientation=orientation)
    with PIL.Image.open(img) as im:
        assert im.size == ((H, W) if orientation >= 5 else (W, H))  # stored turned
    block = shape("L1", [[1, 1], [W // 4 - 2, 1], [W // 4 - 2, H // 4 - 2], [1, H // 4 - 2]])
    write_labelme(root / "annotations" / "phone.json", img, [block])
    (record,) = load_labelme_dataset(root)
    assert (record["width"], record["height"]) == (W, H)
    pixels = read_image(record["file_name"], format="RGB")
    assert pixels.shape == (H, W, 3)
    x0, y0, x1, y1 = map(int, record["annotations"][0]["bbox"])
    assert pixels[y0:y1, x0:x1].mean() > 200
    assert pixels[H // 2:, W // 2:].mean() < 100
    assert cv2.imread(record["file_name"]).shape == (H, W, 3)  # cv2 honours EXIF too


def test_embedded_image_without_file_is_decoded_once_outside_the_dataset(tmp_path, image_cache):
    root = tmp_path / "ds"
    img = write_image(root / "images" / "a.jpg", (W, H), orientation=6)
    write_labelme(root / "annotations" / "a.json", img, spine_shapes(), embed=True)
    shutil.rmtree(root / "images")
    before = snapshot(root)
    (record,) = load_labelme_dataset(root)
    cached = image_cache_dir() / next(iter(p.name for p in image_cache_dir().iterdir()))
    assert record["file_name"] == str(cached)
    assert cached.is_relative_to(image_cache) and not cached.is_relative_to(root)
    assert (record["width"], record["height"]) == (W, H)
    assert read_image(record["file_name"], format="RGB")[: H // 4 - 2, : W // 4 - 2].mean() > 200
    mtime = cached.stat().st_mtime_ns
    assert load_labelme_dataset(root)[0]["file_name"] == str(cached)
    assert cached.stat().st_mtime_ns == mtime and len(list(image_cache_dir().iterdir())) == 1
    assert snapshot(root) == before


def test_embedded_image_shown_as_stored_even_with_exif(tmp_path):
    """Old Labelme embedded the raw file bytes; the app shows embedded data without turning it,
    so the recorded size (and the cache) are the stored pixels."""
    root = tmp_path / "ds"
    img = write_image(tmp_path / "raw.jpg", (W, H), orientation=6)
    raw_b64 = base64.b64encode(img.read_bytes()).decode()
    (root / "annotations").mkdir(parents=True)
    shapes = [shape("L1", [[2, 2], [20, 2], [20, 20]])]
    (root / "annotations" / "a.json").write_text(json.dumps({
        "version": "3.16.7", "flags": {}, "shapes": shapes, "imagePath": "gone.jpg",
        "imageData": raw_b64, "imageHeight": W, "imageWidth": H}))
    (record,) = load_labelme_dataset(root)
    assert (record["width"], record["height"]) == (H, W)
    assert read_image(record["file_name"]).shape[:2] == (W, H)


def test_embedded_image_with_file_on_disk_uses_the_file(tmp_path, image_cache):
    root = tmp_path / "ds"
    img = write_image(root / "images" / "a.png")
    write_labelme(root / "annotations" / "a.json", img, spine_shapes(), embed=True)
    assert load_labelme_dataset(root)[0]["file_name"] == str(img.resolve())
    assert not any(image_cache.rglob("*.png"))


def test_json_beside_its_image_and_windows_image_path(tmp_path):
    root = tmp_path / "ds"
    img = write_image(root / "images" / "sub" / "a.png")
    write_labelme(root / "images" / "sub" / "a.json", img, spine_shapes())  # Labelme's default
    img_b = write_image(root / "images" / "b.png")
    jb = write_labelme(root / "images" / "b.json", img_b, spine_shapes())
    edit_json(jb, imagePath=".\\b.png")
    records = load_labelme_dataset(root)
    assert [r["image"] for r in records] == ["b", "sub/a"]
    assert records[1]["file_name"] == str(img.resolve())


def _legacy(version: str, shapes: list, image: str, with_shape_type: bool = True) -> dict:
    """A JSON as Labelme 3.x/4.x wrote it (colours, no description/mask, maybe no shape_type)."""
    out = []
    for s in shapes:
        old = {"label": s["label"], "points": s["points"], "flags": {}}
        if version.startswith("3"):
            old.update(line_color=None, fill_color=None)
        else:
            old["group_id"] = None
        if with_shape_type or s["shape_type"] != "polygon":
            old["shape_type"] = s["shape_type"]
        out.append(old)
    raw = {"version": version, "flags": {}, "shapes": out, "imagePath": image,
           "imageData": None, "imageHeight": H, "imageWidth": W}
    if version.startswith("3"):
        raw.update(lineColor=[0, 255, 0, 128], fillColor=[255, 0, 0, 128])
    return raw


@pytest.mark.parametrize("version,with_type", [("3.6.0", False), ("3.16.7", True),
                                               ("4.5.13", True), ("5.4.1", True)])
def test_older_labelme_versions_load_the_same(tmp_path, version, with_type):
    root = make_dataset(tmp_path / "ds", n=1)
    new = load_labelme_dataset(root)[0]["annotations"]
    path = root / "annotations" / "img0.json"
    raw = json.loads(path.read_text())
    path.write_text(json.dumps(_legacy(version, raw["shapes"], raw["imagePath"], with_type)))
    assert load_labelme_dataset(root)[0]["annotations"] == new


def test_points_just_outside_are_clipped(tmp_path):
    img = write_image(tmp_path / "ds" / "images" / "a.png")
    write_labelme(tmp_path / "ds" / "annotations" / "a.json", img,
                  [shape("L1", [[-1, 2], [W + 1.5, 2], [W + 1.5, 20], [-1, 20]])])
    (ann,) = load_labelme_dataset(tmp_path / "ds")[0]["annotations"]
    assert ann["bbox"] == [0.0, 2.0, float(W), 20.0]


def test_mask_shape_becomes_its_outline(tmp_path):
    img = write_image(tmp_path / "ds" / "images" / "a.png")
    patch = np.zeros((12, 16), np.uint8)
    patch[2:10, 3:13] = 1
    buf = io.BytesIO()
    PIL.Image.fromarray(patch * 255).save(buf, format="PNG")
    mask = shape("L2", [[10, 20], [25, 31]], "mask")
    mask["mask"] = base64.b64encode(buf.getvalue()).decode()
    write_labelme(tmp_path / "ds" / "annotations" / "a.json", img, [mask])
    (ann,) = load_labelme_dataset(tmp_path / "ds")[0]["annotations"]
    assert ann["bbox"] == pytest.approx([13, 22, 22, 29])


def test_detectron2_mapper_reads_a_record(tmp_path):
    root = tmp_path / "ds"
    img = write_image(root / "images" / "a.jpg", (W, H), orientation=8)
    write_labelme(root / "annotations" / "a.json", img, spine_shapes())
    (record,) = load_labelme_dataset(root)
    mapper = DatasetMapper(is_train=True, augmentations=[], image_format="BGR",
                           use_instance_mask=True, instance_mask_format="polygon")
    out = mapper(record)
    assert tuple(out["image"].shape) == (3, H, W)
    assert len(out["instances"]) == 8 and out["instances"].gt_masks.polygons


def test_corner_points_and_shape_flags_are_read_and_training_still_maps_the_record(tmp_path):
    """A pre-annotation as tools/predict.py writes it and a reader saves it: corner points go with
    their level's outline, `level_uncertain` is read, other flags are ignored; the record trains."""
    root = tmp_path / "ds"
    img = write_image(root / "images" / "a.png")
    shapes = spine_shapes()
    shapes[2]["flags"] = {"level_uncertain": True, "checked_by_reader": False}
    shapes[3]["flags"] = {"level_uncertain": False}
    shapes += [shape("L3_sa", [[30.5, 30.0]], "point"), shape("L3_sp", [[12.0, 29.0]], "point"),
               shape("S1_sa", [[32.0, 70.0]], "point")]
    write_labelme(root / "annotations" / "a.json", img, shapes)
    (record,) = load_labelme_dataset(root)
    anns = _by_label(record)
    assert list(anns) == ["L1", "L2", "L3", "L4", "L5", "S1", "FH"]  # points are not instances
    assert anns["L3"]["corners"] == {"sa": [30.5, 30.0], "sp": [12.0, 29.0]}
    assert anns["S1"]["corners"] == {"sa": [32.0, 70.0]}
    assert anns["L3"]["level_uncertain"] is True
    assert "level_uncertain" not in anns["L4"] and "corners" not in anns["L4"]
    mapper = DatasetMapper(is_train=True, augmentations=[], image_format="BGR",
                           use_instance_mask=True, instance_mask_format="polygon")
    assert len(mapper(record)["instances"]) == 8
    # the study's two classes drop S1: its corner points go with it, not into an error
    anns = _by_label(load_labelme_dataset(root, class_map="two_class")[0])
    assert "S1" not in anns and anns["L3"]["corners"]["sa"] == [30.5, 30.0]


# ---- bad input ---------------------------------------------------------------------------


def _break(root, how):
    """Make annotations/img1.json bad in one way; returns a word the error must contain."""
    path = root / "annotations" / "img1.json"
    raw = json.loads(path.read_text())
    shapes = raw["shapes"]
    if how == "truncated":
        path.write_text(path.read_text()[: 200])
        return "truncated JSON"
    if how == "garbage":
        path.write_bytes(b"\x89PNG\x00\xff not json")
        return "unreadable"
    if how == "not_labelme":
        path.write_text(json.dumps({"images": [], "annotations": []}))
        return "not a Labelme annotation"
    if how == "unknown_label":
        shapes[2]["label"] = "L6"
        edit_json(path, shapes=shapes)
        return "shape 3: unknown label 'L6'"
    if how == "lowercase_label":
        shapes[2]["label"] = "l3"
        edit_json(path, shapes=shapes)
        return "did you mean 'L3'"
    if how == "two_points":
        shapes[1]["points"] = shapes[1]["points"][:2]
        edit_json(path, shapes=shapes)
        return "needs at least 3"
    if how == "zero_area":
        shapes[1]["points"] = [[5, 5], [10, 10], [20, 20]]
        edit_json(path, shapes=shapes)
        return "zero area"
    if how == "zero_circle":
        fh = next(s for s in shapes if s["shape_type"] == "circle")
        fh["points"][1] = list(fh["points"][0])
        edit_json(path, shapes=shapes)
        return "zero area"
    if how == "far_outside":
        shapes[0]["points"][1] = [W + 60, 10]
        edit_json(path, shapes=shapes)
        return "outside the 48×96 image"
    if how == "missing_image":
        (root / "images" / "img1.png").unlink()
        return "image not found"
    if how == "unreadable_image":
        (root / "images" / "img1.png").write_bytes(b"not a png")
        return "cannot be read"
    if how == "size":
        edit_json(path, imageWidth=W + 10)
        return f"JSON records {W + 10}×{H}"
    if how == "exif_size":
        edit_json(path, imageWidth=H, imageHeight=W)
        return "swapped"
    if how == "duplicate_level":
        shapes.append(dict(shapes[2]))
        edit_json(path, shapes=shapes)
        return "'L3' annotated 2 times (shapes 3, 9"
    if how == "three_femoral_heads":
        shapes.append(dict(shapes[-1]))
        edit_json(path, shapes=shapes)
        return "'FH' annotated 3 times"
    if how == "no_shapes":
        edit_json(path, shapes=[])
        return "no shapes"
    if how == "orphan_corner":
        shapes.append(shape("T3_sa", [[10, 10]], "point"))
        edit_json(path, shapes=shapes)
        return "corner point(s) T3_sa but no 'T3' outline"
    if how == "corner_polygon":
        shapes[2]["label"] = "L3_sa"
        edit_json(path, shapes=shapes)
        return "a corner is a point, not a 'polygon'"
    if how == "duplicate_corner":
        shapes += [shape("L3_ip", [[10, 10]], "point"), shape("L3_ip", [[11, 10]], "point")]
        edit_json(path, shapes=shapes)
        return "'L3_ip' annotated 2 times"
    if how == "line_shape":
        shapes[0]["shape_type"] = "line"
        shapes[0]["points"] = shapes[0]["points"][:2]
        edit_json(path, shapes=shapes)
        return "shape type 'line'"
    raise ValueError(how)


BAD = ["truncated", "garbage", "not_labelme", "unknown_label", "lowercase_label", "two_points",
       "zero_area", "zero_circle", "far_outside", "missing_image", "unreadable_image", "size",
       "exif_size", "duplicate_level", "three_femoral_heads", "no_shapes", "line_shape", "orphan_corner",
       "corner_polygon", "duplicate_corner"]


@pytest.mark.parametrize("how", BAD)
def test_bad_file_strict_names_file_and_problem(tmp_path, how):
    root = make_dataset(tmp_path / "ds", n=3, measurements=False)
    expected = _break(root, how)
    before = snapshot(root)
    with pytest.raises(DatasetError) as err:
        load_labelme_dataset(root, strict=True)
    message = str(err.value)
    assert "img1.json" in message and expected in message
    assert "img0.json" not in message and "img2.json" not in message
    assert snapshot(root) == before


@pytest.mark.parametrize("how", ["truncated", "unknown_label", "missing_image", "no_shapes"])
def test_bad_file_lenient_is_skipped_with_a_summary(tmp_path, caplog, how):
    root = make_dataset(tmp_path / "ds", n=3, measurements=False)
    expected = _break(root, how)
    before = snapshot(root)
    with caplog.at_level(logging.WARNING, logger="spine_d2.data.labelme"):
        records = load_labelme_dataset(root, strict=False)
    assert [r["image"] for r in records] == ["img0", "img2"]
    assert [r["image_id"] for r in records] == [0, 2]  # ids stay stable
    warnings = [r.getMessage() for r in caplog.records]
    assert any("img1.json" in w and expected in w for w in warnings)
    assert any("1 of 3 annotation files" in w for w in warnings)
    assert snapshot(root) == before


def test_strict_error_lists_every_bad_file(tmp_path):
    root = make_dataset(tmp_path / "ds", n=3, measurements=False)
    _break(root, "no_shapes")
    (root / "annotations" / "img2.json").write_text("{")
    with pytest.raises(DatasetError) as err:
        load_labelme_dataset(root)
    assert "img1.json" in str(err.value) and "img2.json" in str(err.value)
    assert "2 of 3 annotation files" in str(err.value)


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(DatasetError, match="dataset folder not found"):
        load_labelme_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no Labelme annotation files"):
        load_labelme_dataset(tmp_path / "empty")


def test_cache_inside_the_dataset_is_refused(tmp_path, monkeypatch):
    root = make_dataset(tmp_path / "ds", n=1, measurements=False)
    monkeypatch.setenv("SPINE_D2_CACHE_DIR", str(root / "cache"))
    with pytest.raises(DatasetError, match="outside the dataset"):
        load_labelme_dataset(root)


def test_every_level_name_is_a_label(tmp_path):
    img = write_image(tmp_path / "ds" / "images" / "a.png", (40, 400))
    write_labelme(tmp_path / "ds" / "annotations" / "a.json", img,
                  spine_shapes(40, 400, levels=LEVELS))
    anns = load_labelme_dataset(tmp_path / "ds", class_map="per_level")[0]["annotations"]
    assert [a["label"] for a in anns] == list(LEVELS) + ["FH", "FH"]


def test_shapes_are_still_checked_when_the_image_is_missing(tmp_path):
    root = make_dataset(tmp_path / "ds", n=3, measurements=False)
    _break(root, "duplicate_level")
    _break(root, "missing_image")
    with pytest.raises(DatasetError) as err:
        load_labelme_dataset(root)
    assert "image not found" in str(err.value) and "'L3' annotated 2 times" in str(err.value)


def test_flat_folder_and_moved_json(tmp_path):
    flat = tmp_path / "flat"
    img = write_image(flat / "a.png")
    write_labelme(flat / "a.json", img, spine_shapes())  # Labelme's default: side by side
    assert load_labelme_dataset(flat)[0]["file_name"] == str(img.resolve())
    moved = tmp_path / "moved"
    img = write_image(moved / "images" / "b.png")
    json_path = write_labelme(moved / "annotations" / "b.json", img, spine_shapes())
    edit_json(json_path, imagePath="C:\\Users\\me\\photos\\b.png")  # annotated elsewhere
    assert load_labelme_dataset(moved)[0]["file_name"] == str(img.resolve())
