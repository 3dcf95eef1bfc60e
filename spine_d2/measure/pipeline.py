"""From instances (masks or polygons, image frame) to TK, LL, LL_S1, SS, PT, PI with a reason for every NaN.

`measure_instances` runs the road: clean-up → level names → endplate lines
(`level_endplates`: fitted in the radiograph frame when the photo's frame is trusted, kept in the
image frame; an endplate whose two corner points an instance carries is taken as given) → femoral
heads (`femoral_heads`) → anterior side → each body's two plates checked against each other
(`wedges`) → the S1 plate checked against L5's (`lumbosacral`; when it changes, the heads and the
side again) → frame correction
(radiograph frame when trusted) → `spine_d2.angles.sagittal_angles`, the project's one angle
definition (through `frame_angles.endplate_angles`, which the page's corrections share) → the
angles whose plates are doubted left out (`_plates_doubted`: a short S1 plate, one sloping the
wrong way, a TK far from the chain's bend). Where an uncertain anterior side reads TK and LL both
bent the wrong way (`measure.reversed_profile_deg`), the road is run again with the other side.
Last, an angle whose end plate comes from corners the model scores too faintly is left out
(`_without_faint_plates`).
It never raises on bad geometry: whatever cannot be measured is NaN with its reason, and
everything done (removals, flags, the frame and its correction) is kept in the returned
`Measurement`. `measurement_row` flattens it into the
CSV row ``image, TK, LL, LL_S1, SS, PT, PI, frame, notes``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping, Sequence

import numpy as np

from spine_d2.angles import ANGLE_NAMES, Angle, left_out
from spine_d2.levels import LEVEL_INDEX, LUMBAR, THORACIC
from spine_d2.measure.anterior import Anterior, decide_anterior, lateral_of
from spine_d2.measure.chain_curve import chain_disagrees, chain_plates
from spine_d2.measure.cleanup import Removal, clean_instances
from spine_d2.measure.endplates import method_name, order_anterior_posterior
from spine_d2.measure.femoral_heads import heads_clear_of_spine, plausible_heads, usable_heads
from spine_d2.measure.flags import Flags
from spine_d2.measure.frame_angles import HEADS_NOT_IN_VIEW, endplate_angles
from spine_d2.measure.instances import Instance
from spine_d2.measure.level_endplates import faint_end_plates, level_endplates, spine_cranial
from spine_d2.measure.lumbosacral import (S1_PLATE_ANGLES, backward_s1, plausible_s1, short_s1_plate,
                                          wrong_way_s1)
from spine_d2.measure.wedges import impossible_wedges, plausible_wedges, steady_named_plates, wedge_misread
from spine_d2.measure.naming import name_levels
from spine_d2.measure.config import AnteriorSide, MeasureConfig
from spine_d2.measure.rectify import FrameEstimate, estimate_frame, frame_bones

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
    calls: dict[str, list[str]] = field(default_factory=dict)  # judgement calls among the flags, by what they
    #                                                           concern (a level, or naming: `spine_d2.measure.flags`)

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


def _anterior(c: MeasureConfig, kept, naming, chain: list[str], centres: np.ndarray, up: np.ndarray, raw,
              axis, flags: list[str]) -> Anterior:
    """Which side is anterior: voted on from the sacrum, hips and curves (`auto`), or as configured."""
    if c.anterior != "auto":
        want = 1 if c.anterior == "right" else -1
        return Anterior(want if lateral_of(up)[0] >= 0 else -want, True, [], "")
    lum = np.array([kept[naming.levels[lv]].centre() for lv in chain if lv in LUMBAR])
    tho = np.array([kept[naming.levels[lv]].centre() for lv in chain if lv in THORACIC])
    ant = decide_anterior(up, raw.get("S1", {}).get("superior"), axis, centres[-1] if len(centres) else None,
                          lum, tho)
    if ant.note:
        flags.append(ant.note)
    return ant


def _pelvis_and_side(c: MeasureConfig, kept, naming, chain: list[str], centres: np.ndarray, up: np.ndarray,
                     raw, heads: dict) -> tuple[list, np.ndarray | None, str, str, Anterior, list[str]]:
    """(heads, hip axis or None, why no heads are used, why S1's plate is doubted, anterior side,
    flags): the femoral heads (circle → score, best scored first) checked against the S1 plate of
    `raw`, then the anterior side voted on."""
    flags: list[str] = []
    heads, axis, heads_reason, s1_doubt = plausible_heads(list(heads), raw.get("S1", {}).get("superior"), up, flags,
                                                          c.head_pair_radii, heads, c.weak_head_score,
                                                          c.head_radius_ratio)
    ant = _anterior(c, kept, naming, chain, centres, up, raw, axis, flags)
    return heads, axis, heads_reason, s1_doubt, ant, flags


def _spine_up(centres: np.ndarray) -> np.ndarray:
    """Cranial direction of the whole spine in the image: top centre minus bottom centre (else up)."""
    up = np.array([0.0, -1.0])
    if len(centres) >= 2:
        d = centres[0] - centres[-1]
        up = d / np.linalg.norm(d) if np.linalg.norm(d) > 0 else up
    return up


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
    insts = _as_instances(instances, class_names)
    if frame is None and image is not None and c.frame.enabled:
        frame = estimate_frame(image, c.frame, frame_bones(insts, shape, c.frame))
    m = _measure(insts, shape, c, frame)
    if _profile_reversed(m, c.reversed_profile_deg):  # the side taken is the wrong one: the other side
        other = _measure(insts, shape, replace(c, anterior=AnteriorSide.left if m.sign > 0 else AnteriorSide.right),
                         frame)
        tk, ll = m.angles["TK"].value, m.angles["LL"].value
        other.flags.append(f"{m.anterior.note}; read so, TK {tk:.0f}° and LL {ll:.0f}° (both under "
                           f"-{c.reversed_profile_deg:g}°: a spine no adult has): the other side taken")
        m = replace(other, anterior=m.anterior)
    return _without_faint_plates(m, c)


def _without_faint_plates(m: Measurement, c: MeasureConfig) -> Measurement:
    """`m` without the angles an end plate of which comes from faint corners
    (`measure.faint_plate_scores`, `faint_end_plates`), each with the reason; with on_implausible nan
    and the corners in use."""
    if c.on_implausible != "nan" or c.corners == "ignore":
        return m
    angles = m.angles
    for name, why in faint_end_plates(m.instances, m.levels, c.faint_plate_scores).items():
        angles = left_out(angles, (name,), why)
    return replace(m, angles=angles)


def _profile_reversed(m: Measurement, limit: float) -> bool:
    """Whether `m` took an uncertain anterior side that reads both TK and LL under −`limit` degrees:
    a thorax bent into lordosis over a lumbar spine bent into kyphosis, the profile of a spine read
    with its anterior side reversed (adults: TK 0–75°, LL 5–75°; shared/PHANTOM.md). 0: never."""
    tk, ll = m.angles["TK"], m.angles["LL"]
    return (limit > 0 and m.anterior is not None and not m.anterior.certain and bool(m.anterior.votes)
            and tk.measured and ll.measured and tk.value < -limit and ll.value < -limit)


def _measure(insts: list[Instance], shape: tuple[int, int], c: MeasureConfig, frame: FrameEstimate | None
             ) -> Measurement:
    """`measure_instances` once, the anterior side as `c` says."""
    H = frame.H if frame is not None and frame.trusted else None

    idx, kept, removals = clean_instances(insts, shape, c.slope_threshold, c.duplicate_overlap,
                                          c.min_area, c.min_area_fraction, c.duplicate_overlap_heads,
                                          c.chain_rule, c.turn_limit_deg, c.max_detour,
                                          c.crowd_steps, c.crowd_steps_sure)
    naming = name_levels(kept, use_labels=c.use_labels, gap_factor=c.gap_factor, anchor=c.level_anchor,
                         l5_by_classes=c.l5_by_classes, lumbar_s1=c.lumbar_s1, image_shape=shape,
                         border_px=c.border_px, gap_body_factor=c.gap_body_factor)
    flags = Flags(naming.flags + [f"{inst.level or inst.class_name}: {n}" for inst in kept for n in inst.notes],
                  naming.flags.calls)
    # why a level is absent, when we know (a labelled instance removed by the clean-up)
    level_reason = {r.label: r.reason for r in removals if r.label and r.label not in naming.levels}

    chain = sorted(naming.levels, key=lambda lv: LEVEL_INDEX[lv])  # the named vertebrae, top to bottom
    centre_of = {lv: kept[naming.levels[lv]].centre() for lv in chain}
    centres = np.array(list(centre_of.values())).reshape(-1, 2)
    cranial = spine_cranial(centre_of)
    outlines: dict[str, dict[str, np.ndarray]] = {}
    edges = frame.edges if frame is not None and c.film_edges else ()
    raw = level_endplates(kept, naming.levels, centre_of, cranial, H, shape, c, level_reason, flags, outlines,
                          edges)
    up = _spine_up(centres)
    score_of = usable_heads(kept, naming.femoral_heads, idx, c.min_circle_radius, flags)
    bodies = [centre_of[lv] for lv in chain if kept[naming.levels[lv]].region in ("thoracic", "lumbar")]
    clear = heads_clear_of_spine(list(score_of), np.array(bodies).reshape(-1, 2), flags)
    found = {h: score_of[h] for h in clear}
    heads, axis, heads_reason, s1_doubt, ant, pelvis_flags = _pelvis_and_side(c, kept, naming, chain, centres, up,
                                                                             raw, found)
    anterior, windows = ant.sign * lateral_of(up), {"thoracic": c.thoracic_wedge_deg, "lumbar": c.lumbar_wedge_deg}
    plausible_wedges(raw, outlines, anterior, up, windows, flags, c.max_wedge_deg)
    if c.corners != "ignore":
        steady_named_plates(raw, kept, naming.levels, anterior, up, c.weak_corner_scores, flags,
                            c.weak_plate_wedge_from, windows)
    # S1's plate is judged against L5's only where L5's own two plates agree
    if wedge_misread(raw.get("L5", {}), "L5", anterior, up, windows) is None and \
            plausible_s1(raw, outlines.get("S1", {}).get("superior"), anterior, up, c.lumbosacral_deg, flags):
        # a new sacral plate: the hip-axis check and the side's vote, which used it, run again
        heads, axis, heads_reason, s1_doubt, ant, pelvis_flags = _pelvis_and_side(c, kept, naming, chain,
                                                                                 centres, up, raw, found)
    flags += pelvis_flags
    endplates = {lv: {side: order_anterior_posterior(seg, ant.sign * lateral_of(cranial[lv]))
                      for side, seg in sides.items()} for lv, sides in raw.items()}
    sign = 1 if (ant.sign * lateral_of(up))[0] >= 0 else -1

    # which levels may feed an angle
    excluded = dict(level_reason)
    if c.on_implausible == "nan":
        for lv, why in naming.uncertain.items():
            excluded.setdefault(lv, f"level name uncertain ({why})")
        for lv, why in impossible_wedges(raw, anterior, up, c.max_wedge_deg).items():
            excluded.setdefault(lv, why)
    final, use_frame = endplate_angles(endplates, [list(h) for h in heads], H, sign, excluded, heads_reason)
    final = backward_s1(final)
    general = _general_reason(insts, kept)
    if general:
        final = {name: a if a.measured else Angle.missing(general) for name, a in final.items()}
    if ant.conflict and c.on_implausible == "nan":
        final = _without_conflict(final, ant)
    if ant.hips_against and c.on_implausible == "nan":
        final = left_out(final, LUMBOPELVIC, f"hip axis against the anterior side: {ant.hips_against}")
    if s1_doubt and c.far_hips_doubt_s1 and c.on_implausible == "nan":
        final = left_out(final, LUMBOPELVIC, s1_doubt)
    if c.on_implausible == "nan":
        final = _plates_doubted(final, raw, centre_of, ant.sign * lateral_of(up), H, sign, c)
    return Measurement(final, use_frame, frame, kept, dict(naming.levels), endplates,
                       [tuple(h) for h in heads], removals, flags, ant, method_name(c.method), shape,
                       excluded, sign, heads_reason, dict(naming.uncertain), dict(flags.calls))


def _plates_doubted(final: dict[str, Angle], raw: dict, centre_of: dict[str, np.ndarray], anterior: np.ndarray,
                    H: np.ndarray | None, sign: int, c: MeasureConfig) -> dict[str, Angle]:
    """`final` without the angles whose plates are doubted, each with the reason: the lumbar and
    pelvic ones (`LUMBOPELVIC`) where S1's plate is far shorter than L5's inferior one
    (`measure.s1_plate_min_ratio`), those taking S1's plate where it slopes the wrong way
    (`measure.min_ss_deg`, `wrong_way_s1`), TK where it lies far from the bend of the chain of body
    centres (`measure.chain_tk_deg`; `chain_curve`, measured in the frame the plates are, through `H`)."""
    short = short_s1_plate(raw, c.s1_plate_min_ratio)
    if short:
        final = left_out(final, LUMBOPELVIC, short)
    final = wrong_way_s1(final, c.min_ss_deg)
    stand_in = chain_plates(centre_of, anterior) if c.chain_tk_deg > 0 and final["TK"].measured else {}
    if stand_in:
        bent = endplate_angles(stand_in, [], H, sign)[0]["TK"].value
        why = chain_disagrees(final["TK"].value, bent, c.chain_tk_deg)
        final = left_out(final, ("TK",), why) if why else final
    return final


#: the angles that rest on S1's superior plate: its direction, and PT its midpoint
ON_S1_PLATE = S1_PLATE_ANGLES + ("PT",)
#: the angles that rest on the lumbar spine or the pelvis: all but TK
LUMBOPELVIC = ("LL", "LL_S1", "SS", "PT", "PI")


def _without_conflict(final: dict[str, Angle], ant: Anterior) -> dict[str, Angle]:
    """`final` with the angles a conflict between the sacral slope's and the lordosis' votes
    (`Anterior.conflict`) leaves unsure made missing, with the reason: every angle when the side
    followed the sacral plate (on the phantom, TK and LL of such films read with the wrong sign), those
    resting on S1's plate (`ON_S1_PLATE`) when it followed the lordosis (the plate misread: on the
    phantom the PT of such films was 17-32° off too)."""
    sacral = next(v for v in ant.votes if v.cue == "sacral slope")
    unsure = final if sacral.sign == ant.sign else ON_S1_PLATE
    return left_out(final, unsure, f"anterior side in conflict: {ant.conflict}")


def _general_reason(insts, kept) -> str:
    """Why no angle at all can be measured, when it is the vertebrae that are missing."""
    if not any(i.is_vertebra for i in insts):
        return "no vertebrae found"
    if not any(i.is_vertebra for i in kept):
        return "every vertebra removed by the clean-up"
    return ""
