"""Shared by the benchmark scripts: key=value options, provenance (command, date, machine, commit), phantom truth.

A result file names the command that produced it, when (UTC), on what machine (cores, load, torch
threads, GPU when one is used) and at which commit (with the files the numbers rest on that were
changed since); `provenance` gathers that once, `provenance_line` writes it for a Markdown file.
"""
from __future__ import annotations

import math
import os
import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python benchmarks/<script>.py` from anywhere
    sys.path.insert(0, str(REPO))

from spine_d2.provenance import describe_commit  # noqa: E402


def options(argv: Sequence[str], defaults: Mapping[str, Any], script: str) -> dict[str, Any]:
    """`key=value` arguments over `defaults`; an unknown key or a missing `=` exits naming it.

    Values stay strings (convert where used); `[a,b]` and `a,b` are both lists for `as_list`."""
    opts = dict(defaults)
    for a in argv:
        k, eq, v = a.partition("=")
        if not eq or k not in opts:
            raise SystemExit(f"{script}: unknown option {a!r}; known: {', '.join(f'{k}=' for k in opts)}")
        opts[k] = v
    return opts


def as_list(value: Any) -> list[str]:
    """'a,b', '[a,b]' or a list → ['a', 'b'] (blank entries dropped)."""
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).strip().strip("[]").split(",") if v.strip()]


def machine(torch_threads: int | None = None, gpu: str | None = None, load: bool = True) -> str:
    """'2-core x86_64 CPU (host), Linux-…, load average 1.9 at the start' [+ torch threads] [+ GPU];
    `load`: say how busy the machine is now (other jobs slow a timing down)."""
    parts = [f"{os.cpu_count()}-core {platform.machine()} CPU ({platform.node()})", platform.platform()]
    if load and hasattr(os, "getloadavg"):
        parts.append(f"load average {os.getloadavg()[0]:.1f} at the start")
    if torch_threads is not None:
        parts.append(f"torch {torch_threads} thread{'s' if torch_threads != 1 else ''}")
    if gpu:
        parts.append(f"GPU {gpu}")
    return ", ".join(parts)


def provenance(script: str, argv: Sequence[str], depends: Sequence[str] = (), **extra: Any) -> dict[str, Any]:
    """command, date (UTC), machine, python, commit, and `extra`: `torch_threads`, `gpu` and `load`
    go to `machine`, anything else (settings worth recording) is kept as given. `script` is the
    path from the repository root."""
    hw = {k: extra.pop(k) for k in ("torch_threads", "gpu", "load") if k in extra}
    return {"command": " ".join(["python", script, *map(shlex.quote, argv)]),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(**hw), "python": platform.python_version(),
            "commit": describe_commit(depends, REPO), **extra}


def provenance_line(meta: Mapping[str, Any], seconds: float | None = None) -> str:
    """The Markdown line under a result's title: `command` — date, machine, Python, commit[, time]."""
    tail = f", {seconds:.0f} s" if seconds is not None else ""
    return (f"`{meta['command']}` — {meta['date']}, {meta['machine']}, Python {meta['python']}, "
            f"commit {meta['commit']}{tail}")


def phantom_truth(records: Sequence[dict], root: str | Path) -> dict[str, dict[str, float]]:
    """{image stem: {angle: degrees, NaN = not measurable}} from each record's `spine_d2.angles`
    (radiograph frame), checked against root/measurements.csv when present; exits naming the
    file when a record is not a phantom's or the two disagree."""
    from spine_d2.angles import ANGLE_NAMES
    from spine_d2.data.measurements import read_measurements

    gt = {}
    for r in records:
        ang = (r.get("spine_d2") or {}).get("angles")
        if ang is None:
            raise SystemExit(f"{r['file_name']}: no spine_d2.angles ground truth (not a phantom?)")
        gt[r["image"]] = {k: (math.nan if ang.get(k) is None else float(ang[k])) for k in ANGLE_NAMES}
    csv = Path(root) / "measurements.csv"
    if csv.exists() and gt:  # the CSV and the JSON must tell the same truth
        df = read_measurements(csv)  # the phantom writes stems; a split holds only some of its rows
        missing = sorted(set(gt) - set(df.index))
        if missing:
            raise SystemExit(f"{csv}: no row for {missing[:3]} ({len(missing)} image(s))")
        worst = max((abs(df.loc[s, k] - v) for s, d in gt.items() for k, v in d.items() if not math.isnan(v)),
                    default=0.0)
        if worst > 1e-3:
            raise SystemExit(f"{csv} disagrees with the JSON ground truth by {worst:.4f}°")
    return gt


def ground_truth_instances(record: dict, class_names: Sequence[str], source: str = "masks") -> list:
    """A dataset dict's ground-truth shapes as a model would give them: `masks` (the polygons
    rasterised: a perfect model) or `polygons`; level labels dropped unless the classes are levels
    themselves (a model of the default or two-class map names no levels)."""
    from dataclasses import replace

    from spine_d2.levels import is_level
    from spine_d2.measure import instances_from_record

    if source not in ("masks", "polygons"):
        raise ValueError(f"ground-truth source must be masks or polygons, got {source!r}")
    insts = instances_from_record(record, class_names, rasterize_masks=source == "masks")
    if any(is_level(c) for c in class_names):
        return insts
    return [replace(i, label=None) for i in insts]


SWITCH = {"true": True, "false": False}  # a true|false option; blank: as the model was trained


def mirrored_predictor(o: Mapping[str, Any], script: str):
    """(SpinePredictor, roots): the checkpoint `o["checkpoint"]` with its mirrored run on (`test.flip`;
    `o["amp"]` true|false switches `test.amp`, blank: as trained) and the phantom folders
    `o["root"]` (a list), for scripts that measure phantom films with their two reads; `o["split"]`
    must be all, train or test. Exits naming what is missing or wrong."""
    from spine_d2.engine.inference import InferenceError, SpinePredictor, config_for_checkpoint

    roots = [Path(r) for r in as_list(o["root"] or "")]
    if not o["checkpoint"] or not roots or o["split"] not in ("all", "train", "test") or o["amp"] not in ("", *SWITCH):
        raise SystemExit(f"{script}: give checkpoint=FILE root=DIR[,DIR], split= all | train | test, "
                         "amp= true | false | (blank: as trained)")
    try:
        cfg = config_for_checkpoint(o["checkpoint"], "auto", flip=True, amp=SWITCH.get(o["amp"]))
    except InferenceError as e:
        raise SystemExit(f"error: {e}")
    return SpinePredictor(cfg), roots


def phantom_films(roots: Sequence[Path], split: str, class_map: str) -> Iterator[tuple[Path, dict, dict[str, float]]]:
    """(root, record, truth) for each film of `split` (all, train or test) of each phantom folder in
    `roots`, its truth as `phantom_truth` gives it (degrees, NaN: not measurable)."""
    from spine_d2.data.labelme import load_labelme_dataset
    from spine_d2.data.splits import dataset_splits

    for root in roots:
        records = load_labelme_dataset(root, class_map)
        if split != "all":
            members = set(dataset_splits(root, [r["image"] for r in records])[split])
            records = [r for r in records if r["image"] in members]
        truth = phantom_truth(records, root)
        for r in records:
            yield root, r, truth[r["image"]]
