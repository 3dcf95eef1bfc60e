"""Segmentation overlap (Dice, IoU) of predicted vs ground-truth masks; image frame, boolean H×W masks.

- Per image, as the reference study: the union of all predicted vertebra masks against the union
  of all ground-truth vertebra masks (`overlap`, `image_overlap`).
- Per class: the union of each class's masks (`per_class_overlap`).
- Per level: predicted instances matched one-to-one to ground-truth levels by Hungarian matching
  on mask IoU (`match_instances`); a level with no matched prediction scores 0 (`per_level_overlap`).
- The segmentation a Mask R-CNN hands on is its detections above a confidence score (detectron2's
  demo draws those scoring ≥ 0.5; Matterport's Mask R-CNN, whose heads-then-all-layers schedule
  the study follows, keeps ≥ 0.7 by default); detectron2 keeps far weaker ones (≥ 0.05) for
  COCO's precision-recall curves. With `pred_scores` given, every score above is of the masks
  scoring ≥ `min_score`, and 'all_dice', 'all_iou' of the union of every mask.
- Of the named vertebrae (`image_segmentation(named_masks=...)`, 'named_dice'): the union of the
  masks the measurement named with a level, against the same ground truth: what the Labelme
  pre-annotation writes, without the strays the clean-up removed or left unnamed.

Dice = 2|A∩B| / (|A| + |B|), IoU = |A∩B| / |A∪B|, both in [0, 1]; NaN when both masks are empty
(nothing to find and nothing found: undefined). Ground-truth polygons become masks with
`polygons_to_mask` (detectron2's flat [x1, y1, x2, y2, ...] lists, pixels).
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from spine_d2.polygons import mask_box, rasterize, shared_pixels

#: Classes that are not vertebrae: left out of the whole-image Dice/IoU (they still get their own
#: per-class score).
NON_VERTEBRA_CLASSES: tuple[str, ...] = ("femoral_head", "FH")


def polygons_to_mask(polygons: Iterable[Sequence[float]], shape: Sequence[int]) -> np.ndarray:
    """One structure's polygons (each flat [x1, y1, x2, y2, ...] or (N, 2), pixels) → bool H×W mask:
    `spine_d2.polygons.rasterize` of each with its vertices rounded to whole pixels (the recorded
    Dice/IoU were computed so)."""
    mask = np.zeros((int(shape[0]), int(shape[1])), bool)
    for p in polygons:
        pts = np.round(np.asarray(p, float).reshape(-1, 2))
        if len(pts) >= 3:
            mask |= rasterize(pts, shape)
    return mask


def _stack(masks: Iterable[np.ndarray] | np.ndarray, shape: Sequence[int] | None) -> np.ndarray:
    """Masks as a bool (N, H, W) array; `shape` is needed only when there are none."""
    arr = [np.asarray(m).astype(bool) for m in masks]
    if not arr:
        if shape is None:
            raise ValueError("no masks and no image shape: cannot tell the image size")
        return np.zeros((0, int(shape[0]), int(shape[1])), bool)
    first = arr[0].shape
    for m in arr:
        if m.ndim != 2 or m.shape != first:
            raise ValueError(f"masks must all be H×W of one size; got {m.shape} and {first}")
    if shape is not None and tuple(first) != (int(shape[0]), int(shape[1])):
        raise ValueError(f"masks are {first}, image shape is {tuple(shape[:2])}")
    return np.stack(arr)


def union(masks: Iterable[np.ndarray] | np.ndarray, shape: Sequence[int] | None = None) -> np.ndarray:
    """Union of masks → bool H×W (all False when there are none; then `shape` is required)."""
    stack = _stack(masks, shape)
    return stack.any(axis=0)


def overlap(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Dice and IoU of two bool masks of one size: {'dice', 'iou'}; NaN when both are empty."""
    pred, gt = np.asarray(pred).astype(bool), np.asarray(gt).astype(bool)
    if pred.shape != gt.shape:
        raise ValueError(f"mask sizes differ: predicted {pred.shape}, ground truth {gt.shape}")
    inter = int(np.count_nonzero(pred & gt))
    a, b = int(np.count_nonzero(pred)), int(np.count_nonzero(gt))
    if a + b == 0:
        return {"dice": math.nan, "iou": math.nan}
    return {"dice": 2.0 * inter / (a + b), "iou": inter / (a + b - inter)}


