"""The femoral heads a measurement uses: the two best scored circles, kept only where the hip axis can be this S1's; image frame, px.

On a lateral film the two heads are seen apart (the X-ray's magnification differs); PT and PI use
the hip axis, the midpoint of their centres. It lies caudal of the S1 endplate's midpoint, about
3.3 endplate lengths away (Legaye 2013; shared/PHANTOM.md): heads that cannot be this S1's are
left out with the reason.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from spine_d2.measure.frame_angles import HEADS_NOT_IN_VIEW
from spine_d2.measure.instances import Instance, circle_of


def best_heads(kept: Sequence[Instance], head_indices: Sequence[int], input_index: Sequence[int],
               min_radius: float, flags: list[str]) -> list[tuple[float, float, float]]:
    """The circles (cx, cy, r) of the two best scored usable heads among `kept[head_indices]`;
    `input_index`: each kept instance's index in the input (for the flags)."""
    heads = []
    for i in head_indices:
        circ = circle_of(kept[i])
        if circ is None or circ[2] < min_radius:
            flags.append(f"femoral head #{input_index[i]} unusable outline: ignored")
            continue
        heads.append((kept[i].score, circ))
    if len(heads) > 2:
        flags.append(f"{len(heads)} femoral heads: kept the two best scored")
    return [h for _, h in sorted(heads, key=lambda t: -t[0])[:2]]


def implausible_hip_axis(s1_superior: np.ndarray, axis: np.ndarray, up: np.ndarray,
                         min_ratio: float = 1.0, max_ratio: float = 6.0) -> str:
    """Why a hip axis cannot be the one of this S1 endplate (image frame, px), or "" if it can:
    accepted caudal of the endplate's midpoint (`up`: cranial), `min_ratio`–`max_ratio` lengths away."""
    mid = s1_superior.mean(axis=0)
    length = float(np.linalg.norm(s1_superior[0] - s1_superior[1]))
    v = np.asarray(axis, float) - mid
    if float(v @ up) >= 0:
        return "hip axis not caudal of the S1 endplate"
    ratio = float(np.linalg.norm(v)) / length if length > 0 else math.inf
    if not min_ratio <= ratio <= max_ratio:
        return f"hip axis {ratio:.1f} S1-endplate lengths from S1 (expected {min_ratio:g}–{max_ratio:g})"
    return ""


def plausible_heads(heads: list, s1_superior: np.ndarray | None, up: np.ndarray,
                    flags: list[str]) -> tuple[list, np.ndarray | None, str]:
    """(heads, hip axis or None, why none are used) after the hip-axis check against the S1
    endplate (when there is one)."""
    axis = np.mean([h[:2] for h in heads], axis=0) if heads else None
    if axis is not None and s1_superior is not None:
        why = implausible_hip_axis(np.asarray(s1_superior, float), axis, up)
        if why:
            flags.append(f"femoral heads ignored: {why}")
            return [], None, f"femoral heads implausibly placed: {why}"
    return heads, axis, HEADS_NOT_IN_VIEW
