"""Two-phase training on a tiny dataset: what trains in each phase, the NaN guard, mismatched weights."""
import json
import pickle

import pytest
import torch
from detectron2.engine import HookBase
from detectron2.modeling import build_model

from spine_d2.engine.config import SCRATCH_PIXEL_STD, build_d2_cfg
from spine_d2.engine.hooks import NonFiniteLossError, mixed_state
from spine_d2.engine.phases import freeze_level, is_frozen, parse_phases, ScheduleError
from spine_d2.engine.trainer import SpineTrainer, WeightsError
from test_engine_support import register_tiny, smoke_cfg

BODY = "backbone.bottom_up."


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


class Snap(HookBase):
    """Parameters at the start of the given iterations (before their step)."""

    def __init__(self, iters):
        self.iters, self.seen = set(iters), {}

    def before_step(self):
        if self.trainer.iter in self.iters:
            self.seen[self.trainer.iter] = snapshot(self.trainer.model)


def test_freeze_levels_and_parameter_names():
    assert [freeze_level(t) for t in ("all", "res2+", "res3+", "res5+", "heads")] == [0, 1, 2, 4, 5]
    assert is_frozen(BODY + "stem.conv1.weight", 1) and not is_frozen(BODY + "res2.0.conv1.weight", 1)
    assert is_frozen(BODY + "res3.1.conv2.weight", 3) and not is_frozen(BODY + "res4.0.conv1.weight", 3)
    assert is_frozen(BODY + "res5.0.conv1.weight", 5) and not is_frozen("backbone.fpn_lateral2.weight", 5)
    assert not is_frozen(BODY + "stem.conv1.weight", 0)
    with pytest.raises(ScheduleError, match="trains='neck'"):
        parse_phases([{"name": "x", "iters": 2, "lr_factor": 1, "trains": "neck"}])
    with pytest.raises(ScheduleError, match="iters"):
        parse_phases([{"name": "x", "iters": 0, "lr_factor": 1, "trains": "all"}])


def test_phase1_trains_heads_only_phase2_trains_all(tmp_path):
    names = register_tiny(tmp_path / "data")
    cfg = build_d2_cfg(smoke_cfg(tmp_path / "run"), datasets=names)  # heads 2 iters, then all 2
    trainer = SpineTrainer(cfg)
    snap = Snap({0, 2})
    trainer.register_hooks([snap])
    trainer.resume_or_load(resume=False)
    held = {id(p) for g in trainer.optimizer.param_groups for p in g["params"]}
    assert all(id(p) in held for p in trainer.model.parameters()), "optimizer must hold every parameter"
    trainer.train()
    start, switch, end = snap.seen[0], snap.seen[2], snapshot(trainer.model)

    body = [n for n in start if n.startswith(BODY)]
    rest = [n for n in start if not n.startswith(BODY)]
    assert body and rest
    moved = lambda a, b, ns: [n for n in ns if not torch.equal(a[n], b[n])]  # noqa: E731
    assert moved(start, switch, body) == [], "phase 1 ('heads') must leave the ResNet body untouched"
    assert len(moved(start, switch, rest)) > 0.5 * len(rest), "phase 1 must train FPN/RPN/ROI heads"
    assert len(moved(switch, end, body)) > 0.5 * len(body), "phase 2 ('all') must train the body"
    assert all(p.requires_grad for p in trainer.model.parameters())  # phase 2's set at the end

    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.json").read_text().splitlines()]
    train_records = [r for r in records if "total_loss" in r]
    assert len(train_records) == 4 and all("trainable_params" in r for r in train_records)
    counts = {int(r["phase"]): r["trainable_params"] for r in train_records}
    n_body = sum(start[n].numel() for n in body)
    assert counts[2] - counts[1] == n_body and counts[2] == sum(v.numel() for v in start.values())
    lrs = [r["lr"] for r in train_records]
    assert lrs[0] == pytest.approx(1e-3) and lrs[-1] == pytest.approx(1e-4)


class PoisonAt(HookBase):
    """Makes the loss NaN from iteration `at` on, as a diverging run would."""

    def __init__(self, at):
        self.at = at

    def before_step(self):
        if self.trainer.iter == self.at:
            with torch.no_grad():
                self.trainer.model.roi_heads.box_predictor.cls_score.bias.fill_(float("nan"))


def test_nan_guard_stops_with_clear_message_and_keeps_good_checkpoint(tmp_path):
    names = register_tiny(tmp_path / "data")
    out = tmp_path / "run"
    cfg = build_d2_cfg(smoke_cfg(out, "solver.checkpoint_period=1"), datasets=names)
    trainer = SpineTrainer(cfg)
    trainer.register_hooks([PoisonAt(2)])
    trainer.resume_or_load(resume=False)
    with pytest.raises(NonFiniteLossError, match=r"iteration 2 .*Last good checkpoint: .*model_0000001\.pth"):
        trainer.train()
    assert not (out / "model_final.pth").exists()
    good = torch.load(out / "model_0000001.pth", map_location="cpu", weights_only=True)["model"]
    assert all(torch.isfinite(v).all() for v in good.values() if v.is_floating_point())
    assert (out / "last_checkpoint").read_text().strip() == "model_0000001.pth"


