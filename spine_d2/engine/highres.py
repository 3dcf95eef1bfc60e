"""A second, high-resolution pass along the spine: the model run again on upright windows where the
vertebrae are larger, its detections mapped back and merged; image frame, pixels.

The first pass (the whole photo at the model's input size) finds the spine; `spine_windows` cuts it
into overlapping upright windows of the input's size, zoomed so that the median vertebra is
`test.highres.target_px` high (none when that enlarges it less than `min_gain` times: a large spine
is left as the first pass saw it). The windows' thoracic and lumbar bodies scoring at least
`min_score` replace the first pass's detections where they overlap (the overlap covers `OVERLAP` of
the smaller mask: a body a window cut in half is the same body), and a body seen by two windows is
kept from the window where it lies farther from the edge. The sacrum, the femoral heads and
anything the windows miss stay as the first pass found them: a window's sacrum, seen without the
pelvis around it, measured SS worse (benchmarks/README.md). Where the first pass found no sacrum,
though, the windows' sure ones are added (`with_window_sacra`): a window often sees an S1 that the
first pass missed or read as a lumbar body, and without one SS, PT and PI are lost. With
`test.highres.sacrum_corners` the sacrum's corners (S1's endplate) are averaged with a window's
where the two agree (`average_corners`, as the mirrored run's): the first pass sees S1's endplate
at its input's coarse scale. With `test.highres.turns` the windows run again turned a few degrees
about their centres, and each body's corners (and the sacrum's, with `sacrum_corners`) are averaged
over the upright and turned runs where they agree (`window_corners`): a corner is the noisiest part
of a prediction, and a turned look at the same pixels gives another estimate of it
(benchmarks/README.md: ±5°). The turned looks read only corners, so by default
(`test.highres.turned_boxes` given, `turned_corners`) they do not detect anything again: each sure
body found is handed to the box head as a proposal of its class in the turned window where it lies
deepest, cut to the columns the bodies span, and the corner head reads the box that comes back;
no proposals, no masks, fewer pixels: a photo a third faster, as accurate (benchmarks/README.md).
With `own` each turned window detects everything again, matched to the bodies by their masks.
Where no windows are made, with `test.highres.turn_strip` the photo runs turned by the same degrees
instead, cut to the spine's columns at the first pass's scale (`spine_strip`: the same look with
fewer pixels), and the first pass's thoracic and lumbar bodies' corners are averaged with those
runs' alike: a spine already large in the first pass gets its other looks too. The sacrum's stay
the first pass's there: the strip cuts off the pelvis around it (with them SS was worse on two of
three seeds; benchmarks/README.md).
Corners come back as points (`pred_keypoints`, sub-pixel, score in [0, 1]) because a window's
keypoint heatmaps are not aligned with the image.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Callable, Sequence

import cv2
import numpy as np
import torch
from detectron2.structures import Boxes, Instances

from spine_d2.data.transforms import input_scale, model_input
from spine_d2.engine.soft_masks import SoftMaskModel
from spine_d2.engine.windows import Window, spine_strip, spine_windows
from spine_d2.levels import get_class_map, region
from spine_d2.measure.cleanup import SAME_BODY_IOU
from spine_d2.measure.corners import average_agreeing, heatmap_peaks
from spine_d2.polygons import mask_box, shared_pixels

OVERLAP = 0.5
VERTEBRA_CLASSES = ("thoracic", "lumbar", "sacrum")  # where the windows go
WINDOW_CLASSES = ("thoracic", "lumbar")               # what they give back
CORNER_CLASSES = ("sacrum",)                          # whose corners they average in (`sacrum_corners`)
HEAD_CLASSES = ("femoral_head",)                      # overlapping by design: never one another's repeat
MATCH_IOU = SAME_BODY_IOU  # two runs' detections are the same body when the masks overlap this much (IoU)
AGREE = 0.3      # two estimates of an endplate's corners agree within this share of its length
COLUMN_MARGIN = 2.0  # a turned look in given boxes sees their columns and this many median box heights either side
#: reads the corners of a first pass's detections (indices into its Instances): (n, K, 3) x, y (image px), score
CornerReader = Callable[[Sequence[int]], np.ndarray]


@dataclass
class Detection:
    """One detection in the image frame: class index, score, boolean mask, corners (K, 3) or None,
    how far its centre lies inside the window that found it (px; ∞ for the first pass), its
    sub-pixel outline (K, 2) when the model gives one (`test.soft_masks`) and its index in the
    Instances it came from (`detections`; -1: none), by which a first pass's corners are read later
    (`first_pass`)."""

    cls: int
    score: float
    mask: np.ndarray
    corners: np.ndarray | None
    depth: float
    contour: np.ndarray | None = None
    source: int = -1

    @cached_property
    def box(self) -> tuple[int, int, int, int]:
        """x0, y0, x1, y1 of the mask's pixels (x1, y1 exclusive); computed once (a new mask makes
        a new Detection: `dataclasses.replace`)."""
        return mask_box(self.mask)  # never None: a detection has pixels (`detections`)

    @cached_property
    def area(self) -> int:
        """The mask's pixels; computed once, as `box`."""
        x0, y0, x1, y1 = self.box
        return int(np.count_nonzero(self.mask[y0:y1, x0:x1]))

    @cached_property
    def centre(self) -> np.ndarray:
        """x, y of the mask's pixels' mean (image px); computed once, as `box`."""
        x0, y0, x1, y1 = self.box
        ys, xs = np.nonzero(self.mask[y0:y1, x0:x1])
        return np.array([xs.mean() + x0, ys.mean() + y0])

    def with_corners(self, corners: np.ndarray | None) -> "Detection":
        """This detection with other corners; the same mask, so what was computed of it (`box`,
        `area`, `centre`) is kept, not computed again on a photo-sized mask."""
        out = replace(self, corners=corners)
        out.__dict__.update({k: v for k, v in self.__dict__.items() if k in ("box", "area", "centre")})
        return out


