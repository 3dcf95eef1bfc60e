"""A second, high-resolution pass along the spine: the model run again on upright windows at ~2–3×
the pixels per vertebra, its detections mapped back and merged; image frame, pixels.

The first pass (the whole photo at the model's input size) finds the spine; `spine_windows` cuts
it into overlapping upright windows of the input's size; each window's vertebrae replace the
first pass's where they overlap (the overlap covers `OVERLAP` of the smaller mask: a body a window
cut in half is the same body), and a vertebra seen by two windows is kept from the window where
it lies farther from the edge. Femoral heads and anything the windows miss
stay as the first pass found them. Corners come back as points (`pred_keypoints`, sub-pixel,
score in [0, 1]) because a window's keypoint heatmaps are not aligned with the image.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from detectron2.structures import Boxes, Instances

from spine_d2.data.transforms import model_input
from spine_d2.engine.soft_masks import with_soft_masks
from spine_d2.engine.windows import Window, spine_windows
from spine_d2.levels import get_class_map, region
from spine_d2.measure.corners import heatmap_peaks

OVERLAP = 0.5
VERTEBRA_CLASSES = ("thoracic", "lumbar", "sacrum")


@dataclass
class Detection:
    """One detection in the image frame: class index, score, boolean mask, corners (K, 3) or None,
    how far its centre lies inside the window that found it (px; ∞ for the first pass) and its
    sub-pixel outline (K, 2) when the model gives one (`test.soft_masks`)."""

    cls: int
    score: float
    mask: np.ndarray
    corners: np.ndarray | None
    depth: float
    contour: np.ndarray | None = None

    @property
    def box(self) -> tuple[int, int, int, int]:
        ys, xs = np.nonzero(self.mask.any(axis=1))[0], np.nonzero(self.mask.any(axis=0))[0]
        return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def _arr(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def detections(inst: Instances, window: Window | None, shape: tuple[int, int]) -> list[Detection]:
    """A pass's predictions as detections in the image frame (`window` None: the first pass)."""
    masks, classes, scores = _arr(inst.pred_masks), _arr(inst.pred_classes), _arr(inst.scores)
    corners = None
    if inst.has("pred_keypoint_heatmaps"):
        corners = heatmap_peaks(_arr(inst.pred_keypoint_heatmaps), _arr(inst.pred_boxes.tensor))
    contours = list(inst.pred_contours) if inst.has("pred_contours") else [None] * len(classes)
    out = []
    for k in range(len(classes)):
        c = None if corners is None else corners[k].copy()
        outline = contours[k]
        if window is not None and outline is not None and len(outline):
            outline = window.to_image(outline)
        if window is None:
            mask, depth = masks[k] > 0.5, np.inf
        else:
            mask = window.mask_to_image(masks[k], shape) > 0.5
            if c is not None:
                c[:, :2] = window.to_image(c[:, :2])
            ys, xs = np.nonzero(masks[k] > 0.5)
            if len(xs) == 0:
                continue
            h, w = window.size
            depth = float(min(xs.mean(), w - xs.mean(), ys.mean(), h - ys.mean()))
        if mask.any():
            out.append(Detection(int(classes[k]), float(scores[k]), mask, c, depth, outline))
    return out


def _overlap(a: Detection, b: Detection) -> float:
    """Intersection over the smaller of the two masks."""
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = a.box, b.box
    if ax1 <= bx0 or bx1 <= ax0 or ay1 <= by0 or by1 <= ay0:
        return 0.0
    x0, y0, x1, y1 = min(ax0, bx0), min(ay0, by0), max(ax1, bx1), max(ay1, by1)
    ma, mb = a.mask[y0:y1, x0:x1], b.mask[y0:y1, x0:x1]
    return float(np.logical_and(ma, mb).sum() / max(min(ma.sum(), mb.sum()), 1))


