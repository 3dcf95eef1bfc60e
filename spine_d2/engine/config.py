"""The one bridge from the Hydra training config to a detectron2 CfgNode (pixels, iterations).

`build_d2_cfg(c)`: `get_cfg()` + `add_spine_config` (our own keys under `SPINE`, so a dumped
config reloads with `load_d2_cfg` / `get_cfg()` + `add_spine_config`), the model zoo base config
of `c.model.base`, our top-level keys (input, solver, schedule, test, dataset, device, seed), then
`c.model.d2` (raw detectron2 keys, resolved) last, `OUTPUT_DIR` from `c.output_dir` (Hydra's run
dir), frozen. An unknown detectron2 key raises: typos are caught.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Mapping

import torch
from detectron2 import model_zoo
from detectron2.config import CfgNode, get_cfg
from omegaconf import DictConfig, OmegaConf

from spine_d2 import zoo
from spine_d2.engine.phases import ScheduleError, boundaries, parse_phases
from spine_d2.levels import CORNERS, get_class_map

# torchvision-style pixel spread, for from-scratch models (the model zoo's MSRA weights use 1.0)
SCRATCH_PIXEL_STD = [57.375, 57.120, 58.395]

logger = logging.getLogger(__name__)


def trained_from_scratch(weights: str | None) -> bool:
    """Whether `weights` is a local .pth of a model built for training from scratch (`scratch_norm`
    in backbone, FPN and heads), e.g. a spine_d2 run's model_final.pth: its FPN has norm layers,
    which model-zoo weights (FrozenBN body, FPN without norm) never have. Such weights need the
    same architecture and pixel spread to load. A file that cannot be read is left to the
    checkpointer, which reports it."""
    if not weights or not str(weights).endswith(".pth") or not os.path.isfile(weights):
        return False
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception:
        return False
    model = state.get("model", state) if isinstance(state, dict) else {}
    return any(k.startswith("backbone.fpn_lateral") and ".norm." in k for k in model)


def add_spine_config(cfg: CfgNode) -> CfgNode:
    """Add spine_d2's own keys (defaults as conf/config.yaml) to a detectron2 config, in place."""
    cfg.SPINE = CfgNode()
    cfg.SPINE.INPUT = CfgNode({"HEIGHT": 840, "WIDTH": 360, "FIT": "resize", "MEAN_INTENSITY": 128.0})
    cfg.SPINE.AUG = CfgNode()
    cfg.SPINE.AUG.FLIP = CfgNode({"ENABLED": True, "PROB": 0.5})
    cfg.SPINE.AUG.CONTRAST = CfgNode({"ENABLED": True, "PROB": 0.5, "MIN": 0.7, "MAX": 1.3})
    cfg.SPINE.AUG.SCALE = CfgNode({"ENABLED": True, "MIN": 0.9, "MAX": 1.1})
    cfg.SPINE.AUG.CROP = CfgNode({"ENABLED": False, "HEIGHT": 384, "WIDTH": 384})
    cfg.SPINE.AUG.ROTATION = CfgNode(
        {"ENABLED": True, "PROB": 0.5, "MIN_DEG": 1.0, "MAX_DEG": 5.0})
    cfg.SPINE.AUG.PHOTOMETRIC = CfgNode({"ENABLED": False, "PROB": 0.5})
    # phases as parallel tuples (yacs holds no list of dicts); SOLVER.STEPS = phase boundaries
    cfg.SPINE.PHASES = CfgNode(
        {"NAMES": ("all",), "ITERS": (40000,), "LR_FACTORS": (1.0,), "TRAINS": ("all",)})
    cfg.SPINE.CLASS_MAP = "default"
    cfg.SPINE.HIGHRES = CfgNode({"ENABLED": False, "WINDOWS": 3})  # the second pass (engine/highres.py)
    cfg.SPINE.LOG_PERIOD = 20
    cfg.SPINE.MEASURE = "{}"  # the Hydra `measure` node as JSON, for evaluators (json.loads)
    return cfg


def load_d2_cfg(path: str) -> CfgNode:
    """A config dumped by a run (d2_config.yaml), reloaded with our keys."""
    cfg = add_spine_config(get_cfg())
    cfg.merge_from_file(str(path))
    return cfg


def resolve_device(device: str) -> str:
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device}: no CUDA device here; use device=cpu or device=auto")
    return str(device)


