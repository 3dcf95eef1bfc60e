"""A stand-in model that "predicts" a Labelme folder's ground-truth shapes: masks in the image frame, px.

`AnnotationPredictor(root)` behaves like `SpinePredictor` (`class_names`, `__call__(bgr) ->
detectron2 Instances` with pred_masks, pred_classes, scores, pred_boxes) but returns, for a photo of
the folder, its annotated polygons rasterised to masks (`instances_from_record(...,
rasterize_masks=True)`, what a perfect model gives); any other photo gets no instances. Photos are
recognised by their decoded pixels, so an upload of the file matches. It lets the page and the API
be checked against known angles without a trained model (the tests, the README's screenshot:
tests/browser.py); it is never a model.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from detectron2.structures import Boxes, Instances

from spine_d2.data.images import read_image
from spine_d2.data.labelme import load_labelme_dataset
from spine_d2.levels import get_class_map
from spine_d2.measure import Instance, instances_from_record


def pixel_key(image_bgr: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image_bgr).tobytes()).hexdigest() + str(image_bgr.shape)


def to_d2_instances(insts: list[Instance], class_names: list[str], shape) -> Instances:
    """Mask instances as detectron2 prediction `Instances` of an image of `shape` (H, W)."""
    h, w = int(shape[0]), int(shape[1])
    masks = np.stack([i.bool_mask((h, w)) for i in insts]) if insts else np.zeros((0, h, w), bool)
    boxes = []
    for m in masks:
        ys, xs = np.nonzero(m)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] if len(xs) else [0, 0, 0, 0])
    out = Instances((h, w))
    out.pred_masks = torch.from_numpy(masks)
    out.pred_classes = torch.tensor([class_names.index(i.class_name) for i in insts], dtype=torch.int64)
    out.scores = torch.tensor([i.score for i in insts], dtype=torch.float32)
    out.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    return out


class AnnotationPredictor:
    """The ground truth of the Labelme folder `root` as predictions (see the module docstring)."""

    def __init__(self, root: str | Path, class_map: str = "default"):
        self.class_names = list(get_class_map(class_map).classes)
        self.name = f"ground truth of {root} (a stand-in, not a model)"
        self.records = {}
        for rec in load_labelme_dataset(root, class_map):
            self.records[pixel_key(read_image(rec["file_name"]))] = rec

    def instances(self, image_bgr: np.ndarray) -> list[Instance]:
        rec = self.records.get(pixel_key(image_bgr))
        return [] if rec is None else instances_from_record(rec, self.class_names, rasterize_masks=True)

    def __call__(self, image_bgr: np.ndarray) -> Instances:
        return to_d2_instances(self.instances(image_bgr), self.class_names, image_bgr.shape[:2])
