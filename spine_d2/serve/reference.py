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


def _read_accuracy(path: Path) -> dict[str, Any] | None:
    """One accuracy-*.json as a dict; None (with a warning) when it cannot be read."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        log.warning(f"{path}: unreadable benchmark result, ignored ({e})")
        return None
    return data if isinstance(data, dict) else None


def chosen_accuracy(folder: str | Path, config: str | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The benchmark to show, read once: `accuracy-<config>.json` in `folder` when `config` is given
    and that file is readable, else the newest readable `accuracy-*.json` (by its recorded `date`,
    then mtime); None when there is none."""
    folder = Path(folder)
    if config and (folder / f"accuracy-{config}.json").is_file():
        data = _read_accuracy(folder / f"accuracy-{config}.json")
        if data is not None:
            return folder / f"accuracy-{config}.json", data
    found = [(str(d.get("date", "")), p.stat().st_mtime, p, d)
             for p in folder.glob("accuracy-*.json") if (d := _read_accuracy(p)) is not None]
    if not found:
        return None
    _, _, path, data = max(found, key=lambda f: f[:3])
    return path, data


def our_accuracy(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """The per-angle MAE, n and missing of one accuracy-*.json (`data`, read from `path`), with its
    provenance."""
    per_angle = {}
    for name in ANGLE_NAMES:
        a = data.get(name) or {}
        per_angle[name] = {"mae": a.get("mae"), "n": a.get("n"), "missing": a.get("missing")}
    return json_safe({"file": path.name, "config": data.get("config"), "date": data.get("date"),
                      "commit": data.get("commit"), "n_images": data.get("n_images"),
                      "note": data.get("note", ""), "angles": per_angle})


def reference_figures(accuracy_dir: str | Path | None, study: StudyResults = REFERENCE_STUDY,
                      config: str | None = None) -> dict[str, Any]:
    """The study's and our error figures, for `GET /api/reference` and the page; ours from the
    benchmark of `config` (the served run's schedule name) when recorded, else the newest."""
    chosen = chosen_accuracy(accuracy_dir, config) if accuracy_dir is not None else None
    ours = our_accuracy(*chosen) if chosen else None
    return {
        "angles": list(ANGLE_NAMES),
        "csv_columns": list(CSV_COLUMNS),
        "study": {"name": study.name, "description": study.description,
                  "mae_deg": {name: study.mae_deg.get(name) for name in ANGLE_NAMES},
                  "note": f"mean absolute error against specialists; not reported for "
                          f"{', '.join(n for n in ANGLE_NAMES if n not in study.mae_deg)}"},
        "ours": ours,
    }