def _arr(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def detections(inst: Instances, window: Window | None, shape: tuple[int, int],
               keep: tuple[set[int], float] | None = None) -> list[Detection]:
    """A pass's predictions as detections in the image frame (`window` None: the first pass); with
    `keep` (classes, min score) only those of the classes scoring at least that."""
    masks, classes, scores = _arr(inst.pred_masks), _arr(inst.pred_classes), _arr(inst.scores)
    corners = None
    if inst.has("pred_keypoint_heatmaps"):
        corners = heatmap_peaks(_arr(inst.pred_keypoint_heatmaps), _arr(inst.pred_boxes.tensor))
    elif inst.has("pred_keypoints"):  # already decoded to sub-pixel: a second pass's output
        corners = _arr(inst.pred_keypoints).astype(float)
    contours = list(inst.pred_contours) if inst.has("pred_contours") else [None] * len(classes)
    out = []
    for k in range(len(classes)):
        if keep is not None and (int(classes[k]) not in keep[0] or scores[k] < keep[1]):
            continue
        c = None if corners is None else corners[k].copy()
        outline = contours[k]
        if window is not None and outline is not None and len(outline):
            outline = window.to_image(outline)
        if window is None:  # detectron2 pastes the masks thresholded already: boolean, the photo's size
            mask, depth = (masks[k] if masks.dtype == bool else masks[k] > 0.5), np.inf
        else:
            fg = masks[k] > 0.5
            box = mask_box(fg)
            if box is None:
                continue
            mask = window.mask_to_image(masks[k], shape, above=0.5)
            if c is not None:
                c[:, :2] = window.to_image(c[:, :2])
            ys, xs = np.nonzero(fg[box[1]:box[3], box[0]:box[2]])  # inside its box: cheaper
            xs, ys = xs + box[0], ys + box[1]
            h, w = window.size
            depth = float(min(xs.mean(), w - xs.mean(), ys.mean(), h - ys.mean()))
        if mask.any():
            out.append(Detection(int(classes[k]), float(scores[k]), mask, c, depth, outline, k))
    return out


def intersection(a: Detection, b: Detection) -> int:
    """Pixels the two masks share (counted inside the overlap of their boxes)."""
    return shared_pixels(a.mask, a.box, b.mask, b.box)


def _overlap(a: Detection, b: Detection) -> float:
    """Intersection over the smaller of the two masks."""
    return intersection(a, b) / max(min(a.area, b.area), 1)


def merge(first: list[Detection], windowed: list[Detection], bodies: set[int],
          min_score: float = 0.5, apart: set[int] = frozenset()) -> list[Detection]:
    """The windows' detections of the classes `bodies` scoring ≥ `min_score` (deduplicated: the
    deeper inside its window wins), plus the first pass's detections that none of them overlaps,
    nor one of the first pass's taken before it (a repeat; the first pass's come best scored first).
    Two detections of the classes `apart` are not weighed against each other: the two femoral heads
    overlap on a lateral film by design, and the measurement judges them (`measure.femoral_heads`)."""
    kept = _deepest(d for d in windowed if d.cls in bodies and d.score >= min_score)
    for d in first:
        if all(_overlap(d, k) < OVERLAP or (d.cls in apart and k.cls in apart) for k in kept):
            kept.append(d)
    return kept


def _deepest(dets) -> list[Detection]:
    """`dets` (windows' detections) without repeats: of those overlapping by `OVERLAP`, the one
    lying deepest inside its window."""
    kept: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.depth):
        if all(_overlap(d, k) < OVERLAP for k in kept):
            kept.append(d)
    return kept


