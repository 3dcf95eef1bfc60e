"""Fixtures shared by test modules: one smoke-trained model for the whole session."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """(phantom root, run dir) of `tools/train.py experiment=smoke` on a 6-image phantom: real
    training, once per test session (seconds to a minute on a CPU)."""
    tmp = tmp_path_factory.mktemp("smoke")
    root, run_dir = tmp / "phantom", tmp / "run"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "train.py"), "experiment=smoke",
                           f"dataset.root={root}", f"hydra.run.dir={run_dir}"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"train.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return root, run_dir
