"""Config composition of every group, the Hydra -> detectron2 bridge, and the transforms."""
import shlex
import shutil

import numpy as np
import pytest
import yaml
from detectron2.data import detection_utils as utils
from detectron2.structures import PolygonMasks
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from spine_d2.data.transforms import build_augmentations, build_mapper, model_input
from spine_d2.engine.config import build_d2_cfg, load_d2_cfg, phases_of
from spine_d2.engine.phases import ScheduleError
from conftest import run_tool
from spine_d2 import zoo
from test_engine_support import CONF, make_tiny_images, smoke_cfg

GROUPS = {"model": ["paper", "fast"], "schedule": ["paper", "demo", "smoke"],
          "experiment": ["smoke", "demo", "paper", "long"], "dataset": ["synthetic", "labelme"]}


def compose_cfg(*overrides, hydra=False):
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        return compose("config", overrides=["output_dir=/tmp/unused", *overrides],
                       return_hydra_config=hydra)


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_group_composes_and_bridges(group, option):
    extra = ["dataset.root=datasets/x"] if option == "labelme" else []
    c = compose_cfg(f"{group}={option}", *extra)
    cfg = build_d2_cfg(c)
    assert cfg.SOLVER.MAX_ITER == sum(p.iters for p in c.schedule.phases)
    assert cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST == pytest.approx(c.test.nms_thresh)
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 4 and cfg.MODEL.MASK_ON
    assert cfg.OUTPUT_DIR == "/tmp/unused" and cfg.is_frozen()


def test_defaults_are_the_study_and_experiments_override_them():
    c = compose_cfg()
    assert (c.model.name, c.schedule.name, c.input.height, c.input.width) == ("paper", "paper", 840, 360)
    assert c.measure.method and c.resume is False and c.launch.processes_per_machine == 1
    cfg = build_d2_cfg(c)
    assert cfg.SPINE.MEASURE.METHOD == c.measure.method and cfg.SPINE.MEASURE.FRAME.ENABLED
    assert cfg.MODEL.RESNETS.DEPTH == 50 and cfg.MODEL.WEIGHTS.startswith("detectron2://")
    assert cfg.MODEL.RESNETS.NORM == "FrozenBN"
    assert cfg.SOLVER.STEPS == (2000,) and [p.lr_factor for p in phases_of(cfg)] == [1.0, 0.1]
    assert cfg.MODEL.BACKBONE.FREEZE_AT == 0  # the optimizer must hold the phase-2 body
    assert cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST == pytest.approx(1e-4)  # the study's, by default
    smoke = compose_cfg("experiment=smoke")
    assert (smoke.model.name, smoke.schedule.name, smoke.input.height, smoke.solver.warmup_iters) == \
        ("fast", "smoke", 128, 0)


def test_fast_model_from_scratch_uses_group_norm():
    cfg = build_d2_cfg(compose_cfg("model=fast"))
    assert cfg.MODEL.WEIGHTS == "" and cfg.MODEL.RESNETS.DEPTH == 18
    assert cfg.MODEL.RESNETS.NORM == cfg.MODEL.FPN.NORM == cfg.MODEL.ROI_MASK_HEAD.NORM == "GN"
    cfg = build_d2_cfg(compose_cfg("model=fast", "model.weights=x.pkl"))
    assert cfg.MODEL.WEIGHTS == "x.pkl" and cfg.MODEL.RESNETS.NORM == "FrozenBN"


def test_command_line_overrides_reach_detectron2():
    cfg = build_d2_cfg(compose_cfg(
        "solver.base_lr=0.02", "test.nms_thresh=0.5", "dataset.class_map=two_class", "seed=7",
        "++model.d2.MODEL.RPN.POST_NMS_TOPK_TEST=77", "input.mean_intensity=null", "device=cpu",
        "augment.flip.enabled=false"))
    assert cfg.SOLVER.BASE_LR == 0.02 and cfg.MODEL.ROI_HEADS.NMS_THRESH_TEST == 0.5
    assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == 2 and cfg.SEED == 7 and cfg.MODEL.DEVICE == "cpu"
    assert cfg.MODEL.RPN.POST_NMS_TOPK_TEST == 77 and cfg.SPINE.INPUT.MEAN_INTENSITY is None
    assert not cfg.SPINE.AUG.FLIP.ENABLED


