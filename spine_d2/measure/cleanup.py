"""Removal of stray and duplicate instances before naming; image frame, pixels.

Five steps, each removal recorded with its reason:

1. fragments: a mask in several pieces keeps its largest piece;
2. too small: a vertebra whose area is below `min_area` pixels or `min_area_fraction` of the
   median vertebra area;
3. duplicates: two instances of the same kind (vertebra/vertebra, head/head) overlapping by more
   than `duplicate_overlap` of the smaller one — the lower score goes. Femoral heads use the
   much higher `duplicate_overlap_heads`, measured between their circles: on a lateral film the
   two heads overlap by design. A vertebra and a femoral head overlapping by more than
   `duplicate_overlap` are one object called both (a model takes the sacrum for a head, or a head
   for the sacrum; a true head lies clear of S1): the lower score goes too;
4. centres off the spine's chain: with thoracic and lumbar centres (the study's chain; the
   sacrum's centre lies far back when the sacral slope is steep) ordered from top to bottom,
   `chain_rule` says which centre is noise; one is removed at a time (a doubted one before a
   sure one, then the one whose removal leaves the straightest chain), then the chain is checked
   again.

   - ``turn`` (the default): the direction from one centre to the next turns by more than
     `turn_limit_deg` (60°) at a centre, and the chain turns back at both its neighbours — the
     centre is off the chain in both directions, a spike, not a bend; at an end, the turn its one
     step makes at its neighbour when the chain beyond does not turn the same way. An angle
     does not depend on how steep the chain runs, so a strongly kyphotic upper thoracic spine
     keeps its vertebrae (true chains turn by at most ~45° per level: benchmarks/README.md);
   - ``slope`` (the study's): the slope of each step between neighbours is the sideways offset
     per step down (dx/dy, image frame); a centre where it changes by more than
     `slope_threshold` (1.7 = tan 60°) — or, at either end, whose one step is steeper than it —
     is noise. Where the chain itself runs steep (upper thoracic levels in a strong kyphosis) a
     small turn is a large slope change, and true vertebrae go;
   - ``off``: no centre is removed for its place in the chain.

   With ``turn``, a detour is noise too: a run of 2 to `max_detour` (3) centres lying all to one
   side of the line between the sure centres either side of it, each further from it than half
   the line's step per level, that the chain leaves and rejoins by more than `turn_limit_deg` / 2
   to that line, one of the two by more than `turn_limit_deg` (as sharply as a spike turns),
   turning the other way at the centres either side than through the run (a spike several
   centres wide: bodies found in the soft tissue beside the upper thoracic spine; a bend, however
   strong, turns one way throughout). A deep lordosis with a body missed leaves and rejoins the
   line by 30–50° and is no detour (on the phantom every such run was true lumbar bodies of an
   LL of 65–90°; every run of bodies beside the spine left or rejoined it by 60° or more). Of the
   spikes and detours, those the model doubts (every centre scoring under `SURE_SCORE`) go before
   sure ones, then the one whose removal leaves the straightest chain, the one removing fewest
   centres, the lowest scores.
5. crowded centres: a centre scoring under `SURE_SCORE` whose two neighbours in the chain lie
   less than `crowd_steps` local steps apart (the median of the four nearest steps that do not
   touch it) sits inside one level's step: a second, partial find of a vertebra (or of a disc),
   not a vertebra of its own; at an end of the chain, one whose step to its neighbour is under
   `crowd_steps` − 1 local steps. Counting it as a level would rename every level above it. A sure
   centre inside the chain is one too when its neighbours lie less than `crowd_steps_sure` local
   steps apart and its mask shares at least `CROWD_TOUCH` of the smaller one with a neighbour's:
   the model sure of two halves of one body (a stray off the chain that the chain rule left would
   stretch the local step and crowd the true bodies beside it; it touches none). Doubted centres go
   first, then the most crowded, then the chain is checked again; `crowd_steps` 0
   (`crowd_steps_sure` 0) turns this off (for sure centres).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np

from spine_d2.measure.instances import SURE_SCORE, Instance, circle_of, largest_component


#: two instances from different reads of one photo (the photo's and its mirror image's, or two runs
#: of the model) are one body when their masks' IoU is at least this (`mask_iou`); within one
#: read, duplicates are judged by the overlap of the smaller instead (`measure.duplicate_overlap`)
SAME_BODY_IOU = 0.5
STEPS = ("too small", "duplicate", "chain", "crowded")  # Removal.step
CHAIN_RULES = ("turn", "slope", "off")
MAX_DETOUR = 3  # centres a detour off the chain may hold (turn rule; see the module docstring)
#: a doubted centre whose neighbours lie closer than this many local steps is crowded (step 5):
#: midway between a second find's neighbours (one step apart) and a vertebra's (two). With
#: `zoo:phantom-fast-long` on 516 films (seeds 907-909, the test split) the doubted centres under
#: it were second finds of a vertebra at 0.9-1.4 steps, bar two (a film with nearly nothing found,
#: one at 1.50); doubted vertebrae lay 1.6 steps apart or more (benchmarks/README.md)
CROWD_STEPS = 1.5
#: a sure centre inside the chain whose neighbours lie closer than this many local steps is a
#: second find too (step 5). Of the sure centres inside the chains of 512 films (the shipped model;
#: test split, seeds 1001-1004) with neighbours under 1.2 steps apart, 12 of 15 were a body found
#: twice (each half sure), 2 of 7 at 1.2-1.3, 8 of 37 at 1.4-1.5; a body's neighbours lie ~2 steps
#: apart. With `CROWD_TOUCH` it fired on 13 of those films, 4 measured better (TK 5.5 -> 1.6 deg at
#: most), none worse; held out (384 films of four transfer sets) on 5, 1 better, none worse
#: (benchmarks/README.md, session 46)
CROWD_STEPS_SURE = 1.25
#: ...and shares at least this fraction of the smaller mask with a neighbour's: each of the 44 sure
#: centres found twice on those films shared 0.1-0.5 with its other half; a stray off the chain
#: shares none
CROWD_TOUCH = 0.05


@dataclass(frozen=True)
class Removal:
    """An instance taken out by the clean-up: its index in the input, class, level label, why, and
    the step that took it (STEPS)."""

    index: int
    class_name: str
    reason: str
    label: str | None = None
    step: str = ""

    def __str__(self) -> str:
        who = self.label or self.class_name
        return f"#{self.index} {who}: {self.reason}"


def _kind(inst: Instance) -> str:
    return "vertebra" if inst.is_vertebra else inst.region


def _drop(kept: dict[int, Instance], removals: list[Removal], i: int, reason: str, step: str) -> None:
    inst = kept.pop(i)
    removals.append(Removal(i, inst.class_name, reason, inst.label, step))


def _without_fragments(instances: Sequence[Instance], removals: list[Removal]) -> dict[int, Instance]:
    """1. Each mask's largest piece (the rest noted on it); empty masks are removed."""
    kept: dict[int, Instance] = {}
    for i, inst in enumerate(instances):
        if inst.mask is not None:
            sub, x0, y0 = inst.local_mask()
            if not sub.any():
                removals.append(Removal(i, inst.class_name, "empty mask", inst.label, "too small"))
                continue
            part, pieces, pixels = largest_component(sub)
            if pieces:
                mask = np.zeros_like(inst.mask)
                mask[y0:y0 + part.shape[0], x0:x0 + part.shape[1]] = part
                inst = replace(inst, mask=mask, notes=inst.notes + [
                    f"dropped {pieces} stray fragment(s), {pixels} px"])
        kept[i] = inst
    return kept


