"""Helpers for the engine tests: a tiny registered dataset (rectangles as polygons) and configs."""
from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from hydra import compose, initialize_config_dir

from spine_d2.levels import get_class_map

CONF = str(Path(__file__).resolve().parents[1] / "conf")
TINY = "engtiny"


def make_tiny_images(root: Path, n: int = 4, h: int = 128, w: int = 64, seed: int = 0) -> list[dict]:
    """n grey images with 3-4 bright rectangles each, as detectron2 dicts (polygons, 4 classes)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    dicts = []
    for i in range(n):
        img = np.full((h, w, 3), 40, np.uint8)
        annos = []
        for k in range(3 + i % 2):
            y0 = 8 + 28 * k + int(rng.integers(0, 4))
            x0 = 14 + int(rng.integers(0, 8))
            x1, y1 = x0 + 30, y0 + 18
            img[y0:y1, x0:x1] = 200
            annos.append({"bbox": [x0, y0, x1, y1], "bbox_mode": BoxMode.XYXY_ABS,
                          "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
                          "category_id": k % 4, "label": "L1"})
        path = root / f"img{i}.png"
        cv2.imwrite(str(path), img)
        dicts.append({"file_name": str(path), "image_id": i, "image": path.stem, "height": h,
                      "width": w, "annotations": annos})
    return dicts


def register_tiny(root, n: int = 4) -> dict:
    """Register <TINY>_<tag>_train (all n) and <TINY>_<tag>_test (all n) like
    spine_d2.data.register does; the tag names `root`, so a test's registration never points a
    split another test still uses at its own folder (which goes when that test passes)."""
    dicts = make_tiny_images(Path(root), n)
    tag = zlib.crc32(str(Path(root).resolve()).encode())
    names = {"train": f"{TINY}_{tag:08x}_train", "test": f"{TINY}_{tag:08x}_test"}
    for name in names.values():
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        DatasetCatalog.register(name, lambda d=dicts: [dict(x) for x in d])
        MetadataCatalog.get(name).set(thing_classes=list(get_class_map("default").classes),
                                      evaluator_type="coco")
    return names


class TinyRegister:
    """Picklable `register` for spine_d2.engine.run.train (each spawned process registers)."""

    def __init__(self, root):
        self.root = str(root)

    def __call__(self, dataset_cfg):
        return register_tiny(self.root)


def smoke_cfg(out, *overrides):
    """conf/config.yaml with experiment=smoke on the tiny dataset, output in `out`."""
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=["experiment=smoke", f"dataset.name={TINY}",
                                             f"output_dir={out}",
                                             *overrides])
