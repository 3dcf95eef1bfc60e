"""Speed: inference s/image, measurement ms/image, phantom images/s, training s/iteration; medians, paired ratios.

    python benchmarks/speed.py [checkpoint_fast=FILE] [root=datasets/phantom428] [repeats=5] [images=8]
        [warmup=1] [height=840] [width=360] [phantom_n=32] [phantom_workers=1,2] [train_iters=10]
        [train_warmup=3] [train_experiment=demo] [train_amp=false] [threads=default] [device=cpu]
        [parts=inference,measure,phantom,train]
        [out=benchmarks/results/speed]

- inference: `fast` and `paper` built from the Hydra configs (conf/model/*.yaml) at `height` ×
  `width` (`input.fit=resize`), timed on the first `images` photos of the test split of `root`
  through `SpinePredictor` (preprocessing, model, masks pasted at the photo's size). Their weights
  are random (timing only: never loaded), with every image kept at `detections_per_image` (40)
  detections, so the mask head does its most work. `checkpoint_fast` adds a trained model's rows:
  at height × width and at its own input, with the detections it really makes.
  Two rows more time a photo to its angles (`measure_image`: the passes and the measurement) as
  served and with the mirrored run made only where the measurement doubts the photo's own run
  (`test.flip_when=doubt`; the note says on how many photos it was made).
- measure: `measure_instances` on the same photos' ground-truth masks (as a model gives them;
  frame correction on, the default, and off) and, with a checkpoint, on its predictions.
- phantom: `generate_dataset` of `phantom_n` images per worker count (process start-up included,
  as `tools/make_synthetic.py` pays it; output deleted).
- train: `experiment=<train_experiment>` (its model, input, augmentation and batch) on `root`'s
  train split, once per value of `train_amp` (`solver.amp`; `false,true` times both):
  `train_warmup + train_iters` iterations of SpineTrainer without evaluation; detectron2's
  per-iteration `time` (data loading included) of the last `train_iters`.

Each repeat times every configuration in turn (warm-up runs excluded), so a ratio is taken within
a repeat under the same load; medians over repeats are reported. Writes `<out>.json` and
`<out>.md` with the command, date, machine (torch threads, load) and commit.
"""
from __future__ import annotations

import copy
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from _common import REPO, as_list, ground_truth_instances, options, provenance, provenance_line
from spine_d2.evaluation.formatting import fmt

DEPENDS = ("spine_d2", "conf", "benchmarks/speed.py", "benchmarks/_common.py")  # code the numbers rest on
DEFAULTS = {"checkpoint_fast": "", "root": "datasets/phantom428", "repeats": "5", "images": "8", "warmup": "1",
            "height": "840", "width": "360", "phantom_n": "32", "phantom_workers": "1,2", "train_iters": "10",
            "train_warmup": "3", "train_experiment": "demo", "train_amp": "false", "threads": "default",
            "device": "cpu", "parts": "inference,measure,phantom,train", "out": "benchmarks/results/speed"}
