"""Dice/IoU on hand-made masks: whole image, per class, per level (Hungarian matching)."""
import itertools
import math

import numpy as np
import pytest

from spine_d2.evaluation.segmentation import (
    image_overlap,
    image_segmentation,
    match_instances,
    overlap,
    pairwise_iou,
    per_class_overlap,
    per_level_overlap,
    polygons_to_mask,
)


def box(shape, x0, x1, y0=0, y1=None):
    """Bool mask with pixels x0 ≤ x < x1, y0 ≤ y < y1 set."""
    m = np.zeros(shape, bool)
    m[y0:shape[0] if y1 is None else y1, x0:x1] = True
    return m


def test_overlap_by_hand():
    a = box((4, 10), 0, 4)          # 16 px
    b = box((4, 10), 2, 6)          # 16 px, 8 shared
    s = overlap(a, b)
    assert s["dice"] == pytest.approx(2 * 8 / 32)
    assert s["iou"] == pytest.approx(8 / 24)
    assert overlap(a, a) == {"dice": 1.0, "iou": 1.0}
    assert overlap(a, np.zeros_like(a)) == {"dice": 0.0, "iou": 0.0}
    both_empty = overlap(np.zeros_like(a), np.zeros_like(a))
    assert math.isnan(both_empty["dice"]) and math.isnan(both_empty["iou"])
    with pytest.raises(ValueError, match="sizes differ"):
        overlap(a, np.zeros((5, 10), bool))


def test_image_overlap_is_union_of_all_masks():
    shape = (2, 20)
    gt = [box(shape, 0, 5), box(shape, 10, 15)]               # 20 px
    pred = [box(shape, 0, 5), box(shape, 12, 17), box(shape, 3, 4)]  # union 0-5, 12-17: 20 px
    # shared: 0-5 (10 px) + 12-15 (6 px) = 16; dice = 32/40, iou = 16/24
    s = image_overlap(pred, gt)
    assert s["dice"] == pytest.approx(32 / 40)
    assert s["iou"] == pytest.approx(16 / 24)
    assert image_overlap([], gt) == {"dice": 0.0, "iou": 0.0}
    assert math.isnan(image_overlap([], [], shape=shape)["dice"])
    with pytest.raises(ValueError, match="image size"):
        image_overlap([], [])


def test_polygons_to_mask_fills_the_square_including_its_border():
    m = polygons_to_mask([[1, 1, 4, 1, 4, 4, 1, 4]], (6, 6))
    expected = np.zeros((6, 6), bool)
    expected[1:5, 1:5] = True
    assert (m == expected).all()
    # two parts of one structure, (N, 2) form; degenerate polygons are skipped
    m2 = polygons_to_mask([[[0, 0], [1, 0], [1, 1], [0, 1]], [5, 5, 5, 5]], (6, 6))
    assert m2.sum() == 4


def test_hungarian_matching_beats_greedy():
    shape = (1, 20)
    gt = [box(shape, 0, 10), box(shape, 10, 20)]
    pred = [box(shape, 2, 14), box(shape, 0, 6)]
    # by hand: pred0–gt0 8/14, pred0–gt1 4/18, pred1–gt0 6/10, pred1–gt1 0
    iou = pairwise_iou(pred, gt)
    assert iou == pytest.approx(np.array([[8 / 14, 4 / 18], [6 / 10, 0.0]]))
    # greedy in prediction order would give pred0→gt0 only (8/14); the optimum matches both
    matches = sorted(match_instances(pred, gt))
    assert [(p, g) for p, g, _ in matches] == [(0, 1), (1, 0)]
    assert [v for _, _, v in matches] == pytest.approx([4 / 18, 6 / 10])
    # classes forbid cross-class pairs: pred1 ('b') matches nothing, so pred0 takes gt0 again
    only_same = match_instances(pred, gt, pred_classes=["a", "b"], gt_classes=["a", "a"])
    assert [(p, g) for p, g, _ in only_same] == [(0, 0)]


def test_matching_is_the_optimum_on_random_masks():
    rng = np.random.default_rng(3)
    shape = (1, 60)
    gt = [box(shape, s, s + 10) for s in (0, 12, 25, 40)]
    pred = [box(shape, int(s), int(s) + int(w)) for s, w in zip(rng.integers(0, 45, 4),
                                                              rng.integers(5, 15, 4))]
    iou = pairwise_iou(pred, gt)
    best = max(sum(iou[i, p] for i, p in enumerate(perm)) for perm in itertools.permutations(range(4)))
    assert sum(v for _, _, v in match_instances(pred, gt)) == pytest.approx(best)


