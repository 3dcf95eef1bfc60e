"""The levels the measurement named (T1…L5, S1) against the annotation's; image frame, boolean H×W masks.

A named vertebra's true level is the annotated level whose mask covers the largest share of the
named mask, at least `MIN_SHARE` of it; below that the named mask is a stray or a vertebra nobody
annotated, and it is left out. Dice cannot see a misnamed level (the outline is right, its name is
not), yet a level missed or counted twice renames every level above it and is the most common
cause of an angle tens of degrees off (benchmarks/README.md).
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from spine_d2.levels import LEVEL_INDEX
from spine_d2.polygons import mask_box, shared_pixels

#: a named mask lying at least this share on one annotated level is that level (the rest: strays)
MIN_SHARE = 0.3


def named_against_truth(named: Mapping[str, np.ndarray], gt_masks: Sequence[np.ndarray],
                        gt_levels: Sequence[str | None], min_share: float = MIN_SHARE) -> dict[str, Any]:
    """Each named level (level → its mask) against the annotated levels (`gt_levels`, one per
    mask of `gt_masks`, None for what is not a level): 'levels_named' (named masks lying on an
    annotated level), 'levels_misnamed' (of them, named other than that level) and 'misnamed'
    ('T5 on T2, T6–T9 on T5–T8': the name given, then the annotation's, top to bottom; a run of
    levels named with the same offset in one entry). Empty when nothing is annotated with a level
    (no names to check)."""
    if len(gt_levels) != len(gt_masks):
        raise ValueError("one level name (or None) per ground-truth mask is needed")
    truth = [(lv, np.asarray(m, bool)) for lv, m in zip(gt_levels, gt_masks) if lv in LEVEL_INDEX]
    if not truth:
        return {}
    boxes = [mask_box(m) for _, m in truth]
    on: dict[str, str] = {}
    for level, mask in named.items():
        mask = np.asarray(mask, bool)
        area, box = int(np.count_nonzero(mask)), mask_box(mask)
        if not area:
            continue
        shares = [shared_pixels(mask, box, m, b) / area for (_, m), b in zip(truth, boxes)]
        best = int(np.argmax(shares))
        if shares[best] >= min_share:
            on[level] = truth[best][0]
    wrong = [lv for lv in sorted(on, key=LEVEL_INDEX.__getitem__) if on[lv] != lv]
    runs: list[list[str]] = []
    for lv in wrong:
        prev = runs[-1][-1] if runs else None
        if (prev and LEVEL_INDEX[lv] == LEVEL_INDEX[prev] + 1
                and LEVEL_INDEX[on[lv]] - LEVEL_INDEX[lv] == LEVEL_INDEX[on[prev]] - LEVEL_INDEX[prev]):
            runs[-1].append(lv)
        else:
            runs.append([lv])
    text = [f"{r[0]} on {on[r[0]]}" if len(r) == 1 else f"{r[0]}–{r[-1]} on {on[r[0]]}–{on[r[-1]]}" for r in runs]
    return {"levels_named": len(on), "levels_misnamed": len(wrong), "misnamed": ", ".join(text)}
