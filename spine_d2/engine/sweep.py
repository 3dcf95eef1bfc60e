"""Sweep summary: a Hydra callback that writes <sweep dir>/sweep_summary.csv, one row per job.

Each job's row (overrides, status, returned metric, final metrics, run dir, error) is saved as
`summary_row.json` in its run directory at `on_job_end` — which Hydra calls also when the job
failed — and the CSV is rebuilt from all rows under a file lock, so it is complete after every
job, with parallel launchers (joblib, submitit) too, and when a failed job ends the multirun.
Configured in conf/config.yaml under hydra.callbacks.
"""
from __future__ import annotations

import csv
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from spine_d2.engine.run import FINAL_METRICS

ROW_FILE = "summary_row.json"
FIRST_COLUMNS = ["job", "status", "overrides", "objective", "run_dir", "error"]


def job_row(config: DictConfig, job_return: JobReturn) -> dict:
    run_dir = Path(str(config.hydra.runtime.output_dir))
    failed = job_return.status != JobStatus.COMPLETED
    value = job_return._return_value
    row = {
        "job": OmegaConf.select(config, "hydra.job.num", default=""),
        "status": "failed" if failed else "completed",
        "overrides": " ".join(job_return.overrides or []),
        "objective": "" if failed or value is None else value,
        "run_dir": str(run_dir),
        "error": f"{type(value).__name__}: {value}".replace("\n", " ") if failed else "",
    }
    final = run_dir / FINAL_METRICS
    if final.exists():
        row.update(json.loads(final.read_text()).get("metrics", {}))
    return row


def write_summary(sweep_dir: Path, filename: str = "sweep_summary.csv") -> Path:
    """Rebuild the sweep's CSV from every job's row file (sorted by job number)."""
    rows = [json.loads(p.read_text()) for p in sweep_dir.rglob(ROW_FILE)]
    rows.sort(key=lambda r: (int(r["job"]) if str(r["job"]).isdigit() else 1 << 30, r["run_dir"]))
    extra = sorted({k for r in rows for k in r} - set(FIRST_COLUMNS))
    path = sweep_dir / filename
    tmp = path.with_name(f".{filename}.{os.getpid()}")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIRST_COLUMNS + extra, restval="")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
    return path


class SweepSummary(Callback):
    def __init__(self, filename: str = "sweep_summary.csv") -> None:
        self.filename = filename

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if OmegaConf.select(config, "hydra.mode") != RunMode.MULTIRUN:
            return
        row = job_row(config, job_return)
        Path(row["run_dir"], ROW_FILE).write_text(json.dumps(row, default=str))
        self._rebuild(Path(str(config.hydra.sweep.dir)))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._rebuild(Path(str(config.hydra.sweep.dir)))

    def _rebuild(self, sweep_dir: Path) -> None:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with open(sweep_dir / ".sweep_summary.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            write_summary(sweep_dir, self.filename)
