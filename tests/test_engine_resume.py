"""Resume: a run stopped inside phase 1 or phase 2 and resumed ends where an uninterrupted run does."""
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


class BodyTrains(HookBase):
    """Whether the ResNet body trains at each iteration (read before its step)."""

    def __init__(self):
        self.seen = {}

    def before_step(self):
        body = [p for n, p in self.trainer.model.named_parameters() if n.startswith("backbone.bottom_up.")]
        self.seen[self.trainer.iter] = any(p.requires_grad for p in body)


# heads iterations 0-2, all 3-4; augmentation on; a checkpoint every iteration; no progress line
# before the kill (detectron2's printer divides by zero when it writes twice in one iteration
# before its timer has a history: a kill in the first iterations with log_period=1)
OPTS = ("schedule.phases.0.iters=3", "solver.checkpoint_period=1", "solver.ims_per_batch=1",
        "augment.rotation.prob=1.0", "log_period=20")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """(dataset names, the final checkpoint, the run directory) of the run never stopped."""
    root = tmp_path_factory.mktemp("resume")
    names = register_tiny(root / "data")
    trainer = SpineTrainer(build_d2_cfg(smoke_cfg(root / "run", *OPTS), datasets=names))
    trainer.resume_or_load(resume=False)
    trainer.train()
    return names, final_state(root / "run"), root / "run"


@pytest.mark.parametrize("killed_after", [1, 3])  # inside phase 1 (heads only), inside phase 2 (all)
def test_killed_and_resumed_run_matches_uninterrupted(tmp_path, uninterrupted, killed_after):
    names, sa, _ = uninterrupted
    b = tmp_path / "killed"
    cfg_b = build_d2_cfg(smoke_cfg(b, *OPTS), datasets=names)
    trainer = SpineTrainer(cfg_b)
    trainer.register_hooks([KillAfter(killed_after)])
    trainer.resume_or_load(resume=False)
    with pytest.raises(Killed):
        trainer.train()
    assert not (b / "model_final.pth").exists()
    assert (b / "last_checkpoint").read_text().strip() == f"model_{killed_after:07d}.pth"

    trainer = SpineTrainer(cfg_b)  # a new process would do the same: resume=true, same directory
    body = BodyTrains()
    trainer.register_hooks([body])
    trainer.resume_or_load(resume=True)
    assert trainer.start_iter == killed_after + 1
    trainer.train()
    # the phase hook rebuilt the trainable set from the iteration: the body frozen for what was left
    # of phase 1, training from phase 2 on
    assert body.seen == {i: i >= 3 for i in range(killed_after + 1, 5)}
    sb = final_state(b)
    assert sb["iteration"] == sa["iteration"] == 4
    # ... with the optimizer and the scheduler's lr, and the same data: the same weights
    sched = lambda s: s["trainer"]["hooks"]["LRScheduler"]["last_epoch"]  # noqa: E731
    assert sched(sa) == sched(sb) == 5
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


def test_weight_average_is_the_mean_of_the_last_steps_and_survives_a_resume(tmp_path, uninterrupted):
    # the uninterrupted run (5 steps, a checkpoint after each) gives the weights after steps 3, 4, 5
    names, plain, plain_dir = uninterrupted
    steps = [torch.load(plain_dir / f"model_{i:07d}.pth", map_location="cpu", weights_only=True)["model"]
             for i in (2, 3)] + [plain["model"]]
    avg = ("solver.average_iters=3", "solver.average_period=1")
    run = tmp_path / "avg"
    trainer = SpineTrainer(build_d2_cfg(smoke_cfg(run, *OPTS, *avg), datasets=names))
    trainer.resume_or_load(resume=False)
    trainer.train()
    got = final_state(run)["model"]
    last = torch.load(run / "model_last_step.pth", map_location="cpu", weights_only=False)["model"]
    assert all(torch.equal(last[k], plain["model"][k]) for k in got)
    for k in ("backbone.bottom_up.res4.0.conv1.weight", "roi_heads.box_head.fc1.weight"):
        assert not torch.equal(steps[0][k], steps[2][k])
        assert torch.allclose(got[k], sum(s[k] for s in steps) / 3, atol=1e-6), k

    killed = tmp_path / "killed"  # stopped after iteration 3: two snapshots summed, one to come
    cfg = build_d2_cfg(smoke_cfg(killed, *OPTS, *avg), datasets=names)
    trainer = SpineTrainer(cfg)
    trainer.register_hooks([KillAfter(3)])
    trainer.resume_or_load(resume=False)
    with pytest.raises(Killed):
        trainer.train()
    trainer = SpineTrainer(cfg)
    trainer.resume_or_load(resume=True)
    trainer.train()
    resumed = final_state(killed)["model"]
    assert all(torch.equal(resumed[k], got[k]) for k in got)
    with pytest.raises(ValueError, match="average_iters=9.*schedule's 5 steps"):
        build_d2_cfg(smoke_cfg(tmp_path / "x", *OPTS, "solver.average_iters=9"), datasets=names)
