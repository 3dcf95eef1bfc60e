"""Each named level's endplate lines (image frame, px): fitted to its outline, or given by its corner points.

`level_endplates` runs over the named levels top to bottom. A level's outline is fitted
(`spine_d2.measure.endplates`) in the radiograph frame when the photo's frame is trusted — there a
body is the box it was on the film, not the photo's keystoned view of it — and the lines come back
in the image frame. An endplate whose two corner points the instance carries is taken as given (or
fused with the fit, `measure.corners`), unless its corners lie closer together than
`min_corner_length` of the fitted endplate's length (two heatmap peaks on one point); the sacrum
has only its superior endplate. A fitted endplate that ends at the photo's edge is the crop, not
the endplate, and is left out; so is the outline of a sacrum the photo's edge cuts (its centre and
sides are the crop's: `cut_by_border`), whose corners, when given, still count. An endplate, from
corners or outline, lying along one of the photo's long straight lines near its axes (`edges`,
the frame estimate's: `photo_lines.along_a_line`) is a film's, viewer's or screen's border cutting
the body inside the photo, and is left out too (`measure.film_edges`). Directions up the
spine come from the neighbouring centres (`spine_cranial`). A body's endplate leaning more than
`max_off_chain_deg` off square to that direction, its other endplate leaning the same way, is a
failed outline (a strongly tilted body the model drew upright), not anatomy: it is turned square to
the chain about its midpoint, and flagged (`square_to_chain`). Plates leaning opposite ways are a
wedge (a fracture) and are kept. Only where the chain itself is sure (`chain_sure`): the body and
its neighbours found with a score of at least `SURE_SCORE`, no level hidden between them.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from spine_d2.angles import REQUIRED_ENDPLATES
from spine_d2.frames import apply_homography
from spine_d2.levels import CORNER_SIDES
from spine_d2.measure.anterior import lateral_of
from spine_d2.measure.corners import fuse
from spine_d2.measure.endplates import SIDES, EndplateError, fit_endplates, plate_length
from spine_d2.measure.flags import judged
from spine_d2.measure.instances import SURE_SCORE, Instance, cut_by_border, touches_border
from spine_d2.measure.photo_lines import along_a_line


def cranial_directions(centres: np.ndarray) -> list[np.ndarray]:
    """Unit vectors up the spine at each centre (ordered top to bottom): central differences."""
    n = len(centres)
    if n == 1:
        return [np.array([0.0, -1.0])]
    out = []
    for k in range(n):
        a, b = centres[max(k - 1, 0)], centres[min(k + 1, n - 1)]
        d = a - b
        norm = np.linalg.norm(d)
        out.append(d / norm if norm > 0 else np.array([0.0, -1.0]))
    return out


def spine_cranial(centres: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Level → unit vector up the spine, from the centres of the named levels (top to bottom); S1's
    points from its centre to L5's when both are named."""
    chain = list(centres)
    cranial = dict(zip(chain, cranial_directions(np.array([centres[lv] for lv in chain])))) if chain else {}
    if "S1" in cranial and "L5" in centres:
        d = centres["L5"] - centres["S1"]
        cranial["S1"] = d / np.linalg.norm(d)
    return cranial


def trained_corners(inst: Instance, level: str, side: str) -> bool:
    """Whether the corner head was trained on the corners of `inst`'s `side` plate: S1 has only its
    superior ones, and so has a body of the sacrum class named otherwise (an L5 the model took for
    the sacrum: its inferior corners were never trained)."""
    return side == "superior" or not (level == "S1" or inst.region == "sacrum")


def corner_endplates(inst: Instance, level: str, min_score: float = 0.0) -> dict[str, tuple[np.ndarray, float]]:
    """The endplates an instance's corner points give (both ends present and scoring at least
    `min_score`, their corners trained: `trained_corners`): side → ([end, end] (image frame, px),
    the lower of the two scores)."""
    out = {}
    for side, (a, p) in CORNER_SIDES.items():
        if a in inst.corners and p in inst.corners and trained_corners(inst, level, side):
            score = float(min(inst.corners[a][2], inst.corners[p][2]))
            if score >= min_score:
                out[side] = (np.array([inst.corners[a][:2], inst.corners[p][:2]], dtype=float), score)
    return out


#: angle → the score under which an end plate's corners (the lower of its two) leave the angle out:
#: 0.2 is where a corner counts as not found (`measure.min_corner_score`), the plate then read from
#: the body's outline, the body faint. On the served model's saved detections of 16 sets (1,319 films
#: with TK measured, 1,408 with LL; benchmarks/README.md, session 62) TK with T5's superior or T12's
#: inferior corners under 0.2 was 9.6° off on average (34 films, 16 beyond 8°), LL with L1's
#: superior or L5's inferior ones 11.3° (27), against 2.1° and 2.2° for the rest. LL_S1, SS and PI,
#: which take S1's plate too, err alike there (8-13°) but are not left out by default: on the
#: phantom's test split LL_S1 would then be measured on fewer than 95 % of its films.
FAINT_PLATE_SCORES = {"TK": 0.2, "LL": 0.2}


