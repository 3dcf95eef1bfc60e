"""Windows along the spine for the high-resolution pass: cover the spine, stand it upright, map back."""
from __future__ import annotations

import numpy as np
import pytest

from spine_d2.engine.windows import spine_windows


def _spine_boxes(n=17, tilt_deg=12.0, step=30.0, size=24.0, start=(300.0, 80.0)):
    t = np.radians(tilt_deg)
    axis = np.array([np.sin(t), np.cos(t)])
    centres = np.array(start) + np.outer(np.arange(n) * step, axis)
    return np.hstack([centres - size / 2, centres + size / 2]), centres


@pytest.mark.parametrize("n,max_windows", [(17, 3), (5, 3), (17, 1)])
def test_windows_cover_the_spine_upright(n, max_windows):
    boxes, centres = _spine_boxes(n)
    wins = spine_windows(boxes, (544, 544), max_windows=max_windows)
    assert 1 <= len(wins) <= max_windows
    corners = np.concatenate([boxes[:, [0, 1]], boxes[:, [2, 3]]])
    for p in corners:  # every vertebra lies wholly inside at least one window
        inside = [np.all((w.A[:, :2] @ p + w.A[:, 2] >= 0) & (w.A[:, :2] @ p + w.A[:, 2] <= [544, 544])) for w in wins]
        assert any(inside)
    for w in wins:
        x = (centres @ w.A[:, :2].T + w.A[:, 2])[:, 0]
        assert np.ptp(x) < 1.0  # the axis is vertical in the window
        assert w.zoom >= 1.0
    if n == 17 and max_windows == 3:
        assert len(wins) > 1 and all(w.zoom > 2.0 for w in wins)  # a long spine gets a closer look


def test_points_and_masks_map_back_to_the_image():
    boxes, _ = _spine_boxes(6)
    (w, *_) = spine_windows(boxes, (256, 192))
    pts = np.array([[310.0, 120.0], [330.5, 200.25]])
    inwin = pts @ w.A[:, :2].T + w.A[:, 2]
    assert np.allclose(w.to_image(inwin), pts)
    image = np.zeros((600, 500), np.uint8)
    image[100:118, 297:315] = 255  # the second body, inside the first window
    back = w.mask_to_image(w.crop(image) > 127, image.shape) > 0.5
    truth = image > 0
    assert (back & truth).sum() / (back | truth).sum() > 0.9
