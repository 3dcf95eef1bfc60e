"""Test-time mirroring (`test.flip`): the model run again on the photo mirrored left–right, its
corners mapped back and averaged with the first run's where the two agree; image frame, pixels.

A corner's position is the noisiest part of a prediction, and training flips half its photos
with corner names anatomical (`spine_d2.data.keypoints.FLIP_MAP` is empty), so the mirrored run
gives a second estimate of each corner. Each body the mirrored run finds again (same class, mask
IoU ≥ `MATCH_IOU`) gets `spine_d2.measure.corners.average_agreeing`: per endplate, the mean of
the two where they agree within `AGREE` of its length, scored by the higher score; where they
disagree, the first run's corners. Masks, outlines, scores, and what only one run found stay the
first run's. benchmarks/README.md has what it changes and what it costs (a second run of
everything: the first pass and the windows).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from spine_d2.engine.highres import Detection, intersection
from spine_d2.measure.corners import average_agreeing

MATCH_IOU = 0.5  # a mirrored-run body is the same body when the masks overlap this much (IoU)
AGREE = 0.3      # two estimates of an endplate's corners agree within this share of its length


def mirrored(dets: list[Detection], width: int) -> list[Detection]:
    """Detections on a photo mirrored left–right, mapped back to the photo's frame (`width` px):
    corners in detectron2's continuous coordinates (x → width − x), outlines in pixel centres
    (x → width − 1 − x); corner names kept (they are anatomical)."""
    out = []
    for d in dets:
        corners = None if d.corners is None else d.corners.copy()
        if corners is not None:
            corners[:, 0] = width - corners[:, 0]
        contour = None
        if d.contour is not None:
            contour = np.asarray(d.contour, dtype=float).copy()
            if len(contour):
                contour[:, 0] = width - 1 - contour[:, 0]
        m = replace(d, mask=d.mask[:, ::-1], corners=corners, contour=contour)  # the mask: a view
        x0, y0, x1, y1 = d.box
        m.__dict__.update(box=(width - x1, y0, width - x0, y1), area=d.area)  # the cached box, mirrored
        out.append(m)
    return out


def _iou(a: Detection, b: Detection) -> float:
    inter = intersection(a, b)
    return inter / max(a.area + b.area - inter, 1)


def merge_mirrored(first: list[Detection], second: list[Detection], match_iou: float = MATCH_IOU,
                   agree: float = AGREE) -> list[Detection]:
    """`first` with each body's corners averaged with its match in `second` (both in the photo's
    frame; `mirrored` maps a mirrored run's back). Matches are one-to-one: the best IoU of the
    same class, `first` in its order."""
    taken: set[int] = set()
    out = []
    for d in first:
        if d.corners is None:
            out.append(d)
            continue
        ious = [(_iou(d, e), j) for j, e in enumerate(second)
                if j not in taken and e.cls == d.cls and e.corners is not None]
        best, j = max(ious, default=(0.0, -1))
        if best < match_iou:
            out.append(d)
            continue
        taken.add(j)
        out.append(replace(d, corners=average_agreeing(d.corners, second[j].corners, agree)))
    return out
