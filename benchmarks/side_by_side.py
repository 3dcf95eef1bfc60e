"""One model's predictions measured several ways, side by side, against the phantom's true angles (degrees).

    python benchmarks/side_by_side.py checkpoint=FILE [root=datasets/phantom428] [split=test] [n=all]
        [methods=rectangle+border,border,rectangle] [corners=use,fuse,ignore] [frames=on,off] [cleanups=on,off]
        [controls=masks,polygons,named] [highres=] (on|off: the high-resolution pass; empty: as trained)
        [soft=off] (on, off or on,off: outlines from the soft masks, rows `model, soft outlines`)
        [difficulties=easy,realistic,hard] [n_difficulty=48] [seed_difficulty=1001]
        [cache=datasets/benchmark-phantoms] [device=auto] [out=benchmarks/results/side-by-side]

The model runs once per image of the split; its instances (image frame, px) are then measured by
every variant: endplate method (`rectangle+border`, the default: the study's rectangle for the
vertebral bodies and the border fit for the sacral plate; or `rectangle` or `border` for all) × the
corners a keypoint head predicts (`use`: an endplate whose two corners score enough is taken from
them; `fuse`: weighed with the fitted line; `ignore`: masks alone) × frame
correction (photo → radiograph, estimated once per photo) on or off × the clean-up of centres
off the spine's chain on (the configured `chain_rule`) or off (`chain_rule=off`; duplicates and
specks are still removed). The measurement config the checkpoint was trained with is the base every variant
changes.

Control rows measure the ground-truth shapes of the same images with the same variants and no
model: `masks` (the polygons rasterised: a perfect model) and `polygons`. Their level labels are
dropped when the model's classes carry none, so the levels are named as for the model. The gap
between a model row and its control is the model's share of the error. The row `named` splits that
share in two: the model's own masks, each matched one-to-one to a true structure (Hungarian on mask
IoU > 0.3; unmatched ones dropped) and given that structure's class and level. What error is left
there comes from the masks' shapes; the rest of the model row's error from finding and naming.

Statistics are the evaluator's: `spine_d2.evaluation.agreement.summarize` of the per-image table
(MAE, SD, bias, R², slope, S, n, missing, …), against the phantom's true angles (radiograph
frame). Dice/IoU (all vertebra masks of an image together) are those of SpineEvaluator.

Difficulty: a small phantom per preset (`n_difficulty` images, seed `seed_difficulty` so none is
a training image of the seed-1 phantom; generated once into `cache`, reused after) is predicted
and measured with the default variant, with its ground-truth-mask control.

Writes `<out>.json` and `<out>.md` (command, date, machine, commit, checkpoint and its run config).
"""
from __future__ import annotations

import copy
import json
import math
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from _common import as_list, ground_truth_instances, options, phantom_truth, provenance, provenance_line
from spine_d2.angles import ANGLE_NAMES
from spine_d2.data.images import read_image
from spine_d2.data.labelme import load_labelme_dataset
from spine_d2.data.splits import dataset_splits
from spine_d2.engine.config import from_yacs
from spine_d2.engine.inference import InferenceError, SpinePredictor, hydra_record
from spine_d2.evaluation.agreement import json_safe, summarize
from spine_d2.evaluation.evaluator import ground_truth_masks
from spine_d2.evaluation.formatting import fmt
from spine_d2.evaluation.per_image import image_row, per_image_table
from spine_d2.evaluation.segmentation import image_segmentation, match_instances
from spine_d2.evaluation.study import REFERENCE_STUDY
from spine_d2.measure import Instance, MeasureConfig, Measurement, instances_from_predictions, measure_instances
from spine_d2.measure.instances import SURE_SCORE, instances_from_record
from spine_d2.measure.rectify import FrameEstimate, estimate_frame, frame_bones

DEPENDS = ("spine_d2/measure", "spine_d2/evaluation", "spine_d2/engine/inference.py", "spine_d2/data",
           "spine_d2/synthetic", "spine_d2/angles.py", "spine_d2/frames.py", "spine_d2/levels.py", "conf/measure",
           "benchmarks/side_by_side.py", "benchmarks/_common.py")  # code the numbers rest on
