"""The mirrored run at test time (`test.flip`): predictions on the mirrored photo mapped back, the
corners of each body averaged with the first run's."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from blob_models import BlobModel
from spine_d2.engine.flip import mirrored, with_mirrored_bodies, with_mirrored_pelvis
from spine_d2.engine.highres import Detection, average_corners

BIAS_PX = 2.0  # the stand-in's corners lie this far right of the body's edges, in every run


def _det(cls, x0, y0, size=20, corners=True, score=0.9):
    m = np.zeros((120, 160), bool)
    m[y0:y0 + size, x0:x0 + size] = True
    c = None
    if corners:  # anterior on the right
        c = np.array([[x0 + size, y0, 0.6], [x0, y0, 0.6], [x0 + size, y0 + size, 0.6], [x0, y0 + size, 0.6]], float)
    return Detection(cls, score, m, c, np.inf, np.array([[x0, y0], [x0 + size - 1, y0 + size - 1.0]]))


def test_mirroring_twice_gives_the_detections_back():
    dets = [_det(1, 30, 40), _det(2, 90, 70, corners=False)]
    back = mirrored(mirrored(dets, 160), 160)
    for d, b in zip(dets, back):
        assert np.array_equal(d.mask, b.mask) and np.allclose(d.contour, b.contour)
        assert (d.corners is None and b.corners is None) or np.allclose(d.corners, b.corners)
    once = mirrored(dets, 160)[0]
    assert once.mask[40, 160 - 31] and not once.mask[40, 30]  # pixel 30 ↔ pixel 129
    assert once.corners[0, 0] == 160 - 50 and once.contour[0, 0] == 129  # continuous x ↔ pixel centres


def test_merge_averages_the_corners_of_the_same_body_only():
    first = [_det(1, 30, 40), _det(1, 30, 70), _det(3, 100, 20, corners=False)]
    shifted = _det(1, 31, 41)  # the same body a pixel off
    other_class = _det(2, 30, 70)  # a sacrum where the first run saw a lumbar body: no match
    only_second = _det(1, 100, 90)
    out = average_corners(first, [only_second, other_class, shifted])
    assert len(out) == 3  # what only the second run found is not added
    assert np.allclose(out[0].corners[:, :2], first[0].corners[:, :2] + 0.5)
    assert np.array_equal(out[1].corners, first[1].corners) and out[2].corners is None
    assert np.array_equal(out[0].mask, first[0].mask)  # masks stay the first run's


class _Bodies(BlobModel):
    """Every bright blob a lumbar body whose brighter half is anterior (as a real model reads
    anatomy, whichever way the photo faces); its corners come out `BIAS_PX` to the right of the
    blob's edges; `corners_on` False: no corner head."""

    threshold = 60.0
    corners_on = True

    def corners(self, m, img):
        if not self.corners_on:
            return None
        ys, xs = np.nonzero(m)
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1.0, ys.max() + 1.0
        half = np.arange(img.shape[1]) >= (x0 + x1) / 2
        ant, post = (x1, x0) if img[m & half].mean() > img[m & ~half].mean() else (x0, x1)
        return [[ant + BIAS_PX, y0, 0.6], [post + BIAS_PX, y0, 0.6], [ant + BIAS_PX, y1, 0.6], [post + BIAS_PX, y1, 0.6]]


