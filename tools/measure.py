"""Angles (TK, LL, LL_S1, SS, PT, PI) from the ground-truth shapes of a Labelme dataset.

    python tools/measure.py dataset.root=DIR out=FILE.csv [measure.method=rectangle|border]
        [source=polygons|masks] [frame_source=estimate|truth|none] [dataset.class_map=two_class]
    python tools/measure.py dataset=synthetic out=FILE.csv     # the phantom, generated if absent

Columns: image,TK,LL,LL_S1,SS,PT,PI,frame,notes (degrees; empty = not measurable, the reason in notes).
Where the folder has the specialists' measurements.csv, each of its angles is then compared with
these (spine_d2.evaluation.sheet): the median difference, the films far apart, and a column that
seems to follow another convention (a reversed sign, LL to S1).
"""
from __future__ import annotations

import csv
import logging
import math
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

import spine_d2.schema  # noqa: F401 (the config schema, registered with Hydra)
from spine_d2.data.labelme import DatasetError
from spine_d2.evaluation.sheet import HINT, sheet_against_rows
from spine_d2.measure.dataset import measure_dataset
from spine_d2.measure.pipeline import CSV_COLUMNS
from spine_d2.synthetic.generate import ensure_dataset

log = logging.getLogger("measure")


def write_rows(path: Path, rows: list[dict], overwrite: bool) -> None:
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists: choose another out= or pass overwrite=true")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else
                            f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()})


@hydra.main(version_base="1.3", config_path="../conf", config_name="measure_dataset")
def main(cfg: DictConfig) -> None:
    try:
        if Path(cfg.out).exists() and not cfg.overwrite:  # say so before the work, not after
            raise FileExistsError(f"{cfg.out} exists: choose another out= or pass overwrite=true")
        root = ensure_dataset(cfg.dataset)  # an existing folder as is; the phantom made when absent
        rows = measure_dataset(root, cfg.measure, cfg.dataset.class_map, cfg.dataset.strict,
                               cfg.source, cfg.frame_source)
        write_rows(Path(cfg.out), rows, bool(cfg.overwrite))
    except (DatasetError, FileExistsError, FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        sys.exit(2)
    n_nan = sum(1 for r in rows for k in CSV_COLUMNS[1:7] if math.isnan(r[k]))
    log.info("measured %d images (%s, %s endplates, %s frame): %d of %d angles not measurable; wrote %s",
             len(rows), cfg.source, cfg.measure.method, cfg.frame_source, n_nan, 6 * len(rows), cfg.out)
    sheet = Path(root) / cfg.dataset.measurements
    if sheet.is_file():  # the specialists' angles against the annotations', once out is written
        try:
            lines = sheet_against_rows(sheet, rows)
        except DatasetError as e:
            lines = [f"not compared: {e}"]
        log.info("%s against the annotations:", sheet)
        for line in lines:
            (log.warning if HINT in line else log.info)("  %s", line)


if __name__ == "__main__":
    main()
