"""Training hooks: the phase schedule (which parameters train), per-iteration seeding, NaN/Inf guard,
and the final weights: a mean over the last steps (`solver.average_iters`) and a share of the
starting ones (`solver.keep_start`).

All are right after `resume`. Most derive their state from `trainer.iter` or `MODEL.WEIGHTS`:
resuming inside phase 2 restores phase 2's trainable set (the optimizer, built over every
parameter, and the lr scheduler are restored by detectron2's checkpointer). The weight average's
running sum is saved with the trainer's state in each checkpoint (detectron2 keeps hooks'
`state_dict`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import HookBase
from detectron2.modeling import build_model
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng
from torch.nn.parallel import DistributedDataParallel

from spine_d2.engine.phases import Phase, describe, is_frozen, phase_index

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The loss or its gradients became NaN/Inf; raised before the optimizer step."""


def unwrap(model):
    return model.module if isinstance(model, DistributedDataParallel) else model


def apply_phase(model, phase: Phase) -> int:
    """Set `requires_grad` of the ResNet body's parameters for `phase`; return the number of
    trainable parameter elements. Parameters outside the body are left as they are."""
    model = unwrap(model)
    level = phase.freeze_level
    for name, p in model.named_parameters():
        if name.startswith("backbone.bottom_up."):
            p.requires_grad_(not is_frozen(name, level))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


class PhaseSchedule(HookBase):
    """Switches the trainable set at phase boundaries (the lr per phase is the scheduler's job).

    The optimizer is built over everything (detectron2's build_optimizer leaves out parameters that
    are frozen when it runs), so this hook freezes in `before_train`, from `trainer.iter`, and
    unfreezes at the switch; SGD skips parameters without gradient, so frozen ones do not move (no
    momentum, no weight decay). Puts `trainable_params` and `phase` into every metrics record.
    """

    def __init__(self, phases: tuple[Phase, ...], starts: tuple[int, ...]):
        self.phases, self.starts = tuple(phases), tuple(starts)
        self._index = None
        self._trainable = 0

    def before_train(self):
        self._check_optimizer()
        self._switch(self.trainer.iter, "resuming in" if self.trainer.iter > 0 else "starting")

    def before_step(self):
        if phase_index(self.starts, self.trainer.iter) != self._index:
            self._switch(self.trainer.iter, "switching to")
        storage = self.trainer.storage
        storage.put_scalar("trainable_params", self._trainable, smoothing_hint=False)
        storage.put_scalar("phase", self._index + 1, smoothing_hint=False)

    def _switch(self, iteration: int, verb: str):
        self._index = min(phase_index(self.starts, iteration), len(self.phases) - 1)
        phase = self.phases[self._index]
        self._trainable = apply_phase(self.trainer.model, phase)
        total = sum(p.numel() for p in unwrap(self.trainer.model).parameters())
        logger.info(
            f"{verb} phase {self._index + 1}/{len(self.phases)} '{phase.name}' at iteration "
            f"{iteration}: training {describe(phase.trains)}; {self._trainable:,} of {total:,} "
            f"parameters trainable; lr factor {phase.lr_factor:g}")

    def _check_optimizer(self):
        """Every parameter that some phase trains must be in the optimizer."""
        model = unwrap(self.trainer.model)
        held = {id(p) for g in self.trainer.optimizer.param_groups for p in g["params"]}
        level = min(p.freeze_level for p in self.phases)
        missing = [n for n, p in model.named_parameters() if id(p) not in held and not is_frozen(n, level)]
        if missing:
            raise RuntimeError(
                f"{len(missing)} parameters that a phase trains are not in the optimizer (e.g. "
                f"{missing[0]}): MODEL.BACKBONE.FREEZE_AT must not exceed the least-frozen phase")


