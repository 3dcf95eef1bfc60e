"""The corner head: detectron2's keypoint head, decoded at inference by our sub-pixel peaks.

detectron2's `keypoint_rcnn_inference` resizes every instance's heatmaps to its box (bicubic, one
box at a time) to take an integer argmax: ~0.08 s per pass of 40 instances on a CPU, and its
`pred_keypoints` were never used here (the measurement and the high-resolution pass decode
`pred_keypoint_heatmaps` with `spine_d2.measure.corners.heatmap_peaks`). `CornerHead` keeps the
heatmaps and sets `pred_keypoints` from `heatmap_peaks` (x, y in the input image's frame, pixels;
score in [0, 1]). The parameters are the parent's, so a checkpoint of either head loads into the other.

Training: detectron2's loss is a cross-entropy over the M×M cells against the one cell that holds
the corner, so where in its cell the corner lies is never taught, yet `heatmap_peaks` reads it.
With `model.corner_sigma` (cells, `SPINE.CORNER_SIGMA`) > 0 the target is instead a Gaussian of
that SD centred at the corner's exact position (`corner_loss`): its logarithm is a quadratic whose
vertex is the corner, the decoding's own model. 0 keeps detectron2's loss (no better at 0.6:
benchmarks/README.md, session 68).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling.roi_heads.keypoint_head import (ROI_KEYPOINT_HEAD_REGISTRY, KRCNNConvDeconvUpsampleHead,
                                                         keypoint_rcnn_loss)

from spine_d2.measure.corners import heatmap_peaks

#: the detectron2 head `CornerHead` decodes differently (configs naming it are upgraded on load)
PARENT = "KRCNNConvDeconvUpsampleHead"


@ROI_KEYPOINT_HEAD_REGISTRY.register()
class CornerHead(KRCNNConvDeconvUpsampleHead):
    @configurable
    def __init__(self, input_shape, *, sigma: float = 0.0, **kwargs):
        super().__init__(input_shape, **kwargs)
        self.sigma = float(sigma)

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret["sigma"] = float(cfg.SPINE.get("CORNER_SIGMA", 0.0)) if "SPINE" in cfg else 0.0
        return ret

    def forward(self, x, instances):
        if self.training:
            logits = self.layers(x)
            normalizer = None if self.loss_normalizer == "visible" else len(instances) * self.loss_normalizer
            return {"loss_keypoint": corner_loss(logits, instances, self.sigma, normalizer) * self.loss_weight}
        logits = self.layers(x).detach()
        for inst, maps in zip(instances, logits.split([len(i) for i in instances])):
            boxes = inst.pred_boxes.tensor
            peaks = heatmap_peaks(maps.cpu().numpy(), boxes.detach().cpu().numpy())
            inst.pred_keypoints = torch.as_tensor(peaks, dtype=torch.float32, device=boxes.device)
            inst.pred_keypoint_heatmaps = maps
        return instances


def corner_loss(logits: torch.Tensor, instances, sigma: float, normalizer: float | None = None) -> torch.Tensor:
    """The corner head's training loss: for each labelled corner inside its proposal's box, the
    cross-entropy of the spatial softmax of its (M, M) logits against a Gaussian of SD `sigma`
    cells centred at the corner's exact position (cell j spans [j, j + 1) of the box's M cells, as
    detectron2 maps them); summed, over the labelled corners unless `normalizer`. `sigma` ≤ 0:
    detectron2's one-hot `keypoint_rcnn_loss`. `logits`: (N, K, M, M) over the `instances`' proposal
    boxes in order, each with `gt_keypoints` (image frame, px)."""
    if sigma <= 0:
        return keypoint_rcnn_loss(logits, instances, normalizer)
    n, k, m, _ = logits.shape
    kps = [i.gt_keypoints.tensor for i in instances if len(i)]
    boxes = [i.proposal_boxes.tensor for i in instances if len(i)]
    if not kps:
        return logits.sum() * 0
    kp, box = torch.cat(kps).to(logits.device, torch.float32), torch.cat(boxes).to(logits.device, torch.float32)
    x0, y0 = box[:, None, 0], box[:, None, 1]
    u = (kp[..., 0] - x0) * m / (box[:, None, 2] - x0).clamp(min=1e-6)  # (N, K) in cells
    v = (kp[..., 1] - y0) * m / (box[:, None, 3] - y0).clamp(min=1e-6)
    valid = (kp[..., 2] > 0) & (u >= 0) & (u <= m) & (v >= 0) & (v <= m)
    if not valid.any():
        return logits.sum() * 0
    centres = torch.arange(m, device=logits.device, dtype=torch.float32) + 0.5
    gx = -((centres - u[valid][:, None]) ** 2) / (2 * sigma ** 2)  # (V, M) log-weights
    gy = -((centres - v[valid][:, None]) ** 2) / (2 * sigma ** 2)
    target = torch.softmax((gy[:, :, None] + gx[:, None, :]).reshape(-1, m * m), dim=1)
    picked = logits.reshape(n, k, m * m)[valid].float()
    loss = F.cross_entropy(picked, target, reduction="sum")
    return loss / (valid.sum() if normalizer is None else normalizer)
