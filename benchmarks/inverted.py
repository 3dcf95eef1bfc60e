"""A split of a Labelme folder shown inverted (bones dark): what a viewer's invert, or a MONOCHROME1 film
exported without its inversion, gives. It measures `test.negative` (spine_d2/measure/negative.py).

    python benchmarks/inverted.py root=datasets/phantom428 split=test out=datasets/inverted-test-128
    python benchmarks/inverted.py root=datasets/seed1048 split=all out=datasets/inverted-seed1048   # split: test | train | all
    python tools/evaluate.py checkpoint=zoo:phantom-fast-long dataset.root=datasets/inverted-test-128 split=all [negative=false]

Writes `out` (a new folder): each photo of the split inverted, as PNG (lossless: its negative is
the photo's own pixels), its annotation beside it pointing at that PNG (an embedded image left
out), the split's rows of measurements.csv, and splits/test.txt naming every photo. The folder's
`spine_d2` truth (radiograph frame) is copied as it is: inverting moves no pixel.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from _common import options

import cv2
import pandas as pd

from spine_d2.data.images import read_image
from spine_d2.data.labelme import load_labelme_dataset
from spine_d2.data.labelme.files import annotation_dir, annotation_files, stem
from spine_d2.data.splits import dataset_splits

DEFAULTS = {"root": "datasets/phantom428", "split": "test", "out": ""}


def inverted_copy(root: Path, split: str, out: Path) -> list[str]:
    """Write `out` as the module says; returns the stems written. Refuses an existing `out`."""
    if out.exists():
        raise SystemExit(f"out={out} exists: give a new folder")
    records = {r["image"]: r for r in load_labelme_dataset(root)}  # each photo as the loader finds it
    splits = {**dataset_splits(root, list(records)), "all": list(records)}
    if split not in splits:
        raise SystemExit(f"split={split}: choose one of {', '.join(splits)}")
    stems = list(splits[split])
    docs = {stem(p, annotation_dir(root)): p for p in annotation_files(root)}
    for d in ("images", "annotations", "splits"):
        (out / d).mkdir(parents=True)
    for name in stems:
        doc = json.loads(docs[name].read_text())
        cv2.imwrite(str(out / "images" / f"{name}.png"), 255 - read_image(records[name]["file_name"]))
        doc.update(imagePath=f"../images/{name}.png", imageData=None)
        (out / "annotations" / f"{name}.json").write_text(json.dumps(doc))
    sheet = root / "measurements.csv"
    if sheet.is_file():
        table = pd.read_csv(sheet)
        table[table["image"].astype(str).isin(stems)].to_csv(out / "measurements.csv", index=False)
    (out / "splits" / "test.txt").write_text("\n".join(stems) + "\n")
    (out / "splits" / "train.txt").write_text("")
    return stems


def main(argv) -> None:
    o = options(argv, DEFAULTS, "inverted.py")
    if not o["out"]:
        raise SystemExit("inverted.py: give out=<a new folder>")
    stems = inverted_copy(Path(o["root"]), o["split"], Path(o["out"]))
    print(f"{len(stems)} photos of {o['root']} ({o['split']}) inverted into {o['out']}")


if __name__ == "__main__":
    main(sys.argv[1:])