PARTS = ("inference", "measure", "phantom", "train")
GOAL_FAST_CPU_S = 0.5  # issue #8: CPU inference ≤ 0.5 s/image for `fast`
GOAL_HIGHRES_CPU_S = 0.6  # issue #17: ≤ 0.6 s/image with the high-resolution pass
CHECKPOINT_ROW, CHECKPOINT_OWN_ROW = "fast checkpoint", "fast checkpoint, own input"
CHECKPOINT_SOFT_ROW = "fast checkpoint, own input, soft outlines"  # the default of experiment=long and demo
CHECKPOINT_HIGHRES_ROW = "fast checkpoint, own input, high-res pass + soft outlines"  # the full recipe (issue 17)
CHECKPOINT_FLIP_ROW = "fast checkpoint, own input, high-res pass + soft outlines + mirrored run"  # test.flip as well
CHECKPOINT_FLIP_UPRIGHT_ROW = CHECKPOINT_FLIP_ROW + ", its windows upright"  # test.highres.flip_turns=false
#: test.amp with test.amp_corners (the default): the backbone and the corner head's convolutions
CHECKPOINT_HIGHRES_AMP_ROW = CHECKPOINT_HIGHRES_ROW + ", autocast"
CHECKPOINT_FLIP_AMP_ROW = CHECKPOINT_FLIP_ROW + ", autocast"  # as served
CHECKPOINT_BACKBONE_AMP_ROW = CHECKPOINT_FLIP_ROW + ", backbone autocast only"  # test.amp_corners=false
CHECKPOINT_UPRIGHT_AMP_ROW = CHECKPOINT_FLIP_AMP_ROW + ", no turned looks"  # test.highres.turns=[]
CHECKPOINT_SHARED_TURNS_AMP_ROW = CHECKPOINT_FLIP_AMP_ROW + ", turns shared out between the runs"  # share_turns
CHECKPOINT_OWN_TURNED_AMP_ROW = CHECKPOINT_FLIP_AMP_ROW + ", turned looks detecting again"  # turned_boxes=own
#: as served, but the mirrored run made after the photo's run, each with all the threads (no twin:
#: not side by side, `spine_d2.engine.test_time.side_by_side`)
CHECKPOINT_SERIAL_AMP_ROW = CHECKPOINT_FLIP_AMP_ROW + ", the two runs one after the other"
#: photo to angles (`measure_image`: the passes and the measurement), as served (the mirrored run
#: always made) and with `test.flip_when=doubt` (made only where the measurement doubts the photo's run)
SERVED_MEASURED_ROW = CHECKPOINT_FLIP_AMP_ROW + ", then measured"
DOUBT_MEASURED_ROW = CHECKPOINT_FLIP_AMP_ROW.replace("mirrored run", "mirrored run on doubt") + ", then measured"
MEASURED_ROWS = {SERVED_MEASURED_ROW: dict(own=True, highres=True, soft=True, flip=True, amp=True),
                 DOUBT_MEASURED_ROW: dict(own=True, highres=True, soft=True, flip=True, amp=True, flip_when="doubt")}
HIGHRES_ROWS = (CHECKPOINT_HIGHRES_ROW, CHECKPOINT_FLIP_ROW, CHECKPOINT_FLIP_UPRIGHT_ROW, CHECKPOINT_HIGHRES_AMP_ROW,
                CHECKPOINT_FLIP_AMP_ROW, CHECKPOINT_BACKBONE_AMP_ROW, CHECKPOINT_UPRIGHT_AMP_ROW,
                CHECKPOINT_SHARED_TURNS_AMP_ROW, CHECKPOINT_OWN_TURNED_AMP_ROW,
                CHECKPOINT_SERIAL_AMP_ROW, *MEASURED_ROWS)
#: a trained checkpoint's rows: own input (else height × width), and its test-time switches
CHECKPOINT_ROWS = {
    CHECKPOINT_ROW: dict(own=False),
    CHECKPOINT_OWN_ROW: dict(own=True),
    CHECKPOINT_SOFT_ROW: dict(own=True, soft=True),
    CHECKPOINT_HIGHRES_ROW: dict(own=True, highres=True, soft=True),
    CHECKPOINT_FLIP_ROW: dict(own=True, highres=True, soft=True, flip=True),
    CHECKPOINT_FLIP_UPRIGHT_ROW: dict(own=True, highres=True, soft=True, flip=True, flip_turns=False),
    CHECKPOINT_HIGHRES_AMP_ROW: dict(own=True, highres=True, soft=True, amp=True),
    CHECKPOINT_FLIP_AMP_ROW: dict(own=True, highres=True, soft=True, flip=True, amp=True),
    CHECKPOINT_BACKBONE_AMP_ROW: dict(own=True, highres=True, soft=True, flip=True, amp=True, amp_corners=False),
    CHECKPOINT_UPRIGHT_AMP_ROW: dict(own=True, highres=True, soft=True, flip=True, amp=True, turns=()),
    CHECKPOINT_SHARED_TURNS_AMP_ROW: dict(own=True, highres=True, soft=True, flip=True, amp=True, share_turns=True),
    CHECKPOINT_OWN_TURNED_AMP_ROW: dict(own=True, highres=True, soft=True, flip=True, amp=True, turned_boxes="own"),
    CHECKPOINT_SERIAL_AMP_ROW: dict(own=True, highres=True, soft=True, flip=True, amp=True, side_by_side=False),
}


# ------------------------------------------------------------------------------------------------
# timing and statistics on plain numbers

