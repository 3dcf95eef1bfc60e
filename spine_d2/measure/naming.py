"""Names of vertebral levels (T1…L5, S1) for cleaned instances, from labels or from classes; image frame.

Three sources, tried in this order:

- **levels given**: every vertebra carries a level (annotation label or a per-level model's class).
  A level given twice keeps the higher score; levels out of cranio-caudal order are flagged.
- **S1 and counting** (the default, `anchor="s1"`, as a radiologist counts on a lateral film): with
  the sacrum in view, the top sacrum instance is S1 — unless the model also found it as a lumbar
  body (`Instance.also`, at least `L5_READING` of its sacrum score), fewer than five lumbar bodies
  lie above it and the next instance below it is another sacrum: then it is L5, a steep L5 taken for
  the sacrum, and the one below is S1. A top sacrum instance the model doubts (score under
  `SURE_SCORE`, or under `PAIRED_SACRUM` with another sacrum instance right below it) right below a
  body is also L5 when the region classes of the sure bodies above agree better with that than with
  its being S1 (an L1 read as thoracic happens; a thoracolumbar boundary one level off does not);
  `l5_by_classes=False` turns this off. A doubted sacrum instance (not cut by the image's edge)
  below six lumbar bodies right below the thoracic ones is a lower sacral segment when the lowest of
  the six, sure, scores lower than the top one: that one is S1 read as lumbar (as with no sacrum
  found, below; `lumbar_s1`). Then the bodies above S1 are L5, L4, … T1 in order, counting the
  levels hidden in gaps (a step longer than `gap_factor` × the local median step between centres
  hides round(step / median) − 1 levels; one no shorter than that median and longer than
  `gap_body_factor` × the longer of its two bodies along it hides one, where levels missed in a
  row make the median itself a skipping step; the levels counted across a gap hiding `UNSURE_GAP`
  or more are uncertain); bodies above T1 are cervical and stay unnamed. Region
  classes are only checked: a disagreement is flagged, the count wins. A sacrum instance with two or
  more levels hidden above it, or level with the lowest body instead of below it, is a blob in the
  pelvis, not S1 (flagged): the bodies are then named by their classes, as with no sacrum in view.
- **region classes** (no sacrum in view, or `anchor="regions"`): the chain is split into thoracic
  above and lumbar below where the classes agree best (a stray class is overruled and flagged; more
  than one in five makes every level uncertain). Thoracic bodies are counted upward from T12 (those
  above T1 are cervical, unnamed), lumbar ones downward from L1 — or, with no thoracic in view,
  upward from L5 (the one above the sacrum). With no sacrum instance, six lumbar bodies right
  below the thoracic ones hold one body the model misread, at the end it scores lower: an S1 whose
  sacrum it did not see (the lowest) or a T12 (the top); `lumbar_s1=False` turns this off.
- Before either, an instance scoring under `SURE_SCORE` on the wrong side of a sure one — a body
  below a sure sacrum instance (a sacral segment or a stray), a sacrum instance above a sure
  body — is left unnamed and flagged, instead of making the whole sequence implausible; but a
  weak body right below the top sure sacrum instance that the model also read as sacrum is a
  sacrum instance (the S1 below a steep L5 taken for the sacrum, found as a faint body). So is a
  sure sacrum instance above a body that every sure instance below it outscores (a blob beside
  the spine). A sacrum instance with L1…L5 right above it (five lumbar bodies below a thoracic
  one, no level hidden among them or before it) lies at S1's place and stays, however weak. Bodies
  below the top sure sacrum instance (or such a weak one) are sacral segments or strays too, left
  unnamed and flagged, when L1…L5 lie right above it, or (a sure one) when each of them scores
  lower than that sacrum instance (except such a faint S1).
- An instance whose source doubts its level (`Instance.uncertain`, e.g. a pre-annotation's
  `level_uncertain` flag not yet cleared by a reader) keeps its name, marked uncertain.
- Anything implausible — more than 5 lumbar slots, more than 12 thoracic ones with no lumbar below
  to count from, lumbar bodies between thoracic and sacrum that do not make exactly L1…L5, a sacrum
  above a vertebra, a level given twice — is flagged; the levels it concerns are returned as
  `uncertain` with the reason (the pipeline makes the angles that need them NaN), never silently
  renamed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from spine_d2.levels import LEVEL_INDEX, LEVELS, LUMBAR, THORACIC, is_level, region
from spine_d2.measure.flags import CALL_ABOUT_NAMING, Flags, judged
from spine_d2.measure.instances import SURE_SCORE, Instance, cut_by_border


#: a top sacrum instance is taken for a steep L5 only when the model's lumbar reading of it is at
#: least this fraction of its sacrum score (test split, `long`'s two trainings: 0.39–0.94 where it
#: was L5, 0.07–0.17 where it was the sacrum split in two; benchmarks/README.md)
L5_READING = 0.25

#: a top sacrum instance with another right below it, scoring under this, may be L5 by the classes
#: above it (`l5_by_classes`; alone, under `SURE_SCORE`). Of the films with two sacrum instances
#: (the zoo model; test split, seeds 908, 910, 914, 930–933), where the top one was L5 it scored
#: 0.42–0.69 (and 0.89, 0.95 with a lumbar reading that names it L5 anyway); where it was S1,
#: 0.88–1.00 in 29 films and 0.37 in one (benchmarks/README.md)
PAIRED_SACRUM = 0.8

#: levels counted across a gap hiding at least this many levels are uncertain: the hidden count is
#: the gap's length over the median step, rounded, and bodies grow down the spine, so a long gap's
#: count can be a level off. Of the bfloat16 `long` model's films (test split, seeds 934, 940–946)
#: with a gap of 3 hidden levels, eight of nine measured within 6° (one, named from the classes
#: with no S1, LL 58° off); the one with T5 counted across a gap of 5 had TK 54° off
#: (benchmarks/README.md, session 36)
UNSURE_GAP = 4

#: a step between two bodies' centres longer than this many times the longer body's length along it
#: (and no shorter than the local median step) hides a level (`_gaps`); anatomically a body and a
#: disc make at most ~1.5 (L4–L5: 27 mm and 14 mm). On the shipped model's saved detections of 864
#: films of nine sets (benchmarks/README.md, session 47), the 12,614 steps with no level hidden
#: reached at most 1.44 in the lumbar spine and 1.58 in the thoracic; 4 of the 23 gaps the local
#: median missed (several levels missed in a row) lay above 1.6, 1.0–2.2 in all
GAP_BODY_FACTOR = 1.6


@dataclass
class Naming:
    """level → index into the instance list; flags (judgement calls among them: `call`); uncertain
    level → reason; femoral-head indices."""

    levels: dict[str, int] = field(default_factory=dict)
    uncertain: dict[str, str] = field(default_factory=dict)
    flags: Flags = field(default_factory=Flags)  # the judgement calls among them apart (`call`)
    femoral_heads: list[int] = field(default_factory=list)
    source: str = ""

    def call(self, sentence: str) -> None:
        """Flag a judgement call made in naming the levels (`spine_d2.measure.flags`)."""
        judged(self.flags, CALL_ABOUT_NAMING, sentence)

    def name_of(self, index: int) -> str | None:
        for level, i in self.levels.items():
            if i == index:
                return level
        return None


def ordinal(n: int) -> str:
    """English ordinal: 1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, 102nd."""
    suffix = "th" if n % 100 in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def given_level(inst: Instance, use_labels: bool = True) -> str | None:
    """The level an instance names itself: its label (if `use_labels`) or a per-level class."""
    if use_labels and inst.label and is_level(inst.label):
        return inst.label
    return inst.class_name if is_level(inst.class_name) else None


def name_levels(instances: Sequence[Instance], use_labels: bool = True,
                gap_factor: float = 1.6, anchor: str = "s1", l5_by_classes: bool = True,
                lumbar_s1: bool = True, image_shape: Sequence[int] | None = None,
                border_px: float = 2.0, gap_body_factor: float = GAP_BODY_FACTOR) -> Naming:
    """Name the vertebrae among `instances` (see the module docstring); `l5_by_classes`: a doubted
    top sacrum instance may be L5 by the classes above it; `lumbar_s1`: with no sacrum found, six
    lumbar bodies below the thoracic ones hold an S1 or a T12 the model read as lumbar;
    `image_shape` (H, W; px) and `border_px`: a sacrum instance the image's edge cuts is not taken
    for a lower sacral segment; `gap_body_factor`: a step this much longer than its bodies hides a
    level (`_gaps`; 0: off)."""
    naming = Naming(femoral_heads=[i for i, inst in enumerate(instances) if inst.region == "femoral_head"])
    verts = [i for i, inst in enumerate(instances) if inst.is_vertebra]
    if not verts:
        return naming
    given = {i: given_level(instances[i], use_labels) for i in verts}
    if all(given.values()):
        _name_from_given(instances, verts, given, naming)
    else:
        if any(given.values()):
            naming.call("some vertebrae carry a level and some only a region: named by region")
        _name_from_regions(instances, verts, naming, gap_factor, anchor, l5_by_classes, lumbar_s1,
                           image_shape, border_px, gap_body_factor)
    for level, i in naming.levels.items():
        instances[i].level = level
        if instances[i].uncertain:  # the source's own doubt (an annotation's level_uncertain flag)
            naming.uncertain.setdefault(level, instances[i].uncertain)
    return naming


def _name_from_given(instances, verts, given, naming: Naming) -> None:
    naming.source = "given levels"
    for i in sorted(verts, key=lambda i: -instances[i].score):
        level = given[i]
        if level in naming.levels:
            naming.call(f"{level} given twice: kept the higher score")
            naming.uncertain[level] = f"{level} given twice"
            continue
        naming.levels[level] = i
    ys = {lv: instances[i].centre()[1] for lv, i in naming.levels.items()}
    ordered = sorted(naming.levels, key=lambda lv: LEVEL_INDEX[lv])
    for a, b in zip(ordered, ordered[1:]):
        if ys[a] >= ys[b]:
            msg = f"level order implausible: {a} is not above {b}"
            naming.call(msg)
            naming.uncertain.setdefault(a, msg)
            naming.uncertain.setdefault(b, msg)


def _name_from_regions(instances, verts, naming: Naming, gap_factor: float, anchor: str,
                       l5_by_classes: bool = True, lumbar_s1: bool = True,
                       image_shape: Sequence[int] | None = None, border_px: float = 2.0,
                       gap_body_factor: float = 0.0) -> None:
    read_as_sacrum: set[int] = set()
    ordered = sorted(verts, key=lambda i: instances[i].centre()[1])
    after_l5 = _below_lumbar_spine(instances, ordered, gap_factor, gap_body_factor)
    chain = _without_weak_misplaced(instances, ordered, naming, read_as_sacrum, after_l5)
    chain = _without_sacral_segments(instances, chain, naming, gap_factor, gap_body_factor, read_as_sacrum,
                                     after_l5)
    centres = np.array([instances[i].centre() for i in chain])
    regions = ["sacrum" if i in read_as_sacrum else instances[i].region for i in chain]
    gaps = _gaps(centres, gap_factor, _length_along(instances, chain, regions), gap_body_factor)
    for k, g in enumerate(gaps):
        if g:
            naming.call(f"gap of ~{g} level(s) between the {ordinal(k + 1)} and {ordinal(k + 2)} "
                        f"vertebra from the top")
    slot = _slots(gaps)
    pattern = "-".join(x[0].upper() for x in regions)
    scores = [instances[i].score for i in chain]
    sa = [k for k, x in enumerate(regions) if x == "sacrum"]
    paired = len(sa) > 1 and sa[1] == sa[0] + 1  # another sacrum instance right below the top one
    if paired and _steep_l5(instances[chain[sa[0]]], regions[:sa[0]]):
        regions[sa[0]] = "lumbar"
        naming.call(f"the top sacrum instance was also found as lumbar, another lies below it: "
                    f"taken as L5 ({pattern})")
        sa = sa[1:]
    elif (l5_by_classes and sa and scores[sa[0]] < (PAIRED_SACRUM if paired else SURE_SCORE)
          and _classes_name_it_l5(sa[0], slot, regions, scores)
          and _not_s1(regions, sa[0], slot, centres, pattern) is None):
        regions[sa[0]] = "lumbar"
        naming.call(f"the top sacrum instance scores {scores[sa[0]]:.2f} and the classes "
                    f"above it agree better with its being L5: taken as L5 ({pattern})")
        sa = sa[1:]
    if (lumbar_s1 and sa and scores[sa[0]] < SURE_SCORE
            and not (image_shape is not None and cut_by_border(instances[chain[sa[0]]], image_shape, border_px))):
        low = _s1_read_lumbar(sa[0], slot, regions, scores)
        if low is not None:
            regions[low] = "sacrum"
            naming.call(f"{len(LUMBAR) + 1} lumbar bodies below the thoracic ones and a sacrum instance "
                        f"scoring {scores[sa[0]]:.2f} below them: the lowest, scoring lower than the top "
                        f"one, taken as S1 ({pattern})")
            sa = [low] + sa
    body = [k for k, x in enumerate(regions) if x != "sacrum"]
    if sa and body and body[-1] > sa[0]:
        msg = f"a sacrum instance lies above a vertebra ({pattern})"
        naming.call(msg)
        naming.uncertain.update({level: msg for level in LEVELS})
        sa = []  # S1 unknown; the vertebrae are still named by their classes, for the overlay
    why = _not_s1(regions, sa[0], slot, centres, pattern) if sa else None
    if why:
        naming.call(why)
        sa = []  # S1 unknown; the vertebrae are named by their classes
    names: dict[int, str] = {}
    if sa:
        names[sa[0]] = "S1"
        if len(sa) > 1:
            naming.call(f"{len(sa)} sacrum instances: the top one is S1")
    if sa and anchor == "s1":
        naming.source = "counted up from S1"
        _count_up_from_s1(body, sa[0], slot, regions, names, naming)
    else:
        naming.source = "region classes"
        _name_by_boundary(body, sa[0] if sa else None, slot, regions, scores, names, naming, lumbar_s1)
    for k, level in names.items():
        naming.levels[level] = chain[k]


def _not_s1(regions: Sequence[str], s1: int, slot, centres, pattern: str, max_hidden: int = 1,
            min_drop: float = 0.25) -> str | None:
    """Why the sacrum instance at chain position `s1` cannot be S1, None when it may: at most
    `max_hidden` levels hidden between it and the lowest body above it, and below that body rather
    than beside it (its step from the body goes down the spine, along the direction of the step to
    that body, by at least `min_drop` of one level's step; a true S1 goes ≥ 0.5 on every phantom
    film). A sacrum two or more steps below the lumbar spine, or level with its lowest body, is a
    blob in the pelvis (the femoral heads, a sacral segment, soft tissue), not S1; counting up from
    it would name every level wrong, and its outline would give the sacral slope. `regions`: the
    chain's classes (its bodies are those not 'sacrum')."""
    above = [k for k in range(s1) if regions[k] != "sacrum"]
    hidden = int(slot[s1] - slot[above[-1]]) - 1 if above else 0
    if hidden > max_hidden:
        return (f"the sacrum instance lies ~{hidden} levels' steps below the lowest vertebra "
                f"({pattern}): not taken as S1")
    if len(above) >= 2:
        last = centres[above[-1]] - centres[above[-2]]
        level_step = np.linalg.norm(last) / max(1, int(slot[above[-1]] - slot[above[-2]]))
        drop = float(np.dot(centres[s1] - centres[above[-1]], last / np.linalg.norm(last))) / level_step
        if drop < min_drop:
            return (f"the sacrum instance lies beside the lowest vertebra, {drop:.2f} of a level's "
                    f"step below it ({pattern}): not taken as S1")
    return None


