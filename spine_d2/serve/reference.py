"""How far to trust a number: the reference study's MAE and our latest benchmark's, per angle (degrees).

The study's figures are `spine_d2.evaluation.study.REFERENCE_STUDY` (TK, LL, SS only). Ours are
read from `accuracy-<config>.json` in the benchmark results folder (written by
benchmarks/record_accuracy.py: per angle `mae`, `n` images measured, `missing`) for the served
run's configuration (its schedule name: demo, paper, …) when there is one, else from the newest;
when there is none the page says "not yet measured".
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from spine_d2.angles import ANGLE_NAMES
from spine_d2.evaluation.agreement import json_safe
from spine_d2.evaluation.study import REFERENCE_STUDY, StudyResults
from spine_d2.measure import CSV_COLUMNS

log = logging.getLogger(__name__)


def newest_accuracy_file(folder: str | Path) -> Path | None:
    """The newest readable `accuracy-*.json` in `folder` (by its recorded `date`, then mtime), or None."""
    found = []
    for p in Path(folder).glob("accuracy-*.json"):
        try:
            date = str(json.loads(p.read_text()).get("date", ""))
        except (OSError, ValueError, AttributeError) as e:
            log.warning(f"{p}: unreadable benchmark result, ignored ({e})")
            continue
        found.append((date, p.stat().st_mtime, p))
    return max(found)[2] if found else None


def our_accuracy(path: Path) -> dict[str, Any]:
    """The per-angle MAE, n and missing of one accuracy-*.json, with its provenance."""
    data = json.loads(path.read_text())
    per_angle = {}
    for name in ANGLE_NAMES:
        a = data.get(name) or {}
        per_angle[name] = {"mae": a.get("mae"), "n": a.get("n"), "missing": a.get("missing")}
    return json_safe({"file": path.name, "config": data.get("config"), "date": data.get("date"),
                      "commit": data.get("commit"), "n_images": data.get("n_images"),
                      "note": data.get("note", ""), "angles": per_angle})


def accuracy_file(folder: str | Path, config: str | None = None) -> Path | None:
    """`accuracy-<config>.json` in `folder` when `config` is given and that file is readable, else
    the newest (`newest_accuracy_file`)."""
    if config:
        p = Path(folder) / f"accuracy-{config}.json"
        try:
            json.loads(p.read_text())
            return p
        except (OSError, ValueError):
            pass
    return newest_accuracy_file(folder)


def reference_figures(accuracy_dir: str | Path | None, study: StudyResults = REFERENCE_STUDY,
                      config: str | None = None) -> dict[str, Any]:
    """The study's and our error figures, for `GET /api/reference` and the page; ours from the
    benchmark of `config` (the served run's schedule name) when recorded, else the newest."""
    ours = None
    if accuracy_dir is not None:
        path = accuracy_file(accuracy_dir, config)
        if path is not None:
            ours = our_accuracy(path)
    return {
        "angles": list(ANGLE_NAMES),
        "csv_columns": list(CSV_COLUMNS),
        "study": {"name": study.name, "description": study.description,
                  "mae_deg": {name: study.mae_deg.get(name) for name in ANGLE_NAMES},
                  "note": f"mean absolute error against specialists; not reported for "
                          f"{', '.join(n for n in ANGLE_NAMES if n not in study.mae_deg)}"},
        "ours": ours,
    }