def test_the_mirrored_run_cancels_a_sideways_bias_of_the_corners():
    from spine_d2.engine.test_time import one_pass, refine, refine_with_reads

    image = np.zeros((300, 200, 3), np.uint8)
    for y0 in (40, 120, 200):  # three bodies facing right: their right halves brighter
        image[y0:y0 + 50, 60:100] = 150
        image[y0:y0 + 50, 100:140] = 230
    inp = SimpleNamespace(HEIGHT=300, WIDTH=200, FIT="keep_aspect", MEAN_INTENSITY=None)
    aug = SimpleNamespace(**{k: SimpleNamespace(ENABLED=False) for k in
                             ("SCALE", "CROP", "FLIP", "ROTATION", "CONTRAST", "PHOTOMETRIC")})
    hr = SimpleNamespace(ENABLED=False)
    spine = dict(INPUT=inp, AUG=aug, CLASS_MAP="default", HIGHRES=hr)
    model = _Bodies()
    first = one_pass(model, SimpleNamespace(SPINE=SimpleNamespace(**spine), INPUT=SimpleNamespace(FORMAT="BGR")), image)
    plain = first.pred_keypoints.numpy()
    cfg = SimpleNamespace(SPINE=_Node(**spine, FLIP=True), INPUT=SimpleNamespace(FORMAT="BGR"))
    out = refine(model, cfg, image, first)
    assert model.calls == 2 and len(out) == 3
    corners = out.pred_keypoints.numpy()
    order = np.argsort(out.pred_boxes.tensor.numpy()[:, 1])
    corners, plain = corners[order], plain[np.argsort(first.pred_boxes.tensor.numpy()[:, 1])]
    assert np.allclose(plain[:, [0, 2], 0], 140 + BIAS_PX)     # one run: anterior (right) edge, biased
    assert np.allclose(corners[:, [0, 2], 0], 140, atol=1e-4)  # both: the bias cancels
    assert np.allclose(corners[:, [1, 3], 0], 60, atol=1e-4)
    assert np.allclose(corners[..., 2], 0.6)
    fused, reads = refine_with_reads(model, cfg, image, first)
    assert len(reads) == 2 and all(len(r) == 3 for r in reads)  # the two runs each alone, in the photo's frame
    own, mirror = (r.pred_keypoints.numpy()[np.argsort(r.pred_boxes.tensor.numpy()[:, 1])] for r in reads)
    assert np.allclose(own[:, [0, 2], 0], 140 + BIAS_PX) and np.allclose(mirror[:, [0, 2], 0], 140 - BIAS_PX)
    assert np.array_equal(fused.pred_keypoints.numpy(), refine(model, cfg, image, first).pred_keypoints.numpy())
    model.corners_on, model.calls = False, 0  # no corner head: nothing to average, no second run
    first = one_pass(model, cfg, image)
    assert len(refine(model, cfg, image, first)) == 3 and model.calls == 1
    assert refine_with_reads(model, cfg, image, first)[1] == []


def _photo_cfg(**spine_keys):
    """A photo of three bodies facing right (their right halves brighter) and a test-time config
    of the mirrored run (always, no windows; `spine_keys` over it) for the stand-in `_Bodies`."""
    image = np.zeros((300, 200, 3), np.uint8)
    for y0 in (40, 120, 200):
        image[y0:y0 + 50, 60:100] = 150
        image[y0:y0 + 50, 100:140] = 230
    inp = SimpleNamespace(HEIGHT=300, WIDTH=200, FIT="keep_aspect", MEAN_INTENSITY=None)
    aug = SimpleNamespace(**{k: SimpleNamespace(ENABLED=False) for k in
                             ("SCALE", "CROP", "FLIP", "ROTATION", "CONTRAST", "PHOTOMETRIC")})
    spine = dict(INPUT=inp, AUG=aug, CLASS_MAP="default", HIGHRES=SimpleNamespace(ENABLED=False), FLIP=True)
    cfg = SimpleNamespace(SPINE=_Node(**{**spine, **spine_keys}), INPUT=SimpleNamespace(FORMAT="BGR"),
                          MODEL=SimpleNamespace(KEYPOINT_ON=True, DEVICE="cpu"))
    return image, cfg


def test_on_doubt_the_mirrored_run_waits_until_asked_and_then_gives_what_it_always_gives():
    from spine_d2.engine.test_time import one_pass, refine_lazily, refine_with_reads

    image, always = _photo_cfg()
    doubt = _photo_cfg(FLIP_WHEN="doubt")[1]
    model = _Bodies()
    first = one_pass(model, always, image)
    model.calls = 0
    own, reads, make = refine_lazily(model, doubt, image, first)
    assert model.calls == 0 and reads == [] and callable(make)  # the photo's run alone: nothing run again yet
    assert np.array_equal(own.pred_keypoints.numpy(), first.pred_keypoints.numpy())  # its corners as they came
    fused, both = make()
    assert model.calls == 1 and len(both) == 2  # asked: the mirrored photo's pass, and the two reads
    expected, expected_reads = refine_with_reads(model, always, image, first)
    assert np.array_equal(fused.pred_keypoints.numpy(), expected.pred_keypoints.numpy())
    assert all(np.array_equal(a.pred_keypoints.numpy(), b.pred_keypoints.numpy()) for a, b in zip(both, expected_reads))
    plain = refine_lazily(model, always, image, first)
    assert plain[2] is None and len(plain[1]) == 2  # always: the mirrored run made at once, as before
    assert np.array_equal(plain[0].pred_keypoints.numpy(), expected.pred_keypoints.numpy())
    model.corners_on = False  # no corner head: no mirrored run to wait for
    first = one_pass(model, doubt, image)
    assert refine_lazily(model, doubt, image, first)[1:] == ([], None)


