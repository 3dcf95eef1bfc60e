"""The corner head: detectron2's keypoint head, decoded at inference by our sub-pixel peaks.

detectron2's `keypoint_rcnn_inference` resizes every instance's heatmaps to its box (bicubic, one
box at a time) to take an integer argmax: ~0.08 s per pass of 40 instances on a CPU, and its
`pred_keypoints` were never used here (the measurement and the high-resolution pass decode
`pred_keypoint_heatmaps` with `spine_d2.measure.corners.heatmap_peaks`). `CornerHead` keeps the
heatmaps and sets `pred_keypoints` from `heatmap_peaks` (x, y in the input image's frame, pixels;
score in [0, 1]). Training (the loss) is the parent's; the parameters are the same, so a checkpoint
of either head loads into the other.
"""
from __future__ import annotations

import torch
from detectron2.modeling.roi_heads.keypoint_head import ROI_KEYPOINT_HEAD_REGISTRY, KRCNNConvDeconvUpsampleHead

from spine_d2.measure.corners import heatmap_peaks

#: the detectron2 head `CornerHead` decodes differently (configs naming it are upgraded on load)
PARENT = "KRCNNConvDeconvUpsampleHead"


@ROI_KEYPOINT_HEAD_REGISTRY.register()
class CornerHead(KRCNNConvDeconvUpsampleHead):
    def forward(self, x, instances):
        if self.training:
            return super().forward(x, instances)
        logits = self.layers(x).detach()
        for inst, maps in zip(instances, logits.split([len(i) for i in instances])):
            boxes = inst.pred_boxes.tensor
            peaks = heatmap_peaks(maps.cpu().numpy(), boxes.detach().cpu().numpy())
            inst.pred_keypoints = torch.as_tensor(peaks, dtype=torch.float32, device=boxes.device)
            inst.pred_keypoint_heatmaps = maps
        return instances
