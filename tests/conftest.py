"""Shared by test modules: `run_tool` (the one way tests run a tool) and one smoke-trained model
for the whole session."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import spine_d2.schema  # noqa: F401 (the config schema, registered with Hydra for compose())

REPO = Path(__file__).resolve().parents[1]


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


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """(phantom root, run dir) of `tools/train.py experiment=smoke` on a 6-image phantom: real
    training, once per test session (seconds to a minute on a CPU)."""
    tmp = tmp_path_factory.mktemp("smoke")
    root, run_dir = tmp / "phantom", tmp / "run"
    run_tool("train.py", "experiment=smoke", f"dataset.root={root}", f"hydra.run.dir={run_dir}")
    return root, run_dir
