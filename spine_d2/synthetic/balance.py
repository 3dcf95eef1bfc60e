"""The trunk's sagittal balance over the sacrum, in the phantom's sagittal plan (degrees, mm).

Adults keep T1 roughly above the sacrum: thoracic kyphosis follows the lordosis below it (TK and
LL_S1 correlate, r ≈ 0.4–0.6) and the thoracolumbar junction stays nearly straight. The plan of
`spine_d2.synthetic.anatomy` is a dict of wedge angles (per body) and disc angles (per disc, named
by the level above it), lordotic positive; these helpers edit it in place.
"""
from __future__ import annotations

import math

import numpy as np


#: the most the T12-L1 disc turns to balance the trunk (degrees; the thoracolumbar junction of
#: adults is nearly straight) and the most TK moves from the patient's draw for it
JUNCTION_BALANCE, TK_BALANCE = 4.0, 15.0


def add_kyphosis(wedge: dict, disc: dict, per_degree: dict, degrees: float) -> None:
    """Add `degrees` of kyphosis to T5–T12: `per_degree` maps a level (wedge) or "disc <level>"
    to its lordotic degrees per degree of TK."""
    for key, k in per_degree.items():
        if key.startswith("disc "):
            disc[key[5:]] += k * degrees
        else:
            wedge[key] += k * degrees


def lean_off_target(bodies: dict, target_x: float) -> float:
    """Degrees the trunk (the chord from the L1 to the T1 superior plate) leans anterior of the
    direction that would put T1 over `target_x` (patient frame, mm)."""
    l1, t1 = bodies["L1"].superior.mean(axis=0), bodies["T1"].superior.mean(axis=0)
    lean = math.degrees(math.atan2(t1[0] - l1[0], l1[1] - t1[1]))
    length = float(np.linalg.norm(t1 - l1))
    return lean - math.degrees(math.asin(float(np.clip((target_x - l1[0]) / length, -0.9, 0.9))))


def balance_trunk(lean, wedge: dict, disc: dict, tk_per_degree: dict, tk: float) -> float:
    """Balance the trunk as adults do: TK follows the lordosis below it (within `TK_BALANCE` of
    the drawn TK, inside 0.6–75°), then the T12-L1 disc takes up to `JUNCTION_BALANCE`; what is
    left is the patient's sagittal imbalance. Edits `wedge` and `disc`; returns the new TK.

    `lean()` chains the current plan and returns its lean (degrees, anterior positive); more
    kyphosis leans the trunk forward, so TK is moved (secant steps) until the lean is within
    `JUNCTION_BALANCE` of zero."""
    lo, hi = max(0.6, tk - TK_BALANCE), min(75.0, tk + TK_BALANCE)
    prev, err = None, lean()
    for _ in range(4):
        if abs(err) <= JUNCTION_BALANCE:
            break
        goal = math.copysign(JUNCTION_BALANCE, err)
        slope = 0.5 if prev is None else (err - prev[1]) / (tk - prev[0])
        nxt = float(np.clip(tk - (err - goal) / max(slope, 0.1), lo, hi))
        if abs(nxt - tk) < 1e-6:
            break
        add_kyphosis(wedge, disc, tk_per_degree, nxt - tk)
        prev, tk = (tk, err), nxt
        err = lean()
    disc["T12"] += float(np.clip(err, -JUNCTION_BALANCE, JUNCTION_BALANCE))
    return tk
