"""The one bridge from the Hydra training config to a detectron2 CfgNode (pixels, iterations).

`build_d2_cfg(c)`: the composed tree, checked against the schema (`spine_d2.schema.TrainConfig`);
`get_cfg()` + `add_spine_config`; the model zoo base config of `c.model.base`; detectron2's keys
that ours set (`D2_KEYS` copied as they are; the schedule, the model's weights and heads, the
classes, datasets and input sizes derived from ours); the `SPINE` node: our keys detectron2 has
none for (`SPINE_KEYS`), each copied whole from the tree by `spine_node`; then `c.model.d2` (raw
detectron2 keys, resolved) last, `OUTPUT_DIR` from `c.output_dir` (Hydra's run dir), frozen. An
unknown detectron2 key raises: typos are caught.

A dumped config (`d2_config.yaml`) reloads with `get_cfg()` + `add_spine_config` (its defaults are
the schema's, through the same `spine_node`), or `load_d2_cfg`, which also reads runs written
before `SPINE.MEASURE` and `SPINE.PHASES` were nodes. `from_yacs` gives a SPINE node back in the
Hydra tree's form (lower-case keys, lists), e.g. for `MeasureConfig.from_cfg`.
"""
from __future__ import annotations

import json
import logging
import os
from enum import Enum
from functools import reduce
from typing import Any, Mapping

import torch
from detectron2 import model_zoo
from detectron2.config import CfgNode, get_cfg
from detectron2.projects.point_rend import add_pointrend_config  # also registers PointRendMaskHead
from omegaconf import DictConfig, ListConfig, OmegaConf

from spine_d2 import zoo
from spine_d2.angles import ANGLE_NAMES
from spine_d2.data.rare import check_params
from spine_d2.data.register import extra_name
from spine_d2.engine import corner_head  # registers CornerHead
from spine_d2.engine.phases import Phase, ScheduleError, boundaries, parse_phases
from spine_d2.levels import CORNERS, get_class_map
from spine_d2.schema import TrainConfig

# torchvision-style pixel spread, for from-scratch models (the model zoo's MSRA weights use 1.0)
SCRATCH_PIXEL_STD = [57.375, 57.120, 58.395]

#: PointRend's mask head (`model.mask_head=pointrend`) as its own Base-PointRend-RCNN-FPN sets it:
#: a coarse 7x7 head on p2 points, then the point head on p2; its training labels are sampled
#: from bitmasks
POINTREND_KEYS = {
    "MODEL.ROI_MASK_HEAD.NAME": "PointRendMaskHead", "MODEL.ROI_MASK_HEAD.POOLER_TYPE": "",
    "MODEL.ROI_MASK_HEAD.IN_FEATURES": ("p2",), "MODEL.ROI_MASK_HEAD.POINT_HEAD_ON": True,
    "MODEL.POINT_HEAD.IN_FEATURES": ("p2",), "INPUT.MASK_FORMAT": "bitmask",
}

#: our keys that are detectron2 keys under another name, copied as they are (types: the schema's)
D2_KEYS = {
    "solver.base_lr": "SOLVER.BASE_LR", "solver.ims_per_batch": "SOLVER.IMS_PER_BATCH",
    "solver.momentum": "SOLVER.MOMENTUM", "solver.weight_decay": "SOLVER.WEIGHT_DECAY",
    "solver.warmup_iters": "SOLVER.WARMUP_ITERS", "solver.checkpoint_period": "SOLVER.CHECKPOINT_PERIOD",
    "solver.amp": "SOLVER.AMP.ENABLED",
    "dataloader.num_workers": "DATALOADER.NUM_WORKERS", "test.eval_period": "TEST.EVAL_PERIOD",
    "test.nms_thresh": "MODEL.ROI_HEADS.NMS_THRESH_TEST", "test.score_thresh": "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
    "test.detections_per_image": "TEST.DETECTIONS_PER_IMAGE", "seed": "SEED",
}

