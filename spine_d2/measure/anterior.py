"""Which side of a lateral spine image is anterior, from the anatomy; image frame, pixels.

The answer is a sign: +1 when the patient faces +x (right), −1 when −x, taken across a spine
axis `cranial` (unit vector up the spine); `lateral = (−cranial_y, cranial_x)` is +x for an
upright spine. Four cues vote, each with a strength in [0, 1]:

1. **sacral slope** — the S1 superior plate faces anterior-superior (SS 8–72° in adults): its
   caudal end is the anterior one. Strength grows to 1 at 15° of slope.
2. **hip axis** — the femoral heads lie anterior-inferior of the S1 plate (PT is rarely below
   0°): the side of the hip axis relative to the S1 midpoint (or the lowest vertebra). Strength
   grows to 0.8 at 15°.
3. **lordosis** — the lumbar centres bulge anteriorly off the chord of the lumbar chain.
4. **kyphosis** — the thoracic centres bulge posteriorly off the chord of the thoracic chain.
   Strength of 3 and 4 grows to 0.6 at a bulge of 5 % of the chord, times how many centres the
   curve is drawn through (`CURVE_FULL`): three centres fix a bulge with nothing to check it (the
   first lumbar bodies of a thoracic view, the last thoracic ones of a lumbar view, where the
   thoracolumbar junction runs straight or kyphotic), so three count a third, four two thirds.

The sign is that of the weighted sum; where the cues cancel exactly (both curves at full strength,
no pelvis in view), that of the curve drawn through more vertebrae: a whole kyphosis outweighs
three lumbar bodies at the thoracolumbar junction (before, +1 by default: on the phantom two such
ties read TK with the wrong sign, 22° and 99° off; benchmarks/README.md, session 39). It is
*uncertain* (flagged, still used) when the sum is below 0.5 or a cue of strength ≥ 0.5 disagrees;
with no cue at all, +1 is assumed and flagged.
When the sacral slope and the lordosis, each of strength ≥ 0.5, point to opposite sides, the side
or S1's plate is misread and the answer is *in conflict* (`Anterior.conflict`; the measurement
leaves out every angle when the side followed the sacral plate, S1's plate's angles when it
followed the lordosis): on the phantom's evaluations of session 36, all five such films had an
angle 8–151° off, while the films where the two agreed and another cue disagreed measured within 5°.
When the hip axis votes at full strength against the side taken (`Anterior.hips_against`: the femoral
heads 15° or more behind the vertical through S1's plate midpoint, a pelvic tilt of −15° or less
where adults range from −5° to 40°), the side, S1 or the heads are misread: the measurement leaves
out the angles that rest on the lumbar spine and the pelvis, keeping TK. Of the 608 films measured in
session 44 (test split, four held-out style sets, one new seed), it fired on two, LL 34° and 43° off.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


@dataclass
class AnteriorVote:
    cue: str
    sign: int
    strength: float

    def __str__(self) -> str:
        return f"{self.cue} {'+x' if self.sign > 0 else '-x'} ({self.strength:.2f})"


#: cues of at least this strength that point to opposite sides make the answer uncertain
SURE_CUE = 0.5
#: a curve cue drawn through this many centres or more counts fully; through n fewer, (n − 2) / 3 of it
CURVE_FULL = 5
#: two cues that cannot both be right on a spine that is read right: the S1 plate faces anterior-
#: superior and the lumbar spine bulges anteriorly
CONFLICTING = ("sacral slope", "lordosis")
#: the hip-axis cue's full strength, reached at `HIP_FULL_DEG` off the vertical through S1's plate
#: midpoint (or the lowest vertebra's centre)
HIP_STRENGTH = 0.8
HIP_FULL_DEG = 15.0


@dataclass
class Anterior:
    sign: int
    certain: bool
    votes: list[AnteriorVote] = field(default_factory=list)
    note: str = ""

    @property
    def conflict(self) -> str:
        """Why the side cannot be trusted at all ('' when it can): the cues `CONFLICTING`, each of
        strength ≥ `SURE_CUE`, point to opposite sides."""
        sure = {v.cue: v for v in self.votes if v.cue in CONFLICTING and v.strength >= SURE_CUE}
        if len(sure) == len(CONFLICTING) and len({v.sign for v in sure.values()}) > 1:
            return " and ".join(str(sure[c]) for c in CONFLICTING) + " disagree: the side or S1's plate misread"
        return ""

    @property
    def hips_against(self) -> str:
        """Why the lumbar and pelvic angles cannot be trusted ('' when they can): the hip axis votes at
        full strength (`HIP_STRENGTH`) against the side taken, i.e. the femoral heads lie `HIP_FULL_DEG`
        or more behind the vertical through S1's plate midpoint, a pelvic tilt no adult has."""
        hips = [v for v in self.votes if v.cue == "hip axis" and v.sign != self.sign and v.strength >= HIP_STRENGTH]
        return f"{hips[0]} against the side taken: a pelvic tilt of -{HIP_FULL_DEG:.0f}° or less" if hips else ""


