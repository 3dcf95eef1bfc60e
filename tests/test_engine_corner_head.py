"""The corner head: detectron2's keypoint head whose inference decodes the heatmaps sub-pixel, in the
input image's frame; configs dumped with detectron2's head reload with it; its Gaussian training
target."""
import numpy as np
import torch
import yaml
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads.keypoint_head import build_keypoint_head, keypoint_rcnn_inference, keypoint_rcnn_loss
from detectron2.structures import Boxes, Instances, Keypoints

from spine_d2.engine.config import build_d2_cfg, load_d2_cfg
from spine_d2.engine.corner_head import corner_loss
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


def _proposals(rng, m_boxes: int, k: int) -> Instances:
    x0, y0 = rng.uniform(0, 200, (2, m_boxes))
    w, h = rng.uniform(12, 60, (2, m_boxes))
    boxes = torch.tensor(np.stack([x0, y0, x0 + w, y0 + h], 1), dtype=torch.float32)
    kp = np.stack([x0[:, None] + rng.uniform(-0.1, 1.05, (m_boxes, k)) * w[:, None],
                   y0[:, None] + rng.uniform(0, 1, (m_boxes, k)) * h[:, None],
                   rng.choice([0.0, 2.0], (m_boxes, k), p=[0.2, 0.8])], -1)
    return Instances((300, 300), proposal_boxes=Boxes(boxes), gt_keypoints=Keypoints(torch.tensor(kp, dtype=torch.float32)))


def test_the_gaussian_corner_loss_narrowed_is_detectron2s_one_hot_loss():
    rng = np.random.default_rng(3)
    insts = [_proposals(rng, 5, 4), _proposals(rng, 0, 4), _proposals(rng, 3, 4)]
    logits = torch.randn(8, 4, 56, 56, generator=torch.Generator().manual_seed(0)) * 3
    theirs = keypoint_rcnn_loss(logits, insts, None)
    assert torch.allclose(corner_loss(logits, insts, 0.0), theirs)
    assert torch.allclose(corner_loss(logits, insts, 0.002), theirs, rtol=1e-3)  # (nearly) all mass on its cell
    assert not torch.allclose(corner_loss(logits, insts, 0.6), theirs, rtol=1e-2)


def test_heatmaps_matching_the_gaussian_target_decode_to_the_exact_corner():
    """The target's logarithm is a parabola whose vertex the decoding finds: a head that learned
    the target gives each corner to a small fraction of a cell, wherever in its cell it lies."""
    rng = np.random.default_rng(4)
    inst = _proposals(rng, 6, 4)
    kp = inst.gt_keypoints.tensor.clone()
    kp[..., 2] = 2.0
    box = inst.proposal_boxes.tensor
    m, sigma = 56, 0.6
    for i in (0, 1):  # two cells inside the box: the decoding refines no peak on the map's edge
        margin = 2 * (box[:, None, i + 2] - box[:, None, i]) / m
        kp[..., i] = torch.minimum(torch.maximum(kp[..., i], box[:, None, i] + margin), box[:, None, i + 2] - margin)
    inst.gt_keypoints = Keypoints(kp)
    u = (kp[..., 0] - box[:, None, 0]) * m / (box[:, None, 2] - box[:, None, 0])
    v = (kp[..., 1] - box[:, None, 1]) * m / (box[:, None, 3] - box[:, None, 1])
    c = torch.arange(m) + 0.5
    logits = (-((c[None, None, None, :] - u[..., None, None]) ** 2 + (c[None, None, :, None] - v[..., None, None]) ** 2)
              / (2 * sigma ** 2)).requires_grad_(True)
    loss = corner_loss(logits, [inst], sigma)
    loss.backward()
    assert logits.grad.abs().max() < 1e-5  # the loss's minimum
    worse = corner_loss(logits.detach() + torch.randn_like(logits) * 0.3, [inst], sigma)
    assert worse > loss
    got = heatmap_peaks(logits.detach().numpy(), box.numpy())
    cell = ((box[:, 2:] - box[:, :2]) / m).numpy().max()
    assert np.abs(got[..., :2] - kp[..., :2].numpy()).max() < 0.02 * cell
    assert (got[..., 2] > 0.9).all()  # a sigma of 0.6 cells keeps the scores' scale (3x3 mass)


def test_model_corner_sigma_reaches_the_corner_head(tmp_path):
    cfg = build_d2_cfg(smoke_cfg(tmp_path, "model.corners=true", "model.corner_sigma=0.6"))
    head = build_keypoint_head(cfg, ShapeSpec(channels=cfg.MODEL.FPN.OUT_CHANNELS, height=14, width=14))
    assert head.sigma == 0.6
    assert build_keypoint_head(build_d2_cfg(smoke_cfg(tmp_path, "model.corners=true")),
                               ShapeSpec(channels=cfg.MODEL.FPN.OUT_CHANNELS, height=14, width=14)).sigma == 0.0
