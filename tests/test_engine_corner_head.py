"""The corner head: detectron2's keypoint head whose inference decodes the heatmaps sub-pixel, in the
input image's frame; configs dumped with detectron2's head reload with it."""
import numpy as np
import torch
import yaml
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads.keypoint_head import build_keypoint_head, keypoint_rcnn_inference
from detectron2.structures import Boxes, Instances

from spine_d2.engine.config import build_d2_cfg, load_d2_cfg
from spine_d2.measure.corners import heatmap_peaks
from test_engine_support import smoke_cfg


def _gaussian_logits(m: int, cx: float, cy: float, sd: float = 1.5) -> np.ndarray:
    yy, xx = np.mgrid[0:m, 0:m] + 0.5
    return -((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sd ** 2) * 4.0


def test_the_corner_head_gives_sub_pixel_corners_where_detectron2_gives_whole_pixels(tmp_path):
    cfg = build_d2_cfg(smoke_cfg(tmp_path, "model.corners=true"))
    assert cfg.MODEL.ROI_KEYPOINT_HEAD.NAME == "CornerHead"
    head = build_keypoint_head(cfg, ShapeSpec(channels=cfg.MODEL.FPN.OUT_CHANNELS, height=14, width=14)).eval()
    m, k = 56, cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS
    peaks = [(10.3, 40.8), (28.0, 28.0), (45.71, 5.2), (3.6, 50.1)][:k]  # heatmap cells
    logits = torch.tensor(np.stack([np.stack([_gaussian_logits(m, cx + 3 * r, cy) for cx, cy in peaks])
                                    for r in range(3)]), dtype=torch.float32)
    boxes = torch.tensor([[100.0, 200.0, 156.0, 228.0], [10.0, 10.0, 122.0, 66.0], [0.0, 5.0, 70.0, 40.0]])
    head.layers = lambda x: x  # the convolutions' output given: these logits

    def detect():
        return Instances((300, 300), pred_boxes=Boxes(boxes.clone()))

    (ours,) = head(logits, [detect()])
    theirs = detect()
    keypoint_rcnn_inference(logits, [theirs])
    assert torch.equal(ours.pred_keypoint_heatmaps, logits)
    got = ours.pred_keypoints.numpy()
    assert np.allclose(got, heatmap_peaks(logits.numpy(), boxes.numpy()), atol=1e-4)
    scale = ((boxes[:, 2:] - boxes[:, :2]) / m).numpy()  # px per heatmap cell, x and y
    for r in range(3):
        truth = np.array([[boxes[r, 0] + (cx + 3 * r) * scale[r, 0], boxes[r, 1] + cy * scale[r, 1]]
                          for cx, cy in peaks])
        assert np.abs(got[r, :, :2] - truth).max() < 0.1 * scale[r].max() + 1e-3  # a tenth of a cell
        # detectron2's integer argmax at box resolution: the same points, to a pixel
        assert np.abs(theirs.pred_keypoints[r, :, :2].numpy() - truth).max() <= 1.0 + 1e-3
    assert (got[..., 2] > 0.5).all() and (got[..., 2] <= 1).all()  # sharp peaks: most of the mass

    empty = Instances((300, 300), pred_boxes=Boxes(torch.zeros((0, 4))))
    (none,) = head(torch.zeros((0, k, m, m)), [empty])
    assert none.pred_keypoints.shape == (0, k, 3)


def test_a_config_dumped_with_detectron2s_keypoint_head_reloads_with_the_corner_head(tmp_path):
    cfg = build_d2_cfg(smoke_cfg(tmp_path, "model.corners=true"))
    dumped = yaml.safe_load(cfg.dump())
    dumped["MODEL"]["ROI_KEYPOINT_HEAD"]["NAME"] = "KRCNNConvDeconvUpsampleHead"  # as runs before it dumped
    (tmp_path / "d2_config.yaml").write_text(yaml.safe_dump(dumped))
    again = load_d2_cfg(tmp_path / "d2_config.yaml")
    assert again.MODEL.ROI_KEYPOINT_HEAD.NAME == "CornerHead"
    assert yaml.safe_load(again.dump()) == yaml.safe_load(cfg.dump())


def test_a_checkpoint_of_either_head_loads_into_the_other(tmp_path):
    cfg = build_d2_cfg(smoke_cfg(tmp_path, "model.corners=true"))
    shape = ShapeSpec(channels=cfg.MODEL.FPN.OUT_CHANNELS, height=14, width=14)
    ours = build_keypoint_head(cfg, shape)
    cfg.defrost()
    cfg.MODEL.ROI_KEYPOINT_HEAD.NAME = "KRCNNConvDeconvUpsampleHead"
    theirs = build_keypoint_head(cfg, shape)
    assert type(theirs).__name__ == "KRCNNConvDeconvUpsampleHead" and type(ours).__name__ == "CornerHead"
    theirs.load_state_dict(ours.state_dict())  # strict: the same parameter names and shapes
    ours.load_state_dict(theirs.state_dict())