def test_weights_with_mismatched_heads_are_reinitialised(tmp_path):
    names = register_tiny(tmp_path / "data")
    # an "80-class COCO model" of the fast architecture, with the norm used when weights are given
    coco_cfg = build_d2_cfg(smoke_cfg(tmp_path, "++model.d2.MODEL.ROI_HEADS.NUM_CLASSES=80",
                                      "model.weights=unused.pth"), datasets=names)
    assert coco_cfg.MODEL.RESNETS.NORM == "FrozenBN"
    coco = build_model(coco_cfg)
    sd = {k: v.detach().clone() for k, v in coco.state_dict().items()}
    torch.save({"model": sd}, tmp_path / "coco80.pth")
    with open(tmp_path / "coco80.pkl", "wb") as f:  # detectron2 model zoo format: numpy arrays
        pickle.dump({"model": {k: v.numpy() for k, v in sd.items()}, "__author__": "test",
                     "matching_heuristics": False}, f)
    for name in ("coco80.pth", "coco80.pkl"):
        cfg = build_d2_cfg(smoke_cfg(tmp_path, f"model.weights={tmp_path / name}"), datasets=names)
        assert cfg.MODEL.WEIGHTS.endswith(name) and cfg.MODEL.ROI_HEADS.NUM_CLASSES == 4
        trainer = SpineTrainer(cfg)
        trainer.resume_or_load(resume=False)  # loads MODEL.WEIGHTS
        got = trainer.model.state_dict()
        cls = "roi_heads.box_predictor.cls_score.weight"
        assert got[cls].shape[0] == 5 and sd[cls].shape[0] == 81
        assert not torch.equal(got["roi_heads.mask_head.predictor.weight"][:4],
                               sd["roi_heads.mask_head.predictor.weight"][:4])
        same = [k for k in sd if k in got and got[k].shape == sd[k].shape]
        assert len(same) > 0.9 * len(sd)
        for k in same:
            assert torch.equal(got[k], sd[k]), f"{k} not loaded from {name}"


def test_weights_trained_from_scratch_are_fine_tuned_in_their_own_architecture(tmp_path):
    # a spine_d2 run from scratch (GN in backbone, FPN and heads; its pixel spread), fine-tuned
    # further: the model must be built the same way, or the norm layers are dropped and it diverges
    names = register_tiny(tmp_path / "data")
    scratch_cfg = build_d2_cfg(smoke_cfg(tmp_path), datasets=names)
    assert (scratch_cfg.MODEL.FPN.NORM, scratch_cfg.MODEL.RESNETS.NORM) == ("GN", "GN")
    sd = {k: v.detach().clone() for k, v in build_model(scratch_cfg).state_dict().items()}
    torch.save({"model": sd, "iteration": 7}, tmp_path / "model_final.pth")
    cfg = build_d2_cfg(smoke_cfg(tmp_path, f"model.weights={tmp_path / 'model_final.pth'}"), datasets=names)
    assert (cfg.MODEL.FPN.NORM, cfg.MODEL.ROI_MASK_HEAD.NORM) == ("GN", "GN")
    assert list(cfg.MODEL.PIXEL_STD) == SCRATCH_PIXEL_STD
    trainer = SpineTrainer(cfg)
    trainer.resume_or_load(resume=False)
    got = trainer.model.state_dict()
    assert got.keys() == sd.keys()
    for k in sd:
        assert torch.equal(got[k], sd[k]), f"{k} not loaded"


def test_missing_or_unfetchable_weights_are_one_clear_error(tmp_path):
    names = register_tiny(tmp_path / "data")
    for weights, match in ((tmp_path / "nope.pth", "no such file"),
                           ("http://127.0.0.1:9/model_final.pkl", "could not be fetched")):
        cfg = build_d2_cfg(smoke_cfg(tmp_path, f"model.weights={weights}"), datasets=names)
        trainer = SpineTrainer(cfg)
        with pytest.raises(WeightsError, match=match):
            trainer.resume_or_load(resume=False)


def test_mixed_state_mixes_what_the_start_holds_and_keeps_the_rest():
    start = {"a": torch.ones(3), "b": torch.ones(2), "h": torch.ones(1, dtype=torch.float16)}
    trained = {"a": torch.full((3,), 3.0), "b": torch.zeros(4), "c": torch.zeros(2),
               "n": torch.arange(3), "h": torch.full((1,), 5.0)}
    mixed, kept = mixed_state(start, trained, 0.25)
    assert torch.allclose(mixed["a"], torch.full((3,), 2.5))  # 0.25 x 1 + 0.75 x 3
    assert torch.allclose(mixed["h"], torch.full((1,), 4.0)) and mixed["h"].dtype == torch.float32
    assert sorted(kept) == ["b", "c", "n"] and all(mixed[k] is trained[k] for k in kept)


