"""Registration of train/test splits in detectron2's catalogs; splits; COCO export."""
import json

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from conftest import REPO
from hydra import compose, initialize_config_dir
from labelme_factory import image_cache, make_dataset, snapshot  # noqa: F401 - fixture
from pycocotools.coco import COCO

from spine_d2.data.labelme import DatasetError
from spine_d2.data.register import export_coco_json, register_from_cfg, register_spine_dataset
from spine_d2.data.splits import seeded_split
from spine_d2.levels import CLASS_MAPS, LEVELS

pytestmark = pytest.mark.usefixtures("image_cache")


@pytest.fixture
def names():
    """Dataset names used by a test; removed from the catalogs afterwards."""
    used = []
    yield used
    for name in used:
        for split in ("train", "test", "all"):
            if f"{name}_{split}" in DatasetCatalog.list():
                DatasetCatalog.remove(f"{name}_{split}")
                MetadataCatalog.remove(f"{name}_{split}")


def _stems(split):
    return [r["image"] for r in DatasetCatalog.get(split)]


def test_splits_from_files_and_metadata(tmp_path, names):
    root = make_dataset(tmp_path / "ds", n=5, splits={"train": ["img0", "img2", "img3"],
                                                      "test": ["img1", "img4"]})
    names.append("t1")
    got = register_spine_dataset("t1", root)
    assert got == {"train": "t1_train", "test": "t1_test", "all": "t1_all"}
    assert _stems("t1_train") == ["img0", "img2", "img3"]
    assert _stems("t1_test") == ["img1", "img4"]
    assert _stems("t1_all") == ["img0", "img1", "img2", "img3", "img4"]
    meta = MetadataCatalog.get("t1_test")
    assert meta.thing_classes == list(CLASS_MAPS["default"].classes)
    assert meta.class_map == "default" and meta.root == str(root.resolve())
    assert meta.levels == list(LEVELS) and meta.evaluator_type == "spine"
    assert meta.images == ["img1", "img4"]
    assert set(meta.measurements) == {"img1", "img4"}
    assert meta.measurements["img4"]["TK"] == 34 and meta.measurements["img4"]["PI"] == 53


def test_seeded_split_of_the_study():
    stems = [f"p{i:03d}" for i in range(428)]
    split = seeded_split(stems, 0.3, seed=0)
    assert (len(split["train"]), len(split["test"])) == (300, 128)
    assert set(split["train"]) | set(split["test"]) == set(stems)
    assert seeded_split(list(reversed(stems)), 0.3, seed=0) == split  # order-independent
    assert seeded_split(stems, 0.3, seed=1)["test"] != split["test"]
    with pytest.raises(ValueError, match="test_fraction"):
        seeded_split(stems, 1.5, seed=0)


def test_seeded_split_when_no_split_files(tmp_path, names):
    root = make_dataset(tmp_path / "ds", n=10, measurements=False)
    names += ["s0", "s0b"]
    register_spine_dataset("s0", root, test_fraction=0.3, split_seed=7)
    train, test = _stems("s0_train"), _stems("s0_test")
    assert (len(train), len(test)) == (7, 3) and not set(train) & set(test)
    register_spine_dataset("s0b", root, test_fraction=0.3, split_seed=7)
    assert _stems("s0b_test") == test
    assert MetadataCatalog.get("s0_train").measurements == {}


def test_one_split_file_gives_the_rest_to_the_other(tmp_path, names):
    root = make_dataset(tmp_path / "ds", n=4, splits={"test": ["# held out", "img3", ""]})
    names.append("one")
    register_spine_dataset("one", root)
    assert _stems("one_train") == ["img0", "img1", "img2"] and _stems("one_test") == ["img3"]


@pytest.mark.parametrize("splits,expected", [
    ({"train": ["img0", "img9"], "test": ["img1"]}, r"train.txt line 2: unknown image 'img9'"),
    ({"train": ["img0.png"], "test": ["img1"]}, r"write the stem 'img0'"),
    ({"train": ["img0", "img1"], "test": ["img1"]}, r"in both train.txt and test.txt"),
    ({"train": ["img0", "img0"]}, r"line 2: 'img0' listed twice"),
])
def test_bad_split_file_is_a_clear_error(tmp_path, names, splits, expected):
    root = make_dataset(tmp_path / "ds", n=3, measurements=False, splits=splits)
    with pytest.raises(DatasetError, match=expected):
        register_spine_dataset("bad", root)


def test_registration_is_lazy_and_strictness_applies_on_load(tmp_path, names):
    root = make_dataset(tmp_path / "ds", n=3, splits={"train": ["img0", "img1"],
                                                      "test": ["img2"]})
    (root / "annotations" / "img1.json").write_text("{ truncated")
    names += ["lazy", "lenient"]
    register_spine_dataset("lazy", root)  # reads no annotation file yet
    with pytest.raises(DatasetError, match="img1.json"):
        DatasetCatalog.get("lazy_train")
    register_spine_dataset("lenient", root, strict=False)  # measurements row of img1: fine
    assert _stems("lenient_train") == ["img0"] and _stems("lenient_test") == ["img2"]


