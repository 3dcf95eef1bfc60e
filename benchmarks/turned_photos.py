"""Photos turned a quarter or a half (EXIF orientation lost, a viewer's rotate): is the turn named?

    python benchmarks/turned_photos.py [root=datasets/seed1048] [n=10] [checkpoint=zoo:phantom-fast-long]

The first `n` photos of `root` (a Labelme folder), each turned 90° clockwise, 90° counter-clockwise
and 180°, through `measure_image` as tools/predict.py and the page measure them
(spine_d2/measure/turned.py): whether the notes name the turn that stands the photo upright, whether
any angle was measured, and the time per photo against the photo as it is. Writes
results/turned-photos-<root's name>.md and .json with provenance.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from _common import REPO, options, provenance, provenance_line

from spine_d2.data.images import read_image
from spine_d2.data.labelme import load_labelme_dataset
from spine_d2.measure.turned import turned_note

DEFAULTS = {"root": "datasets/seed1048", "n": "10", "checkpoint": "zoo:phantom-fast-long"}
#: how each photo is turned, and the `np.rot90` turn that stands it upright again
TURNS = {"90° clockwise": (cv2.ROTATE_90_CLOCKWISE, 1), "90° counter-clockwise": (cv2.ROTATE_90_COUNTERCLOCKWISE, 3),
         "180°": (cv2.ROTATE_180, 2)}


def main(argv) -> None:
    import torch

    from spine_d2.engine.inference import SpinePredictor, config_for_checkpoint, measure_image

    o = options(argv, DEFAULTS, "turned_photos.py")
    root = Path(o["root"])
    meta = provenance("benchmarks/turned_photos.py", argv, torch_threads=torch.get_num_threads())
    predictor = SpinePredictor(config_for_checkpoint(o["checkpoint"], "cpu"))
    rows, start = [], time.perf_counter()
    for record in load_labelme_dataset(root)[:int(o["n"])]:
        photo = read_image(record["file_name"])
        t = time.perf_counter()
        upright = measure_image(predictor, photo)
        row = {"image": record["image"], "upright_s": time.perf_counter() - t,
               "upright_angles": sum(a.measured for a in upright.angles.values())}
        for how, (code, back) in TURNS.items():
            t = time.perf_counter()
            m = measure_image(predictor, cv2.rotate(photo, code))
            row[how] = {"named": m.notes.startswith(turned_note(back)), "s": time.perf_counter() - t,
                        "angles": sum(a.measured for a in m.angles.values())}
        rows.append(row)
    named = {how: sum(r[how]["named"] for r in rows) for how in TURNS}
    lines = [f"# Photos turned a quarter or a half: the turn named ({root.name}, {len(rows)} photos)", "",
             provenance_line(meta, time.perf_counter() - start), "",
             "| turned | turn named | angles measured (photos) | s per photo | upright: s per photo |",
             "|---|---|---|---|---|"]
    for how in TURNS:
        lines.append(f"| {how} | {named[how]} of {len(rows)} | {sum(r[how]['angles'] > 0 for r in rows)} | "
                     f"{np.mean([r[how]['s'] for r in rows]):.2f} | {np.mean([r['upright_s'] for r in rows]):.2f} |")
    out = REPO / "benchmarks" / "results" / f"turned-photos-{root.name}"
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({**meta, "rows": rows, "named": named}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