def _pair(pred_masks, gt_masks, shape) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Predicted and ground-truth masks as bool stacks of one image size (taken from either)."""
    pred_masks, gt_masks = list(pred_masks), list(gt_masks)
    if shape is None:
        for ms in (pred_masks, gt_masks):
            if ms:
                shape = np.asarray(ms[0]).shape
                break
        else:
            raise ValueError("no masks and no image shape: cannot tell the image size")
    p, g = _stack(pred_masks, shape), _stack(gt_masks, shape)
    return p, g, (int(shape[0]), int(shape[1]))


def image_overlap(pred_masks, gt_masks, shape: Sequence[int] | None = None) -> dict[str, float]:
    """The study's per-image score: union of predicted vs union of ground-truth masks."""
    p, g, hw = _pair(pred_masks, gt_masks, shape)
    return overlap(union(p, hw), union(g, hw))


def pairwise_iou(pred_masks, gt_masks, shape: Sequence[int] | None = None) -> np.ndarray:
    """IoU of every predicted mask with every ground-truth mask → (n_pred, n_gt) float array."""
    p, g, _ = _pair(pred_masks, gt_masks, shape)
    if len(p) == 0 or len(g) == 0:
        return np.zeros((len(p), len(g)))
    bp, bg = [mask_box(m) for m in p], [mask_box(m) for m in g]
    inter = np.array([[shared_pixels(pm, pb, gm, gb) for gm, gb in zip(g, bg)] for pm, pb in zip(p, bp)],
                     np.float32)
    area_p = np.array([np.count_nonzero(m) for m in p], np.float32)
    area_g = np.array([np.count_nonzero(m) for m in g], np.float32)
    uni = area_p[:, None] + area_g[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(uni > 0, inter / uni, 0.0)
    return iou.astype(float)


def match_instances(pred_masks, gt_masks, *, pred_classes: Sequence[str] | None = None,
                    gt_classes: Sequence[str] | None = None, min_iou: float = 0.0,
                    shape: Sequence[int] | None = None) -> list[tuple[int, int, float]]:
    """One-to-one matches (pred index, gt index, IoU) maximising the total IoU (Hungarian).

    Pairs with IoU ≤ `min_iou` are never matched (by default: masks that do not touch). With both
    class lists given, only instances of the same class can match.
    """
    iou = pairwise_iou(pred_masks, gt_masks, shape)
    if iou.size == 0:
        return []
    allowed = iou > min_iou
    if pred_classes is not None and gt_classes is not None:
        if len(pred_classes) != iou.shape[0] or len(gt_classes) != iou.shape[1]:
            raise ValueError("one class name per mask is needed")
        allowed &= np.asarray(pred_classes, object)[:, None] == np.asarray(gt_classes, object)[None, :]
    cost = np.where(allowed, -iou, 0.0)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c), float(iou[r, c])) for r, c in zip(rows, cols) if allowed[r, c]]


def per_class_overlap(pred_masks, pred_classes: Sequence[str], gt_masks, gt_classes: Sequence[str],
                      shape: Sequence[int] | None = None) -> dict[str, dict[str, float]]:
    """Per class present in either: Dice/IoU of the union of that class's masks → {class: {...}}."""
    p, g, hw = _pair(pred_masks, gt_masks, shape)
    if len(p) != len(pred_classes) or len(g) != len(gt_classes):
        raise ValueError("one class name per mask is needed")
    out = {}
    for name in sorted(set(pred_classes) | set(gt_classes)):
        pm = [m for m, c in zip(p, pred_classes) if c == name]
        gm = [m for m, c in zip(g, gt_classes) if c == name]
        out[name] = overlap(union(pm, hw), union(gm, hw))
    return out


