"""The photo's and its mirror image's reads (`test.flip`): what `measure.reads_apart` withholds
and what `measure.reads_mean` changes.

    python benchmarks/reads.py checkpoint=FILE root=datasets/seed954[,datasets/seed955] \
        [split=all] [apart=10,15,20,30] [amp=] [name=reads]

For each film of each phantom folder (`split` of each: all, train or test) the checkpoint runs with
its test-time passes (the mirrored run among them: `test.flip`; `amp=true|false` switches
`test.amp`, blank: as trained); the fused detections are measured as tools/evaluate.py measures
them but with `measure.reads_apart=0`, and the two runs each alone in the same frame
(`spine_d2.engine.test_time.refine_with_reads`, `spine_d2.measure.reads`). For each angle and each
threshold in `apart` (degrees): the mean absolute error and the share measured without and with the
rule, how many readings it withholds and how many of those were over 5° and over 10° off, and the
error with the rule and `measure.reads_mean` (PT the two reads' mean, PI moved with it). Writes
results/reads-<name>.json (the settings, every film's truth, fused, read and mean angles, the table)
and results/reads-<name>.md.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from _common import as_list, options, phantom_truth, provenance, provenance_line
from spine_d2.angles import ANGLE_NAMES
from spine_d2.data.images import read_image
from spine_d2.data.labelme import load_labelme_dataset
from spine_d2.data.splits import dataset_splits
from spine_d2.engine.inference import InferenceError, SpinePredictor, config_for_checkpoint
from spine_d2.measure import MeasureConfig, instances_from_predictions, measure_instances
from spine_d2.measure.reads import mean_of_reads, measure_reads

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULTS = {"checkpoint": None, "root": None, "split": "all", "apart": "10,15,20,30", "amp": "", "name": "reads"}
DEPENDS = ("spine_d2/engine", "spine_d2/measure")
SWITCH = {"true": True, "false": False}


def read_angles(predictor: SpinePredictor, image: np.ndarray, cfg: MeasureConfig) -> dict:
    """{"fused": {angle: degrees}, "reads": [{…}, {…}], "mean": {…}} for one photo (NaN: not
    measured), the reads measured in the fused measurement's frame, "mean" the fused angles with
    `mean_of_reads`; reads [] (and "mean" the fused) without the mirrored run."""
    pred, reads = predictor.predict(image)
    names = predictor.class_names
    m = measure_instances(instances_from_predictions(pred, names), image.shape[:2], names, cfg, image=image)
    alone = measure_reads([instances_from_predictions(r, names) for r in reads], image.shape[:2], names, cfg,
                          m.correction)
    mean = mean_of_reads(m.angles, alone)
    return {"fused": {k: m.angles[k].value for k in ANGLE_NAMES},
            "reads": [{k: a[k].value for k in ANGLE_NAMES} for a in alone],
            "mean": {k: mean[k].value for k in ANGLE_NAMES}}


def withheld(film: Mapping, angle: str, apart: float) -> bool:
    """Whether `measure.reads_apart=apart` leaves out the film's fused `angle` (both reads measured
    it, more than `apart` degrees apart)."""
    seen = [r[angle] for r in film["reads"] if not math.isnan(r[angle])]
    return not math.isnan(film["fused"][angle]) and len(seen) >= 2 and max(seen) - min(seen) > apart


def rule_table(films: Sequence[Mapping], thresholds: Sequence[float]) -> list[dict]:
    """Per angle and threshold: films with the truth, MAE and share measured without the rule and
    with it, readings withheld and how many of them were over 5° and over 10° off, and the MAE with
    the rule of the films' "mean" angles ("mae_mean"; `measure.reads_mean`, taken before the rule)."""
    rows = []
    for angle in ANGLE_NAMES:
        have = [f for f in films if not math.isnan(f["true"][angle])]
        err = {id(f): abs(f["fused"][angle] - f["true"][angle]) for f in have if not math.isnan(f["fused"][angle])}
        base = {"angle": angle, "films": len(have), "measured": len(err),
                "mae": float(np.mean(list(err.values()))) if err else math.nan}
        for t in thresholds:
            out = [e for f in have if id(f) in err and withheld(f, angle, t) for e in [err[id(f)]]]
            stay = [f for f in have if id(f) in err and not withheld(f, angle, t)]
            kept = [err[id(f)] for f in stay]
            mean = [abs(f["mean"][angle] - f["true"][angle]) for f in stay]
            rows.append({**base, "apart": t, "withheld": len(out), "over_5": sum(e > 5 for e in out),
                         "over_10": sum(e > 10 for e in out), "measured_with": len(kept),
                         "mae_with": float(np.mean(kept)) if kept else math.nan,
                         "mae_mean": float(np.mean(mean)) if mean else math.nan})
    return rows


