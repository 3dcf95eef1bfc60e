"""One training run from a composed Hydra config: launch the processes, train, evaluate, report.

`train(c)` runs in the Hydra job's process: it resolves the config (workers have no Hydra), calls
detectron2's `launch()` with the `launch.*` keys (one CPU process by default; gloo without a GPU),
tests a one-process run's model_final.pth in `test.processes` processes when that asks for more
(`final_test`; otherwise the trainer's last hook tests it in the training's processes), and
returns `optimized_metric` read from `<output_dir>/final_metrics.json`, written by rank 0.
`task_wrapper` logs a failure with its trace and re-raises, so Hydra records the job as failed and
a multirun goes on with the next job.

Nothing is overwritten: a directory that already holds a run (`RUN_MARKERS`) is trained into only
with `resume=true`. `RunDirGuard`, a Hydra callback (conf/config.yaml), refuses such a
`hydra.run.dir` (or a sweep directory holding runs) before Hydra writes anything there; `train`
checks again before it writes (for multirun jobs and callers without Hydra).
"""
from __future__ import annotations

import functools
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any, Callable

from detectron2.engine import launch
from detectron2.evaluation.testing import flatten_results_dict
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from spine_d2.engine.config import build_d2_cfg
from spine_d2.engine.processes import share_cores, tests_apart, worker_logging

log = logging.getLogger(__name__)


def _user_errors() -> tuple:
    """Errors that mean bad input or state, reported as one line rather than a trace."""
    from spine_d2.data.labelme import DatasetError
    from spine_d2.engine.config import TrainConfigError
    from spine_d2.engine.hooks import NonFiniteLossError
    from spine_d2.engine.phases import ScheduleError
    from spine_d2.engine.trainer import NothingToResumeError, WeightsError
    return (NothingToResumeError, NonFiniteLossError, ScheduleError, DatasetError, WeightsError, TrainConfigError)


class RunDirError(FileExistsError):
    """The output directory already holds a run and resume is not asked for."""


USER_ERRORS = _user_errors() + (RunDirError,)
FINAL_METRICS = "final_metrics.json"
#: Files a training run writes into its directory; any of them means the directory holds a run.
RUN_MARKERS = ("last_checkpoint", "d2_config.yaml", "metrics.json", FINAL_METRICS, "model_final.pth")


def run_markers(run_dir: str | Path) -> list[str]:
    """The files in `run_dir` that show it holds a training run (checkpoints included)."""
    d = Path(run_dir)
    if not d.is_dir():
        return []
    return [m for m in RUN_MARKERS if (d / m).exists()] + sorted(p.name for p in d.glob("model_0*.pth"))[:3]


def check_run_dir(run_dir: str | Path, resume: bool, key: str = "hydra.run.dir") -> None:
    """RunDirError when `run_dir` holds a run and `resume` is false: nothing may be overwritten."""
    found = run_markers(run_dir)
    if found and not resume:
        raise RunDirError(
            f"{key}={run_dir} already holds a run ({', '.join(found)}); nothing was written. Continue it "
            f"with resume=true, or give another {key} (or none: each run gets a new directory)")


