"""A body's two endplates checked against each other (spine_d2.measure.wedges), alone and in the
pipeline: a misread corner plate gives way to the outline's, a fracture is kept, and L5's doubted
plates are not used to judge S1's."""
import math

import numpy as np
import pytest

from measure_factory import toy_spine

from spine_d2.measure.pipeline import MeasureConfig, measure_instances
from spine_d2.measure.lumbosacral import lumbosacral_angle, plate_tilt
from spine_d2.measure.wedges import (body_wedge, impossible_wedges, neighbours_wedge, plate_turn, plausible_wedges,
                                     steady_weak_plate, wedge_misread)

CORNER_KEYS = {"superior": ("sa", "sp"), "inferior": ("ia", "ip")}


def turned(segment, deg: float) -> np.ndarray:
    """An endplate (two ends, px) turned `deg` counter-clockwise on screen about its midpoint."""
    seg = np.asarray(segment, float)
    mid, t = seg.mean(axis=0), math.radians(deg)
    rot = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    return (seg - mid) @ rot.T + mid


def with_corners(spine, plates: dict | None = None, scores: dict | None = None):
    """The toy spine's instances, every body carrying its true corner points, except the plates
    given in `plates` ((level, side) → two ends, px), scoring 0.9 or as given in `scores`
    ((level, side) → score)."""
    plates, scores = plates or {}, scores or {}
    insts = spine.instances()
    bodies = [i for i in insts if i.class_name != "femoral_head"]
    for inst, (lv, poly) in zip(bodies, spine.polygons.items()):
        for side, seg in spine.endplates[lv].items():
            a, p = plates.get((lv, side), seg)
            ka, kp = CORNER_KEYS[side]
            score = scores.get((lv, side), 0.9)
            inst.corners.update({ka: (*a, score), kp: (*p, score)})
    return insts


def test_a_body_wedge_is_its_two_plates_lordosis():
    """L5 of a toy spine whose lumbar tilts interpolate 45° of LL over L1–L5: its wedge is the
    difference of its plates' tilts; turning the superior plate 20° counter-clockwise on screen
    (its anterior end up, facing +x) adds 20° of lordosis, wherever the picture is turned."""
    spine = toy_spine(ll=45.0, facing=1)
    sides = {k: np.asarray(v, float) for k, v in spine.endplates["L5"].items()}
    anterior, up = np.array([1.0, 0.0]), np.array([0.0, -1.0])
    w = body_wedge(sides, anterior, up)
    assert -10.0 < w < 15.0
    assert body_wedge({**sides, "superior": turned(sides["superior"], 20.0)}, anterior, up) == pytest.approx(w + 20.0)
    assert plate_turn(sides["superior"], turned(sides["superior"], 20.0)) == pytest.approx(20.0)
    assert plate_turn(sides["superior"], sides["superior"][::-1]) == pytest.approx(0.0, abs=1e-6)
    windows = {"lumbar": [-15.0, 25.0]}
    assert wedge_misread(sides, "L5", anterior, up, windows) is None
    assert wedge_misread({**sides, "inferior": turned(sides["inferior"], 40.0)}, "L5", anterior, up,
                         windows) == pytest.approx(w - 40.0)
    assert wedge_misread(sides, "L5", anterior, up, {"lumbar": []}) is None  # off
    assert wedge_misread({"superior": sides["superior"]}, "L5", anterior, up, windows) is None  # one plate


