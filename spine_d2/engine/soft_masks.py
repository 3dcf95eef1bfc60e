"""Sub-pixel outlines from the mask head's soft masks (`test.soft_masks`); image frame, pixels.

detectron2 pastes each instance's 28×28 mask probabilities into its box at the image's resolution
and cuts them at 0.5, so a border moves in whole pixels: on a thoracic body ~15 px tall one pixel
turns an endplate by degrees. `SoftMaskModel` keeps the probabilities, pastes them at `STEP_PX`
and adds `pred_contours` (one (K, 2) outline per instance, x, y; pixel centres at integers) that
the measurement fits its endplates to. The boolean `pred_masks` (Dice, COCO AP) are unchanged.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

STEP_PX = 0.125  # grid step of the pasted probabilities, image px
SPACING_PX = 0.5  # spacing of the outline's points, image px


def soft_contour(probs: np.ndarray, box, step: float = STEP_PX) -> np.ndarray:
    """The 0.5 outline (K, 2; image px, pixel centres at integers) of mask probabilities `probs`
    (h×w, e.g. 28×28) spread over `box` (x0, y0, x1, y1: detectron2's continuous box, pixel i
    spans [i, i+1]), sampled as detectron2 pastes them (bilinear, zero outside); the largest
    region's, (0, 2) when nothing reaches 0.5."""
    probs = np.pad(np.asarray(probs, dtype=np.float32), 1)  # zero beyond the box, as grid_sample pads
    mh, mw = probs.shape
    x0, y0, x1, y1 = (float(v) for v in box)
    cw, ch = max(x1 - x0, 1e-3) / (mw - 2), max(y1 - y0, 1e-3) / (mh - 2)
    X0, Y0, bw, bh = x0 - cw, y0 - ch, cw * mw, ch * mh  # the padded grid's extent
    W, H = max(int(np.ceil(bw / step)), 2), max(int(np.ceil(bh / step)), 2)
    up = cv2.resize(probs, (W, H), interpolation=cv2.INTER_LINEAR)  # half-pixel centres, as grid_sample
    found, _ = cv2.findContours((up >= 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not found:
        return np.zeros((0, 2))
    c = max(found, key=cv2.contourArea).reshape(-1, 2).astype(float)
    c = c[::max(int(round(SPACING_PX / step)), 1)]
    return np.stack([X0 + (c[:, 0] + 0.5) * bw / W, Y0 + (c[:, 1] + 0.5) * bh / H], axis=1) - 0.5


class SoftMaskModel(torch.nn.Module):
    """A detectron2 mask model in evaluation mode whose outputs also carry `pred_contours` (a list,
    one sub-pixel outline per instance, in the output image's frame)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, inputs):
        if self.model.training:  # the wrapped model's mode decides (the wrapper may be built in training mode)
            return self.model(inputs)
        net = getattr(self.model, "module", self.model)  # a DistributedDataParallel's model (launch.*)
        return with_soft_contours(net, net.inference(inputs, do_postprocess=False), inputs)


def with_soft_contours(net, raw: list, inputs: list[dict]) -> list[dict]:
    """detectron2's outputs of `net` (a meta-architecture) for `inputs` from its raw predictions
    `raw` (the input's frame, `inference(..., do_postprocess=False)`), with `pred_contours` from the
    mask probabilities. The raw boxes are scaled in place, as detectron2's postprocessing does."""
    for r in raw:
        if r.has("pred_masks"):
            r.pred_mask_probs = r.pred_masks[:, 0].detach().clone()  # box-relative, survives the rescale
    outputs = net._postprocess(raw, inputs, [r.image_size for r in raw])
    for out in outputs:
        inst = out["instances"]
        if inst.has("pred_mask_probs"):
            probs, boxes = inst.pred_mask_probs.cpu().numpy(), inst.pred_boxes.tensor.cpu().numpy()
            inst.remove("pred_mask_probs")
            inst.pred_contours = [soft_contour(p, b) for p, b in zip(probs, boxes)]
    return outputs


def with_soft_masks(model, cfg):
    """`model` wrapped in `SoftMaskModel` when `cfg.SPINE.SOFT_MASKS`, else unchanged."""
    return SoftMaskModel(model) if cfg.SPINE.get("SOFT_MASKS", False) else model
