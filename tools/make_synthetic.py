"""Write a synthetic phantom dataset: phone photos and screenshots of lateral spine X-rays with
exact ground truth (Labelme JSON, measurements.csv, splits, gallery).

    python tools/make_synthetic.py out=datasets/phantom428 n=428 seed=1 [difficulty=easy|realistic|hard]
        [observer_sd=2.0] [workers=2] [knobs.glare=0.8 ...]
"""
from __future__ import annotations

import logging
import sys
import time

import hydra
from omegaconf import DictConfig, OmegaConf

from spine_d2.synthetic.generate import generate_dataset

log = logging.getLogger("make_synthetic")


@hydra.main(version_base="1.3", config_path="../conf", config_name="make_synthetic")
def main(cfg: DictConfig) -> None:
    knobs = {k: v for k, v in OmegaConf.to_container(cfg.knobs).items() if v is not None}
    start = time.perf_counter()
    try:
        out = generate_dataset(cfg.out, int(cfg.n), int(cfg.seed), cfg.difficulty, workers=cfg.workers,
                               observer_sd=cfg.observer_sd, progress=cfg.progress, **knobs)
    except (FileExistsError, ValueError) as e:
        log.error("%s", e)
        sys.exit(2)
    dt = time.perf_counter() - start
    log.info("wrote %d images to %s in %.1f s (%.1f images/s); look at %s/gallery.jpg",
             cfg.n, out, dt, cfg.n / dt, out)


if __name__ == "__main__":
    main()