def test_bad_configs_fail_clearly():
    with pytest.raises(KeyError, match="NOT_A_KEY"):  # typos in raw detectron2 keys are caught
        build_d2_cfg(compose_cfg("++model.d2.MODEL.NOT_A_KEY=1"))
    with pytest.raises(ScheduleError, match="trains='neck'"):
        build_d2_cfg(compose_cfg("schedule.phases.0.trains=neck"))
    with pytest.raises(ScheduleError, match="schedule.phases"):
        build_d2_cfg(compose_cfg("++model.d2.SOLVER.MAX_ITER=5"))


def test_long_views_is_the_shipped_models_second_stage_and_needs_its_first(tmp_path):
    """experiment=long_views composes as the fine-tune on zoo:phantom-fast-long's card was run (the
    card's overrides), but for the schedule's name; without model.weights tools/train.py stops in
    one line before any film is generated."""
    command = zoo.card("zoo:phantom-fast-long")["command"]
    second = command.split("then (session 66, at d4484fc): python tools/train.py ")[1].split("  (")[0]
    card_overrides = shlex.split(second.replace("<session 35's model_final.pth>", "start.pth"))
    assert "dataset=synthetic_views" in card_overrides and "solver.keep_start=0.5" in card_overrides
    named = OmegaConf.to_container(compose_cfg("experiment=long_views", "model.weights=start.pth"))
    as_run = OmegaConf.to_container(compose_cfg(*card_overrides))
    assert (named["schedule"].pop("name"), as_run["schedule"].pop("name")) == ("views", "long")
    assert named == as_run
    assert build_d2_cfg(compose_cfg("experiment=long_views", "model.weights=start.pth")).SOLVER.MAX_ITER == 1500

    views, phantom = tmp_path / "views", tmp_path / "phantom"
    proc = run_tool("train.py", "experiment=long_views", f"dataset.root={phantom}",
                    f"dataset.train_extra.0.root={views}", f"hydra.run.dir={tmp_path / 'run'}", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "error: solver.keep_start=0.5 mixes the final weights with the starting ones: it needs model.weights" \
        in proc.stderr
    assert not views.exists() and not phantom.exists()


def test_dumped_config_reloads_with_get_cfg(tmp_path):
    cfg = build_d2_cfg(compose_cfg("experiment=demo"))
    (tmp_path / "d2_config.yaml").write_text(cfg.dump())
    again = load_d2_cfg(tmp_path / "d2_config.yaml")
    assert yaml.safe_load(again.dump()) == yaml.safe_load(cfg.dump())
    assert [p.trains for p in phases_of(again)] == ["heads", "all"] and again.SPINE.INPUT.FIT == "keep_aspect"


@pytest.mark.parametrize("override,message", [
    ("input.heigth=300", "Key 'heigth' not in 'InputConfig'"),          # a typo in a key
    ("solver.base_lr=fast", "could not be converted to Float"),           # a wrong type
    ("input.fit=stretch", "expected one of [resize, keep_aspect]"),       # a value outside the choices
    ("augment.rotation.prob=often", "could not be converted to Float"),
    ("measure.methd=paper", "Key 'methd' not in 'MeasureConfig'"),
    ("measure.frame.enabled=maybe", "is not a valid bool"),
    ("dataset.class_map=three_class", "expected one of [two_class, default, per_level]"),
    ("schedule.phases.0.iters=many", "could not be converted to Integer"),
    ("model.corner_head=[a,b]", "could not be converted to Integer"),
])
def test_a_typo_or_wrong_type_fails_at_composition_with_hydras_message(override, message):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException) as e:
        compose_cfg(override)
    assert message in str(e.value.__cause__ or e.value)


@pytest.mark.parametrize("primary,typo,message", [
    ("config", "augment:\n  flip:\n    enable: false\n", "Key 'enable' not in 'FlipConfig'"),
    ("config", "solver:\n  base_lr: 1e-3x\n", "could not be converted to Float"),
    ("evaluate", "measure:\n  frame:\n    max_sidee: 5\n", "Key 'max_sidee' not in 'FrameConfig'"),
    ("predict", "measure:\n  method: best\n", "expected one of"),
    ("check_dataset", "dataset:\n  strict: sometimes\n", "is not a valid bool"),
    ("measure_dataset", "dataset:\n  mesurements: m.csv\n", "Key 'mesurements' not in 'DatasetConfig'"),
])
def test_a_typo_in_a_config_file_fails_at_composition(tmp_path, primary, typo, message):
    """Every tool's config: a key of ours written wrong in a YAML file stops composition."""
    from hydra.errors import ConfigCompositionException

    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / f"{primary}.yaml").write_text((conf / f"{primary}.yaml").read_text() + "\n" + typo)
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        with pytest.raises(ConfigCompositionException) as e:
            compose(primary, overrides=["++dataset.root=x"] if "dataset" in typo else [])
    assert message in str(e.value.__cause__ or e.value)


