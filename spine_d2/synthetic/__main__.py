"""Generate the training config's phantom, and its further training folders (`dataset.train_extra`),
where absent (what `tools/train.py` would do first), without torch:

    python -m spine_d2.synthetic experiment=demo        # any overrides of tools/train.py

`make demo` runs it while the set-up installs torch and detectron2: the phantom needs only numpy,
OpenCV, SciPy, numba and Hydra. A dataset that exists, or one that is never generated (a Labelme
folder), is left as it is.
"""
from __future__ import annotations

import sys
from pathlib import Path

from hydra import compose, initialize_config_dir

import spine_d2.schema  # noqa: F401  (registers the config schema Hydra composes against)
from spine_d2.synthetic.generate import ensure_dataset

CONF = Path(__file__).resolve().parents[2] / "conf"


def main(overrides: list[str]) -> int:
    try:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            dataset = compose("config", overrides=overrides).dataset
    except Exception as e:  # Hydra's own message names the override and what is wrong with it
        print(f"phantom: cannot compose the config with {overrides}: {e}", file=sys.stderr)
        return 2
    folders = [dataset, *(dataset.get("train_extra") or ())]
    todo = [str(f.root) for f in folders if not Path(str(f.root)).exists() and f.get("generate") is not None]
    if not todo:
        print(f"phantom: {', '.join(str(f.root) for f in folders)}: there or not generated: nothing to do")
        return 0
    print(f"phantom: generating {', '.join(todo)}")
    ensure_dataset(dataset, train_extra=True)
    print(f"phantom: wrote {', '.join(todo)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
