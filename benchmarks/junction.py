"""An angle's error against a property of the phantom's film: its true spine or how it was taken.

    python benchmarks/junction.py per_image=<eval dir>/per_image.csv root=datasets/phantom428 \
        [by=disc] [angle=TK] [name=demo] [edges=0,10,20,90] [within=view]

`by`, a number binned by `edges` (radiograph frame, degrees): `disc`, the T12–L1 disc angle (real
thoracolumbar junctions are nearly straight), or `lean`, the trunk's lean: the angle between the
film's vertical and the line from the S1 superior plate's midpoint to T5's (0° when T5 stands
above the sacrum), `s1_beam`, the angle between the central ray and the ray through the midpoint of
S1's superior plate, positive where S1 lies below it (single exposures only: far from the central
ray a body's laterally broad walls cast double contours), `t5_beam` alike at T5's superior plate,
or an angle's true value (`SS`, `TK`, …: `spine_d2.angles`). Or a kind, one row per value (the
phantom's `spine_d2.capture`): `exposure` (single, stitched, slot-scanned, CT), `view` (full,
thoracic, thoracolumbar, lumbopelvic), `capture` (photo or screenshot), `arms`.
Several evaluations pool: `per_image=a.csv,b.csv root=A,B`, one root per evaluation. With
`within=` a kind and `by` a number, the number is binned within each value of the kind apart (e.g.
`by=s1_beam within=view`: the central ray's angle to S1 on full views and on thoracolumbar ones).

Reads each per_image.csv and the dataset's stored annotations (annotations/<image>.json,
`spine_d2`); writes results/junction-<name>.{md,json}: the property over the whole of each dataset
(a number's median, 95th percentile and share over 15°; a kind's count of each value) and the
angle's mean absolute error, median absolute error and mean signed error (measured − true) in bins
or kinds of it.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from _common import as_list, options, provenance, provenance_line
from spine_d2.angles import ANGLE_NAMES

RESULTS = Path(__file__).resolve().parent / "results"
EDGES = (0.0, 10.0, 20.0, 90.0)
DEFAULTS = {"per_image": None, "root": "datasets/phantom428", "by": "disc", "angle": "TK", "name": "demo",
            "edges": ",".join(f"{e:g}" for e in EDGES), "within": ""}


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


def trunk_lean(endplates: Mapping[str, Mapping[str, Sequence]]) -> float | None:
    """|angle| between the film's vertical and the line from S1's superior plate midpoint up to
    T5's (radiograph frame, degrees), None when one is missing."""
    try:
        s1, t5 = np.mean(endplates["S1"]["superior"], axis=0), np.mean(endplates["T5"]["superior"], axis=0)
    except KeyError:
        return None
    return abs(math.degrees(math.atan2(t5[0] - s1[0], s1[1] - t5[1])))


def beam_angle(block: Mapping, level: str, side: str) -> float | None:
    """The angle (degrees) between the central ray and the ray through the midpoint of `level`'s
    `side` plate, in the film's plane along its columns, positive where the plate lies below the
    central ray; None unless the film is a single exposure with that plate. From an annotation's
    `spine_d2` block: the plate (radiograph frame, px), the film's size and px per mm at the
    mid-sagittal plane, and the source's distance from that plane (`sid_mm` − `oid_mm`). The central
    ray is taken through the film's middle row: the phantom centres a single exposure within a tenth
    of the film's height of it."""
    cap = block.get("capture", {})
    plate = block.get("endplates", {}).get(level, {}).get(side)
    if cap.get("exposure") != "single" or plate is None:
        return None
    below_mm = (float(np.mean(np.asarray(plate, float)[:, 1])) - cap["film_size"][1] / 2) / cap["film_px_per_mm"]
    return math.degrees(math.atan2(below_mm, cap["sid_mm"] - cap["oid_mm"]))


def s1_beam(block: Mapping) -> float | None:
    """`beam_angle` at S1's superior plate (SS's)."""
    return beam_angle(block, "S1", "superior")


