"""Two reads of one photo: the model's detections on the photo and on its mirror image (mapped back),
each measured alone, beside the fused detections (the geometry drawn; `test.flip`,
spine_d2/engine/flip.py). Where the two reads of an angle lie more than `measure.reads_apart`
degrees apart one of them went grossly wrong (a level named one off, a plate misread, the wrong
anterior side), and the fused detections, which keep the photo's masks and names, follow the
photo's read whichever it is: the angle is left out with both readings as the reason. A read is
measured without the checks that doubt a plate as a whole (`AS_READ`), which judge the fused
measurement: its reading of a doubted plate still disagrees with the other read's. Where the fused
detections read an angle more than `measure.fused_apart` degrees from both reads, which agree
within as much, it was read with another judgement call than either made (the fused corners are the
reads' average): it is left out too. Where the two reads name one body as different levels and one
of them therefore has no reading of an angle that takes that level (a steep L5 read as S1 in one
read, as L5 in the other), the angle is left out too (`measure.reads_names`), and the level's name
is marked uncertain (the overlay's "S1?", the pre-annotation's `level_uncertain`). Where they agree
on PT, it is the mean of the two reads and PI moves with it (`measure.reads_mean`): the fused
detections average the runs' corners but keep the photo's femoral heads, so the mirrored run's hip
axis counts only there. Geometry (endplates, heads, the overlay) stays the fused measurement's.
Where the two reads disagree on TK or LL, the photo turned whole (`test.tiebreak_turns`, ±4°) is
looked at again, each turn a first pass of its own (the levels named and the anterior side found
afresh), and where every look reads the angle within `measure.reads_agree` degrees of the same
read, that read is taken, a flag saying so (`tie_broken`). With `measure.reads_trust_clean` (off by
default: a take adds error where the angle was left out, 20–37° where the call it avoided was the
right one), where just one of two reads disagreeing on TK or LL made no judgement call on it
(`clean_read`: none in naming the levels, none on the plates it takes, a sure anterior side;
`spine_d2.measure.flags`), that read is taken first. With `test.flip_when` doubt the mirrored run
waits: the photo's own run is measured alone first, and the mirrored run is made, and all of the
above done, only where that measurement is `doubted`. benchmarks/README.md has what the rule
withholds, how often it was wrong, what the mean changes (PT better on 10 of 11 run-and-seed sets;
averaging TK, LL, LL_S1 and SS so was not, SS worse on every new seed set), how often the clean
read was the nearer one and what the turned looks take.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Collection, Mapping, Sequence

from spine_d2.angles import REQUIRED_ENDPLATES, Angle, left_out
from spine_d2.measure.cleanup import SAME_BODY_IOU, mask_iou
from spine_d2.measure.config import MeasureConfig
from spine_d2.measure.flags import CALL_ABOUT_NAMING
from spine_d2.measure.frame_angles import HEADS_NOT_IN_VIEW, LEVEL_NOT_FOUND
from spine_d2.measure.instances import Instance
from spine_d2.measure.level_endplates import plate_corner_score
from spine_d2.measure.lumbosacral import S1_PLATE_ANGLES
from spine_d2.measure.pipeline import Measurement, measure_instances
from spine_d2.measure.rectify import FrameEstimate


def without_disagreeing_reads(angles: Mapping[str, Angle], reads: Sequence[Mapping[str, Angle]],
                              max_apart: float, settled: Collection[str] = ()) -> dict[str, Angle]:
    """`angles` (degrees) with each measured angle that two of `reads` (each a measurement's
    angles) both read more than `max_apart` degrees apart left out, but those `settled` (by
    `clean_reads_taken`); `max_apart` 0: unchanged. LL_S1 and PI leave with SS: S1's plate misread
    in one read turns them as much, but L1's plate or PT, the other part of each, may pull their two
    reads back within `max_apart` (benchmarks/README.md, session 51: PI 24–29° off where it stayed)."""
    out = dict(angles)
    for name, angle in angles.items():
        seen = _readings(name, reads)
        if name not in settled and _apart(angle, seen, max_apart):
            out[name] = Angle.missing(f"the photo and its mirror image read {min(seen):.0f}° and "
                                      f"{max(seen):.0f}° (more than {max_apart:g}° apart)")
    return _with_ss(angles, out)


def without_fused_apart(angles: Mapping[str, Angle], reads: Sequence[Mapping[str, Angle]], max_apart: float,
                        settled: Collection[str] = ()) -> dict[str, Angle]:
    """`angles` (degrees; the fused detections' measurement) with each measured angle but PT left
    out where the two `reads` read it within `max_apart` degrees of each other and the fused
    measurement more than `max_apart` from both, but those `settled`; `max_apart` 0 or fewer than
    two readings: unchanged. The fused corners are the two runs' average, so their angle lies near
    two reads that agree unless the fused measurement made another judgement call than both (an
    anterior side, a plate's fallback to its outline): on the phantom TK 32° off where both reads
    were within 6° (benchmarks/README.md, session 60). Where the reads themselves lie further
    apart there is no one reading to judge it by (a film whose reads were 14° and 26° off and the
    fused 0.6°). PT is the reads' mean already (`mean_of_reads`); LL_S1 and PI leave with SS
    (`_with_ss`)."""
    out = dict(angles)
    if max_apart <= 0:
        return out
    for name, angle in angles.items():
        seen = _readings(name, reads)
        if (name != "PT" and name not in settled and angle.measured and len(seen) == 2
                and max(seen) - min(seen) <= max_apart and all(abs(angle.value - v) > max_apart for v in seen)):
            out[name] = Angle.missing(f"the fused detections read {angle.value:.0f}°, the photo and its mirror image "
                                      f"{min(seen):.0f}° and {max(seen):.0f}° (more than {max_apart:g}° from both)")
    return _with_ss(angles, out)


def names_apart(reads: Sequence[Measurement]) -> dict[str, str]:
    """level → why its name is in dispute: where the two `reads` (the photo's, then its mirror
    image's, each measured alone) name one body (`cleanup.SAME_BODY_IOU`) as different levels, both
    levels; {} unless there are two reads. A level named one off in one read, e.g. a steep L5 taken
    for the sacrum while the true S1 went unfound, counts every level from there one off. A mask one
    read drew over two bodies is one body with neither."""
    if len(reads) != 2:
        return {}
    a, b = reads
    out: dict[str, str] = {}
    for la, ka in sorted(a.levels.items()):
        for lb, kb in sorted(b.levels.items()):
            if lb != la and mask_iou(a.instances[ka], b.instances[kb]) >= SAME_BODY_IOU:
                why = f"the photo's read names a body {la}, its mirror image's {lb}"
                out.setdefault(la, why)
                out.setdefault(lb, why)
    return out


def without_names_apart(angles: Mapping[str, Angle], reads: Sequence[Measurement], settled: Collection[str] = ()
                        ) -> tuple[dict[str, Angle], dict[str, str]]:
    """(`angles` (degrees) with each measured angle that one of the two `reads` did not measure, and
    that takes a level they name apart (`names_apart`), left out with the reason; those
    `settled` stay, and level → why its name is in dispute for each level that left an angle out).
    Where both reads measured an angle their readings judge it (`without_disagreeing_reads`: one
    thoracic level off turns TK by a few degrees); where one read names the angle's level otherwise
    and so has no reading, nothing else does: an S1 that is L5 read as the sacrum gives SS 20–40°
    off (benchmarks/README.md, session 59)."""
    unread = [name for name, angle in angles.items()
              if angle.measured and name not in settled and name in REQUIRED_ENDPLATES
              and len(_readings(name, [r.angles for r in reads])) < len(reads)]
    apart = names_apart(reads) if unread else {}  # most photos: every read measured every angle
    out, disputed_levels = dict(angles), {}
    for name in unread:
        levels = [lv for lv, _ in REQUIRED_ENDPLATES[name] if lv in apart]
        # the level a read has no body of, e.g. S1 where LL_S1's L1 is disputed too (one off throughout)
        level = next((lv for lv in levels if any(lv not in r.levels for r in reads)), levels[0] if levels else None)
        if level is not None:
            out[name] = Angle.missing(f"{apart[level]}: {level} in dispute")
            disputed_levels[level] = apart[level]
    return out, disputed_levels


def _with_ss(before: Mapping[str, Angle], after: dict[str, Angle]) -> dict[str, Angle]:
    """`after` with LL_S1 and PI left out too where it left out SS that `before` measured: S1's
    plate read wrong turns them as much."""
    if "SS" in after and before["SS"].measured and not after["SS"].measured:
        return left_out(after, S1_PLATE_ANGLES, f"S1's plate as SS: {after['SS'].reason}")
    return after


def _readings(name: str, reads: Sequence[Mapping[str, Angle]]) -> list[float]:
    """The values (degrees) of the angle `name` that `reads` (each a measurement's angles) measured."""
    return [r[name].value for r in reads if name in r and r[name].measured]


def _apart(angle: Angle, seen: Sequence[float], max_apart: float) -> bool:
    """Whether the measured `angle`'s readings `seen` (two or more) lie more than `max_apart`
    degrees apart; `max_apart` 0: never."""
    return max_apart > 0 and angle.measured and len(seen) >= 2 and max(seen) - min(seen) > max_apart


#: the angles a clean read or the turned looks settle: those between two vertebral bodies, which a
#: level named one off or a body's plates misread throw far off. Where two reads disagree on S1's
#: plate (SS, LL_S1, PT, PI) both are mostly 6–15° off, the plate itself hard to read, and the
#: calls do not tell which is nearer (benchmarks/README.md, session 39)
SETTLED_BY_A_CLEAN_READ = ("TK", "LL")

#: the angles whose plates' corners decide whether the mirrored run is made (`test.flip_when`
#: doubt, `doubted`): on the phantom, what the mirrored run gains on TK and LL lies mostly where
#: a corner of theirs scores low; on S1's plate (SS, PT, PI) it is spread over every film
DOUBTED_ANGLES = ("TK", "LL")


def clean_read(read: Measurement, name: str) -> bool:
    """Whether `read` measured the angle `name` without a judgement call (`spine_d2.measure.flags`):
    none in naming the levels, none on the levels whose plates the angle takes
    (`REQUIRED_ENDPLATES`), and its anterior side sure."""
    levels = {lv for lv, _ in REQUIRED_ENDPLATES[name]}
    return (CALL_ABOUT_NAMING not in read.calls and not levels & set(read.calls)
            and (read.anterior is None or read.anterior.certain))


def clean_reads_taken(angles: Mapping[str, Angle], reads: Sequence[Measurement],
                      max_apart: float) -> tuple[dict[str, Angle], dict[str, str]]:
    """(`angles` (degrees), angle taken → its flag): each measured angle of
    `SETTLED_BY_A_CLEAN_READ` the two `reads` (the photo's, then its mirror image's, measured alone)
    put more than `max_apart` apart where just one read is clean (`clean_read`) becomes that
    read's: the fused angle for the photo's (the fused detections keep its names), the mirror
    image's own reading for the mirror's."""
    out, taken = dict(angles), {}
    for name in disputed(angles, [r.angles for r in reads], max_apart):
        clean = [clean_read(r, name) for r in reads]
        if clean.count(True) == 1:
            out[name], taken[name] = _take(name, angles[name], _readings(name, [r.angles for r in reads]),
                                           clean.index(True), "made without a judgement call")
    return out, taken


def disputed(angles: Mapping[str, Angle], reads: Sequence[Mapping[str, Angle]], max_apart: float,
             settled: Collection[str] = ()) -> list[str]:
    """The angles of `SETTLED_BY_A_CLEAN_READ` measured in `angles` that the two `reads` (the photo's,
    then its mirror image's angles, degrees) put more than `max_apart` degrees apart, but those
    `settled`."""
    if len(reads) != 2:
        return []
    return [name for name in SETTLED_BY_A_CLEAN_READ if name in angles and name not in settled
            and len(seen := _readings(name, reads)) == 2 and _apart(angles[name], seen, max_apart)]


def tie_broken(angles: Mapping[str, Angle], reads: Sequence[Mapping[str, Angle]],
               looks: Sequence[Mapping[str, Angle]], names: Collection[str],
               agree: float) -> tuple[dict[str, Angle], dict[str, str]]:
    """(`angles` (degrees), angle taken → its flag): each angle of `names` (`disputed` by the two
    `reads`, the photo's then its mirror image's) that every one of `looks` (more reads of the
    photo, each measured alone: its turned looks) measured within `agree` degrees of the same read
    becomes that read's (`clean_reads_taken` says which value that is)."""
    out, taken = dict(angles), {}
    for name in names:
        seen, votes = _readings(name, reads), _readings(name, looks)
        if not looks or len(votes) != len(looks) or len(seen) != 2:
            continue
        near = [k for k in (0, 1) if all(abs(v - seen[k]) <= agree for v in votes)]
        if len(near) == 1:
            why = f"as the photo turned read it ({', '.join(f'{v:.0f}°' for v in votes)})"
            out[name], taken[name] = _take(name, angles[name], seen, near[0], why)
    return out, taken


def _take(name: str, fused: Angle, seen: Sequence[float], k: int, why: str) -> tuple[Angle, str]:
    """(angle, flag): read `k` of the two (0 the photo's, 1 its mirror image's) of the angle `name`,
    which they read as `seen` (degrees): the `fused` angle for the photo's (the fused detections keep
    its names), the mirror image's own reading for the mirror's."""
    which = "mirror image" if k else "photo"
    return (Angle(seen[1]) if k else fused,
            f"{name}: the photo and its mirror image read {seen[0]:.0f}° and {seen[1]:.0f}°: the {which}'s read, "
            f"{why}, taken")


def mean_of_reads(angles: Mapping[str, Angle], reads: Sequence[Mapping[str, Angle]]) -> dict[str, Angle]:
    """`angles` (degrees) with PT, where it and all `reads` (two or more) measured it, the reads'
    mean, and PI moved with it (PI = PT + SS holds as before); the other angles unchanged. The
    fused detections already average S1's corners and the endplates' over the runs, but keep the
    photo's femoral heads: the hip axis PT rests on is the one part that only the reads see twice."""
    out = dict(angles)
    pt = angles.get("PT")
    if len(reads) < 2 or pt is None or not pt.measured or not all("PT" in r and r["PT"].measured for r in reads):
        return out
    out["PT"] = Angle(sum(r["PT"].value for r in reads) / len(reads))
    if "PI" in angles and angles["PI"].measured:
        out["PI"] = Angle(angles["PI"].value + out["PT"].value - pt.value)
    return out


def measure_with_reads(instances: Sequence[Instance], reads: Sequence[Sequence[Instance]],
                       image_shape: Sequence[int], class_names: Sequence[str] | None = None, cfg: Any = None,
                       image=None, looks: Callable[[], Sequence[Sequence[Instance]]] | None = None,
                       mirrored: Callable[[], tuple[Sequence[Instance], Sequence[Sequence[Instance]]]] | None = None
                       ) -> Measurement:
    """`measure_instances` of `instances` (the fused detections), its angles checked against the
    `reads` (each read's instances, measured alone in the same frame: `without_disagreeing_reads`,
    with `reads_trust_clean` first `clean_reads_taken`, then where `looks` is given and the reads
    disagree, the instances of each look it makes, measured alone so too, breaking the ties:
    `tie_broken`), the angles the fused detections read far from both reads left out
    (`without_fused_apart`), with `reads_names` the angles whose level the reads name apart left out
    (`without_names_apart`; the levels marked uncertain) and, with `reads_mean`, PT the reads' mean
    (`mean_of_reads`).

    `mirrored` (`test.flip_when` doubt: `instances` are then the photo's own run, and there are no
    `reads` yet): the call that makes the mirrored run, (the fused detections, the two reads); made
    only where the photo's run measured alone is `doubted`, and then measured as above, flagged."""
    c = MeasureConfig.from_cfg(cfg)
    m = measure_instances(instances, image_shape, class_names, c, image=image)
    if mirrored is not None and not reads:
        why = doubted(m, c.doubt_corner_score)
        if not why:
            return m
        instances, reads = mirrored()
        m = measure_instances(instances, image_shape, class_names, c, image=image)
        m = replace(m, flags=m.flags + [f"mirrored run made: {why}"])
    if (c.reads_apart <= 0 and not c.reads_mean and not c.reads_names and c.fused_apart <= 0) or len(reads) < 2:
        return m
    alone = measure_reads(reads, image_shape, class_names, c, m.correction)
    read = [r.angles for r in alone]
    angles, taken = clean_reads_taken(m.angles, alone, c.reads_apart) if c.reads_trust_clean else (m.angles, {})
    ties = disputed(angles, read, c.reads_apart, settled=taken)
    if ties and looks is not None and c.reads_agree > 0:
        seen = measure_reads(looks(), image_shape, class_names, c, m.correction)
        angles, broken = tie_broken(angles, read, [r.angles for r in seen], ties, c.reads_agree)
        taken.update(broken)
    angles = without_disagreeing_reads(angles, read, c.reads_apart, settled=taken)
    angles = without_fused_apart(angles, read, c.fused_apart, settled=taken)
    apart: dict[str, str] = {}
    if c.reads_names:
        angles, apart = without_names_apart(angles, alone, taken)
    angles = mean_of_reads(angles, read) if c.reads_mean else angles
    return replace(m, angles=angles, flags=m.flags + list(taken.values()), uncertain={**apart, **m.uncertain})


def doubted(m: Measurement, min_corner_score: float) -> str:
    """Why the photo's own run, measured alone (`m`), is not taken as it is (`test.flip_when`
    doubt), or "": a plate that TK or LL takes from two corners of which one scores under
    `min_corner_score` (the mirrored run averages them; on the phantom most of what it gains on
    TK and LL lies there), or an angle left out for another reason than a level not found or the
    femoral heads out of view (a name uncertain, a plate cut or failed, the anterior side in
    doubt: the mirrored run's finds may settle it)."""
    for name in DOUBTED_ANGLES:
        for level, side in REQUIRED_ENDPLATES[name]:
            score = plate_corner_score(m.instances, m.levels, level, side)
            if score is not None and score < min_corner_score:
                return f"{level} {side} corners score {score:.2f} (< {min_corner_score:g})"
    for name, a in m.angles.items():
        if not a.measured and not all(p.endswith(LEVEL_NOT_FOUND) or p == HEADS_NOT_IN_VIEW
                                      for p in a.reason.split("; ")):
            return f"{name} left out ({a.reason})"
    return ""


#: the checks that leave an angle out for a plate doubted as a whole (a short S1 plate, the femoral
#: heads far caudal of it, TK far from the chain's bend, an end plate's faint corners) judge the
#: fused measurement; a read keeps its angles so that, where its plate is doubted, its reading
#: still disagrees with the other's (one read's angle left out would leave the other's, however
#: wrong, to stand unchecked)
AS_READ = {"s1_plate_min_ratio": 0.0, "far_hips_doubt_s1": False, "chain_tk_deg": 0.0, "faint_plate_scores": {}}


def measure_reads(reads: Sequence[Sequence[Instance]], image_shape: Sequence[int],
                  class_names: Sequence[str] | None, cfg: Any, frame: FrameEstimate | None) -> list[Measurement]:
    """Each read measured alone, its instances in `frame` (the fused measurement's `correction`,
    so that all are in one frame), with the plate doubts of `AS_READ` off."""
    as_read = replace(MeasureConfig.from_cfg(cfg), **AS_READ)
    return [measure_instances(r, image_shape, class_names, as_read, frame=frame) for r in reads]
