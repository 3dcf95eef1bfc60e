"""Transfer to films a model has not seen: held-out phantoms (new seeds), one per kind of variation.

    python benchmarks/transfer.py checkpoint=FILE [name=long] [n=40] [sets=seen,ct,hardware,films,scoliosis] [highres=false] [flip=true]

Each set is generated once (kept as datasets/transfer-<set>-<n>) and evaluated whole:
  seen      the default phantom (realistic preset), a seed no model was trained on
  ct        lateral DRRs of CT volumes only (no film processing or noise, the scanner's round
            field of view, the table), shown as screenshots
  hardware  every patient with findings, half of them instrumented (screws, rods, cages)
  films     screenshots of the films alone (no phone photos)
  scoliosis every patient with a coronal curve and axial rotation (double endplate contours)
A model trained with a kind of variation kept out of its phantom (e.g. knobs.ct_fraction=0
knobs.hardware_fraction=0 knobs.scoliosis=0) measures how far it carries to that kind: our stand-in for anatomy and
films from elsewhere. Writes results/transfer-<name>.md and .json (Dice, mIoU, MAE and share
measured of TK, LL, SS per set), with provenance.
"""
from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

from _common import REPO, as_list, options, provenance, provenance_line

SETS = {
    "seen": {},
    "ct": {"ct_fraction": 1.0, "photo_fraction": 0.0},
    "hardware": {"pathology_fraction": 1.0, "hardware_fraction": 0.5},
    "films": {"photo_fraction": 0.0},
    "scoliosis": {"scoliosis": 1.0},
}
SEED = 900  # + the set's index: never the training phantom's
ANGLES = ("TK", "LL", "SS")


def held_out(name: str, n: int) -> Path:
    """The held-out phantom of set `name` (generated on first use)."""
    from spine_d2.synthetic.generate import generate_dataset

    root = REPO / "datasets" / f"transfer-{name}-{n}"
    if not root.is_dir():
        generate_dataset(root, n, SEED + list(SETS).index(name), progress=False, **SETS[name])
    return root


def evaluate(checkpoint: str, root: Path, highres: bool | None, flip: bool | None = None) -> dict:
    """summary.json of the checkpoint on every image of `root` (`highres`, `flip`: None as trained)."""
    from spine_d2.data.register import register_spine_dataset
    from spine_d2.engine.inference import config_for_checkpoint, evaluate_checkpoint

    cfg = config_for_checkpoint(checkpoint, "auto", highres, flip=flip)
    names = register_spine_dataset(f"transfer_{root.name}", root, cfg.SPINE.CLASS_MAP)
    with tempfile.TemporaryDirectory() as tmp:
        res = evaluate_checkpoint(cfg, names["all"], Path(tmp) / "eval")
        return json.loads((Path(res["report_dir"]) / "summary.json").read_text())


def _row(name: str, s: dict) -> str:
    def mae(a):
        v = (s.get(a) or {}).get("mae")
        n, miss = (s.get(a) or {}).get("n", 0), (s.get(a) or {}).get("missing", 0)
        share = n / (n + miss) if n + miss else math.nan
        return "–" if v is None else f"{v:.1f}° ({share:.0%})"
    return (f"| {name} | {s.get('n_images')} | {100 * (s.get('dice_mean') or 0):.1f} % | "
            f"{100 * (s.get('miou_mean') or 0):.1f} % | " + " | ".join(mae(a) for a in ANGLES) + " |")


def main(argv) -> None:
    opts = options(argv, {"checkpoint": None, "name": "long", "n": "40", "sets": ",".join(SETS),
                          "highres": "", "flip": "", "out": str(REPO / "benchmarks" / "results")}, "transfer.py")
    if not opts["checkpoint"]:
        raise SystemExit("transfer.py: checkpoint=FILE is required")
    highres, flip = (None if opts[k] == "" else opts[k].lower() in ("1", "true", "yes") for k in ("highres", "flip"))
    meta = provenance("benchmarks/transfer.py", argv, ["spine_d2"])
    results = {}
    for name in as_list(opts["sets"]):
        if name not in SETS:
            raise SystemExit(f"transfer.py: unknown set {name!r}; known: {', '.join(SETS)}")
        results[name] = evaluate(opts["checkpoint"], held_out(name, int(opts["n"])), highres, flip)
    out = Path(opts["out"])
    (out / f"transfer-{opts['name']}.json").write_text(json.dumps({"meta": meta, "sets": SETS, "results": results},
                                                                   indent=2, default=str) + "\n")
    lines = [f"# Transfer: {opts['name']} ({opts['checkpoint']})", "", provenance_line(meta), "",
             "| set | images | Dice | mIoU | MAE TK (measured) | LL | SS |", "|---|---|---|---|---|---|---|"]
    lines += [_row(k, v) for k, v in results.items()]
    lines += ["", "Sets: " + "; ".join(f"`{k}` {v or 'the default phantom'}" for k, v in SETS.items())]
    (out / f"transfer-{opts['name']}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
