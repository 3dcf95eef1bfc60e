"""SpineTrainer: detectron2's DefaultTrainer with our data mapper, phases, evaluators and hooks (iterations).

Classmethods are overridden (model seeded from SEED, our mapper in both loaders, COCO evaluation
with use_fast_impl=False, lr per phase, our hooks), plus `__init__` for one line
(DistributedDataParallel on the CPU takes `device_ids=None`, and phases that freeze need
`find_unused_parameters=True`) and `resume_or_load` (clear error when there is nothing to resume;
the train sampler continues where the checkpoint stopped).
"""
from __future__ import annotations

import copy
import itertools
import logging
import os
import time
import weakref
from typing import Mapping

import numpy as np
import torch

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import (MetadataCatalog, build_detection_test_loader, build_detection_train_loader,
                             get_detection_dataset_dicts)
from detectron2.data.samplers import RepeatFactorTrainingSampler, TrainingSampler
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase, hooks
from detectron2.engine.defaults import create_ddp_model
from detectron2.solver import LRMultiplier, WarmupParamScheduler
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger
from fvcore.common.param_scheduler import MultiStepParamScheduler

from spine_d2.data.keypoints import add_keypoints
from spine_d2.data.measurements import record_stem
from spine_d2.data.rare import rarity_repeats
from spine_d2.data.transforms import build_mapper
from spine_d2.engine.config import from_yacs, phases_of
from spine_d2.engine.hooks import AverageWeights, IterationSeed, KeepStart, NonFiniteGuard, PhaseSchedule
from spine_d2.engine.precision import without_bf16_units
from spine_d2.engine.processes import tests_apart


class NothingToResumeError(FileNotFoundError):
    """resume=true but the output directory holds no checkpoint."""


class WeightsError(FileNotFoundError):
    """model.weights names a file that is not there or a URL that cannot be fetched."""


class ResumableTrainingSampler(TrainingSampler):
    """detectron2's seeded infinite TrainingSampler that skips the first `start` indices of this
    rank's stream (what the checkpointed iterations consumed)."""

    def __init__(self, size: int, seed: int, start: int = 0):
        super().__init__(size, shuffle=True, seed=seed)
        self._skip = int(start)

    def __iter__(self):
        yield from itertools.islice(super().__iter__(), self._skip, None)


class ResumableRepeatSampler(RepeatFactorTrainingSampler):
    """detectron2's seeded infinite RepeatFactorTrainingSampler (film i drawn `repeat_factors[i]`
    times per epoch, stochastically rounded) that skips the first `start` indices, as above."""

    def __init__(self, repeat_factors, seed: int, start: int = 0):
        super().__init__(torch.as_tensor(repeat_factors, dtype=torch.float32), shuffle=True, seed=seed)
        self._skip = int(start)

    def __iter__(self):
        yield from itertools.islice(super().__iter__(), self._skip, None)


def rare_repeats(cfg, parts: Mapping[str, list[dict]]):
    """Per-film repeat factors from `dataloader.rare` (None when off; checked by
    `checked_train_config`), in the order of `parts`' films ({registered name: its training
    records}, in order): the angle's values from each dataset's measurements.csv
    (`spine_d2.data.rare.rarity_repeats`)."""
    rare = cfg.SPINE.get("RARE")
    if rare is None or not rare.ANGLE:
        return None
    values = []
    for name, records in parts.items():
        table = MetadataCatalog.get(name).get("measurements", None) or {}
        values += [table.get(record_stem(r), {}).get(rare.ANGLE, float("nan")) for r in records]
    factors = rarity_repeats(values, rare.BANDWIDTH_DEG, rare.MAX_REPEAT)
    logging.getLogger(__name__).info(
        "dataloader.rare: %d of %d training films have %s; %d drawn more than once per epoch "
        "(up to %.2fx, %.0f draws per epoch)", int(np.isfinite(values).sum()), len(values), rare.ANGLE,
        int((factors > 1.0).sum()), factors.max(initial=1.0), factors.sum())
    return factors


