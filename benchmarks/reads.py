"""The photo's and its mirror image's reads (`test.flip`): what `measure.reads_apart` withholds,
what `measure.reads_trust_clean` takes back and what `measure.reads_mean` changes.

    python benchmarks/reads.py checkpoint=FILE root=datasets/seed954[,datasets/seed955] \
        [split=all] [apart=10,15,20,30] [amp=] [name=reads]

For each film of each phantom folder (`split` of each: all, train or test) the checkpoint runs with
its test-time passes (the mirrored run among them: `test.flip`; `amp=true|false` switches
`test.amp`, blank: as trained); the fused detections are measured as tools/evaluate.py measures
them but with `measure.reads_apart=0`, and the two runs each alone in the same frame
(`spine_d2.engine.test_time.refine_with_reads`, `spine_d2.measure.reads`). For each angle and each
threshold in `apart` (degrees): the mean absolute error and the share measured without and with the
rule, how many readings it withholds and how many of those were over 5° and over 10° off; of those
(TK and LL), how many just one read made without a judgement call (`measure.reads_trust_clean`:
that read taken) and in how many it was the nearer one, the error and share with them taken; and
the error with the rule and `measure.reads_mean` (PT the two reads' mean, PI moved with it). Writes
results/reads-<name>.json (the settings, every film's truth, fused, read and mean angles, which
reads were clean, the table) and results/reads-<name>.md.
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

from _common import as_list, mirrored_predictor, options, phantom_films, provenance, provenance_line
from spine_d2.angles import ANGLE_NAMES
from spine_d2.data.images import read_image
from spine_d2.engine.inference import SpinePredictor
from spine_d2.measure import MeasureConfig, instances_from_predictions, measure_instances
from spine_d2.measure.reads import SETTLED_BY_A_CLEAN_READ, clean_read, mean_of_reads, measure_reads

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULTS = {"checkpoint": None, "root": None, "split": "all", "apart": "10,15,20,30", "amp": "", "name": "reads"}
DEPENDS = ("spine_d2/engine", "spine_d2/measure")


def read_angles(predictor: SpinePredictor, image: np.ndarray, cfg: MeasureConfig) -> dict:
    """{"fused": {angle: degrees}, "reads": [{…}, {…}], "clean": [{angle: bool}, {…}], "mean": {…}}
    for one photo (NaN: not measured), the reads measured in the fused measurement's frame, "clean"
    whether each read made no judgement call on the angle (`clean_read`), "mean" the fused angles
    with `mean_of_reads`; reads [] (and "mean" the fused) without the mirrored run."""
    pred, reads = predictor.predict(image)
    names = predictor.class_names
    m = measure_instances(instances_from_predictions(pred, names), image.shape[:2], names, cfg, image=image)
    alone = measure_reads([instances_from_predictions(r, names) for r in reads], image.shape[:2], names, cfg,
                          m.correction)
    mean = mean_of_reads(m.angles, [a.angles for a in alone])
    return {"fused": {k: m.angles[k].value for k in ANGLE_NAMES},
            "reads": [{k: a.angles[k].value for k in ANGLE_NAMES} for a in alone],
            "clean": [{k: clean_read(a, k) for k in ANGLE_NAMES} for a in alone],
            "mean": {k: mean[k].value for k in ANGLE_NAMES}}


def withheld(film: Mapping, angle: str, apart: float) -> bool:
    """Whether `measure.reads_apart=apart` leaves out the film's fused `angle` (both reads measured
    it, more than `apart` degrees apart)."""
    seen = [r[angle] for r in film["reads"] if not math.isnan(r[angle])]
    return not math.isnan(film["fused"][angle]) and len(seen) >= 2 and max(seen) - min(seen) > apart


def clean_index(film: Mapping, angle: str) -> int | None:
    """Which of the film's two reads alone made no judgement call on `angle` (0: the photo's, 1: the
    mirror image's); None where both or neither did, for an angle not in `SETTLED_BY_A_CLEAN_READ`
    (or the film has no "clean")."""
    clean = [c[angle] for c in film.get("clean", [])] if angle in SETTLED_BY_A_CLEAN_READ else []
    return clean.index(True) if len(clean) == 2 and clean.count(True) == 1 else None


def clean_taken(film: Mapping, angle: str) -> float:
    """The reading `measure.reads_trust_clean` takes for a withheld `angle` (degrees): the fused
    one where the photo's read is the clean one, the mirror image's own where its read is; NaN
    where `clean_index` is None."""
    k = clean_index(film, angle)
    return math.nan if k is None else film["reads"][1][angle] if k else film["fused"][angle]


def rule_table(films: Sequence[Mapping], thresholds: Sequence[float]) -> list[dict]:
    """Per angle and threshold: films with the truth, MAE and share measured without the rule and
    with it, readings withheld and how many of them were over 5° and over 10° off; how many of
    those a clean read settles ("taken", `clean_taken`), in how many that was the read nearer the
    truth ("taken_nearer"), MAE and films measured with them taken ("mae_clean", "measured_clean");
    and the MAE with the rule of the films' "mean" angles ("mae_mean"; `measure.reads_mean`, taken
    before the rule)."""
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
            gone = [f for f in have if id(f) in err and withheld(f, angle, t)]
            taken = [(f, x) for f in gone for x in [clean_taken(f, angle)] if not math.isnan(x)]
            off = lambda f, k: abs(f["reads"][k][angle] - f["true"][angle])  # noqa: E731
            nearer = sum(off(f, k) <= off(f, 1 - k) for f, _ in taken for k in [clean_index(f, angle)])
            clean = kept + [abs(x - f["true"][angle]) for f, x in taken]
            rows.append({**base, "apart": t, "withheld": len(out), "over_5": sum(e > 5 for e in out),
                         "over_10": sum(e > 10 for e in out), "measured_with": len(kept),
                         "mae_with": float(np.mean(kept)) if kept else math.nan,
                         "taken": len(taken), "taken_nearer": int(nearer), "measured_clean": len(clean),
                         "mae_clean": float(np.mean(clean)) if clean else math.nan,
                         "mae_mean": float(np.mean(mean)) if mean else math.nan})
    return rows


def markdown(meta: Mapping, rows: Sequence[Mapping], films: int, seconds: float) -> list[str]:
    share = lambda n, d: f"{100 * n / d:.1f} %" if d else "—"  # noqa: E731
    deg = lambda x: "—" if math.isnan(x) else f"{x:.2f}°"  # noqa: E731
    lines = [f"# The photo's and its mirror image's reads: {meta['name']}", "", provenance_line(meta, seconds), "",
             f"{films} films of {meta['roots']} (split {meta['split']}); the fused detections measured with "
             f"`measure.reads_apart=0`, the two runs each alone in its frame.", "",
             "| angle | apart | MAE without | measured without | MAE with | measured with | withheld | "
             "of them > 5° off | > 10° off | clean read taken (nearer) | MAE, clean taken | measured, clean taken | "
             "MAE with, PT the reads' mean |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['angle']} | {r['apart']:g}° | {deg(r['mae'])} | {share(r['measured'], r['films'])} | "
                     f"{deg(r['mae_with'])} | {share(r['measured_with'], r['films'])} | {r['withheld']} | "
                     f"{r['over_5']} | {r['over_10']} | {r['taken']} ({r['taken_nearer']}) | {deg(r['mae_clean'])} | "
                     f"{share(r['measured_clean'], r['films'])} | {deg(r['mae_mean'])} |")
    return lines


def main(argv: Sequence[str]) -> None:
    o = options(argv, DEFAULTS, "reads.py")
    predictor, roots = mirrored_predictor(o, "reads.py")
    thresholds = [float(t) for t in as_list(o["apart"])]
    cfg = MeasureConfig.from_cfg({"reads_apart": 0})
    t0, films = time.perf_counter(), []
    for root, r, truth in phantom_films(roots, o["split"], predictor.cfg.SPINE.CLASS_MAP):
        film = read_angles(predictor, read_image(r["file_name"]), cfg)
        films.append({"root": str(root), "image": r["image"], "true": truth, **film})
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