#: the SPINE node: our keys that detectron2 has none for, each copied whole (keys upper-cased)
SPINE_KEYS = {
    "INPUT": "input", "AUG": "augment", "PHASES": "schedule.phases", "CLASS_MAP": "dataset.class_map",
    "HIGHRES": "test.highres", "SOFT_MASKS": "test.soft_masks", "FLIP": "test.flip", "FLIP_WHEN": "test.flip_when",
    "TEST_AMP": "test.amp", "TEST_AMP_CORNERS": "test.amp_corners", "CORNER_SIGMA": "model.corner_sigma",
    "TIEBREAK_TURNS": "test.tiebreak_turns", "NEGATIVE": "test.negative",
    "LOG_PERIOD": "log_period",
    "AVERAGE_ITERS": "solver.average_iters", "AVERAGE_PERIOD": "solver.average_period",
    "KEEP_START": "solver.keep_start", "TEST_PROCESSES": "test.processes",
    "MEASURE": "measure", "RARE": "dataloader.rare",
}

logger = logging.getLogger(__name__)


def to_yacs(value: Any) -> Any:
    """A plain config value in detectron2's style: mapping keys upper-cased, lists as tuples."""
    if isinstance(value, Mapping):
        return {str(k).upper(): to_yacs(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return tuple(to_yacs(v) for v in value)
    return value.value if isinstance(value, Enum) else value


def from_yacs(value: Any) -> Any:
    """The inverse of `to_yacs`: a SPINE node or value as the Hydra tree has it (plain types)."""
    if isinstance(value, Mapping):
        return {str(k).lower(): from_yacs(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [from_yacs(v) for v in value]
    return value


def spine_node(c: DictConfig) -> CfgNode:
    """The SPINE node of a training config tree: every `SPINE_KEYS` entry, copied whole."""
    def plain(path: str) -> Any:
        node = OmegaConf.select(c, path, throw_on_missing=False)
        if isinstance(node, (DictConfig, ListConfig)):
            return OmegaConf.to_container(node, resolve=True, enum_to_str=True)
        return node

    return CfgNode({key: to_yacs(plain(path)) for key, path in SPINE_KEYS.items()})


def add_spine_config(cfg: CfgNode) -> CfgNode:
    """Add spine_d2's own keys (defaults: spine_d2.schema) and PointRend's to a detectron2 config,
    in place."""
    add_pointrend_config(cfg)
    cfg.SPINE = spine_node(OmegaConf.structured(TrainConfig))
    return cfg


def load_d2_cfg(path: str) -> CfgNode:
    """A config dumped by a run (d2_config.yaml), reloaded with our keys."""
    cfg = add_spine_config(get_cfg())
    dumped = cfg.load_yaml_with_base(str(path))
    _upgrade_spine(dumped.get("SPINE") or {})
    kp = (dumped.get("MODEL") or {}).get("ROI_KEYPOINT_HEAD") or {}
    if kp.get("NAME") == corner_head.PARENT:  # dumped before CornerHead: the same weights, decoded faster
        kp["NAME"] = "CornerHead"
    cfg.merge_from_other_cfg(CfgNode(dumped))
    return cfg


def _upgrade_spine(spine: dict) -> None:
    """SPINE as dumped before the schema (MEASURE as JSON, PHASES as parallel tuples), in place."""
    if isinstance(spine.get("MEASURE"), str):
        spine["MEASURE"] = to_yacs(json.loads(spine["MEASURE"]))
    ph = spine.get("PHASES")
    if isinstance(ph, Mapping) and "NAMES" in ph:
        spine["PHASES"] = [{"NAME": n, "ITERS": i, "LR_FACTOR": f, "TRAINS": t}
                           for n, i, f, t in zip(ph["NAMES"], ph["ITERS"], ph["LR_FACTORS"], ph["TRAINS"])]


def phases_of(cfg: CfgNode) -> tuple[Phase, ...]:
    """The training phases a detectron2 config holds (SPINE.PHASES)."""
    return parse_phases(from_yacs(cfg.SPINE.PHASES))


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


def resolve_device(device: str) -> str:
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device}: no CUDA device here; use device=cpu or device=auto")
    return str(device)


def dataset_names(dataset_cfg: Mapping) -> dict:
    """The DatasetCatalog names spine_d2.data.register gives a dataset config's splits (and its
    `train_extra` folders, when it has them)."""
    name = dataset_cfg["name"]
    names = {"train": f"{name}_train", "test": f"{name}_test"}
    extra = dataset_cfg.get("train_extra") or ()
    if extra:
        names["train_extra"] = [f"{extra_name(name, i)}_all" for i in range(len(extra))]
    return names


class TrainConfigError(ValueError):
    """A value of the training config is out of range or at odds with another (the message names
    the key): reported to the user as one line, before anything is generated or trained."""


class RareConfigError(TrainConfigError):
    """dataloader.rare names no angle, or its kernel or cap is out of range."""


def checked_train_config(c: Any) -> DictConfig:
    """`c` (a composed training config, or its plain dict) checked against the schema and the
    value ranges OmegaConf cannot express; `TrainConfigError` (or the schedule's `ScheduleError`)
    naming the key."""
    c = OmegaConf.merge(OmegaConf.structured(TrainConfig), c)
    if not c.solver.base_lr > 0:
        raise TrainConfigError(f"solver.base_lr={c.solver.base_lr}: must be > 0")
    if not 0 <= c.solver.keep_start < 1:
        raise TrainConfigError(f"solver.keep_start={c.solver.keep_start}: must be in [0, 1)")
    if c.solver.keep_start > 0 and not c.model.weights:
        raise TrainConfigError(f"solver.keep_start={c.solver.keep_start} mixes the final weights with the "
                               f"starting ones: it needs model.weights (the run to fine-tune)")
    if c.augment.crop.enabled and min(c.augment.crop.height, c.augment.crop.width) < 32:
        raise TrainConfigError("augment.crop: height and width must be at least 32 px")
    if not 0 <= c.augment.rotation.min_deg <= c.augment.rotation.max_deg:
        raise TrainConfigError("augment.rotation: need 0 <= min_deg <= max_deg")
    total = sum(p.iters for p in parse_phases(OmegaConf.to_container(c.schedule.phases, resolve=True)))
    if not (0 <= c.solver.average_iters <= total and c.solver.average_period >= 1):
        raise TrainConfigError(f"solver.average_iters={c.solver.average_iters}, solver.average_period="
                               f"{c.solver.average_period}: need 0 <= average_iters <= the schedule's {total} "
                               f"steps and average_period >= 1")
    rare = c.dataloader.rare
    if rare.angle is not None and rare.angle not in ANGLE_NAMES:
        raise RareConfigError(f"dataloader.rare.angle={rare.angle}: not an angle (one of {', '.join(ANGLE_NAMES)})")
    if rare.angle is not None:
        try:
            check_params(rare.bandwidth_deg, rare.max_repeat)
        except ValueError as e:
            raise RareConfigError(f"dataloader.rare: {e}") from None
    return c


def build_d2_cfg(c: Any, datasets: Mapping | None = None, output_dir: str | None = None) -> CfgNode:
    """detectron2 CfgNode for the Hydra training config `c` (conf/config.yaml composed).

    `datasets`: {"train": name, "test": name} as returned by register_from_cfg (default: the names
    it gives `c.dataset`). `output_dir`: default `c.output_dir` (Hydra's run directory).
    """
    c = checked_train_config(c)
    cfg = add_spine_config(get_cfg())
    cfg.merge_from_file(model_zoo.get_config_file(c.model.base))
    phases = parse_phases(OmegaConf.to_container(c.schedule.phases, resolve=True))
    keys = {d2: OmegaConf.select(c, ours) for ours, d2 in D2_KEYS.items()}
    keys.update(schedule_keys(phases))
    keys.update(model_keys(c.model))
    keys.update(data_keys(c, datasets))
    keys["MODEL.DEVICE"] = resolve_device(c.device)
    keys["OUTPUT_DIR"] = str(output_dir if output_dir is not None else c.output_dir)
    for key, value in keys.items():
        _assign(cfg, key, value)
    cfg.SPINE = spine_node(c)
    d2 = OmegaConf.to_container(c.model.d2, resolve=True)
    cfg.merge_from_other_cfg(CfgNode(d2))
    if cfg.SOLVER.MAX_ITER != keys["SOLVER.MAX_ITER"] or tuple(cfg.SOLVER.STEPS) != keys["SOLVER.STEPS"]:
        raise ScheduleError("SOLVER.MAX_ITER/STEPS come from schedule.phases: set them there, not in model.d2")
    cfg.freeze()
    return cfg


def _assign(cfg: CfgNode, dotted: str, value: Any) -> None:
    """cfg.A.B.C = value for an existing key "A.B.C" (KeyError otherwise)."""
    *path, key = dotted.split(".")
    node = reduce(lambda n, k: n[k], path, cfg)
    if key not in node:
        raise KeyError(f"Non-existent config key: {dotted}")
    node[key] = value


def schedule_keys(phases: tuple[Phase, ...]) -> dict:
    """SOLVER.MAX_ITER, SOLVER.STEPS (the phase boundaries) and FREEZE_AT of a schedule."""
    return {
        "SOLVER.MAX_ITER": sum(p.iters for p in phases),
        "SOLVER.STEPS": boundaries(phases),
        # the optimizer must hold every parameter that trains in any phase: freeze at build time
        # only what no phase trains; the PhaseSchedule hook freezes the rest per phase
        "MODEL.BACKBONE.FREEZE_AT": min(p.freeze_level for p in phases),
        "SOLVER.REFERENCE_WORLD_SIZE": 0,
    }


def model_keys(m: DictConfig) -> dict:
    """The detectron2 keys of the `model` group's own keys: weights (and the norm and pixel spread
    of a model built from scratch), the mask head (Mask R-CNN's or PointRend's), and the corners'
    keypoint head."""
    weights = zoo.resolve(m.weights)  # zoo:<name>: a model shipped with spine_d2
    keys = {"MODEL.WEIGHTS": str(weights) if weights else "", "MODEL.MASK_ON": True}
    scratch_built = not weights or trained_from_scratch(str(weights))
    if weights and scratch_built:
        logger.info("model.weights=%s was trained from scratch: built as such, with "
                    "model.scratch_norm=%s and its pixel spread", weights, m.scratch_norm)
    if scratch_built:
        for head in ("RESNETS", "FPN", "ROI_BOX_HEAD", "ROI_MASK_HEAD"):
            keys[f"MODEL.{head}.NORM"] = m.scratch_norm
        keys["MODEL.PIXEL_STD"] = list(SCRATCH_PIXEL_STD)
    if m.mask_head == "pointrend":
        keys.update(POINTREND_KEYS)
    if m.corners:  # a keypoint head beside the mask head: the four corners of a body
        keys.update({"MODEL.KEYPOINT_ON": True, "MODEL.ROI_KEYPOINT_HEAD.NAME": "CornerHead",
                     "MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS": len(CORNERS),
                     # femoral heads and S1's lower corners have none
                     "MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE": 0,
                     "MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS": tuple(m.corner_head),
                     "TEST.KEYPOINT_OKS_SIGMAS": [0.025] * len(CORNERS)})
    return keys


def data_keys(c: DictConfig, datasets: Mapping | None) -> dict:
    """The classes, the registered datasets, and detectron2's own input size keys (for anything
    that reads them; our mapper uses SPINE.INPUT)."""
    names = dict(datasets) if datasets else dataset_names(c.dataset)
    short, long = sorted((c.input.height, c.input.width))
    classes = len(get_class_map(c.dataset.class_map).classes)
    return {"MODEL.ROI_HEADS.NUM_CLASSES": classes, "MODEL.POINT_HEAD.NUM_CLASSES": classes,
            "DATASETS.TRAIN": (names["train"], *names.get("train_extra", ())), "DATASETS.TEST": (names["test"],),
            "INPUT.MIN_SIZE_TRAIN": (short,), "INPUT.MIN_SIZE_TEST": short,
            "INPUT.MAX_SIZE_TRAIN": long, "INPUT.MAX_SIZE_TEST": long}