class CPUAutocastTrainer(SimpleTrainer):
    """SimpleTrainer with the forward pass and the losses under CPU autocast to bfloat16
    (`solver.amp` on a CPU model; detectron2's AMPTrainer is CUDA's fp16 with a grad scaler).
    bfloat16 has float32's range, so no loss scaling; the weights and the optimizer stay float32.
    Faster only on CPUs with bfloat16 units (AVX512-BF16, AMX); slower elsewhere."""

    def run_step(self):
        assert self.model.training, "[CPUAutocastTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        if self.zero_grad_before_forward:
            self.optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss_dict = self.model(data)
            if isinstance(loss_dict, torch.Tensor):
                loss_dict = {"total_loss": loss_dict}
            losses = sum(loss_dict.values())
        if not self.zero_grad_before_forward:
            self.optimizer.zero_grad()
        losses.backward()
        self.after_backward()
        self._write_metrics(loss_dict, data_time)
        self.optimizer.step()


def inner_trainer(cfg) -> type[SimpleTrainer]:
    """The loop that runs each step: float32, or mixed precision (`SOLVER.AMP.ENABLED`) as the
    device allows it: fp16 on CUDA, bf16 on the CPU."""
    if not cfg.SOLVER.AMP.ENABLED:
        return SimpleTrainer
    if torch.device(cfg.MODEL.DEVICE).type != "cpu":
        return AMPTrainer
    without_bf16_units("solver.amp", "each step runs slower than in float32 (give solver.amp=false)")
    return CPUAutocastTrainer


