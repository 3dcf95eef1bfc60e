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


def without_bf16_units(option: str, consequence: str) -> bool:
    """Whether this CPU lacks bfloat16 units; when it does, a warning that `option` (e.g. "test.amp")
    is on there, and `consequence`: what happens instead (e.g. "each step runs slower than in float32")."""
    if cpu_has_bf16():
        return False
    logging.getLogger(__name__).warning(
        f"{option}=true on a CPU without bfloat16 units (AVX512-BF16, AMX): {consequence}")
    return True

