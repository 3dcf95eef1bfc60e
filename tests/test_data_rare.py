"""Rare anatomies drawn more often: repeat factors from one angle's spread, and the trainer's sampler."""
import collections
import itertools

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from spine_d2.data.rare import rarity_repeats
from spine_d2.engine.config import RareConfigError, build_d2_cfg
from spine_d2.engine.run import USER_ERRORS
from spine_d2.engine.trainer import ResumableRepeatSampler, rare_repeats
from test_engine_support import register_tiny, smoke_cfg


def test_common_films_once_rare_ones_more_the_rarest_at_the_cap():
    rng = np.random.default_rng(0)
    ss = np.concatenate([rng.normal(38, 8, 200), [62.0, 70.0, 75.0, 5.0]])
    f = rarity_repeats(ss, bandwidth_deg=5, max_repeat=3)
    assert f.min() == 1.0 and f.max() == 3.0
    assert (f[np.abs(ss - 38) < 4] == 1.0).all()          # the bulk: once per epoch
    assert (f[-4:] > 2.0).all()                            # the tails: both sides
    assert f[-2] >= f[-4]                                  # 70° rarer than 62°
    assert np.all(np.diff(f[np.argsort(ss)][ss[np.argsort(ss)] > 45]) >= -1e-9)  # rises into the tail


def test_unmeasured_films_are_drawn_once_and_the_cap_holds():
    bulk = list(np.arange(30, 40.5, 0.5))
    f = rarity_repeats(bulk + [np.nan, 90], bandwidth_deg=5, max_repeat=2.5)
    assert f[-2] == 1.0 and f[-1] == 2.5 and (f[:-2] < 1.5).all()
    assert (rarity_repeats([np.nan, 40.0]) == 1.0).all()   # nothing to compare with
    with pytest.raises(ValueError, match="bandwidth"):
        rarity_repeats([1, 2], bandwidth_deg=0)
    with pytest.raises(ValueError, match="max_repeat"):
        rarity_repeats([1, 2], max_repeat=0.5)


@pytest.fixture()
def tiny(tmp_path):
    names = register_tiny(tmp_path / "data", n=6)
    stems = [r["image"] for r in DatasetCatalog.get(names["train"])]
    # five films with an ordinary sacral slope, one far steeper
    MetadataCatalog.get(names["train"]).set(
        measurements={s: {"SS": v} for s, v in zip(stems, [38, 39, 40, 41, 37, 80])})
    return names, stems


def test_the_trainer_draws_the_rare_film_more_often_and_resumes_its_stream(tmp_path, tiny):
    names, stems = tiny
    cfg = build_d2_cfg(smoke_cfg(tmp_path / "run", "dataloader.rare.angle=SS", "dataloader.rare.max_repeat=2"),
                       datasets=names)
    dataset = DatasetCatalog.get(names["train"])
    factors = rare_repeats(cfg, {names["train"]: dataset})
    assert [r["image"] for r in dataset] == stems
    assert factors[5] == 2.0 and (factors[:5] < 1.1).all()
    draws = list(itertools.islice(iter(ResumableRepeatSampler(factors, seed=3)), 8000))
    share = collections.Counter(draws)[5] / len(draws)
    assert share == pytest.approx(2 / factors.sum(), abs=0.02)   # twice per epoch, the rest about once
    assert share > 0.25                                    # uniform draws: 1 in 6
    resumed = list(itertools.islice(iter(ResumableRepeatSampler(factors, seed=3, start=100)), 50))
    assert resumed == draws[100:150]
    off = build_d2_cfg(smoke_cfg(tmp_path / "off"), datasets=names)
    assert rare_repeats(off, {names["train"]: dataset}) is None


def test_each_training_folder_draws_by_its_own_measurements(tmp_path, tiny):
    """With dataset.train_extra the films of two folders may share a stem: each film's angle is read
    from its own folder's measurements."""
    names, stems = tiny
    more = register_tiny(tmp_path / "more", n=6)["train"]
    assert [r["image"] for r in DatasetCatalog.get(more)] == stems          # the same stems
    MetadataCatalog.get(more).set(measurements={s: {"SS": v} for s, v in zip(stems, [85, 39, 40, 41, 37, 38])})
    cfg = build_d2_cfg(smoke_cfg(tmp_path / "run", "dataloader.rare.angle=SS", "dataloader.rare.max_repeat=2"),
                       datasets={**names, "train_extra": [more]})
    assert cfg.DATASETS.TRAIN == (names["train"], more)
    factors = rare_repeats(cfg, {n: DatasetCatalog.get(n) for n in cfg.DATASETS.TRAIN})
    assert len(factors) == 12 and factors[5] > 1.5 and factors[6] > 1.5     # the 80° film here, the 85° there
    assert (factors[[0, 1, 2, 3, 4, 7, 8, 9, 10, 11]] < 1.1).all()


def test_an_unknown_angle_is_a_clear_error(tmp_path, tiny):
    names, _ = tiny
    with pytest.raises(RareConfigError, match="dataloader.rare.angle=SSS: not an angle"):
        build_d2_cfg(smoke_cfg(tmp_path / "run", "dataloader.rare.angle=SSS"), datasets=names)
    with pytest.raises(RareConfigError, match="bandwidth_deg > 0"):
        build_d2_cfg(smoke_cfg(tmp_path / "run", "dataloader.rare.angle=SS", "dataloader.rare.bandwidth_deg=0"),
                     datasets=names)
    assert issubclass(RareConfigError, USER_ERRORS)        # one line for the user, not a trace