def lateral_of(cranial) -> np.ndarray:
    c = np.asarray(cranial, dtype=float)
    return np.array([-c[1], c[0]])


def _bulge(centres: np.ndarray, lateral: np.ndarray) -> float:
    """Signed largest offset (along `lateral`) of interior centres off the end-to-end chord, / chord."""
    if len(centres) < 3:
        return 0.0
    a, b = centres[0], centres[-1]
    chord = b - a
    length = float(np.linalg.norm(chord))
    if length == 0:
        return 0.0
    n = np.array([-chord[1], chord[0]]) / length
    if n @ lateral < 0:
        n = -n
    off = (centres[1:-1] - a) @ n
    k = int(np.argmax(np.abs(off)))
    return float(off[k] / length)


def decide_anterior(
    cranial: Sequence[float],
    s1_superior: np.ndarray | None = None,
    hip_axis: Sequence[float] | None = None,
    lowest_centre: Sequence[float] | None = None,
    lumbar_centres: np.ndarray | None = None,
    thoracic_centres: np.ndarray | None = None,
    vertical: Sequence[float] | None = (0.0, -1.0),
) -> Anterior:
    """Vote on the anterior side (see the module docstring); centres ordered top to bottom.

    The curve cues work across `cranial` (the chain's own axis); the pelvic cues across
    `vertical` (the image's up, as SS and PT are defined to the film's vertical: a strongly
    curved spine's chord leans too much to judge them). The sign is relative to
    `lateral_of(cranial)`.
    """
    chain_up = np.asarray(cranial, dtype=float)
    chain_up = chain_up / np.linalg.norm(chain_up)
    up = chain_up if vertical is None else np.asarray(vertical, dtype=float) / np.linalg.norm(vertical)
    lat = lateral_of(up)
    flip = 1 if lat @ lateral_of(chain_up) >= 0 else -1
    votes: list[AnteriorVote] = []
    if s1_superior is not None:
        p, q = np.asarray(s1_superior, dtype=float)
        low, high = (p, q) if p @ up < q @ up else (q, p)
        d = low - high
        slope = np.degrees(np.arctan2(abs(d @ up), abs(d @ lat)))
        if d @ lat != 0:
            votes.append(AnteriorVote("sacral slope", flip * (1 if d @ lat > 0 else -1), float(min(1.0, slope / 15.0))))
    ref = None
    if s1_superior is not None:
        ref = np.asarray(s1_superior, dtype=float).mean(axis=0)
    elif lowest_centre is not None:
        ref = np.asarray(lowest_centre, dtype=float)
    if hip_axis is not None and ref is not None:
        v = np.asarray(hip_axis, dtype=float) - ref
        side, down = v @ lat, -(v @ up)
        if side != 0 and down > 0:
            ang = np.degrees(np.arctan2(abs(side), down))
            votes.append(AnteriorVote("hip axis", flip * (1 if side > 0 else -1),
                                      float(HIP_STRENGTH * min(1.0, ang / HIP_FULL_DEG))))
    lat = lateral_of(chain_up)
    bodies: dict[str, int] = {}  # curve cue → the vertebrae it is drawn through
    for cue, centres, curve in (("lordosis", lumbar_centres, 1), ("kyphosis", thoracic_centres, -1)):
        if centres is not None and len(centres) >= 3:
            b = _bulge(np.asarray(centres, dtype=float), lat) * curve
            if b != 0:
                span = min(1.0, (len(centres) - 2) / (CURVE_FULL - 2))
                votes.append(AnteriorVote(cue, 1 if b > 0 else -1, float(0.6 * min(1.0, abs(b) / 0.05) * span)))
                bodies[cue] = len(centres)
    if not votes:
        return Anterior(1, False, votes, "anterior side unknown (no sacrum, hips or curve): assumed +x")
    total = sum(v.sign * v.strength for v in votes)
    sign = 1 if total >= 0 else -1
    if abs(total) < 1e-9 and bodies:  # the cues cancel: the curve through more vertebrae decides
        most = max(bodies.values())
        widest = {v.sign for v in votes if bodies.get(v.cue) == most}
        sign = widest.pop() if len(widest) == 1 else sign
    against = [v for v in votes if v.sign != sign and v.strength >= SURE_CUE]
    certain = abs(total) >= 0.5 and not against
    note = "" if certain else "anterior side uncertain: " + ", ".join(str(v) for v in votes)
    return Anterior(sign, certain, votes, note)
