"""Checkpoints that ship with spine_d2, named `zoo:<name>`: models trained on the synthetic phantom.

Each entry is three files in this folder: `<name>.pth` (the weights, as trained or as float16), `<name>.yaml`
(the detectron2 config it was trained with, as a run's `d2_config.yaml`) and `<name>.json` (its card:
the command, commit, phantom seed, training time and benchmark; MODEL_ZOO.md is written from the
cards). `model.weights=zoo:<name>` fine-tunes one; `checkpoint=zoo:<name>` predicts, evaluates or
serves with it. `export` adds or replaces an entry, and replaces one only with a model that beats it
on the recorded benchmark.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

#: this folder, or another holding entries (SPINE_D2_ZOO_DIR, e.g. a site-wide copy)
ZOO_DIR = Path(os.environ.get("SPINE_D2_ZOO_DIR") or Path(__file__).resolve().parent)
PREFIX = "zoo:"
DEFAULT = "phantom-fast-long"  # what predict and the page use when nothing has been trained


class ZooError(ValueError):
    """An unknown zoo name, or an entry that cannot be written; the message says which."""


def names() -> list[str]:
    """The entries present (each with its weights, config and card)."""
    return sorted(p.stem for p in ZOO_DIR.glob("*.pth")
                  if p.with_suffix(".yaml").is_file() and p.with_suffix(".json").is_file())


def is_zoo(weights: object) -> bool:
    return isinstance(weights, str) and weights.startswith(PREFIX)


def checkpoint(name: str) -> Path:
    """The weights file of entry `name` (with or without the `zoo:` prefix)."""
    name = name[len(PREFIX):] if is_zoo(name) else name
    if name not in names():
        have = ", ".join(f"zoo:{n}" for n in names()) or "none"
        raise ZooError(f"zoo:{name}: no such model in {ZOO_DIR} (available: {have})")
    return ZOO_DIR / f"{name}.pth"


def resolve(weights: str | None) -> str | None:
    """`zoo:<name>` → the path of its weights; any other value unchanged."""
    return str(checkpoint(weights)) if is_zoo(weights) else weights


def card(name: str) -> dict:
    """The card of entry `name`: command, commit, seed, training time, benchmark (plain JSON)."""
    return json.loads(checkpoint(name).with_suffix(".json").read_text(encoding="utf-8"))


def is_zoo_file(path: str | Path) -> bool:
    """Whether `path` is a weights file of this folder (a shipped model, not a user's run)."""
    p = Path(path).resolve()
    return p.parent == ZOO_DIR.resolve() and p.suffix == ".pth"
