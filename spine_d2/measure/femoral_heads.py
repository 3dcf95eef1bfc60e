"""The femoral heads a measurement uses: the two best scored circles that can be this S1's hips; image frame, px.

On a lateral film the two heads are seen apart (the X-ray's magnification differs); PT and PI use
the hip axis, the midpoint of their centres. It lies caudal of the S1 endplate's midpoint, about
3.3 endplate lengths away (Legaye 2013; shared/PHANTOM.md): a circle that cannot be one of this
S1's hips on its own (a stray find in the abdomen; the sacrum or a vertebra found as a head, within
`MIN_HEAD_STEPS` levels' steps of the lowest body: `heads_clear_of_spine`) is left out while another
can; a pair whose axis cannot be is left out with the reason. The two heads of one film lie close
(on the phantom's films their centres are at most 2.3 radii apart): a pair is taken from heads near
enough to be one (`paired_heads`) before two best scored ones far apart; before that, a weak head
beside a sure one is left out, and one far from the best one's size (`sure_heads`). Heads far
caudal of the S1 plate doubt the plate too (`s1_plate_doubted`).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from spine_d2.measure.endplates import plate_length
from spine_d2.measure.frame_angles import HEADS_NOT_IN_VIEW
from spine_d2.measure.instances import Instance, circle_of


#: a femoral head scoring under this is left out beside one scoring at least this: the model's weak
#: second reading of one head, a few pixels off it, would pair with it and move the hip axis; a
#: true second head it sees weakly lies about a radius away (benchmarks/README.md, session 69)
WEAK_HEAD_SCORE = 0.2

#: one film's two femoral heads differ in radius by at most this factor: the X-ray magnifies the
#: one nearer the source more, by ~10-20 % (the phantom's 1,111 pairs: median 1.12, at most 1.40);
#: a circle twice the best head's radius is the two heads read as one blob, or the acetabulum
HEAD_RADIUS_RATIO = 1.5


def usable_heads(kept: Sequence[Instance], head_indices: Sequence[int], input_index: Sequence[int],
                 min_radius: float, flags: list[str]) -> dict[tuple[float, float, float], float]:
    """The circles (cx, cy, r) of the usable heads among `kept[head_indices]`, best scored first,
    each with its score; `input_index`: each kept instance's index in the input (for the flags)."""
    heads = []
    for i in head_indices:
        circ = circle_of(kept[i])
        if circ is None or circ[2] < min_radius:
            flags.append(f"femoral head #{input_index[i]} unusable outline: ignored")
            continue
        heads.append((kept[i].score, circ))
    return {h: score for score, h in sorted(heads, key=lambda t: -t[0])}


def sure_heads(heads: list, score_of: dict, flags: list[str], weak_score: float = 0.0,
               radius_ratio: float = 0.0) -> list:
    """`heads` (circles (cx, cy, r), best scored first; `score_of`: circle → score) without those
    scoring under `weak_score` where one scores at least that, and then without those whose radius
    differs from the best scored one's by more than `radius_ratio` times (each 0: none left out)."""
    if heads and score_of.get(heads[0], 1.0) >= weak_score > 0:
        weak = [h for h in heads if score_of.get(h, 1.0) < weak_score]
        for h in weak:
            flags.append(f"femoral head at ({h[0]:.0f}, {h[1]:.0f}) scores {score_of[h]:.2f} (< {weak_score:g}) "
                         f"beside a surer one: ignored")
        heads = [h for h in heads if h not in weak]
    if len(heads) > 1 and radius_ratio > 0:
        r0 = heads[0][2]
        apart = [h for h in heads[1:] if max(h[2], r0) > radius_ratio * min(h[2], r0)]
        for h in apart:
            flags.append(f"femoral head at ({h[0]:.0f}, {h[1]:.0f}) of radius {h[2]:.0f} px beside the best scored "
                         f"one's {r0:.0f} px (more than {radius_ratio:g}x apart): ignored")
        heads = [h for h in heads if h not in apart]
    return heads