def test_the_corner_plate_its_outline_turns_back_inside_is_replaced():
    anterior, up = np.array([1.0, 0.0]), np.array([0.0, -1.0])
    sup, inf = np.array([[40.0, 0.0], [0.0, 0.0]]), np.array([[40.0, 30.0], [0.0, 30.0]])
    misread = turned(inf, 35.0)
    raw = {"L3": {"superior": sup, "inferior": misread}}
    flags = []
    assert plausible_wedges(raw, {"L3": {"inferior": inf}}, anterior, up, {"lumbar": [-15.0, 25.0]}, flags) == ["L3"]
    assert np.allclose(raw["L3"]["inferior"], inf)
    assert flags == ["L3 corners make its body wedge -35° (outside -15° to 25°): the outline's inferior endplate "
                     "used (0°)"]
    # a thoracic body wedged 22° kyphotic by a corner halfway up its anterior side, its outline square:
    # outside the default window (−20° to 15°), the outline's plate is used; a fracture (the outline
    # wedged alike, within 10°) keeps its corners
    from spine_d2.measure.config import MeasureConfig as Config
    windows = {"thoracic": Config().thoracic_wedge_deg}
    kyphotic = turned(inf, 22.0)
    raw = {"T12": {"superior": sup, "inferior": kyphotic}}
    assert plausible_wedges(raw, {"T12": {"inferior": inf}}, anterior, up, windows) == ["T12"]
    assert np.allclose(raw["T12"]["inferior"], inf)
    raw = {"T12": {"superior": sup, "inferior": kyphotic}}
    assert plausible_wedges(raw, {"T12": {"inferior": turned(kyphotic, -6.0)}}, anterior, up, windows) == []
    assert raw["T12"]["inferior"] is kyphotic
    assert plausible_wedges(raw, {"T12": {"inferior": inf}}, anterior, up, {"thoracic": [-25.0, 15.0]}) == []
    # an outline within 10° of the corners is no second opinion: the plates stay
    raw = {"L3": {"superior": sup, "inferior": misread}}
    near = turned(misread, -8.0)
    assert plausible_wedges(raw, {"L3": {"inferior": near}}, anterior, up, {"lumbar": [-30.0, 25.0]}) == []
    assert raw["L3"]["inferior"] is misread


@pytest.mark.parametrize("facing", [1, -1])
def test_a_misread_l5_plate_gives_way_to_its_outline(facing):
    """L5's inferior corners turned 40° (on a disc or an osteophyte): LL is 40° off without the
    check; with it the outline's plate is used, LL is found back and `notes` says why. S1's correct
    corners are then not handed to the outline by the L5–S1 check (phantom seed 905, film 8).
    The chain check, which would square this plate first in a spine found this surely, is off."""
    spine = toy_spine(ll=45.0, ll_s1=60.0, ss=35.0, facing=facing)
    bad = turned(spine.endplates["L5"]["inferior"], 40.0 * facing)
    insts = lambda: with_corners(spine, {("L5", "inferior"): bad})  # noqa: E731
    m = measure_instances(insts(), spine.shape, cfg={"max_off_chain_deg": 0})
    for name in ("LL", "LL_S1", "SS", "TK"):
        assert m.angles[name].value == pytest.approx(spine.expected[name], abs=0.5), name
    assert "L5 corners make its body wedge" in m.notes and "inferior endplate used" in m.notes
    assert "S1 superior corners make L5-S1" not in m.notes
    off = measure_instances(insts(), spine.shape, cfg={"max_off_chain_deg": 0, "lumbar_wedge_deg": []})
    assert abs(off.angles["LL"].value - spine.expected["LL"]) > 30.0
    assert "wedge" not in off.notes
    # L5's outline misread alike, and S1's outline turned as L5's plate (its corners right): L5's
    # plates stay, noted, and L5 does not judge S1's plate, which the check off hands to the outline
    spine.polygons["L5"] = np.array([*spine.polygons["L5"][:2], *bad[::-1]])
    spine.polygons["S1"] = np.array([*turned(spine.polygons["S1"][:2], 40.0 * facing), *spine.polygons["S1"][2:]])
    both = measure_instances(insts(), spine.shape, cfg={"max_off_chain_deg": 0})
    assert "L5 body wedges" in both.notes and "kept" in both.notes
    assert "S1 superior corners make L5-S1" not in both.notes
    assert both.angles["SS"].value == pytest.approx(spine.expected["SS"], abs=0.5)
    judged = measure_instances(insts(), spine.shape, cfg={"max_off_chain_deg": 0, "lumbar_wedge_deg": [],
                                                          "min_ss_deg": -90.0})
    assert "S1 superior corners make L5-S1" in judged.notes
    assert abs(judged.angles["SS"].value - spine.expected["SS"]) > 20.0  # SS -5°: left out by default


