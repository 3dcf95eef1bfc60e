"""Which trained model to serve: the checkpoint given, or the newest `model_final.pth` under a runs folder."""
from __future__ import annotations

from pathlib import Path

from spine_d2 import zoo
from spine_d2.engine.inference import InferenceError, hydra_record

CHECKPOINT_NAME = "model_final.pth"


def newest_checkpoint(outputs: str | Path = "outputs") -> Path:
    """The most recently written `model_final.pth` under `outputs` (any depth); InferenceError if none."""
    root = Path(outputs)
    found = sorted(root.rglob(CHECKPOINT_NAME), key=lambda p: (p.stat().st_mtime, str(p))) if root.is_dir() else []
    if not found:
        raise InferenceError(f"no trained model under {root}/: run `make demo` first (or give checkpoint=FILE)")
    return found[-1]


def default_checkpoint(outputs: str | Path = "outputs") -> tuple[str, str]:
    """(checkpoint, why it was chosen): the newest `model_final.pth` under `outputs`, else the model
    that ships with spine_d2 (`zoo:<default>`); InferenceError when there is neither."""
    try:
        return str(newest_checkpoint(outputs)), f"the newest trained model under {outputs}/"
    except InferenceError:
        if zoo.DEFAULT in zoo.names():
            return f"zoo:{zoo.DEFAULT}", "the model shipped with spine_d2 (trained on the synthetic phantom only)"
        raise


def run_schedule(checkpoint: str | Path) -> str | None:
    """The schedule name of the run that wrote `checkpoint` (its Hydra record), e.g. 'demo'; None
    when the folder holds no readable record or it names no schedule."""
    from omegaconf import OmegaConf

    record = hydra_record(checkpoint)
    name = OmegaConf.select(record[0], "schedule.name", default=None) if record else None
    return str(name) if name else None
