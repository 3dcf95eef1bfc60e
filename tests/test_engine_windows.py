"""Windows along the spine for the high-resolution pass: cover the spine, stand it upright, map back."""
from __future__ import annotations

import numpy as np
import pytest

from blob_models import BlobModel
from spine_d2.engine.windows import spine_windows


def _spine_boxes(n=17, tilt_deg=12.0, step=30.0, size=24.0, start=(300.0, 80.0)):
    t = np.radians(tilt_deg)
    axis = np.array([np.sin(t), np.cos(t)])
    centres = np.array(start) + np.outer(np.arange(n) * step, axis)
    return np.hstack([centres - size / 2, centres + size / 2]), centres


@pytest.mark.parametrize("n,max_windows", [(17, 6), (5, 6), (17, 1)])
def test_windows_cover_the_spine_upright_at_the_target_size(n, max_windows):
    boxes, centres = _spine_boxes(n)  # box height 24 px in the image
    target, first_scale = 30.0, 0.5    # the first pass saw the bodies 12 px high
    wins = spine_windows(boxes, (544, 544), target, first_scale, min_gain=1.25, max_windows=max_windows)
    assert 1 <= len(wins) <= max_windows
    corners = np.concatenate([boxes[:, [0, 1]], boxes[:, [2, 3]]])
    for p in corners:  # every vertebra lies wholly inside at least one window
        inside = [np.all((w.A[:, :2] @ p + w.A[:, 2] >= 0) & (w.A[:, :2] @ p + w.A[:, 2] <= [544, 544])) for w in wins]
        assert any(inside)
    for w in wins:
        x = (centres @ w.A[:, :2].T + w.A[:, 2])[:, 0]
        assert np.ptp(x) < 1.0  # the axis is vertical in the window
    if max_windows > 1:
        assert all(w.zoom == pytest.approx(target / 24.0) for w in wins)  # bodies 30 px high in the window
        assert len(wins) == (2 if n == 17 else 1)
    else:  # one window must hold the whole spine: zoomed out, but still 1.25x the first pass
        assert wins[0].zoom < target / 24.0 and wins[0].zoom >= 1.25 * first_scale


def test_no_windows_where_they_would_not_enlarge_the_vertebrae():
    boxes, _ = _spine_boxes(17)
    assert spine_windows(boxes, (544, 544), 28.0, first_scale=1.0) == []  # 24 → 28 px: not worth a pass
    assert spine_windows(boxes, (544, 544), 28.0, first_scale=1.0, min_gain=1.1) != []
    assert spine_windows(boxes[:1], (544, 544), 30.0, first_scale=0.5) == []  # one box: no axis


def test_points_and_masks_map_back_to_the_image():
    boxes, _ = _spine_boxes(6)
    (w, *_) = spine_windows(boxes, (256, 192), 30.0, first_scale=0.5)
    pts = np.array([[310.0, 120.0], [330.5, 200.25]])
    inwin = pts @ w.A[:, :2].T + w.A[:, 2]
    assert np.allclose(w.to_image(inwin), pts)
    image = np.zeros((600, 500), np.uint8)
    image[100:118, 297:315] = 255  # the second body, inside the first window
    back = w.mask_to_image(w.crop(image) > 127, image.shape) > 0.5
    assert np.array_equal(w.mask_to_image(w.crop(image) > 127, image.shape, above=0.5), back)  # the same, at once
    truth = image > 0
    assert (back & truth).sum() / (back | truth).sum() > 0.9