class IterationSeed(HookBase):
    """Seeds from (seed, iteration, rank) every step, so that a resumed run draws what an
    uninterrupted one would (with DATALOADER.NUM_WORKERS=0): python and numpy before the step (the
    augmentations), torch right before the model's forward (proposal and ROI sampling; creating a
    data loader iterator draws from torch's RNG, which would otherwise shift the first step)."""

    def __init__(self, seed: int):
        self.seed = int(seed)
        self._handle = None

    def _step_seed(self) -> int:
        return (self.seed * 1_000_003 + self.trainer.iter * 7919 + comm.get_rank()) % (2**31 - 1)

    def before_train(self):
        if self.seed >= 0:
            self._handle = unwrap(self.trainer.model).register_forward_pre_hook(self._seed_torch)

    def _seed_torch(self, module, args):
        if module.training:
            torch.manual_seed(self._step_seed())

    def before_step(self):
        if self.seed >= 0:
            seed_all_rng(self._step_seed())

    def after_train(self):
        if self._handle is not None:
            self._handle.remove()
            self._handle = None


class NonFiniteGuard(HookBase):
    """Stops training when a gradient is NaN/Inf, before the optimizer step, so no weights are
    corrupted; the message names the last good checkpoint and how to go on.

    Register it on the inner SimpleTrainer (`trainer._trainer`): that is where detectron2 calls
    `after_backward`. Gradients are checked after DDP's all-reduce, so every rank stops together.
    """

    def __init__(self, checkpointer, output_dir: str):
        self.checkpointer, self.output_dir = checkpointer, str(output_dir)

    def after_backward(self):
        model = unwrap(self.trainer.model)
        bad = [n for n, p in model.named_parameters()
               if p.grad is not None and not bool(torch.isfinite(p.grad).all())]
        if not bad:
            return
        ckpt = self.checkpointer.get_checkpoint_file() or "none yet"
        out = self.output_dir
        raise NonFiniteLossError(
            f"Loss became NaN/Inf at iteration {self.trainer.iter} ({len(bad)} parameters with "
            f"non-finite gradients, e.g. {bad[0]}). Training stopped before the optimizer step; no "
            f"weights were updated. Last good checkpoint: {ckpt} (in {out}). Train again with a "
            f"lower solver.base_lr or more solver.warmup_iters (model.weights=<that checkpoint> "
            f"starts from its weights).")


def mixed_state(start: Mapping[str, torch.Tensor], trained: Mapping[str, torch.Tensor],
                keep: float) -> tuple[dict[str, torch.Tensor], list[str]]:
    """`keep` × start + (1 − keep) × trained for every floating-point tensor of `trained` that
    `start` holds with the same shape; the others stay as trained and are returned by name."""
    out, kept = {}, []
    for name, value in trained.items():
        s = start.get(name)
        if s is None or s.shape != value.shape or not value.is_floating_point():
            out[name] = value
            kept.append(name)
        else:
            out[name] = (keep * s.to(value) + (1.0 - keep) * value).to(value.dtype)
    return out, kept


