"""Registers a Labelme dataset folder's train/test splits in detectron2's catalogs; COCO export.

Registration is lazy (the annotation files are read on the first `DatasetCatalog.get`, once for
both splits) and idempotent: registering the same name again replaces it, as a Hydra multirun
does when it runs several jobs in one process. Coordinates in the records: image frame, pixels.
"""
from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any, Mapping

from detectron2.data import DatasetCatalog, MetadataCatalog

from spine_d2.data.labelme import DatasetError, image_stems, load_labelme_dataset
from spine_d2.data.measurements import measurements_by_image, read_measurements
from spine_d2.data.splits import SPLITS, dataset_splits
from spine_d2.levels import LEVELS, ClassMap, get_class_map

log = logging.getLogger(__name__)

EVALUATOR_TYPE = "spine"


class _Loader:
    """Reads the dataset once per registration and hands each split a fresh copy of its dicts."""

    def __init__(self, root: Path, class_map: ClassMap, strict: bool):
        self.root, self.class_map, self.strict = root, class_map, strict
        self._records: list[dict] | None = None

    def split(self, stems: list[str]) -> list[dict]:
        if self._records is None:
            self._records = load_labelme_dataset(self.root, self.class_map, self.strict)
        wanted = set(stems)  # a fresh copy each time (callers may change them): pickle's is 10x deepcopy's speed
        return pickle.loads(pickle.dumps([r for r in self._records if r["image"] in wanted], pickle.HIGHEST_PROTOCOL))


def register_spine_dataset(name: str, root: str | Path, class_map: str = "default",
                           test_fraction: float = 0.3, split_seed: int = 0, strict: bool = True,
                           measurements: str | None = "measurements.csv") -> dict[str, str]:
    """Register `<name>_train`, `<name>_test` and `<name>_all`; returns {"train": ..., "test": ..., "all": ...}.

    Splits come from root/splits/{train,test}.txt, else a seeded split with `test_fraction`.
    Metadata per split: thing_classes, class_map, label_to_class, levels, root, split, images
    (its stems), measurements ({stem: {angle: degrees}}, NaN = not measured; from
    root/`measurements` when that file exists) and evaluator_type.
    """
    root = Path(root).expanduser().resolve()
    cmap = get_class_map(class_map)
    stems = image_stems(root)  # raises a DatasetError for a missing or empty folder
    splits = dataset_splits(root, stems, test_fraction, split_seed)
    table: dict[str, dict[str, float]] = {}
    if measurements:
        path = root / measurements
        if path.is_file():
            table = measurements_by_image(read_measurements(path, images=stems))
        else:
            log.info("%s: no measurements file; angles will not be compared", path)
    loader = _Loader(root, cmap, strict)
    names = {}
    splits = {**splits, "all": sorted(stems)}  # every image, e.g. to evaluate a whole held-out folder
    for split in (*SPLITS, "all"):
        full = f"{name}_{split}"
        if full in DatasetCatalog.list():
            DatasetCatalog.remove(full)
            MetadataCatalog.remove(full)
        members = splits[split]
        DatasetCatalog.register(full, lambda members=members: loader.split(members))
        MetadataCatalog.get(full).set(
            thing_classes=list(cmap.classes),
            class_map=cmap.name,
            label_to_class=dict(cmap.label_to_class),
            levels=list(LEVELS),
            root=str(root),
            split=split,
            images=list(members),
            measurements={s: table[s] for s in members if s in table},
            evaluator_type=EVALUATOR_TYPE,
        )
        names[split] = full
    log.info("registered %s: %d train / %d test images from %s", name,
             len(splits["train"]), len(splits["test"]), root)
    return names


def register_from_cfg(dataset_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """`register_spine_dataset` from the Hydra `dataset` node (conf/dataset/*.yaml), checked
    against its schema (spine_d2.schema.DatasetConfig, whose defaults fill a partial dict).

    Each `train_extra` folder is registered too, as `extra_name(name, i)`, with this dataset's class map,
    strictness and measurements file; the returned dict then lists their `_all` names under
    "train_extra" (what trains beside "train"). A folder named twice is refused: it would train on
    the films it tests."""
    from spine_d2.schema import dataset_config

    d = dataset_config(dataset_cfg)
    root = _existing(d.root, "dataset.root", bool(d.generate))
    kw = dict(class_map=str(d.class_map), strict=d.strict, measurements=d.measurements)
    names: dict[str, Any] = register_spine_dataset(name=d.name, root=root, test_fraction=d.test_fraction,
                                                   split_seed=d.split_seed, **kw)
    seen = {root.resolve(): "dataset.root"}
    extra = []
    for i, e in enumerate(d.train_extra):
        key = f"dataset.train_extra[{i}].root"
        folder = _existing(e.root, key, bool(e.generate))
        where = folder.resolve()
        if where in seen:
            raise DatasetError(f"{folder}: {key} is the folder of {seen[where]} as well; "
                               f"a dataset's films must not train twice or train where they are tested")
        seen[where] = key
        extra.append(register_spine_dataset(name=extra_name(d.name, i), root=folder, **kw)["all"])
    if extra:
        names["train_extra"] = extra
    return names


def extra_name(name: str, i: int) -> str:
    """The name dataset `name`'s i-th `train_extra` folder is registered under (its splits: _train,
    _test, _all)."""
    return f"{name}_extra{i}"


def _existing(root: str, key: str, generated: bool) -> Path:
    """`root` as a Path; DatasetError naming `key` when it is not a folder."""
    path = Path(root)
    if not path.is_dir():
        hint = ("; generate it first (spine_d2.synthetic.generate.ensure_dataset or "
                "tools/make_synthetic.py)" if generated else "")
        raise DatasetError(f"{path}: dataset folder not found ({key}){hint}")
    return path


def export_coco_json(split_name: str, path: str | Path, overwrite: bool = False) -> Path:
    """Write a registered split as COCO JSON with detectron2's own `convert_to_coco_json`.
    An existing file is kept (FileExistsError) unless `overwrite`."""
    from detectron2.data.datasets.coco import convert_to_coco_json

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists; pass overwrite=True to replace it")
    lock = Path(f"{path}.lock")  # detectron2 locks the output with this file
    had_lock = lock.exists()
    convert_to_coco_json(split_name, str(path), allow_cached=False)
    if not had_lock:
        lock.unlink(missing_ok=True)
    return path

