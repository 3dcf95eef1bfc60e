"""Detected or annotated structures as plain data: class, mask or polygon, score, level; image frame, pixels.

An `Instance` is what the measurement works on, whatever produced it: a model's prediction (a
boolean H×W mask), a Labelme polygon (an (N, 2) array of x, y) or a circle (femoral heads). The
converters here turn detectron2's prediction objects and dataset dicts into instances without
importing detectron2.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import cv2
import numpy as np

from spine_d2.levels import CORNERS, FEMORAL_HEAD, is_level, region
from spine_d2.measure.corners import heatmap_peaks
from spine_d2.polygons import mask_box, polygon_area, rasterize

#: Why a level is uncertain when its annotation says so (Labelme shape flag `level_uncertain`).
FLAGGED = "flagged level_uncertain in the annotation"

#: Class names that mean a femoral head (default map: 'femoral_head'; per-level map: 'FH').
FEMORAL_HEAD_CLASSES = ("femoral_head", FEMORAL_HEAD)
#: A detection scoring less (0–1) may be a stray (a scapula, a rib head, a sacral segment): the
#: measurement never lets it overrule a surer one (the chain check, the naming).
SURE_SCORE = 0.5


@dataclass
class Instance:
    """One structure in the image frame (pixels, x right, y down).

    `class_name` is the model class ('thoracic', 'lumbar', 'sacrum', 'femoral_head', or a level
    name for the per-level map); `label` is a known level name ('L3') when the source says so
    (annotations, per-level model), else None. `level` is filled in by the naming step.
    `corners`: corner points given for the body (annotation points or a keypoint model), name
    (`spine_d2.levels.CORNERS`: 'sa', 'sp', 'ia', 'ip') → (x, y, score); `uncertain`: why the
    source doubts its level (e.g. an annotation flagged `level_uncertain`), "" when it does not;
    `also`: the other classes the model gave this same object (class → best score), from the
    duplicates the clean-up removed.
    """

    class_name: str
    mask: np.ndarray | None = None
    polygon: np.ndarray | None = None
    circle: tuple[float, float, float] | None = None
    score: float = 1.0
    label: str | None = None
    level: str | None = None
    notes: list[str] = field(default_factory=list)
    corners: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    uncertain: str = ""
    also: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        if self.mask is None and self.polygon is None and self.circle is None:
            raise ValueError(f"instance of class {self.class_name!r} has no mask, polygon or circle")
        if self.polygon is not None:
            self.polygon = np.asarray(self.polygon, dtype=float).reshape(-1, 2)
        self._local = None
        if self.mask is not None:
            self.mask = np.asarray(self.mask).astype(bool)
            if self.mask.ndim != 2:
                raise ValueError(f"instance of class {self.class_name!r}: mask must be H×W, got {self.mask.shape}")

    def local_mask(self) -> tuple[np.ndarray, int, int]:
        """(boolean mask cropped to the instance's box, x0, y0): cheap to work on for big photos."""
        if self._local is None:
            if self.mask is not None:
                box = mask_box(self.mask)
                if box is None:
                    self._local = (np.zeros((0, 0), bool), 0, 0)
                else:
                    x0, y0, x1, y1 = box
                    self._local = (self.mask[y0:y1, x0:x1], x0, y0)
            else:
                pts = self.polygon if self.polygon is not None else self.contour()
                x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 1
                x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 2
                self._local = (rasterize(pts - [x0, y0], (y1 - y0, x1 - x0)), int(x0), int(y0))
        return self._local

    def box(self) -> tuple[int, int, int, int]:
        """x0, y0, x1, y1 (exclusive) of `local_mask`."""
        sub, x0, y0 = self.local_mask()
        return x0, y0, x0 + sub.shape[1], y0 + sub.shape[0]

    @property
    def region(self) -> str:
        """'thoracic' | 'lumbar' | 'sacrum' | 'femoral_head' | 'other'."""
        for name in (self.class_name, self.label):
            if name is None:
                continue
            if name in FEMORAL_HEAD_CLASSES or name == "FH":
                return "femoral_head"
            if name == "sacrum":
                return "sacrum"
            try:
                return region(name)
            except KeyError:
                pass
        return "other"

    @property
    def is_vertebra(self) -> bool:
        """Thoracic, lumbar or sacral body (everything the spine's chain of centres is made of)."""
        return self.region in ("thoracic", "lumbar", "sacrum")

    def contour(self) -> np.ndarray:
        """Closed outline, (N, 2) float, about one point per pixel of perimeter, counter-clockwise
        on screen; from the polygon (resampled) or the largest outer contour of the mask."""
        if self.polygon is not None:
            return resample_closed(self.polygon, step=1.0)
        if self.mask is not None:
            sub, x0, y0 = self.local_mask()
            return mask_contour(sub) + [x0, y0]
        cx, cy, r = self.circle
        t = np.linspace(0, 2 * np.pi, max(12, int(2 * np.pi * r)), endpoint=False)
        return np.stack([cx + r * np.cos(t), cy - r * np.sin(t)], axis=1)

    def area(self) -> float:
        if self.mask is not None:
            return float(self.local_mask()[0].sum())
        if self.polygon is not None:
            return polygon_area(self.polygon)
        return float(np.pi * self.circle[2] ** 2)

    def centre(self) -> np.ndarray:
        if self.mask is not None:
            sub, x0, y0 = self.local_mask()
            if sub.any():
                ys, xs = np.nonzero(sub)
                return np.array([xs.mean() + x0, ys.mean() + y0])
        if self.polygon is not None and len(self.polygon) >= 3:
            return polygon_centroid(self.polygon)
        if self.circle is not None:
            return np.array(self.circle[:2], dtype=float)
        return np.full(2, np.nan)

    def length_along(self, direction: Sequence[float]) -> float:
        """How far the instance reaches along the unit vector `direction` (image frame, px): the 2nd to
        98th percentile of its mask's pixels projected on it (a stray pixel does not count), or the
        outline's full extent."""
        u = np.asarray(direction, dtype=float)
        if self.mask is not None:
            sub, x0, y0 = self.local_mask()
            if sub.any():
                ys, xs = np.nonzero(sub)
                lo, hi = np.percentile((xs + x0) * u[0] + (ys + y0) * u[1], [2, 98])
                return float(hi - lo)
        points = self.contour() if self.polygon is None else np.asarray(self.polygon, dtype=float)
        if len(points) == 0:
            return 0.0
        p = points @ u
        return float(p.max() - p.min())

    def bool_mask(self, shape: Sequence[int]) -> np.ndarray:
        """The instance as a boolean mask of `shape` (H, W): its own mask, or its outline filled."""
        if self.mask is not None:
            return self.mask
        return rasterize(self.contour() if self.polygon is None else self.polygon, shape)


def bones_mask(instances: Sequence[Instance], shape: Sequence[int], grow: float,
               min_score: float = SURE_SCORE) -> np.ndarray | None:
    """Where the bones lie (H×W bool, image frame): the vertebrae and femoral heads scoring at least
    `min_score`, grown by `grow` times their bodies' median height (px, the thoracic and lumbar
    boxes'); None when there are none. What the frame estimate leaves out of its lines
    (`spine_d2.measure.photo_lines.over_bones`)."""
    h, w = int(shape[0]), int(shape[1])
    bones = [i for i in instances if i.score >= min_score and (i.is_vertebra or i.region == "femoral_head")]
    if not bones:
        return None
    out = np.zeros((h, w), bool)
    heights = []
    for inst in bones:
        sub, x0, y0 = inst.local_mask()
        if not sub.size:
            continue
        xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + sub.shape[1], w), min(y0 + sub.shape[0], h)
        if xb > xa and yb > ya:
            out[ya:yb, xa:xb] |= sub[ya - y0:yb - y0, xa - x0:xb - x0]
        if inst.region in ("thoracic", "lumbar"):
            heights.append(sub.shape[0])
    k = grow * float(np.median(heights)) if heights else 0.0
    if k > 0:  # grown by k px: within k of a bone (a distance transform: a tenth of a dilation's time)
        out = cv2.distanceTransform((~out).view(np.uint8), cv2.DIST_L2, 5) <= k
    return out