def _below_lumbar_spine(instances, chain: list[int], gap_factor: float, gap_body_factor: float = 0.0) -> set[int]:
    """The sacrum instances of `chain` (top to bottom) with the whole lumbar spine right above them
    (five lumbar bodies below a thoracic one, no level hidden among them or before the sacrum): at
    S1's place whatever their score."""
    regions = [instances[i].region for i in chain]
    return {i for k, i in enumerate(chain)
            if regions[k] == "sacrum" and _right_below_l5(instances, chain, k, regions, gap_factor, gap_body_factor)}


def _right_below_l5(instances, chain: list[int], k: int, regions: Sequence[str], gap_factor: float,
                    gap_body_factor: float) -> bool:
    """Whether L1…L5 lie right above chain position `k` (`_lumbar_run_above`), the levels hidden in
    the gaps counted down to `k` only (what lies below it does not move the local steps)."""
    slot = _slots(_gaps(np.array([instances[i].centre() for i in chain[:k + 1]]), gap_factor,
                        _length_along(instances, chain, regions), gap_body_factor))
    return _lumbar_run_above(k, len(LUMBAR), regions, slot)


def _without_weak_misplaced(instances, chain: list[int], naming: Naming,
                            read_as_sacrum: set[int] | None = None, after_l5: set[int] = frozenset()) -> list[int]:
    """`chain` (top to bottom) without the weak instances on the wrong side of a sure one: a body
    scoring under `SURE_SCORE` below a sure sacrum instance (a sacral segment or a stray, never a
    vertebra above S1), a sacrum instance scoring under it above a sure body, or scoring lower than
    every sure instance below it (a blob beside the spine: on the phantom's 20 sets the three films
    this decided each had one there, beside T11–L5; benchmarks/README.md, session 50); each flagged.
    A sacrum instance in `after_l5` (right below L1…L5: `_below_lumbar_spine`) is at S1's place and
    stays. A weak body right below the top sure sacrum instance that the model also read as sacrum
    (`Instance.also`) is a sacrum instance: kept, its index added to `read_as_sacrum`, so that a
    steep L5 taken for the sacrum above it is seen (`_steep_l5`)."""
    scores = [instances[i].score for i in chain]
    sure = [s >= SURE_SCORE for s in scores]
    is_sa = [instances[i].region == "sacrum" for i in chain]
    sure_sa = [k for k in range(len(chain)) if is_sa[k] and sure[k]]
    sure_body = [k for k in range(len(chain)) if not is_sa[k] and sure[k]]
    out = []
    for k, i in enumerate(chain):
        below_s1 = not is_sa[k] and not sure[k] and sure_sa and k > sure_sa[0]
        if (below_s1 and read_as_sacrum is not None and k == sure_sa[0] + 1
                and instances[i].also.get("sacrum", 0.0) > 0):
            read_as_sacrum.add(i)
            naming.call(f"a {instances[i].class_name} instance scoring {instances[i].score:.2f} right below "
                        f"a sure sacrum, also found as sacrum: taken as a sacrum instance")
            out.append(i)
            continue
        above_body = is_sa[k] and sure_body and k < sure_body[-1] and i not in after_l5
        outscored = above_body and sure[k] and all(scores[j] > scores[k] for j in range(k + 1, len(chain)) if sure[j])
        if below_s1 or (above_body and (not sure[k] or outscored)):
            where = ("below a sure sacrum" if below_s1 else "above a sure vertebra" if not sure[k] else
                     "above a vertebra, every sure instance below it scoring higher")
            naming.call(f"a {instances[i].class_name} instance scoring {instances[i].score:.2f} "
                        f"{where}: not named")
            continue
        out.append(i)
    return out


