"""Removal of stray and duplicate instances before naming; image frame, pixels.

Four steps, each removal recorded with its reason:

1. fragments: a mask in several pieces keeps its largest piece;
2. too small: a vertebra whose area is below `min_area` pixels or `min_area_fraction` of the
   median vertebra area;
3. duplicates: two instances of the same kind (vertebra/vertebra, head/head) overlapping by more
   than `duplicate_overlap` of the smaller one — the lower score goes. Femoral heads use the
   much higher `duplicate_overlap_heads`: on a lateral film the two heads overlap by design;
4. the study's slope-change de-noising: with thoracic and lumbar centres (the study's chain; the
   sacrum's centre lies far back when the sacral slope is steep) ordered from top to bottom, the
   slope of each step between neighbours is the sideways offset per step down (dx/dy, image
   frame). A centre where the slope changes by more than `slope_threshold` (1.7 = tan 60°: the
   spine turns by more than 60° there) — or, at either end, whose one step is steeper than it —
   is noise; the worst is removed first (the one whose removal leaves the straightest chain),
   then the chain is checked again.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from spine_d2.measure.instances import Instance, largest_component


@dataclass(frozen=True)
class Removal:
    """An instance taken out by the clean-up: its index in the input, class, level label and why."""

    index: int
    class_name: str
    reason: str
    label: str | None = None

    def __str__(self) -> str:
        who = self.label or self.class_name
        return f"#{self.index} {who}: {self.reason}"


def _kind(inst: Instance) -> str:
    return "vertebra" if inst.is_vertebra else inst.region


def clean_instances(
    instances: Sequence[Instance],
    image_shape: Sequence[int],
    slope_threshold: float = 1.7,
    duplicate_overlap: float = 0.5,
    min_area: float = 30.0,
    min_area_fraction: float = 0.2,
    duplicate_overlap_heads: float = 0.95,
) -> tuple[list[int], list[Instance], list[Removal]]:
    """Clean `instances`; returns (kept input indices, kept instances, removals).

    Kept instances may differ from the input only in having lost mask fragments (noted on them).
    """
    kept: dict[int, Instance] = {}
    removals: list[Removal] = []

    def drop(i: int, reason: str):
        inst = kept.pop(i)
        removals.append(Removal(i, inst.class_name, reason, inst.label))

    for i, inst in enumerate(instances):
        if inst.mask is not None:
            sub, x0, y0 = inst.local_mask()
            if not sub.any():
                removals.append(Removal(i, inst.class_name, "empty mask", inst.label))
                continue
            part, pieces, pixels = largest_component(sub)
            if pieces:
                mask = np.zeros_like(inst.mask)
                mask[y0:y0 + part.shape[0], x0:x0 + part.shape[1]] = part
                inst = replace(inst, mask=mask, notes=inst.notes + [
                    f"dropped {pieces} stray fragment(s), {pixels} px"])
        kept[i] = inst

    # 2. too small
    areas = {i: inst.area() for i, inst in kept.items()}
    vert_areas = [areas[i] for i, inst in kept.items() if inst.is_vertebra]
    median = float(np.median(vert_areas)) if vert_areas else 0.0
    for i in list(kept):
        if not kept[i].is_vertebra:
            if areas[i] < min_area:
                drop(i, f"mask too small ({areas[i]:.0f} px < {min_area:g})")
            continue
        if areas[i] < min_area:
            drop(i, f"mask too small ({areas[i]:.0f} px < {min_area:g})")
        elif areas[i] < min_area_fraction * median:
            drop(i, f"mask too small ({areas[i]:.0f} px < {min_area_fraction:g} × median {median:.0f} px)")

    # 3. duplicates, highest score first
    order = sorted(kept, key=lambda i: (-kept[i].score, -areas[i], i))
    for pos, i in enumerate(order):
        if i not in kept:
            continue
        for j in order[pos + 1:]:
            if j not in kept or _kind(kept[j]) != _kind(kept[i]):
                continue
            limit = duplicate_overlap_heads if _kind(kept[i]) == "femoral_head" else duplicate_overlap
            overlap = mask_overlap(kept[i], kept[j])
            if overlap > limit:
                drop(j, f"duplicate of #{i} (overlap {overlap:.2f} > {limit:g}, "
                        f"score {kept[j].score:.2f} ≤ {kept[i].score:.2f})")

    # 4. slope change along the chain of vertebra centres
    chain = [i for i in kept if kept[i].region in ("thoracic", "lumbar")]
    centres = {i: kept[i].centre() for i in chain}
    while len(chain) >= 3:
        chain.sort(key=lambda i: centres[i][1])
        changes = slope_changes(np.array([centres[i] for i in chain]))
        worst = float(np.max(changes))
        if worst <= slope_threshold:
            break
        candidates = [k for k, c in enumerate(changes) if c > slope_threshold]
        rest = {k: float(np.max(slope_changes(np.array([centres[i] for n, i in enumerate(chain) if n != k]))))
                for k in candidates}
        k = min(candidates, key=lambda k: (rest[k], kept[chain[k]].score))
        i = chain.pop(k)
        drop(i, f"slope change {changes[k]:.2f} > {slope_threshold:g} between neighbouring centres")

    idx = sorted(kept)
    return idx, [kept[i] for i in idx], removals


def mask_overlap(a: Instance, b: Instance) -> float:
    """Shared pixels over the smaller instance's pixels (0 when their boxes do not meet)."""
    ax0, ay0, ax1, ay1 = a.box()
    bx0, by0, bx1, by1 = b.box()
    x0, y0, x1, y1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
    if x0 >= x1 or y0 >= y1:
        return 0.0
    ma, mb = a.local_mask()[0], b.local_mask()[0]
    inter = np.logical_and(ma[y0 - ay0:y1 - ay0, x0 - ax0:x1 - ax0], mb[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0]).sum()
    small = min(ma.sum(), mb.sum())
    return float(inter / small) if small else 0.0


def slope_changes(centres: np.ndarray) -> np.ndarray:
    """Per centre (ordered top to bottom): the change of dx/dy between its two steps; at the ends
    the steepness |dx/dy| of its one step. Steps with no vertical extent count as infinitely steep."""
    n = len(centres)
    if n < 2:
        return np.zeros(n)
    d = np.diff(centres, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(np.abs(d[:, 1]) > 1e-9, d[:, 0] / np.where(d[:, 1] == 0, 1, d[:, 1]), np.inf)
    out = np.empty(n)
    out[0], out[-1] = abs(s[0]), abs(s[-1])
    for k in range(1, n - 1):
        out[k] = abs(s[k] - s[k - 1]) if np.isfinite(s[k]) and np.isfinite(s[k - 1]) else np.inf
    return out
