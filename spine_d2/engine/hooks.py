"""Training hooks: the phase schedule (which parameters train), per-iteration seeding, NaN/Inf guard.

All three derive their state from `trainer.iter`, so they need nothing in a checkpoint and are right
after `resume`: resuming inside phase 2 restores phase 2's trainable set (the optimizer, built over
every parameter, and the lr scheduler are restored by detectron2's checkpointer).
"""
from __future__ import annotations

import logging

import torch
from detectron2.engine import HookBase
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