def _without_sacral_segments(instances, chain: list[int], naming: Naming, gap_factor: float,
                             gap_body_factor: float = 0.0, read_as_sacrum: set[int] = frozenset(),
                             after_l5: set[int] = frozenset()) -> list[int]:
    """`chain` (top to bottom) without the bodies below the top sure sacrum instance (or a weak one in
    `after_l5`, right below L1…L5), each a lower sacral segment or a blob in the pelvis (a femoral
    head, soft tissue), left unnamed and flagged where it would otherwise make every level
    uncertain, when either
    - the whole lumbar spine lies right above it (five lumbar bodies below a thoracic one, no level
      hidden among them): with L1…L5 found, a body below the sacrum is not lumbar, whatever its
      class or score; or
    - each body below scores lower than the sacrum instance, a sure one: the model is surer of it than
      of anything below it (on the phantom's 20 sets it decided four films, each with a stray there
      and the true S1 sure above it: benchmarks/README.md, session 49). A body
      the model also read as sacrum right below it (`read_as_sacrum`) is kept then: the S1 below a
      steep L5 taken for the sacrum (`_steep_l5`).
    Otherwise (a body below as sure as the sacrum instance, L1…L5 not found) nothing is removed."""
    regions = [instances[i].region for i in chain]
    sure_sa = [k for k, i in enumerate(chain)
               if regions[k] == "sacrum" and (instances[i].score >= SURE_SCORE or i in after_l5)]
    if not sure_sa:
        return chain
    s1 = sure_sa[0]
    which = "a sure sacrum" if instances[chain[s1]].score >= SURE_SCORE else "a sacrum"
    below = [k for k in range(s1 + 1, len(chain)) if regions[k] != "sacrum"]
    if not below:
        return chain
    if _right_below_l5(instances, chain, s1, regions, gap_factor, gap_body_factor):
        why = "with five lumbar bodies above it"
    else:
        if instances[chain[s1]].score < SURE_SCORE:
            return chain
        below = [k for k in below if chain[k] not in read_as_sacrum]
        if not below or any(instances[chain[k]].score >= instances[chain[s1]].score for k in below):
            return chain
        why = f"scoring lower than it ({instances[chain[s1]].score:.2f})"
    for k in below:
        inst = instances[chain[k]]
        naming.call(f"a {inst.class_name} instance scoring {inst.score:.2f} below {which}, {why}: "
                    f"a sacral segment or a stray, not named")
    return [i for k, i in enumerate(chain) if k not in below]