def test_keep_start_mixes_the_final_weights_with_the_start(tmp_path):
    names = register_tiny(tmp_path / "data")
    # the start: a model of another class count, so that its heads do not fit and stay as trained
    coco_cfg = build_d2_cfg(smoke_cfg(tmp_path, "++model.d2.MODEL.ROI_HEADS.NUM_CLASSES=80",
                                      "model.weights=unused.pth"), datasets=names)
    start = {k: v.detach().clone() for k, v in build_model(coco_cfg).state_dict().items()}
    torch.save({"model": start}, tmp_path / "start.pth")
    final = {}
    for keep in (0.0, 0.5):
        out = tmp_path / f"keep{keep}"
        cfg = build_d2_cfg(smoke_cfg(out, f"model.weights={tmp_path / 'start.pth'}",
                                     f"solver.keep_start={keep}"), datasets=names)
        trainer = SpineTrainer(cfg)
        trainer.resume_or_load(resume=False)
        trainer.train()
        final[keep] = torch.load(out / "model_final.pth", map_location="cpu", weights_only=True)["model"]
        assert torch.equal(final[keep]["backbone.fpn_lateral2.weight"],
                           trainer.model.state_dict()["backbone.fpn_lateral2.weight"])
    trained, mixed = final[0.0], final[0.5]
    body = "backbone.bottom_up.res4.0.conv1.weight"
    assert not torch.equal(trained[body], start[body])  # the tiny run trained it
    for k in (body, "backbone.fpn_output3.weight", "roi_heads.box_head.fc1.weight"):
        assert torch.allclose(mixed[k], 0.5 * start[k] + 0.5 * trained[k], atol=1e-6), k
    cls = "roi_heads.box_predictor.cls_score.weight"  # 81 classes in the start, 5 here
    assert start[cls].shape != mixed[cls].shape and torch.equal(mixed[cls], trained[cls])
    with pytest.raises(ValueError, match="keep_start=0.5 .* needs model.weights"):
        build_d2_cfg(smoke_cfg(tmp_path / "x", "solver.keep_start=0.5"), datasets=names)
    with pytest.raises(ValueError, match=r"keep_start=1.0: must be in \[0, 1\)"):
        build_d2_cfg(smoke_cfg(tmp_path / "y", "model.weights=a.pth", "solver.keep_start=1.0"), datasets=names)


def test_amp_on_the_cpu_trains_in_bfloat16_and_keeps_float32_weights(tmp_path, monkeypatch, caplog):
    from detectron2.engine import AMPTrainer, SimpleTrainer
    from spine_d2.engine import precision
    from spine_d2.engine.trainer import CPUAutocastTrainer, inner_trainer

    names = register_tiny(tmp_path / "data")
    cfg = build_d2_cfg(smoke_cfg(tmp_path / "run", "solver.amp=true"), datasets=names)
    assert cfg.SOLVER.AMP.ENABLED and inner_trainer(cfg) is CPUAutocastTrainer
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)  # a CPU that emulates bfloat16
    with caplog.at_level("WARNING", logger="spine_d2.engine.precision"):
        assert inner_trainer(cfg) is CPUAutocastTrainer
    assert any("give solver.amp=false" in r.getMessage() for r in caplog.records)
    monkeypatch.undo()
    cuda = cfg.clone()
    cuda.defrost()
    cuda.MODEL.DEVICE = "cuda"
    assert inner_trainer(cuda) is AMPTrainer
    cuda.SOLVER.AMP.ENABLED = False
    assert inner_trainer(cuda) is SimpleTrainer

    trainer = SpineTrainer(cfg)
    assert type(trainer._trainer) is CPUAutocastTrainer
    seen = []
    conv = trainer.model.backbone.bottom_up.stem.conv1
    conv.register_forward_hook(lambda m, i, o: seen.append(o.dtype) if m.training else None)
    trainer.resume_or_load(resume=False)
    start = snapshot(trainer.model)
    trainer.train()
    end = snapshot(trainer.model)
    assert seen and set(seen) == {torch.bfloat16}, "the forward pass runs under bf16 autocast"
    assert all(v.dtype == torch.float32 for v in end.values()), "weights stay float32"
    assert sum(not torch.equal(start[n], end[n]) for n in start) > 0.5 * len(start)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.json").read_text().splitlines()]
    losses = [r["total_loss"] for r in records if "total_loss" in r]
    assert len(losses) == 4 and all(map(torch.isfinite, torch.tensor(losses)))