class RunDirGuard(Callback):
    """Hydra callback: refuse a run directory (or a sweep directory) that holds a run, unless
    `resume=true`, before Hydra writes its config and log there. Exits with one line."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, OmegaConf.select(config, "hydra.run.dir"), "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(str(OmegaConf.select(config, "hydra.sweep.dir")))
        for job in sorted(p for p in sweep.iterdir() if p.is_dir()) if sweep.is_dir() else []:
            self._check(config, job, "hydra.sweep.dir", shown=sweep)

    @staticmethod
    def _check(config: DictConfig, run_dir, key: str, shown=None) -> None:
        try:
            check_run_dir(run_dir, bool(OmegaConf.select(config, "resume", default=False)), key)
        except RunDirError as e:
            msg = str(e) if shown is None else str(e).replace(f"{key}={run_dir}", f"{key}={shown} (job {Path(run_dir).name})")
            sys.exit(f"error: {msg}")


def task_wrapper(fn: Callable) -> Callable:
    """Log any exception of a training task (trace in the job's log), then re-raise it."""

    @functools.wraps(fn)
    def wrapped(c: DictConfig):
        try:
            return fn(c)
        except USER_ERRORS as e:  # bad input or state: the message says it all
            log.error(f"training failed: {type(e).__name__}: {e}")
            raise
        except Exception as e:
            log.exception(f"training failed: {type(e).__name__}: {e}")
            raise
        finally:
            for h in logging.getLogger().handlers:
                h.flush()

    return wrapped


def train(c: DictConfig, register: Callable | None = None) -> float:
    """Train and evaluate as configured; return `c.optimized_metric` (NaN when not evaluated).

    `register(dataset_cfg) -> {"train": name, "test": name}` registers the dataset in each process
    (default: spine_d2.data.register.register_from_cfg); it must be picklable for launch > 1.
    """
    plain = OmegaConf.to_container(c, resolve=True, enum_to_str=True)  # plain data for the workers
    out = Path(plain["output_dir"])
    check_run_dir(out, bool(plain.get("resume", False)))
    out.mkdir(parents=True, exist_ok=True)
    (out / FINAL_METRICS).unlink(missing_ok=True)
    L = plain["launch"]
    world = int(L["processes_per_machine"]) * int(L["num_machines"])
    launch(train_worker, int(L["processes_per_machine"]), num_machines=int(L["num_machines"]),
           machine_rank=int(L["machine_rank"]), dist_url=str(L["dist_url"]), args=(plain, register))
    if not (out / FINAL_METRICS).exists():
        raise RuntimeError(f"training ended without {out / FINAL_METRICS}: see the log in {out}")
    if tests_apart(plain["test"]["processes"], world):
        final_test(out, plain, register)
    metrics = json.loads((out / FINAL_METRICS).read_text())["metrics"]
    value = metrics.get(plain["optimized_metric"], math.nan)
    log.info(f"{plain['optimized_metric']} = {value}")
    return float(value)


def train_worker(plain: dict, register: Callable | None = None) -> None:
    """One process of a (possibly distributed) run; `plain` is the resolved config."""
    from spine_d2.engine.trainer import SpineTrainer  # noqa: import after launch's process set-up

    c = OmegaConf.create(plain)
    rank = comm.get_rank()
    worker_logging(plain["output_dir"])
    if register is None:
        from spine_d2.data.register import register_from_cfg as register
    datasets = register(c.dataset)
    cfg = build_d2_cfg(c, datasets=datasets)
    share_cores(cfg.MODEL.DEVICE)
    if comm.is_main_process():
        Path(cfg.OUTPUT_DIR, "d2_config.yaml").write_text(cfg.dump())
    seed_all_rng(None if cfg.SEED < 0 else cfg.SEED + rank)

    trainer = SpineTrainer(cfg)
    trainer.resume_or_load(resume=bool(c.resume))
    results = trainer.train()
    if results is None:
        results = getattr(trainer, "_last_eval_results", None) or {}
    if comm.is_main_process():
        write_final_metrics(cfg.OUTPUT_DIR, trainer, results)
    comm.synchronize()


def final_test(out: Path, plain: dict, register: Callable | None = None) -> dict:
    """The final test of a run trained in one process, in `test.processes` processes: its
    model_final.pth on the test split, the report in `out`/eval as the in-process test writes it;
    the numbers join final_metrics.json (not metrics.json or TensorBoard's events)."""
    from spine_d2.engine.inference import RUN_CONFIG, config_for_checkpoint, evaluate_checkpoint
    from spine_d2.engine.config import from_yacs

    cfg = config_for_checkpoint(out / "model_final.pth", str(plain["device"]))
    results = evaluate_checkpoint(cfg, cfg.DATASETS.TEST[0], out / "eval", from_yacs(cfg.SPINE.MEASURE),
                                  config_text=(out / RUN_CONFIG).read_text(),
                                  processes=int(plain["test"]["processes"]), dataset_cfg=plain["dataset"],
                                  register=register)
    results.pop("report_dir", None)
    record = json.loads((out / FINAL_METRICS).read_text())
    record["metrics"].update({k: float(v) for k, v in flatten_results_dict(results).items()})
    (out / FINAL_METRICS).write_text(json.dumps(record, indent=1))
    return results


def write_final_metrics(output_dir: str, trainer, results: dict) -> Path:
    """<output_dir>/final_metrics.json: iteration, flattened evaluation metrics and last losses."""
    metrics = {k: float(v) for k, v in flatten_results_dict(results or {}).items()}
    storage = getattr(trainer, "storage", None)
    if storage is not None:
        for k in ("total_loss", "trainable_params"):
            if k in storage.histories():
                metrics.setdefault(k, float(storage.history(k).latest()))
    path = Path(output_dir) / FINAL_METRICS
    path.write_text(json.dumps({"iteration": int(trainer.iter), "metrics": metrics}, indent=1))
    return path
