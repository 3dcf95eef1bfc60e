"""Each endplate's angle against the phantom's truth, in the radiograph frame: how far the plates
the angles rest on are off, film by film, set by set.

    python benchmarks/plates.py checkpoint=FILE root=DIR[,DIR…] [split=all] [amp=] [name=plates]

Each film (`split` of each phantom folder: all, train or test) is measured as tools/predict.py
measures a photo (`measure_image`; `amp=true|false` switches `test.amp`, blank: as trained); each
endplate it drew (image frame) is mapped into the radiograph frame through the film's true
homography and its direction compared with the true endplate's (degrees, wrapped to ±90°). A plate
more than `GROSS_DEG` off is counted apart (a level named one off, a misread body: the angles' gross
errors, which the reads rule handles), not averaged. Writes results/plates-<name>.json (every
plate's signed error) and .md: per folder, the plates compared, their mean absolute error, the
gross ones, and the mean absolute error of the plates TK, LL and SS rest on; and how the errors of
the plates TK and LL end on lean with the angle (`leans`: the slope of each plate's error, signed as
its share of the angle's error, against the angle's truth; a plate read towards a typical spine
leans negative: a steep angle read flat, a flat one steep).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from _common import mirrored_predictor, options, phantom_films, provenance, provenance_line
from spine_d2.angles import REQUIRED_ENDPLATES
from spine_d2.data.images import read_image
from spine_d2.engine.inference import measure_image
from spine_d2.frames import apply_homography

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULTS = {"checkpoint": None, "root": None, "split": "all", "amp": "", "name": "plates"}
DEPENDS = ("spine_d2/engine", "spine_d2/measure")
GROSS_DEG = 15.0
#: the plates TK, LL and SS rest on, named as `plate_errors` names them
KEY_PLATES = tuple(f"{level} {side}" for angle in ("TK", "LL", "SS") for level, side in REQUIRED_ENDPLATES[angle])
#: the angles between two plates whose plates' leans are reported: angle → (cranial plate, caudal plate)
LEAN_ANGLES = {a: tuple(f"{lv} {side}" for lv, side in REQUIRED_ENDPLATES[a]) for a in ("TK", "LL")}


def direction_deg(segment: Sequence[Sequence[float]]) -> float:
    """A segment's direction (degrees, image axes: x right, y down)."""
    (x0, y0), (x1, y1) = np.asarray(segment, float)
    return float(np.degrees(np.arctan2(y1 - y0, x1 - x0)))


def plate_errors(drawn: Mapping[str, Mapping[str, Sequence]], truth: Mapping[str, Mapping[str, Sequence]],
                 homography: Sequence[Sequence[float]]) -> dict[str, float]:
    """{"<level> <side>": signed error (degrees, wrapped to ±90°)} of each endplate `drawn` (image
    frame, as `Measurement.endplates`) that `truth` (radiograph frame, as a phantom record's
    `spine_d2.endplates`) has, the drawn one mapped into the radiograph frame through the inverse of
    `homography` (radiograph → image)."""
    to_film = np.linalg.inv(np.asarray(homography, float))
    out = {}
    for level, sides in drawn.items():
        for side, seg in sides.items():
            true = (truth.get(level) or {}).get(side)
            if true is None or np.asarray(seg).shape != (2, 2):
                continue
            e = direction_deg(apply_homography(to_film, seg)) - direction_deg(true)
            out[f"{level} {side}"] = float((e + 90.0) % 180.0 - 90.0)
    return out


def plate_signs(truth: Mapping[str, Mapping[str, Sequence]], angles: Mapping[str, float]) -> dict[str, int]:
    """{"<level> <side>": ±1} for the plates of `LEAN_ANGLES` that `truth` (radiograph frame) has, for
    each angle `angles` gives (degrees): a plate's signed error (`plate_errors`) times its sign is its
    share of the angle's error (the angle grows with the cranial plate's direction or against the
    caudal one's, as the film faces)."""
    out = {}
    for angle, (cranial, caudal) in LEAN_ANGLES.items():
        value = angles.get(angle)
        ends = [(truth.get(k.split()[0]) or {}).get(k.split()[1]) for k in (cranial, caudal)]
        if value is None or any(e is None for e in ends):
            continue
        raw = (direction_deg(ends[0]) - direction_deg(ends[1]) + 90.0) % 180.0 - 90.0
        facing = 1 if abs(raw - value) <= abs(raw + value) else -1
        out[cranial], out[caudal] = facing, -facing
    return out