def test_a_sacrum_only_the_mirrored_run_found_is_added_only_where_the_photos_run_found_none():
    body, sacrum, mirror_sacrum = _det(1, 30, 40), _det(2, 30, 70), _det(2, 31, 71, score=0.8)
    out = with_mirrored_pelvis([body], [_det(1, 31, 40), mirror_sacrum], {2})
    assert len(out) == 2 and out[0] is body and out[1] is mirror_sacrum  # the lumbar body of the mirror is not added
    assert with_mirrored_pelvis([body, sacrum], [mirror_sacrum], {2}) == [body, sacrum]
    weak = _det(2, 31, 71, score=0.1)  # a sacrum of any score: the measurement judges it
    assert with_mirrored_pelvis([body], [weak], {2})[1] is weak


def test_femoral_heads_only_the_mirrored_run_found_are_added_where_sure_and_the_photos_run_found_none():
    body, sacrum, head = _det(1, 30, 40), _det(2, 30, 70), _det(3, 60, 95, corners=False)
    sure, faint = _det(3, 62, 96, corners=False, score=0.88), _det(3, 90, 96, corners=False, score=0.07)
    out = with_mirrored_pelvis([body, sacrum], [sure, faint], {2}, {3})
    assert out == [body, sacrum, sure]                          # the faint one is left out
    assert with_mirrored_pelvis([body, sacrum, head], [sure], {2}, {3}) == [body, sacrum, head]
    assert with_mirrored_pelvis([body], [sure], {2}) == [body]  # no head classes given: none added


def _column(ys, cls=1, x0=70, score=0.9, size=16):
    """Bodies of one class down a column (mask tops at `ys`), on a 240×160 image."""
    out = []
    for y in ys:
        m = np.zeros((240, 160), bool)
        m[y:y + size, x0:x0 + size] = True
        out.append(Detection(cls, score, m, None, np.inf))
    return out


def test_a_sure_body_only_the_mirrored_run_found_fills_the_photos_gap():
    fused = _column([10, 30, 50, 90, 110]) + _column([140], cls=2, size=30)  # L3 (at 70) missed; a sure sacrum
    missed, again = _column([70])[0], _column([32])[0]                  # and a body the photo's run has too
    out = with_mirrored_bodies(fused, [again, missed], {0, 1}, {2})
    assert out[:len(fused)] == fused and out[len(fused):] == [missed]
    faint = _column([70], score=0.3)[0]
    assert with_mirrored_bodies(fused, [faint], {0, 1}, {2}) == fused  # not sure: not added
    edge = _column([61])[0]  # shares 5 of its 16 rows with the body at 50: the photo's run has it
    assert with_mirrored_bodies(fused, [edge], {0, 1}, {2}) == fused
    assert with_mirrored_bodies(fused, _column([70], cls=3), {0, 1}, {2}) == fused  # a head is not a body


def test_a_body_below_the_photos_sure_sacrum_is_not_added_whichever_way_the_spine_runs():
    fused = _column([10, 30, 50, 70]) + _column([100], cls=2, size=30)
    below = _column([200])[0]  # a sacral segment or a stray read as lumbar
    for turn in (lambda m: m, lambda m: m[::-1], lambda m: m.T, lambda m: m.T[::-1, ::-1]):  # a photo turned
        turned = [Detection(d.cls, d.score, np.ascontiguousarray(turn(d.mask)), None, np.inf) for d in fused]
        turned_below = Detection(1, 0.9, np.ascontiguousarray(turn(below.mask)), None, np.inf)
        assert with_mirrored_bodies(turned, [turned_below], {0, 1}, {2}) == turned
        inside = Detection(1, 0.9, np.ascontiguousarray(turn(_column([50], x0=100)[0].mask)), None, np.inf)
        assert with_mirrored_bodies(turned, [inside], {0, 1}, {2})[-1] is inside  # beside the chain, above S1
    unsure = fused[:-1] + _column([100], cls=2, size=30, score=0.3)  # a doubted sacrum does not bound it
    assert with_mirrored_bodies(unsure, [below], {0, 1}, {2})[-1] is below
    no_sacrum = _column([10, 30, 50, 70])  # nothing tells a lumbar body below the last from a stray
    assert with_mirrored_bodies(no_sacrum, [below], {0, 1}, {2})[-1] is below