DEFAULTS = {"checkpoint": None, "root": "datasets/phantom428", "split": "test", "n": "all",
            "methods": "rectangle+border,border,rectangle", "corners": "use", "frames": "on,off", "cleanups": "on,off",
            "controls": "masks,polygons,named", "highres": "", "soft": "off",
            "difficulties": "easy,realistic,hard", "n_difficulty": "48", "seed_difficulty": "1001",
            "cache": "datasets/benchmark-phantoms", "device": "auto", "out": "benchmarks/results/side-by-side"}
MODEL = "model"
MODEL_SOFT = "model, soft outlines"  # the same predictions, outlines from the soft masks (test.soft_masks)
CONTROL = "ground-truth {}"  # control row names: ground-truth masks, ground-truth polygons
NAMED = "model, named by the truth"  # the model's masks with the matched true class and level
NAMED_MIN_IOU = 0.3
SWITCH = {"on": True, "off": False}


@dataclass(frozen=True)
class Variant:
    """One way of measuring: endplate method, frame correction, clean-up of the chain of centres."""

    method: str = MeasureConfig.method  # the default measurement's
    frame: bool = True
    cleanup: bool = True
    corners: str = "use"

    @property
    def name(self) -> str:
        return (f"{self.method}, corners {self.corners}, frame {'on' if self.frame else 'off'}, "
                f"clean-up {'on' if self.cleanup else 'off'}")

    def config(self, base: Mapping[str, Any] | None = None) -> MeasureConfig:
        """`base` (a `measure` config as a dict) with this variant's three switches."""
        c = copy.deepcopy(dict(base or {}))
        c["method"] = self.method
        c["corners"] = self.corners
        c["frame"] = {**dict(c.get("frame") or {}), "enabled": self.frame}
        if not self.cleanup:
            c["chain_rule"] = "off"  # no centre is removed for its place in the chain
        return MeasureConfig.from_cfg(c)


def variants(methods: Sequence[str] = tuple(as_list(DEFAULTS["methods"])), frames: Sequence[bool] = (True, False),
             cleanups: Sequence[bool] = (True, False), corners: Sequence[str] = ("use",)) -> list[Variant]:
    """Every combination, method first, in the order given (the first is the default's row)."""
    return [Variant(m, f, c, k) for m in methods for k in corners for f in frames for c in cleanups]


def measure_variants(instances: Sequence, image_shape: Sequence[int], class_names: Sequence[str],
                     variant_list: Sequence[Variant], base: Mapping[str, Any] | None = None,
                     frame: FrameEstimate | None = None) -> dict[str, Measurement]:
    """{variant name: Measurement} of the same instances. Each variant measures its own deep copy
    (measuring names levels on the instances); `frame` (estimated once per photo by the caller) is
    used by the variants with the correction on."""
    return {v.name: measure_instances(copy.deepcopy(list(instances)), image_shape, class_names, v.config(base),
                                      frame=frame if v.frame else None)
            for v in variant_list}


def named_by_truth(instances: Sequence[Instance], gt_masks: Sequence, gt_classes: Sequence[str],
                   gt_labels: Sequence[str | None], min_iou: float = NAMED_MIN_IOU) -> list[Instance]:
    """The model's instances that match a true structure one-to-one (Hungarian on mask IoU >
    `min_iou`), each with that structure's class and level label; the others are dropped."""
    matches = match_instances([i.mask for i in instances], gt_masks, min_iou=min_iou)
    return [replace(instances[p], class_name=gt_classes[g], label=gt_labels[g]) for p, g, _ in sorted(matches)]


