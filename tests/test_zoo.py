"""The model zoo: a run exported compactly, found by name, used to predict and to fine-tune."""
from __future__ import annotations

import json

import pytest
import torch

import spine_d2.zoo as zoo
from spine_d2.engine.inference import InferenceError, SpinePredictor, config_for_checkpoint
from spine_d2.serve.checkpoints import default_checkpoint
from spine_d2.zoo.export import beats, export, main, record_served


@pytest.fixture
def zoo_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "ZOO_DIR", tmp_path / "zoo")
    (tmp_path / "zoo").mkdir()
    return tmp_path / "zoo"


def test_a_run_goes_into_the_zoo_as_trained_and_is_found_by_name(smoke_run, zoo_dir, tmp_path):
    root, run = smoke_run
    full = torch.load(run / "model_final.pth", map_location="cpu", weights_only=True)["model"]
    path = export(run, "smoke", command="python tools/train.py experiment=smoke", training_minutes=0.5)
    kept = torch.load(path, map_location="cpu", weights_only=True)["model"]
    assert set(kept) == set(full) and all(torch.equal(kept[k], v) and kept[k].dtype == v.dtype for k, v in full.items())
    assert zoo.card("zoo:smoke")["weights"] == "as trained"
    # --half: float16, half the size (another model: the rounding moves a few films' measurements)
    path = export(run, "smoke", command="python tools/train.py experiment=smoke", training_minutes=0.5,
                  force=True, half=True)
    assert path == zoo_dir / "smoke.pth" and zoo.names() == ["smoke"]
    half = torch.load(path, map_location="cpu", weights_only=True)["model"]
    assert set(half) == set(full) and all(v.dtype == torch.float16 for v in half.values() if v.is_floating_point())
    assert path.stat().st_size < 0.6 * (run / "model_final.pth").stat().st_size
    card = zoo.card("zoo:smoke")
    assert card["weights"] == "float16"
    assert card["command"].endswith("experiment=smoke") and "dice_mean" in card["benchmark"]
    assert card["trained_on"]["generate"]["n"] == 6
    assert "`zoo:smoke`" in (zoo_dir / "MODEL_ZOO.md").read_text()
    assert f"(every mask {100 * card['benchmark']['all_dice_mean']:.1f} %)" in (zoo_dir / "MODEL_ZOO.md").read_text()
    cfg = config_for_checkpoint("zoo:smoke", "cpu")
    assert cfg.MODEL.WEIGHTS == str(path) and cfg.SPINE.CLASS_MAP == "default"
    predictor = SpinePredictor(cfg)
    assert predictor.name == "zoo:smoke"
    for k, v in predictor.model.state_dict().items():  # loaded back as float32, values as stored
        if k in half and v.is_floating_point():
            assert torch.equal(v, half[k].float()), k
    with pytest.raises(InferenceError, match="zoo:nothing: no such model"):
        config_for_checkpoint("zoo:nothing")


def test_the_zoo_is_the_fallback_when_nothing_was_trained(smoke_run, zoo_dir, tmp_path):
    empty = tmp_path / "outputs"
    with pytest.raises(InferenceError, match="make demo"):
        default_checkpoint(empty)
    export(smoke_run[1], zoo.DEFAULT, command="c")
    assert default_checkpoint(empty) == (f"zoo:{zoo.DEFAULT}", pytest.approx(default_checkpoint(empty)[1]))
    assert "synthetic phantom" in default_checkpoint(empty)[1]
    assert default_checkpoint(smoke_run[1].parent)[0].endswith("model_final.pth")  # a trained run comes first


def test_an_entry_is_replaced_only_by_a_better_model(smoke_run, zoo_dir):
    export(smoke_run[1], "m", command="first")
    better = {"dice_mean": 2.0, "TK": {"mae": 0.0}, "LL": {"mae": 0.0}, "SS": {"mae": 0.0}}
    assert beats(better, zoo.card("m")["benchmark"]) and not beats(zoo.card("m")["benchmark"], better)
    with pytest.raises(zoo.ZooError, match="does not beat"):
        export(smoke_run[1], "m", command="second")
    export(smoke_run[1], "m", command="second", force=True)
    assert json.loads((zoo_dir / "m.json").read_text())["command"] == "second"


def test_dice_is_compared_alike_with_a_benchmark_from_before_the_sure_masks():
    angles = {"TK": {"mae": 2.0}, "LL": {"mae": 2.0}, "SS": {"mae": 2.0}}
    old = {"dice_mean": 0.91, **angles}                      # every mask: no all_dice_mean then
    new = {"dice_mean": 0.925, "all_dice_mean": 0.905, **angles}
    assert not beats(new, old)                               # 0.905 vs 0.91 of every mask
    assert beats(dict(new, all_dice_mean=0.915), old)
    assert beats(new, {"dice_mean": 0.92, "all_dice_mean": 0.95, **angles})  # both new: the sure masks'