def with_window_sacra(kept: list[Detection], windowed: list[Detection], sacrum: set[int],
                      min_score: float = 0.5) -> list[Detection]:
    """`kept` with the windows' sacrum instances (class indices `sacrum`) scoring ≥ `min_score`
    where it holds none: S1 the first pass missed or read as a lumbar body, seen larger in a window
    (deduplicated as `merge`'s bodies). One lying on a body is settled by the measurement's
    duplicate rule (the higher score stays). Where `kept` has a sacrum the first pass's stays: a
    window's, seen without the pelvis around it, measured SS worse (benchmarks/README.md)."""
    if any(d.cls in sacrum for d in kept):
        return kept
    return kept + _deepest(d for d in windowed if d.cls in sacrum and d.score >= min_score)


def window_corners(kept: list[Detection], runs: list[list[Detection]], classes: set[int],
                   min_score: float = 0.5) -> list[Detection]:
    """`kept` with the corners of its detections of `classes` averaged with those the window runs
    `runs` found of them scoring ≥ `min_score` (`average_corners`: where they agree)."""
    sure = [[d for d in run if d.cls in classes and d.score >= min_score] for run in runs]
    return average_corners(kept, *sure, classes=classes) if classes and runs else kept


def _iou(a: Detection, b: Detection) -> float:
    inter = intersection(a, b)
    return inter / max(a.area + b.area - inter, 1)


def average_corners(first: list[Detection], *runs: list[Detection], match_iou: float = MATCH_IOU,
                    agree: float = AGREE, classes: set[int] | None = None) -> list[Detection]:
    """`first` with each body's corners averaged with its match in each of `runs`, other runs'
    estimates of them in the same frame (the mirrored run's mapped back, a window's, turned
    windows'): `spine_d2.measure.corners.average_agreeing`, per endplate the mean of the estimates
    that agree with `first`'s within `agree` of its length, scored by the highest score. Matches
    are one-to-one within a run: the best mask IoU of the same class, at least `match_iou`,
    `first` in its order. Only bodies of `classes` (None: all); masks, outlines, scores and what
    only a run found are left out of it."""
    taken: list[set[int]] = [set() for _ in runs]
    out = []
    for d in first:
        if d.corners is None or (classes is not None and d.cls not in classes):
            out.append(d)
            continue
        matches = []
        for run, used in zip(runs, taken):
            ious = [(_iou(d, e), j) for j, e in enumerate(run)
                    if j not in used and e.cls == d.cls and e.corners is not None]
            best, j = max(ious, default=(0.0, -1))
            if best >= match_iou:
                used.add(j)
                matches.append(run[j].corners)
        out.append(d.with_corners(average_agreeing(d.corners, *matches, agree=agree)) if matches else d)
    return out


def to_instances(dets: list[Detection], shape: tuple[int, int]) -> Instances:
    """detectron2 Instances (pred_masks, pred_boxes, pred_classes, scores, pred_keypoints)."""
    out = Instances(shape)
    masks = np.stack([d.mask for d in dets]) if dets else np.zeros((0, *shape), bool)
    out.pred_masks = torch.as_tensor(masks)
    out.pred_boxes = Boxes(torch.as_tensor(np.array([d.box for d in dets], dtype=np.float32).reshape(-1, 4)))
    out.pred_classes = torch.as_tensor([d.cls for d in dets], dtype=torch.int64)
    out.scores = torch.as_tensor([d.score for d in dets], dtype=torch.float32)
    if dets and all(d.corners is not None for d in dets):
        out.pred_keypoints = torch.as_tensor(np.stack([d.corners for d in dets]), dtype=torch.float32)
    if any(d.contour is not None for d in dets):
        out.pred_contours = [d.contour for d in dets]
    return out