class _FaintSacrum(_Bodies):
    """`_Bodies`, and the blob at the bottom a sacrum (class 2) that it finds only right of the
    photo's middle: on the photo it misses it, on the mirror image it finds it."""

    def cls(self, m):
        return 2 if np.nonzero(m)[0].mean() > 190 else 1

    def forward(self, inputs):
        out = super().forward(inputs)
        for o in out:
            inst = o["instances"]
            xs = inst.pred_boxes.tensor[:, [0, 2]].mean(dim=1)
            o["instances"] = inst[~((inst.pred_classes == 2) & (xs < inst.image_size[1] / 2))]
        return out


def test_the_fused_run_takes_the_mirrored_runs_sacrum_when_the_photos_run_missed_it():
    from spine_d2.engine.test_time import one_pass, refine_with_reads

    image = np.zeros((300, 200, 3), np.uint8)
    for y0 in (40, 120):  # two bodies facing right, and the sacrum left of the middle below them
        image[y0:y0 + 50, 60:100] = 150
        image[y0:y0 + 50, 100:140] = 230
    image[210:260, 20:50], image[210:260, 50:80] = 150, 230
    inp = SimpleNamespace(HEIGHT=300, WIDTH=200, FIT="keep_aspect", MEAN_INTENSITY=None)
    aug = SimpleNamespace(**{k: SimpleNamespace(ENABLED=False) for k in
                             ("SCALE", "CROP", "FLIP", "ROTATION", "CONTRAST", "PHOTOMETRIC")})
    cfg = SimpleNamespace(SPINE=_Node(INPUT=inp, AUG=aug, CLASS_MAP="default", HIGHRES=SimpleNamespace(ENABLED=False),
                                      FLIP=True), INPUT=SimpleNamespace(FORMAT="BGR"))
    model = _FaintSacrum()
    first = one_pass(model, cfg, image)
    assert first.pred_classes.tolist() == [1, 1]  # the photo's run misses the sacrum
    fused, (own, mirror) = refine_with_reads(model, cfg, image, first)
    assert 2 not in own.pred_classes.tolist() and mirror.pred_classes.tolist().count(2) == 1
    assert sorted(fused.pred_classes.tolist()) == [1, 1, 2]
    sacrum = fused.pred_masks[fused.pred_classes == 2][0].numpy()
    assert sacrum[210:260, 20:80].all() and sacrum.sum() == 50 * 60  # where it lies on the photo
    assert fused.pred_keypoints.shape == (3, 4, 3)


class _Node(SimpleNamespace):
    """A config node with detectron2's `get`."""

    def get(self, key, default=None):
        return getattr(self, key, default)


def test_corners_are_averaged_over_several_runs_for_the_classes_asked_only():
    first = [_det(1, 30, 40), _det(2, 30, 70)]  # a lumbar body and a sacrum
    run_a, run_b = [_det(1, 31, 40), _det(2, 31, 70)], [_det(1, 33, 40)]  # each a few px right
    out = average_corners(first, run_a, run_b, classes={1})
    assert np.allclose(out[0].corners[:, 0], first[0].corners[:, 0] + (1 + 3) / 3)  # the mean of three runs
    assert np.array_equal(out[1].corners, first[1].corners)  # the sacrum is not among the classes
    both = average_corners(first, run_a, run_b)
    assert np.allclose(both[1].corners[:, 0], first[1].corners[:, 0] + 0.5)  # run_b has no sacrum


@pytest.mark.parametrize("flip_turns,turned_boxes,share", [(True, "own", False), (False, "own", False),
                                                          (True, "given", False), (False, "given", False),
                                                          (True, "own", True), (False, "own", True)])