def _drop_too_small(kept, removals, areas, min_area: float, min_area_fraction: float) -> None:
    """2. Masks under `min_area` px; vertebrae also under `min_area_fraction` of the median vertebra."""
    vert_areas = [areas[i] for i, inst in kept.items() if inst.is_vertebra]
    median = float(np.median(vert_areas)) if vert_areas else 0.0
    for i in list(kept):
        if areas[i] < min_area:
            _drop(kept, removals, i, f"mask too small ({areas[i]:.0f} px < {min_area:g})", "too small")
        elif kept[i].is_vertebra and areas[i] < min_area_fraction * median:
            _drop(kept, removals, i, f"mask too small ({areas[i]:.0f} px < {min_area_fraction:g} × median "
                                     f"{median:.0f} px)", "too small")


def _drop_duplicates(kept, removals, areas, duplicate_overlap: float, duplicate_overlap_heads: float) -> None:
    """3. Of two instances of one kind, or a vertebra and a femoral head, overlapping by more than
    the limit, the lower score goes (highest score, then largest area first)."""
    order = sorted(kept, key=lambda i: (-kept[i].score, -areas[i], i))
    for pos, i in enumerate(order):
        if i not in kept:
            continue
        for j in order[pos + 1:]:
            if j not in kept:
                continue
            kinds = {_kind(kept[i]), _kind(kept[j])}
            if len(kinds) > 1 and kinds != {"vertebra", "femoral_head"}:
                continue
            heads = kinds == {"femoral_head"}
            limit = duplicate_overlap_heads if heads else duplicate_overlap
            overlap = head_overlap(kept[i], kept[j]) if heads else mask_overlap(kept[i], kept[j])
            if overlap > limit:
                other = kept[j]
                _drop(kept, removals, j, f"duplicate of #{i} (overlap {overlap:.2f} > {limit:g}, "
                                         f"score {other.score:.2f} ≤ {kept[i].score:.2f})", "duplicate")
                if other.class_name != kept[i].class_name:  # one object, two classes: kept in `also`
                    also = dict(kept[i].also)
                    also[other.class_name] = max(also.get(other.class_name, 0.0), other.score)
                    kept[i] = replace(kept[i], also=also)