def run_images(records: Sequence[dict], class_names: Sequence[str], truth: Mapping[str, Mapping[str, float]],
               variant_list: Sequence[Variant], base: Mapping[str, Any] | None = None, predictor=None,
               controls: Sequence[str] = (), progress: str | None = None,
               soft: Sequence[bool] = (False,)) -> dict[tuple[str, str], list]:
    """Per-image rows (`image_row`) keyed by (source, variant name): source `model` (one
    prediction per image, measured by every variant; Dice/IoU against the ground-truth masks as
    SpineEvaluator computes them) and/or `model, soft outlines` (`soft`: the same prediction's
    outlines from its soft masks), `ground-truth <control>` for each of `controls` but `named`,
    and NAMED (`named_by_truth`) when `controls` has `named`. The photo is read as a user's would
    be (EXIF applied) and its frame estimated once."""
    rows: dict[tuple[str, str], list] = defaultdict(list)
    frame_cfg = Variant().config(base).frame
    for r in _progress(records, progress):
        image = read_image(r["file_name"])
        shape = image.shape[:2]
        stem, true = r["image"], truth[r["image"]]
        pred = predictor(image) if predictor is not None else None
        # the bones whose edges the frame estimate leaves out: the model's, as served, else the annotation's
        found = (instances_from_predictions(pred, class_names, soft_outlines=False) if pred is not None
                 else instances_from_record(r, class_names))
        frame = (estimate_frame(image, frame_cfg, frame_bones(found, shape, frame_cfg))
                 if any(v.frame for v in variant_list) else None)
        if predictor is not None:
            insts = found
            gt_masks, gt_classes, gt_labels = ground_truth_masks(r, class_names)
            seg = image_segmentation([i.mask for i in insts], [i.class_name for i in insts], gt_masks,
                                     gt_classes, gt_labels, shape=shape,
                                     pred_scores=[i.score for i in insts], min_score=SURE_SCORE)
            for outlines in soft:
                source = MODEL_SOFT if outlines else MODEL
                own = instances_from_predictions(pred, class_names, soft_outlines=True) if outlines else insts
                for name, m in measure_variants(own, shape, class_names, variant_list, base, frame=frame).items():
                    rows[(source, name)].append(image_row(stem, true=true, pred=m.angles, frame=m.frame,
                                                          notes=m.notes, dice=seg["dice"], iou=seg["iou"]))
            if "named" in controls:
                named = named_by_truth(insts, gt_masks, gt_classes, gt_labels)
                for name, m in measure_variants(named, shape, class_names, variant_list, base, frame=frame).items():
                    rows[(NAMED, name)].append(image_row(stem, true=true, pred=m.angles, frame=m.frame,
                                                         notes=m.notes))
        for source in (c for c in controls if c != "named"):
            insts = ground_truth_instances(r, class_names, source)
            for name, m in measure_variants(insts, shape, class_names, variant_list, base, frame=frame).items():
                rows[(CONTROL.format(source), name)].append(
                    image_row(stem, true=true, pred=m.angles, frame=m.frame, notes=m.notes))
    return dict(rows)


def statistics(rows: Mapping[tuple[str, str], list]) -> dict[str, dict[str, dict]]:
    """{source: {variant: summary}}: the evaluator's `summarize` of each row set's per-image table."""
    out: dict[str, dict[str, dict]] = {}
    for (source, name), r in rows.items():
        out.setdefault(source, {})[name] = summarize(per_image_table(r))
    return out


def measured_fraction(summary: Mapping[str, Any]) -> float:
    """Share of the measurable angles (true value known) that were measured, over all six."""
    n = sum(int(summary[k]["n"]) for k in ANGLE_NAMES)
    total = n + sum(int(summary[k]["missing"]) for k in ANGLE_NAMES)
    return n / total if total else math.nan


def table_row(cells: Sequence[str], summary: Mapping[str, Any]) -> str:
    """A Markdown row: the given leading cells, MAE per angle, R² of TK/LL/SS, share measured."""
    maes = [fmt(summary[k]["mae"], 2) for k in ANGLE_NAMES]
    r2 = " / ".join(fmt(summary[k]["r2"], 2) for k in ("TK", "LL", "SS"))
    frac = measured_fraction(summary)
    return "| " + " | ".join([*cells, *maes, r2, "—" if math.isnan(frac) else f"{frac:.0%}"]) + " |"


