"""Evaluate a trained model: python tools/evaluate.py checkpoint=FILE [dataset.root=DIR] | run_dir=DIR.

COCO AP (segm, bbox), per-image Dice/IoU and the angles against the dataset's measurements.csv;
writes per_image.csv, summary.json, report.md and report.html into <hydra run dir>/eval/ and
prints the headline numbers beside the reference study's.
"""
import logging
import sys
from pathlib import Path

from spine_d2.library_warnings import hide_library_warnings

hide_library_warnings()

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf, open_dict  # noqa: E402

import spine_d2.schema  # noqa: E402,F401 (the config schema, registered with Hydra)
from spine_d2.data.labelme import DatasetError  # noqa: E402
from spine_d2.data.register import register_from_cfg  # noqa: E402
from spine_d2.engine.inference import InferenceError, config_for_checkpoint, evaluate_checkpoint  # noqa: E402
from spine_d2.evaluation.report import print_headline  # noqa: E402
from spine_d2.measure import MeasureConfig  # noqa: E402
from spine_d2.synthetic.generate import ensure_dataset  # noqa: E402

log = logging.getLogger("evaluate")


@hydra.main(config_path="../conf", config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        if (cfg.checkpoint is None) == (cfg.run_dir is None):
            raise InferenceError("give exactly one of checkpoint=FILE or run_dir=DIR")
        if not isinstance(cfg.processes, int) or isinstance(cfg.processes, bool) or cfg.processes < 1:
            raise InferenceError(f"processes={cfg.processes}: a whole number, 1 or more")
        MeasureConfig.from_cfg(cfg.measure)  # a bad measure.* value is named now, not after the model ran
        checkpoint = cfg.checkpoint or str(Path(cfg.run_dir) / "model_final.pth")
        d2 = config_for_checkpoint(checkpoint, cfg.device, cfg.highres, cfg.soft_masks, cfg.flip,
                                   cfg.sacrum_corners, cfg.turns, cfg.turn_strip, cfg.flip_turns, cfg.amp,
                                   cfg.tiebreak_turns, cfg.flip_when, cfg.turned_boxes, cfg.amp_corners,
                                   cfg.share_turns, cfg.negative)
        with open_dict(cfg):
            cfg.dataset.class_map = d2.SPINE.CLASS_MAP  # the model's classes decide
        ensure_dataset(cfg.dataset)
        names = register_from_cfg(cfg.dataset)
        if cfg.split not in names:
            raise InferenceError(f"split={cfg.split}: choose one of {', '.join(names)}")
    except (InferenceError, DatasetError, FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    results = evaluate_checkpoint(d2, names[cfg.split], Path(cfg.output_dir) / "eval", cfg.measure,
                                  config_text=OmegaConf.to_yaml(cfg), processes=cfg.processes,
                                  dataset_cfg=cfg.dataset)
    print_headline(results["report_dir"])


if __name__ == "__main__":
    main()