def _steep_l5(inst: Instance, regions_above: Sequence[str]) -> bool:
    """Whether the top sacrum instance `inst` (another sacrum instance right below it) is a steep L5
    taken for the sacrum: the model also read it as a lumbar body (`Instance.also`, region or level)
    with at least `L5_READING` of its sacrum score, and fewer than five lumbar bodies lie right above
    it (`regions_above`, top to bottom; with five, L5 is among them). A sacrum the model is sure of
    (its lumbar reading a small fraction) is the sacrum, split in two by the model."""
    lumbar = max((score for name, score in inst.also.items() if name == "lumbar" or name in LUMBAR), default=0.0)
    run = 0
    for r in reversed(regions_above):
        if r != "lumbar":
            break
        run += 1
    return lumbar >= L5_READING * inst.score and run < len(LUMBAR)


def _s1_read_lumbar(s1: int, slot, regions: Sequence[str], scores: Sequence[float]) -> int | None:
    """The chain position of an S1 the model read as lumbar, above a doubted sacrum instance at chain
    position `s1`, or None: six lumbar bodies (one more than `LUMBAR`) lie right above it below a
    thoracic one, no level hidden among them, and the lowest scores lower than the top one but is
    sure (≥ `SURE_SCORE`: a faint find there is as likely a faint L5 as S1). Counting up from the
    sacrum instance would make the top one T12 (read lumbar); the model's doubt points to the other
    end (as with no sacrum found): an S1 read as lumbar, the doubted sacrum instance a lower sacral
    segment below it."""
    run = len(LUMBAR) + 1
    if not _lumbar_run_above(s1, run, regions, slot):
        return None
    return s1 - 1 if SURE_SCORE <= scores[s1 - 1] < scores[s1 - run] else None