def test_merge_takes_the_windows_bodies_and_keeps_the_rest_of_the_first_pass():
    from spine_d2.engine.highres import Detection, merge, to_instances

    def det(cls, x0, y0, size=20, score=0.9, depth=np.inf):
        m = np.zeros((200, 200), bool)
        m[y0:y0 + size, x0:x0 + size] = True
        return Detection(cls, score, m, None, depth)

    first = [det(1, 50, 50), det(1, 50, 80), det(2, 50, 140), det(3, 120, 150)]  # two lumbar, sacrum, head
    windowed = [det(1, 51, 51, depth=5.0), det(1, 52, 50, depth=40.0),  # one body seen by two windows
                det(1, 50, 110, depth=30.0),  # a body the first pass missed
                det(1, 50, 80, score=0.3, depth=50.0),  # a weak one: the first pass's stays
                det(2, 51, 141, depth=60.0)]  # a window's sacrum: not used
    kept = merge(first, windowed, bodies={0, 1}, min_score=0.5)
    assert len(kept) == 5
    assert kept[0].depth == 40.0  # the window where the body lies deeper wins
    assert any(d.cls == 3 for d in kept) and any(d.mask[115, 55] for d in kept)
    assert not any(d.depth in (5.0, 50.0, 60.0) for d in kept)
    assert [d.depth for d in kept if d.cls == 2] == [np.inf]  # the first pass's sacrum
    assert any(d.mask[85, 55] and d.depth == np.inf for d in kept)  # the first pass's body, not the weak one
    inst = to_instances(kept, (200, 200))
    assert len(inst) == 5 and inst.pred_boxes.tensor.shape == (5, 4) and not inst.has("pred_keypoints")


