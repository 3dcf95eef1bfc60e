"""Corners of vertebral bodies: sub-pixel peaks, endplates from corners and back, fusion, two runs averaged."""
from __future__ import annotations

import numpy as np
import pytest

from spine_d2.angles import endplate_tilt
from spine_d2.measure.corners import (average_agreeing, corners_from_endplates, endplates_from_corners,
                                      fuse, heatmap_peaks)


def _gaussian_logits(m: int, cx: float, cy: float, sd: float = 1.5) -> np.ndarray:
    yy, xx = np.mgrid[0:m, 0:m] + 0.5
    return -((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sd ** 2) * 4.0


@pytest.mark.parametrize("fit", [0, 5])
@pytest.mark.parametrize("cx,cy", [(10.3, 40.8), (28.0, 28.0), (45.71, 5.2)])
def test_peaks_are_found_to_a_fraction_of_a_heatmap_cell(cx, cy, fit):
    m = 56
    maps = np.stack([_gaussian_logits(m, cx, cy), _gaussian_logits(m, 56 - cx, cy)])[None]
    box = np.array([[100.0, 200.0, 156.0, 228.0]])  # 56 × 28 px: one cell is 1 × 0.5 px
    got = heatmap_peaks(maps, box, fit=fit)[0]
    assert got[0, 0] == pytest.approx(100 + cx, abs=0.1) and got[0, 1] == pytest.approx(200 + cy / 2, abs=0.05)
    assert got[1, 0] == pytest.approx(100 + 56 - cx, abs=0.1)
    assert 0.5 < got[0, 2] <= 1.0  # a sharp peak holds most of the mass
    flat = heatmap_peaks(np.zeros((1, 1, m, m)), box)[0, 0]
    assert flat[2] < 0.01  # no peak: no confidence


def test_peaks_of_many_boxes_at_once_and_on_the_heatmaps_edge():
    m = 56
    spots = [(0.5, 20.5), (55.5, 55.5), (30.2, 0.5), (12.7, 33.3)]  # the first three on an edge cell
    maps = np.stack([np.stack([_gaussian_logits(m, cx, cy, sd=0.8) for cx, cy in spots])] * 3)
    boxes = np.array([[0.0, 0.0, 56.0, 56.0], [10.0, 20.0, 122.0, 48.0], [5.0, 5.0, 5.0, 5.0]])  # last: empty
    got = heatmap_peaks(maps, boxes)
    assert got.shape == (3, 4, 3)
    for r, (x0, y0, x1, y1) in enumerate(boxes):
        sx, sy = max(x1 - x0, 1e-6) / m, max(y1 - y0, 1e-6) / m
        for k, (cx, cy) in enumerate(spots):
            assert got[r, k, 0] == pytest.approx(x0 + cx * sx, abs=0.1 * sx + 1e-6)
            assert got[r, k, 1] == pytest.approx(y0 + cy * sy, abs=0.1 * sy + 1e-6)
    edge = got[0, :3, 2]  # an edge peak has fewer neighbours, all counted once
    assert (edge > 0.5).all() and (edge <= 1.0).all()
    assert heatmap_peaks(np.zeros((0, 4, m, m)), np.zeros((0, 4))).shape == (0, 4, 3)


def test_the_surface_through_5x5_cells_finds_a_noisy_wide_peak_better_than_the_axis_parabolas():
    """The corner head's heatmaps are wide (its one-hot cross-entropy stays ~3.5 nats: an SD of
    ~1.4 cells) and not smooth; 25 cells average the roughness out where 5 do not."""
    rng = np.random.default_rng(0)
    m, n = 56, 300
    truth = rng.uniform(10, 46, (n, 2))
    yy, xx = np.mgrid[0:m, 0:m] + 0.5
    maps = -((xx - truth[:, :1, None]) ** 2 + (yy - truth[:, 1:, None]) ** 2) / (2 * 1.4 ** 2)
    maps = (maps + rng.normal(0, 0.1, maps.shape))[:, None]
    boxes = np.tile([0.0, 0.0, m, m], (n, 1))
    error = {fit: np.hypot(*(heatmap_peaks(maps, boxes, fit=fit)[:, 0, :2] - truth).T).mean() for fit in (0, 5)}
    assert error[5] < 0.1 < error[0] and error[5] < error[0] / 2
    ridge = np.tile(-((np.arange(m) + 0.5 - 20.3) ** 2)[:, None], (1, m))[None, None]  # no maximum along x
    got = heatmap_peaks(ridge, np.array([[0.0, 0.0, m, m]]))[0, 0]
    assert got[1] == pytest.approx(20.3, abs=0.01) and got[0] == pytest.approx(0.5)  # the parabolas': the first column


def test_endplates_from_corners_need_both_ends():
    # order of spine_d2.levels.CORNERS: sa, sp, ia, ip
    c = np.array([[50, 10, 0.9], [10, 12, 0.8], [49, 41, 0.7], [11, 40, 0.02]])
    eps = endplates_from_corners(c, min_score=0.05)
    assert set(eps) == {"superior"}
    line, conf = eps["superior"]
    assert np.array_equal(line, [[50, 10], [10, 12]]) and conf == pytest.approx(0.8)
    back = corners_from_endplates({"superior": line, "inferior": [[49, 41], [11, 40]]})
    assert np.array_equal(back[:, :2], [[50, 10], [10, 12], [49, 41], [11, 40]]) and (back[:, 2] == 1).all()


def test_fusion_weighs_the_corners_by_their_confidence():
    mask = np.array([[40.0, 0.0], [0.0, 0.0]])  # level
    corners = np.array([[40.0, -4.0], [0.0, 0.0]])  # tilted ~5.7°
    tilt = lambda ep: endplate_tilt(ep, 1)  # noqa: E731
    assert tilt(fuse(mask, corners, corner_conf=1e9)) == pytest.approx(tilt(corners), abs=1e-6)
    assert tilt(fuse(mask, corners, corner_conf=1e-9)) == pytest.approx(tilt(mask), abs=1e-6)
    half = tilt(fuse(mask, corners, corner_conf=0.5))
    assert min(tilt(mask), tilt(corners)) < half < max(tilt(mask), tilt(corners))
    assert fuse(None, corners, 0.3) is corners and fuse(mask, None, 0.3) is mask


def test_predictions_with_heatmaps_carry_sub_pixel_corners():
    from types import SimpleNamespace

    from spine_d2.levels import CORNERS
    from spine_d2.measure.instances import instances_from_predictions

    m = 56
    peaks = [(10.3, 12.6), (45.2, 11.1), (9.7, 44.4), (46.6, 45.9)]  # heatmap cells, sa sp ia ip
    maps = np.stack([_gaussian_logits(m, x, y) for x, y in peaks])[None]
    mask = np.zeros((300, 300), bool)
    mask[100:156, 50:106] = True
    pred = SimpleNamespace(pred_masks=mask[None], pred_classes=np.array([1]), scores=np.array([0.9]),
                           pred_boxes=np.array([[50.0, 100.0, 106.0, 156.0]]), pred_keypoint_heatmaps=maps,
                           pred_keypoints=np.zeros((1, 4, 3)))  # detectron2's integer decode, ignored
    (inst,) = instances_from_predictions(pred, ["thoracic", "lumbar", "sacrum", "femoral_head"])
    assert list(inst.corners) == list(CORNERS)
    for name, (x, y) in zip(CORNERS, peaks):
        cx, cy, score = inst.corners[name]
        assert (cx, cy) == (pytest.approx(50 + x, abs=0.1), pytest.approx(100 + y, abs=0.1)) and score > 0.5


def test_two_estimates_of_an_endplate_are_averaged_only_where_they_agree():
    # sa, sp, ia, ip of a body 40 px wide; the second run 2 px lower on the superior endplate
    first = np.array([[140, 100, 0.3], [100, 100, 0.6], [140, 130, 0.5], [100, 130, 0.5]], float)
    second = first.copy()
    second[:2, 1] += 2.0
    second[0, 2] = 0.8
    second[2:, :2] = [[100, 130], [140, 130]]  # the inferior corners swapped: anterior taken posterior
    out = average_agreeing(first, second, agree=0.3)
    assert np.allclose(out[:2, :2], [[140, 101], [100, 101]])  # the mean
    assert out[0, 2] == 0.8 and out[1, 2] == 0.6               # the higher score of the two
    assert np.array_equal(out[2:], first[2:])                  # 40 px apart > 0.3 x 40: the first run's
    assert np.array_equal(average_agreeing(first, second, agree=0.04)[:2], first[:2])  # 2 px > 0.04 x 40


def test_average_agreeing_takes_the_mean_of_every_estimate_that_agrees():
    first = np.array([[140, 100, 0.6], [100, 100, 0.6], [140, 130, 0.6], [100, 130, 0.6]], float)
    turned_left, turned_right, astray = first.copy(), first.copy(), first.copy()
    turned_left[:2, 1] += 3.0   # the superior endplate 3 px lower
    turned_right[:2, 1] -= 1.5  # and 1.5 px higher
    turned_right[0, 2] = 0.9
    astray[:2, 1] += 30.0       # 30 px > 0.3 x 40: another endplate
    out = average_agreeing(first, turned_left, turned_right, astray, agree=0.3)
    assert np.allclose(out[:2, 1], 100 + (3.0 - 1.5) / 3)  # the mean of the three that agree
    assert out[0, 2] == 0.9 and out[1, 2] == 0.6            # the highest score among them
    assert np.array_equal(out[2:], first[2:])               # all four agree on the inferior: unchanged
    assert np.array_equal(average_agreeing(first), first)   # no other estimate: as it was
