"""Resume: a run stopped inside phase 2 and resumed ends where an uninterrupted run does."""
import pytest
import torch
from detectron2.engine import HookBase

from spine_d2.engine.config import build_d2_cfg
from spine_d2.engine.trainer import NothingToResumeError, SpineTrainer
from test_engine_support import register_tiny, smoke_cfg


class Killed(Exception):
    pass


class KillAfter(HookBase):
    def __init__(self, at):
        self.at = at

    def after_step(self):  # runs after the periodic checkpointer saved this iteration
        if self.trainer.iter == self.at:
            raise Killed(f"killed after iteration {self.at}")


def final_state(out):
    return torch.load(out / "model_final.pth", map_location="cpu", weights_only=True)


def test_killed_and_resumed_run_matches_uninterrupted(tmp_path):
    names = register_tiny(tmp_path / "data")
    # schedule smoke: heads iterations 0-1, all 2-3; augmentation on; a checkpoint every iteration
    opts = ("solver.checkpoint_period=1", "solver.ims_per_batch=1", "augment.rotation.prob=1.0")

    a = tmp_path / "uninterrupted"
    trainer = SpineTrainer(build_d2_cfg(smoke_cfg(a, *opts), datasets=names))
    trainer.resume_or_load(resume=False)
    trainer.train()

    b = tmp_path / "killed"
    cfg_b = build_d2_cfg(smoke_cfg(b, *opts), datasets=names)
    trainer = SpineTrainer(cfg_b)
    trainer.register_hooks([KillAfter(2)])
    trainer.resume_or_load(resume=False)
    with pytest.raises(Killed):
        trainer.train()
    assert not (b / "model_final.pth").exists()
    assert (b / "last_checkpoint").read_text().strip() == "model_0000002.pth"

    trainer = SpineTrainer(cfg_b)  # a new process would do the same: resume=true, same directory
    trainer.resume_or_load(resume=True)
    assert trainer.start_iter == 3
    trainer.train()
    # phase 2's trainable set was restored (everything trains) ...
    assert all(p.requires_grad for p in trainer.model.parameters())
    sa, sb = final_state(a), final_state(b)
    assert sb["iteration"] == sa["iteration"] == 3
    # ... with the optimizer and the scheduler's lr, and the same data: the same weights
    sched = lambda s: s["trainer"]["hooks"]["LRScheduler"]["last_epoch"]  # noqa: E731
    assert sched(sa) == sched(sb) == 4
    for k, v in sa["model"].items():
        assert torch.allclose(v, sb["model"][k], rtol=1e-5, atol=1e-7), k
    opt = lambda s: s["trainer"]["_trainer"]["optimizer"]["state"]  # noqa: E731
    assert opt(sa).keys() == opt(sb).keys() and len(opt(sa)) > 0
    for i in opt(sa):
        assert torch.allclose(opt(sa)[i]["momentum_buffer"], opt(sb)[i]["momentum_buffer"], atol=1e-7)


def test_resume_without_checkpoint_is_a_clear_error(tmp_path):
    names = register_tiny(tmp_path / "data")
    trainer = SpineTrainer(build_d2_cfg(smoke_cfg(tmp_path / "new"), datasets=names))
    with pytest.raises(NothingToResumeError, match="no last_checkpoint.*hydra.run.dir"):
        trainer.resume_or_load(resume=True)
