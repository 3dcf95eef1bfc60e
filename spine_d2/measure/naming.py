"""Names of vertebral levels (T1…L5, S1) for cleaned instances, from labels or from classes; image frame.

Three sources, tried in this order:

- **levels given**: every vertebra carries a level (annotation label or a per-level model's class).
  A level given twice keeps the higher score; levels out of cranio-caudal order are flagged.
- **region classes** (the study's two classes, or the default four): the chain of vertebra centres
  is ordered top to bottom and gaps are found from the spacing (a step longer than
  `gap_factor` × the local median step hides round(step / median) − 1 levels). Thoracic bodies
  are counted upward from T12 (the last one above the first lumbar); lumbar bodies downward from
  L1 (the first one below the thoracic) — or, with no thoracic in view, upward from L5 (the one
  above the sacrum); the top sacrum instance is S1.
- Anything implausible — more than 5 lumbar or 12 thoracic slots, lumbar bodies between thoracic
  and sacrum that do not make exactly L1…L5, regions out of order, a level given twice — is
  flagged; the levels it concerns are returned as `uncertain` with the reason (the pipeline makes
  the angles that need them NaN), never silently renamed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from spine_d2.levels import LEVEL_INDEX, LEVELS, LUMBAR, THORACIC, is_level
from spine_d2.measure.instances import Instance


@dataclass
class Naming:
    """level → index into the instance list; flags; uncertain level → reason; femoral-head indices."""

    levels: dict[str, int] = field(default_factory=dict)
    uncertain: dict[str, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    femoral_heads: list[int] = field(default_factory=list)
    source: str = ""

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
                gap_factor: float = 1.6) -> Naming:
    """Name the vertebrae among `instances` (see the module docstring)."""
    naming = Naming(femoral_heads=[i for i, inst in enumerate(instances) if inst.region == "femoral_head"])
    verts = [i for i, inst in enumerate(instances) if inst.is_vertebra]
    if not verts:
        return naming
    given = {i: given_level(instances[i], use_labels) for i in verts}
    if all(given.values()):
        _name_from_given(instances, verts, given, naming)
    else:
        if any(given.values()):
            naming.flags.append("some vertebrae carry a level and some only a region: named by region")
        _name_from_regions(instances, verts, naming, gap_factor)
    for level, i in naming.levels.items():
        instances[i].level = level
    return naming


def _name_from_given(instances, verts, given, naming: Naming) -> None:
    naming.source = "given levels"
    for i in sorted(verts, key=lambda i: -instances[i].score):
        level = given[i]
        if level in naming.levels:
            naming.flags.append(f"{level} given twice: kept the higher score")
            naming.uncertain[level] = f"{level} given twice"
            continue
        naming.levels[level] = i
    ys = {lv: instances[i].centre()[1] for lv, i in naming.levels.items()}
    ordered = sorted(naming.levels, key=lambda lv: LEVEL_INDEX[lv])
    for a, b in zip(ordered, ordered[1:]):
        if ys[a] >= ys[b]:
            msg = f"level order implausible: {a} is not above {b}"
            naming.flags.append(msg)
            naming.uncertain.setdefault(a, msg)
            naming.uncertain.setdefault(b, msg)


def _name_from_regions(instances, verts, naming: Naming, gap_factor: float) -> None:
    naming.source = "region classes"
    chain = sorted(verts, key=lambda i: instances[i].centre()[1])
    centres = np.array([instances[i].centre() for i in chain])
    regions = [instances[i].region for i in chain]
    gaps = _gaps(centres, gap_factor)
    for k, g in enumerate(gaps):
        if g:
            naming.flags.append(f"gap of ~{g} level(s) between the {ordinal(k + 1)} and {ordinal(k + 2)} "
                                f"vertebra from the top")

    rank = {"thoracic": 0, "lumbar": 1, "sacrum": 2}
    r = [rank[x] for x in regions]
    if any(a > b for a, b in zip(r, r[1:])):
        msg = "regions out of order (" + "-".join(x[0].upper() for x in regions) + ")"
        naming.flags.append(msg)
        for level in LEVELS:
            naming.uncertain[level] = msg

    th = [k for k, x in enumerate(regions) if x == "thoracic"]
    lu = [k for k, x in enumerate(regions) if x == "lumbar"]
    sa = [k for k, x in enumerate(regions) if x == "sacrum"]

    def slots(ks):
        """Position of each chain index in `ks` counting hidden levels, from the first."""
        pos, out = 0, []
        for n, k in enumerate(ks):
            if n:
                pos += 1 + sum(gaps[ks[n - 1]:k])
            out.append(pos)
        return out

    names: dict[int, str] = {}
    if sa:
        names[sa[0]] = "S1"
        if len(sa) > 1:
            naming.flags.append(f"{len(sa)} sacrum instances: the top one is S1")
    if lu:
        pos = slots(lu)
        span = pos[-1] + 1
        if th:
            first = 0
        elif sa:
            first = len(LUMBAR) - span - sum(gaps[lu[-1]:sa[0]])
        else:
            first = 0
            naming.flags.append("no thoracic or sacrum in view: top lumbar taken as L1")
        bad = None
        if span > len(LUMBAR):
            bad = f"{span} lumbar levels (expected 5)"
        elif th and sa and first + span + sum(gaps[lu[-1]:sa[0]]) != len(LUMBAR):
            bad = f"{span + sum(gaps[lu[-1]:sa[0]])} lumbar levels between thoracic and sacrum (expected 5)"
        elif first < 0:
            bad = f"{span - first} lumbar levels above the sacrum (expected 5)"
        if bad:
            naming.flags.append("implausible: " + bad)
            for lv in LUMBAR + ("T12", "T11"):
                naming.uncertain.setdefault(lv, "implausible level sequence: " + bad)
        for k, p in zip(lu, pos):
            if 0 <= first + p < len(LUMBAR):
                names[k] = LUMBAR[first + p]
    if th:
        pos = slots(th)
        span = pos[-1] + 1
        below = sum(gaps[th[-1]:lu[0]]) if lu else 0
        if not lu:
            naming.flags.append("no lumbar in view: bottom thoracic taken as T12")
        last = len(THORACIC) - 1 - below
        if span + below > len(THORACIC):
            bad = f"{span + below} thoracic levels (expected at most 12)"
            naming.flags.append("implausible: " + bad)
            for lv in THORACIC:
                naming.uncertain.setdefault(lv, "implausible level sequence: " + bad)
        for k, p in zip(th, pos):
            idx = last - (span - 1 - p)
            if 0 <= idx < len(THORACIC):
                names[k] = THORACIC[idx]
    for k, level in names.items():
        naming.levels[level] = chain[k]


def _gaps(centres: np.ndarray, gap_factor: float) -> list[int]:
    """Hidden levels after each step of the ordered chain (len = len(centres) − 1)."""
    if len(centres) < 3:
        return [0] * max(0, len(centres) - 1)
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    out = []
    for k, s in enumerate(steps):
        near = np.delete(steps, k)
        # the local median: the four nearest steps along the chain
        idx = np.argsort(np.abs(np.delete(np.arange(len(steps)), k) - k))[:4]
        ref = float(np.median(near[idx]))
        out.append(int(round(s / ref)) - 1 if ref > 0 and s > gap_factor * ref else 0)
    return out