def test_the_mirrored_runs_windows_turn_only_with_flip_turns(flip_turns, turned_boxes, share, monkeypatch):
    """The mirrored run repeats the high-resolution pass on the mirrored photo: its windows upright
    and turned by `test.highres.turns`, or (`flip_turns` false) upright only; one batch per look
    (own), or one for all the turned looks of a run (given: the bodies handed to the corner head).
    With `share_turns` each run makes one of the two turned looks (unless the mirrored run makes
    none: then the photo's run makes both)."""
    from spine_d2.engine import highres
    from spine_d2.engine.test_time import one_pass, refine

    monkeypatch.setattr(highres, "_corners_in_boxes", lambda net, inputs, given: net.corners_in_boxes(inputs, given))

    image = np.zeros((900, 400, 3), np.uint8)
    for k in range(14):  # 14 bodies of 30 px in a tall photo: 8.5 px at the 256-px input, so windows
        x0, y0 = 150 + 7 * k, 120 + 47 * k
        image[y0:y0 + 30, x0:x0 + 15] = 150
        image[y0:y0 + 30, x0 + 15:x0 + 30] = 230
    inp = SimpleNamespace(HEIGHT=256, WIDTH=256, FIT="keep_aspect", MEAN_INTENSITY=None)
    aug = SimpleNamespace(**{k: SimpleNamespace(ENABLED=False) for k in
                             ("SCALE", "CROP", "FLIP", "ROTATION", "CONTRAST", "PHOTOMETRIC")})
    turns = (-5.0, 5.0)
    hr = SimpleNamespace(ENABLED=True, WINDOWS=6, TARGET_PX=22.0, MIN_GAIN=1.25, MIN_SCORE=0.5,
                         SACRUM_CORNERS=True, TURNS=turns, TURN_STRIP=True, FLIP_TURNS=flip_turns,
                         TURNED_BOXES=turned_boxes, SHARE_TURNS=share)
    cfg = SimpleNamespace(SPINE=_Node(INPUT=inp, AUG=aug, CLASS_MAP="default", HIGHRES=hr, FLIP=True),
                          INPUT=SimpleNamespace(FORMAT="BGR"))
    model = _Bodies()
    first = one_pass(model, cfg, image)
    model.calls = 0
    out = refine(model, cfg, image, first)
    assert len(out) == 14
    each = len(turns) // 2 if share and flip_turns else len(turns)  # turned looks per run
    looks = 1 + (each if turned_boxes == "own" else 1)  # the photo's windows: upright and turned
    assert model.calls == looks + 1 + (looks if flip_turns else 1)  # the mirror's first pass, its windows


def test_shared_turns_give_each_run_every_other_look_the_mirrored_ones_as_seen_on_the_mirror_image():
    """`test.highres.share_turns`: the photo's run turns by every other degree of `turns` from the
    first; the mirrored run by the others, negated (a turn of the mirror image is the opposite turn
    of the photo), so that together they look from every angle once. Only where the mirrored run
    is made on every photo with its windows turned; else each run as without it."""
    from spine_d2.engine.test_time import run_turns

    def cfg(share=True, flip=True, flip_turns=True, when="always", turns=(-5.0, 5.0, -2.5, 2.5)):
        hr = SimpleNamespace(TURNS=turns, FLIP_TURNS=flip_turns, SHARE_TURNS=share)
        return SimpleNamespace(SPINE=_Node(HIGHRES=hr, FLIP=flip, FLIP_WHEN=when))

    assert run_turns(cfg(), mirrored=False) == (-5.0, -2.5)
    assert run_turns(cfg(), mirrored=True) == (-5.0, -2.5)  # the photo's 5 and 2.5, mirrored
    assert run_turns(cfg(turns=(-5.0, 5.0)), mirrored=True) == (-5.0,)
    assert run_turns(cfg(turns=(3.0,)), mirrored=False) == (3.0,) and run_turns(cfg(turns=(3.0,)), mirrored=True) == ()
    for alone in (cfg(share=False), cfg(flip=False), cfg(when="doubt")):
        assert run_turns(alone, mirrored=False) == (-5.0, 5.0, -2.5, 2.5)
    assert run_turns(cfg(share=False), mirrored=True) == (-5.0, 5.0, -2.5, 2.5)
    assert run_turns(cfg(flip_turns=False), mirrored=False) == (-5.0, 5.0, -2.5, 2.5)  # the mirror makes none
    assert run_turns(cfg(flip_turns=False), mirrored=True) == ()



