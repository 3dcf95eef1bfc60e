"""Several processes for one job: detectron2's `launch()` on GPUs, or CPU processes (gloo) that
share the machine's cores. Training uses it with `launch.*`; evaluation with `test.processes`
(`spine_d2.engine.inference.evaluate_checkpoint`): on a CPU, two processes of one thread each
evaluate a split faster than one of two threads, because much of the per-image work (the
measurement, the test-time passes' bookkeeping) runs on one core (benchmarks/README.md).
"""
from __future__ import annotations

import os

import torch
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger


def share_cores(device: str) -> None:
    """In a group of CPU processes on one machine, give each its share of the cores as torch
    threads, so that they do not fight over them."""
    if device == "cpu" and comm.get_local_size() > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // comm.get_local_size()))


def worker_logging(output: str) -> None:
    """detectron2's and spine_d2's log records of a spawned process (they have no Hydra logging)
    to `output` (a folder: its log.txt, `.rankN` for the others; or a file), and rank 0's to the
    console too. Nothing to do in a single process."""
    if comm.get_world_size() > 1:
        rank = comm.get_rank()
        setup_logger(output, distributed_rank=rank, name="detectron2")
        setup_logger(output, distributed_rank=rank, name="spine_d2", abbrev_name="spine")


def tests_apart(test_processes: int, world_size: int) -> bool:
    """Whether a run's final test runs after its training, from model_final.pth, in processes of
    its own (`test.processes`; spine_d2.engine.run.final_test): when they are more than the
    training's one. A run trained in several processes tests in those."""
    return world_size == 1 and int(test_processes) > 1


def usable_processes(asked: int, device: str) -> int:
    """How many of `asked` processes detectron2's `launch` can run here: any number of CPU
    processes (gloo) where torch sees no GPU; on a GPU machine at most one per GPU, and one for a
    CPU model (launch then joins them with NCCL, which does not carry CPU tensors)."""
    if asked <= 1:
        return 1
    if not torch.cuda.is_available():
        return asked
    return 1 if device == "cpu" else min(asked, torch.cuda.device_count())