def test_merge_keeps_both_femoral_heads_of_the_first_pass_where_they_overlap():
    """On a lateral film the two heads overlap by design; the first pass found both, and the windows
    (which give back bodies only) must not drop one of them as the other's duplicate."""
    from spine_d2.engine.highres import Detection, merge

    def disc(cls, cx, cy, r, score, depth=np.inf):
        yy, xx = np.mgrid[:200, :200]
        return Detection(cls, score, (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r, None, depth)

    heads = [disc(3, 100, 150, 20, 0.99), disc(3, 112, 158, 20, 0.8)]  # 0.7 radii apart: most pixels shared
    body = disc(1, 100, 60, 10, 0.9)
    windowed = [disc(1, 101, 60, 10, 0.95, depth=30.0)]
    kept = merge([body, *heads], windowed, bodies={0, 1}, min_score=0.5, apart={3})
    assert sorted(d.score for d in kept if d.cls == 3) == [0.8, 0.99]
    assert len([d for d in merge(heads, [], bodies={0, 1}) if d.cls == 3]) == 1  # any other class: a repeat
    assert [d.depth for d in kept if d.cls == 1] == [30.0]  # the window's body replaced the first pass's


def test_the_sacrums_corners_are_averaged_with_the_windows_where_they_agree():
    from spine_d2.engine.highres import Detection, merge, window_corners

    def det(cls, x0, y0, size=20, score=0.9, depth=np.inf, shift=0.0):
        m = np.zeros((200, 200), bool)
        m[y0:y0 + size, x0:x0 + size] = True
        c = np.array([[x0 + size + shift, y0, 0.5], [x0 + shift, y0, 0.5],
                      [x0 + size + shift, y0 + size, 0.5], [x0 + shift, y0 + size, 0.5]], float)
        return Detection(cls, score, m, c, depth)

    first = [det(1, 50, 50), det(2, 50, 140)]                     # a lumbar body, the sacrum
    windowed = [det(2, 50, 140, depth=30.0, shift=1.0),           # the sacrum a pixel to the right
                det(2, 50, 140, score=0.3, depth=60.0, shift=9.0)]  # a weak reading: not used
    kept = merge(first, windowed, bodies={0, 1}, min_score=0.5)
    assert np.array_equal(kept[1].corners, first[1].corners)  # merging leaves corners alone
    sacrum = window_corners(kept, [windowed], {2}, min_score=0.5)[1]
    assert sacrum.depth == np.inf and np.array_equal(sacrum.mask, first[1].mask)  # the first pass's
    assert np.allclose(sacrum.corners[:, 0], first[1].corners[:, 0] + 0.5)       # its corners averaged
    turned = [det(2, 50, 140, depth=30.0, shift=2.0)]             # a turned window's: 2 px to the right
    assert np.allclose(window_corners(kept, [windowed, turned], {2})[1].corners[:, 0],
                       first[1].corners[:, 0] + 1.0)              # the mean of three
    far = [det(2, 50, 140, depth=30.0, shift=12.0)]               # disagrees by 0.6 of the plate: kept as it was
    assert np.array_equal(window_corners(kept, [far], {2})[1].corners, first[1].corners)
    assert np.array_equal(window_corners(kept, [windowed], set())[1].corners, first[1].corners)  # off


def test_a_sacrum_only_the_windows_found_is_added_where_the_first_pass_has_none():
    from spine_d2.engine.highres import Detection, merge, with_window_sacra

    def det(cls, x0, y0, size=20, score=0.9, depth=np.inf):
        m = np.zeros((200, 200), bool)
        m[y0:y0 + size, x0:x0 + size] = True
        return Detection(cls, score, m, None, depth)

    first = [det(1, 50, 50), det(1, 50, 80), det(1, 50, 140)]  # S1 read as a lumbar body
    windowed = [det(2, 51, 141, depth=20.0), det(2, 50, 140, depth=45.0),  # S1 seen by two windows
                det(2, 52, 80, score=0.3, depth=50.0)]                     # a weak reading of a body
    kept = with_window_sacra(merge(first, windowed, bodies={0, 1}, min_score=0.5), windowed, {2}, min_score=0.5)
    sacra = [d for d in kept if d.cls == 2]
    assert len(kept) == 4 and len(sacra) == 1 and sacra[0].depth == 45.0  # the deeper of the two, once
    assert [d.depth for d in kept if d.cls == 1] == [np.inf] * 3  # the lumbar reading stays: the measurement's
    with_first = first + [det(2, 50, 170, score=0.4)]             # duplicate rule settles the two by score
    assert with_window_sacra(with_first, windowed, {2}) == with_first  # the first pass's sacrum, however weak
    assert with_window_sacra(first, windowed, set()) == first


@pytest.mark.parametrize("turns,turned_boxes", [((), "own"), ((-5.0, 5.0), "own"), ((-5.0, 5.0), "given")])
def test_the_high_resolution_pass_finds_each_body_once_where_it_is(turns, turned_boxes):
    from types import SimpleNamespace

    from spine_d2.engine.highres import high_resolution_pass

    image = np.zeros((900, 400, 3), np.uint8)
    boxes, _ = _spine_boxes(n=14, tilt_deg=8.0, step=48.0, size=30.0, start=(150.0, 120.0))
    truth = np.zeros((len(boxes), 900, 400), bool)
    for k, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
        image[y0:y1, x0:x1] = 220
        truth[k, y0:y1, x0:x1] = True
    inp = SimpleNamespace(HEIGHT=256, WIDTH=256, FIT="keep_aspect", MEAN_INTENSITY=None)
    aug = SimpleNamespace(**{k: SimpleNamespace(ENABLED=False) for k in
                             ("SCALE", "CROP", "FLIP", "ROTATION", "CONTRAST", "PHOTOMETRIC")})
    hr = SimpleNamespace(WINDOWS=6, TARGET_PX=22.0, MIN_GAIN=1.25, MIN_SCORE=0.5, SACRUM_CORNERS=True, TURNS=turns,
                         TURNED_BOXES=turned_boxes)
    cfg = SimpleNamespace(SPINE=SimpleNamespace(INPUT=inp, AUG=aug, CLASS_MAP="default", HIGHRES=hr),
                          INPUT=SimpleNamespace(FORMAT="BGR"))
    model = BlobModel()
    from spine_d2.data.transforms import model_input

    first = model([model_input(image, cfg)])[0]["instances"]
    out = high_resolution_pass(model, cfg, image, first)  # bodies 8.5 px in the first pass: windows
    if turned_boxes == "given":  # looks that read the bodies' corners: none for a model without corners
        assert model.images >= 3 and model.calls == 2
    else:
        windows = (model.images - 1) // (1 + len(turns))
        assert windows >= 2 and model.images == 1 + windows * (1 + len(turns))  # each window once per turn
        assert model.calls == 2 + len(turns)  # a run's windows in one batch
    assert len(out) == len(boxes)
    masks = out.pred_masks.numpy()
    for t in truth:
        iou = max((m & t).sum() / (m | t).sum() for m in masks)
        assert iou > 0.85


class _LargeIsSacrum(BlobModel):
    """A blob covering over 1.5 % of the input is the sacrum: at the first pass's scale the pelvis's
    is read as a lumbar body, in a window (the bodies larger) as the sacrum."""

    def cls(self, m):
        return 2 if m.mean() > 0.015 else 1


def test_the_high_resolution_pass_adds_the_sacrum_only_its_windows_find():
    from types import SimpleNamespace

    from spine_d2.data.transforms import model_input
    from spine_d2.engine.highres import high_resolution_pass

    image = np.zeros((900, 400, 3), np.uint8)
    boxes, centres = _spine_boxes(n=12, tilt_deg=0.0, step=48.0, size=30.0, start=(150.0, 120.0))
    for x0, y0, x1, y1 in boxes.astype(int):
        image[y0:y1, x0:x1] = 220
    s1 = np.zeros((900, 400), bool)
    s1[int(centres[-1, 1]) + 36:int(centres[-1, 1]) + 81, 135:195] = True  # 60 x 45 px below the last body
    image[s1] = 220
    inp = SimpleNamespace(HEIGHT=256, WIDTH=256, FIT="keep_aspect", MEAN_INTENSITY=None)
    aug = SimpleNamespace(**{k: SimpleNamespace(ENABLED=False) for k in
                             ("SCALE", "CROP", "FLIP", "ROTATION", "CONTRAST", "PHOTOMETRIC")})
    hr = SimpleNamespace(WINDOWS=6, TARGET_PX=22.0, MIN_GAIN=1.25, MIN_SCORE=0.5, SACRUM_CORNERS=False, TURNS=())
    cfg = SimpleNamespace(SPINE=SimpleNamespace(INPUT=inp, AUG=aug, CLASS_MAP="default", HIGHRES=hr),
                          INPUT=SimpleNamespace(FORMAT="BGR"))
    model = _LargeIsSacrum()
    first = model([model_input(image, cfg)])[0]["instances"]
    assert 2 not in first.pred_classes.tolist()  # the first pass reads all 13 blobs as lumbar
    out = high_resolution_pass(model, cfg, image, first)
    sacra = out.pred_masks.numpy()[out.pred_classes.numpy() == 2]
    assert len(sacra) == 1 and (sacra[0] & s1).sum() / (sacra[0] | s1).sum() > 0.85
    assert (out.pred_classes.numpy() == 1).sum() == 13  # its lumbar reading is the measurement's to drop


def test_input_scale_follows_the_evaluation_resize():
    from types import SimpleNamespace

    from spine_d2.data.transforms import input_scale

    inp = SimpleNamespace(HEIGHT=544, WIDTH=544, FIT="keep_aspect")
    cfg = SimpleNamespace(SPINE=SimpleNamespace(INPUT=inp))
    assert input_scale((1088, 600), cfg) == pytest.approx(0.5)
    assert input_scale((500, 2176), cfg) == pytest.approx(0.25, abs=1e-3)  # the width limits
    cfg.SPINE.INPUT = SimpleNamespace(HEIGHT=840, WIDTH=360, FIT="resize")
    assert input_scale((420, 1000), cfg) == pytest.approx(2.0)


def test_a_turned_window_looks_at_the_same_place_from_another_angle():
    boxes, centres = _spine_boxes(6)
    (w, *_) = spine_windows(boxes, (256, 192), 30.0, first_scale=0.5)
    t = w.turned(5.0)
    mid = w.to_image(np.array([[96.0, 128.0]]))  # the window's centre, in the image
    assert np.allclose(t.to_image(np.array([[96.0, 128.0]])), mid)  # turned about it
    assert t.zoom == pytest.approx(w.zoom) and t.size == w.size
    up, up_t = (np.diff(x.to_image(np.array([[96.0, 128.0], [96.0, 0.0]])), axis=0)[0] for x in (w, t))
    turn = np.degrees(np.arctan2(up[0] * up_t[1] - up[1] * up_t[0], up @ up_t))
    assert abs(turn) == pytest.approx(5.0, abs=1e-6)  # the window's vertical turned by 5 deg in the image
    assert np.allclose(w.turned(0.0).A, w.A) and np.allclose(t.turned(-5.0).A, w.A)


def test_a_window_says_how_deep_a_point_lies_which_boxes_it_holds_and_their_columns():
    from spine_d2.engine.windows import Window

    w = Window(np.array([[2.0, 0.0, -20.0], [0.0, 2.0, -40.0]]), (200, 300))  # zoom 2, origin at (10, 20)
    assert w.depth((60.0, 70.0)) == pytest.approx(100.0)  # window (100, 100): 100 px from the top and left
    assert w.depth((15.0, 70.0)) == pytest.approx(10.0) and w.depth((0.0, 70.0)) < 0
    pts = np.array([[20.0, 30.0], [40.0, 60.0], [30.0, 45.0]])
    assert np.allclose(w.box_of(pts), [20.0, 20.0, 60.0, 80.0])
    assert w.box_of(np.array([[5.0, 30.0], [40.0, 60.0]])) is None  # the window cuts it
    boxes = np.array([[100.0, 20.0, 130.0, 40.0], [110.0, 60.0, 140.0, 90.0]])  # median height 25
    part, moved = w.columns(boxes, 2.0)
    assert part.size == (200, 140) and np.allclose(moved, boxes - [50, 0, 50, 0])  # columns 100-140, 50 px either side
    x = np.array([[37.0, 50.0]])  # an image point: the same place in the window and its part
    assert np.allclose(part.to_image(w.A[:, :2] @ x[0] + w.A[:, 2] - [50, 0]), x)
    assert np.allclose(part.zoom, w.zoom)
    whole, _ = w.columns(boxes, 20.0)
    assert whole.size == w.size and np.allclose(whole.A, w.A)  # never wider than the window


BIAS_PX = 6.0  # the stand-in's corners lie this far along its input's x from the body's


class _Rectangles(BlobModel):
    """Every bright blob a rectangle whose corners the model reads from the blob's moments (its long
    axis up the spine, anterior to the input's right), all `BIAS_PX` along the input's x."""

    threshold = 100.0
    sacrum_below = 0.7  # a blob whose centre lies lower in the input (a share of its height) is the sacrum

    def cls(self, m):
        return 2 if np.nonzero(m)[0].mean() > self.sacrum_below * m.shape[0] else 1

    def corners(self, m, img):
        ys, xs = np.nonzero(m)
        pts = np.stack([xs, ys], 1) + 0.5
        c = pts.mean(0)
        val, vec = np.linalg.eigh(np.cov((pts - c).T))
        up = vec[:, 1] * (-1 if vec[1, 1] > 0 else 1)                 # the long axis, pointing up
        ant = np.array([-up[1], up[0]]) * (1 if -up[1] > 0 else -1)  # across it, to the right
        a, b = np.sqrt(3 * val[1]) * up, np.sqrt(3 * val[0]) * ant
        bias = np.array([BIAS_PX, 0.0])
        return [[*(c + a + b + bias), 0.6], [*(c + a - b + bias), 0.6],
                [*(c - a + b + bias), 0.6], [*(c - a - b + bias), 0.6]]


@pytest.mark.parametrize("turn_strip,turned_boxes", [(True, "own"), (True, "given"), (False, "given")])
def test_a_spine_the_first_pass_sees_large_gets_its_turned_looks_from_its_strip_of_the_photo(
        turn_strip, turned_boxes, monkeypatch):
    from types import SimpleNamespace

    from spine_d2.data.transforms import model_input
    from spine_d2.engine import highres
    from spine_d2.engine.highres import high_resolution_pass

    monkeypatch.setattr(highres, "_corners_in_boxes", lambda net, inputs, given: net.corners_in_boxes(inputs, given))

    image = np.zeros((600, 400, 3), np.uint8)
    tops = (60, 230, 450)
    for y0 in tops:  # two lumbar bodies and the sacrum, 100 px high: no window would enlarge them
        image[y0:y0 + 100, 150:200] = 220
    inp = SimpleNamespace(HEIGHT=600, WIDTH=400, FIT="keep_aspect", MEAN_INTENSITY=None)
    aug = SimpleNamespace(**{k: SimpleNamespace(ENABLED=False) for k in
                             ("SCALE", "CROP", "FLIP", "ROTATION", "CONTRAST", "PHOTOMETRIC")})
    hr = SimpleNamespace(WINDOWS=6, TARGET_PX=22.0, MIN_GAIN=1.25, MIN_SCORE=0.5, SACRUM_CORNERS=True,
                         TURNS=(-40.0, 40.0), TURN_STRIP=turn_strip, TURNED_BOXES=turned_boxes)
    cfg = SimpleNamespace(SPINE=SimpleNamespace(INPUT=inp, AUG=aug, CLASS_MAP="default", HIGHRES=hr),
                          INPUT=SimpleNamespace(FORMAT="BGR"))
    model = _Rectangles()
    first = model([model_input(image, cfg)])[0]["instances"]
    out = high_resolution_pass(model, cfg, image, first)
    order = np.argsort(out.pred_boxes.tensor.numpy()[:, 1])
    shift = out.pred_keypoints.numpy()[order, :, :2] - np.array(
        [[[200, y0], [150, y0], [200, y0 + 100], [150, y0 + 100]] for y0 in tops], float)
    if not turn_strip:  # the first pass stands as it is
        assert model.calls == 1 and out is first
        assert np.allclose(shift, [BIAS_PX, 0.0], atol=0.3)
        return
    assert model.images == 3 and model.calls == 2 and len(out) == 3  # the strip once per turn, in one batch
    first_order = np.argsort(first.pred_boxes.tensor.numpy()[:, 1])
    assert np.array_equal(out.pred_masks.numpy()[order], first.pred_masks.numpy()[first_order])  # the first pass's
    assert out.pred_classes.numpy()[order].tolist() == [1, 1, 2]
    # each turned look's bias points 40 deg off the image's x, one each way: the bodies' corners are
    # the mean of the three; the sacrum's the first pass's (the strip cuts off the pelvis around it)
    assert np.allclose(shift[:2], [BIAS_PX * (1 + 2 * np.cos(np.radians(40.0))) / 3, 0.0], atol=0.3)
    assert np.allclose(shift[2], [BIAS_PX, 0.0], atol=0.3)


class _Bodies(_Rectangles):
    sacrum_below = 2.0  # every blob a lumbar body, wherever it lies in a window


def test_turned_looks_in_given_boxes_read_what_looks_that_detect_again_read_with_fewer_pixels(monkeypatch):
    """`test.highres.turned_boxes`: given (the bodies found handed to the corner head, each in the
    turned window where it lies deepest, cut to the spine's columns) against own (each turned
    window detects everything again): the same corners, fewer pixels through the backbone."""
    from types import SimpleNamespace

    import torch

    from spine_d2.data.transforms import model_input
    from spine_d2.engine import highres

    monkeypatch.setattr(highres, "_corners_in_boxes", lambda net, inputs, given: net.corners_in_boxes(inputs, given))
    image = np.zeros((900, 500, 3), np.uint8)
    boxes, _ = _spine_boxes(n=14, tilt_deg=8.0, step=48.0, size=30.0, start=(150.0, 120.0))
    for x0, y0, x1, y1 in boxes.astype(int):
        image[y0:y1, x0:x1 - 6] = 220  # 24 x 30 px bodies: the first pass sees them 8.5 px high
    out, pixels = {}, {}
    for how in ("own", "given"):
        hr = SimpleNamespace(WINDOWS=6, TARGET_PX=22.0, MIN_GAIN=1.25, MIN_SCORE=0.5, SACRUM_CORNERS=True,
                             TURNS=(-10.0, 10.0), TURN_STRIP=True, TURNED_BOXES=how)
        cfg = SimpleNamespace(SPINE=SimpleNamespace(
            INPUT=SimpleNamespace(HEIGHT=256, WIDTH=256, FIT="keep_aspect", MEAN_INTENSITY=None),
            AUG=SimpleNamespace(**{k: SimpleNamespace(ENABLED=False) for k in
                                   ("SCALE", "CROP", "FLIP", "ROTATION", "CONTRAST", "PHOTOMETRIC")}),
            CLASS_MAP="default", HIGHRES=hr), INPUT=SimpleNamespace(FORMAT="BGR"))
        model = _Bodies()
        first = model([model_input(image, cfg)])[0]["instances"]
        out[how] = highres.high_resolution_pass(model, cfg, image, first)
        pixels[how] = model.pixels
    a, b = (np.argsort(out[k].pred_boxes.tensor.numpy()[:, 1]) for k in ("own", "given"))
    assert len(a) == len(boxes) == len(b)
    assert np.array_equal(out["own"].pred_masks.numpy()[a], out["given"].pred_masks.numpy()[b])
    own, given = out["own"].pred_keypoints.numpy()[a], out["given"].pred_keypoints.numpy()[b]
    upright = _Bodies()  # the same pass without turned looks: where the turned looks moved the corners
    cfg.SPINE.HIGHRES.TURNS = ()
    plain = highres.high_resolution_pass(upright, cfg, image, upright([model_input(image, cfg)])[0]["instances"])
    plain = plain.pred_keypoints.numpy()[np.argsort(plain.pred_boxes.tensor.numpy()[:, 1])]
    assert (np.abs(own - plain)[:, :, :2].max(axis=(1, 2)) > 0.1).sum() >= 10  # the turned looks count
    apart = np.abs(given - own)[:, :, :2].max(axis=(1, 2))
    # the same, but where a body lies in two windows: own takes the turned look whose detection
    # overlaps it most, given the window it lies deepest in
    assert (apart < 0.01).sum() >= len(boxes) - 3 and apart.max() < 0.5
    assert pixels["given"] - upright.pixels < 0.65 * (pixels["own"] - upright.pixels)  # the turned looks' pixels
    # a body the turned look's box head is not sure of (< MIN_SCORE), as own looks that do not find it
    # sure, gives no estimate: its corners stay the upright look's
    unsure = _Bodies()
    unsure_in_boxes = unsure.corners_in_boxes

    def weak(inputs, given):
        out = unsure_in_boxes(inputs, given)
        for res in out:
            res.scores = torch.full((len(res),), 0.3)
        return out

    unsure.corners_in_boxes = weak
    cfg.SPINE.HIGHRES.TURNS = (-10.0, 10.0)
    got = highres.high_resolution_pass(unsure, cfg, image, unsure([model_input(image, cfg)])[0]["instances"])
    assert unsure.pixels > upright.pixels  # the turned looks ran
    assert np.allclose(got.pred_keypoints.numpy()[np.argsort(got.pred_boxes.tensor.numpy()[:, 1])], plain)


@pytest.mark.parametrize("shape", [(1000, 700), (700, 1000)])
def test_the_spines_strip_shows_it_at_the_first_passs_scale_with_fewer_pixels(shape):
    from types import SimpleNamespace

    from spine_d2.data.transforms import input_scale, model_input
    from spine_d2.engine.windows import spine_strip

    boxes, _ = _spine_boxes(n=12, tilt_deg=8.0, step=50.0, size=40.0, start=(300.0, 60.0))
    strip = spine_strip(boxes, shape, turn_deg=5.0)
    cfg = SimpleNamespace(SPINE=SimpleNamespace(
        INPUT=SimpleNamespace(HEIGHT=544, WIDTH=544, FIT="keep_aspect", MEAN_INTENSITY=None),
        AUG=SimpleNamespace(**{k: SimpleNamespace(ENABLED=False) for k in
                               ("SCALE", "CROP", "FLIP", "ROTATION", "CONTRAST", "PHOTOMETRIC")})),
        INPUT=SimpleNamespace(FORMAT="BGR"))
    image = np.zeros((*shape, 3), np.uint8)
    assert strip.zoom == 1.0 and strip.size[0] == max(shape) and strip.size[1] < shape[1]
    inp = model_input(strip.crop(image), cfg)["image"]
    assert inp.shape[1] / strip.size[0] == pytest.approx(input_scale(shape, cfg), abs=1e-3)  # the same scale
    assert inp.shape[1] * inp.shape[2] < 0.8 * 544 * 544 * min(shape) / max(shape)  # fewer pixels
    corners = np.concatenate([boxes[:, [0, 1]], boxes[:, [2, 1]], boxes[:, [2, 3]], boxes[:, [0, 3]]])
    for t in (-5.0, 5.0):  # every box inside the strip, turned too
        A = strip.turned(t).A
        p = corners @ A[:, :2].T + A[:, 2]
        assert (p[:, 0] > 40).all() and (p[:, 0] < strip.size[1] - 40).all()
        assert (p[:, 1] > 0).all() and (p[:, 1] < strip.size[0]).all()


def test_the_turned_looks_run_the_model_without_its_sub_pixel_outlines():
    from spine_d2.engine.highres import corners_only
    from spine_d2.engine.soft_masks import SoftMaskModel

    model = BlobModel()
    assert corners_only(SoftMaskModel(model)) is model and corners_only(model) is model


def test_a_look_that_keeps_only_sure_detections_runs_its_heads_on_those_alone(tmp_path):
    """`score_floor`: the mask and corner heads see fewer boxes, the detections kept are the same."""
    import contextlib

    import torch
    from detectron2.modeling import build_model

    from spine_d2.engine import highres
    from spine_d2.engine.config import build_d2_cfg
    from spine_d2.engine.soft_masks import SoftMaskModel
    from spine_d2.engine.windows import Window
    from test_engine_support import smoke_cfg

    cfg = build_d2_cfg(smoke_cfg(tmp_path, "model.corners=true", "test.score_thresh=0.0"))
    torch.manual_seed(0)
    net = build_model(cfg).eval()
    model = SoftMaskModel(net)
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(120, 40, (300, 260, 3)), 0, 255).astype(np.uint8)
    wins = [Window(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), image.shape[:2]),
            Window(np.array([[1.0, 0.0, -20.0], [0.0, 1.0, -30.0]]), (200, 200)).turned(5.0)]
    rois = []
    net.roi_heads.mask_head.register_forward_hook(lambda m, i, o: rois.append(int(i[0].shape[0])))
    classes = set(range(cfg.MODEL.ROI_HEADS.NUM_CLASSES))
    everything = highres._looks(model, cfg, image, wins, (classes, 0.0))
    scores = np.sort([d.score for look in everything for d in look])
    assert len(scores) > 10
    sure = float(np.median(scores))
    rois.clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(highres, "score_floor", lambda *a: contextlib.nullcontext())
        plain = highres._looks(model, cfg, image, wins, (classes, sure))
    seen_plain, rois[:] = sum(rois), []
    floored = highres._looks(model, cfg, image, wins, (classes, sure))
    assert sum(rois) < seen_plain, "the heads run on the sure boxes alone"
    assert net.roi_heads.box_predictor.test_score_thresh == 0.0, "the threshold is put back"
    assert [len(look) for look in floored] == [len(look) for look in plain] and any(floored)
    for a, b in zip(sum(plain, []), sum(floored, [])):
        assert (a.cls, a.score) == (b.cls, b.score) and np.array_equal(a.mask, b.mask)
        assert np.allclose(a.corners, b.corners) and np.allclose(a.contour, b.contour)