def dataset_names(dataset_cfg: Mapping) -> dict:
    """The DatasetCatalog names spine_d2.data.register gives a dataset config's splits."""
    return {"train": f"{dataset_cfg['name']}_train", "test": f"{dataset_cfg['name']}_test"}


def _node(c, key):
    v = OmegaConf.select(c, key, throw_on_missing=True) if isinstance(c, DictConfig) else None
    if v is None:
        raise KeyError(f"training config lacks `{key}` (compose it from conf/config.yaml)")
    return v


def build_d2_cfg(c: DictConfig, datasets: Mapping | None = None, output_dir: str | None = None) -> CfgNode:
    """detectron2 CfgNode for the Hydra training config `c` (conf/config.yaml composed).

    `datasets`: {"train": name, "test": name} as returned by register_from_cfg (default: the names
    it gives `c.dataset`). `output_dir`: default `c.output_dir` (Hydra's run directory).
    """
    if not isinstance(c, DictConfig):
        c = OmegaConf.create(c)
    cfg = add_spine_config(get_cfg())
    cfg.merge_from_file(model_zoo.get_config_file(_node(c, "model.base")))

    phases = parse_phases(OmegaConf.to_container(_node(c, "schedule.phases"), resolve=True))
    ph = cfg.SPINE.PHASES
    ph.NAMES = tuple(p.name for p in phases)
    ph.ITERS = tuple(p.iters for p in phases)
    ph.LR_FACTORS = tuple(p.lr_factor for p in phases)
    ph.TRAINS = tuple(p.trains for p in phases)
    cfg.SOLVER.MAX_ITER = sum(ph.ITERS)
    cfg.SOLVER.STEPS = boundaries(phases)
    # the optimizer must hold every parameter that trains in any phase: freeze at build time only
    # what no phase trains; the PhaseSchedule hook freezes the rest per phase
    cfg.MODEL.BACKBONE.FREEZE_AT = min(p.freeze_level for p in phases)

    s = c.solver
    if not float(s.base_lr) > 0:
        raise ValueError(f"solver.base_lr={s.base_lr}: must be > 0")
    cfg.SOLVER.BASE_LR = float(s.base_lr)
    cfg.SOLVER.IMS_PER_BATCH = int(s.ims_per_batch)
    cfg.SOLVER.MOMENTUM = float(s.momentum)
    cfg.SOLVER.WEIGHT_DECAY = float(s.weight_decay)
    cfg.SOLVER.WARMUP_ITERS = int(s.warmup_iters)
    cfg.SOLVER.CHECKPOINT_PERIOD = int(s.checkpoint_period)
    cfg.SOLVER.REFERENCE_WORLD_SIZE = 0
    cfg.DATALOADER.NUM_WORKERS = int(c.dataloader.num_workers)

    weights = zoo.resolve(c.model.weights)  # zoo:<name>: a model shipped with spine_d2
    cfg.MODEL.WEIGHTS = str(weights) if weights else ""
    scratch_built = not weights or trained_from_scratch(str(weights))
    if weights and scratch_built:
        logger.info("model.weights=%s was trained from scratch: built as such, with "
                    "model.scratch_norm=%s and its pixel spread", weights, c.model.scratch_norm)
    if scratch_built:
        norm = str(c.model.scratch_norm)
        cfg.MODEL.RESNETS.NORM = norm
        cfg.MODEL.FPN.NORM = norm
        cfg.MODEL.ROI_BOX_HEAD.NORM = norm
        cfg.MODEL.ROI_MASK_HEAD.NORM = norm
        cfg.MODEL.PIXEL_STD = list(SCRATCH_PIXEL_STD)
    cfg.MODEL.DEVICE = resolve_device(c.device)
    cfg.MODEL.MASK_ON = True
    if c.model.get("corners"):  # a keypoint head beside the mask head: the four corners of a body
        k = cfg.MODEL.ROI_KEYPOINT_HEAD
        cfg.MODEL.KEYPOINT_ON = True
        k.NUM_KEYPOINTS = len(CORNERS)
        k.MIN_KEYPOINTS_PER_IMAGE = 0  # femoral heads and S1's lower corners have none
        k.CONV_DIMS = tuple(int(d) for d in c.model.get("corner_head", (128, 128, 128, 128)))
        cfg.TEST.KEYPOINT_OKS_SIGMAS = [0.025] * len(CORNERS)

    classes = get_class_map(c.dataset.class_map).classes
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = len(classes)
    cfg.SPINE.CLASS_MAP = str(c.dataset.class_map)
    names = dict(datasets) if datasets else dataset_names(c.dataset)
    cfg.DATASETS.TRAIN = (names["train"],)
    cfg.DATASETS.TEST = (names["test"],)

    t = c.test
    cfg.TEST.EVAL_PERIOD = int(t.eval_period)
    cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST = float(t.nms_thresh)
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = float(t.score_thresh)
    cfg.TEST.DETECTIONS_PER_IMAGE = int(t.detections_per_image)
    if t.get("highres") is not None:
        cfg.SPINE.HIGHRES.ENABLED, cfg.SPINE.HIGHRES.WINDOWS = bool(t.highres.enabled), int(t.highres.windows)

    i = c.input
    cfg.SPINE.INPUT.HEIGHT, cfg.SPINE.INPUT.WIDTH = int(i.height), int(i.width)
    if i.fit not in ("resize", "keep_aspect"):
        raise ValueError(f"input.fit={i.fit!r}: use resize or keep_aspect")
    cfg.SPINE.INPUT.FIT = str(i.fit)
    cfg.SPINE.INPUT.MEAN_INTENSITY = None if i.mean_intensity is None else float(i.mean_intensity)
    # detectron2's own size keys, for anything that reads them (our mapper uses SPINE.INPUT)
    cfg.INPUT.MIN_SIZE_TRAIN = (min(cfg.SPINE.INPUT.HEIGHT, cfg.SPINE.INPUT.WIDTH),)
    cfg.INPUT.MIN_SIZE_TEST = min(cfg.SPINE.INPUT.HEIGHT, cfg.SPINE.INPUT.WIDTH)
    cfg.INPUT.MAX_SIZE_TRAIN = cfg.INPUT.MAX_SIZE_TEST = max(cfg.SPINE.INPUT.HEIGHT, cfg.SPINE.INPUT.WIDTH)

    a, A = c.augment, cfg.SPINE.AUG
    A.FLIP.ENABLED, A.FLIP.PROB = bool(a.flip.enabled), float(a.flip.prob)
    A.CONTRAST.ENABLED, A.CONTRAST.PROB = bool(a.contrast.enabled), float(a.contrast.prob)
    A.CONTRAST.MIN, A.CONTRAST.MAX = float(a.contrast.min), float(a.contrast.max)
    A.SCALE.ENABLED, A.SCALE.MIN, A.SCALE.MAX = bool(a.scale.enabled), float(a.scale.min), float(a.scale.max)
    A.CROP.ENABLED, A.CROP.HEIGHT, A.CROP.WIDTH = bool(a.crop.enabled), int(a.crop.height), int(a.crop.width)
    if A.CROP.ENABLED and min(A.CROP.HEIGHT, A.CROP.WIDTH) < 32:
        raise ValueError("augment.crop: height and width must be at least 32 px")
    r = a.rotation
    A.ROTATION.ENABLED, A.ROTATION.PROB = bool(r.enabled), float(r.prob)
    A.ROTATION.MIN_DEG, A.ROTATION.MAX_DEG = float(r.min_deg), float(r.max_deg)
    if not 0 <= A.ROTATION.MIN_DEG <= A.ROTATION.MAX_DEG:
        raise ValueError("augment.rotation: need 0 <= min_deg <= max_deg")
    if a.get("photometric") is not None:
        A.PHOTOMETRIC.ENABLED, A.PHOTOMETRIC.PROB = bool(a.photometric.enabled), float(a.photometric.prob)

    cfg.SPINE.LOG_PERIOD = int(c.log_period)
    if c.get("measure") is not None:
        cfg.SPINE.MEASURE = json.dumps(OmegaConf.to_container(c.measure, resolve=True))
    cfg.SEED = int(c.seed)
    cfg.OUTPUT_DIR = str(output_dir if output_dir is not None else c.output_dir)

    d2 = OmegaConf.to_container(c.model.d2, resolve=True) if c.model.get("d2") else {}
    cfg.merge_from_other_cfg(CfgNode(d2))
    if cfg.SOLVER.MAX_ITER != sum(ph.ITERS) or tuple(cfg.SOLVER.STEPS) != boundaries(phases):
        raise ScheduleError("SOLVER.MAX_ITER/STEPS come from schedule.phases: set them there, not in model.d2")
    cfg.freeze()
    return cfg
