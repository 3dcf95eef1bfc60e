"""Corner keypoints for training: clicked corners, the phantom's exact endplates, the outline rule."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from spine_d2.data.keypoints import KEYPOINT_NAMES, add_keypoints
from spine_d2.data.labelme import load_labelme_dataset
from spine_d2.frames import apply_homography
from spine_d2.levels import CORNERS, get_class_map
from spine_d2.synthetic.generate import generate_dataset

CLASSES = list(get_class_map("default").classes)


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = generate_dataset(tmp_path_factory.mktemp("kp") / "ph", 3, seed=8, workers=1, progress=False,
                            photo_fraction=0.0, partial_fraction=0.0)
    return load_labelme_dataset(root, "default")


def _kp(ann) -> np.ndarray:
    return np.asarray(ann["keypoints"], dtype=float).reshape(len(KEYPOINT_NAMES), 3)


def test_phantom_corners_are_its_exact_endplates(records):
    assert KEYPOINT_NAMES == CORNERS
    seen = 0
    for rec in records:
        rec = add_keypoints(copy.deepcopy(rec), CLASSES)
        H = np.asarray(rec["spine_d2"]["homography"])
        for ann in rec["annotations"]:
            kp = _kp(ann)
            sides = rec["spine_d2"]["endplates"].get(ann.get("label"), {})
            if not sides:
                assert (kp[:, 2] == 0).all()  # femoral heads, bodies without a visible endplate
                continue
            for side, idx in (("superior", [0, 1]), ("inferior", [2, 3])):
                if side in sides:
                    assert np.allclose(kp[idx, :2], apply_homography(H, sides[side]), atol=1e-6)
                    assert (kp[idx, 2] == 2).all()
                    seen += 1
                else:
                    assert (kp[idx, 2] == 0).all()
    assert seen > 20


def test_outlines_alone_give_corners_by_the_rule(records):
    near, total = 0, 0
    for rec in records:
        exact = add_keypoints(copy.deepcopy(rec), CLASSES)
        bare = copy.deepcopy(rec)
        bare.pop("spine_d2")
        ruled = add_keypoints(bare, CLASSES)
        for a, b in zip(exact["annotations"], ruled["annotations"]):
            ka, kb = _kp(a), _kp(b)
            both = (ka[:, 2] == 2) & (kb[:, 2] == 2)
            total += both.sum()
            size = np.ptp(np.asarray(a["segmentation"][0]).reshape(-1, 2), axis=0).max()
            near += (np.linalg.norm(ka[both, :2] - kb[both, :2], axis=1) < 0.15 * size).sum()
            if (kb[:, 2] == 2).all():
                assert kb[:2, 1].mean() < kb[2:, 1].mean()  # superior corners above the inferior ones
    assert total > 20 and near / total > 0.9
    none = add_keypoints(copy.deepcopy(bare), CLASSES, rule=False)
    assert all((_kp(a)[:, 2] == 0).all() for a in none["annotations"])


def test_clicked_corners_come_first(records):
    rec = copy.deepcopy(records[0])
    ann = next(a for a in rec["annotations"] if a.get("label") == "L3")
    ann["corners"] = {"sa": [1.0, 2.0], "sp": [3.0, 4.0]}
    kp = _kp(add_keypoints(rec, CLASSES)["annotations"][rec["annotations"].index(ann)])
    assert np.array_equal(kp[:2], [[1, 2, 2], [3, 4, 2]]) and (kp[2:, 2] == 0).all()
