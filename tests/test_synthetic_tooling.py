"""Phantom configuration: knobs and presets, the Hydra tool, and ensure_dataset."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields

import pytest
from omegaconf import OmegaConf

from conftest import REPO, run_tool
from spine_d2.synthetic.knobs import PRESETS, Knobs, knobs_for
from spine_d2.synthetic.generate import ensure_dataset


def test_config_lists_every_knob():
    cfg = OmegaConf.load(REPO / "conf" / "make_synthetic.yaml")
    assert set(cfg.knobs) == {f.name for f in fields(Knobs)}
    assert cfg.difficulty in PRESETS


def test_presets_and_overrides():
    easy, hard = knobs_for("easy"), knobs_for("hard")
    assert easy.moire == 0 and hard.moire > knobs_for("realistic").moire
    assert hard.rotation_deg > easy.rotation_deg
    assert knobs_for("hard", glare=0.1, jpeg_quality_min=None).glare == 0.1
    with pytest.raises(ValueError, match="unknown phantom knob"):
        knobs_for("easy", glair=0.3)
    with pytest.raises(ValueError, match="unknown difficulty"):
        knobs_for("medium")


def test_ensure_dataset(tmp_path):
    with pytest.raises(FileNotFoundError, match="generate is null"):
        ensure_dataset({"root": str(tmp_path / "none"), "generate": None})
    root = ensure_dataset({"root": str(tmp_path / "ph"), "generate": {"n": 2, "seed": 3, "difficulty": "easy"}})
    assert len(list((root / "images").iterdir())) == 2
    stamp = (root / "measurements.csv").stat().st_mtime_ns
    assert ensure_dataset({"root": str(root), "generate": {"n": 5, "seed": 1}}) == root
    assert (root / "measurements.csv").stat().st_mtime_ns == stamp


def test_ensure_dataset_makes_the_folders_that_only_train_when_asked(tmp_path):
    """`train_extra` folders are generated for training (train_extra=True) and left out otherwise;
    one that is never generated and absent is an error naming its key."""
    extra = {"root": str(tmp_path / "more"), "generate": {"n": 2, "seed": 4, "difficulty": "easy"}}
    cfg = {"root": str(tmp_path / "ph"), "generate": {"n": 2, "seed": 3, "difficulty": "easy"}, "train_extra": [extra]}
    ensure_dataset(cfg)
    assert (tmp_path / "ph").is_dir() and not (tmp_path / "more").exists()
    assert ensure_dataset(cfg, train_extra=True) == tmp_path / "ph"
    assert len(list((tmp_path / "more" / "images").iterdir())) == 2
    assert ((tmp_path / "more" / "measurements.csv").read_bytes()
            != (tmp_path / "ph" / "measurements.csv").read_bytes())   # another seed: other films
    cfg["train_extra"].append({"root": str(tmp_path / "mine"), "generate": None})
    with pytest.raises(FileNotFoundError, match=r"dataset.train_extra\[1\].generate is null"):
        ensure_dataset(cfg, train_extra=True)


def test_tool_writes_a_dataset(tmp_path):
    out = tmp_path / "tool"
    args = [f"out={out}", "n=2", "seed=7", "difficulty=hard", "knobs.glare=1.0", "observer_sd=1.5", "workers=1",
            "progress=false"]
    run_tool("make_synthetic.py", *args, cwd=tmp_path, timeout=120)
    assert (out / "gallery.jpg").is_file() and (out / "measurements_observer.csv").is_file()
    assert not (tmp_path / "outputs").exists() and not (tmp_path / ".hydra").exists()
    again = run_tool("make_synthetic.py", *args, cwd=tmp_path, check=False, timeout=120)
    assert again.returncode == 2 and "never overwrites" in again.stdout + again.stderr


def test_the_training_configs_phantom_is_made_without_torch(tmp_path):
    """`python -m spine_d2.synthetic [train.py overrides]` (what `make demo` runs while torch installs)
    writes the dataset tools/train.py would generate, byte for byte, with torch and detectron2
    unimportable; a folder that is there is left alone; a bad override is one clear line."""
    gen = ["dataset.generate.n=2", "dataset.generate.seed=3", "dataset.generate.difficulty=easy"]
    blocked = ("import runpy, sys; sys.modules['torch'] = sys.modules['detectron2'] = None; "
               "sys.argv[0] = 'spine_d2.synthetic'; runpy.run_module('spine_d2.synthetic', run_name='__main__')")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}

    def run(*overrides):
        return subprocess.run([sys.executable, "-c", blocked, *overrides], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    made = run("experiment=demo", f"dataset.root={tmp_path / 'ph'}", *gen)
    assert made.returncode == 0, made.stderr[-2000:]
    direct = ensure_dataset({"root": str(tmp_path / "direct"), "generate": {"n": 2, "seed": 3, "difficulty": "easy"}})
    files = sorted(p.relative_to(direct) for p in direct.rglob("*") if p.is_file())
    assert len(files) >= 6
    for rel in files:
        assert (tmp_path / "ph" / rel).read_bytes() == (direct / rel).read_bytes(), rel
    stamp = (tmp_path / "ph" / "measurements.csv").stat().st_mtime_ns
    again = run("experiment=demo", f"dataset.root={tmp_path / 'ph'}", *gen)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert (tmp_path / "ph" / "measurements.csv").stat().st_mtime_ns == stamp
    extra = [f"dataset.root={tmp_path / 'ph'}", *gen, "dataset=synthetic_plus",
             f"dataset.train_extra.0.root={tmp_path / 'more'}", "dataset.train_extra.0.generate.n=2",
             "dataset.train_extra.0.generate.difficulty=easy"]
    more = run("experiment=demo", *extra)                  # the folder that only trains; the phantom is there
    assert more.returncode == 0 and "generating " + str(tmp_path / "more") in more.stdout, more.stderr[-2000:]
    assert len(list((tmp_path / "more" / "images").iterdir())) == 2
    assert (tmp_path / "ph" / "measurements.csv").stat().st_mtime_ns == stamp
    bad = run("experiment=nope")
    assert bad.returncode == 2 and "cannot compose the config" in bad.stderr and "Traceback" not in bad.stderr


def test_synthetic_views_trains_on_partial_views_beside_the_default_phantom(tmp_path):
    """dataset=synthetic_views: the default phantom, its test split untouched, and a folder that only
    trains whose films are partial views, none of the whole spine."""
    import json

    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["experiment=long", "dataset=synthetic_views"])
    assert cfg.dataset.root == "datasets/phantom428" and cfg.dataset.generate.seed == 1
    (extra,) = cfg.dataset.train_extra
    assert extra.generate.knobs.partial_fraction == 1.0
    spec = OmegaConf.to_container(extra.generate)
    root = ensure_dataset({"root": str(tmp_path / "views"), "generate": {**spec, "n": 4, "difficulty": "easy"}})
    views = [json.loads(p.read_text())["spine_d2"]["capture"]["view"] for p in (root / "annotations").glob("*.json")]
    assert len(views) == 4 and "full" not in views
