"""Check a dataset folder: python tools/check_dataset.py dataset.root=DIR [strict=false].

Prints a summary table (images, annotations per label, levels missing per image, measurement
coverage, problems per file). Exit code 1 when strict and any file is bad. Logic:
spine_d2.data.summary.
"""
import sys

import hydra
from omegaconf import DictConfig

import spine_d2.schema  # noqa: F401 (the config schema, registered with Hydra)
from spine_d2.data.summary import run_check


@hydra.main(config_path="../conf", config_name="check_dataset", version_base="1.3")
def main(cfg: DictConfig) -> None:
    code = run_check(cfg.dataset, strict=cfg.strict)
    if code:
        sys.exit(code)  # Hydra passes no return value on; SystemExit goes through


if __name__ == "__main__":
    main()
