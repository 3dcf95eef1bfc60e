"""Test-time mirroring (`test.flip`): the model run again on the photo mirrored left–right, its
corners mapped back and averaged with the first run's where the two agree; image frame, pixels.

A corner's position is the noisiest part of a prediction, and training flips half its photos
with corner names anatomical (`spine_d2.data.keypoints.FLIP_MAP` is empty), so the mirrored run
gives a second estimate of each corner, averaged in where the two agree
(`spine_d2.engine.highres.average_corners`). Masks, outlines, scores, and what only one run found
stay the first run's, but for the pelvis (`with_mirrored_pelvis`): where the photo's run found no
sacrum instance, the mirrored run's are added, since without one S1 is not found and SS, PT and
PI, and often the count of the levels, are lost; where it found no femoral head, the mirrored
run's sure ones are, since without one PT and PI are lost. And for the bodies
(`with_mirrored_bodies`): a vertebral body the mirrored run is sure of where the photo's run found
nothing is added, since a body missed leaves a gap that the count of the levels must guess across,
and a missed L5 or T12 loses LL or TK. benchmarks/README.md has what it changes and what it costs
(a second run of everything: the first pass and the windows).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from spine_d2.engine.highres import Detection, intersection
from spine_d2.measure.instances import SURE_SCORE

LONE_SHARE = 0.2  # a body lies where the other run found nothing when it shares less of its pixels with each detection


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


def with_mirrored_pelvis(fused: list[Detection], second: list[Detection], sacrum: set[int],
                         heads: set[int] = frozenset(), min_head_score: float = SURE_SCORE) -> list[Detection]:
    """`fused` (the photo's run, corners averaged in) with what of the pelvis only `second` (the
    mirrored run, mapped back) found; class indices in `sacrum` and `heads`. A pelvis faint on the
    photo is sometimes found on its mirror image only.

    - Its sacrum instances, when `fused` has none: the sacrum anchors the count of the levels (S1)
      and gives SS, PT and PI. The measurement judges them as any sacrum instance (a weak one below
      the lumbar spine, or far from it, is not taken for S1).
    - Its femoral heads scoring at least `min_head_score`, when `fused` has none: they give PT and
      PI. The measurement takes any head it is given for the hip axis, whose side votes at full
      strength on the anterior side; a weak one added this way turned a phantom film's TK by 84°
      (benchmarks/README.md, session 47)."""
    out = list(fused)
    if not any(d.cls in sacrum for d in fused):
        out += [d for d in second if d.cls in sacrum]
    if not any(d.cls in heads for d in fused):
        out += [d for d in second if d.cls in heads and d.score >= min_head_score]
    return out


def with_mirrored_bodies(fused: list[Detection], second: list[Detection], bodies: set[int], sacrum: set[int],
                         min_score: float = SURE_SCORE, lone_share: float = LONE_SHARE) -> list[Detection]:
    """`fused` with the vertebral bodies (class indices in `bodies`) that `second` (the mirrored run,
    mapped back) scores at least `min_score` and that share less than `lone_share` of their pixels
    with every detection of `fused`: bodies the photo's run missed (a faint one, or several in a
    row), each a level the naming would otherwise have to count across a gap. Left out: those
    whose centre lies below the centre of `fused`'s highest sure sacrum (class indices in
    `sacrum`) along the spine (from its bodies' mean centre towards its sure sacra's, so a photo
    turned sideways or upside down reads alike): below S1 a body is a sacral segment or a stray,
    and read as lumbar it makes the sequence implausible and every level uncertain. On the
    phantom (benchmarks/README.md, session 49) a missed L5 then gave LL again and a missed run
    of thoracic bodies TK; weak ones (< 0.5) are not added, as the mirrored run's femoral heads."""
    lone = [d for d in second if d.cls in bodies and d.score >= min_score
            and all(intersection(d, f) < lone_share * d.area for f in fused)]
    if not lone:
        return fused
    sacra = [f.centre for f in fused if f.cls in sacrum and f.score >= min_score]
    chain = [f.centre for f in fused if f.cls in bodies]
    if not sacra or not chain:
        return list(fused) + lone
    down = np.mean(sacra, axis=0) - np.mean(chain, axis=0)  # along the spine, towards the sacrum
    down = down / n if (n := np.linalg.norm(down)) > 0 else np.array([0.0, 1.0])
    s1 = min(float(c @ down) for c in sacra)
    return list(fused) + [d for d in lone if float(d.centre @ down) <= s1]