def test_the_turned_looks_are_made_only_when_asked_and_find_the_bodies_where_they_are():
    from spine_d2.engine.test_time import tiebreak_looks

    image = np.zeros((300, 200, 3), np.uint8)
    truth = []
    for y0 in (40, 120, 200):
        image[y0:y0 + 50, 60:140] = 200
        t = np.zeros((300, 200), bool)
        t[y0:y0 + 50, 60:140] = True
        truth.append(t)
    inp = SimpleNamespace(HEIGHT=300, WIDTH=300, FIT="keep_aspect", MEAN_INTENSITY=None)
    aug = SimpleNamespace(**{k: SimpleNamespace(ENABLED=False) for k in
                             ("SCALE", "CROP", "FLIP", "ROTATION", "CONTRAST", "PHOTOMETRIC")})
    spine = dict(INPUT=inp, AUG=aug, CLASS_MAP="default", HIGHRES=SimpleNamespace(ENABLED=False))
    model = _Bodies()
    cfg = SimpleNamespace(SPINE=_Node(**spine, FLIP=True, TIEBREAK_TURNS=(4.0, -4.0)),
                          INPUT=SimpleNamespace(FORMAT="BGR"))
    make = tiebreak_looks(model, cfg, image)
    assert model.calls == 0  # nothing runs until the measurement asks
    looks = make()
    assert model.calls == 2 and len(looks) == 2  # a look of its own per turn: the whole photo turned
    for look in looks:
        assert look.image_size == (300, 200) and len(look) == 3  # in the photo's frame
        masks = look.pred_masks.numpy()
        assert all(max((m & t).sum() / (m | t).sum() for m in masks) > 0.9 for t in truth)
        centres = look.pred_keypoints.numpy()[..., :2].mean(axis=1)  # the corners' box's centre, mapped back
        centres = centres[np.argsort(centres[:, 1])]
        assert np.allclose(centres[:, 1], [65, 145, 225], atol=0.5)
        assert np.allclose(centres[:, 0], 100 + BIAS_PX, atol=0.5)  # the stand-in's bias, along the turned x
    for off in (dict(FLIP=False, TIEBREAK_TURNS=(4.0,)), dict(FLIP=True, TIEBREAK_TURNS=())):
        assert tiebreak_looks(model, SimpleNamespace(SPINE=_Node(**spine, **off), INPUT=cfg.INPUT), image) is None