def test_a_fractured_body_whose_outline_wedges_alike_is_kept():
    """L1 wedged 22° kyphotic by a fracture, corners and outline alike: nothing is replaced, the
    angles are those with the check off, and `notes` names the wedge kept."""
    spine = toy_spine(ll=45.0, ll_s1=60.0)
    sup = turned(spine.endplates["L1"]["superior"], -22.0)
    spine.polygons["L1"] = np.array([*sup, *spine.polygons["L1"][2:]])
    on = measure_instances(with_corners(spine, {("L1", "superior"): sup}), spine.shape)
    off = measure_instances(with_corners(spine, {("L1", "superior"): sup}), spine.shape,
                            cfg={"lumbar_wedge_deg": []})
    assert "L1 body wedges" in on.notes and "kept" in on.notes
    for name, a in on.angles.items():
        assert a.value == pytest.approx(off.angles[name].value, abs=1e-9, nan_ok=True), name


@pytest.mark.parametrize("deg", [40.0, -60.0])
def test_a_body_wedged_more_than_any_body_leaves_the_angles_taking_its_plates_out(deg):
    """L5's inferior plate turned by `deg` in corners and outline alike: at 40° a fracture, kept as
    such; at 60° more than any body wedges (`MAX_WEDGE_DEG`), so LL, which takes the plate, is left
    out saying why, and the angles that do not take it are as with the check off."""
    spine = toy_spine(ll=45.0, ll_s1=60.0)
    inf = turned(spine.endplates["L5"]["inferior"], deg)
    spine.polygons["L5"] = np.array([*spine.polygons["L5"][:2], *inf[::-1]])
    square = {"max_off_chain_deg": 0}  # not squared to the chain through its neighbours either
    on = measure_instances(with_corners(spine, {("L5", "inferior"): inf}), spine.shape, cfg=square)
    off = measure_instances(with_corners(spine, {("L5", "inferior"): inf}), spine.shape,
                            cfg={**square, "max_wedge_deg": 0})
    assert off.angles["LL"].measured and abs(off.angles["LL"].value - spine.expected["LL"]) > 30.0
    if abs(deg) < 45.0:
        assert "L5 body wedges" in on.notes and "kept" in on.notes
        assert on.angles["LL"].value == pytest.approx(off.angles["LL"].value)
        return
    assert not on.angles["LL"].measured and "more than any body does (45°)" in on.angles["LL"].reason
    assert "kept" not in on.notes
    for name in ("TK", "LL_S1", "SS", "PT", "PI"):
        assert on.angles[name].value == pytest.approx(off.angles[name].value, abs=1e-9, nan_ok=True), name
    anterior, up = np.array([1.0, 0.0]), np.array([0.0, -1.0])
    sides = {side: np.asarray(seg, float) for side, seg in spine.endplates["L5"].items()}
    assert impossible_wedges({"L5": sides}, anterior, up) == {}
    assert list(impossible_wedges({"L5": {**sides, "inferior": inf}}, anterior, up)) == ["L5"]
    assert impossible_wedges({"L5": {**sides, "inferior": inf}}, anterior, up, max_wedge=0) == {}