def high_resolution_pass(model, cfg, image: np.ndarray, first: Instances) -> Instances:
    """`first` (the model's predictions on `image`, its frame) refined by windows along the spine
    (`cfg.SPINE.HIGHRES`). `image` is in the model's input format (H×W×3 uint8); `model` a
    detectron2 model in eval mode."""
    dets = high_resolution_detections(model, cfg, image, first)
    return first if dets is None else to_instances(dets, image.shape[:2])


def high_resolution_detections(model, cfg, image: np.ndarray, first: Instances,
                                turns: Sequence[float] | None = None,
                                corners: CornerReader | None = None) -> list[Detection] | None:
    """`high_resolution_pass` as detections in the image frame; None where neither windows nor the
    turned strip are made (the first pass stands as it is). `turns`: degrees, instead of
    `test.highres.turns` (the mirrored run's, `test.highres.flip_turns`). `corners`: where `first`
    comes without corners (`first_pass`), the call that reads them; only the detections the
    windows leave standing get theirs."""
    shape = image.shape[:2]
    hr = cfg.SPINE.HIGHRES
    turns = hr.TURNS if turns is None else turns
    pred_classes = _arr(first.pred_classes)
    is_vert = np.isin(pred_classes, list(class_ids(cfg.SPINE.CLASS_MAP, VERTEBRA_CLASSES)))
    boxes = _arr(first.pred_boxes.tensor)[is_vert]
    size = (int(cfg.SPINE.INPUT.HEIGHT), int(cfg.SPINE.INPUT.WIDTH))
    wins = spine_windows(boxes, size, float(hr.TARGET_PX), input_scale(shape, cfg), float(hr.MIN_GAIN),
                         int(hr.WINDOWS))
    bodies = class_ids(cfg.SPINE.CLASS_MAP, WINDOW_CLASSES)
    sacrum = class_ids(cfg.SPINE.CLASS_MAP, CORNER_CLASSES)
    corners_of = sacrum if hr.SACRUM_CORNERS else set()
    min_score = float(hr.MIN_SCORE)
    used = (bodies | sacrum, min_score)  # all that the windows' detections are used for
    if not wins:
        if not (hr.TURN_STRIP and turns and len(boxes) >= 2):
            return None
        if cfg.SPINE.INPUT.FIT == "keep_aspect":  # the spine's columns, at the first pass's scale
            strip = spine_strip(boxes, shape, max(abs(t) for t in turns))
        else:  # a strip would be stretched otherwise than the photo was: all of it
            strip = Window(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), shape)
        own = detections(with_corners_read(first, corners), None, shape)
        if given_boxes(cfg):
            turned = turned_corners(model, cfg, image, [strip], own, turns, bodies, min_score)
        else:
            turned = _looks(corners_only(model), cfg, image, [strip.turned(t) for t in turns], (bodies, min_score))
        return window_corners(own, turned, bodies, min_score)
    windowed = _run(model, cfg, image, wins, used)
    heads = class_ids(cfg.SPINE.CLASS_MAP, HEAD_CLASSES)
    kept = with_window_sacra(merge(detections(first, None, shape), windowed, bodies, min_score, heads), windowed,
                             sacrum, min_score)
    kept = _standing_corners(kept, corners)
    if given_boxes(cfg):
        turned = turned_corners(model, cfg, image, wins, kept, turns, bodies | corners_of, min_score)
    else:
        turned = [_run(corners_only(model), cfg, image, [w.turned(t) for w in wins], used) for t in turns]
    kept = window_corners(kept, turned, bodies, min_score)  # the upright run's are kept's own
    return window_corners(kept, [windowed, *turned], corners_of, min_score)


def with_corners_read(first: Instances, corners: CornerReader | None) -> Instances:
    """`first` (a `first_pass`'s Instances, in place) with every detection's corners read by
    `corners` (`pred_keypoints`); unchanged where `corners` is None or it holds none."""
    if corners is not None and len(first):
        first.pred_keypoints = torch.as_tensor(corners(range(len(first))))
    return first


def _standing_corners(kept: list[Detection], corners: CornerReader | None) -> list[Detection]:
    """`kept` with the corners of the first pass's detections among them (depth ∞, none yet) read
    by `corners`; unchanged where it is None."""
    todo = [i for i, d in enumerate(kept) if d.corners is None and math.isinf(d.depth) and d.source >= 0]
    if corners is None or not todo:
        return kept
    out = list(kept)
    for i, c in zip(todo, corners([kept[i].source for i in todo])):
        out[i] = kept[i].with_corners(c)
    return out