@pytest.fixture
def two_threads():
    """torch with two intra-op threads while the test runs (xdist workers run one each)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_side_by_side_makes_the_second_call_in_another_thread_with_half_the_threads_each(two_threads):
    import threading
    import time

    import torch

    from spine_d2.engine.test_time import side_by_side

    seen = {}

    def look(name):
        def call():
            seen[name] = (threading.get_ident(), torch.get_num_threads())
            return name
        return call

    assert side_by_side(look("a"), look("b")) == ("a", "b")
    assert seen["a"] == (threading.get_ident(), 1) and seen["b"][1] == 1 and seen["b"][0] != seen["a"][0]
    assert torch.get_num_threads() == 2  # restored
    done = []

    def slow():
        time.sleep(0.2)
        done.append(True)
        return 1

    def bad():
        raise ValueError("a run failed")

    for a, b in ((bad, slow), (slow, bad)):  # either's error, raised once the other is done
        done.clear()
        with pytest.raises(ValueError, match="a run failed"):
            side_by_side(a, b)
        assert done == [True] and torch.get_num_threads() == 2
    torch.set_num_threads(1)  # one thread: one call after the other, in this thread
    seen.clear()
    assert side_by_side(look("a"), look("b")) == ("a", "b")
    assert seen["a"][0] == seen["b"][0] == threading.get_ident()


def test_the_mirrored_run_on_a_twin_beside_the_photos_gives_what_it_gives_after_it(two_threads):
    """With a twin (`mirror_twin`) the photo's run (its first pass made here) and the mirrored run,
    on the twin, go side by side; the fused result and the two reads are those of the runs made
    one after the other on the model alone."""
    from spine_d2.engine.test_time import mirror_twin, one_pass, refine_lazily, refine_with_reads

    image, cfg = _photo_cfg()
    model = _Bodies()
    twin = mirror_twin(model, cfg)
    assert twin is not None and twin is not model and not twin.training
    fused, reads = refine_with_reads(model, cfg, image, twin=twin)
    assert model.calls == 1 and twin.calls == 1  # the photo's pass on the model, the mirror's on the twin
    expected, expected_reads = refine_with_reads(model, cfg, image, one_pass(model, cfg, image))
    assert np.array_equal(fused.pred_keypoints.numpy(), expected.pred_keypoints.numpy())
    assert len(reads) == 2 and all(np.array_equal(a.pred_keypoints.numpy(), b.pred_keypoints.numpy())
                                   for a, b in zip(reads, expected_reads))
    own, _, make = refine_lazily(model, cfg, image, twin=twin)  # always: made at once, on the twin
    assert make is None and twin.calls == 2
    assert np.array_equal(own.pred_keypoints.numpy(), expected.pred_keypoints.numpy())


def test_a_twin_is_made_only_where_the_mirrored_run_goes_with_every_photo_on_a_cpu_of_two_threads(two_threads):
    import torch

    from spine_d2.engine.test_time import mirror_twin

    model = _Bodies().train()
    assert mirror_twin(model, _photo_cfg()[1]) is not None
    assert not mirror_twin(model, _photo_cfg()[1]).training and model.training  # the copy evaluates
    assert mirror_twin(model, _photo_cfg(FLIP=False)[1]) is None
    assert mirror_twin(model, _photo_cfg(FLIP_WHEN="doubt")[1]) is None  # made later, where doubted
    image, cfg = _photo_cfg()
    cfg.MODEL = SimpleNamespace(KEYPOINT_ON=False, DEVICE="cpu")  # no corner head: no mirrored run
    assert mirror_twin(model, cfg) is None
    cfg.MODEL = SimpleNamespace(KEYPOINT_ON=True, DEVICE="cuda")
    assert mirror_twin(model, cfg) is None
    torch.set_num_threads(1)
    assert mirror_twin(model, _photo_cfg()[1]) is None


def test_evaluation_with_a_twin_makes_the_photos_first_pass_beside_the_mirrored_run(two_threads, tmp_path):
    """`TestTimeModel` (evaluation) with a twin makes the photo's first pass from the photo read
    again, beside the mirrored run, instead of on the loader's input (the same pixels): what it
    gives is what it gives without one."""
    import cv2
    import torch

    from spine_d2.data.transforms import model_input
    from spine_d2.engine.test_time import TestTimeModel

    image, cfg = _photo_cfg()
    cv2.imwrite(str(tmp_path / "photo.png"), image)
    inp = {**model_input(image, cfg), "file_name": str(tmp_path / "photo.png")}
    paired = TestTimeModel(_Bodies(), cfg)
    assert paired.twin[0] is not None
    out = paired([inp])[0]
    assert paired.model.calls == 1 and paired.twin[0].calls == 1  # no pass over the loader's input besides
    torch.set_num_threads(1)
    alone = TestTimeModel(_Bodies(), cfg)
    assert alone.twin[0] is None
    expected = alone([inp])[0]
    assert alone.model.calls == 2  # the loader's input, then the mirrored photo
    assert len(out["reads"]) == len(expected["reads"]) == 2 and out["mirrored_run"] is expected["mirrored_run"] is None
    for a, b in zip([out["instances"], *out["reads"]], [expected["instances"], *expected["reads"]]):
        assert np.array_equal(a.pred_keypoints.numpy(), b.pred_keypoints.numpy())
        assert np.array_equal(a.pred_masks.numpy(), b.pred_masks.numpy())


def test_with_a_twin_the_tiebreak_looks_go_side_by_side_in_the_order_of_their_turns(two_threads):
    """Every other tie-breaking look is made on the twin, beside the others: the looks are those
    made one after the other on the model alone, in the order of `test.tiebreak_turns`."""
    from spine_d2.engine.test_time import mirror_twin, tiebreak_looks

    image, cfg = _photo_cfg(TIEBREAK_TURNS=(4.0, -4.0, 8.0))
    model = _Bodies()
    twin = mirror_twin(model, cfg)
    looks = tiebreak_looks(model, cfg, image, twin)()
    assert model.calls == 2 and twin.calls == 1  # 4° and 8° on the model, -4° on the twin
    alone = tiebreak_looks(_Bodies(), cfg, image)()
    assert len(looks) == len(alone) == 3
    for a, b in zip(looks, alone):
        assert np.array_equal(a.pred_keypoints.numpy(), b.pred_keypoints.numpy())
        assert np.array_equal(a.pred_masks.numpy(), b.pred_masks.numpy())
    assert not np.allclose(alone[0].pred_keypoints.numpy(), alone[1].pred_keypoints.numpy())  # the order tells
