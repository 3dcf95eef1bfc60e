"""Two settings' evaluations of the same films, paired: what a change moved, film by film.

    python benchmarks/compare_evaluations.py before=DIR[,DIR…] after=DIR[,DIR…] [name=compare]
        [what="what changed between before and after"]

Each DIR is a tools/evaluate.py output (its eval/per_image.csv, or a per_image.csv's folder); the
i-th `before` and the i-th `after` must hold the same films (e.g. one phantom seed evaluated twice,
`measure.film_edges=false` and the default). Per angle, pooled over every pair: the mean absolute
error (degrees) and the share measured of the films whose truth has it, before and after; then
every film whose measurement moved (by over 0.01°, or measured in one and not the other), with its
error before and after and the reason the angle was left out; where both evaluations checked the
level names against the annotation's (`misnamed`), the films misnamed before and after and every
film whose misnamed levels changed. Writes results/compare-<name>.md and .json with provenance.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from _common import REPO, as_list, options, provenance, provenance_line
from spine_d2.angles import ANGLE_NAMES
from spine_d2.evaluation.per_image import PerImageError, pairs, read_per_image

MOVED_DEG = 0.01


def per_image(folder: str | Path) -> pd.DataFrame:
    """An evaluation's per_image.csv (DIR/eval/per_image.csv or DIR/per_image.csv), read by
    `spine_d2.evaluation.per_image.read_per_image`, one row per image in name order."""
    folder = Path(folder)
    path = next((p for p in (folder / "eval" / "per_image.csv", folder / "per_image.csv") if p.is_file()), None)
    if path is None:
        raise SystemExit(f"compare_evaluations.py: no per_image.csv in {folder} (nor in {folder / 'eval'})")
    try:
        return read_per_image(path).sort_values("image", ignore_index=True)
    except PerImageError as e:
        raise SystemExit(f"compare_evaluations.py: {e}") from None


def compare(tables: list[tuple[pd.DataFrame, pd.DataFrame, str]]) -> dict:
    """Pooled MAE and share measured per angle before and after, the films that moved, and (where
    both hold the level names' check) the films misnamed and those whose misnamed levels changed;
    `tables`: (before, after, label), each pair holding the same images (`per_image`)."""
    pooled = {a: {"before": [], "after": [], "with_truth": 0} for a in ANGLE_NAMES}
    moved, renamed, misnamed = [], [], {"before": 0, "after": 0, "checked": 0}
    for before, after, label in tables:
        if list(before["image"]) != list(after["image"]):
            raise SystemExit(f"compare_evaluations.py: {label}: the two evaluations hold different films")
        if "misnamed" in before and "misnamed" in after:
            misnamed["checked"] += len(before)
            for i, (x, y) in enumerate(zip(before["misnamed"], after["misnamed"])):
                misnamed["before"] += bool(x)
                misnamed["after"] += bool(y)
                if x != y:
                    renamed.append({"set": label, "image": before["image"][i], "before": x, "after": y})
        for a in ANGLE_NAMES:
            truth, x = pairs(before, a)
            y = pairs(after, a)[1]
            for i in np.flatnonzero(np.isfinite(truth)):
                pooled[a]["with_truth"] += 1
                for side, v in (("before", x[i]), ("after", y[i])):
                    if np.isfinite(v):
                        pooled[a][side].append(float(abs(v - truth[i])))
                if np.isfinite(x[i]) != np.isfinite(y[i]) or abs(x[i] - y[i]) > MOVED_DEG:
                    moved.append({"set": label, "image": before["image"][i], "angle": a, "truth": float(truth[i]),
                                  "error_before": float(abs(x[i] - truth[i])) if np.isfinite(x[i]) else None,
                                  "error_after": float(abs(y[i] - truth[i])) if np.isfinite(y[i]) else None,
                                  "note_after": "" if np.isfinite(y[i]) else str(after[f"{a}_note"][i])})
    moved.sort(key=lambda m: (m["set"], m["image"], ANGLE_NAMES.index(m["angle"])))
    table = {a: {side: {"mae": (sum(v[side]) / len(v[side])) if v[side] else None, "n": len(v[side]),
                        "share": len(v[side]) / v["with_truth"] if v["with_truth"] else None}
                 for side in ("before", "after")} for a, v in pooled.items()}
    out = {"angles": table, "moved": moved}
    if misnamed["checked"]:
        out.update(misnamed=misnamed, renamed=renamed)
    return out


def _fmt(side: dict) -> str:
    return "–" if side["mae"] is None else f"{side['mae']:.3f}° on {100 * side['share']:.1f} % ({side['n']})"


def _reason(note: str, angle: str) -> str:
    """Why `angle` was left out: the part of the measurement's notes that says so ("LL NaN: …"), or
    the whole note where it is the reason alone."""
    for part in note.split("; "):
        names, sep, why = part.partition(" NaN: ")
        if sep and angle in names.split("/"):
            return why
    return "" if " NaN: " in note else note


def main(argv) -> None:
    opts = options(argv, {"before": "", "after": "", "name": "compare", "what": "",
                          "out": str(REPO / "benchmarks" / "results")}, "compare_evaluations.py")
    before, after = as_list(opts["before"]), as_list(opts["after"])
    if not before or len(before) != len(after):
        raise SystemExit("compare_evaluations.py: give before=DIR[,DIR…] and after= with as many folders")
    tables = [(per_image(b), per_image(a), Path(a).name) for b, a in zip(before, after)]
    meta = provenance("benchmarks/compare_evaluations.py", argv, ["benchmarks/compare_evaluations.py"])
    result = compare(tables)
    out = Path(opts["out"])
    (out / f"compare-{opts['name']}.json").write_text(json.dumps({"meta": meta, "what": opts["what"], **result},
                                                                 indent=2) + "\n")
    lines = [f"# {opts['what'] or 'before / after'}", "", provenance_line(meta), "",
             f"{sum(len(t[0]) for t in tables)} films in {len(tables)} pair(s) of evaluations.", "",
             "| angle | before: MAE on the share measured (films) | after |", "|---|---|---|"]
    lines += [f"| {a} | {_fmt(t['before'])} | {_fmt(t['after'])} |" for a, t in result["angles"].items()]
    lines += ["", f"Films whose measurement moved ({len(result['moved'])}):", ""]
    for m in result["moved"]:
        err = ["left out" if e is None else f"{e:.1f}° off" for e in (m["error_before"], m["error_after"])]
        why = _reason(m["note_after"], m["angle"]) if m["error_after"] is None else ""
        why = f" ({why})" if why else ""
        lines.append(f"- {m['set']} {m['image']} {m['angle']} (truth {m['truth']:.1f}°): {err[0]} → {err[1]}{why}")
    if "misnamed" in result:
        n = result["misnamed"]
        lines += ["", f"Films with a level misnamed against the annotation: {n['before']} → {n['after']} of "
                      f"{n['checked']}; films whose misnamed levels changed ({len(result['renamed'])}):", ""]
        lines += [f"- {r['set']} {r['image']}: {r['before'] or 'named right'} → {r['after'] or 'named right'}"
                  for r in result["renamed"]]
    (out / f"compare-{opts['name']}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1:])