def given_boxes(cfg) -> bool:
    """Whether the turned looks read the corners of the bodies already found, in boxes given from
    them (`test.highres.turned_boxes` given), instead of detecting everything again (own)."""
    return str(getattr(cfg.SPINE.HIGHRES, "TURNED_BOXES", "given")) == "given"


def turned_corners(model, cfg, image: np.ndarray, wins: list[Window], dets: list[Detection],
                   turns: Sequence[float], classes: set[int], min_score: float) -> list[list[Detection]]:
    """Per turn of `turns` (degrees), the detections of `dets` (image frame) of `classes` scoring at
    least `min_score`, with the corners the model reads for them in the windows `wins` turned so
    (`test.highres.turned_boxes` given). Each body is looked at in the window where its centre lies
    deepest, cut to the columns its bodies span (`COLUMN_MARGIN`; same scale, fewer pixels); its
    outline's box there is given to the box head as a proposal of its class and the corner head
    reads the box that comes back (`_corners_in_boxes`). The backbone, box head and corner head
    run, no proposals and no masks: a third less time per photo than looks that detect everything
    again (benchmarks/README.md). A body the turned window cuts, or whose class the box head scores
    under `min_score` there (as a look that detects again would not find it sure), is left out of
    that turn. Masks, scores, classes and outlines stay `dets`'s."""
    todo = [d for d in dets if d.cls in classes and d.score >= min_score and d.corners is not None]
    if not todo or not wins or not turns:
        return [[] for _ in turns]
    home = [max(range(len(wins)), key=lambda i: wins[i].depth(d.centre)) for d in todo]
    outlines = [_outline(d) for d in todo]
    keep_aspect = cfg.SPINE.INPUT.FIT == "keep_aspect"  # else a narrower crop would be stretched
    looks = []  # (turn, window, boxes in it, indices into todo)
    for t in turns:
        for i, win in enumerate(wins):
            turned = win.turned(t)
            mine = [(k, box) for k in range(len(todo))
                    if home[k] == i and (box := turned.box_of(outlines[k])) is not None]
            if mine:
                boxes = np.array([b for _, b in mine])
                looks.append((t, *(turned.columns(boxes, COLUMN_MARGIN) if keep_aspect else (turned, boxes)),
                              [k for k, _ in mine]))
    if not looks:
        return [[] for _ in turns]
    inputs = [model_input(np.ascontiguousarray(win.crop(image)), cfg) for _, win, _, _ in looks]
    given = []
    for inp, (_, win, boxes, mine) in zip(inputs, looks):
        h, w = inp["image"].shape[1:]
        inst = Instances((h, w))
        scale = np.array([w / win.size[1], h / win.size[0]] * 2)  # window px → input px
        inst.pred_boxes = Boxes(torch.as_tensor(boxes * scale, dtype=torch.float32))
        inst.pred_classes = torch.as_tensor([todo[k].cls for k in mine], dtype=torch.int64)
        given.append(inst)
    with torch.no_grad():
        outs = _corners_in_boxes(meta_arch(model), inputs, given)
    out: dict[float, list[Detection]] = {t: [] for t in turns}
    for inp, (t, win, _, mine), res in zip(inputs, looks, outs):
        h, w = inp["image"].shape[1:]
        kp = _arr(res.pred_keypoints).astype(float)
        kp[:, :, :2] *= [win.size[1] / w, win.size[0] / h]
        for k, c, ok in zip(mine, kp, _arr(res.scores) >= min_score):
            if ok:
                c[:, :2] = win.to_image(c[:, :2])
                out[t].append(todo[k].with_corners(c))
    return [out[t] for t in turns]


