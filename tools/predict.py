"""Run a trained model on photos: python tools/predict.py input=DIR_OR_FILE [checkpoint=FILE|zoo:NAME] [out=DIR] [labelme=true].

Without checkpoint= the newest model_final.pth under outputs/ is used, else the model shipped with
spine_d2 (zoo:phantom-fast-long, trained on the synthetic phantom only); predictions.csv says which.

Writes predictions.csv (image,TK,LL,LL_S1,SS,PT,PI,frame,notes,model; degrees, empty = not measurable
with the reason in notes) and <stem>_overlay.jpg per photo (masks, level names, endplate lines,
angles) in out; with labelme=true also <stem>.json beside each photo, a Labelme pre-annotation
to correct (an existing JSON is never replaced). Photos of one stem (scan.png, scan.jpg) are named
<stem>_<suffix> in both. Unreadable images are reported and skipped, a photo whose measurement
fails is reported with the error; the rest are still written. A photo over max_megapixels (16) is
measured on a copy scaled down to that (its notes say so).
"""
import logging
import sys
from pathlib import Path

from spine_d2.library_warnings import hide_library_warnings

hide_library_warnings()

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import spine_d2.schema  # noqa: E402,F401 (the config schema, registered with Hydra)
from spine_d2.engine.inference import InferenceError, SpinePredictor, image_paths, predict_paths  # noqa: E402
from spine_d2.measure import MeasureConfig  # noqa: E402
from spine_d2.serve.checkpoints import default_checkpoint  # noqa: E402

log = logging.getLogger("predict")


@hydra.main(config_path="../conf", config_name="predict", version_base="1.3")
def main(cfg: DictConfig) -> None:
    out = Path(cfg.out)
    try:
        if (out / "predictions.csv").exists():
            raise InferenceError(f"out={out} already holds predictions.csv: choose another out=")
        paths = image_paths(cfg.input)
        measure = MeasureConfig.from_cfg(cfg.measure)  # a bad measure.* value is named now, not after the model ran
        checkpoint = cfg.checkpoint
        if checkpoint is None:
            checkpoint, why = default_checkpoint(cfg.outputs)
            log.info(f"no checkpoint= given: using {why}: {checkpoint}")
        predictor = SpinePredictor.from_checkpoint(checkpoint, cfg.device, cfg.highres, cfg.soft_masks, cfg.flip,
                                                   cfg.flip_when, cfg.turns, cfg.share_turns,
                                                   cfg.negative)
    except (InferenceError, ValueError) as e:
        sys.exit(f"error: {e}")
    table = predict_paths(predictor, paths, out, measure, labelme=bool(cfg.labelme),
                          max_pixels=int(float(cfg.max_megapixels) * 1e6))
    notes = table["notes"].astype(str)
    skipped, failed = notes.str.startswith("skipped").sum(), notes.str.startswith("failed").sum()
    log.info(f"{len(table) - skipped - failed} photos measured, {skipped} skipped (unreadable)"
             f"{f', {failed} failed (see the log)' if failed else ''}: {out / 'predictions.csv'}")


if __name__ == "__main__":
    main()