class AverageWeights(HookBase):
    """Stochastic weight averaging over the run's last steps (Izmailov et al., UAI 2018; for Mask
    R-CNN, Zhang et al., "SWA Object Detection", 2020): the final weights are the mean of the
    weights after every `period`-th of the last `iters` steps, the last step included
    (SPINE.AVERAGE_ITERS, SPINE.AVERAGE_PERIOD); the last step's own weights are saved as
    `model_last_step.pth` first. Our models normalise with GN or FrozenBN, so no batch
    statistics need recomputing. Register it before detectron2's PeriodicCheckpointer and
    EvalHook, whose `after_step` must see the averaged weights.
    """

    def __init__(self, cfg):
        self.iters, self.period = int(cfg.SPINE.AVERAGE_ITERS), int(cfg.SPINE.AVERAGE_PERIOD)
        if not (0 < self.iters <= cfg.SOLVER.MAX_ITER and self.period >= 1):
            raise ValueError(f"SPINE.AVERAGE_ITERS={self.iters}, AVERAGE_PERIOD={self.period}: need "
                             f"0 < iters <= SOLVER.MAX_ITER ({cfg.SOLVER.MAX_ITER}) and period >= 1")
        self._sum, self._count = None, 0

    def after_step(self):
        left = self.trainer.max_iter - (self.trainer.iter + 1)  # steps still to run
        if left >= self.iters or left % self.period:
            return
        params = dict(unwrap(self.trainer.model).named_parameters())
        if self._sum is None:
            self._sum = {n: p.detach().float().clone() for n, p in params.items()}
        else:
            for n, p in params.items():
                self._sum[n] += p.detach().float()
        self._count += 1
        if left == 0:
            if comm.is_main_process():  # the last step's own weights (a checkpoint of the model alone)
                torch.save({"model": unwrap(self.trainer.model).state_dict(), "iteration": self.trainer.iter},
                           Path(self.trainer.cfg.OUTPUT_DIR) / "model_last_step.pth")
            with torch.no_grad():
                for n, p in params.items():
                    p.copy_(self._sum[n] / self._count)
            logger.info(f"final weights: the mean of {self._count} snapshots, every {self.period} "
                        f"steps over the last {self.iters} (solver.average_iters)")
            self._sum, self._count = None, 0

    def state_dict(self):
        return {"sum": self._sum, "count": self._count} if self._sum is not None else {}

    def load_state_dict(self, state):
        self._sum, self._count = state.get("sum"), int(state.get("count", 0))


class _StartCheckpointer(DetectionCheckpointer):
    """detectron2's checkpointer that also records which parameters the file could not fill."""

    def _log_incompatible_keys(self, incompatible) -> None:
        self.unfilled = set(incompatible.missing_keys) | {k for k, *_ in incompatible.incorrect_shapes}
        super()._log_incompatible_keys(incompatible)


class KeepStart(HookBase):
    """Weight-space ensembling of the fine-tuned model with its start (WiSE-FT, Wortsman et al.,
    CVPR 2022): after the last step, before the final checkpoint and test, each parameter becomes
    `keep` × its value in `weights` + (1 − `keep`) × its trained value (SPINE.KEEP_START,
    MODEL.WEIGHTS). Parameters the starting checkpoint does not fill (heads of another class
    count) stay as trained.

    Fine-tuning a converged model for a few hundred steps at batch 1 moves it to a noisier point
    nearby; the mean of the two keeps what the fine-tuning learned with less of its noise
    (benchmarks/README.md). The start is read again from `weights` (a path or URL, as detectron2
    loads it), so a resumed run mixes with the same start. Register it before detectron2's
    PeriodicCheckpointer and EvalHook, whose `after_step` must see the mixed weights.
    """

    def __init__(self, cfg):
        self.keep, self.weights, self.cfg = float(cfg.SPINE.KEEP_START), str(cfg.MODEL.WEIGHTS), cfg
        if not 0.0 < self.keep < 1.0:
            raise ValueError(f"SPINE.KEEP_START={self.keep}: must be in (0, 1)")
        self._start = None

    def before_train(self):
        replica = build_model(self.cfg)  # the same architecture, filled from the start
        loader = _StartCheckpointer(replica)
        loader.unfilled = set()
        loader.load(self.weights)
        self._start = {n: p.detach().clone() for n, p in replica.named_parameters() if n not in loader.unfilled}

    def after_step(self):
        if self.trainer.iter + 1 < self.trainer.max_iter:
            return
        model = unwrap(self.trainer.model)
        trained = {n: p.detach() for n, p in model.named_parameters()}
        mixed, kept = mixed_state(self._start, trained, self.keep)
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(mixed[name])
        logger.info(f"final weights: {self.keep:g} x the starting weights ({self.weights}) + "
                    f"{1 - self.keep:g} x the trained ones (solver.keep_start); {len(trained) - len(kept)} "
                    f"parameter tensors mixed, {len(kept)} not in the start kept as trained")
        self._start = None
