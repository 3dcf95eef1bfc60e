"""Sub-pixel outlines from the mask head's probabilities (test.soft_masks): where detectron2's pasted
mask is, and endplates turned less by the pixel grid."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from detectron2.layers.mask_ops import paste_masks_in_image

from spine_d2.engine.soft_masks import soft_contour
from spine_d2.measure.endplates import rectangle_endplates
from spine_d2.polygons import rasterize

SHAPE = (160, 200)


def _body_probs(box, tilt_deg: float, half=(0.42, 0.36), soft_px: float = 0.8, n: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """A mask head's n×n probabilities of a tilted rectangle filling most of `box`, and the
    rectangle's corners (image px, pixel centres at integers)."""
    x0, y0, x1, y1 = box
    c = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    t = math.radians(tilt_deg)
    u, v = np.array([math.cos(t), math.sin(t)]), np.array([-math.sin(t), math.cos(t)])
    a, b = half[0] * (x1 - x0), half[1] * (y1 - y0)
    xs = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n
    ys = y0 + (np.arange(n) + 0.5) * (y1 - y0) / n
    X, Y = np.meshgrid(xs, ys)
    d = np.stack([X - c[0], Y - c[1]], -1)
    outside = np.maximum(np.abs(d @ u) - a, np.abs(d @ v) - b)  # signed distance (px) outside the box
    corners = np.array([c - a * u - b * v, c + a * u - b * v, c + a * u + b * v, c - a * u + b * v]) - 0.5
    return 1 / (1 + np.exp(outside / soft_px)), corners


def _pasted(probs: np.ndarray, box) -> np.ndarray:
    """detectron2's own paste of `probs` into an image, cut at 0.5 (boolean)."""
    return paste_masks_in_image(torch.as_tensor(probs[None], dtype=torch.float32),
                                torch.tensor([box], dtype=torch.float32), SHAPE, threshold=0.5)[0].numpy()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_the_soft_outline_encloses_detectron2s_pasted_mask():
    box = (50.3, 40.7, 110.1, 84.2)
    probs, _ = _body_probs(box, 8.0)
    outline = soft_contour(probs, box)
    assert outline.shape[1] == 2 and len(outline) > 50
    assert _iou(rasterize(outline, SHAPE), _pasted(probs, box)) > 0.95
    assert soft_contour(np.zeros((28, 28)), box).shape == (0, 2)


@pytest.mark.parametrize("size", [(22.0, 15.0), (40.0, 28.0)])
def test_endplates_from_the_soft_outline_are_closer_to_the_truth_than_from_the_pixel_mask(size):
    errors = {"soft": [], "pixels": []}
    for k, tilt in enumerate(np.linspace(-14, 14, 15)):
        x0, y0 = 60.0 + 0.37 * k, 50.0 + 0.23 * k
        box = (x0, y0, x0 + size[0], y0 + size[1])
        probs, corners = _body_probs(box, tilt)
        true = math.degrees(math.atan2(*(corners[1] - corners[0])[::-1]))
        contours, _ = cv2.findContours(_pasted(probs, box).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        pixels = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(float)
        for name, outline in (("soft", soft_contour(probs, box)), ("pixels", pixels)):
            sup = rectangle_endplates(outline, np.array([0.0, -1.0]), which=("superior",))["superior"]
            d = sup[1] - sup[0]
            angle = math.degrees(math.atan2(d[1], d[0]))
            errors[name].append(abs((angle - true + 90) % 180 - 90))
    soft, pixels = np.mean(errors["soft"]), np.mean(errors["pixels"])
    assert soft < 0.3 and soft < 0.5 * pixels, (soft, pixels)


def test_a_model_with_soft_masks_gives_one_outline_per_instance_on_its_mask(smoke_run):
    from spine_d2.data.images import read_image
    from spine_d2.engine.inference import SpinePredictor
    from spine_d2.measure import instances_from_predictions

    root, run_dir = smoke_run
    predictor = SpinePredictor.from_checkpoint(run_dir / "model_final.pth", "cpu", soft_masks=True)
    image = read_image(sorted((root / "images").iterdir())[0])
    pred = predictor(image)
    assert len(pred) > 0 and len(pred.pred_contours) == len(pred)
    ious = []
    for inst in instances_from_predictions(pred, predictor.class_names):
        assert inst.polygon is not None
        found, _ = cv2.findContours(inst.mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        largest = np.zeros(inst.mask.shape, np.uint8)  # the mask's largest region, holes filled
        cv2.drawContours(largest, [max(found, key=cv2.contourArea)], -1, 1, -1)
        ious.append(_iou(rasterize(inst.polygon, image.shape[:2]), largest > 0))
    assert np.median(ious) > 0.9, ious  # a smoke model's masks are ragged: some split in two
    plain = instances_from_predictions(pred, predictor.class_names, soft_outlines=False)
    assert all(i.polygon is None for i in plain)
