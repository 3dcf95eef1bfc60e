"""TK checked against the bend of the chain of vertebral-body centres (degrees; image frame, px).

A body's centre is found far more surely than its endplates: a plate misread by 20° or more (a
blurred or glared upper thorax, a rotated scoliotic body with two contours) leaves the centres
where they were. The chain's direction across the T4–T5 disc (T5's superior plate lies square to
it, up to the disc's and T5's own wedge) and across the T12–L1 disc (T12's inferior plate) make
nearly TK's angle: on the phantom's truth the two differ by 4–5° (standard deviation), at most
23° (benchmarks/README.md, session 57). A TK from the plates further than `measure.chain_tk_deg`
from the chain's bend rests on a misread plate, and is left out rather than reported. Off by
default: on the served model's films, at 15–20° it left out good readings nearly as often as misread
ones, and it cannot check a spine whose T4 is not found.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from spine_d2.measure.endplates import order_anterior_posterior

#: the discs whose chain directions stand for TK's two plates: (body above, body below) → the plate
CHAIN_TK_DISCS: dict[tuple[str, str], tuple[str, str]] = {("T4", "T5"): ("T5", "superior"),
                                                        ("T12", "L1"): ("T12", "inferior")}


def disc_plate(upper: np.ndarray, lower: np.ndarray, anterior) -> np.ndarray:
    """A plate square to the chain from the `lower` body's centre to the `upper`'s, through their
    midpoint, as long as they lie apart: ``[anterior end, posterior end]`` (image frame, px);
    `anterior`: a vector pointing anterior."""
    u, b = np.asarray(upper, float), np.asarray(lower, float)
    d = u - b
    half = np.array([-d[1], d[0]]) / 2.0
    mid = (u + b) / 2.0
    return order_anterior_posterior(np.array([mid + half, mid - half]), anterior)


def chain_plates(centres: Mapping[str, np.ndarray], anterior) -> dict[str, dict[str, np.ndarray]]:
    """Level → side → the chain's stand-in for TK's plates (`disc_plate` of `CHAIN_TK_DISCS`), when
    the four bodies are named (`centres`: level → centre, image frame, px); else {}."""
    if not all(lv in centres for disc in CHAIN_TK_DISCS for lv in disc):
        return {}
    out: dict[str, dict[str, np.ndarray]] = {}
    for (above, below), (level, side) in CHAIN_TK_DISCS.items():
        out.setdefault(level, {})[side] = disc_plate(centres[above], centres[below], anterior)
    return out


def chain_disagrees(tk: float, chain_tk: float, limit: float) -> str:
    """Why TK from the plates (degrees) is not reported, or "": further than `limit` degrees from the
    chain's bend `chain_tk` (one frame). 0: never."""
    if limit <= 0 or not np.isfinite(tk) or not np.isfinite(chain_tk) or abs(tk - chain_tk) <= limit:
        return ""
    return (f"TK from the plates {tk:.0f}°, but the chain of body centres bends {chain_tk:.0f}° from T4-T5 "
            f"to T12-L1 (more than {limit:g}° apart): a plate misread")