def spread(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and the values themselves (one per repeat)."""
    v = [float(x) for x in values]
    if not v:
        raise ValueError("no values to summarise")
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v), "values": v}


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> dict[str, Any]:
    """`spread` of numerator[i] / denominator[i]: ratios taken within each repeat (same load)."""
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError(f"paired ratio needs two equally long, non-empty series; got {len(numerator)} "
                         f"and {len(denominator)}")
    return spread([a / b for a, b in zip(numerator, denominator)])


def time_each(fn: Callable[[Any], Any], items: Sequence[Any], prepare: Callable[[Any], Any] | None = None,
              clock: Callable[[], float] = time.perf_counter) -> tuple[list[float], list[Any]]:
    """Seconds of `fn(prepare(item))` for each item (`prepare` untimed) and what `fn` returned."""
    times, results = [], []
    for item in items:
        arg = prepare(item) if prepare is not None else item
        t0 = clock()
        results.append(fn(arg))
        times.append(clock() - t0)
    return times, results


def timed_repeats(jobs: Mapping[str, Callable[[Any], Any]], items: Sequence[Any], repeats: int, warmup: int = 1,
                  prepare: Callable[[Any], Any] | None = None,
                  clock: Callable[[], float] = time.perf_counter) -> tuple[dict[str, list[float]], dict[str, list]]:
    """Mean seconds per item of each job, per repeat ({job: [repeat 1, …]}), and each job's last
    results. First `warmup` untimed calls per job on the first items; then every repeat runs every
    job in turn over all items."""
    if repeats < 1 or not items:
        raise ValueError(f"need at least one repeat and one item (repeats={repeats}, items={len(items)})")
    for fn in jobs.values():
        for item in list(items)[:warmup]:
            fn(prepare(item) if prepare is not None else item)
    per_repeat: dict[str, list[float]] = {name: [] for name in jobs}
    last: dict[str, list] = {}
    for _ in range(repeats):
        for name, fn in jobs.items():
            times, last[name] = time_each(fn, items, prepare, clock)
            per_repeat[name].append(sum(times) / len(times))
    return per_repeat, last


# ------------------------------------------------------------------------------------------------
# what is timed

def compose_cfg(*overrides: str, output_dir: str = "/tmp/spine_d2_speed"):
    """The training config (conf/config.yaml) composed with `overrides`, outside a Hydra run."""
    from hydra import compose, initialize_config_dir

    import spine_d2.schema  # noqa: F401 (the config schema, registered with Hydra)

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=[f"output_dir={output_dir}", *overrides])


def inference_cfg(model: str, height: int, width: int, device: str = "cpu", checkpoint: str | None = None,
                  own_input: bool = False, highres: bool = False, soft: bool = False, flip: bool = False,
                  flip_turns: bool = True, amp: bool = False, flip_when: str = "always", turns=None,
                  turned_boxes: str = "given", amp_corners: bool = True, share_turns: bool = False):
    """A detectron2 config of `model` (conf/model/<model>.yaml) at input height × width (resize)
    with random weights (never loaded: timing only) that keep `TEST.DETECTIONS_PER_IMAGE`
    detections on every image (no score threshold, no NMS: the mask head's most work); or the
    checkpoint's own config at height × width, or at its trained input with `own_input`, with the
    high-resolution pass (`highres`), the soft-mask outlines (`soft`), the mirrored run (`flip`;
    its windows turned too with `flip_turns`; made `flip_when`), the backbone's autocast (`amp`;
    with `amp_corners` the corner head's convolutions too) and the windows' turned looks (`turns`,
    degrees: () none, neither the strip's; None: as trained; `turned_boxes` how they find the
    bodies; with `share_turns` shared out between the photo's and the mirrored run) switched as
    given."""
    from spine_d2.engine.config import build_d2_cfg
    from spine_d2.engine.inference import config_for_checkpoint

    if checkpoint:
        cfg = config_for_checkpoint(checkpoint, device, highres=highres, soft_masks=soft, flip=flip, turns=turns,
                                    flip_turns=flip_turns, amp=amp, flip_when=flip_when,
                                    turned_boxes=turned_boxes, amp_corners=amp_corners,
                                    share_turns=share_turns).clone()
        cfg.defrost()
        if not own_input:
            cfg.SPINE.INPUT.HEIGHT, cfg.SPINE.INPUT.WIDTH, cfg.SPINE.INPUT.FIT = height, width, "resize"
    else:
        cfg = build_d2_cfg(compose_cfg(f"model={model}", f"input.height={height}", f"input.width={width}",
                                       "input.fit=resize", f"device={device}"))
        cfg.defrost()
        cfg.MODEL.WEIGHTS = ""  # the architecture as configured (paper: the zoo's FrozenBN), not its weights
        # random weights score most boxes 0 (paper: unnormalised activations saturate the softmax):
        # let every box through (detectron2 keeps scores > the threshold), none suppressed
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = -1.0
        cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST = 1.0
    cfg.freeze()
    return cfg


def steady_boxes(model) -> None:
    """Zero the box-delta layers of a randomly initialised Mask R-CNN, in place: proposals are then
    the anchors and detections the proposals. Random deltas throw the boxes off the image (the
    paper's FrozenBN backbone without its statistics amplifies every layer), leaving a handful of
    degenerate boxes, so the ROI and mask heads would do far less than a trained model's."""
    import torch

    for layer in (model.proposal_generator.rpn_head.anchor_deltas, model.roi_heads.box_predictor.bbox_pred):
        torch.nn.init.zeros_(layer.weight)
        torch.nn.init.zeros_(layer.bias)


def input_text(cfg) -> str:
    i = cfg.SPINE.INPUT
    return f"{i.HEIGHT}×{i.WIDTH} {i.FIT}"


def time_inference(images: Sequence[np.ndarray], o: Mapping[str, str], repeats: int, warmup: int):
    """{row: {"s_per_image", "weights", "input", "detections_per_image"}} and the raw per-repeat
    series; with a checkpoint also its predictions at its own input (for the measurement part)."""
    import torch

    from spine_d2.engine.inference import SpinePredictor, measure_image

    h, w, dev, ckpt = int(o["height"]), int(o["width"]), o["device"], o["checkpoint_fast"] or None
    predictors, weights, jobs = {}, {}, {}
    for model in ("fast", "paper"):
        torch.manual_seed(0)  # the same random weights in every run
        predictors[model] = SpinePredictor(inference_cfg(model, h, w, dev))
        steady_boxes(predictors[model].model)
        weights[model] = "random (not loaded), box deltas zeroed, every box kept up to the cap"
    if ckpt:
        for name, switches in CHECKPOINT_ROWS.items():
            switches = dict(switches)
            side_by_side = switches.pop("side_by_side", True)
            predictors[name] = SpinePredictor(inference_cfg("fast", h, w, dev, ckpt, switches.pop("own"), **switches))
            if not side_by_side:
                predictors[name].twin = None  # the mirrored run after the photo's, on the same model
            weights[name] = f"checkpoint {ckpt}"
        for name, switches in MEASURED_ROWS.items():
            switches = dict(switches)
            predictors[name] = p = SpinePredictor(inference_cfg("fast", h, w, dev, ckpt, switches.pop("own"),
                                                                **switches))
            jobs[name] = lambda image, p=p: measure_image(p, image)
            weights[name] = f"checkpoint {ckpt}"
    series, outputs = timed_repeats({k: jobs.get(k, p) for k, p in predictors.items()}, images, repeats, warmup)
    rows = {k: {"s_per_image": spread(series[k]), "weights": weights[k], "input": input_text(p.cfg),
                "detections_per_image": float(np.mean([len(getattr(x, "instances", x)) for x in outputs[k]]))}
            for k, p in predictors.items()}
    for k in jobs:  # measured: detections kept after the clean-up, and where the mirrored run was made on doubt
        rows[k]["measured"] = True
        if MEASURED_ROWS[k].get("flip_when") == "doubt":
            made = sum(any(f.startswith("mirrored run made") for f in m.flags) for m in outputs[k])
            rows[k]["mirrored_run_made"] = f"{made} of {len(outputs[k])} photos"
    predictions = None
    if ckpt:
        from spine_d2.measure import instances_from_predictions

        p = predictors[CHECKPOINT_OWN_ROW]
        predictions = [instances_from_predictions(x, p.class_names) for x in outputs[CHECKPOINT_OWN_ROW]]
    return rows, series, predictions


def time_measurement(images, records, class_names, predictions, repeats: int, warmup: int):
    """{row: {"ms_per_image"}} and per-repeat series: the default measurement (frame correction
    on: estimated from the photo, the lines over the bones left out), the same with those lines kept
    (`measure.frame.bone_share=0`) and frame off, on ground-truth masks and, when given, on the
    model's predictions. Each call measures a fresh copy of the instances, made untimed."""
    from spine_d2.measure import MeasureConfig, measure_instances

    sources = {"ground-truth masks": [ground_truth_instances(r, class_names, "masks") for r in records]}
    if predictions is not None:
        sources["model predictions"] = predictions
    configs = {"frame on": MeasureConfig(),
               "frame on, the bones' edges kept": MeasureConfig.from_cfg({"frame": {"bone_share": 0.0}}),
               "frame off": MeasureConfig.from_cfg({"frame": {"enabled": False}})}

    def job(src, cfg):
        return lambda a: measure_instances(a[src], a["image"].shape[:2], class_names, cfg, image=a["image"])

    def prepare(i):
        return {"image": images[i], **{src: copy.deepcopy(insts[i]) for src, insts in sources.items()}}

    jobs = {f"{src}, {label}": job(src, cfg) for src in sources for label, cfg in configs.items()}
    series, _ = timed_repeats(jobs, list(range(len(images))), repeats, warmup, prepare)
    return {k: {"ms_per_image": spread([1000 * x for x in v])} for k, v in series.items()}, series


def time_phantom(n: int, workers: Sequence[int], repeats: int, scratch: Path):
    """{"workers=W": {"images_per_s"}} and per-repeat series (images/s); each run's output deleted.
    OpenCV's thread count (one worker sets it to 1 in this process) is restored afterwards."""
    import cv2

    from spine_d2.synthetic.generate import generate_dataset

    threads = cv2.getNumThreads()
    series: dict[str, list[float]] = {f"workers={w}": [] for w in workers}
    try:
        for r in range(repeats):
            for w in workers:
                out = scratch / f"phantom-{r}-{w}"
                t0 = time.perf_counter()
                generate_dataset(out, n, seed=1, workers=w, progress=False)
                series[f"workers={w}"].append(n / (time.perf_counter() - t0))
                shutil.rmtree(out)
    finally:
        cv2.setNumThreads(threads)
    return {k: {"images_per_s": spread(v), "images": n} for k, v in series.items()}, series


def time_training(root: str, iters: int, warmup: int, device: str, scratch: Path, experiment: str = "demo",
                  amp: bool = False) -> dict:
    """s/iteration of `experiment=<experiment>` (`solver.amp=<amp>`) on `root` (no evaluation):
    detectron2's per-iteration `time` and `data_time` of the iterations after `warmup`."""
    from detectron2.utils.logger import setup_logger

    from spine_d2.data.register import register_from_cfg
    from spine_d2.engine.config import build_d2_cfg
    from spine_d2.engine.trainer import SpineTrainer

    c = compose_cfg(f"experiment={experiment}", f"dataset.root={root}", "dataset.name=speed_benchmark",
                    f"device={device}", "solver.checkpoint_period=1000000", f"solver.amp={amp}",
                    f"schedule.phases=[{{name: all, iters: {warmup + iters}, lr_factor: 1.0, trains: all}}]",
                    output_dir=str(scratch))
    cfg = build_d2_cfg(c, datasets=register_from_cfg(c.dataset), output_dir=str(scratch))
    cfg.defrost()
    cfg.DATASETS.TEST = ()  # no evaluation at the end
    cfg.freeze()
    for handler in setup_logger(name="detectron2").handlers:  # the trainer's logger, without the model print-out
        handler.setLevel(logging.WARNING)
    trainer = SpineTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    step = [v for v, it in trainer.storage.history("time").values() if it >= warmup]
    data = [v for v, it in trainer.storage.history("data_time").values() if it >= warmup]
    if not step:
        raise SystemExit(f"training recorded no iteration time after {warmup} warm-up iterations")
    return {"s_per_iteration": spread(step), "data_s_per_iteration": spread(data),
            "model": str(c.model.name), "input": input_text(cfg), "batch": int(cfg.SOLVER.IMS_PER_BATCH),
            "device": cfg.MODEL.DEVICE, "iterations_timed": len(step), "warmup_iterations": warmup}


def ratios(inference: Mapping, measure: Mapping, phantom: Mapping) -> dict[str, dict]:
    """Paired ratios of per-repeat series measured in the same run (those that exist)."""
    pairs = {"inference paper / fast (same input)": (inference, "paper", "fast"),
             "inference fast checkpoint / fast random (same input)": (inference, CHECKPOINT_ROW, "fast"),
             "inference fast checkpoint at its own input / at the benchmark input": (
                 inference, CHECKPOINT_OWN_ROW, CHECKPOINT_ROW),
             "photo to angles, the mirrored run on doubt / always": (inference, DOUBT_MEASURED_ROW,
                                                                     SERVED_MEASURED_ROW),
             "inference as served, the two runs side by side / one after the other": (
                 inference, CHECKPOINT_FLIP_AMP_ROW, CHECKPOINT_SERIAL_AMP_ROW),
             "inference as served, the corner head under autocast too / the backbone only": (
                 inference, CHECKPOINT_FLIP_AMP_ROW, CHECKPOINT_BACKBONE_AMP_ROW),
             "inference, the turns shared out between the runs / as served": (
                 inference, CHECKPOINT_SHARED_TURNS_AMP_ROW, CHECKPOINT_FLIP_AMP_ROW),
             "measurement frame on / off (ground-truth masks)": (measure, "ground-truth masks, frame on",
                                                                 "ground-truth masks, frame off"),
             "measurement with the bones' edges left out of the frame estimate / kept (ground-truth masks)": (
                 measure, "ground-truth masks, frame on", "ground-truth masks, frame on, the bones' edges kept"),
             "measurement on predictions / on ground-truth masks (frame on)": (
                 measure, "model predictions, frame on", "ground-truth masks, frame on"),
             "phantom images/s workers=2 / workers=1": (phantom, "workers=2", "workers=1")}
    return {name: paired_ratio(series[a], series[b]) for name, (series, a, b) in pairs.items()
            if a in series and b in series}


def goals(inference: Mapping[str, Mapping]) -> dict[str, dict]:
    """The issues' CPU goals for `fast` (≤ 0.5 s/image; ≤ 0.6 s with the high-resolution pass),
    checked on every `fast` row."""
    out = {}
    for k, r in inference.items():
        if k.startswith("fast"):
            goal = GOAL_HIGHRES_CPU_S if k in HIGHRES_ROWS else GOAL_FAST_CPU_S
            out[f"`{k}` CPU inference ≤ {goal} s/image"] = {
                "value": r["s_per_image"]["median"], "met": r["s_per_image"]["median"] <= goal,
                "note": f"{r['input']}, weights {r['weights']}"}
    return out


# ------------------------------------------------------------------------------------------------
# report

def markdown(meta: Mapping, results: Mapping, seconds: float) -> list[str]:
    photos = (f" Photos: the first {meta['images']} of the test split of `{meta['root']}` (median size "
              f"{meta['image_size']})." if meta.get("images") else "")
    md = ["# Speed", "", provenance_line(meta, seconds), "",
          f"Medians over {meta['repeats']} repeats (range: min–max); warm-up runs excluded; device "
          f"{meta['device']}, OpenCV {meta['opencv_threads']} threads (torch's in the machine line).{photos}", "",
          "| what | configuration | median | range | unit | note |", "|---|---|---|---|---|---|"]

    def row(what, config, s, unit, note="", digits=3):
        md.append(f"| {what} | {config} | {fmt(s['median'], digits)} | {fmt(s['min'], digits)}–"
                  f"{fmt(s['max'], digits)} | {unit} | {note} |")

    for k, r in results.get("inference", {}).items():
        made = f"; the mirrored run made on {r['mirrored_run_made']}" if "mirrored_run_made" in r else ""
        kept = " kept after the measurement's clean-up" if r.get("measured") else ""
        row("inference", f"`{k}` ({r['input']})", r["s_per_image"], "s/image",
            f"weights {r['weights']}; {r['detections_per_image']:.1f} detections/image{kept}{made}")
    for k, r in results.get("measurement", {}).items():
        row("measurement", k, r["ms_per_image"], "ms/image", digits=1)
    for k, r in results.get("phantom", {}).items():
        row("phantom generation", k, r["images_per_s"], "images/s", f"{r['images']} images per run", digits=2)
    for k, t in results.get("training", {}).items():
        row("training", f"`{k}`: `{t['model']}` ({t['input']}, batch {t['batch']})", t["s_per_iteration"],
            "s/iteration", f"{t['iterations_timed']} iterations after {t['warmup_iterations']} warm-up; data "
            f"loading {fmt(t['data_s_per_iteration']['median'], 3)} s of it", digits=3)
    if results.get("ratios"):
        md += ["", "Ratios within each repeat (median, range):", ""]
        md += [f"- {k}: {fmt(s['median'], 2)} ({fmt(s['min'], 2)}–{fmt(s['max'], 2)})" for k, s in results["ratios"].items()]
    if results.get("goals"):
        md += ["", "Goals (issue #8):", ""]
        md += [f"- {k}: {fmt(g['value'], 3)} → {'met' if g['met'] else 'not met'} ({g['note']})"
               for k, g in results["goals"].items()]
    return md


def load_images(root: Path, n: int, class_map: str = "default"):
    """The first `n` photos (BGR) of the test split of `root` and their dataset dicts."""
    from spine_d2.data.labelme import load_labelme_dataset
    from spine_d2.data.splits import dataset_splits
    from spine_d2.data.images import read_image

    if not root.is_dir():
        raise SystemExit(f"root={root}: no such dataset folder (make one: python tools/make_synthetic.py "
                         f"out={root} n=428 seed=1)")
    records = load_labelme_dataset(root, class_map)
    test = set(dataset_splits(root, [r["image"] for r in records])["test"])
    records = [r for r in records if r["image"] in test][:n]
    if not records:
        raise SystemExit(f"root={root}: no test images")
    return [read_image(r["file_name"]) for r in records], records


def main(argv: Sequence[str]) -> None:
    o = options(argv, DEFAULTS, "speed.py")
    parts = as_list(o["parts"])
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"speed.py: unknown part(s) {sorted(unknown)}; known: {', '.join(PARTS)}")
    if not as_list(o["train_amp"]) or set(as_list(o["train_amp"])) - {"false", "true"}:
        raise SystemExit(f"speed.py: train_amp={o['train_amp']}: false, true or false,true")
    import cv2
    import torch

    if o["threads"] != "default":
        torch.set_num_threads(int(o["threads"]))
    repeats, warmup, n_images = int(o["repeats"]), int(o["warmup"]), int(o["images"])
    root = Path(o["root"])
    meta = provenance("benchmarks/speed.py", argv, DEPENDS, torch_threads=torch.get_num_threads(),
                      gpu=torch.cuda.get_device_name(0) if o["device"].startswith("cuda") else None,
                      opencv_threads=cv2.getNumThreads(), device=o["device"], repeats=repeats, warmup=warmup,
                      root=str(root), checkpoint_fast=o["checkpoint_fast"] or None)
    t0 = time.perf_counter()
    results: dict[str, Any] = {}
    series: dict[str, dict] = {"inference": {}, "measure": {}, "phantom": {}}
    images, records, predictions = [], [], None
    if {"inference", "measure"} & set(parts):
        images, records = load_images(root, n_images)
    if "inference" in parts:
        results["inference"], series["inference"], predictions = time_inference(images, o, repeats, warmup)
    if "measure" in parts:
        from spine_d2.levels import get_class_map

        results["measurement"], series["measure"] = time_measurement(
            images, records, get_class_map("default").classes, predictions, repeats, warmup)
    with tempfile.TemporaryDirectory(prefix="spine_d2_speed_") as scratch:
        if "phantom" in parts:
            results["phantom"], series["phantom"] = time_phantom(
                int(o["phantom_n"]), [int(w) for w in as_list(o["phantom_workers"])], repeats, Path(scratch))
        if "train" in parts:
            results["training"] = {
                f"experiment={o['train_experiment']} solver.amp={amp}": time_training(
                    str(root), int(o["train_iters"]), int(o["train_warmup"]), o["device"],
                    Path(scratch) / f"train-{amp}", o["train_experiment"], amp == "true")
                for amp in as_list(o["train_amp"])}
    results["ratios"] = ratios(series["inference"], series["measure"], series["phantom"])
    if o["device"] == "cpu":
        results["goals"] = goals(results.get("inference", {}))
    seconds = time.perf_counter() - t0
    by_area = sorted(images, key=lambda im: im.shape[0] * im.shape[1])
    size = f"{by_area[len(by_area) // 2].shape[0]}×{by_area[len(by_area) // 2].shape[1]}" if images else "—"
    meta.update(images=len(images), image_size=size, seconds=round(seconds, 1))
    json_path, md_path = Path(o["out"] + ".json"), Path(o["out"] + ".md")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"meta": meta, **results}, indent=2) + "\n")
    md = markdown(meta, results, seconds)
    md_path.write_text("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main(sys.argv[1:])
