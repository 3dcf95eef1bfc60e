"""The training phases of a schedule: what trains when, and at which lr factor (units: iterations).

A phase is data (conf/schedule/*.yaml): `name`, `iters`, `lr_factor` (times solver.base_lr) and
`trains`, one of
  - `heads`: FPN, RPN and ROI heads train; the ResNet body (`backbone.bottom_up`) is frozen
    (the study's phase 1);
  - `all`: every layer trains;
  - `resN+` (N = 2..5): ResNet stages N..5 train with FPN and heads; the stem and the stages
    below N stay frozen.
Freezing is expressed as a detectron2 freeze level (as `MODEL.BACKBONE.FREEZE_AT`): 0 = nothing,
1 = stem, k = stem and res2..res_k, 5 = the whole body.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

BODY = "backbone.bottom_up."
_STAGE_CUT = re.compile(r"^res([2-5])\+$")


class ScheduleError(ValueError):
    """A schedule in the config is not usable (the message names the phase and the problem)."""


@dataclass
class Phase:
    """One phase, as written in conf/schedule/*.yaml (the schema of `schedule.phases`)."""

    name: str
    iters: int
    lr_factor: float
    trains: str

    @property
    def freeze_level(self) -> int:
        return freeze_level(self.trains)


def freeze_level(trains: str) -> int:
    """detectron2 freeze level (0..5) of a `trains` value: heads -> 5, all -> 0, resN+ -> N - 1."""
    if trains == "heads":
        return 5
    if trains == "all":
        return 0
    m = _STAGE_CUT.match(str(trains))
    if m:
        return int(m.group(1)) - 1
    raise ScheduleError(f"trains={trains!r}: use 'heads', 'all' or a stage cut-off 'res2+'..'res5+'")


def parse_phases(phases: Iterable[Mapping]) -> tuple[Phase, ...]:
    """Validated phases from the config's `schedule.phases` list."""
    out = []
    for i, p in enumerate(phases or ()):
        try:
            phase = Phase(str(p["name"]), int(p["iters"]), float(p["lr_factor"]), str(p["trains"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ScheduleError(f"schedule.phases[{i}] needs name, iters, lr_factor, trains: {e}") from None
        if phase.iters <= 0 or phase.lr_factor <= 0:
            raise ScheduleError(f"schedule.phases[{i}] ({phase.name}): iters and lr_factor must be > 0")
        freeze_level(phase.trains)
        out.append(phase)
    if not out:
        raise ScheduleError("schedule.phases is empty: give at least one phase")
    return tuple(out)


def boundaries(phases: tuple[Phase, ...]) -> tuple[int, ...]:
    """Iterations at which phases 2.. start (detectron2 SOLVER.STEPS)."""
    ends, total = [], 0
    for p in phases[:-1]:
        total += p.iters
        ends.append(total)
    return tuple(ends)


def phase_index(starts: tuple[int, ...], iteration: int) -> int:
    """Index of the phase that iteration `iteration` (0-based) belongs to, given `boundaries`."""
    return sum(iteration >= s for s in starts)


def is_frozen(param_name: str, level: int) -> bool:
    """Whether a parameter of the detectron2 model (by its name) is frozen at a freeze level."""
    if level <= 0 or not param_name.startswith(BODY):
        return False
    if level >= 5:
        return True
    part = param_name[len(BODY):].split(".", 1)[0]  # stem, res2, ..., res5
    if part == "stem":
        return True
    m = re.match(r"^res(\d)$", part)
    return bool(m) and int(m.group(1)) <= level


def describe(trains: str) -> str:
    """Words for the log: what trains in a phase."""
    if trains == "heads":
        return "FPN, RPN and ROI heads (ResNet body frozen)"
    if trains == "all":
        return "all layers"
    return f"ResNet stages {trains[3]}-5, FPN, RPN and ROI heads (lower stages frozen)"