@pytest.mark.parametrize("deg", [4.0, -4.0, 30.0])
def test_the_whole_photo_turned_keeps_all_of_it_and_maps_back(deg):
    from spine_d2.engine.windows import whole_turned

    image = np.zeros((300, 200), np.uint8)
    image[0:30, 0:30] = 255      # a corner of the photo: still on the canvas once turned
    image[140:180, 90:120] = 255
    w = whole_turned(image.shape, deg)
    canvas = w.crop(image)
    assert canvas.shape == w.size and w.zoom == pytest.approx(1.0)
    assert (canvas > 127).sum() == pytest.approx((image > 127).sum(), rel=0.05)  # nothing cut off
    ends = np.array([[0.0, 0.0], [200.0, 0.0], [200.0, 300.0], [0.0, 300.0]])
    on = ends @ w.A[:, :2].T + w.A[:, 2]
    assert on.min() >= -1e-6 and on[:, 0].max() <= w.size[1] + 1e-6 and on[:, 1].max() <= w.size[0] + 1e-6
    assert np.allclose(w.to_image(on), ends)
    tilt = np.degrees(np.arctan2(-(on[1, 1] - on[0, 1]), on[1, 0] - on[0, 0]))  # the top edge, y up
    assert tilt == pytest.approx(deg)  # counter-clockwise as shown
    back = w.mask_to_image(canvas > 127, image.shape, above=0.5)
    truth = image > 127
    assert (back & truth).sum() / (back | truth).sum() > 0.9
