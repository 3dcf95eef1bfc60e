"""Serve the page and API: python tools/serve.py [checkpoint=FILE] [host=127.0.0.1] [port=8000].

A clinician drops phone photos or screenshots of lateral X-rays on the page and gets the overlay
and TK, LL, LL_S1, SS, PT, PI (degrees) with the frame used and the reason for each missing angle;
the same through `POST /api/measure` (OpenAPI docs at /docs). Without checkpoint= the newest
model_final.pth under outputs/ is served, else the model shipped with spine_d2 (zoo:phantom-fast-long,
trained on the synthetic phantom). Uploads stay in memory unless keep_uploads=DIR.
"""
import logging
import sys

from spine_d2.library_warnings import hide_library_warnings

hide_library_warnings()

import hydra  # noqa: E402
import uvicorn  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import spine_d2.schema  # noqa: E402,F401 (the config schema, registered with Hydra)
from spine_d2.engine.inference import InferenceError, SpinePredictor, trained_on  # noqa: E402
from spine_d2.serve import create_app  # noqa: E402
from spine_d2.serve.checkpoints import default_checkpoint, run_schedule  # noqa: E402

log = logging.getLogger("serve")


@hydra.main(config_path="../conf", config_name="serve", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        checkpoint = cfg.checkpoint
        if checkpoint is None:
            checkpoint, why = default_checkpoint(cfg.outputs)
            log.info(f"no checkpoint= given: serving {why}: {checkpoint}")
        predictor = SpinePredictor.from_checkpoint(checkpoint, cfg.device, cfg.highres, cfg.soft_masks, cfg.flip,
                                                   cfg.flip_when, cfg.turns, cfg.share_turns,
                                                   cfg.negative)
        app = create_app(predictor, cfg.measure, max_upload_bytes=int(cfg.max_upload_mb * 1e6),
                         max_pixels=int(cfg.max_megapixels * 1e6), keep_uploads=cfg.keep_uploads,
                         accuracy_dir=cfg.accuracy_dir, model_name=str(checkpoint),
                         model_config=run_schedule(checkpoint), trained_on=trained_on(checkpoint),
                         overlay_max_side=cfg.overlay_max_side, scale_pixels=int(cfg.scale_megapixels * 1e6))
    except (InferenceError, ValueError) as e:
        sys.exit(f"error: {e}")
    if cfg.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(f"host={cfg.host}: the page has no login; anyone who reaches this address can upload")
    if cfg.keep_uploads:
        log.warning(f"keep_uploads={cfg.keep_uploads}: every uploaded photo is written there, as sent")
    log.info(f"serving {checkpoint} at http://{cfg.host}:{cfg.port}/ (Ctrl-C stops)")
    uvicorn.run(app, host=cfg.host, port=int(cfg.port), log_level="info")


if __name__ == "__main__":
    main()