def test_re_registration_replaces(tmp_path, names):
    a = make_dataset(tmp_path / "a", n=2, splits={"train": ["img0"], "test": ["img1"]})
    b = make_dataset(tmp_path / "b", n=3, splits={"train": ["img0", "img2"], "test": ["img1"]})
    names.append("same")
    register_spine_dataset("same", a, class_map="two_class")
    assert MetadataCatalog.get("same_train").thing_classes == ["thoracic", "lumbar"]
    register_spine_dataset("same", b, class_map="per_level")  # a multirun's next job
    assert MetadataCatalog.get("same_train").thing_classes == list(LEVELS) + ["FH"]
    assert MetadataCatalog.get("same_train").root == str(b.resolve())
    assert _stems("same_train") == ["img0", "img2"]


def test_each_get_returns_fresh_dicts(tmp_path, names):
    root = make_dataset(tmp_path / "ds", n=2, splits={"train": ["img0", "img1"]})
    names.append("fresh")
    register_spine_dataset("fresh", root)
    DatasetCatalog.get("fresh_train")[0]["annotations"].clear()
    assert len(DatasetCatalog.get("fresh_train")[0]["annotations"]) == 8


def test_register_from_cfg(tmp_path, names, monkeypatch):
    root = make_dataset(tmp_path / "ds", n=4)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("check_dataset", overrides=[f"dataset.root={root}", "dataset.name=fromcfg",
                                                  "dataset.class_map=two_class"]).dataset
        synthetic = compose("check_dataset", overrides=["dataset=synthetic"]).dataset
    names.append("fromcfg")
    assert register_from_cfg(cfg) == {"train": "fromcfg_train", "test": "fromcfg_test", "all": "fromcfg_all"}
    assert MetadataCatalog.get("fromcfg_test").thing_classes == ["thoracic", "lumbar"]
    assert len(_stems("fromcfg_train")) + len(_stems("fromcfg_test")) == 4
    cfg.root = str(tmp_path / "absent")
    with pytest.raises(DatasetError, match="dataset folder not found"):
        register_from_cfg(cfg)
    synthetic.root = str(tmp_path / "absent")
    with pytest.raises(DatasetError, match="generate it first"):
        register_from_cfg(synthetic)


def test_folders_that_only_train(tmp_path, names):
    """dataset.train_extra: every film of each folder is registered to train beside the train
    split, with the dataset's class map and each folder's own measurements; a folder named twice or
    absent is a clear error naming its key."""
    root = make_dataset(tmp_path / "ds", n=4, splits={"train": ["img0", "img1"], "test": ["img2", "img3"]})
    more = make_dataset(tmp_path / "more", n=3)
    (more / "measurements.csv").write_text("image,TK,LL,SS\nimg0,,,61.5\n")
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("check_dataset", overrides=[f"dataset.root={root}", "dataset.name=plus",
                                                  "dataset.class_map=two_class",
                                                  f"dataset.train_extra=[{{root: '{more}'}}]"]).dataset
    names.extend(["plus", "plus_extra0"])
    got = register_from_cfg(cfg)
    assert got["train"] == "plus_train" and got["train_extra"] == ["plus_extra0_all"]
    assert _stems("plus_train") == ["img0", "img1"] and sorted(_stems("plus_extra0_all")) == ["img0", "img1", "img2"]
    meta = MetadataCatalog.get("plus_extra0_all")
    assert meta.thing_classes == ["thoracic", "lumbar"] and meta.measurements["img0"]["SS"] == 61.5
    assert MetadataCatalog.get("plus_train").measurements["img0"]["SS"] == 35   # each folder's own table
    cfg.train_extra[0].root = str(root)
    with pytest.raises(DatasetError, match=r"dataset.train_extra\[0\].root is the folder of dataset.root"):
        register_from_cfg(cfg)
    cfg.train_extra[0].root = str(tmp_path / "absent")
    with pytest.raises(DatasetError, match=r"dataset folder not found \(dataset.train_extra\[0\].root\)"):
        register_from_cfg(cfg)


def test_coco_export_through_detectron2(tmp_path, names):
    root = make_dataset(tmp_path / "ds", n=3, splits={"train": ["img0", "img2"],
                                                      "test": ["img1"]})
    names.append("coco")
    register_spine_dataset("coco", root)
    before = snapshot(root)
    out = export_coco_json("coco_train", tmp_path / "out" / "train.json")
    coco = COCO(str(out))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(
        CLASS_MAPS["default"].classes)
    assert sorted(coco.getImgIds()) == [0, 2]  # image_id kept
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[2]))
    assert len(anns) == 8 and all(a["area"] > 0 and len(a["segmentation"][0]) >= 6 for a in anns)
    assert {a["category_id"] for a in anns} == {1, 2, 3}
    with pytest.raises(FileExistsError):
        export_coco_json("coco_train", out)
    export_coco_json("coco_test", out, overwrite=True)
    assert [i["id"] for i in json.loads(out.read_text())["images"]] == [1]
    assert sorted(p.name for p in out.parent.iterdir()) == ["train.json"]  # no lock left
    assert snapshot(root) == before
