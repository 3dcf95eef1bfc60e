"""The chain of body centres' bend, which TK from the plates is checked against (measure.chain_curve)."""
import math

import numpy as np
import pytest

from measure_factory import toy_spine

from spine_d2.angles import sagittal_angles
from spine_d2.measure.chain_curve import CHAIN_TK_DISCS, chain_disagrees, chain_plates, disc_plate
from spine_d2.measure.pipeline import measure_instances

LEVELS = ("T4", "T5", "T6", "T7", "T8", "T9", "T10", "T11", "T12", "L1")


def arc_centres(bend_deg: float, facing: int = 1, radius: float = 400.0) -> dict[str, np.ndarray]:
    """Centres on a circular arc (image frame, px) bent `bend_deg` between the T4-T5 and T12-L1
    chords, kyphotic (its middle bowed backwards; anterior: `facing` · +x) for a positive bend."""
    step = math.radians(bend_deg) / 8.0  # 9 steps T4 … L1; the two end chords lie 8 steps apart
    out = {}
    for k, lv in enumerate(LEVELS):
        a = (k - 4.5) * step
        out[lv] = np.array([500.0 - facing * radius * (math.cos(a) - 1.0), 500.0 + radius * math.sin(a)])
    return out


@pytest.mark.parametrize("facing", [1, -1])
@pytest.mark.parametrize("bend", [0.0, 25.0, 60.0, -15.0])
def test_the_stand_in_plates_make_the_chains_bend(bend, facing):
    plates = chain_plates(arc_centres(bend, facing), np.array([facing, 0.0]))
    assert {(lv, side) for lv, sides in plates.items() for side in sides} == set(CHAIN_TK_DISCS.values())
    assert sagittal_angles(plates, sign=facing)["TK"].value == pytest.approx(bend, abs=1e-6)


def test_disc_plate_lies_square_to_the_chain_between_the_two_centres():
    upper, lower = np.array([10.0, 0.0]), np.array([10.0, 20.0])
    a, p = disc_plate(upper, lower, anterior=(-1.0, 0.0))
    assert a[0] < p[0] and a[1] == p[1] == 10.0 and np.linalg.norm(a - p) == pytest.approx(20.0)
    assert chain_plates({lv: c for lv, c in arc_centres(10.0).items() if lv != "T4"}, (1.0, 0.0)) == {}


def test_chain_disagrees_only_past_the_limit():
    assert chain_disagrees(40.0, 20.0, 25.0) == ""
    why = chain_disagrees(-5.0, 30.0, 25.0)
    assert "TK from the plates -5°" in why and "bends 30°" in why
    assert chain_disagrees(-5.0, 30.0, 0.0) == "" and chain_disagrees(math.nan, 30.0, 25.0) == ""


def _turned(poly: np.ndarray, deg: float) -> np.ndarray:
    """The body's outline turned `deg` about its centre (both plates off square to the chain, its
    wedge kept)."""
    c, t = poly.mean(axis=0), math.radians(deg)
    R = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    return (poly - c) @ R.T + c


@pytest.mark.parametrize("facing", [1, -1])
def test_plates_misread_against_the_chains_bend_leave_tk_out(facing):
    """T5 and T12 each turned 12° against the kyphosis (short of the 20° that squares a plate to the
    chain) read TK 24° off while the centres stay: the plates' TK lies 36° from the chain's bend, past
    `chain_tk_deg`, and is left out with the reason, the other angles stand; the spine read right
    keeps its TK; 0 turns the check off."""
    spine = toy_spine(tk=40.0, facing=facing)
    turn = {"T5": -12.0, "T12": 12.0}
    right_insts = spine.instances()
    for lv, deg in turn.items():
        spine.polygons[lv] = _turned(spine.polygons[lv], facing * deg)
    insts = spine.instances()
    cfg = {"chain_tk_deg": 25.0}
    off = measure_instances(insts, spine.shape, cfg={"chain_tk_deg": 0.0})
    assert abs(off.angles["TK"].value - spine.expected["TK"]) > 20.0
    m = measure_instances(insts, spine.shape, cfg=cfg)
    assert math.isnan(m.angles["TK"].value) and "the chain of body centres bends" in m.angles["TK"].reason
    for name in ("LL", "SS", "PT"):
        assert m.angles[name].value == pytest.approx(off.angles[name].value, abs=1e-9), name
    right = measure_instances(right_insts, spine.shape, cfg=cfg)
    assert right.angles["TK"].value == pytest.approx(spine.expected["TK"], abs=0.5)