def _lumbar_run_above(end: int, run: int, regions: Sequence[str], slot) -> bool:
    """Whether `run` lumbar bodies lie right above chain position `end`, below a thoracic one, with
    no level hidden among them (`slot`: each chain position's level slot, `_slots`)."""
    top = end - run
    return (top >= 1 and regions[top - 1] == "thoracic" and all(regions[k] == "lumbar" for k in range(top, end))
            and int(slot[end] - slot[top - 1]) == run + 1)


def _counted_up(k: int, s1: int, level: str, slot) -> int:
    """The index in `LEVELS` of chain position `k` when chain position `s1` is `level` and the
    levels above it are counted up, hidden levels included (negative: above T1)."""
    return LEVEL_INDEX[level] - int(slot[s1] - slot[k])


def _counted_across(k: int, anchor: int, slot) -> int:
    """The most levels hidden in one gap between chain positions `k` and `anchor` (the body the count
    starts from); 0 with none."""
    lo, hi = sorted((k, anchor))
    return max((int(slot[j + 1] - slot[j]) - 1 for j in range(lo, hi)), default=0)


def _doubt_across_gaps(names: dict, counted: dict, slot, naming: Naming) -> None:
    """Mark uncertain the levels in `names` (chain position → level) counted across a gap hiding
    `UNSURE_GAP` or more levels; `counted`: chain position → the position its count starts from."""
    for k, anchor in counted.items():
        hidden = _counted_across(k, anchor, slot)
        if k in names and hidden >= UNSURE_GAP:
            naming.uncertain.setdefault(names[k], f"counted across a gap of ~{hidden} levels")