def markdown(meta: Mapping, split: Mapping[str, Mapping[str, dict]], difficulty: Mapping[str, dict],
             seconds: float) -> list[str]:
    angle_head = " | ".join(ANGLE_NAMES) + " | R² TK / LL / SS | measured |"
    study = ", ".join(f"{k} {v:g}°" for k, v in REFERENCE_STUDY.mae_deg.items())
    md = [f"# Side by side: the same predictions measured several ways ({meta['root']}, {meta['split']} split, "
          f"{meta['images']} images)", "", provenance_line(meta, seconds), "",
          f"Checkpoint `{meta['checkpoint']}` ({meta['run_config']}); high-resolution pass "
          f"{'on' if meta.get('highres') else 'off'}.", ""]
    model = split.get(MODEL) or split.get(MODEL_SOFT) or {}
    if model:
        first = next(iter(model.values()))
        md += [f"Model masks vs ground truth: Dice {fmt(first['dice_mean'], 3)} ± {fmt(first['dice_sd'], 3)}, "
               f"mIoU {fmt(first['miou_mean'], 3)} ± {fmt(first['miou_sd'], 3)}.", ""]
    md += ["Cells: MAE in degrees against the phantom's true angles (radiograph frame); `measured`: share of "
           "the measurable angles that were measured (the rest are NaN with a reason). Clean-up = the removal of "
           "centres off the spine's chain (`chain_rule`; off: `chain_rule=off`). Control rows: the ground-truth shapes of the same "
           f"images, no model. `{NAMED}`: the model's masks matched one-to-one to true structures (mask IoU > "
           f"{NAMED_MIN_IOU:g}) and given their true class and level, so what error is left is the masks' shape. "
           f"Reference study (its model, real photos): MAE {study}.", "",
           "| shapes | endplates | corners | frame | clean-up | " + angle_head,
           "|" + "---|" * (5 + len(ANGLE_NAMES) + 2)]
    for source, by_variant in split.items():
        for name, s in by_variant.items():
            method, corners, frame, cleanup = (p.split()[-1] for p in name.split(", "))
            md.append(table_row([source, method, corners, frame, cleanup], s))
    if difficulty:
        md += ["", f"## Phantom difficulty (default measurement: {Variant().name})", "",
               "| difficulty | phantom | images | shapes | Dice | mIoU | " + angle_head,
               "|" + "---|" * (6 + len(ANGLE_NAMES) + 2)]
        for d, res in difficulty.items():
            for source, s in res["results"].items():
                md.append(table_row([d, f"`{res['root']}`", str(res["images"]), source,
                                     fmt(s["dice_mean"], 3), fmt(s["miou_mean"], 3)], s))
    return md


def ensure_phantom(cache: Path, difficulty: str, n: int, seed: int) -> Path:
    """`cache/phantom-<difficulty>-n<n>-seed<seed>`: generated once, then reused (its phantom.json
    must say the same difficulty, n and seed)."""
    from spine_d2.synthetic.generate import generate_dataset

    root = Path(cache) / f"phantom-{difficulty}-n{n}-seed{seed}"
    if not root.exists():
        return generate_dataset(root, n, seed, difficulty=difficulty)
    meta_path = root / "phantom.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if (meta.get("difficulty"), meta.get("n"), meta.get("seed")) != (difficulty, n, seed):
        raise SystemExit(f"{root} exists but is not a {n}-image '{difficulty}' phantom of seed {seed} "
                         f"({meta_path} says {meta or 'nothing'}); remove it or choose another cache=")
    return root


def run_config_name(checkpoint: Path) -> str:
    """How the checkpoint's run was configured, from its Hydra record: 'experiment=demo (model
    fast, schedule demo)'."""
    record = hydra_record(checkpoint)
    if record is None:
        return f"run config unknown: no readable {Path(checkpoint).parent / '.hydra'}"
    cfg, overrides = record
    exp = [o for o in overrides if o.startswith("experiment=")]
    return (f"{exp[0] if exp else 'no experiment'} (model {cfg.model.name}, schedule {cfg.schedule.name}; "
            f"overrides: {' '.join(overrides) or 'none'})")


