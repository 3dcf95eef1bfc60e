"""The angle definitions: signs, mirror and rotation behaviour, PI = PT + SS, NaN reasons."""
import math

import numpy as np
import pytest

from spine_d2.angles import ANGLE_NAMES, anterior_sign, endplate_tilt, sagittal_angles
from spine_d2.frames import apply_homography, map_circles, map_endplates


def plate(cx, cy, tilt_deg, half=20.0, facing=1):
    """[anterior, posterior] of an endplate centred at (cx, cy), tilt positive = anterior end up."""
    t = math.radians(tilt_deg)
    d = np.array([facing * math.cos(t), -math.sin(t)]) * half
    c = np.array([cx, cy], dtype=float)
    return [list(c + d), list(c - d)]


def spine(facing=1, tk=40.0, ll=45.0, ll_s1=60.0, ss=38.0):
    """Endplates whose tilts realise the given angles; x grows anterior when facing=+1."""
    t_s1 = -ss
    t_l1 = ll_s1 + t_s1
    t_l5 = t_l1 - ll
    t_t12 = 5.0
    t_t5 = t_t12 - tk
    x = 300.0
    return {
        "T5": {"superior": plate(x, 100, t_t5, facing=facing)},
        "T12": {"inferior": plate(x, 300, t_t12, facing=facing)},
        "L1": {"superior": plate(x, 320, t_l1, facing=facing)},
        "L5": {"inferior": plate(x, 500, t_l5, facing=facing)},
        "S1": {"superior": plate(x, 520, t_s1, facing=facing)},
    }


@pytest.mark.parametrize("facing", [1, -1])
def test_cobb_angles_and_ss_have_the_defined_signs(facing):
    a = sagittal_angles(spine(facing=facing))
    assert a["TK"].value == pytest.approx(40.0)
    assert a["LL"].value == pytest.approx(45.0)
    assert a["LL_S1"].value == pytest.approx(60.0)
    assert a["SS"].value == pytest.approx(38.0)


@pytest.mark.parametrize("facing,rotate", [(1, 0.0), (-1, 0.0), (1, 7.0), (-1, -4.0)])
def test_a_whole_toy_spine_gives_the_angles_it_was_built_with(facing, rotate):
    """Every plate of a stacked spine (tests/measure_factory.py), mirrored and turned: the Cobb
    angles stay, SS and PT move by the turn (counter-clockwise lifts the anterior end)."""
    from measure_factory import toy_spine

    s = toy_spine(tk=35.0, ll=50.0, ll_s1=62.0, ss=41.0, pt=14.0, facing=facing, rotate_deg=rotate)
    got = {k: a.value for k, a in sagittal_angles(s.endplates, s.heads).items()}
    turn = facing * rotate
    want = {"TK": 35.0, "LL": 50.0, "LL_S1": 62.0, "SS": 41.0 - turn, "PT": 14.0 + turn, "PI": 55.0}
    assert got == pytest.approx(want, abs=1e-9)


def test_tilt_is_positive_when_anterior_end_is_higher():
    # y grows downward: anterior end (x=10) at y=0 is above the posterior end at y=10.
    assert endplate_tilt([[10, 0], [0, 10]], sign=1) == pytest.approx(45.0)
    assert endplate_tilt([[-10, 0], [0, 10]], sign=-1) == pytest.approx(45.0)


def test_anterior_sign():
    assert anterior_sign([[[10, 0], [0, 0]]]) == 1
    assert anterior_sign([[[-10, 0], [0, 0]], [[-5, 1], [0, 0]]]) == -1
    with pytest.raises(ValueError):
        anterior_sign([])


@pytest.mark.parametrize("facing", [1, -1])
def test_pelvic_tilt_sign_and_pi_identity(facing):
    ep = spine(facing=facing)
    mid = np.mean(ep["S1"]["superior"], axis=0)
    # Hip axis 120 px below and 30 px anterior of the S1 midpoint: PT = atan(30/120) > 0.
    fh = [[mid[0] + facing * 30.0, mid[1] + 120.0, 25.0]]
    a = sagittal_angles(ep, fh)
    assert a["PT"].value == pytest.approx(math.degrees(math.atan2(30, 120)))
    assert a["PI"].value == pytest.approx(a["PT"].value + a["SS"].value, abs=1e-9)
    # Hip axis posterior of the midpoint: PT negative, identity still exact.
    fh_back = [[mid[0] - facing * 10.0, mid[1] + 120.0, 25.0]]
    b = sagittal_angles(ep, fh_back)
    assert b["PT"].value < 0
    assert b["PI"].value == pytest.approx(b["PT"].value + b["SS"].value, abs=1e-9)


def test_two_femoral_heads_use_their_midpoint():
    ep = spine()
    mid = np.mean(ep["S1"]["superior"], axis=0)
    one = sagittal_angles(ep, [[mid[0] + 20, mid[1] + 100, 24]])
    two = sagittal_angles(ep, [[mid[0] + 10, mid[1] + 95, 24], [mid[0] + 30, mid[1] + 105, 25]])
    assert two["PT"].value == pytest.approx(one["PT"].value)


def test_rotation_keeps_cobb_angles_and_moves_ss_pt_one_for_one():
    ep = spine()
    mid = np.mean(ep["S1"]["superior"], axis=0)
    fh = [[mid[0] + 25, mid[1] + 120, 25]]
    base = sagittal_angles(ep, fh)
    theta = math.radians(3.0)  # counter-clockwise on screen (y down): anterior (+x) end goes up
    c, s = math.cos(theta), math.sin(theta)
    H = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1.0]])
    rot = sagittal_angles(map_endplates(H, ep), map_circles(H, fh))
    for name in ("TK", "LL", "LL_S1"):
        assert rot[name].value == pytest.approx(base[name].value, abs=1e-9)
    assert rot["SS"].value == pytest.approx(base["SS"].value - 3.0, abs=1e-9)
    assert rot["PT"].value == pytest.approx(base["PT"].value + 3.0, abs=1e-9)
    assert rot["PI"].value == pytest.approx(base["PI"].value, abs=1e-9)


def test_missing_inputs_give_nan_with_reasons():
    ep = spine()
    del ep["T5"]
    a = sagittal_angles(ep)
    assert math.isnan(a["TK"].value) and "T5 superior" in a["TK"].reason
    assert a["LL"].measured and a["LL"].reason == ""
    assert math.isnan(a["PT"].value) and "femoral heads" in a["PT"].reason
    assert math.isnan(a["PI"].value)
    none = sagittal_angles({})
    assert set(none) == set(ANGLE_NAMES) and all(not v.measured for v in none.values())


def test_homography_round_trip():
    H = np.array([[1.1, 0.05, 12.0], [-0.02, 0.95, -7.0], [1e-4, -2e-4, 1.0]])
    pts = np.array([[0.0, 0.0], [100.0, 250.0], [640.0, 480.0]])
    back = apply_homography(np.linalg.inv(H), apply_homography(H, pts))
    np.testing.assert_allclose(back, pts, atol=1e-9)