def _outline(d: Detection) -> np.ndarray:
    """Points around `d` (N, 2; image px, detectron2's continuous frame: pixel i spans [i, i+1]):
    its sub-pixel outline where it has one (`test.soft_masks`), else the corners of the pixels on
    its mask's outer outline."""
    if d.contour is not None and len(d.contour) >= 3:
        return np.asarray(d.contour, float) + 0.5  # pixel centres at integers → continuous
    x0, y0, x1, y1 = d.box
    found, _ = cv2.findContours(d.mask[y0:y1, x0:x1].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    p = np.concatenate([c.reshape(-1, 2) for c in found]).astype(float) + (x0, y0)
    return (p[:, None, :] + np.array([[0, 0], [1, 0], [0, 1], [1, 1]], float)).reshape(-1, 2)


def _corners_in_boxes(net, inputs: list[dict], given: list[Instances]) -> list[Instances]:
    """Per input (detectron2's input dicts), the bodies `given` (pred_boxes, input px, and
    pred_classes) with `pred_keypoints` (input px) from `net`'s corner head and `scores` (the box
    head's probability of the given class), one per body, in order. Each box is refined first by
    the box head as a proposal of its class, so the corners are read in the box the model itself
    puts around the body in this look: with the given box alone (another look's) the looks' corners
    err together and TK was worse (benchmarks/README.md)."""
    heads = net.roi_heads
    given = [g.to(net.device) for g in given]
    features = net.backbone(net.preprocess_image(inputs).tensor)
    proposals = []
    for g in given:
        p = Instances(g.image_size)
        p.proposal_boxes, p.gt_classes = g.pred_boxes, g.pred_classes
        proposals.append(p)
    pooled = heads.box_pooler([features[f] for f in heads.box_in_features], [p.proposal_boxes for p in proposals])
    predictions = heads.box_predictor(heads.box_head(pooled))
    refined = heads.box_predictor.predict_boxes_for_gt_classes(predictions, proposals)
    probs = heads.box_predictor.predict_probs(predictions, proposals)
    out = []
    for g, b, p in zip(given, refined, probs):
        inst = Instances(g.image_size)
        inst.pred_boxes, inst.pred_classes = Boxes(b), g.pred_classes
        inst.scores = p[torch.arange(len(p), device=p.device), g.pred_classes]
        out.append(inst)
    return heads._forward_keypoint(features, out)


def meta_arch(model):
    """The detectron2 meta-architecture inside the test-time wrappers (`SoftMaskModel`, a
    DistributedDataParallel's module)."""
    net = model
    while not hasattr(net, "roi_heads") and hasattr(net, "model"):
        net = net.model
    return getattr(net, "module", net)


def corners_only(model):
    """`model` for runs whose corners alone are used (the turned looks): without the sub-pixel
    outlines `SoftMaskModel` adds (the same masks, scores and corners)."""
    return model.model if isinstance(model, SoftMaskModel) else model


def _looks(model, cfg, image: np.ndarray, wins: list[Window],
           keep: tuple[set[int], float] | None = None) -> list[list[Detection]]:
    """The model's detections in each of the windows `wins` of `image` (one batch), mapped back to
    the image, a list per window; `keep` as `detections`."""
    if not wins:
        return []
    with torch.no_grad(), score_floor(model, 0.0 if keep is None else keep[1]):
        outs = model([model_input(np.ascontiguousarray(win.crop(image)), cfg) for win in wins])
    return [detections(o["instances"].to("cpu"), win, image.shape[:2], keep) for win, o in zip(wins, outs)]


@contextmanager
def score_floor(model, score: float):
    """`model`'s box predictor keeps only boxes scoring at least `score` (or its own threshold,
    the higher) while inside: a look that uses only sure detections runs its mask and corner
    heads on those alone. The detections kept are the same: per-class NMS only lets a box
    suppress lower-scoring ones, and the top `TEST.DETECTIONS_PER_IMAGE` by score are the same."""
    predictor = getattr(getattr(meta_arch(model), "roi_heads", None), "box_predictor", None)
    if predictor is None or not hasattr(predictor, "test_score_thresh"):
        yield
        return
    before = predictor.test_score_thresh
    predictor.test_score_thresh = max(before, math.nextafter(score, 0.0))  # it keeps scores above it
    try:
        yield
    finally:
        predictor.test_score_thresh = before


def _run(model, cfg, image: np.ndarray, wins: list[Window],
         keep: tuple[set[int], float] | None = None) -> list[Detection]:
    """`_looks`, all windows' detections together."""
    return [d for look in _looks(model, cfg, image, wins, keep) for d in look]


def class_ids(class_map: str, regions: tuple[str, ...]) -> set[int]:
    """Indices of the classes of `class_map` in `regions` (region classes, or levels in them)."""
    out = set()
    for i, n in enumerate(get_class_map(class_map).classes):
        try:
            if n in regions or region(n) in regions:
                out.add(i)
        except KeyError:
            pass
    return out
