"""PointRend's mask head (`model.mask_head=pointrend`): one key chooses it; it trains beside the
corner head, a run's checkpoint reloads with it, and it gives 224×224 mask probabilities that the
soft outlines read like Mask R-CNN's 28×28."""
import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.structures import Boxes, Instances
from hydra.errors import HydraException
from omegaconf.errors import ValidationError

from spine_d2.data.images import read_image
from spine_d2.data.transforms import model_input
from spine_d2.engine.config import build_d2_cfg
from spine_d2.engine.inference import RUN_CONFIG, config_for_checkpoint, load_model
from spine_d2.engine.soft_masks import SoftMaskModel
from spine_d2.engine.trainer import SpineTrainer
from test_engine_support import register_tiny, smoke_cfg

POINTREND = ("model.mask_head=pointrend", "model.corners=true")


def test_one_key_chooses_pointrend_and_a_typo_fails_at_composition(tmp_path):
    cfg = build_d2_cfg(smoke_cfg(tmp_path, *POINTREND))
    assert cfg.MODEL.ROI_MASK_HEAD.NAME == "PointRendMaskHead" and cfg.MODEL.ROI_MASK_HEAD.POINT_HEAD_ON
    assert cfg.MODEL.POINT_HEAD.NUM_CLASSES == cfg.MODEL.ROI_HEADS.NUM_CLASSES == 4
    assert cfg.INPUT.MASK_FORMAT == "bitmask"  # the point head samples its labels from bitmasks
    assert (cfg.MODEL.ROI_MASK_HEAD.FC_DIM, cfg.MODEL.POINT_HEAD.FC_DIM) == (256, 128)  # the fast model's
    standard = build_d2_cfg(smoke_cfg(tmp_path))
    assert standard.MODEL.ROI_MASK_HEAD.NAME == "MaskRCNNConvUpsampleHead"
    assert standard.INPUT.MASK_FORMAT == "polygon"
    with pytest.raises((HydraException, ValidationError), match="mask_head"):
        smoke_cfg(tmp_path, "model.mask_head=pointrnd")


def _probabilities(model, cfg, record) -> torch.Tensor:
    """The mask head's probabilities on the true boxes of one tiny image (R, 1, M, M)."""
    x = model_input(read_image(record["file_name"]), cfg)
    with torch.no_grad():
        images = model.preprocess_image([x])
        features = model.backbone(images.tensor)
        boxes = torch.tensor([a["bbox"] for a in record["annotations"]], dtype=torch.float32)
        given = Instances(images.image_sizes[0], pred_boxes=Boxes(boxes),
                          pred_classes=torch.tensor([a["category_id"] for a in record["annotations"]]))
        return model.roi_heads.forward_with_given_boxes(features, [given])[0].pred_masks


def test_pointrend_trains_beside_the_corners_and_its_run_reloads_for_prediction(tmp_path):
    names = register_tiny(tmp_path / "data")
    # a standard run's checkpoint, then PointRend fine-tuned from it (as from the zoo's model)
    standard = SpineTrainer(build_d2_cfg(smoke_cfg(tmp_path / "standard", "model.corners=true"), datasets=names))
    standard.resume_or_load(resume=False)
    standard.checkpointer.save("start")
    start = {k: v.clone() for k, v in standard.model.state_dict().items()}

    cfg = build_d2_cfg(smoke_cfg(tmp_path / "run", *POINTREND, f"model.weights={tmp_path / 'standard' / 'start.pth'}"),
                       datasets=names)
    trainer = SpineTrainer(cfg)
    trainer.resume_or_load(resume=False)
    loaded = trainer.model.state_dict()
    assert torch.equal(loaded["backbone.bottom_up.stem.conv1.weight"], start["backbone.bottom_up.stem.conv1.weight"])
    point_head = {k: v.clone() for k, v in loaded.items() if k.startswith("roi_heads.mask_head.point_head.")}
    assert point_head and not any(k.startswith("roi_heads.mask_head.point_head.") for k in start)
    trainer.train()
    losses = {k: v.latest() for k, v in trainer.storage.histories().items() if k.startswith("loss_")}
    assert {"loss_mask", "loss_mask_point", "loss_keypoint"} <= set(losses)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    after = trainer.model.state_dict()
    assert any(not torch.equal(after[k], v) for k, v in point_head.items()), "the point head must train"

    # the config as a run dumps it and the final weights rebuild the same head (tools/predict.py's road)
    (tmp_path / "run" / RUN_CONFIG).write_text(cfg.dump())
    reloaded = config_for_checkpoint(tmp_path / "run" / "model_final.pth", "cpu")
    model = load_model(reloaded)
    assert type(model.roi_heads.mask_head).__name__ == "PointRendMaskHead"
    record = DatasetCatalog.get(names["test"])[0]
    probs = _probabilities(model, reloaded, record)
    assert probs.shape == (len(record["annotations"]), 1, 224, 224)
    assert 0 <= probs.min() and probs.max() <= 1

    # the soft outlines read its probabilities: one outline per detection, inside its box
    reloaded.defrost()
    reloaded.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0  # a 4-iteration model's scores are low
    with torch.no_grad():
        out = SoftMaskModel(model)([model_input(read_image(record["file_name"]), reloaded)])[0]["instances"]
    assert len(out) > 0 and len(out.pred_contours) == len(out)
    assert any(len(c) for c in out.pred_contours)
    for outline, (x0, y0, x1, y1) in zip(out.pred_contours, out.pred_boxes.tensor.numpy()):
        if len(outline):  # pixel centres at integers: a box [x0, x1] spans centres x0 - 0.5 .. x1 - 0.5
            assert x0 - 0.5 - 1e-3 <= outline[:, 0].min() and outline[:, 0].max() <= x1 - 0.5 + 1e-3
            assert y0 - 0.5 - 1e-3 <= outline[:, 1].min() and outline[:, 1].max() <= y1 - 0.5 + 1e-3
