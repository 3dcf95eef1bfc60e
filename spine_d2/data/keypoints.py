"""Corner keypoints of training records: what a keypoint head learns; image frame, pixels.

Each vertebral body annotation gets detectron2 keypoints, the four corners of
`spine_d2.levels.CORNERS` as a flat [x, y, v] × 4 (v = 2 labelled, 0 not), taken from the first
source that has them:
1. the annotator's corner points (`corners` of the annotation: Labelme points `L3_sa` …);
2. the phantom's exact endplates (the JSON's `spine_d2` block: radiograph frame, mapped through
   its homography into the image);
3. for outlines alone, the rule: the ends of the endplates the measurement fits to the record's
   own outlines (`spine_d2.measure`, default settings) — the head then learns what the outline
   gives, and corners clicked later take over.
Femoral heads, and sides of a body with no corner, get v = 0. Anatomical names need no swap
under a horizontal flip (`FLIP_MAP` is empty).
"""
from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import numpy as np

from spine_d2.frames import apply_homography
from spine_d2.levels import CORNER_SIDES, CORNERS, is_level

log = logging.getLogger(__name__)

KEYPOINT_NAMES = tuple(CORNERS)
FLIP_MAP: tuple = ()


def _flat(points: Mapping[str, Sequence[float]]) -> list[float]:
    out = []
    for c in CORNERS:
        p = points.get(c)
        out += [float(p[0]), float(p[1]), 2.0] if p is not None else [0.0, 0.0, 0.0]
    return out


def phantom_corners(record: Mapping[str, Any]) -> dict[str, dict[str, list[float]]]:
    """{level: {corner: [x, y]}} from a phantom record's exact endplates, in the image frame."""
    gt = record.get("spine_d2") or {}
    if "homography" not in gt or "endplates" not in gt:
        return {}
    H = np.asarray(gt["homography"], dtype=float)
    out: dict[str, dict[str, list[float]]] = {}
    for level, sides in gt["endplates"].items():
        for side, ep in sides.items():
            if ep is None or side not in CORNER_SIDES:
                continue
            a, p = apply_homography(H, ep)
            out.setdefault(level, {}).update({CORNER_SIDES[side][0]: a.tolist(), CORNER_SIDES[side][1]: p.tolist()})
    return out


def fitted_corners(record: Mapping[str, Any], class_names: Sequence[str]) -> dict[str, dict[str, list[float]]]:
    """{level: {corner: [x, y]}}: the ends of the endplates measured on the record's outlines."""
    from spine_d2.measure.rectify import FrameConfig
    from spine_d2.measure.instances import instances_from_record
    from spine_d2.measure.pipeline import MeasureConfig, measure_instances

    cfg = MeasureConfig(frame=FrameConfig(enabled=False))  # corners stay in the image frame
    try:
        m = measure_instances(instances_from_record(record, class_names), (record["height"], record["width"]),
                              class_names, cfg)
    except Exception as e:  # a record the measurement cannot read trains without corners
        log.info("%s: no corners from its outlines (%s)", record.get("file_name"), e)
        return {}
    out: dict[str, dict[str, list[float]]] = {}
    for level, sides in m.endplates.items():
        for side, ep in sides.items():
            a, p = np.asarray(ep, dtype=float)
            out.setdefault(level, {}).update({CORNER_SIDES[side][0]: a.tolist(), CORNER_SIDES[side][1]: p.tolist()})
    return out


def add_keypoints(record: dict, class_names: Sequence[str], rule: bool = True) -> dict:
    """`record` with `keypoints` on every annotation (in place, also returned); sources in the
    module's order; `rule=False` leaves outline-only bodies without corners."""
    exact = phantom_corners(record)
    fitted = None
    for ann in record.get("annotations", []):
        level = ann.get("label")
        points: dict[str, list[float]] = {}
        if level and is_level(level):
            points = dict(ann.get("corners") or {}) or exact.get(level, {})
            if not points and rule:
                if fitted is None:
                    fitted = fitted_corners(record, class_names)
                points = fitted.get(level, {})
        ann["keypoints"] = _flat(points)
    return record
