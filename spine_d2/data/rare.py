"""Rare anatomies drawn more often in training: per-film repeat factors from one angle's spread (degrees).

A model trained on films drawn uniformly sees an anatomy at the tail of the distribution (a
sacrum steeper than 60°, where a steep L5 looks like an ordinary S1) a few times per epoch and
learns the common case. Label-distribution smoothing (Yang et al., "Delving into Deep Imbalanced
Regression", ICML 2021) weighs each sample by the inverse square root of its label's density,
smoothed by a Gaussian kernel; here that weight is a repeat factor for detectron2's
`RepeatFactorTrainingSampler` (stochastic rounding per epoch): films as common as the median
film or more are drawn once per epoch, rarer ones up to `max_repeat` times. A film without the
angle (NaN: not measured) is drawn once.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def check_params(bandwidth_deg: float, max_repeat: float) -> None:
    """ValueError unless the kernel is wide (> 0°) and the cap draws each film at least once."""
    if not (bandwidth_deg > 0 and max_repeat >= 1):
        raise ValueError(f"need bandwidth_deg > 0 and max_repeat >= 1, got {bandwidth_deg} and {max_repeat}")


def rarity_repeats(values: Sequence[float], bandwidth_deg: float = 5.0, max_repeat: float = 3.0) -> np.ndarray:
    """Repeat factors (≥ 1, ≤ `max_repeat`) per film from its angle `values` in degrees (NaN: 1).

    The density at each film's value is a Gaussian kernel sum over all films with the angle
    (`bandwidth_deg` its sigma); the factor is sqrt(median density / density), clipped."""
    check_params(bandwidth_deg, max_repeat)
    v = np.asarray(values, dtype=float)
    out = np.ones(len(v))
    ok = np.isfinite(v)
    if ok.sum() < 2:
        return out
    x = v[ok]
    density = np.exp(-0.5 * ((x[:, None] - x[None, :]) / bandwidth_deg) ** 2).sum(axis=1)
    out[ok] = np.clip(np.sqrt(np.median(density) / density), 1.0, max_repeat)
    return out