def clean_instances(
    instances: Sequence[Instance],
    image_shape: Sequence[int],
    slope_threshold: float = 1.7,
    duplicate_overlap: float = 0.5,
    min_area: float = 30.0,
    min_area_fraction: float = 0.2,
    duplicate_overlap_heads: float = 0.95,
    chain_rule: str = "turn",
    turn_limit_deg: float = 60.0,
    max_detour: int = MAX_DETOUR,
    crowd_steps: float = CROWD_STEPS,
    crowd_steps_sure: float = CROWD_STEPS_SURE,
) -> tuple[list[int], list[Instance], list[Removal]]:
    """Clean `instances`; returns (kept input indices, kept instances, removals).

    Kept instances may differ from the input only in having lost mask fragments (noted on them)
    and in `also`: the classes of the duplicates of another class removed in their favour.
    """
    removals: list[Removal] = []
    kept = _without_fragments(instances, removals)
    areas = {i: inst.area() for i, inst in kept.items()}
    _drop_too_small(kept, removals, areas, min_area, min_area_fraction)
    _drop_duplicates(kept, removals, areas, duplicate_overlap, duplicate_overlap_heads)
    # 4. centres off the chain of vertebra centres
    chain = [i for i in kept if kept[i].region in ("thoracic", "lumbar")]
    for i, reason in chain_outliers({i: kept[i].centre() for i in chain}, {i: kept[i].score for i in chain},
                                    chain_rule, slope_threshold, turn_limit_deg, max_detour):
        _drop(kept, removals, i, reason, "chain")
    # 5. centres crowded inside one level's step
    chain = [i for i in kept if kept[i].region in ("thoracic", "lumbar")]
    for i, reason in crowded_centres({i: kept[i].centre() for i in chain}, {i: kept[i].score for i in chain},
                                     crowd_steps, crowd_steps_sure, lambda i, j: mask_overlap(kept[i], kept[j])):
        _drop(kept, removals, i, reason, "crowded")
    idx = sorted(kept)
    return idx, [kept[i] for i in idx], removals