def test_a_new_model_must_beat_the_entry_as_it_is_served_now(smoke_run, zoo_dir, tmp_path):
    """An entry evaluated again since (new phantom, new test-time settings) is judged by that
    evaluation: a new run better than the entry's first benchmark but not than its served one is
    refused, and the message gives both sets of numbers; the card keeps a note."""
    root, run = smoke_run
    export(run, "m", command="first", note="Trained on an older phantom.")
    own = json.loads((run / "eval" / "summary.json").read_text())
    worse_then = {"dice_mean": own["dice_mean"] - 0.1}  # angles missing: the worst
    (zoo_dir / "m.json").write_text(json.dumps(dict(zoo.card("m"), benchmark=worse_then)))
    better_now = dict(own, dice_mean=own["dice_mean"] + 0.1, TK={"mae": 0.5}, LL={"mae": 0.5}, SS={"mae": 0.5})
    (tmp_path / "served.json").write_text(json.dumps(better_now))
    record_served("m", tmp_path / "served.json", "python tools/evaluate.py checkpoint=zoo:m")
    with pytest.raises(zoo.ZooError, match=r"does not beat .*MAE TK / LL / SS .* vs 0\.5° / 0\.5° / 0\.5°"):
        export(run, "m", command="second")
    assert zoo.card("m")["command"] == "first" and zoo.card("m")["note"] == "Trained on an older phantom."
    assert "Trained on an older phantom." in (zoo_dir / "MODEL_ZOO.md").read_text()
    (zoo_dir / "m.json").write_text(json.dumps({k: v for k, v in zoo.card("m").items() if k != "served"}))
    export(run, "m", command="second")  # judged by its own (worse) benchmark, it is beaten
    assert zoo.card("m")["command"] == "second" and "note" not in zoo.card("m")


def test_fine_tuning_starts_from_a_zoo_model(smoke_run, zoo_dir, tmp_path):
    from conftest import run_tool

    export(smoke_run[1], "start", command="c")
    proc = run_tool("train.py", "experiment=smoke", f"dataset.root={smoke_run[0]}", "model.weights=zoo:start",
                    f"hydra.run.dir={tmp_path / 'ft'}", check=False,
                    env={"SPINE_D2_ZOO_DIR": str(zoo_dir)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert str(zoo_dir / "start.pth") in (tmp_path / "ft" / "d2_config.yaml").read_text()


def test_reports_and_the_page_say_what_the_model_learnt_from(smoke_run, zoo_dir):
    from fastapi.testclient import TestClient

    from spine_d2.engine.inference import trained_on
    from spine_d2.serve import create_app

    root, run = smoke_run
    said = trained_on(run / "model_final.pth")
    assert said.startswith("trained on the synthetic phantom only") and str(root) in said
    assert trained_on(run) == said
    assert "**The model:** trained on the synthetic phantom only" in (run / "eval" / "report.md").read_text()
    export(run, "smoke", command="c")
    assert "phantom n=6, seed 1" in trained_on("zoo:smoke")
    predictor = SpinePredictor.from_checkpoint("zoo:smoke", "cpu")
    health = TestClient(create_app(predictor, model_name="zoo:smoke", trained_on=trained_on("zoo:smoke"))).get("/api/health")
    assert health.json()["trained_on"].startswith("trained on the synthetic phantom only")


def test_an_evaluation_as_served_goes_on_the_card_and_into_the_table(smoke_run, zoo_dir, tmp_path, capsys):
    root, run = smoke_run
    export(run, "m", command="python tools/train.py experiment=smoke")
    own = json.loads((run / "eval" / "summary.json").read_text())
    served = dict(own, dice_mean=0.987, TK={"mae": 1.25, "n": 3, "missing": 0}, LL={"mae": 2.5}, SS={"mae": 0.75})
    (tmp_path / "summary.json").write_text(json.dumps(served))
    main(["served", "m", str(tmp_path / "summary.json"), "--command", "python tools/evaluate.py checkpoint=zoo:m flip=true",
          "--note", "Trained on an older phantom."])
    card = zoo.card("m")
    assert card["served"]["benchmark"]["dice_mean"] == 0.987 and card["served"]["command"].endswith("flip=true")
    assert card["benchmark"]["dice_mean"] == own["dice_mean"]  # the run's own evaluation is kept
    table = (zoo_dir / "MODEL_ZOO.md").read_text()
    every = f" (every mask {100 * own['all_dice_mean']:.1f} %)"  # the sure masks' Dice, every mask's beside it
    assert f"| 98.7 %{every} | 1.2° / 2.5° / 0.8° |" in table and "checkpoint=zoo:m flip=true" in table
    assert card["served"]["note"] == "Trained on an older phantom." and "). Trained on an older phantom." in table
    assert f"Dice {100 * own['dice_mean']:.1f} %" in table
    with pytest.raises(zoo.ZooError, match="zoo:other: no such model"):
        record_served("other", tmp_path / "summary.json", "c")
    with pytest.raises(SystemExit, match="missing.json: not a readable summary.json"):
        main(["served", "m", str(tmp_path / "missing.json"), "--command", "c"])