def test_wedge_windows_are_checked():
    with pytest.raises(ValueError, match="lumbar_wedge_deg"):
        MeasureConfig.from_cfg({"lumbar_wedge_deg": [25.0, -15.0]})
    with pytest.raises(ValueError, match="thoracic_wedge_deg"):
        MeasureConfig.from_cfg({"thoracic_wedge_deg": [1.0]})
    with pytest.raises(ValueError, match="max_wedge_deg must be degrees over 0"):
        MeasureConfig.from_cfg({"max_wedge_deg": -5.0})
    assert MeasureConfig.from_cfg({"thoracic_wedge_deg": []}).thoracic_wedge_deg == []
    with pytest.raises(ValueError, match="weak_corner_scores: no steadied plate for T7"):
        MeasureConfig.from_cfg({"weak_corner_scores": {"T7": 0.4}})
    assert MeasureConfig.from_cfg({"weak_corner_scores": {"L5": 0.0}}).weak_corner_scores == {"T5": 0.4, "L5": 0.0}
    # through a run's detectron2 config, whose keys come back lower-cased
    from spine_d2.engine.config import from_yacs, to_yacs
    m = MeasureConfig.from_cfg(from_yacs(to_yacs({"weak_corner_scores": {"T5": 0.3, "L5": 0.2}})))
    assert m.weak_corner_scores == {"T5": 0.3, "L5": 0.2}
    with pytest.raises(ValueError, match="weak_plate_wedge_from: T7: not a steadied plate's level"):
        MeasureConfig.from_cfg({"weak_plate_wedge_from": {"T7": ["T8"]}})
    with pytest.raises(ValueError, match="weak_plate_wedge_from: S1: .*not a vertebral body"):
        MeasureConfig.from_cfg({"weak_plate_wedge_from": {"L5": ["S1"]}})
    m = MeasureConfig.from_cfg(from_yacs(to_yacs({"weak_plate_wedge_from": {"T5": ["T6"], "L5": ["L4"]}})))
    assert m.weak_plate_wedge_from == {"T5": ["T6"], "L5": ["L4"]}


@pytest.mark.parametrize("facing", [1, -1])
def test_t5_wedged_lordotic_takes_its_superior_plate_parallel_to_its_inferior(facing):
    """T5's superior plate misread 25° lordotic by its corners and its outline alike (a weak upper
    thoracic body): no thoracic body wedges so, and no outline mends it, so TK takes T5's superior
    plate parallel to its inferior one, off by T5's own wedge (a few degrees) instead of 25°. A
    kyphotic wedge as large (a fracture) is kept. The chain check, which would square a plate this
    far off a surely found chain first, is off."""
    spine = toy_spine(tk=40.0, facing=facing)
    sup = np.asarray(spine.endplates["T5"]["superior"], float)

    def measured(turn: float, **cfg):
        bad = turned(sup, turn * facing)
        spine.polygons["T5"] = np.array([*bad, *spine.polygons["T5"][2:]])
        return measure_instances(with_corners(spine, {("T5", "superior"): bad}), spine.shape,
                                 cfg={"max_off_chain_deg": 0, **cfg})

    m = measured(25.0)
    assert "T5 body wedges" in m.notes and "superior endplate taken parallel to its inferior one" in m.notes
    assert m.angles["TK"].value == pytest.approx(spine.expected["TK"], abs=4.0)
    off = measured(25.0, thoracic_wedge_deg=[])
    assert off.angles["TK"].value == pytest.approx(spine.expected["TK"] - 25.0, abs=1.0)
    fracture = measured(-30.0)
    assert "taken parallel" not in fracture.notes and "kept" in fracture.notes
    assert fracture.angles["TK"].value == pytest.approx(spine.expected["TK"] + 30.0, abs=1.0)
    tilts = [m.endplates["T5"][s] for s in ("superior", "inferior")]
    assert plate_turn(*tilts) == pytest.approx(0.0, abs=1e-6)
    assert np.allclose(m.endplates["T5"]["superior"].mean(axis=0), sup.mean(axis=0), atol=1.0)  # where it was


