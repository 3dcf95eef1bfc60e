"""Which code produced a result: the package version and the git commit of a checkout."""
from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]  # the checkout this package runs from


def git(*args: str, repo: str | Path = REPO) -> str | None:
    """The output of `git -C repo args…` (trailing whitespace dropped), or None outside a checkout or on any failure."""
    try:
        out = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.rstrip() if out.returncode == 0 else None


def code_version(repo: str | Path | None = None) -> str:
    """'spine_d2 <version>, git <describe>' of the code in `repo` (default: this package's)."""
    import spine_d2

    text = f"spine_d2 {spine_d2.__version__}"
    described = git("describe", "--always", "--dirty", "--tags", repo=repo or REPO)
    return f"{text}, git {described}" if described else text


def describe_commit(depends: Sequence[str] = (), repo: str | Path = REPO) -> str:
    """The short commit, plus which of the files `depends` (paths under the repository; they shape
    the numbers) have uncommitted changes; 'unknown' outside a git checkout."""
    commit = git("rev-parse", "--short", "HEAD", repo=repo)
    status = git("status", "--porcelain", "--untracked-files=all", "--", *depends, repo=repo) if depends else ""
    if not commit or status is None:
        return "unknown"
    dirty = [ln[3:] for ln in status.splitlines()]
    return commit + (f" + uncommitted changes to {', '.join(sorted(dirty))}" if dirty else "")