def switches(o: Mapping[str, str], key: str) -> list[bool]:
    """`frames=on,off` → [True, False]; anything but on/off exits naming the option."""
    values = as_list(o[key])
    bad = [v for v in values if v not in SWITCH]
    if bad or not values:
        raise SystemExit(f"side_by_side.py: {key}={o[key]}: use on, off or on,off")
    return [SWITCH[v] for v in values]


def _progress(items, desc):
    if desc is None:
        return items
    from tqdm import tqdm
    return tqdm(items, desc=desc, unit="image")


def main(argv: Sequence[str]) -> None:
    o = options(argv, DEFAULTS, "side_by_side.py")
    if not o["checkpoint"]:
        raise SystemExit("side_by_side.py: checkpoint=FILE is required (a run's model_final.pth)")
    if o["split"] not in ("train", "test", "all"):
        raise SystemExit(f"side_by_side.py: split={o['split']}: use train, test or all")
    t0 = time.perf_counter()
    checkpoint, root = Path(o["checkpoint"]), Path(o["root"])
    try:
        highres = None if o["highres"] == "" else SWITCH[o["highres"]]
        soft = switches(o, "soft")
        predictor = SpinePredictor.from_checkpoint(checkpoint, o["device"], highres, soft_masks=any(soft))
    except InferenceError as e:
        raise SystemExit(f"error: {e}")
    classes = predictor.class_names
    base = from_yacs(predictor.cfg.SPINE.MEASURE)  # the run's measurement
    vs = variants(as_list(o["methods"]), switches(o, "frames"), switches(o, "cleanups"), as_list(o["corners"]))
    controls = as_list(o["controls"])
    if not set(controls) <= {"masks", "polygons", "named"}:
        raise SystemExit(f"side_by_side.py: controls={o['controls']}: use any of masks, polygons, named, "
                         f"or none (controls=)")
    meta = provenance("benchmarks/side_by_side.py", argv, DEPENDS, torch_threads=torch.get_num_threads(),
                      gpu=torch.cuda.get_device_name(0) if predictor.cfg.MODEL.DEVICE.startswith("cuda") else None,
                      checkpoint=str(checkpoint), run_config=run_config_name(checkpoint), root=str(root),
                      split=o["split"], device=predictor.cfg.MODEL.DEVICE, measure_base=base,
                      highres=bool(predictor.cfg.SPINE.HIGHRES.ENABLED), soft=soft,
                      variants=[v.name for v in vs], controls=controls,
                      cleanup_off="chain_rule = off")

    records = load_labelme_dataset(root, predictor.cfg.SPINE.CLASS_MAP)
    if o["split"] != "all":
        members = set(dataset_splits(root, [r["image"] for r in records])[o["split"]])
        records = [r for r in records if r["image"] in members]
    if o["n"] != "all":
        records = records[:int(o["n"])]
    truth = phantom_truth(records, root)
    split = statistics(run_images(records, classes, truth, vs, base, predictor, controls, progress=o["split"],
                                  soft=soft))

    difficulty = {}
    n_d, seed_d = int(o["n_difficulty"]), int(o["seed_difficulty"])
    for d in as_list(o["difficulties"]):
        droot = ensure_phantom(Path(o["cache"]), d, n_d, seed_d)
        drecords = load_labelme_dataset(droot, predictor.cfg.SPINE.CLASS_MAP)
        rows = run_images(drecords, classes, phantom_truth(drecords, droot), [Variant()], base, predictor,
                          ("masks",), progress=d, soft=soft)
        difficulty[d] = {"root": str(droot), "images": len(drecords), "seed": seed_d,
                         "results": {src: by[Variant().name] for src, by in statistics(rows).items()}}

    seconds = time.perf_counter() - t0
    meta.update(images=len(records), seconds=round(seconds, 1))
    json_path, md_path = Path(o["out"] + ".json"), Path(o["out"] + ".md")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    record = {"meta": meta, "split": split, "difficulty": difficulty}
    json_path.write_text(json.dumps(json_safe(record), indent=2) + "\n")
    md = markdown(meta, split, difficulty, seconds)
    md_path.write_text("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main(sys.argv[1:])
