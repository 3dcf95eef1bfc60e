"""Run a trained model on photos: python tools/predict.py checkpoint=FILE input=DIR_OR_FILE [out=DIR] [labelme=true].

Writes predictions.csv (image,TK,LL,LL_S1,SS,PT,PI,frame,notes; degrees, empty = not measurable
with the reason in notes) and <stem>_overlay.jpg per photo (masks, level names, endplate lines,
angles) in out; with labelme=true also <stem>.json beside each photo, a Labelme pre-annotation
to correct (an existing JSON is never replaced). Unreadable images are reported and skipped; the
rest are still written.
"""
import logging
import sys
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message=r".*(torch\.jit\.script|pkg_resources).*")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import spine_d2.schema  # noqa: E402,F401 (the config schema, registered with Hydra)
from spine_d2.engine.inference import InferenceError, SpinePredictor, image_paths, predict_paths  # noqa: E402

log = logging.getLogger("predict")


@hydra.main(config_path="../conf", config_name="predict", version_base="1.3")
def main(cfg: DictConfig) -> None:
    out = Path(cfg.out)
    try:
        if (out / "predictions.csv").exists():
            raise InferenceError(f"out={out} already holds predictions.csv: choose another out=")
        paths = image_paths(cfg.input)
        predictor = SpinePredictor.from_checkpoint(cfg.checkpoint, cfg.device, cfg.highres)
    except InferenceError as e:
        sys.exit(f"error: {e}")
    table = predict_paths(predictor, paths, out, cfg.measure, labelme=bool(cfg.labelme))
    skipped = table["notes"].astype(str).str.startswith("skipped").sum()
    log.info(f"{len(table) - skipped} photos measured, {skipped} skipped: {out / 'predictions.csv'}")


if __name__ == "__main__":
    main()