@pytest.mark.parametrize("facing", [1, -1])
def test_a_weak_plate_is_averaged_with_the_other_turned_by_a_typical_wedge(facing):
    """A body's inferior plate level and its superior one rising 10° anteriorly, in a picture facing
    either way: with its corners scoring 0.2 the superior plate turns to the mean of its 10° and the
    inferior's 0° turned by a −4° wedge, 3°, about its midpoint and keeping its length; scoring 0.5,
    with no score (no corners) or with the rule off (0), nothing changes."""
    anterior, up = np.array([float(facing), 0.0]), np.array([0.0, -1.0])
    inferior = np.array([[100.0 - 15 * facing, 300.0], [100.0 + 15 * facing, 300.0]])
    superior = turned(np.array([[100.0 - 15 * facing, 280.0], [100.0 + 15 * facing, 280.0]]), 10.0 * facing)
    assert plate_tilt(superior, anterior, up) == pytest.approx(10.0)
    for score, min_score in ((0.5, 0.4), (None, 0.4), (0.2, 0.0)):
        sides = {"superior": superior.copy(), "inferior": inferior.copy()}
        assert not steady_weak_plate(sides, "T5", "superior", score, -4.0, anterior, up, min_score)
        assert np.array_equal(sides["superior"], superior)
    sides, flags = {"superior": superior.copy(), "inferior": inferior.copy()}, []
    assert steady_weak_plate(sides, "T5", "superior", 0.2, -4.0, anterior, up, 0.4, flags=flags)
    assert plate_tilt(sides["superior"], anterior, up) == pytest.approx(3.0)
    assert np.allclose(sides["superior"].mean(axis=0), superior.mean(axis=0))
    assert np.linalg.norm(np.subtract(*sides["superior"])) == pytest.approx(np.linalg.norm(np.subtract(*superior)))
    assert np.array_equal(sides["inferior"], inferior)
    assert flags and "T5 superior corners score 0.20" in flags[0]
    # an inferior plate steadied by its superior one, which lies `wedge` above it: 6° lordotic, as L5
    sides = {"superior": superior.copy(), "inferior": inferior.copy()}
    assert steady_weak_plate(sides, "L5", "inferior", 0.2, 6.0, anterior, up, 0.4, flags=flags)
    assert plate_tilt(sides["inferior"], anterior, up) == pytest.approx(2.0)
    assert "6° lordotic wedge" in flags[-1]