def touches_border(segment: np.ndarray, image_shape: Sequence[int], border_px: float) -> bool:
    """True when an end of a fitted endplate (image frame, px) lies within `border_px` of the
    image's edge: a vertebra cut by the photo's crop."""
    h, w = image_shape[:2]
    pts = np.asarray(segment, float).reshape(-1, 2)
    return bool(np.any((pts[:, 0] <= border_px) | (pts[:, 0] >= w - 1 - border_px) |
                       (pts[:, 1] <= border_px) | (pts[:, 1] >= h - 1 - border_px)))


def cut_by_border(inst: Instance, image_shape: Sequence[int], border_px: float) -> bool:
    """True when an instance's mask reaches within `border_px` of the image's edge (image frame,
    px; `touches_border` on the mask's box): the photo's crop cuts it, so its outline, its centre
    and the cranial direction from them are not the body's. Used for S1, whose outline alone gives
    its endplate's side (the sacrum has no rectangle); a body's cut endplate is caught by
    `touches_border` on the endplate itself."""
    x0, y0, x1, y1 = inst.box()  # x1, y1 exclusive: the last pixel is x1 − 1, y1 − 1
    return touches_border(np.array([[x0, y0], [x1 - 1, y1 - 1]], float), image_shape, border_px)


def polygon_centroid(poly: np.ndarray) -> np.ndarray:
    x, y = np.asarray(poly, dtype=float).T
    cross = x * np.roll(y, -1) - np.roll(x, -1) * y
    a = cross.sum() / 2.0
    if abs(a) < 1e-9:
        return np.array([x.mean(), y.mean()])
    return np.array([((x + np.roll(x, -1)) * cross).sum(), ((y + np.roll(y, -1)) * cross).sum()]) / (6 * a)