def t5_beam(block: Mapping) -> float | None:
    """`beam_angle` at T5's superior plate (TK's cranial one; negative above the central ray)."""
    return beam_angle(block, "T5", "superior")


def _endplates(prop: Callable) -> Callable:
    return lambda block: prop(block.get("endplates", {}))


def _capture(key: str) -> Callable:
    return lambda block: block.get("capture", {}).get(key)


def _true_angle(name: str) -> Callable:
    return lambda block: block.get("angles", {}).get(name)


#: by → (what it is, its value from an annotation's `spine_d2` block, None where undefined): numbers
PROPERTIES: dict[str, tuple[str, Callable]] = {"disc": ("T12–L1 disc angle", _endplates(disc_angle)),
                                               "lean": ("trunk's lean (S1 to T5)", _endplates(trunk_lean)),
                                               "s1_beam": ("central ray's angle to S1", s1_beam),
                                               "t5_beam": ("central ray's angle to T5", t5_beam),
                                               **{a: (f"true {a}", _true_angle(a)) for a in ANGLE_NAMES}}
#: the kinds: one row per value
KINDS: dict[str, tuple[str, Callable]] = {"exposure": ("film's exposure", _capture("exposure")),
                                          "view": ("film's view", _capture("view")),
                                          "capture": ("capture", _capture("kind")),
                                          "arms": ("arms' position", _capture("arms"))}


def _errors(errs: Sequence[float]) -> dict:
    """n, mean and median absolute error, mean signed error (`bias`) of signed errors (degrees)."""
    a = np.abs(errs)
    return {"n": len(errs), "mae": float(np.mean(a)) if len(a) else math.nan,
            "median": float(np.median(a)) if len(a) else math.nan,
            "bias": float(np.mean(errs)) if len(a) else math.nan}


def error_by_bins(pairs: Iterable[tuple[float, float]], edges: Sequence[float] = EDGES) -> list[dict]:
    """(property, signed error) pairs → per bin [lo, hi): n, MAE, median absolute and mean signed
    error (degrees)."""
    pairs = [(d, e) for d, e in pairs if not (math.isnan(d) or math.isnan(e))]
    return [{"from": lo, "to": hi, **_errors([e for d, e in pairs if lo <= d < hi])}
            for lo, hi in zip(edges, edges[1:])]


def error_by_kind(pairs: Iterable[tuple[str | None, float]]) -> list[dict]:
    """(kind, signed error) pairs → per kind (sorted): n, MAE, median absolute and mean signed
    error (degrees)."""
    groups: dict[str, list[float]] = {}
    for kind, e in pairs:
        if kind is not None and not math.isnan(e):
            groups.setdefault(str(kind), []).append(e)
    return [{"kind": k, **_errors(v)} for k, v in sorted(groups.items())]


def error_by_bins_within(triples: Iterable[tuple[str | None, float, float]],
                         edges: Sequence[float] = EDGES) -> list[dict]:
    """(kind, property, signed error) triples → `error_by_bins` within each kind (sorted), each bin
    with its "kind"."""
    groups: dict[str, list[tuple[float, float]]] = {}
    for kind, d, e in triples:
        if kind is not None:
            groups.setdefault(str(kind), []).append((d, e))
    return [{"kind": k, **b} for k, pairs in sorted(groups.items()) for b in error_by_bins(pairs, edges)]


def dataset_values(root: Path, prop: Callable) -> dict[str, float | str]:
    """image stem → `prop` of its annotation's `spine_d2` block, for every one where it is defined."""
    out = {}
    for path in sorted((root / "annotations").glob("*.json")):
        d = prop(json.loads(path.read_text()).get("spine_d2", {}))
        if d is not None:
            out[path.stem] = d
    return out


def _deg(v: float) -> str:
    return "–" if math.isnan(v) else f"{v:.2f}°"


