"""An angle's error against the phantom's T12–L1 disc angle (radiograph frame, degrees).

    python benchmarks/junction.py per_image=<eval dir>/per_image.csv root=datasets/phantom428 \
        [angle=TK] [name=demo]

Reads an evaluation's per_image.csv and the dataset's stored endplates (annotations/<image>.json,
`spine_d2.endplates`, radiograph frame); writes results/junction-<name>.{md,json}: the disc's
angle over the whole dataset (median, 95th percentile, share over 15°; real thoracolumbar
junctions are nearly straight) and the angle's mean absolute error in bins of it.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from _common import options, provenance, provenance_line

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULTS = {"per_image": None, "root": "datasets/phantom428", "angle": "TK", "name": "demo"}
EDGES = (0.0, 10.0, 20.0, 90.0)


def line_deg(segment: Sequence[Sequence[float]]) -> float:
    """A line's direction from its two ends (any frame, degrees modulo 180)."""
    (x0, y0), (x1, y1) = segment
    return math.degrees(math.atan2(y1 - y0, x1 - x0)) % 180.0


def disc_angle(endplates: Mapping[str, Mapping[str, Sequence]]) -> float | None:
    """|angle| between T12's inferior and L1's superior endplate (degrees), None when one is missing."""
    try:
        a, b = endplates["T12"]["inferior"], endplates["L1"]["superior"]
    except KeyError:
        return None
    return abs((line_deg(a) - line_deg(b) + 90.0) % 180.0 - 90.0)


def error_by_bins(pairs: Iterable[tuple[float, float]], edges: Sequence[float] = EDGES) -> list[dict]:
    """(disc angle, absolute error) pairs → per bin [lo, hi): n, MAE and median error (degrees)."""
    pairs = [(d, e) for d, e in pairs if not (math.isnan(d) or math.isnan(e))]
    out = []
    for lo, hi in zip(edges, edges[1:]):
        errs = [e for d, e in pairs if lo <= d < hi]
        out.append({"from": lo, "to": hi, "n": len(errs),
                    "mae": float(np.mean(errs)) if errs else math.nan,
                    "median": float(np.median(errs)) if errs else math.nan})
    return out


def dataset_discs(root: Path) -> dict[str, float]:
    """image stem → its T12–L1 disc angle, for every annotation that stores both endplates."""
    out = {}
    for path in sorted((root / "annotations").glob("*.json")):
        d = disc_angle(json.loads(path.read_text()).get("spine_d2", {}).get("endplates", {}))
        if d is not None:
            out[path.stem] = d
    return out


def main(argv: Sequence[str]) -> None:
    opts = options(argv, DEFAULTS, "junction.py")
    if not opts["per_image"]:
        raise SystemExit("junction.py: give per_image=<an evaluation's per_image.csv>")
    angle, root = opts["angle"], Path(opts["root"])
    discs = dataset_discs(root)
    if not discs:
        raise SystemExit(f"junction.py: no T12 and L1 endplates stored under {root / 'annotations'}")
    table = pd.read_csv(opts["per_image"])
    err = (table[f"{angle}_pred"] - table[f"{angle}_true"]).abs()
    bins = error_by_bins((discs.get(img, math.nan), e) for img, e in zip(table["image"], err))
    values = np.array(list(discs.values()))
    overall = {"n": len(values), "median": float(np.median(values)), "p95": float(np.percentile(values, 95)),
               "over_15": float((values > 15.0).mean())}
    meta = provenance("benchmarks/junction.py", argv)
    (RESULTS / f"junction-{opts['name']}.json").write_text(
        json.dumps({**meta, "angle": angle, "discs": overall, "bins": bins}, indent=2) + "\n")
    lines = [f"# {angle} error against the T12–L1 disc angle: {opts['name']}", "", provenance_line(meta), "",
             f"T12–L1 disc angle over {overall['n']} films of {root}: median {overall['median']:.1f}°, "
             f"95th percentile {overall['p95']:.1f}°, {100 * overall['over_15']:.0f} % over 15°.", "",
             f"| disc angle | images | MAE {angle} | median error |", "|---|---|---|---|"]
    lines += [f"| {b['from']:g}–{b['to']:g}° | {b['n']} | {b['mae']:.2f}° | {b['median']:.2f}° |" for b in bins]
    (RESULTS / f"junction-{opts['name']}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
