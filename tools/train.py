"""Train Mask R-CNN on a spine dataset: python tools/train.py [experiment=smoke|demo|paper] [key=value ...].

Registers the dataset (the default phantom is generated on first use), trains with SpineTrainer
through detectron2's launch() (launch.processes_per_machine=2: two processes, gloo on a CPU),
evaluates at the end and returns `optimized_metric` (Optuna's objective). Run directory:
outputs/train/<date>/<time>/ (config, train.log, metrics.json, TensorBoard events, checkpoints,
model_final.pth, final_metrics.json). Continue a stopped run: resume=true hydra.run.dir=<its dir>.
Sweeps: -m key=a,b writes <sweep dir>/sweep_summary.csv (conf/config.yaml has more examples).
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated")  # noise from d2
warnings.filterwarnings("ignore", message=r".*pkg_resources is deprecated")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import spine_d2.schema  # noqa: E402,F401 (the config schema, registered with Hydra)
from spine_d2.engine.run import USER_ERRORS, task_wrapper, train  # noqa: E402
from spine_d2.synthetic.generate import ensure_dataset  # noqa: E402


@task_wrapper
def run(cfg: DictConfig) -> float:
    ensure_dataset(cfg.dataset)
    return train(cfg)  # registers the dataset in every training process


def print_report(run_dir: str) -> None:
    """The run's report and its headline numbers beside the reference study's."""
    from spine_d2.evaluation.report import headline, latest_report

    report = latest_report(run_dir)
    if report is not None:
        print(f"report: {report / 'report.html'}")
        for line in headline(json.loads((report / "summary.json").read_text())):
            print("  " + line)


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    try:
        value = run(cfg)
        print_report(cfg.output_dir)
        return value
    except USER_ERRORS as e:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # recorded as a failed job; the sweep goes on
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