def merge(first: list[Detection], windowed: list[Detection], vertebra: set[int]) -> list[Detection]:
    """The windows' vertebrae (deduplicated: the deeper inside its window wins), plus the first
    pass's detections that no kept window detection overlaps."""
    kept: list[Detection] = []
    for d in sorted((d for d in windowed if d.cls in vertebra), key=lambda d: -d.depth):
        if all(_overlap(d, k) < OVERLAP for k in kept):
            kept.append(d)
    for d in first:
        if all(_overlap(d, k) < OVERLAP for k in kept):
            kept.append(d)
    return kept


def to_instances(dets: list[Detection], shape: tuple[int, int]) -> Instances:
    """detectron2 Instances (pred_masks, pred_boxes, pred_classes, scores, pred_keypoints)."""
    out = Instances(shape)
    masks = np.stack([d.mask for d in dets]) if dets else np.zeros((0, *shape), bool)
    out.pred_masks = torch.as_tensor(masks)
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    out.pred_boxes = Boxes(torch.as_tensor(np.array(boxes, dtype=np.float32).reshape(-1, 4)))
    out.pred_classes = torch.as_tensor([d.cls for d in dets], dtype=torch.int64)
    out.scores = torch.as_tensor([d.score for d in dets], dtype=torch.float32)
    if dets and all(d.corners is not None for d in dets):
        out.pred_keypoints = torch.as_tensor(np.stack([d.corners for d in dets]), dtype=torch.float32)
    if any(d.contour is not None for d in dets):
        out.pred_contours = [d.contour for d in dets]
    return out


def high_resolution_pass(model, cfg, image: np.ndarray, first: Instances, max_windows: int = 3) -> Instances:
    """`first` (the model's predictions on `image`, its frame) refined by windows along the spine.
    `image` is in the model's input format (H×W×3 uint8); `model` a detectron2 model in eval mode."""
    shape = image.shape[:2]
    vertebra = vertebra_ids(cfg.SPINE.CLASS_MAP)
    pred_classes = _arr(first.pred_classes)
    is_vert = np.isin(pred_classes, list(vertebra))
    if is_vert.sum() < 2:
        return first
    boxes = _arr(first.pred_boxes.tensor)[is_vert]
    size = (int(cfg.SPINE.INPUT.HEIGHT), int(cfg.SPINE.INPUT.WIDTH))
    windowed = []
    with torch.no_grad():
        for win in spine_windows(boxes, size, max_windows=max_windows):
            crop = np.ascontiguousarray(win.crop(image))
            inst = model([model_input(crop, cfg)])[0]["instances"].to("cpu")
            windowed += detections(inst, win, shape)
    return to_instances(merge(detections(first, None, shape), windowed, vertebra), shape)


def for_evaluation(model, cfg):
    """`model` as evaluation runs it on dataset dicts: with the soft-mask outlines when
    `test.soft_masks`, and the high-resolution pass when `test.highres.enabled` (the one place
    training's final test and tools/evaluate.py decide it)."""
    model = with_soft_masks(model, cfg)
    return HighResModel(model, cfg) if cfg.SPINE.HIGHRES.ENABLED else model


class HighResModel(torch.nn.Module):
    """A detectron2 model whose predictions get the high-resolution pass: for evaluation, where
    the inputs are dataset dicts (the original image is read again from `file_name`)."""

    def __init__(self, model, cfg):
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, inputs):
        from spine_d2.data.images import read_image

        outputs = self.model(inputs)
        for inp, out in zip(inputs, outputs):
            image = read_image(inp["file_name"], self.cfg.INPUT.FORMAT)
            out["instances"] = high_resolution_pass(self.model, self.cfg, image, out["instances"].to("cpu"),
                                                    self.cfg.SPINE.HIGHRES.WINDOWS)
        return outputs


def vertebra_ids(class_map: str) -> set[int]:
    """Indices of the classes of `class_map` that are vertebral bodies (regions or levels)."""
    out = set()
    for i, n in enumerate(get_class_map(class_map).classes):
        try:
            if n in VERTEBRA_CLASSES or region(n) in VERTEBRA_CLASSES:
                out.add(i)
        except KeyError:
            pass
    return out