def plate_corner_score(instances: Sequence[Instance], levels: Mapping[str, int], level: str, side: str
                       ) -> float | None:
    """The lower of the two corner scores that the body named `level` (`levels`: level → index into
    `instances`) gives its `side` plate (`corner_endplates`); None where it is not named, lacks either
    corner, or has none there that were trained (the inferior ones of a body of the sacrum class)."""
    k = levels.get(level)
    plate = corner_endplates(instances[k], level).get(side) if k is not None else None
    return None if plate is None else plate[1]


def faint_end_plates(instances: Sequence[Instance], levels: Mapping[str, int], below: Mapping[str, float]
                     ) -> dict[str, str]:
    """Angle → why, for each angle in `below` (angle → score) one of whose end plates
    (`REQUIRED_ENDPLATES`) a named body gives by two corners scoring under the angle's score
    (`plate_corner_score`), or gives from corners never trained (`trained_corners`: the inferior
    plate of an L5 the model took for S1, whose outline's plate was 4-23° off on the phantom,
    benchmarks/README.md, session 63); bodies without corners (an outline's annotation) are not
    judged."""
    out = {}
    for name, score in below.items():
        for level, side in REQUIRED_ENDPLATES[name] if score > 0 else ():
            k = levels.get(level)
            if k is not None and instances[k].corners and not trained_corners(instances[k], level, side):
                out[name] = f"{level} read as the sacrum: its {side} plate has no trained corners"
                break
            got = plate_corner_score(instances, levels, level, side)
            if got is not None and got < score:
                out[name] = f"{level} {side} corners score {got:.2f} (< {score:g}): a faint plate"
                break
    return out


def corners_too_close(given: np.ndarray, fitted: np.ndarray | None, min_fraction: float) -> str:
    """Why two corners (image frame, px) are no endplate: closer together than `min_fraction` of
    the outline's fitted endplate `fitted` (two heatmap peaks on one point); "" if they may be, or
    with no fit to check against."""
    if fitted is None:
        return ""
    lg, lf = plate_length(given), plate_length(fitted)
    return f"{lg:.0f} px apart (the outline's endplate: {lf:.0f} px)" if lg < min_fraction * lf else ""