def markdown(meta: Mapping, rows: Sequence[Mapping], films: int, seconds: float) -> list[str]:
    share = lambda n, d: f"{100 * n / d:.1f} %" if d else "—"  # noqa: E731
    deg = lambda x: "—" if math.isnan(x) else f"{x:.2f}°"  # noqa: E731
    lines = [f"# The photo's and its mirror image's reads: {meta['name']}", "", provenance_line(meta, seconds), "",
             f"{films} films of {meta['roots']} (split {meta['split']}); the fused detections measured with "
             f"`measure.reads_apart=0`, the two runs each alone in its frame.", "",
             "| angle | apart | MAE without | measured without | MAE with | measured with | withheld | "
             "of them > 5° off | > 10° off | MAE with, PT the reads' mean |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['angle']} | {r['apart']:g}° | {deg(r['mae'])} | {share(r['measured'], r['films'])} | "
                     f"{deg(r['mae_with'])} | {share(r['measured_with'], r['films'])} | {r['withheld']} | "
                     f"{r['over_5']} | {r['over_10']} | {deg(r['mae_mean'])} |")
    return lines


def main(argv: Sequence[str]) -> None:
    o = options(argv, DEFAULTS, "reads.py")
    roots = [Path(r) for r in as_list(o["root"] or "")]
    if not o["checkpoint"] or not roots or o["split"] not in ("all", "train", "test") \
            or o["amp"] not in ("", *SWITCH):
        raise SystemExit("reads.py: give checkpoint=FILE root=DIR[,DIR], split= all | train | test, "
                         "amp= true | false | (blank: as trained)")
    thresholds = [float(t) for t in as_list(o["apart"])]
    try:
        predictor = SpinePredictor(config_for_checkpoint(o["checkpoint"], "auto", flip=True,
                                                         amp=SWITCH.get(o["amp"])))
    except InferenceError as e:
        raise SystemExit(f"error: {e}")
    cfg = MeasureConfig.from_cfg({"reads_apart": 0})
    t0, films = time.perf_counter(), []
    for root in roots:
        records = load_labelme_dataset(root, predictor.cfg.SPINE.CLASS_MAP)
        if o["split"] != "all":
            members = set(dataset_splits(root, [r["image"] for r in records])[o["split"]])
            records = [r for r in records if r["image"] in members]
        truth = phantom_truth(records, root)
        for r in records:
            film = read_angles(predictor, read_image(r["file_name"]), cfg)
            films.append({"root": str(root), "image": r["image"], "true": truth[r["image"]], **film})
    seconds = time.perf_counter() - t0
    meta = provenance("benchmarks/reads.py", argv, DEPENDS, torch_threads=torch.get_num_threads(),
                      checkpoint=o["checkpoint"], roots=", ".join(map(str, roots)), split=o["split"],
                      amp=bool(predictor.cfg.SPINE.TEST_AMP), name=o["name"])
    rows = rule_table(films, thresholds)
    RESULTS.mkdir(exist_ok=True)
    clean = lambda x: None if isinstance(x, float) and math.isnan(x) else x  # noqa: E731
    doc = {**meta, "seconds": round(seconds, 1), "table": [{k: clean(v) for k, v in r.items()} for r in rows],
           "films": [{**f, "true": {k: clean(v) for k, v in f["true"].items()},
                      "fused": {k: clean(v) for k, v in f["fused"].items()},
                      "reads": [{k: clean(v) for k, v in r.items()} for r in f["reads"]],
                      "mean": {k: clean(v) for k, v in f["mean"].items()}} for f in films]}
    (RESULTS / f"reads-{o['name']}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS / f"reads-{o['name']}.md").write_text("\n".join(markdown(meta, rows, len(films), seconds)) + "\n")
    print("\n".join(markdown(meta, rows, len(films), seconds)))


if __name__ == "__main__":
    main(sys.argv[1:])