#: a femoral head lies at least this many levels' steps (the median step between the lowest named
#: bodies' centres) from the lowest body's centre: on the phantom's 1,777 labelled heads (22 sets) at
#: least 2.7 from L5's, 3.8 typically (S1 and some 120 mm of pelvis lie between); a circle nearer is
#: the sacrum or L5 found as a head (benchmarks/README.md, session 50)
MIN_HEAD_STEPS = 2.0


def heads_clear_of_spine(heads: list, bodies: np.ndarray, flags: list[str],
                         min_steps: float = MIN_HEAD_STEPS) -> list:
    """`heads` (circles (cx, cy, r), image frame, px) without those whose centre lies within
    `min_steps` levels' steps of the lowest of `bodies` (the named vertebral bodies' centres, top to
    bottom; the step: the median of the last four steps between them), each noted in `flags`, while
    a head further away is left (as `plausible_heads` leaves out a head that cannot be this S1's);
    unchanged with fewer than two bodies or `min_steps` 0."""
    if min_steps <= 0 or len(bodies) < 2 or not heads:
        return heads
    b = np.asarray(bodies, float)
    step = float(np.median(np.linalg.norm(np.diff(b[-5:], axis=0), axis=1)))
    if step <= 0:
        return heads
    steps = [float(np.hypot(h[0] - b[-1][0], h[1] - b[-1][1])) / step for h in heads]
    if all(n < min_steps for n in steps):
        return heads
    for h, n in zip(heads, steps):
        if n < min_steps:
            flags.append(f"femoral head at ({h[0]:.0f}, {h[1]:.0f}) {n:.1f} levels' steps from the lowest body "
                         f"(< {min_steps:g}): the sacrum or a vertebra, not a hip: ignored")
    return [h for h, n in zip(heads, steps) if n >= min_steps]


#: the hip axis lies this many S1-endplate lengths from the endplate's midpoint at most (Legaye
#: 2013: ~3.3, shared/PHANTOM.md; the phantom's truth 2.8-3.9 on 1,775 films, radiograph frame)
MAX_HIP_AXIS_PLATES = 6.0


def hip_axis_plates(s1_superior: np.ndarray, axis: np.ndarray) -> float:
    """The hip axis's distance from the S1 endplate's midpoint in endplate lengths (image frame, px)."""
    length = plate_length(s1_superior)
    d = float(np.linalg.norm(np.asarray(axis, float) - s1_superior.mean(axis=0)))
    return d / length if length > 0 else math.inf


def _caudal(s1_superior: np.ndarray, axis: np.ndarray, up: np.ndarray) -> bool:
    """Whether `axis` lies caudal of the S1 endplate's midpoint (`up`: cranial; image frame, px)."""
    return float((np.asarray(axis, float) - s1_superior.mean(axis=0)) @ up) < 0


def implausible_hip_axis(s1_superior: np.ndarray, axis: np.ndarray, up: np.ndarray,
                         min_ratio: float = 1.0, max_ratio: float = MAX_HIP_AXIS_PLATES) -> str:
    """Why a hip axis cannot be the one of this S1 endplate (image frame, px), or "" if it can:
    accepted caudal of the endplate's midpoint (`up`: cranial), `min_ratio`–`max_ratio` lengths away."""
    if not _caudal(s1_superior, axis, up):
        return "hip axis not caudal of the S1 endplate"
    ratio = hip_axis_plates(s1_superior, axis)
    if not min_ratio <= ratio <= max_ratio:
        return f"hip axis {ratio:.1f} S1-endplate lengths from S1 (expected {min_ratio:g}–{max_ratio:g})"
    return ""