def chain_outliers(centres: dict[int, np.ndarray], scores: dict[int, float], rule: str = "turn",
                   slope_threshold: float = 1.7, turn_limit_deg: float = 60.0,
                   max_detour: int = MAX_DETOUR) -> list[tuple[int, str]]:
    """(key, reason) of the centres `rule` takes out of the chain, in the order removed (see the
    module docstring, step 4); `centres` and `scores` keyed alike (image frame, px)."""
    if rule not in CHAIN_RULES:
        raise ValueError(f"chain rule must be one of {', '.join(CHAIN_RULES)}, got {rule!r}")
    if rule == "off":
        return []
    measure, limit = (slope_changes, slope_threshold) if rule == "slope" else (turn_scores, turn_limit_deg)
    chain = sorted(centres, key=lambda i: centres[i][1])
    out = []
    while len(chain) >= 3:
        pts = np.array([centres[i] for i in chain])
        values = measure(pts)
        why = {(k,): (f"slope change {v:.2f} > {limit:g} between neighbouring centres" if rule == "slope" else
                      f"off the spine's chain (turn {v:.0f}° > {limit:g}° between neighbouring centres)")
               for k, v in enumerate(values) if v > limit}
        sure = [scores[i] >= SURE_SCORE for i in chain]
        for first, stop, leave, rejoin in detours(pts, limit, max_detour, sure) if rule == "turn" else []:
            why[tuple(range(first, stop))] = (
                f"off the spine's chain, a detour of {stop - first} centres (the chain leaves the line "
                f"past them by {leave:.0f}° and rejoins it by {rejoin:.0f}°, > {limit / 2:g}°)")
        if not why:
            break

        def left(run):  # doubted before sure, then the straightest chain left, the fewest removed
            rest = float(np.max(measure(np.delete(pts, run, axis=0))))
            run_scores = [scores[chain[k]] for k in run]
            return max(run_scores) >= SURE_SCORE, rest, len(run), float(np.mean(run_scores))

        run = min(why, key=left)
        out += [(chain[k], why[run]) for k in run]
        chain = [i for k, i in enumerate(chain) if k not in run]
    return out


def crowded_centres(centres: dict[int, np.ndarray], scores: dict[int, float],
                    crowd_steps: float = CROWD_STEPS, crowd_steps_sure: float = CROWD_STEPS_SURE,
                    overlap: Callable[[int, int], float] | None = None) -> list[tuple[int, str]]:
    """(key, reason) of the centres crowded inside one level's step, in the order removed (module
    docstring, step 5): doubted ones under `crowd_steps`, sure ones inside the chain under
    `crowd_steps_sure` (0: none) sharing at least `CROWD_TOUCH` with a neighbour by `overlap(key,
    key)` (the masks' shared pixels over the smaller one's; None: not checked); `centres` (image
    frame, px) and `scores` keyed alike."""
    out: list[tuple[int, str]] = []
    chain = sorted(centres, key=lambda i: centres[i][1])
    while (crowd_steps > 0 or crowd_steps_sure > 0) and len(chain) >= 4:
        pts = np.array([centres[i] for i in chain])
        steps = np.linalg.norm(np.diff(pts, axis=0), axis=1)
        found = []
        for k, i in enumerate(chain):
            sure = scores[i] >= SURE_SCORE
            inner = 0 < k < len(chain) - 1
            limit = crowd_steps_sure if sure else crowd_steps
            if limit <= 0 or (sure and not inner):
                continue
            # the local step: the median of the four nearest steps other than those into and out of k
            near = sorted((j for j in range(len(steps)) if j not in (k - 1, k)), key=lambda j: abs(j - k + 0.5))[:4]
            ref = float(np.median(steps[near]))
            if ref <= 0:
                continue
            score = f"score {scores[i]:.2f} {'≥' if sure else '<'} {SURE_SCORE:g}"
            if inner:
                apart = float(np.linalg.norm(pts[k + 1] - pts[k - 1])) / ref
                # a sure one touching neither neighbour is a body of its own, or a stray off the chain
                if apart < limit and (not sure or overlap is None
                                      or max(overlap(i, chain[k - 1]), overlap(i, chain[k + 1])) >= CROWD_TOUCH):
                    found.append((sure, apart, i, f"crowded: its neighbours lie {apart:.2f} levels' steps apart "
                                                  f"(< {limit:g}), {score}"))
            else:
                step = float(steps[0] if k == 0 else steps[-1]) / ref
                if step < limit - 1:
                    found.append((sure, step + 1, i, f"crowded: {step:.2f} of a level's step from its neighbour at "
                                                     f"the chain's end (< {limit - 1:g}), {score}"))
        if not found:
            break
        _, _, i, reason = min(found, key=lambda f: (f[0], f[1], scores[f[2]]))
        out.append((i, reason))
        chain.remove(i)
    return out


