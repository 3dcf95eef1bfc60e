"""The turned looks that break the two reads' ties (`test.tiebreak_turns`, `measure.reads_agree`):
how often they run, what they cost and what they take.

    python benchmarks/tiebreak.py checkpoint=FILE [root=datasets/phantom428[,DIR…]] [split=test]
        [amp=] [name=tiebreak]

Each film (`split` of each phantom folder: all, train or test) is measured as tools/predict.py
measures a photo (`measure_image`: the test-time passes, the mirrored run, the reads rule, and
where the photo's and its mirror image's reads of TK or LL disagree, the turned looks; `amp=true|false`
switches `test.amp`, blank: as trained), timing the whole and the looks alone where they run. Writes
results/tiebreak-<name>.json (every film: seconds, the looks' seconds, each angle taken with the two
reads, the truth and the error) and .md: the share of films whose reads disagreed (the looks ran),
the looks' median time there and what they add per film on average, the whole's mean s/film, and
every take (the read taken, the nearer one or not, its error).
"""
from __future__ import annotations

import json
import math
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

import torch

from _common import mirrored_predictor, options, phantom_films, provenance, provenance_line
from spine_d2.data.images import read_image
from spine_d2.engine.inference import SpinePredictor, measure_image

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULTS = {"checkpoint": None, "root": "datasets/phantom428", "split": "test", "amp": "", "name": "tiebreak"}
DEPENDS = ("spine_d2/engine", "spine_d2/measure")
#: a take's flag (spine_d2.measure.reads `_take`): the angle, the two reads (degrees), which was taken
TAKE = re.compile(r"^(\w+): the photo and its mirror image read (-?\d+)° and (-?\d+)°: the (photo|mirror image)'s "
                  r"read, as the photo turned read it")


def timed_looks(predictor: SpinePredictor, spent: list[float]) -> None:
    """`predictor` (in place) with its turned looks timed: each run's seconds appended to `spent`."""
    make_looks = predictor.tiebreak_looks

    def tiebreak_looks(image):
        make = make_looks(image)
        if make is None:
            return None

        def run():
            t0 = time.perf_counter()
            looks = make()
            spent.append(time.perf_counter() - t0)
            return looks
        return run

    predictor.tiebreak_looks = tiebreak_looks


def takes(flags: Sequence[str], angles: Mapping, truth: Mapping[str, float]) -> list[dict]:
    """The angles the turned looks took (from the measurement's `flags`): name, the two reads and
    which was taken (0 the photo's, 1 the mirror image's), the value taken, its truth and error,
    whether the read taken was the nearer of the two (degrees)."""
    out = []
    for flag in flags:
        m = TAKE.match(flag)
        if m is None:
            continue
        name, reads, k = m[1], [float(m[2]), float(m[3])], int(m[4] == "mirror image")
        true, value = truth.get(name, math.nan), angles[name].value
        out.append({"angle": name, "reads": reads, "taken": k, "value": value, "true": true,
                    "error": abs(value - true), "nearer": abs(reads[k] - true) <= abs(reads[1 - k] - true)})
    return out


def markdown(meta: Mapping, films: Sequence[Mapping], seconds: float) -> list[str]:
    ran = [f["looks_s"] for f in films if f["looks_s"] is not None]
    taken = [t for f in films for t in f["takes"]]
    n = len(films)
    lines = [f"# Turned looks breaking the reads' ties: {meta['name']} ({meta['checkpoint']})", "",
             provenance_line(meta, seconds), "",
             f"{n} films of {meta['roots']} ({meta['split']}), measured as tools/predict.py measures a photo.", "",
             "| films | the reads disagreed (looks ran) | looks' median s there | looks' s per film, mean "
             "| whole s per film, mean | takes | the nearer read |", "|---|---|---|---|---|---|---|",
             f"| {n} | {len(ran)} ({100 * len(ran) / max(n, 1):.1f} %) | "
             f"{statistics.median(ran) if ran else math.nan:.3f} | {sum(ran) / max(n, 1):.4f} | "
             f"{statistics.fmean(f['seconds'] for f in films) if films else math.nan:.3f} | {len(taken)} | "
             f"{sum(t['nearer'] for t in taken)} |", ""]
    if taken:
        lines += ["| film | angle | truth | reads (photo, mirror) | taken | error |", "|---|---|---|---|---|---|"]
        lines += [f"| {Path(f['root']).name}/{f['image']} | {t['angle']} | {t['true']:.1f}° | "
                  f"{t['reads'][0]:.0f}°, {t['reads'][1]:.0f}° | "
                  f"{'mirror image' if t['taken'] else 'photo'}{'' if t['nearer'] else ' (the farther)'} | "
                  f"{t['error']:.1f}° |" for f in films for t in f["takes"]]
    return lines


def main(argv: Sequence[str]) -> None:
    o = options(argv, DEFAULTS, "tiebreak.py")
    predictor, roots = mirrored_predictor(o, "tiebreak.py")
    spent: list[float] = []
    timed_looks(predictor, spent)
    films, t_all = [], time.perf_counter()
    for root, r, truth in phantom_films(roots, o["split"], predictor.cfg.SPINE.CLASS_MAP):
        image, before = read_image(r["file_name"]), len(spent)
        t0 = time.perf_counter()
        m = measure_image(predictor, image)
        films.append({"root": str(root), "image": r["image"], "seconds": time.perf_counter() - t0,
                      "looks_s": spent[-1] if len(spent) > before else None, "takes": takes(m.flags, m.angles, truth)})
    seconds = time.perf_counter() - t_all
    meta = provenance("benchmarks/tiebreak.py", argv, DEPENDS, torch_threads=torch.get_num_threads(),
                      checkpoint=o["checkpoint"], roots=", ".join(map(str, roots)), split=o["split"],
                      amp=bool(predictor.cfg.SPINE.TEST_AMP), turns=list(predictor.cfg.SPINE.TIEBREAK_TURNS),
                      name=o["name"])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"tiebreak-{o['name']}.json").write_text(
        json.dumps({**meta, "seconds": round(seconds, 1), "films": films}, indent=1) + "\n")
    text = "\n".join(markdown(meta, films, seconds)) + "\n"
    (RESULTS / f"tiebreak-{o['name']}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
