"""Average the weights of a run's checkpoints into one model that tools/evaluate.py can load.

    python benchmarks/average_checkpoints.py out=DIR checkpoints=RUN/model_0007499.pth,RUN/model_0007999.pth

Writes DIR/model_final.pth (the element-wise mean of each parameter, computed in float64) and
copies the run's d2_config.yaml beside it. Meant for models without batch-norm statistics (the
`fast` model's GroupNorm); the optimizer state is dropped.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import torch

from _common import as_list, options


def average(paths: list[Path]) -> dict[str, torch.Tensor]:
    """The mean of the checkpoints' `model` state dicts, each tensor in its own dtype."""
    states = [torch.load(p, map_location="cpu", weights_only=False)["model"] for p in paths]
    keys = set(states[0])
    for p, s in zip(paths, states):
        if set(s) != keys:
            raise SystemExit(f"average_checkpoints: {p} holds other parameters than {paths[0]}")
    return {k: (sum(s[k].double() for s in states) / len(states)).to(states[0][k].dtype)
            for k in states[0]}


def main(argv: list[str]) -> None:
    opts = options(argv, {"out": "", "checkpoints": ""}, "average_checkpoints")
    paths = [Path(p) for p in as_list(opts["checkpoints"])]
    if not opts["out"] or not paths:
        raise SystemExit("average_checkpoints: give out=DIR and checkpoints=A.pth,B.pth")
    config = paths[0].parent / "d2_config.yaml"
    if not config.is_file():
        raise SystemExit(f"average_checkpoints: {config} is missing (evaluate needs it beside the weights)")
    out = Path(opts["out"])
    out.mkdir(parents=True, exist_ok=True)
    torch.save({"model": average(paths)}, out / "model_final.pth")
    shutil.copy(config, out / "d2_config.yaml")
    print(f"{out / 'model_final.pth'}: the mean of {len(paths)} checkpoints")


if __name__ == "__main__":
    main(sys.argv[1:])