def detours(centres: np.ndarray, turn_limit_deg: float = 60.0, max_run: int = MAX_DETOUR,
            sure: np.ndarray | None = None) -> list[tuple[int, int, float, float]]:
    """Runs of 2..`max_run` interior centres (ordered top to bottom; image frame, px) the chain
    detours through, as (first, stop, leave°, rejoin°) for the run centres[first:stop]: all on
    one side of the line from the centre before the run to the one after it (both `sure`, when
    given: a line through a doubted centre is no guide), each further from it than half the
    step the line makes per level (its length over the run's length + 1; lumbar steps are twice
    the upper thoracic ones), the step into the run leaving that line by more than
    `turn_limit_deg` / 2 and the step out of it rejoining it by more than that, one of the two by
    more than `turn_limit_deg`, and the chain turning at the centres either side (those that
    have a turn) the other way than from the step in to the step out."""
    c = np.asarray(centres, float)
    n, out = len(c), []
    if n < 4 or max_run < 2:
        return out
    sure = np.ones(n, bool) if sure is None else np.asarray(sure, bool)
    turns = np.r_[0.0, signed_turns(c), 0.0]  # turns[j]: the turn at centre j; none at the ends

    def degrees_off(v, u):
        return float(np.degrees(np.arccos(np.clip(v @ u / max(np.linalg.norm(v), 1e-9), -1.0, 1.0))))

    for k in range(2, max_run + 1):
        for first in range(1, n - k):
            if not (sure[first - 1] and sure[first + k]):
                continue
            a, b = c[first - 1], c[first + k]
            length = float(np.linalg.norm(b - a))
            if length == 0.0:
                continue
            u, off = (b - a) / length, 0.5 * length / (k + 1)  # half the levels' step along the line
            side = (c[first:first + k] - a) @ np.array([-u[1], u[0]])
            if not (np.all(side > off) or np.all(side < -off)):
                continue
            leave, rejoin = degrees_off(c[first] - a, u), degrees_off(b - c[first + k - 1], u)
            # a detour turns the chain back: the other way at its two ends than through the run
            # (a bend turns one way throughout)
            through = signed_turns(np.array([a, c[first], c[first + k - 1], b]))
            ends = [turns[j] for j in (first - 1, first + k) if 1 <= j <= n - 2]
            back = bool(ends) and all(t * through.sum() < 0 for t in ends)
            if back and min(leave, rejoin) > turn_limit_deg / 2 and max(leave, rejoin) > turn_limit_deg:
                out.append((first, first + k, leave, rejoin))
    return out


def signed_turns(centres: np.ndarray) -> np.ndarray:
    """Degrees the direction centre → next centre turns at each interior centre (ordered top to
    bottom), signed (image frame: positive turns clockwise on screen)."""
    d = np.diff(np.asarray(centres, float), axis=0)
    a = np.arctan2(d[:, 0], d[:, 1])
    return np.degrees((np.diff(a) + np.pi) % (2 * np.pi) - np.pi)