def _class_misses(s1: int, level: str, slot, regions: Sequence[str], scores: Sequence[float]) -> int:
    """How many sure bodies (score ≥ `SURE_SCORE`, `scores` by chain position) above chain
    position `s1` have a region class other than their level's when `s1` is `level` and the levels
    above it are counted up (`_counted_up`); bodies counted above T1 are not counted."""
    misses = 0
    for k in range(s1):
        idx = _counted_up(k, s1, level, slot)
        if scores[k] >= SURE_SCORE and regions[k] != "sacrum" and idx >= 0 and region(LEVELS[idx]) != regions[k]:
            misses += 1
    return misses


def _classes_name_it_l5(s1: int, slot, regions: Sequence[str], scores: Sequence[float]) -> bool:
    """Whether the top sacrum instance at chain position `s1`, right below a body (no level hidden
    between; the caller checks that it lies below the body, not beside it), is L5 by the region
    classes above it: counted up from it as L5 they disagree with fewer sure bodies than counted
    up from it as S1. For a doubted sacrum only: a steep L5 the model took for the sacrum, with a
    faint S1 or none found below it."""
    if s1 == 0 or int(slot[s1] - slot[s1 - 1]) != 1:
        return False
    return _class_misses(s1, "L5", slot, regions, scores) < _class_misses(s1, "S1", slot, regions, scores)