class SpineTrainer(DefaultTrainer):
    def __init__(self, cfg):
        # DefaultTrainer.__init__ (detectron2 0.7) line for line, except two things no classmethod
        # reaches: it calls the module function create_ddp_model(model, broadcast_buffers=False),
        # whose default device_ids=[local_rank] DistributedDataParallel rejects for a CPU model, and
        # which leaves out find_unused_parameters, without which a phase that freezes the body
        # fails in DDP's reduction; and the NaN/Inf guard must be a hook of the inner trainer (the
        # one that calls after_backward). The rest is overridden as classmethods (model, loader
        # with the resumable seeded sampler, lr scheduler, evaluator, hooks with the phases).
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = create_ddp_model(model, broadcast_buffers=False, **self.ddp_arguments(cfg))
        self._trainer = inner_trainer(cfg)(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = DetectionCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())
        # the inner trainer is the one that calls after_backward hooks
        self._trainer.register_hooks([NonFiniteGuard(self.checkpointer, cfg.OUTPUT_DIR)])

    @classmethod
    def build_model(cls, cfg):
        """detectron2's build_model, initialised from SEED (when >= 0): the same config, the same
        initial weights."""
        if cfg.SEED >= 0:
            seed_all_rng(cfg.SEED)
        return super().build_model(cfg)

    @classmethod
    def ddp_arguments(cls, cfg) -> dict:
        levels = {p.freeze_level for p in phases_of(cfg)}
        return {
            "device_ids": None if cfg.MODEL.DEVICE == "cpu" else [comm.get_local_rank()],
            "find_unused_parameters": len(levels) > 1,
        }

    def resume_or_load(self, resume=True):
        if resume and not self.checkpointer.has_checkpoint():
            raise NothingToResumeError(
                f"resume=true but {self.cfg.OUTPUT_DIR} has no last_checkpoint: a new run directory "
                f"starts at 0. Pass the interrupted run's directory: resume=true "
                f"hydra.run.dir=<that run's directory>")
        if self.cfg.MODEL.WEIGHTS and not (resume and self.checkpointer.has_checkpoint()):
            self._check_weights(self.cfg.MODEL.WEIGHTS)
        super().resume_or_load(resume=resume)
        if self.start_iter > 0:  # continue the sampler's stream where the checkpoint stopped
            self._trainer.reset_data_loader(lambda: self.build_train_loader(self.cfg, self.start_iter))

    def _check_weights(self, weights: str) -> None:
        """Fetch (URL) or find (path) the initial weights first, so that a missing file or an
        offline machine gives one clear line instead of a trace from inside the checkpointer."""
        try:
            local = self.checkpointer.path_manager.get_local_path(weights)
        except Exception as e:  # no network, HTTP error, unknown scheme: many types
            raise WeightsError(
                f"model.weights={weights}: could not be fetched ({type(e).__name__}: {e}). Offline? "
                f"Download it on another machine and give model.weights=PATH, or model.weights=null "
                f"to train from scratch") from None
        if not os.path.isfile(local):
            raise WeightsError(f"model.weights={weights}: no such file (a detectron2 model-zoo .pkl or "
                               f"a .pth checkpoint; model.weights=null trains from scratch)")

    @classmethod
    def build_train_loader(cls, cfg, start_iter: int = 0):
        # each training dataset apart (the train split, then any dataset.train_extra folders), so
        # that a film's measurements are looked up in its own dataset (stems may repeat across them)
        parts = {name: get_detection_dataset_dicts(name, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS)
                 for name in cfg.DATASETS.TRAIN}
        dataset = [r for records in parts.values() for r in records]
        if cfg.MODEL.KEYPOINT_ON:  # the corners the keypoint head learns (spine_d2.data.keypoints)
            classes = MetadataCatalog.get(cfg.DATASETS.TRAIN[0]).thing_classes
            dataset = [add_keypoints(copy.deepcopy(r), classes) for r in dataset]
        per_rank = cfg.SOLVER.IMS_PER_BATCH // comm.get_world_size()
        seed = cfg.SEED if cfg.SEED >= 0 else comm.shared_random_seed()
        factors = rare_repeats(cfg, parts)
        sampler = (ResumableTrainingSampler(len(dataset), seed=seed, start=start_iter * per_rank) if factors is None
                   else ResumableRepeatSampler(factors, seed=seed, start=start_iter * per_rank))
        return build_detection_train_loader(cfg, dataset=dataset, mapper=build_mapper(cfg, True), sampler=sampler)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_detection_test_loader(cfg, dataset_name, mapper=build_mapper(cfg, False))

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """detectron2's test, with the test-time passes the config asks for (the soft-mask
        outlines, the high-resolution pass, the mirrored run: `spine_d2.engine.test_time`)."""
        from spine_d2.engine.test_time import for_evaluation

        return super().test(cfg, for_evaluation(model, cfg), evaluators)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        """SpineEvaluator: COCO AP (detectron2's COCOEvaluator, use_fast_impl=False), Dice/IoU and
        the angles against the specialists, with the report in OUTPUT_DIR/eval."""
        from spine_d2.engine.inference import trained_on
        from spine_d2.evaluation.evaluator import SpineEvaluator

        out = output_folder or os.path.join(cfg.OUTPUT_DIR, "eval")
        return SpineEvaluator(dataset_name, from_yacs(cfg.SPINE.MEASURE), out, config_text=cfg.dump(),
                              trained_on=trained_on(cfg.OUTPUT_DIR))

    @classmethod
    def build_lr_scheduler(cls, cfg, optimizer):
        """lr = base_lr x phase lr_factor, phases switching at SOLVER.STEPS, after a linear warm-up."""
        max_iter = cfg.SOLVER.MAX_ITER
        sched = MultiStepParamScheduler(
            values=[p.lr_factor for p in phases_of(cfg)], milestones=list(cfg.SOLVER.STEPS), num_updates=max_iter)
        sched = WarmupParamScheduler(
            sched, cfg.SOLVER.WARMUP_FACTOR, min(cfg.SOLVER.WARMUP_ITERS / max_iter, 1.0),
            cfg.SOLVER.WARMUP_METHOD, cfg.SOLVER.RESCALE_INTERVAL)
        return LRMultiplier(optimizer, multiplier=sched, max_iter=max_iter)

    def build_hooks(self):
        phases = phases_of(self.cfg)
        ret = [PhaseSchedule(phases, tuple(self.cfg.SOLVER.STEPS)), IterationSeed(self.cfg.SEED)]
        if self.cfg.SPINE.AVERAGE_ITERS > 0:  # these two before the checkpointer and the final test
            ret.append(AverageWeights(self.cfg))
        if self.cfg.SPINE.KEEP_START > 0:
            ret.append(KeepStart(self.cfg))
        for h in super().build_hooks():
            if isinstance(h, hooks.PeriodicWriter):  # progress line with ETA + metrics.json records
                h = hooks.PeriodicWriter(self.build_writers(), period=self.cfg.SPINE.LOG_PERIOD)
            if isinstance(h, hooks.EvalHook) and tests_apart(self.cfg.SPINE.TEST_PROCESSES, comm.get_world_size()):
                h = hooks.EvalHook(self.cfg.TEST.EVAL_PERIOD, self._test_and_keep, eval_after_train=False)
            ret.append(h)
        return ret

    def _test_and_keep(self):
        """DefaultTrainer's test_and_save_results, for the EvalHook that leaves out the final test."""
        self._last_eval_results = self.test(self.cfg, self.model)
        return self._last_eval_results
