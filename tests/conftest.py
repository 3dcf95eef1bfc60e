"""Shared by test modules: `run_tool` (the one way tests run a tool) and one smoke-trained model
for the whole session.

`make test` runs the suite in worker processes (pytest-xdist, `-n`): each worker then gets an even
share of the CPU's cores for torch (and the tools it starts), not all of them, and the smoke model
is trained by the first worker that asks for it and read by the others."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

import spine_d2.schema  # noqa: F401 (the config schema, registered with Hydra for compose())

REPO = Path(__file__).resolve().parents[1]

# Under pytest-xdist: the cores shared out between the workers, set before any test imports torch
# (torch reads OMP_NUM_THREADS once, when it starts) and inherited by the tools the tests start.
# Without it each worker's torch takes every core and two workers on 2 cores run slower than one.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1)
                                                     // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))


def run_tool(tool: str, *args: str, cwd: str | Path = REPO, check: bool = True,
             timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python tools/<tool> args…` as a user runs it, from `cwd` (a test's tmp_path keeps whatever
    the tool writes relative to where it stands there), with this checkout's spine_d2 first on the
    path and `env` added to the environment; AssertionError with the output's tail when it fails
    (unless check=False)."""
    env = {**os.environ, **(env or {}),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(REPO / "tools" / tool), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{tool} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _train_smoke(tmp: Path) -> tuple[Path, Path]:
    root, run_dir = tmp / "phantom", tmp / "run"
    run_tool("train.py", "experiment=smoke", f"dataset.root={root}", f"hydra.run.dir={run_dir}")
    return root, run_dir


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """(phantom root, run dir) of `tools/train.py experiment=smoke` on a 6-image phantom: real
    training, once per test session (seconds to a minute on a CPU). Under pytest-xdist the workers
    share one run in the session's base temporary directory: the first trains it under a lock, the
    others wait and read it (a failed training fails them all with its message)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return _train_smoke(tmp_path_factory.mktemp("smoke"))
    shared = tmp_path_factory.getbasetemp().parent / "smoke"
    failed = shared / "training-failed.txt"
    with FileLock(f"{shared}.lock"):
        if failed.exists():
            raise AssertionError(failed.read_text())
        if not (shared / "run" / "model_final.pth").exists():
            try:
                _train_smoke(shared)
            except AssertionError as e:
                shared.mkdir(parents=True, exist_ok=True)
                failed.write_text(str(e))
                raise
    return shared / "phantom", shared / "run"