def _count_up_from_s1(body, s1, slot, regions, names, naming: Naming) -> None:
    """L5, L4, … T1 upwards from S1, hidden levels counted; classes only checked, not trusted."""
    disagree, above_t1 = [], 0
    for k in body:
        idx = _counted_up(k, s1, "S1", slot)
        if idx < 0:
            above_t1 += 1
            continue
        names[k] = LEVELS[idx]
        if region(LEVELS[idx]) != regions[k]:
            disagree.append(LEVELS[idx])
    if above_t1:
        naming.flags.append(f"{above_t1} vertebra(e) above T1 (cervical): not named")
    if disagree:
        naming.flags.append(f"the class of {', '.join(disagree)} disagrees with the count up from S1: "
                            f"named by the count")
    _doubt_across_gaps(names, {k: s1 for k in body}, slot, naming)


def _name_by_boundary(body, s1, slot, regions, scores: Sequence[float], names, naming: Naming,
                      lumbar_s1: bool = True) -> None:
    """Thoracic bodies upward from T12, lumbar downward from L1, split where the classes agree best.
    With no sacrum instance as S1 (`s1` None), six lumbar bodies right below the thoracic ones, no
    level hidden among them (`lumbar_s1`), hold one misread body at the end scoring lower
    (`scores`, by chain position): an S1 read as lumbar at the bottom, or a T12 at the top."""
    if not body:
        return
    is_lumbar = np.array([regions[k] == "lumbar" for k in body])
    # b = number of thoracic bodies on top; mismatches of each split
    cost = [int((is_lumbar[:b]).sum() + (~is_lumbar[b:]).sum()) for b in range(len(body) + 1)]
    b = int(np.argmin(cost))
    if cost[b]:
        msg = (f"regions out of order ({'-'.join(regions[k][0].upper() for k in body)}): "
               f"{cost[b]} class(es) overruled by the best thoracolumbar boundary")
        naming.call(msg)
        if cost[b] > max(1, len(body) // 5):
            for level in LEVELS:
                naming.uncertain.setdefault(level, "region classes inconsistent: " + msg)
    th, lu = body[:b], body[b:]
    if (lumbar_s1 and s1 is None and th and len(lu) == len(LUMBAR) + 1
            and int(slot[lu[-1]] - slot[th[-1]]) == len(lu)):
        # six lumbar bodies right below the thoracic ones and no sacrum: the end the model doubts
        # more is misread, an S1 below (its sacrum unseen) or a T12 above
        if scores[lu[-1]] < scores[lu[0]]:
            names[lu[-1]], lu, which = "S1", lu[:-1], "the lowest taken as S1"
        else:
            th, lu, which = th + lu[:1], lu[1:], "the top one taken as T12"
        naming.call(f"{len(LUMBAR) + 1} lumbar bodies below the thoracic ones and no sacrum found: "
                    f"{which}, the end scoring lower")
    if lu:
        span = int(slot[lu[-1]] - slot[lu[0]]) + 1
        if th:
            first = 0  # levels hidden at the boundary are counted as thoracic (T12, T11…)
        elif s1 is not None:
            first = len(LUMBAR) - int(slot[s1] - slot[lu[0]])
        else:
            first = 0
            naming.call("no thoracic or sacrum in view: top lumbar taken as L1")
        bad = None
        if first + span > len(LUMBAR):
            bad = f"{first + span} lumbar levels (expected 5)"
        elif th and s1 is not None and int(slot[s1] - slot[lu[0]]) != len(LUMBAR):
            bad = f"{int(slot[s1] - slot[lu[0]])} lumbar levels between thoracic and sacrum (expected 5)"
        elif first < 0:
            bad = f"{len(LUMBAR) - first} lumbar levels above the sacrum (expected 5)"
        if bad:
            naming.call("implausible: " + bad)
            for lv in LUMBAR + ("T12", "T11"):
                naming.uncertain.setdefault(lv, "implausible level sequence: " + bad)
        for k in lu:
            idx = first + int(slot[k] - slot[lu[0]])
            if 0 <= idx < len(LUMBAR):
                names[k] = LUMBAR[idx]
    if th:
        if not lu:
            naming.call("no lumbar in view: bottom thoracic taken as T12")
        below = int(slot[lu[0]] - slot[th[-1]]) - 1 if lu else 0  # hidden levels above the top lumbar
        span = int(slot[th[-1]] - slot[th[0]]) + 1
        if span + below > len(THORACIC):
            extra = span + below - len(THORACIC)
            if lu:  # counted up from the lumbar boundary: what lies above T1 is cervical
                naming.flags.append(f"{extra} vertebra(e) above T1 (cervical): not named")
            else:   # the bottom one was only taken as T12: the count cannot be right
                bad = f"{span + below} thoracic levels (expected at most 12)"
                naming.call("implausible: " + bad)
                for lv in THORACIC:
                    naming.uncertain.setdefault(lv, "implausible level sequence: " + bad)
        for k in th:
            idx = len(THORACIC) - 1 - below - int(slot[th[-1]] - slot[k])
            if 0 <= idx < len(THORACIC):
                names[k] = THORACIC[idx]
    # thoracic bodies are counted up from the boundary, lumbar ones down from it (up from S1 without
    # thoracic ones in view)
    counted = {k: lu[0] if lu else th[-1] for k in th}
    counted.update({k: s1 if not th and s1 is not None else lu[0] for k in lu})
    _doubt_across_gaps(names, counted, slot, naming)


def _length_along(instances, chain: Sequence[int], regions: Sequence[str]):
    """(k, u) → chain position k's length along unit vector u (px), None for a sacrum instance (its
    outline is the sacrum's, not one body's): for `_gaps`."""
    return lambda k, u: None if regions[k] == "sacrum" else instances[chain[k]].length_along(u)


def _slots(gaps: Sequence[int]) -> np.ndarray:
    """Each chain position's level slot (0 at the top), the levels hidden in the gaps (`_gaps`) counted."""
    return np.concatenate([[0], np.cumsum(1 + np.asarray(gaps, dtype=int))]).astype(int)


def _gaps(centres: np.ndarray, gap_factor: float, length_along=None, body_factor: float = 0.0) -> list[int]:
    """Hidden levels after each step of the ordered chain (len = len(centres) − 1): a step longer than
    `gap_factor` × the local median step hides round(step / median) − 1 levels. A step no shorter than
    the local median and longer than `body_factor` × the longer of its two bodies along it hides at
    least one: where several levels in a row are missed, the local median is itself a skipping
    step (`length_along(k, u)`: chain position k's length along unit vector u, px, None for a
    sacrum instance; `body_factor` 0: off)."""
    if len(centres) < 3:
        return [0] * max(0, len(centres) - 1)
    diffs = np.diff(centres, axis=0)
    steps = np.linalg.norm(diffs, axis=1)
    out = []
    for k, s in enumerate(steps):
        near = np.delete(steps, k)
        # the local median: the four nearest steps along the chain
        idx = np.argsort(np.abs(np.delete(np.arange(len(steps)), k) - k))[:4]
        ref = float(np.median(near[idx]))
        hidden = int(round(s / ref)) - 1 if ref > 0 and s > gap_factor * ref else 0
        if not hidden and body_factor > 0 and length_along is not None and s > 0 and s >= ref:
            lengths = [length_along(j, diffs[k] / s) for j in (k, k + 1)]
            if None not in lengths and s > body_factor * max(lengths):
                hidden = 1
        out.append(hidden)
    return out
