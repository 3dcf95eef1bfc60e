"""Whether reduced precision pays on this CPU: bfloat16 autocast (`solver.amp` in training,
`test.amp` at test time) is faster only where the CPU computes bfloat16 in hardware; elsewhere
PyTorch emulates it and each pass runs slower than in float32. Training warns and runs as asked (its
precision shapes the weights it learns); the test time runs float32 there and says so."""
from __future__ import annotations

import logging

import torch


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX512-BF16 or AMX); True where torch
    cannot tell."""
    probes = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    probes = [p for p in probes if p is not None]
    return not probes or any(p() for p in probes)


def warn_without_bf16(option: str, what: str) -> None:
    """Log a warning naming `option` (e.g. "solver.amp") when this CPU has no bfloat16 units:
    `what` (e.g. "each step") runs slower than in float32 there."""
    if not cpu_has_bf16():
        logging.getLogger(__name__).warning(
            f"{option}=true on a CPU without bfloat16 units (AVX512-BF16, AMX): {what} runs slower "
            f"than in float32 (give {option}=false)")


def bf16_pays(option: str, what: str) -> bool:
    """Whether `option` (e.g. "test.amp") should run in bfloat16 here: True on a CPU with bfloat16
    units; else False, logged once per call naming the option, as `what` (e.g. "each pass") would
    run slower than in float32."""
    if cpu_has_bf16():
        return True
    logging.getLogger(__name__).warning(
        f"{option}=true on a CPU without bfloat16 units (AVX512-BF16, AMX): {what} would run slower "
        f"than in float32, so it runs in float32 (its numbers may differ a little from bfloat16's)")
    return False