def s1_plate_doubted(s1_superior: np.ndarray | None, axis: np.ndarray | None, up: np.ndarray,
                     max_ratio: float = MAX_HIP_AXIS_PLATES) -> str:
    """Why S1's plate (image frame, px) is doubted by the femoral heads, or "": the hip axis of the
    heads found (`plausible_heads`' pair, or its one head: the two overlap on a lateral film and are
    often found as one circle; none of them a possible hip of this S1) lies caudal of the plate but
    more than `max_ratio` of its lengths away, where the phantom's truth has 2.8-3.9. The plate is
    then misread (too short, or not S1's, the levels counted up from the wrong one): on the phantom
    every such film had SS 28-53° off and LL, where measured, 13-35°, while a hip axis too close to
    the plate or cranial of it came with the plate read right (benchmarks/README.md, session 56)."""
    if s1_superior is None or axis is None:
        return ""
    s1 = np.asarray(s1_superior, float)
    ratio = hip_axis_plates(s1, axis)
    if not _caudal(s1, axis, up) or ratio <= max_ratio:
        return ""
    return f"S1's plate doubted: the femoral heads' axis lies {ratio:.1f} of its lengths from it (expected ≤ {max_ratio:g})"


def paired_heads(heads: list, max_apart: float) -> list:
    """`heads` (circles (cx, cy, r), best scored first) with the best scored pair whose centres lie
    within `max_apart` mean radii of each other moved to the front (the best head with its best
    partner; else the next best head's), the rest after them in order; unchanged where no two lie
    that close (a head found off its place: the two best scored stay the pair). 0: unchanged."""
    for i, h in enumerate(heads if max_apart > 0 else []):
        for g in heads[i + 1:]:
            if math.hypot(g[0] - h[0], g[1] - h[1]) <= max_apart * (g[2] + h[2]) / 2:
                return [h, g] + [x for x in heads if x is not h and x is not g]
    return list(heads)


def plausible_heads(heads: list, s1_superior: np.ndarray | None, up: np.ndarray,
                    flags: list[str], max_apart: float = 0.0, score_of: dict | None = None,
                    weak_score: float = 0.0, radius_ratio: float = 0.0) -> tuple[list, np.ndarray | None, str, str]:
    """(the two heads used, hip axis or None, why none are used, why S1's plate is doubted) from
    `heads` (circles, best scored first): a head that cannot be this S1's on its own
    (`implausible_hip_axis` of its centre: a stray circle in the abdomen or the chest) is left out
    while one that can is left; of the rest, weak ones and ones far from the best one's size are
    left out (`sure_heads`, with `score_of`: circle → score); the best scored pair within
    `max_apart` mean radii is used (`paired_heads`), else the two best scored; then the pair's hip
    axis is checked against the S1 endplate (when there is one), and where it lies too far caudal
    of it, the plate is doubted (`s1_plate_doubted`)."""
    if s1_superior is not None:
        s1 = np.asarray(s1_superior, float)
        near = [h for h in heads if not implausible_hip_axis(s1, np.asarray(h[:2], float), up)]
        if near and len(near) < len(heads):
            flags.append(f"{len(heads) - len(near)} femoral head(s) where no hip of this S1 can be: ignored")
            heads = near
    heads = sure_heads(heads, score_of or {}, flags, weak_score, radius_ratio)
    paired = paired_heads(heads, max_apart)
    if paired[:2] != heads[:2]:
        flags.append(f"{len(heads)} femoral heads: the two best scored lie more than {max_apart:g} radii "
                     f"apart: kept the best scored pair that lies closer")
    elif len(heads) > 2:
        flags.append(f"{len(heads)} femoral heads: kept the two best scored")
    heads = paired[:2]
    axis = np.mean([h[:2] for h in heads], axis=0) if heads else None
    if axis is not None and s1_superior is not None:
        why = implausible_hip_axis(np.asarray(s1_superior, float), axis, up)
        if why:
            flags.append(f"femoral heads ignored: {why}")
            return [], None, f"femoral heads implausibly placed: {why}", s1_plate_doubted(s1_superior, axis, up)
    return heads, axis, HEADS_NOT_IN_VIEW, ""