def leans(films: Sequence[Mapping]) -> dict[str, float | None]:
    """Plate → the slope (degrees of error per degree of the angle) of its share of its angle's error
    (its signed error times `plate_signs`' sign) against the angle's truth, over the films (each with
    "errors", "signs" and "angles") where it is not gross; None with fewer than 3."""
    out = {}
    for angle, plates in LEAN_ANGLES.items():
        for plate in plates:
            pts = [(f["angles"][angle], f["errors"][plate] * f["signs"][plate]) for f in films
                   if plate in f.get("signs", {}) and plate in f["errors"] and abs(f["errors"][plate]) <= GROSS_DEG]
            out[plate] = float(np.polyfit(*np.array(pts).T, 1)[0]) if len(pts) >= 3 else None
    return out


def summary(films: Sequence[Mapping]) -> dict:
    """Plates compared, gross ones (> `GROSS_DEG`), mean absolute error of the rest (degrees),
    and of the rest among each of `KEY_PLATES`."""
    errs = [(k, abs(e)) for f in films for k, e in f["errors"].items()]
    fine = [(k, e) for k, e in errs if e <= GROSS_DEG]
    mean = lambda v: float(np.mean(v)) if v else None  # noqa: E731
    return {"films": len(films), "plates": len(errs), "gross": len(errs) - len(fine),
            "mae": mean([e for _, e in fine]),
            "key": {p: mean([e for k, e in fine if k == p]) for p in KEY_PLATES}, "lean": leans(films)}


def markdown(meta: Mapping, table: Mapping[str, Mapping], seconds: float) -> list[str]:
    fmt = lambda v: "—" if v is None else f"{v:.2f}°"  # noqa: E731
    lines = [f"# Endplates against the truth: {meta['name']} ({meta['checkpoint']})", "",
             provenance_line(meta, seconds), "",
             f"Radiograph frame; plates more than {GROSS_DEG:g}° off counted apart, not averaged.", "",
             "| folder | films | plates | gross | mean abs. error | " + " | ".join(KEY_PLATES) + " |",
             "|---|---|---|---|---|" + "---|" * len(KEY_PLATES)]
    lines += [f"| {root} | {s['films']} | {s['plates']} | {s['gross']} | {fmt(s['mae'])} | "
              + " | ".join(fmt(s["key"][p]) for p in KEY_PLATES) + " |" for root, s in table.items()]
    lean = [p for plates in LEAN_ANGLES.values() for p in plates]
    slope = lambda v: "—" if v is None else f"{v:+.3f}"  # noqa: E731
    lines += ["", "Lean: the slope of each plate's error, signed as its share of its angle's error, against the "
              "angle's truth (degrees per degree; negative: steep angles read flat, flat ones steep).", "",
              "| folder | " + " | ".join(f"{p} ({a})" for a, ps in LEAN_ANGLES.items() for p in ps) + " |",
              "|---|" + "---|" * len(lean)]
    lines += [f"| {root} | " + " | ".join(slope(s["lean"][p]) for p in lean) + " |" for root, s in table.items()]
    return lines


def main(argv: Sequence[str]) -> None:
    o = options(argv, DEFAULTS, "plates.py")
    predictor, roots = mirrored_predictor(o, "plates.py")
    films, t0 = [], time.perf_counter()
    for root, r, truth in phantom_films(roots, o["split"], predictor.cfg.SPINE.CLASS_MAP):
        m = measure_image(predictor, read_image(r["file_name"]))
        sd = r["spine_d2"]
        angles = {a: float(truth[a]) for a in LEAN_ANGLES if np.isfinite(truth.get(a, np.nan))}
        films.append({"root": str(root), "image": r["image"],
                      "errors": plate_errors(m.endplates, sd["endplates"], sd["homography"]),
                      "angles": angles, "signs": plate_signs(sd["endplates"], angles)})
    seconds = time.perf_counter() - t0
    meta = provenance("benchmarks/plates.py", argv, DEPENDS, torch_threads=torch.get_num_threads(),
                      checkpoint=o["checkpoint"], roots=", ".join(map(str, roots)), split=o["split"], name=o["name"])
    table = {str(root): summary([f for f in films if f["root"] == str(root)]) for root in roots}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"plates-{o['name']}.json").write_text(
        json.dumps({**meta, "seconds": round(seconds, 1), "table": table, "films": films}, indent=1) + "\n")
    text = "\n".join(markdown(meta, table, seconds)) + "\n"
    (RESULTS / f"plates-{o['name']}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main(sys.argv[1:])