def fit_in_frame(contour: np.ndarray, cranial: np.ndarray, centre: np.ndarray, method: str, level: str,
                 which=SIDES, H: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """`fit_endplates` of an outline (image frame, px), fitted in the radiograph frame when `H`
    (radiograph → image) is given and returned in the image frame (a homography keeps lines straight)."""
    if H is None:
        return fit_endplates(contour, cranial, method, level, which)
    Hinv = np.linalg.inv(H)
    a, b = apply_homography(Hinv, [centre, centre + 10.0 * np.asarray(cranial, float)])
    fit = fit_endplates(apply_homography(Hinv, contour), b - a, method, level, which)
    return {side: apply_homography(H, seg) for side, seg in fit.items()}


def _one_level(inst: Instance, lv: str, cranial: np.ndarray, H, shape, c: Any,
               reasons: dict[str, str], flags: list[str],
               outlines: dict[str, np.ndarray] | None = None, edges: Sequence = ()) -> dict[str, np.ndarray]:
    """One level's endplates (side → [end, end]); why one is missing goes into `reasons`, what
    was left out into `flags`, the outline's fit of a side whose corners replace it into
    `outlines`; a side lying along one of the photo's straight `edges` is left out."""
    given = corner_endplates(inst, lv, c.min_corner_score) if c.corners != "ignore" else {}
    try:
        if lv == "S1" and cut_by_border(inst, shape, c.border_px):
            raise EndplateError("the sacrum is cut by the image border: its outline is not its shape")
        # the sacrum: only its top edge is an endplate (it may taper to a tip below)
        fit = fit_in_frame(inst.contour(), cranial, inst.centre(), c.method, lv,
                           ("superior",) if lv == "S1" else SIDES, H)
    except EndplateError as e:
        if not given:
            reasons[lv] = f"endplate fit failed ({e})"
            return {}
        fit = {}
    for side, (seg, _) in list(given.items()):
        why = corners_too_close(seg, fit.get(side), c.min_corner_length)
        if why:
            del given[side]
            judged(flags, lv, f"{lv} {side} corners {why}: the outline's endplate used")
    for side in sorted(set(given) | set(fit)):
        on = along_a_line(given[side][0] if side in given else fit[side], edges)
        if on is not None:
            given.pop(side, None)
            fit.pop(side, None)
            reasons[f"{lv} {side}"] = "endplate along a straight edge of the photo"
            judged(flags, lv, f"{lv} {side} endplate lies along a straight edge of the photo ({on.extent:.0f} px "
                              f"long: a film's or screen's border cutting the body): not used")
    for side, seg in list(fit.items()):
        if side not in given and touches_border(seg, shape, c.border_px):
            del fit[side]
            reasons[f"{lv} {side}"] = "endplate cut by the image border"
            judged(flags, lv, f"{lv} {side} endplate cut by the image border: not used")
    if c.corners == "fuse":  # the fit and the corners, weighted by the corners' confidence
        fit.update({side: fuse(fit.get(side), seg, conf) for side, (seg, conf) in given.items()})
    else:
        if outlines is not None:
            outlines.update({side: fit[side] for side in given
                             if side in fit and not touches_border(fit[side], shape, c.border_px)})
        fit.update({side: seg for side, (seg, conf) in given.items()})
    return fit


def off_chain_deg(segment: np.ndarray, cranial: np.ndarray) -> float:
    """Signed degrees (−90…90) an endplate (two ends, px) leans off square to the unit vector
    `cranial`: positive when turned clockwise from square in the image (x right, y down)."""
    d = np.asarray(segment, float)[1] - np.asarray(segment, float)[0]
    across = lateral_of(cranial)
    if np.dot(d, across) < 0:
        d = -d
    return float(np.degrees(np.arctan2(across[0] * d[1] - across[1] * d[0], np.dot(across, d))))


def square_to_chain(segment: np.ndarray, cranial: np.ndarray) -> np.ndarray:
    """The endplate turned about its midpoint to lie square to `cranial`, its length kept (px)."""
    seg = np.asarray(segment, float)
    mid, half = seg.mean(axis=0), np.linalg.norm(seg[1] - seg[0]) / 2
    across = lateral_of(cranial)
    if np.dot(across, seg[1] - seg[0]) < 0:
        across = -across  # keep the ends' order
    return np.array([mid - half * across, mid + half * across])


def chain_sure(centres: Sequence[np.ndarray], scores: Sequence[float], k: int, gap_factor: float) -> bool:
    """Whether the chain's direction at its `k`-th body (centres px and scores 0–1 of the named
    bodies, top to bottom) can judge that body's endplates: it and its neighbours score at least
    `SURE_SCORE`, and the two steps to them differ by less than `gap_factor` (no level hidden on
    one side)."""
    near = slice(max(k - 1, 0), k + 2)
    if len(scores[near]) < 2 or min(scores[near]) < SURE_SCORE:
        return False
    steps = np.linalg.norm(np.diff(np.asarray(centres[near], float), axis=0), axis=1)
    return bool(steps.min() > 0 and steps.max() < gap_factor * steps.min())


def _checked_against_chain(fit: dict[str, np.ndarray], lv: str, cranial: np.ndarray, limit: float,
                           flags: list[str]) -> dict[str, np.ndarray]:
    if not limit or lv == "S1":  # the sacral plate leans on its own (the sacrum is no body of the chain)
        return fit
    offs = {side: off_chain_deg(seg, cranial) for side, seg in fit.items()}
    if len(offs) == 2 and np.prod(list(offs.values())) <= 0:
        return fit  # the two plates lean opposite ways: a wedge (a fracture), not a body turned
    for side, seg in fit.items():
        off = abs(offs[side])
        if off > limit:
            fit[side] = square_to_chain(seg, cranial)
            judged(flags, lv, f"{lv} {side} endplate {off:.0f}° off square to the spine's chain (> {limit:g}°): "
                              f"taken square to the chain")
    return fit


def level_endplates(kept: Sequence[Instance], levels: Mapping[str, int], centres: Mapping[str, np.ndarray],
                    cranial: Mapping[str, np.ndarray], H: np.ndarray | None, shape: Sequence[int], c: Any,
                    reasons: dict[str, str], flags: list[str],
                    outlines: dict[str, dict[str, np.ndarray]] | None = None,
                    edges: Sequence = ()) -> dict[str, dict[str, np.ndarray]]:
    """Level → side → endplate (two ends, image frame, no order yet) for the levels of `cranial`,
    in its order (`centres`: theirs, px, as `spine_cranial` was given them); `H`: the trusted
    radiograph → image homography or None; `c`: the `MeasureConfig`
    (method, corners, min_corner_score, min_corner_length, border_px, max_off_chain_deg,
    gap_factor). Adds to `reasons` (level or "level side" → why it has no endplate) and `flags`,
    and to `outlines` (level → side → endplate) the outline's fit where corner points replaced it;
    `edges`: the photo's long straight lines (`Line`s, image frame), whose endplates lying along
    them are left out (none: no such check)."""
    raw, chain = {}, list(cranial)
    points = [centres[lv] for lv in chain]
    scores = [kept[levels[lv]].score for lv in chain]
    for k, lv in enumerate(chain):
        outline = outlines.setdefault(lv, {}) if outlines is not None else None
        fit = _one_level(kept[levels[lv]], lv, cranial[lv], H, shape, c, reasons, flags, outline, edges)
        if chain_sure(points, scores, k, c.gap_factor):
            fit = _checked_against_chain(fit, lv, cranial[lv], c.max_off_chain_deg, flags)
        if fit:
            raw[lv] = fit
    return raw
