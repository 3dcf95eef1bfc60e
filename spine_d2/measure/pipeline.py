"""From instances (masks or polygons, image frame) to TK, LL, LL_S1, SS, PT, PI with a reason for every NaN.

`measure_instances` runs the road: clean-up → level names → endplate lines (fitted in the
radiograph frame when the photo's frame is trusted, kept in the image frame; an endplate whose two
corner points an instance carries is taken as given) → anterior side → frame correction
(radiograph frame when trusted) → `spine_d2.angles.sagittal_angles`, the project's one angle
definition (through `frame_angles.endplate_angles`, which the page's corrections share).
It never raises on bad geometry: whatever cannot be measured is NaN with its reason, and
everything done (removals, flags, the frame and its correction) is kept in the returned
`Measurement`. `measurement_row` flattens it into the
CSV row ``image, TK, LL, LL_S1, SS, PT, PI, frame, notes``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

import numpy as np

from spine_d2.angles import ANGLE_NAMES, Angle
from spine_d2.frames import apply_homography
from spine_d2.levels import CORNER_SIDES, LEVEL_INDEX, LUMBAR, THORACIC
from spine_d2.measure.anterior import Anterior, decide_anterior, lateral_of
from spine_d2.measure.corners import fuse
from spine_d2.measure.cleanup import Removal, clean_instances
from spine_d2.measure.config import MeasureConfig
from spine_d2.measure.endplates import SIDES, EndplateError, fit_endplates, order_anterior_posterior
from spine_d2.measure.frame import FrameEstimate, estimate_frame
from spine_d2.measure.frame_angles import HEADS_NOT_IN_VIEW, endplate_angles
from spine_d2.measure.instances import Instance, circle_of
from spine_d2.measure.naming import name_levels

CSV_COLUMNS: tuple[str, ...] = ("image",) + ANGLE_NAMES + ("frame", "notes")


@dataclass
class Measurement:
    """Everything measured on one image. Geometry is in the image frame (pixels, x right, y down);
    `angles` are in `frame` ('radiograph' when the correction was trusted, else 'image')."""

    angles: dict[str, Angle]
    frame: str = "image"
    correction: FrameEstimate | None = None
    instances: list[Instance] = field(default_factory=list)
    levels: dict[str, int] = field(default_factory=dict)
    endplates: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    femoral_heads: list[tuple[float, float, float]] = field(default_factory=list)
    removals: list[Removal] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    anterior: Anterior | None = None
    method: str = MeasureConfig.method
    image_shape: tuple[int, int] = (0, 0)
    excluded: dict[str, str] = field(default_factory=dict)  # level (or "level side") → why it feeds no angle
    sign: int = 1                     # +1 when anterior points to +x in the image frame
    heads_reason: str = HEADS_NOT_IN_VIEW  # why no femoral heads are used, when none are
    uncertain: dict[str, str] = field(default_factory=dict)  # level → why its name is uncertain

    def values(self) -> dict[str, float]:
        return {name: self.angles[name].value for name in ANGLE_NAMES}

    @property
    def notes(self) -> str:
        """One line: flags, the NaN reasons (grouped), removals, the frame correction."""
        parts = list(self.flags)
        by_reason: dict[str, list[str]] = {}
        for name in ANGLE_NAMES:
            a = self.angles[name]
            if not a.measured:
                by_reason.setdefault(a.reason, []).append(name)
        parts += [f"{'/'.join(names)} NaN: {reason}" for reason, names in by_reason.items()]
        parts += [f"removed {r}" for r in self.removals]
        if self.correction is not None:
            parts.append(self.correction.describe())
        return "; ".join(parts)


def measurement_row(image: str, m: Measurement) -> dict[str, Any]:
    """The CSV row: image, the six angles (degrees, NaN when missing), frame, notes."""
    row: dict[str, Any] = {"image": image}
    row.update({name: float(m.angles[name].value) for name in ANGLE_NAMES})
    row["frame"] = m.frame
    row["notes"] = m.notes
    return row


def _as_instances(instances: Sequence[Any], class_names: Sequence[str] | None) -> list[Instance]:
    out = []
    for k, inst in enumerate(instances):
        if isinstance(inst, Instance):
            out.append(inst)
            continue
        d = dict(inst)
        name = d.pop("class_name", None)
        if name is None:
            cid = d.pop("category_id", None)
            if cid is None or class_names is None or not 0 <= int(cid) < len(class_names):
                raise ValueError(f"instance {k}: no class_name and no usable category_id ({cid!r})")
            name = class_names[int(cid)]
        keep = {f.name for f in fields(Instance)}
        out.append(Instance(name, **{key: v for key, v in d.items() if key in keep}))
    return out


def _cranial_directions(centres: np.ndarray) -> list[np.ndarray]:
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


def measure_instances(
    instances: Sequence[Instance | Mapping],
    image_shape: Sequence[int],
    class_names: Sequence[str] | None = None,
    cfg: Any = None,
    image: np.ndarray | None = None,
    frame: FrameEstimate | None = None,
) -> Measurement:
    """Measure one image's instances (see the module docstring).

    `instances`: `Instance` objects or dicts with `class_name` (or `category_id` into
    `class_names`), `mask` (H×W bool) or `polygon` ((N, 2) px) or `circle`, optional `score`,
    `label`. `image` (the photo, H×W[×3]) lets the frame be estimated when `cfg.frame.enabled`;
    `frame`, when given, is used as is (e.g. the true homography, or one estimated elsewhere).
    """
    c = MeasureConfig.from_cfg(cfg)
    shape = (int(image_shape[0]), int(image_shape[1]))
    flags: list[str] = []
    insts = _as_instances(instances, class_names)

    if frame is None and image is not None and c.frame.enabled:
        frame = estimate_frame(image, c.frame)

    idx, kept, removals = clean_instances(insts, shape, c.slope_threshold, c.duplicate_overlap,
                                          c.min_area, c.min_area_fraction, c.duplicate_overlap_heads,
                                          c.chain_rule, c.turn_limit_deg)
    naming = name_levels(kept, use_labels=c.use_labels, gap_factor=c.gap_factor, anchor=c.level_anchor)
    flags += naming.flags
    # why a level is absent, when we know (a labelled instance removed by the clean-up)
    level_reason: dict[str, str] = {}
    for r in removals:
        if r.label and r.label not in naming.levels:
            level_reason[r.label] = r.reason
    for inst in kept:
        flags += [f"{inst.level or inst.class_name}: {n}" for n in inst.notes]

    # spine axis: named vertebrae top to bottom
    chain = sorted(naming.levels, key=lambda lv: LEVEL_INDEX[lv])
    centres = np.array([kept[naming.levels[lv]].centre() for lv in chain]).reshape(-1, 2)
    cranial = dict(zip(chain, _cranial_directions(centres))) if len(chain) else {}
    if "S1" in cranial and "L5" in naming.levels:
        d = kept[naming.levels["L5"]].centre() - kept[naming.levels["S1"]].centre()
        cranial["S1"] = d / np.linalg.norm(d)

    raw: dict[str, dict[str, np.ndarray]] = {}
    fit_H = frame.H if frame is not None and frame.trusted else None
    for lv in chain:
        inst = kept[naming.levels[lv]]
        given = corner_endplates(inst, lv, c.min_corner_score) if c.corners != "ignore" else {}
        try:
            # the sacrum: only its top edge is an endplate (it may taper to a tip below)
            fit = fit_in_frame(inst.contour(), cranial[lv], inst.centre(), c.method, lv,
                               ("superior",) if lv == "S1" else SIDES, fit_H)
        except EndplateError as e:
            if not given:
                level_reason[lv] = f"endplate fit failed ({e})"
                continue
            fit = {}
        for side, seg in list(fit.items()):
            if side not in given and touches_border(seg, shape, c.border_px):
                del fit[side]  # the photo's edge cut the vertebra: that line is the crop, not the endplate
                level_reason[f"{lv} {side}"] = "endplate cut by the image border"
                flags.append(f"{lv} {side} endplate cut by the image border: not used")
        if c.corners == "fuse":  # the fit and the corners, weighted by the corners' confidence
            given = {side: fuse(fit.get(side), seg, conf) for side, (seg, conf) in given.items()}
        else:
            given = {side: seg for side, (seg, conf) in given.items()}
        fit.update(given)  # an endplate given by its two corners is used as given (or fused)
        if fit:
            raw[lv] = fit

    heads = []
    for i in naming.femoral_heads:
        circ = circle_of(kept[i])
        if circ is None or circ[2] < c.min_circle_radius:
            flags.append(f"femoral head #{idx[i]} unusable outline: ignored")
            continue
        heads.append((kept[i].score, circ))
    if len(heads) > 2:
        flags.append(f"{len(heads)} femoral heads: kept the two best scored")
    heads = [h for _, h in sorted(heads, key=lambda t: -t[0])[:2]]
    axis = np.mean([h[:2] for h in heads], axis=0) if heads else None

    up = np.array([0.0, -1.0])  # cranial direction of the spine in the image
    if len(centres) >= 2:
        d = centres[0] - centres[-1]
        up = d / np.linalg.norm(d) if np.linalg.norm(d) > 0 else up
    heads_reason = HEADS_NOT_IN_VIEW
    s1_plate = raw.get("S1", {}).get("superior")
    if axis is not None and s1_plate is not None:
        why = implausible_hip_axis(np.asarray(s1_plate, float), axis, up)
        if why:
            flags.append(f"femoral heads ignored: {why}")
            heads, axis, heads_reason = [], None, f"femoral heads implausibly placed: {why}"

    # anterior side
    if c.anterior == "auto":
        lum = np.array([kept[naming.levels[lv]].centre() for lv in chain if lv in LUMBAR])
        tho = np.array([kept[naming.levels[lv]].centre() for lv in chain if lv in THORACIC])
        ant = decide_anterior(up, raw.get("S1", {}).get("superior"), axis,
                              centres[-1] if len(centres) else None, lum, tho)
        if ant.note:
            flags.append(ant.note)
    else:
        want = 1 if c.anterior == "right" else -1
        ant = Anterior(want if lateral_of(up)[0] >= 0 else -want, True, [], "")
    endplates = {
        lv: {side: order_anterior_posterior(seg, ant.sign * lateral_of(cranial[lv])) for side, seg in sides.items()}
        for lv, sides in raw.items()
    }
    sign = 1 if (ant.sign * lateral_of(up))[0] >= 0 else -1

    # frame, and which levels may feed an angle
    excluded = dict(level_reason)
    if c.on_implausible == "nan":
        for lv, why in naming.uncertain.items():
            excluded.setdefault(lv, f"level name uncertain ({why})")
    H = frame.H if frame is not None and frame.trusted else None
    final, use_frame = endplate_angles(endplates, [list(h) for h in heads], H, sign, excluded, heads_reason)
    general = _general_reason(insts, kept)
    if general:
        final = {name: a if a.measured else Angle.missing(general) for name, a in final.items()}
    return Measurement(final, use_frame, frame, kept, dict(naming.levels), endplates,
                       [tuple(h) for h in heads], removals, flags, ant, c.method, shape,
                       excluded, sign, heads_reason, dict(naming.uncertain))


def corner_endplates(inst: Instance, level: str, min_score: float = 0.0) -> dict[str, tuple[np.ndarray, float]]:
    """The endplates an instance's corner points give (both ends present and scoring at least
    `min_score`): side → ([end, end] (image frame, px), the lower of the two scores); S1 has only
    its superior endplate."""
    out = {}
    for side, (a, p) in CORNER_SIDES.items():
        if a in inst.corners and p in inst.corners and (level != "S1" or side == "superior"):
            score = float(min(inst.corners[a][2], inst.corners[p][2]))
            if score >= min_score:
                out[side] = (np.array([inst.corners[a][:2], inst.corners[p][:2]], dtype=float), score)
    return out


def fit_in_frame(contour: np.ndarray, cranial: np.ndarray, centre: np.ndarray, method: str, level: str,
                 which=SIDES, H: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """`fit_endplates` of an outline (image frame, px), fitted in the radiograph frame when `H`
    (radiograph → image) is given — there a body is the box it was on the film, not the photo's
    keystoned view of it — and returned in the image frame (a homography keeps lines straight)."""
    if H is None:
        return fit_endplates(contour, cranial, method, level, which)
    Hinv = np.linalg.inv(H)
    a, b = apply_homography(Hinv, [centre, centre + 10.0 * np.asarray(cranial, float)])
    fit = fit_endplates(apply_homography(Hinv, contour), b - a, method, level, which)
    return {side: apply_homography(H, seg) for side, seg in fit.items()}


def touches_border(segment: np.ndarray, image_shape: Sequence[int], border_px: float) -> bool:
    """True when an end of a fitted endplate (image frame, px) lies within `border_px` of the
    image's edge: a vertebra cut by the photo's crop."""
    h, w = image_shape[:2]
    pts = np.asarray(segment, float).reshape(-1, 2)
    return bool(np.any((pts[:, 0] <= border_px) | (pts[:, 0] >= w - 1 - border_px) |
                       (pts[:, 1] <= border_px) | (pts[:, 1] >= h - 1 - border_px)))


def implausible_hip_axis(s1_superior: np.ndarray, axis: np.ndarray, up: np.ndarray,
                         min_ratio: float = 1.0, max_ratio: float = 6.0) -> str:
    """Why a hip axis cannot be the one of this S1 endplate (image frame, px), or "" if it can.

    The hip axis lies caudal of the S1 endplate's midpoint, about 3.3 endplate lengths away
    (Legaye 2013; shared/PHANTOM.md); accepted: caudal, at `min_ratio`–`max_ratio` lengths.
    """
    mid = s1_superior.mean(axis=0)
    length = float(np.linalg.norm(s1_superior[0] - s1_superior[1]))
    v = np.asarray(axis, float) - mid
    if float(v @ up) >= 0:
        return "hip axis not caudal of the S1 endplate"
    ratio = float(np.linalg.norm(v)) / length if length > 0 else math.inf
    if not min_ratio <= ratio <= max_ratio:
        return f"hip axis {ratio:.1f} S1-endplate lengths from S1 (expected {min_ratio:g}–{max_ratio:g})"
    return ""


def _general_reason(insts, kept) -> str:
    """Why no angle at all can be measured, when it is the vertebrae that are missing."""
    if not any(i.is_vertebra for i in insts):
        return "no vertebrae found"
    if not any(i.is_vertebra for i in kept):
        return "every vertebra removed by the clean-up"
    return ""
