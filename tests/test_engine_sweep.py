"""tools/train.py end to end (subprocesses): a two-job sweep with one failing job writes its
summary; resume=true continues a run directory and fails clearly on a fresh one."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from labelme_factory import make_dataset
from spine_d2.engine.config import load_d2_cfg

REPO = Path(__file__).resolve().parents[1]


def train_py(*args, cwd):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, str(REPO / "tools" / "train.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_sweep_with_a_failing_job_writes_summary_and_runs_resume(tmp_path):
    ds = make_dataset(tmp_path / "ds", n=4, size=(64, 128))
    sweep = tmp_path / "sweep"
    common = ["experiment=smoke", "dataset=labelme", f"dataset.root={ds}"]
    r = train_py("-m", *common, f"hydra.sweep.dir={sweep}", "solver.base_lr=0.001,-1", cwd=tmp_path)
    assert r.returncode != 0, "a failed job must be reported"
    rows = list(csv.DictReader(open(sweep / "sweep_summary.csv")))
    assert [(row["job"], row["status"]) for row in rows] == [("0", "completed"), ("1", "failed")]
    assert "solver.base_lr=0.001" in rows[0]["overrides"] and rows[0]["segm/AP"] != ""
    assert float(rows[0]["objective"]) == float(rows[0]["segm/AP"])
    assert "solver.base_lr=-1" in rows[1]["overrides"] and "must be > 0" in rows[1]["error"]
    job = Path(rows[0]["run_dir"])
    assert job == sweep / "0"
    for name in ("model_final.pth", "metrics.json", "train.log", ".hydra/config.yaml", "last_checkpoint"):
        assert (job / name).exists(), name
    assert list(job.glob("events.out.tfevents.*"))
    assert load_d2_cfg(job / "d2_config.yaml").SPINE.PHASES.NAMES == ("heads", "all")

    r = train_py(*common, f"hydra.run.dir={job}", "resume=true", "schedule.phases.1.iters=3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    log = (job / "train.log").read_text()
    assert "Starting training from iteration 4" in log and "resuming in phase 2/2 'all'" in log
    assert json.loads((job / "final_metrics.json").read_text())["iteration"] == 5
    assert load_d2_cfg(job / "d2_config.yaml").SOLVER.MAX_ITER == 5

    r = train_py(*common, f"hydra.run.dir={tmp_path / 'fresh'}", "resume=true", cwd=tmp_path)
    assert r.returncode == 1
    assert "error: resume=true but" in r.stderr and "hydra.run.dir" in r.stderr
    assert "Traceback" not in r.stderr