def test_a_dumped_config_reloads_with_plain_get_cfg_and_add_spine_config(tmp_path):
    from detectron2.config import get_cfg

    from spine_d2.engine.config import add_spine_config, from_yacs

    cfg = build_d2_cfg(compose_cfg("experiment=smoke", "measure.method=paper", "measure.frame.aspect=1.5"))
    (tmp_path / "d2_config.yaml").write_text(cfg.dump())
    again = add_spine_config(get_cfg())
    again.merge_from_file(str(tmp_path / "d2_config.yaml"))
    assert yaml.safe_load(again.dump()) == yaml.safe_load(cfg.dump())
    m = from_yacs(again.SPINE.MEASURE)
    assert (m["method"], m["frame"]["aspect"], m["slope_threshold"]) == ("paper", 1.5, 1.7)
    assert [(p.name, p.iters, p.lr_factor, p.trains) for p in phases_of(again)] == \
        [("heads", 2, 1.0, "heads"), ("all", 2, 0.1, "all")]


def test_a_config_dumped_before_the_schema_still_loads(tmp_path):
    """Runs trained before SPINE.MEASURE and SPINE.PHASES were nodes: MEASURE a JSON string,
    PHASES parallel tuples."""
    from spine_d2.engine.config import from_yacs
    from spine_d2.measure import MeasureConfig

    old = {"SPINE": {"CLASS_MAP": "two_class", "LOG_PERIOD": 5,
                     "MEASURE": '{"method": "paper", "min_area": 12.0, "frame": {"enabled": false}}',
                     "PHASES": {"NAMES": ["heads", "all"], "ITERS": [3, 4], "LR_FACTORS": [1.0, 0.1],
                                "TRAINS": ["heads", "res3+"]}}}
    (tmp_path / "d2_config.yaml").write_text(yaml.safe_dump(old))
    cfg = load_d2_cfg(tmp_path / "d2_config.yaml")
    assert [(p.name, p.iters, p.lr_factor, p.trains) for p in phases_of(cfg)] == \
        [("heads", 3, 1.0, "heads"), ("all", 4, 0.1, "res3+")]
    m = MeasureConfig.from_cfg(from_yacs(cfg.SPINE.MEASURE))
    assert (m.method, m.min_area, m.frame.enabled, m.chain_rule) == ("paper", 12.0, False, "turn")
    assert (cfg.SPINE.CLASS_MAP, cfg.SPINE.LOG_PERIOD) == ("two_class", 5)


def test_search_and_launcher_configs_compose():
    c = compose_cfg("hparams_search=optuna", hydra=True)
    assert c.hydra.sweeper._target_.endswith("OptunaSweeper") and c.optimized_metric == "segm/AP"
    assert "solver.base_lr" in c.hydra.sweeper.params
    assert compose_cfg("hydra/launcher=local", hydra=True).hydra.launcher._target_.endswith("JoblibLauncher")
    slurm = compose_cfg("hydra/launcher=slurm", hydra=True).hydra.launcher
    assert slurm._target_.endswith("SlurmLauncher") and slurm.timeout_min == 480
    assert compose_cfg(hydra=True).hydra.callbacks.sweep_summary._target_.endswith("SweepSummary")


def test_polygons_move_with_pixels_under_every_augmentation(tmp_path):
    (d,) = make_tiny_images(tmp_path, n=1)
    cfg = build_d2_cfg(smoke_cfg(tmp_path, "augment.flip.prob=1.0", "augment.rotation.prob=1.0",
                                 "augment.rotation.min_deg=5", "augment.contrast.prob=1.0",
                                 "input.height=256", "input.width=128"), datasets={"train": "x", "test": "y"})
    np.random.seed(3)
    out = build_mapper(cfg, is_train=True)(d)
    img = out["image"].numpy().mean(0)
    h, w = img.shape
    assert 0.85 * 256 <= h <= 1.15 * 256 and abs(h / w - 2) < 0.05
    masks = out["instances"].gt_masks
    assert isinstance(masks, PolygonMasks) and len(masks) == len(d["annotations"])
    drawn = np.zeros((h, w), bool)
    for m in masks.polygons:
        drawn |= utils.polygons_to_bitmask(m, h, w)
    bright = img > img.mean() + 0.5 * img.std()
    iou = (drawn & bright).sum() / (drawn | bright).sum()
    assert iou > 0.85, iou
    boxes = out["instances"].gt_boxes.tensor.numpy()  # recomputed from the moved polygons
    assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])


