"""tools/train.py end to end (subprocesses): a two-job sweep with one failing job writes its
summary; resume=true continues a run directory and fails clearly on a fresh one; a directory
holding a run is refused without resume=true."""
import csv
import json
import shutil
from pathlib import Path

from conftest import run_tool
from labelme_factory import make_dataset, snapshot
from spine_d2.engine.config import load_d2_cfg, phases_of


def train_py(*args, cwd):
    return run_tool("train.py", *args, cwd=cwd, check=False, timeout=300)


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
    assert [p.name for p in phases_of(load_d2_cfg(job / "d2_config.yaml"))] == ["heads", "all"]

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


def test_a_directory_holding_a_run_is_never_overwritten_without_resume(smoke_run, tmp_path):
    """hydra.run.dir of a finished run, without resume=true: one line naming the directory and
    what to do; not a file of the run is touched (Hydra's own record included)."""
    root, run_dir = smoke_run
    before = snapshot(run_dir)
    common = ["experiment=smoke", f"dataset.root={root}"]
    r = run_tool("train.py", *common, f"hydra.run.dir={run_dir}", check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    (line,) = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert line.startswith(f"error: hydra.run.dir={run_dir} already holds a run (last_checkpoint, d2_config.yaml")
    assert "nothing was written" in line and "resume=true" in line and "another hydra.run.dir" in line
    assert snapshot(run_dir) == before

    sweep = tmp_path / "sweep"  # a sweep directory whose job 0 holds that run
    shutil.copytree(run_dir, sweep / "0")
    before = snapshot(sweep)
    r = run_tool("train.py", "-m", *common, f"hydra.sweep.dir={sweep}", "solver.base_lr=0.001,0.002", check=False)
    assert r.returncode == 1 and f"error: hydra.sweep.dir={sweep} (job 0) already holds a run" in r.stderr
    assert snapshot(sweep) == before
