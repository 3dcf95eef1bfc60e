"""Checks an installation: imports every spine_d2 module and the libraries they load lazily.

    python -m spine_d2.install_check     # `make setup` runs it last; exit status 1 names what failed

A broken install then fails at set-up, naming the module, rather than in the middle of a run. It
also compiles what the tools load: `make setup` installs with pip's --no-compile (compiling every
file pip unpacks cost ~85 s of CPU on 2 cores, most of it for modules nothing imports) and runs
this check with bytecode writing on, so each module the tools import is compiled once (~25 s), even
where PYTHONDONTWRITEBYTECODE is set for later runs.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys
import warnings

#: imported inside functions, by Hydra's plugins or by the tests: importing spine_d2's modules misses them
LAZY = (
    "pingouin", "statsmodels.api", "labelme.utils", "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper",
    "hydra_plugins.hydra_joblib_launcher.joblib_launcher", "hydra_plugins.hydra_submitit_launcher.submitit_launcher",
    "uvicorn", "fastapi.testclient", "pytest", "selenium.webdriver",
)


def module_names() -> list[str]:
    """spine_d2's modules (not the `__main__` of a runnable package), then `LAZY`. Imports
    spine_d2's subpackages (walk_packages must, to find their modules)."""
    import spine_d2

    ours = [m.name for m in pkgutil.walk_packages(spine_d2.__path__, "spine_d2.")
            if not m.name.endswith(".__main__") and m.name != __name__]
    return ["spine_d2", *ours, *LAZY]


def failed_imports(names: list[str]) -> list[str]:
    """'module: error' for each of `names` that does not import."""
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 (any failure to import is what we report)
            failed.append(f"{name}: {type(e).__name__}: {e}")
    return failed


def main() -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # libraries' deprecation notes are not install problems
        failed = failed_imports(module_names())  # walk_packages imports the subpackages too
    if failed:
        print("spine_d2 install check: these modules do not import:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    import detectron2
    import torch

    print("spine_d2 ready: torch", torch.__version__, "detectron2", detectron2.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
