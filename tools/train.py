"""Train Mask R-CNN on a spine dataset: python tools/train.py [experiment=smoke|demo|paper] [key=value ...].

Registers the dataset (the default phantom, and any phantom among `dataset.train_extra`'s folders, is
generated on first use), trains with SpineTrainer through detectron2's launch()
(launch.processes_per_machine=2: two processes, gloo on a CPU),
evaluates at the end and returns `optimized_metric` (Optuna's objective). Run directory:
outputs/train/<date>/<time>/ (config, train.log, metrics.json, TensorBoard events, checkpoints,
model_final.pth, final_metrics.json). Continue a stopped run: resume=true hydra.run.dir=<its dir>.
Sweeps: -m key=a,b writes <sweep dir>/sweep_summary.csv (conf/config.yaml has more examples).
"""
import sys

from spine_d2.library_warnings import hide_library_warnings

hide_library_warnings()

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

import spine_d2.schema  # noqa: E402,F401 (the config schema, registered with Hydra)
from spine_d2.engine.config import checked_train_config  # noqa: E402
from spine_d2.engine.run import USER_ERRORS, task_wrapper, train  # noqa: E402
from spine_d2.synthetic.generate import ensure_dataset  # noqa: E402


@task_wrapper
def run(cfg: DictConfig) -> float:
    checked_train_config(cfg)  # a bad value stops here, before any phantom is generated
    ensure_dataset(cfg.dataset, train_extra=True)
    return train(cfg)  # registers the dataset in every training process


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    try:
        value = run(cfg)
        from spine_d2.evaluation.report import latest_report, print_headline

        print_headline(latest_report(cfg.output_dir))
        return value
    except USER_ERRORS as e:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # recorded as a failed job; the sweep goes on
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