def per_level_overlap(pred_masks, gt_masks, gt_levels: Sequence[str], *,
                      pred_classes: Sequence[str] | None = None,
                      gt_classes: Sequence[str] | None = None,
                      shape: Sequence[int] | None = None) -> dict[str, dict[str, float]]:
    """Per ground-truth level: Dice/IoU of the prediction matched to it (Hungarian on IoU).

    → {level: {'dice', 'iou', 'pred': index or -1}}; an unmatched level (missed vertebra) scores 0.
    """
    p, g, hw = _pair(pred_masks, gt_masks, shape)
    if len(g) != len(gt_levels):
        raise ValueError("one level name per ground-truth mask is needed")
    matches = {gi: pi for pi, gi, _ in match_instances(p, g, pred_classes=pred_classes,
                                                      gt_classes=gt_classes, shape=hw)}
    out = {}
    for gi, level in enumerate(gt_levels):
        if gi in matches:
            out[level] = {**overlap(p[matches[gi]], g[gi]), "pred": matches[gi]}
        else:
            out[level] = {"dice": 0.0, "iou": 0.0, "pred": -1}
    return out


def image_segmentation(pred_masks, pred_classes: Sequence[str], gt_masks, gt_classes: Sequence[str],
                       gt_levels: Sequence[str | None] | None = None, *,
                       shape: Sequence[int] | None = None,
                       exclude: Sequence[str] = NON_VERTEBRA_CLASSES,
                       named_masks: Iterable[np.ndarray] | None = None,
                       pred_scores: Sequence[float] | None = None,
                       min_score: float = 0.0) -> dict[str, float]:
    """All segmentation scores of one image as one flat row for the per-image table.

    'dice', 'iou': union of vertebra masks (classes not in `exclude`); 'dice_<class>',
    'iou_<class>' per class; 'dice_<level>', 'iou_<level>' per ground-truth level when `gt_levels`
    is given (entries None are left out of the level matching); 'named_dice', 'named_iou' when
    `named_masks` (the masks of the vertebrae the measurement named) is given: their union against
    the same ground-truth union. With `pred_scores` (one per predicted mask), the predictions
    scoring under `min_score` are left out of all of these, and 'all_dice', 'all_iou' score the
    union of every vertebra mask, whatever its score.
    """
    p, g, hw = _pair(pred_masks, gt_masks, shape)
    if len(p) != len(pred_classes) or len(g) != len(gt_classes):
        raise ValueError("one class name per mask is needed")
    keep_g = [i for i, c in enumerate(gt_classes) if c not in exclude]
    gt_union = union(g[keep_g], hw)
    row: dict[str, float] = {}
    if pred_scores is not None:
        if len(pred_scores) != len(p):
            raise ValueError("one score per predicted mask is needed")
        every = overlap(union(p[[i for i, c in enumerate(pred_classes) if c not in exclude]], hw), gt_union)
        row["all_dice"], row["all_iou"] = every["dice"], every["iou"]
        sure = [i for i, s in enumerate(pred_scores) if s >= min_score]
        p, pred_classes = p[sure], [pred_classes[i] for i in sure]
    keep_p = [i for i, c in enumerate(pred_classes) if c not in exclude]
    row = {**overlap(union(p[keep_p], hw), gt_union), **row}
    if named_masks is not None:
        named = overlap(union(named_masks, hw), gt_union)
        row["named_dice"], row["named_iou"] = named["dice"], named["iou"]
    for name, s in per_class_overlap(p, pred_classes, g, gt_classes, hw).items():
        row[f"dice_{name}"], row[f"iou_{name}"] = s["dice"], s["iou"]
    if gt_levels is not None:
        if len(gt_levels) != len(g):
            raise ValueError("one level name (or None) per ground-truth mask is needed")
        named = [i for i, lv in enumerate(gt_levels) if lv]
        levels = per_level_overlap(p, g[named], [gt_levels[i] for i in named], shape=hw,
                                   pred_classes=list(pred_classes),
                                   gt_classes=[gt_classes[i] for i in named])
        for level, s in levels.items():
            row[f"dice_{level}"], row[f"iou_{level}"] = s["dice"], s["iou"]
    return row