def main(argv: Sequence[str]) -> None:
    opts = options(argv, DEFAULTS, "junction.py")
    tables, roots = as_list(opts["per_image"] or ""), [Path(r) for r in as_list(opts["root"])]
    by, within = opts["by"], opts["within"]
    if not tables or len(tables) != len(roots) or by not in {**PROPERTIES, **KINDS}:
        raise SystemExit("junction.py: give per_image=<per_image.csv>[,…] with as many root=<dataset>[,…], "
                         f"and by= one of {', '.join([*PROPERTIES, *KINDS])}")
    if within and (within not in KINDS or by not in PROPERTIES):
        raise SystemExit(f"junction.py: within= takes a kind ({', '.join(KINDS)}) beside by= a number "
                         f"({', '.join(PROPERTIES)})")
    angle, (what, prop) = opts["angle"], {**PROPERTIES, **KINDS}[by]
    missing = math.nan if by in PROPERTIES else None
    pairs, values, kinds = [], [], []
    for table_path, root in zip(tables, roots):
        found = dataset_values(root, prop)
        if not found:
            raise SystemExit(f"junction.py: no {what} stored under {root / 'annotations'}")
        table = pd.read_csv(table_path)
        if f"{angle}_pred" not in table or f"{angle}_true" not in table:
            raise SystemExit(f"junction.py: {table_path} has no {angle}_pred and {angle}_true columns")
        err = table[f"{angle}_pred"] - table[f"{angle}_true"]
        pairs += [(found.get(img, missing), e) for img, e in zip(table["image"], err)]
        values += list(found.values())
        if within:
            kind_of = dataset_values(root, KINDS[within][1])
            kinds += [kind_of.get(img) for img in table["image"]]
    meta = provenance("benchmarks/junction.py", argv)
    where = f"over {len(values)} films of {', '.join(map(str, roots))}"
    columns = [what]  # what each row is: the kind, the bin, or (with within=) both
    if within:
        kind_what = KINDS[within][0]
        bins = error_by_bins_within([(k, d, e) for k, (d, e) in zip(kinds, pairs)],
                                    [float(e) for e in as_list(opts["edges"])])
        overall = {"n": len(values)}
        head = f"The {what} {where}, binned within each {kind_what}."
        rows = [f"| {b['kind']} | {b['from']:g}–{b['to']:g}° | {b['n']} | {_deg(b['mae'])} | {_deg(b['median'])} | "
                f"{_deg(b['bias'])} |" for b in bins if b["n"]]  # empty bins: in the json only
        columns = [kind_what, what]
    elif by in KINDS:
        bins = error_by_kind(pairs)
        counts = {k: values.count(k) for k in sorted(set(map(str, values)))}
        overall = {"n": len(values), "counts": counts}
        head = f"The {what} {where}: " + ", ".join(f"{k} {n}" for k, n in counts.items()) + "."
        rows = [f"| {b['kind']} | {b['n']} | {_deg(b['mae'])} | {_deg(b['median'])} | {_deg(b['bias'])} |"
                for b in bins]
    else:
        bins = error_by_bins(pairs, [float(e) for e in as_list(opts["edges"])])
        v = np.array(values)
        overall = {"n": len(v), "median": float(np.median(v)), "p95": float(np.percentile(v, 95)),
                   "over_15": float((v > 15.0).mean())}
        head = (f"The {what} {where}: median {overall['median']:.1f}°, 95th percentile {overall['p95']:.1f}°, "
                f"{100 * overall['over_15']:.0f} % over 15°.")
        rows = [f"| {b['from']:g}–{b['to']:g}° | {b['n']} | {_deg(b['mae'])} | {_deg(b['median'])} | "
                f"{_deg(b['bias'])} |" for b in bins]
    (RESULTS / f"junction-{opts['name']}.json").write_text(
        json.dumps({**meta, "by": by, "within": within or None, "angle": angle, "values": overall, "bins": bins},
                   indent=2) + "\n")
    lines = [f"# {angle} error against the {' and the '.join(columns)}: {opts['name']}", "",
             provenance_line(meta), "", head, "",
             f"| {' | '.join(columns)} | images | MAE {angle} | median error | mean signed error |",
             "|" + "---|" * (len(columns) + 4), *rows]
    (RESULTS / f"junction-{opts['name']}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