def test_photometric_changes_pixels_only_and_is_off_in_evaluation(tmp_path):
    (d,) = make_tiny_images(tmp_path, n=1)
    keys = ["augment.photometric.enabled=true", "augment.photometric.prob=1.0", "augment.scale.enabled=false",
            "augment.rotation.enabled=false", "augment.contrast.enabled=false", "augment.flip.enabled=false",
            "input.mean_intensity=null"]
    cfg = build_d2_cfg(smoke_cfg(tmp_path, *keys), datasets={"train": "x", "test": "y"})
    plain = build_d2_cfg(smoke_cfg(tmp_path, *keys[2:]), datasets={"train": "x", "test": "y"})
    np.random.seed(0)
    out = build_mapper(cfg, is_train=True)(d)
    np.random.seed(0)
    ref = build_mapper(plain, is_train=True)(d)
    assert out["image"].shape == ref["image"].shape
    assert np.abs(out["image"].float() - ref["image"].float()).mean() > 1.0  # another film's look
    for a, b in zip(out["instances"].gt_masks.polygons, ref["instances"].gt_masks.polygons):
        assert all(np.array_equal(p, q) for p, q in zip(a, b))  # the anatomy has not moved
    assert "Photometric" not in [type(a).__name__ for a in build_augmentations(cfg, is_train=False)]


def test_a_training_crop_clips_polygons_with_the_pixels_and_drops_instances_left_outside(tmp_path):
    (d,) = make_tiny_images(tmp_path, n=1)
    cfg = build_d2_cfg(smoke_cfg(tmp_path, "augment.crop.enabled=true", "augment.crop.height=60",
                                 "augment.crop.width=200", "augment.scale.enabled=false",
                                 "augment.rotation.enabled=false", "augment.contrast.enabled=false",
                                 "augment.flip.enabled=false", "input.height=256", "input.width=128"),
                       datasets={"train": "x", "test": "y"})
    for seed in range(6):
        np.random.seed(seed)
        out = build_mapper(cfg, is_train=True)(d)
        img = out["image"].numpy().mean(0)
        h, w = img.shape
        assert h == 60 and w == 128  # the crop's height; the width is the whole (narrower) image
        masks = out["instances"].gt_masks
        assert len(masks) < len(d["annotations"])  # a 60 px window cannot hold the whole spine
        drawn = np.zeros((h, w), bool)
        for m in masks.polygons:
            drawn |= utils.polygons_to_bitmask(m, h, w)
        bright = img > img.mean() + 0.5 * img.std()
        if bright.any():
            assert (drawn & bright).sum() / (drawn | bright).sum() > 0.75
    # evaluation and prediction never crop
    assert "RandomCrop" not in [type(a).__name__ for a in build_augmentations(cfg, is_train=False)]


def test_preprocessing_is_the_same_in_evaluation_and_prediction(tmp_path):
    (d,) = make_tiny_images(tmp_path, n=1)
    cfg = build_d2_cfg(smoke_cfg(tmp_path), datasets={"train": "x", "test": "y"})
    ev = build_mapper(cfg, is_train=False)(d)
    image = utils.read_image(d["file_name"], format=cfg.INPUT.FORMAT)
    pred = model_input(image, cfg)
    assert ev["image"].shape == pred["image"].shape == (3, 128, 64)
    assert np.array_equal(ev["image"].numpy(), pred["image"].numpy())
    assert float(pred["image"].mean()) == pytest.approx(128.0, rel=1e-3)  # mean-intensity normalised
    assert (pred["height"], pred["width"]) == image.shape[:2]
    names = [type(a).__name__ for a in build_augmentations(cfg, is_train=False)]
    assert names == ["ResizeToInput", "MeanIntensityNormalize"]
    keep = build_d2_cfg(smoke_cfg(tmp_path, "input.fit=keep_aspect", "input.height=100", "input.width=100"),
                        datasets={"train": "x", "test": "y"})
    assert model_input(image, keep)["image"].shape == (3, 100, 50)