def test_pairwise_iou_counts_every_shared_pixel_of_irregular_empty_and_disjoint_masks():
    rng = np.random.default_rng(5)
    shape = (40, 50)
    masks = []
    for _ in range(6):  # ragged blobs whose boxes overlap in part
        m = np.zeros(shape, bool)
        y, x = rng.integers(0, 30), rng.integers(0, 40)
        m[y:y + rng.integers(3, 15), x:x + rng.integers(3, 15)] = True
        masks.append(m & (rng.random(shape) > 0.3))
    masks.append(np.zeros(shape, bool))  # empty
    pred, gt = masks[:4], masks[3:]
    iou = pairwise_iou(pred, gt)
    for i, p in enumerate(pred):
        for j, g in enumerate(gt):
            union = np.count_nonzero(p | g)
            want = np.count_nonzero(p & g) / union if union else 0.0
            assert iou[i, j] == pytest.approx(want, rel=1e-6)
    assert iou[3, 0] == pytest.approx(1.0) and (iou[:, -1] == 0).all()


def test_per_class_and_per_level():
    shape = (1, 30)
    gt = [box(shape, 0, 10), box(shape, 10, 20), box(shape, 20, 30)]
    gt_classes, levels = ["lumbar", "lumbar", "sacrum"], ["L4", "L5", "S1"]
    pred = [box(shape, 10, 20), box(shape, 0, 5)]          # L5 exact, L4 half, S1 missed
    pred_classes = ["lumbar", "lumbar"]
    lv = per_level_overlap(pred, gt, levels)
    assert lv["L5"] == {"dice": 1.0, "iou": 1.0, "pred": 0}
    assert lv["L4"]["dice"] == pytest.approx(2 * 5 / 15) and lv["L4"]["pred"] == 1
    assert lv["S1"] == {"dice": 0.0, "iou": 0.0, "pred": -1}
    cls = per_class_overlap(pred, pred_classes, gt, gt_classes)
    assert cls["lumbar"]["dice"] == pytest.approx(2 * 15 / 35)
    assert cls["sacrum"] == {"dice": 0.0, "iou": 0.0}


def test_image_segmentation_row_leaves_femoral_heads_out_of_the_whole_image_score():
    shape = (1, 40)
    gt = [box(shape, 0, 10), box(shape, 30, 40)]
    pred = [box(shape, 0, 10), box(shape, 20, 25)]          # vertebra exact; femoral head wrong
    row = image_segmentation(pred, ["lumbar", "femoral_head"], gt, ["lumbar", "femoral_head"],
                             ["L3", None])
    assert row["dice"] == 1.0 and row["iou"] == 1.0
    assert row["dice_femoral_head"] == 0.0 and row["dice_lumbar"] == 1.0
    assert row["dice_L3"] == 1.0 and "dice_None" not in row


def _strays_scene():
    """Two lumbar bodies and a femoral head drawn; found: the two vertebrae (one exact, one half),
    a stray in the pelvis, the femoral head. → shape, gt, gt_classes, pred, classes."""
    shape = (1, 40)
    gt = [box(shape, 0, 10), box(shape, 10, 20), box(shape, 30, 40)]
    pred = [box(shape, 0, 10), box(shape, 10, 15), box(shape, 24, 30), box(shape, 30, 40)]
    return shape, gt, ["lumbar", "lumbar", "femoral_head"], pred, ["lumbar", "lumbar", "sacrum", "femoral_head"]


def test_the_named_vertebrae_score_without_the_strays_against_the_same_ground_truth():
    shape, gt, gt_classes, pred, classes = _strays_scene()
    row = image_segmentation(pred, classes, gt, gt_classes, named_masks=pred[:2])
    assert row["dice"] == pytest.approx(2 * 15 / (21 + 20))     # the stray counts against all masks
    assert row["named_dice"] == pytest.approx(2 * 15 / (15 + 20))
    assert row["named_iou"] == pytest.approx(15 / 20)
    nothing = image_segmentation(pred, classes, gt, gt_classes, named_masks=[], shape=shape)
    assert nothing["named_dice"] == 0.0 and nothing["dice"] == row["dice"]
    assert "named_dice" not in image_segmentation(pred, classes, gt, gt_classes)


def test_with_scores_the_masks_the_model_is_unsure_of_are_scored_apart():
    _, gt, gt_classes, pred, classes = _strays_scene()
    # the two vertebrae sure, the stray and the femoral head doubted
    row = image_segmentation(pred, classes, gt, gt_classes, ["L3", "L4", None],
                             pred_scores=[0.99, 0.6, 0.2, 0.3], min_score=0.5)
    assert row["dice"] == pytest.approx(2 * 15 / (15 + 20))     # the stray scores under 0.5
    assert row["all_dice"] == pytest.approx(2 * 15 / (21 + 20))  # every mask, as without scores
    assert row["all_iou"] == pytest.approx(15 / 26)
    assert row["dice_femoral_head"] == 0.0                      # left out of the classes too
    assert row["dice_L4"] == pytest.approx(2 * 5 / 15) and "dice_sacrum" not in row
    plain = image_segmentation(pred, classes, gt, gt_classes)
    assert plain["dice"] == row["all_dice"] and "all_dice" not in plain
    with pytest.raises(ValueError, match="one score per predicted mask"):
        image_segmentation(pred, classes, gt, gt_classes, pred_scores=[0.9], min_score=0.5)