@pytest.mark.parametrize("facing", [1, -1])
def test_plates_standing_near_square_to_the_spines_axis_wedge_as_lines(facing):
    """An L5 under a lordosis of ~90° (its plates nearly along the spine's axis): its superior plate
    turned 93° from level and its inferior 85°, one each side of the ±90° edge of `plate_tilt`.
    The body wedges 8° (not −172°: a plate is a line), the L5–S1 segment with an S1 plate at 75°
    lordoses 10°, and a weak inferior plate steadied by the superior one turned by a 6° wedge lies
    between the two (86°), not across the picture (−1°)."""
    anterior, up = np.array([float(facing), 0.0]), np.array([0.0, -1.0])
    level = np.array([[100.0 - 15 * facing, 300.0], [100.0 + 15 * facing, 300.0]])
    sides = {"superior": turned(level, 93.0 * facing), "inferior": turned(level + [0.0, 30.0], 85.0 * facing)}
    assert plate_tilt(sides["superior"], anterior, up) == pytest.approx(-87.0)  # 93° seen from the other end
    assert body_wedge(sides, anterior, up) == pytest.approx(8.0)
    assert wedge_misread(sides, "L5", anterior, up, {"lumbar": [-15.0, 25.0]}) is None
    s1 = turned(level + [0.0, 60.0], 75.0 * facing)
    assert lumbosacral_angle(sides["inferior"], s1, anterior, up) == pytest.approx(10.0)
    assert lumbosacral_angle(sides["superior"], s1, anterior, up) == pytest.approx(18.0)
    assert steady_weak_plate(sides, "L5", "inferior", 0.1, 6.0, anterior, up, 0.3)
    assert plate_turn(sides["inferior"], turned(level, 86.0 * facing)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("facing", [1, -1])
def test_tk_takes_a_weak_t5_superior_plate_halfway_to_its_inferior_one(facing):
    """T5's superior corners misread 12° lordotic (inside the thoracic wedge window, so no other rule
    mends them): scoring 0.3 they are averaged with T5's inferior plate, and TK is off by about half
    as much, noted; scoring 0.9, or with T5's `weak_corner_scores` 0, TK is off by the whole 12°."""
    spine = toy_spine(tk=40.0, facing=facing)
    bad = turned(spine.endplates["T5"]["superior"], 12.0 * facing)
    spine.polygons["T5"] = np.array([*bad, *spine.polygons["T5"][2:]])

    def tk(score: float, **cfg):
        insts = with_corners(spine, {("T5", "superior"): bad}, {("T5", "superior"): score})
        m = measure_instances(insts, spine.shape, cfg={"max_off_chain_deg": 0, **cfg})
        return m.angles["TK"].value - spine.expected["TK"], m.notes

    err, notes = tk(0.3)
    assert "T5 superior corners score 0.30" in notes
    assert -7.5 < err < -4.5
    for err, notes in (tk(0.9), tk(0.3, weak_corner_scores={"T5": 0.0})):
        assert err == pytest.approx(-12.0, abs=1.0) and "corners score" not in notes


def test_the_neighbours_wedge_is_the_mean_of_those_read_inside_their_window():
    """T6 wedged 6° kyphotic and T7 8°: their mean, −7°; T7 misread to 30° lordotic (outside the
    thoracic window) is not taken, nor a body with one plate or none; with none left, None."""
    anterior, up = np.array([1.0, 0.0]), np.array([0.0, -1.0])
    level = np.array([[85.0, 300.0], [115.0, 300.0]])

    def body(wedge: float) -> dict:
        return {"superior": turned(level - [0.0, 20.0], wedge), "inferior": level.copy()}

    windows = {"thoracic": [-20.0, 15.0]}
    raw = {"T6": body(-6.0), "T7": body(-8.0), "T8": {"superior": level.copy()}}
    assert neighbours_wedge(raw, ("T6", "T7"), anterior, up, windows) == pytest.approx(-7.0)
    assert neighbours_wedge({**raw, "T7": body(30.0)}, ("T6", "T7"), anterior, up, windows) == pytest.approx(-6.0)
    assert neighbours_wedge(raw, ("T8", "T9"), anterior, up, windows) is None
    assert neighbours_wedge(raw, (), anterior, up, windows) is None


@pytest.mark.parametrize("facing", [1, -1])
def test_a_weak_t5_plate_takes_its_neighbours_wedge_not_a_typical_one(facing):
    """A flat thorax (TK 15°: the toy spreads it evenly, each thoracic body wedging 1° kyphotic) with
    T5's superior corners read right but scoring 0.3: steadied by T5's inferior plate turned by
    T6–T7's 1° wedge, TK stays true and the note names the neighbours; turned by the typical 4°
    (`weak_plate_wedge_from` giving T5 no bodies), TK reads 1.5° steeper."""
    spine = toy_spine(tk=15.0, facing=facing)

    def tk(**cfg):
        insts = with_corners(spine, scores={("T5", "superior"): 0.3})
        m = measure_instances(insts, spine.shape, cfg={"max_off_chain_deg": 0, **cfg})
        return m.angles["TK"].value - spine.expected["TK"], m.notes

    err, notes = tk()
    assert err == pytest.approx(0.0, abs=0.05)
    assert "turned by T6–T7's mean 1° kyphotic wedge" in notes
    err, notes = tk(weak_plate_wedge_from={"T5": []})
    assert err == pytest.approx(1.5, abs=0.05)
    assert "turned by a typical 4° kyphotic wedge" in notes


@pytest.mark.parametrize("facing", [1, -1])
def test_neighbours_read_lordotic_give_a_weak_t5_plate_no_wedge(facing):
    """The flat thorax above with T7's superior plate misread 6° lordotic (its body then wedging 5°
    lordotic, T6's 1° kyphotic: their mean 2° lordotic, which no thoracic body wedges): T5's weak
    superior plate is steadied with no wedge, TK reads 0.5° flatter, and the note says why."""
    spine = toy_spine(tk=15.0, facing=facing)
    bad = turned(spine.endplates["T7"]["superior"], 6.0 * facing)
    insts = with_corners(spine, {("T7", "superior"): bad}, {("T5", "superior"): 0.3})
    m = measure_instances(insts, spine.shape, cfg={"max_off_chain_deg": 0})
    assert m.angles["TK"].value - spine.expected["TK"] == pytest.approx(-0.5, abs=0.05)
    assert "turned by no wedge (T6–T7 read 2° the other way)" in m.notes


@pytest.mark.parametrize("facing", [1, -1])
def test_ll_takes_a_weak_l5_inferior_plate_halfway_to_its_superior_one(facing):
    """L5's inferior corners misread 10° (inside the lumbar wedge window): scoring 0.2 they are
    averaged with L5's superior plate turned by a typical 6° lordotic wedge, and LL is off by about
    half as much; scoring 0.9, LL is off by the whole 10°. TK does not move."""
    spine = toy_spine(ll=45.0, facing=facing)
    bad = turned(spine.endplates["L5"]["inferior"], 10.0 * facing)
    spine.polygons["L5"] = np.array([*spine.polygons["L5"][:2], *bad[::-1]])

    def measured(score: float):
        insts = with_corners(spine, {("L5", "inferior"): bad}, {("L5", "inferior"): score})
        return measure_instances(insts, spine.shape, cfg={"max_off_chain_deg": 0})

    weak, sure = measured(0.2), measured(0.9)
    assert "L5 inferior corners score 0.20" in weak.notes
    assert abs(sure.angles["LL"].value - spine.expected["LL"]) == pytest.approx(10.0, abs=1.0)
    assert 3.0 < abs(weak.angles["LL"].value - spine.expected["LL"]) < 7.0
    assert weak.angles["TK"].value == pytest.approx(sure.angles["TK"].value, abs=1e-9)


@pytest.mark.parametrize("facing", [1, -1])
def test_an_angle_whose_end_plate_comes_from_faint_corners_is_left_out(facing):
    """TK with T5's superior or T12's inferior corners scoring under 0.2 (`faint_plate_scores`),
    LL with L1's superior or L5's inferior ones, is left out, saying which plate; the other angles
    stay (LL_S1 takes L1's plate too, but is judged only where named). At 0.2 or over, switched off,
    with the corners ignored or with implausible angles measured, nothing is left out."""
    spine = toy_spine(tk=40.0, ll=45.0, facing=facing)

    def angles(scores: dict, **cfg):
        return measure_instances(with_corners(spine, scores=scores), spine.shape, cfg=cfg).angles

    for plate in (("T5", "superior"), ("T12", "inferior")):
        a = angles({plate: 0.15})
        assert not a["TK"].measured and a["TK"].reason == f"{plate[0]} {plate[1]} corners score 0.15 (< 0.2): a faint plate"
        assert a["LL"].measured and a["SS"].measured
    a = angles({("L1", "superior"): 0.1})
    assert not a["LL"].measured and "L1 superior corners score 0.10" in a["LL"].reason
    assert a["TK"].measured and a["LL_S1"].value == pytest.approx(spine.expected["LL_S1"], abs=1.0)
    assert not angles({("L1", "superior"): 0.1}, faint_plate_scores={"LL_S1": 0.2})["LL_S1"].measured
    assert not angles({("L5", "inferior"): 0.05})["LL"].measured
    for kept in (angles({("T5", "superior"): 0.2}),
                 angles({("T5", "superior"): 0.15}, faint_plate_scores={"TK": 0.0}),
                 angles({("T5", "superior"): 0.15}, corners="ignore"),
                 angles({("T5", "superior"): 0.15}, on_implausible="measure")):
        assert kept["TK"].value == pytest.approx(spine.expected["TK"], abs=1.0)
    # an outline's annotation has no corners to judge
    assert measure_instances(spine.instances(), spine.shape).angles["TK"].measured


def test_faint_plate_scores_are_checked():
    with pytest.raises(ValueError, match="faint_plate_scores: no angle TL"):
        MeasureConfig.from_cfg({"faint_plate_scores": {"TL": 0.2}})
    from spine_d2.engine.config import from_yacs, to_yacs
    m = MeasureConfig.from_cfg(from_yacs(to_yacs({"faint_plate_scores": {"TK": 0.3, "LL_S1": 0.2}})))
    assert m.faint_plate_scores == {"TK": 0.3, "LL": 0.2, "LL_S1": 0.2}  # merged over the defaults