def resample_closed(poly: np.ndarray, step: float = 1.0) -> np.ndarray:
    """Points every `step` pixels along the closed polygon `poly` (its vertices included).

    A side no longer than a diagonal step (√2 · `step`) is not split, so an outline traced from a
    mask's pixels (`mask_contour`, as tools/predict.py writes it for Labelme) comes back as those
    very points and measures as its mask does.
    """
    p = np.asarray(poly, dtype=float).reshape(-1, 2)
    if len(p) == 0:
        return p
    side = np.roll(p, -1, axis=0) - p
    length = np.sqrt((side * side).sum(axis=1))
    n = np.where(length <= np.sqrt(2.0) * step + 1e-9, 1, np.ceil(length / step)).astype(int)
    k = np.repeat(np.arange(len(p)), n)  # the side each point lies on
    t = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)) / n[k]
    return p[k] + t[:, None] * side[k]


def largest_component(mask: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The largest 8-connected component of `mask`; also how many other fragments and pixels it drops."""
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask.astype(bool), 0, 0
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = 1 + int(np.argmax(areas))
    return lab == keep, n - 2, int(areas.sum() - areas.max())


def mask_contour(mask: np.ndarray) -> np.ndarray:
    """Outer boundary of the largest component, (N, 2) float pixel centres; empty (0, 2) if none."""
    m = np.ascontiguousarray(mask.astype(np.uint8))
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return np.zeros((0, 2))
    c = max(contours, key=cv2.contourArea).reshape(-1, 2).astype(float)
    return c


def circle_of(inst: Instance) -> tuple[float, float, float] | None:
    """[cx, cy, r] of a femoral head: the given circle, else a least-squares fit to its outline."""
    if inst.circle is not None:
        return tuple(float(v) for v in inst.circle)
    pts = inst.contour()
    if len(pts) < 5:
        return None
    x, y = pts.T
    a = np.stack([x, y, np.ones_like(x)], axis=1)
    sol, *_ = np.linalg.lstsq(a, x**2 + y**2, rcond=None)
    cx, cy = sol[0] / 2, sol[1] / 2
    r2 = sol[2] + cx**2 + cy**2
    if not np.isfinite(r2) or r2 <= 0:
        return None
    return float(cx), float(cy), float(np.sqrt(r2))


# ---------------------------------------------------------------------------------------------
# converters


def _class_name(category_id: int, class_names: Sequence[str], where: str) -> str:
    try:
        return class_names[int(category_id)]
    except (IndexError, ValueError, TypeError):
        raise ValueError(f"{where}: category id {category_id!r} not in classes {list(class_names)}") from None


def instances_from_predictions(pred: Any, class_names: Sequence[str], keypoint_names: Sequence[str] = CORNERS,
                               soft_outlines: bool = True) -> list[Instance]:
    """Instances from a detectron2 `Instances` of predictions (pred_masks, pred_classes, scores,
    and the corners when a keypoint head gives them, K named by `keypoint_names`: decoded to
    sub-pixel from `pred_keypoint_heatmaps` over `pred_boxes`, score in [0, 1]
    (`spine_d2.measure.corners.heatmap_peaks`), else detectron2's `pred_keypoints` (N, K, 3)).
    With `pred_contours` (`test.soft_masks`: sub-pixel outlines from the soft masks) and
    `soft_outlines`, each instance's outline is its contour; its mask stays the boolean one.

    Works on anything with those attributes (tensors or arrays); imports nothing from detectron2.
    """
    def arr(x):
        return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)

    if not hasattr(pred, "pred_masks"):
        raise ValueError("predictions carry no pred_masks: a mask model is needed to measure")
    masks, classes = arr(pred.pred_masks), arr(pred.pred_classes)
    scores = arr(pred.scores) if hasattr(pred, "scores") else np.ones(len(classes))
    keypoints = arr(pred.pred_keypoints) if hasattr(pred, "pred_keypoints") else None
    if hasattr(pred, "pred_keypoint_heatmaps") and hasattr(pred, "pred_boxes"):
        boxes = pred.pred_boxes.tensor if hasattr(pred.pred_boxes, "tensor") else pred.pred_boxes
        keypoints = heatmap_peaks(arr(pred.pred_keypoint_heatmaps), arr(boxes))
    if keypoints is not None and keypoints.shape[1:] != (len(keypoint_names), 3):
        raise ValueError(f"pred_keypoints of shape {keypoints.shape}: expected (N, {len(keypoint_names)}, 3) "
                         f"for the keypoints {', '.join(keypoint_names)}")
    contours = list(pred.pred_contours) if soft_outlines and hasattr(pred, "pred_contours") else [None] * len(masks)
    out = []
    for k, (m, c, s) in enumerate(zip(masks, classes, scores)):
        name = _class_name(c, class_names, "prediction")
        outline = contours[k] if contours[k] is not None and len(contours[k]) >= 3 else None
        corners = {} if keypoints is None else {
            n: (float(x), float(y), float(v)) for n, (x, y, v) in zip(keypoint_names, keypoints[k])}
        out.append(Instance(name, mask=m > 0.5 if m.dtype != bool else m, polygon=outline, score=float(s),
                            label=name if is_level(name) else None, corners=corners))
    return out


def lazy_instances(make: Callable[[], Sequence[Any]] | None, class_names: Sequence[str]
                   ) -> Callable[[], list[list[Instance]]] | None:
    """`make` (a call that makes several predictions, e.g. the test time's turned looks, or None)
    as a call that makes them into instances (`instances_from_predictions`), run only when called."""
    if make is None:
        return None
    return lambda: [instances_from_predictions(p, class_names) for p in make()]


class LazyRun:
    """`make` (a call that makes the mirrored run: its fused predictions and the two reads) as a
    call that makes them into instances, run once and only when called; `made` holds the fused
    predictions and `instances` theirs once it has run (None before)."""

    def __init__(self, make: Callable[[], tuple[Any, Sequence[Any]]], class_names: Sequence[str]):
        self._make, self._names = make, list(class_names)
        self.made: Any = None
        self.instances: list[Instance] | None = None
        self._reads: list[list[Instance]] = []

    def __call__(self) -> tuple[list[Instance], list[list[Instance]]]:
        if self.made is None:
            self.made, reads = self._make()
            self.instances = instances_from_predictions(self.made, self._names)
            self._reads = [instances_from_predictions(r, self._names) for r in reads]
        return self.instances, self._reads


def lazy_run(make: Callable[[], tuple[Any, Sequence[Any]]] | None, class_names: Sequence[str]) -> LazyRun | None:
    """`LazyRun` of `make`, or None where there is no call (the mirrored run made already, or off)."""
    return None if make is None else LazyRun(make, class_names)


def instances_from_record(
    record: Mapping[str, Any], class_names: Sequence[str], rasterize_masks: bool = False
) -> list[Instance]:
    """Instances from a detectron2 dataset dict (as `spine_d2.data.labelme` returns them).

    Each annotation's polygon (or circle) becomes an instance carrying the annotator's label, its
    corner points (`corners`) and its `level_uncertain` flag; `rasterize_masks=True` turns polygons
    into boolean masks of the image's size, as a model would produce them.
    """
    where = str(record.get("file_name", record.get("image", "record")))
    shape = (int(record["height"]), int(record["width"]))
    out = []
    for ann in record.get("annotations", []):
        name = _class_name(ann["category_id"], class_names, where)
        label = ann.get("label")
        circle = ann.get("circle")
        seg = ann.get("segmentation") or []
        polys = [np.asarray(s, dtype=float).reshape(-1, 2) for s in seg if len(s) >= 6]
        if not polys and circle is None:
            raise ValueError(f"{where}: annotation {label or name!r} has neither polygon nor circle")
        poly = max(polys, key=polygon_area) if polys else None
        mask = None
        if rasterize_masks and polys:
            mask = np.zeros(shape, bool)
            for p in polys:
                mask |= rasterize(p, shape)
            poly = None
            circle = None  # a model gives a mask, not a circle
        out.append(Instance(name, mask=mask, polygon=poly, circle=None if mask is not None else
                            (tuple(circle) if circle is not None else None), score=1.0,
                            label=label if label and is_level(label) else None,
                            corners={n: (float(x), float(y), 1.0) for n, (x, y) in ann.get("corners", {}).items()},
                            uncertain=FLAGGED if ann.get("level_uncertain") else ""))
    return out