def turn_scores(centres: np.ndarray) -> np.ndarray:
    """Per centre (ordered top to bottom), how far off the chain it lies, in degrees of turn: an
    interior centre's |turn| when the chain turns the other way at each interior neighbour (a
    spike), else 0; an end's neighbour's |turn| when the chain beyond does not turn on the same
    way by at least half as much (else 0)."""
    n = len(centres)
    out = np.zeros(n)
    if n < 3:
        return out
    t = np.r_[0.0, signed_turns(centres), 0.0]  # t[k]: turn at centre k; none at the ends
    for k in range(1, n - 1):
        if all(t[j] * t[k] < 0 for j in (k - 1, k + 1) if 1 <= j <= n - 2):
            out[k] = abs(t[k])
    for end, nb, beyond in ((0, 1, 2), (n - 1, n - 2, n - 3)):
        if t[beyond] * t[nb] <= 0 or abs(t[beyond]) < 0.5 * abs(t[nb]):
            out[end] = abs(t[nb])
    return out


def mask_overlap(a: Instance, b: Instance) -> float:
    """Shared pixels over the smaller instance's pixels (0 when their boxes do not meet)."""
    inter, area_a, area_b = _shared(a, b)
    small = min(area_a, area_b)
    return float(inter / small) if small else 0.0


def mask_iou(a: Instance, b: Instance) -> float:
    """Shared pixels over the pixels of either (intersection over union; 0 when their boxes do not
    meet): two reads' instances are one body from `SAME_BODY_IOU` on."""
    inter, area_a, area_b = _shared(a, b)
    union = area_a + area_b - inter
    return float(inter / union) if union else 0.0


def _shared(a: Instance, b: Instance) -> tuple[int, int, int]:
    """(pixels shared, a's pixels, b's pixels); (0, 0, 0) when their boxes do not meet."""
    ax0, ay0, ax1, ay1 = a.box()
    bx0, by0, bx1, by1 = b.box()
    x0, y0, x1, y1 = max(ax0, bx0), max(ay0, by0), min(ax1, bx1), min(ay1, by1)
    if x0 >= x1 or y0 >= y1:
        return 0, 0, 0
    ma, mb = a.local_mask()[0], b.local_mask()[0]
    inter = np.logical_and(ma[y0 - ay0:y1 - ay0, x0 - ax0:x1 - ax0], mb[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0]).sum()
    return int(inter), int(ma.sum()), int(mb.sum())


def circle_overlap(c1, c2) -> float:
    """Area shared by two circles (cx, cy, r; px) over the smaller one's area."""
    (x1, y1, r1), (x2, y2, r2) = c1, c2
    d, small = float(np.hypot(x2 - x1, y2 - y1)), min(r1, r2)
    if d >= r1 + r2 or small <= 0:
        return 0.0
    if d <= abs(r1 - r2):
        return 1.0
    a1 = r1 * r1 * np.arccos(np.clip((d * d + r1 * r1 - r2 * r2) / (2 * d * r1), -1, 1))
    a2 = r2 * r2 * np.arccos(np.clip((d * d + r2 * r2 - r1 * r1) / (2 * d * r2), -1, 1))
    tri = 0.5 * np.sqrt(max((-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2), 0.0))
    return float((a1 + a2 - tri) / (np.pi * small * small))


def head_overlap(a: Instance, b: Instance) -> float:
    """Overlap of two femoral heads as circles (`circle_of`: given, or fitted to the mask), so
    that a head keeps or loses its twin the same way as a mask and as the circle written for it
    (Labelme pre-annotations); the masks' overlap when a circle cannot be had."""
    ca, cb = circle_of(a), circle_of(b)
    return circle_overlap(ca, cb) if ca is not None and cb is not None else mask_overlap(a, b)


def slope_changes(centres: np.ndarray) -> np.ndarray:
    """Per centre (ordered top to bottom): the change of dx/dy between its two steps; at the ends
    the steepness |dx/dy| of its one step. Steps with no vertical extent count as infinitely steep."""
    n = len(centres)
    if n < 2:
        return np.zeros(n)
    d = np.diff(centres, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(np.abs(d[:, 1]) > 1e-9, d[:, 0] / np.where(d[:, 1] == 0, 1, d[:, 1]), np.inf)
    out = np.empty(n)
    out[0], out[-1] = abs(s[0]), abs(s[-1])
    for k in range(1, n - 1):
        out[k] = abs(s[k] - s[k - 1]) if np.isfinite(s[k]) and np.isfinite(s[k - 1]) else np.inf
    return out
