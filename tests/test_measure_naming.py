"""Level names from each class map, from labels, and flags for implausible sequences."""

import numpy as np
import pytest

from measure_factory import toy_spine

from spine_d2.levels import LEVEL_INDEX, LUMBAR
from spine_d2.measure.instances import Instance
from spine_d2.measure.naming import name_levels, ordinal
from spine_d2.polygons import rasterize

ALL = set(toy_spine().polygons)


def named(naming, insts):
    """level → the true level of the instance given that name (from its polygon)."""
    spine = toy_spine()
    truth = {id(p): lv for lv, p in spine.polygons.items()}
    out = {}
    for level, i in naming.levels.items():
        c = insts[i].centre()
        out[level] = min(spine.polygons, key=lambda lv: np.linalg.norm(spine.polygons[lv].mean(0) - c))
    return out, truth


@pytest.mark.parametrize("classes", ["default", "two_class", "per_level"])
def test_each_class_map_names_every_level_right(classes):
    insts = toy_spine().instances(classes=classes)
    naming = name_levels(insts)
    got, _ = named(naming, insts)
    expected = ALL - ({"S1"} if classes == "two_class" else set())
    assert set(got) == expected
    assert all(k == v for k, v in got.items())
    assert not naming.uncertain
    heads = 0 if classes == "two_class" else 2
    assert len(naming.femoral_heads) == heads


def test_labels_are_used_when_every_vertebra_has_one():
    insts = toy_spine().instances(classes="two_class", labels=True)
    naming = name_levels(insts)
    assert naming.source == "given levels"
    assert {insts[i].label for i in naming.levels.values()} == set(naming.levels)


def test_thoracic_counted_up_from_t12_when_the_top_is_out_of_view():
    spine = toy_spine()
    insts = [i for i in spine.instances(classes="two_class")]
    top = max(insts, key=lambda i: -i.centre()[1])  # lowest y = highest on screen
    insts = [i for i in insts if i is not top]
    naming = name_levels(insts)
    got, _ = named(naming, insts)
    assert all(k == v for k, v in got.items()) and "T4" not in got and "T12" in got


def test_lumbar_counted_up_from_the_sacrum_without_thoracic():
    insts = [i for i in toy_spine().instances() if i.region != "thoracic"]
    naming = name_levels(insts)
    got, _ = named(naming, insts)
    assert set(got) == set(LUMBAR) | {"S1"} and all(k == v for k, v in got.items())


def test_a_missing_level_is_a_gap_not_a_rename():
    spine = toy_spine()
    insts = [i for i in spine.instances() if not np.allclose(i.centre(), spine.polygons["T8"].mean(0), atol=3)]
    naming = name_levels(insts)
    got, _ = named(naming, insts)
    assert "T8" not in got and all(k == v for k, v in got.items())
    top = sorted(LEVEL_INDEX[lv] for lv in got)[0]
    before = LEVEL_INDEX["T8"] - top  # T8's place from the top: the gap follows the vertebra above it
    assert any(f"between the {ordinal(before)} and {ordinal(before + 1)} vertebra" in f for f in naming.flags), naming.flags


def test_ordinals_are_english():
    got = [ordinal(n) for n in (1, 2, 3, 4, 10, 11, 12, 13, 14, 21, 22, 23, 101, 111, 112)]
    assert got == ["1st", "2nd", "3rd", "4th", "10th", "11th", "12th", "13th", "14th", "21st", "22nd", "23rd",
                   "101st", "111th", "112th"]


def relabel(insts, spine, changes):
    """Give the instances at the levels in `changes` another class (a model's wrong region)."""
    for inst in insts:
        for level, cls in changes.items():
            if np.allclose(inst.centre(), spine.polygons[level].mean(0), atol=3):
                inst.class_name = cls
    return insts


def test_counting_up_from_s1_overrules_wrong_region_classes():
    spine = toy_spine()
    insts = relabel(spine.instances(), spine, {"T11": "lumbar", "T12": "lumbar", "L3": "thoracic"})
    naming = name_levels(insts)
    got, _ = named(naming, insts)
    assert naming.source == "counted up from S1"
    assert set(got) == ALL and all(k == v for k, v in got.items())
    assert not naming.uncertain
    assert any("T11, T12, L3 disagrees with the count up from S1" in f for f in naming.flags), naming.flags


def test_an_l5_taken_for_the_sacrum_and_also_found_lumbar_is_l5_when_s1_lies_below_it():
    spine = toy_spine()
    insts = relabel(spine.instances(), spine, {"L5": "sacrum"})  # a steep L5 classed sacrum
    l5 = next(i for i in insts if np.allclose(i.centre(), spine.polygons["L5"].mean(0), atol=3))
    naming = name_levels(insts)  # the top sacrum instance is S1: every level named one too low
    got, _ = named(naming, insts)
    assert got["S1"] == "L5" and got["L1"] == "T12"
    l5.also = {"lumbar": 0.4}  # the model also found it as a lumbar body (a duplicate removed)
    naming = name_levels(insts)
    got, _ = named(naming, insts)
    assert set(got) == ALL and all(k == v for k, v in got.items())
    assert any("also found as lumbar" in f for f in naming.flags), naming.flags
    without_s1 = [i for i in insts if not np.allclose(i.centre(), spine.polygons["S1"].mean(0), atol=3)]
    got, _ = named(name_levels(without_s1), without_s1)  # no sacrum below it: it stays S1
    assert got["S1"] == "L5"


def test_a_weak_body_below_a_steep_l5_that_the_model_also_read_as_sacrum_is_s1():
    """A steep L5 classed sacrum (also read lumbar), and S1 below it found only as a weak lumbar body
    with a sacrum reading (a duplicate removed): S1 is that body, the levels above are right. Without
    the sacrum reading the weak body is a stray below the sacrum, unnamed, as before."""
    spine = toy_spine()
    insts = relabel(spine.instances(), spine, {"L5": "sacrum", "S1": "lumbar"})
    l5 = next(i for i in insts if np.allclose(i.centre(), spine.polygons["L5"].mean(0), atol=3))
    s1 = next(i for i in insts if np.allclose(i.centre(), spine.polygons["S1"].mean(0), atol=3))
    l5.score, l5.also = 0.8, {"lumbar": 0.66}
    s1.score, s1.also = 0.26, {}
    got, _ = named(name_levels(insts), insts)  # the weak body dropped: L5 is taken for S1
    assert got["S1"] == "L5" and got["L1"] == "T12"
    s1.also = {"sacrum": 0.19}
    naming = name_levels(insts)
    got, _ = named(naming, insts)
    assert set(got) == ALL and all(k == v for k, v in got.items()), got
    assert any("also found as sacrum" in f for f in naming.flags) and any("also found as lumbar" in f for f in naming.flags)


def test_a_doubted_sacrum_is_l5_when_the_sure_classes_above_it_say_so():
    """A steep L5 classed sacrum, doubted (score < 0.5), no lumbar reading: counted up from it as S1,
    T12 would be L1 and its thoracic class would disagree; as L5, every sure class agrees. It is L5,
    with S1 below it or without. A sure sacrum, a disagreeing class the model doubts, or the rule
    turned off leave it S1, as before."""
    spine = toy_spine()
    insts = relabel(spine.instances(), spine, {"L5": "sacrum"})
    l5 = next(i for i in insts if np.allclose(i.centre(), spine.polygons["L5"].mean(0), atol=3))
    without_s1 = [i for i in insts if not np.allclose(i.centre(), spine.polygons["S1"].mean(0), atol=3)]
    l5.score = 0.4
    for found in (insts, without_s1):
        naming = name_levels(found)
        got, _ = named(naming, found)
        assert set(got) == ALL - ({"S1"} if found is without_s1 else set()), got
        assert all(k == v for k, v in got.items()), got
        assert any("agree better with its being L5" in f for f in naming.flags), naming.flags
    assert named(name_levels(insts, l5_by_classes=False), insts)[0]["S1"] == "L5"
    l5.score = 0.9  # sure of the sacrum: the count from it wins over the classes
    assert named(name_levels(insts), insts)[0]["S1"] == "L5"
    l5.score = 0.4
    t12 = next(i for i in insts if np.allclose(i.centre(), spine.polygons["T12"].mean(0), atol=3))
    t12.score = 0.3  # the one class against the count is doubted: no evidence either way
    assert named(name_levels(insts), insts)[0]["S1"] == "L5"


def test_the_top_of_two_sacrum_instances_is_l5_by_the_classes_under_a_higher_score():
    """Two sacrum instances, the top one a steep L5 scoring 0.65 (sure, but not very): alone it
    would be S1 (only a doubted one, under 0.5, is named by the classes); with another sacrum
    instance right below it, the classes above decide under 0.8 (`PAIRED_SACRUM`). A top one
    scoring 0.9 stays S1, and so does a top one the classes agree with as S1."""
    spine = toy_spine()
    insts = relabel(spine.instances(), spine, {"L5": "sacrum"})
    l5 = next(i for i in insts if np.allclose(i.centre(), spine.polygons["L5"].mean(0), atol=3))
    s1 = next(i for i in insts if np.allclose(i.centre(), spine.polygons["S1"].mean(0), atol=3))
    l5.score, s1.score = 0.65, 0.3
    naming = name_levels(insts)
    got, _ = named(naming, insts)
    assert set(got) == ALL and all(k == v for k, v in got.items()), got
    assert any("scores 0.65 and the classes above it agree better with its being L5" in f for f in naming.flags)
    alone = [i for i in insts if i is not s1]
    assert named(name_levels(alone), alone)[0]["S1"] == "L5"  # no second sacrum: counted from it
    l5.score = 0.9
    assert named(name_levels(insts), insts)[0]["S1"] == "L5"
    l5.score = 0.65
    relabel(insts, spine, {"T12": "lumbar", "L5": "sacrum"})  # five lumbar above it: S1 by the classes too
    assert named(name_levels(insts), insts)[0]["S1"] == "L5"


def test_a_sacrum_split_in_two_stays_s1_when_the_model_is_sure_of_it_or_l5_lies_above():
    """The model's sacrum in two instances, the top one (S1) also read faintly as lumbar: naming it
    L5 would name every level one too high."""
    spine = toy_spine()
    insts = spine.instances()
    s1 = next(i for i in insts if np.allclose(i.centre(), spine.polygons["S1"].mean(0), atol=3))
    l5 = next(i for i in insts if np.allclose(i.centre(), spine.polygons["L5"].mean(0), atol=3))
    step = s1.centre() - l5.centre()
    lower = Instance(class_name="sacrum", score=0.3, polygon=spine.polygons["S1"] + step)  # the rest of the sacrum
    split = insts + [lower]
    s1.score, s1.also = 1.0, {"lumbar": 0.1}  # sure of the sacrum: a faint lumbar reading
    got, _ = named(name_levels(split), split)
    assert got["S1"] == "S1" and all(k == v for k, v in got.items()), got
    s1.score, s1.also = 0.5, {"lumbar": 0.3}  # unsure of both, but L1-L5 lie above it as lumbar bodies
    naming = name_levels(split)
    got, _ = named(naming, split)
    assert got["S1"] == "S1" and all(k == v for k, v in got.items()), got
    assert not any("also found as lumbar" in f for f in naming.flags), naming.flags
    relabel(insts, spine, {"L1": "thoracic"})  # four lumbar by class above it: then it may be L5
    assert any("also found as lumbar" in f for f in name_levels(split).flags)


def test_six_lumbar_by_class_is_flagged_and_uncertain_when_classes_are_trusted():
    spine = toy_spine()
    insts = relabel(spine.instances(), spine, {"T12": "lumbar"})
    naming = name_levels(insts, anchor="regions")
    assert any("6 lumbar" in f for f in naming.flags)
    assert "L1" in naming.uncertain and "implausible" in naming.uncertain["L5"]


def test_six_lumbar_bodies_and_no_sacrum_hold_an_s1_or_a_t12_at_the_end_scoring_lower():
    """No sacrum instance, six lumbar bodies right below the thoracic ones: the model read S1 (at
    the bottom) or T12 (at the top) as lumbar, and doubts the one it misread more. Off, or named
    by the classes alone, the sequence is implausible and its levels uncertain, as before."""
    spine = toy_spine()

    def at(insts, lv):
        return next(i for i in insts if np.allclose(i.centre(), spine.polygons[lv].mean(0), atol=3))

    insts = relabel(spine.instances(), spine, {"S1": "lumbar"})
    at(insts, "S1").score = 0.6
    naming = name_levels(insts)
    got, _ = named(naming, insts)
    assert set(got) == ALL and all(k == v for k, v in got.items()), got
    assert not naming.uncertain and any("the lowest taken as S1" in f for f in naming.flags), naming.flags
    off = name_levels(insts, lumbar_s1=False)
    assert "S1" not in off.levels and "implausible" in off.uncertain["L5"]
    no_s1 = [i for i in relabel(spine.instances(), spine, {"T12": "lumbar"})
             if not np.allclose(i.centre(), spine.polygons["S1"].mean(0), atol=3)]
    at(no_s1, "T12").score = 0.7  # T12 read as lumbar, S1 not found: the top one is the doubted end
    naming = name_levels(no_s1)
    got, _ = named(naming, no_s1)
    assert set(got) == ALL - {"S1"} and all(k == v for k, v in got.items()), got
    assert any("the top one taken as T12" in f for f in naming.flags), naming.flags


def test_six_lumbar_bodies_above_a_doubted_sacrum_hold_an_s1_read_lumbar_when_the_lowest_scores_lower():
    """S1 read as lumbar (doubted), a doubted sacrum instance below it (a lower sacral segment):
    counted up from that instance every level would be one too low. The lowest of the six, sure,
    scoring lower than the top one names it S1; the top one scoring lower names it T12 (the count,
    as before), and so do a faint lowest one, a sacrum instance the image's edge cuts (S1 seen in
    part) and a sure one."""
    spine = toy_spine()

    def at(insts, lv):
        return next(i for i in insts if np.allclose(i.centre(), spine.polygons[lv].mean(0), atol=3))

    insts = relabel(spine.instances(), spine, {"S1": "lumbar"})
    s1 = at(insts, "S1")
    step = s1.centre() - at(insts, "L5").centre()
    lower = Instance(class_name="sacrum", score=0.2, polygon=spine.polygons["S1"] + 0.8 * step)
    s1.score = 0.7
    insts = insts + [lower]
    naming = name_levels(insts, image_shape=spine.shape)
    got, _ = named(naming, insts)
    assert set(got) == ALL and all(k == v for k, v in got.items()), got
    assert naming.levels["S1"] == insts.index(s1) and lower.level is None
    assert any("the lowest, scoring lower than the top one, taken as S1" in f for f in naming.flags), naming.flags
    shifted = named(name_levels(insts, lumbar_s1=False), insts)[0]  # off: counted up from the segment
    assert shifted["L5"] == "S1" and shifted["L1"] == "L2", shifted
    s1.score = 0.3  # a faint find at the bottom: as likely a faint L5, counted up from the segment
    assert named(name_levels(insts), insts)[0]["L1"] == "L2"
    s1.score = 0.7
    edge = (int(np.ceil(lower.polygon[:, 1].max())) + 1, spine.shape[1])  # the image ends at its bottom
    assert named(name_levels(insts, image_shape=edge), insts)[0]["L1"] == "L2"
    lower.score = 0.9  # a sure sacrum instance: counted up from it
    assert named(name_levels(insts), insts)[0]["L1"] == "L2"

    t12 = relabel(spine.instances(), spine, {"T12": "lumbar"})  # T12 read lumbar, S1 doubted
    at(t12, "T12").score, at(t12, "S1").score = 0.7, 0.3
    naming = name_levels(t12)
    got, _ = named(naming, t12)
    assert set(got) == ALL and all(k == v for k, v in got.items()), got
    assert not any("taken as S1" in f for f in naming.flags), naming.flags


def test_without_sacrum_a_stray_class_is_overruled_and_many_make_levels_uncertain():
    spine = toy_spine()
    no_sacrum = [i for i in spine.instances() if i.region != "sacrum"]
    insts = relabel(no_sacrum, spine, {"T7": "lumbar"})
    naming = name_levels(insts)
    got, _ = named(naming, insts)
    assert naming.source == "region classes"
    assert set(got) == ALL - {"S1"} and all(k == v for k, v in got.items())
    assert any("regions out of order" in f and "1 class(es) overruled" in f for f in naming.flags)
    assert not naming.uncertain

    insts = relabel([i for i in spine.instances() if i.region != "sacrum"], spine,
                    {"T5": "lumbar", "T7": "lumbar", "T9": "lumbar", "L2": "thoracic"})
    naming = name_levels(insts)
    assert naming.uncertain and all("inconsistent" in why for why in naming.uncertain.values())


def test_a_sacrum_above_a_vertebra_leaves_every_level_uncertain():
    spine = toy_spine()
    insts = relabel(spine.instances(), spine, {"L2": "sacrum"})
    naming = name_levels(insts)
    assert any("sacrum instance lies above a vertebra" in f for f in naming.flags)
    assert "L1" in naming.uncertain and "T5" in naming.uncertain


@pytest.mark.parametrize("score,flag", [
    (0.1, "scoring 0.10 below a sure sacrum: not named"),
    (0.9, "scoring 0.90 below a sure sacrum, with five lumbar bodies above it: a sacral segment or a stray"),
    (1.0, "scoring 1.00 below a sure sacrum, with five lumbar bodies above it: a sacral segment or a stray")])
def test_a_body_below_s1_with_the_whole_lumbar_spine_above_is_left_unnamed_whatever_its_score(score, flag):
    spine = toy_spine()
    insts = spine.instances()
    s1 = next(i for i in insts if i.region == "sacrum")
    below = Instance("lumbar", polygon=spine.polygons["S1"] + [0.0, 60.0], score=score)  # a sacral segment
    insts.append(below)
    naming = name_levels(insts)
    got, _ = named(naming, insts)
    assert set(got) == ALL and all(k == v for k, v in got.items()) and not naming.uncertain
    assert any(flag in f for f in naming.flags), naming.flags
    assert naming.name_of(len(insts) - 1) is None and naming.levels["S1"] == insts.index(s1)


@pytest.mark.parametrize("case", ["a level hidden", "no thoracic above", "L1 read thoracic"])
def test_without_the_whole_lumbar_spine_above_a_body_below_s1_is_unnamed_only_when_less_sure_than_it(case):
    """Five lumbar bodies right below a thoracic one, no level hidden among them, say that any body
    below the sacrum is not lumbar. Without them (five lumbar instances with L3 missing and T12 read
    as lumbar hide a level; with no thoracic body in view the five may start below L1; L1 read as
    thoracic leaves four) a body below is a stray when the model is surer of the sacrum; as sure as
    the sacrum, it leaves every level uncertain."""
    spine = toy_spine()
    insts = spine.instances()
    if case == "a level hidden":
        l3 = spine.polygons["L3"].mean(0)
        insts = relabel([i for i in insts if np.linalg.norm(i.centre() - l3) > 1.0], spine, {"T12": "lumbar"})
    elif case == "no thoracic above":
        insts = [i for i in insts if i.region != "thoracic"]
    else:
        insts = relabel(insts, spine, {"L1": "thoracic"})
    present = {lv for lv in ALL if any(np.allclose(i.centre(), spine.polygons[lv].mean(0), atol=3) for i in insts)}
    s1 = next(i for i in insts if i.region == "sacrum")
    stray = Instance("lumbar", polygon=spine.polygons["S1"] + [0.0, 60.0], score=s1.score)
    naming = name_levels(insts + [stray])
    assert naming.uncertain and any("a sacrum instance lies above a vertebra" in f for f in naming.flags)
    stray.score = s1.score - 0.05
    naming = name_levels(insts + [stray])
    got, _ = named(naming, insts + [stray])
    assert not naming.uncertain and naming.name_of(len(insts)) is None
    assert any(f"scoring {stray.score:.2f} below a sure sacrum, scoring lower than it" in f for f in naming.flags)
    assert set(got) <= present and all(k == v for k, v in got.items()), got
    assert {"S1", "L1", "L5"} <= set(got)


@pytest.mark.parametrize("lumbar_spine", ["whole", "L3 missed"])
def test_a_doubted_sacrum_right_below_the_whole_lumbar_spine_is_s1_above_a_sure_stray(lumbar_spine):
    """Right below L1…L5 (five lumbar bodies below a thoracic one, no level hidden) lies S1, however
    much the model doubts it: a sure body further down is a sacral segment or a stray, not named.
    Without the whole lumbar spine above it the doubted sacrum is the one left out, as before."""
    spine = toy_spine()
    insts = spine.instances()
    s1 = next(i for i in insts if i.region == "sacrum")
    s1.score = 0.4
    if lumbar_spine == "L3 missed":
        l3 = spine.polygons["L3"].mean(0)
        insts = [i for i in insts if np.linalg.norm(i.centre() - l3) > 1.0]
    stray = Instance("lumbar", polygon=spine.polygons["S1"] + [0.0, 80.0], score=0.67)
    naming = name_levels(insts + [stray])
    assert naming.name_of(len(insts)) is None
    if lumbar_spine == "whole":
        got, _ = named(naming, insts + [stray])
        assert set(got) == ALL and all(k == v for k, v in got.items()) and not naming.uncertain
        assert naming.levels["S1"] == insts.index(s1)
        assert any("scoring 0.67 below a sacrum, with five lumbar bodies above it" in f for f in naming.flags)
    else:
        assert "S1" not in naming.levels
        assert any("sacrum instance scoring 0.40 above a sure vertebra: not named" in f for f in naming.flags)


def test_a_weak_sacrum_among_the_vertebrae_is_not_taken_for_s1():
    spine = toy_spine()
    insts = spine.instances()
    t8 = spine.polygons["T8"]
    insts.append(Instance("sacrum", polygon=t8 + [80.0, 0.0], score=0.2))  # a stray beside T8
    naming = name_levels(insts)
    got, _ = named(naming, insts)
    assert set(got) == ALL and all(k == v for k, v in got.items()) and not naming.uncertain
    assert any("sacrum instance scoring 0.20 above a sure vertebra" in f for f in naming.flags)


@pytest.mark.parametrize("where", ["beside T8", "beside L4"])
def test_a_sure_sacrum_among_the_vertebrae_is_a_stray_when_everything_sure_below_it_scores_higher(where):
    """As a body below the sure sacrum (session 49), a sacrum instance above a vertebra that each sure
    instance below it outscores is a stray (a blob beside the spine): not named, instead of making
    every level uncertain. One that scores as high as a body below it still leaves them uncertain."""
    spine = toy_spine()
    insts = spine.instances()
    for i in insts:
        i.score = 0.95
    stray = Instance("sacrum", polygon=spine.polygons[where[-2:]] + [80.0, 0.0], score=0.7)
    naming = name_levels(insts + [stray])
    got, _ = named(naming, insts + [stray])
    assert set(got) == ALL and all(k == v for k, v in got.items()) and not naming.uncertain
    assert naming.name_of(len(insts)) is None
    assert any("sacrum instance scoring 0.70 above a vertebra, every sure instance below it scoring higher" in f
               for f in naming.flags), naming.flags
    insts[[lv for lv in spine.polygons].index("L5")].score = 0.7
    naming = name_levels(insts + [stray])
    assert naming.uncertain and any("a sacrum instance lies above a vertebra" in f for f in naming.flags)


def test_duplicated_and_misordered_given_levels_are_flagged():
    spine = toy_spine()
    insts = spine.instances(classes="per_level")
    insts.append(Instance("L3", polygon=spine.polygons["T6"] + [200, 0], score=0.1))
    naming = name_levels(insts)
    assert any("L3 given twice" in f for f in naming.flags)
    insts = spine.instances(classes="per_level")
    for inst in insts:
        if inst.class_name == "L2":
            inst.class_name = "L4"
        elif inst.class_name == "L4":
            inst.class_name = "L2"
    naming = name_levels(insts)
    assert any("order implausible" in f for f in naming.flags) and "L4" in naming.uncertain


def test_bodies_above_t1_are_cervical_and_unnamed_not_a_reason_to_give_up():
    spine = toy_spine()  # T4 to S1
    step = spine.polygons["T4"].mean(0) - spine.polygons["T5"].mean(0)
    above = [Instance("thoracic", polygon=spine.polygons["T4"] + k * step) for k in range(1, 6)]
    for base in (spine.instances(), [i for i in spine.instances() if i.region != "sacrum"]):
        insts = base + above  # T3, T2, T1, then two cervical bodies
        naming = name_levels(insts)
        got, _ = named(naming, insts)
        assert all(k == v for k, v in got.items() if k in ALL) and {"T5", "T12", "L5"} <= set(got)
        vertebrae = sum(i.region != "femoral_head" for i in base)
        assert {"T1", "T2", "T3"} <= set(naming.levels) and len(naming.levels) == vertebrae + 3
        assert any("2 vertebra(e) above T1 (cervical)" in f for f in naming.flags), naming.flags
        assert not naming.uncertain, naming.uncertain


def test_a_sacrum_far_below_the_lumbar_spine_is_not_s1():
    """A sacrum instance found three vertebrae's steps below L5 (a blob among the femoral heads)
    would make every count from it wrong: it is not taken as S1, the bodies are named by their
    classes, and the notes say why; one level hidden above a sacrum (L5 not found) is still a gap."""
    spine = toy_spine()
    insts = spine.instances()
    step = np.linalg.norm(spine.polygons["L4"].mean(0) - spine.polygons["L5"].mean(0))
    s1 = next(i for i in insts if i.class_name == "sacrum")
    s1.polygon = s1.polygon + np.array([0.0, 3.0 * step])
    naming = name_levels(insts)
    got, _ = named(naming, insts)
    assert "S1" not in naming.levels
    assert set(got) == ALL - {"S1"} and all(k == v for k, v in got.items())
    assert any("levels' steps below the lowest vertebra" in f and "not taken as S1" in f for f in naming.flags)

    no_l5 = [i for i in spine.instances() if not np.allclose(i.centre(), spine.polygons["L5"].mean(0), atol=3)]
    naming = name_levels(no_l5)
    got, _ = named(naming, no_l5)
    assert naming.source == "counted up from S1" and "L5" not in got
    assert got["S1"] == "S1" and all(k == v for k, v in got.items())


def test_a_sacrum_beside_the_lowest_vertebra_is_not_s1():
    """A sacrum instance level with L5, a step to its side (a blob behind a faint lumbosacral
    junction), is not S1: its outline would give the sacral slope and the anterior side."""
    spine = toy_spine()
    insts = spine.instances()
    l4, l5 = spine.polygons["L4"].mean(0), spine.polygons["L5"].mean(0)
    down = (l5 - l4) / np.linalg.norm(l5 - l4)
    side = np.array([down[1], -down[0]])
    s1 = next(i for i in insts if i.class_name == "sacrum")
    for along, taken in ((0.1, False), (0.6, True)):  # drop along the spine, in level steps
        target = l5 + np.linalg.norm(l5 - l4) * (along * down + 1.1 * side)
        moved = [i for i in insts if i is not s1]
        moved.append(Instance(s1.class_name, polygon=s1.polygon - s1.centre() + target, score=s1.score))
        naming = name_levels(moved)
        got, _ = named(naming, moved)
        assert ("S1" in naming.levels) == taken, along
        assert set(got) - {"S1"} == ALL - {"S1"} and all(k == v for k, v in got.items() if k != "S1")
        assert any("beside the lowest vertebra" in f for f in naming.flags) != taken


@pytest.mark.parametrize("classes", ["default", "two_class"])  # counted up from S1; from the boundary
@pytest.mark.parametrize("hidden", [3, 4])
def test_levels_counted_across_a_long_gap_are_uncertain(classes, hidden):
    """Three levels hidden in a gap are counted; across four or more the count may be a level off, so
    the levels beyond the gap (from where the count starts) keep their names but are uncertain."""
    spine = toy_spine()
    gone = [f"T{n}" for n in range(11 - hidden, 11)]  # T7–T10 or T8–T10
    centres = [spine.polygons[lv].mean(0) for lv in gone]
    insts = [i for i in spine.instances(classes=classes)
             if not any(np.allclose(i.centre(), c, atol=3) for c in centres)]
    naming = name_levels(insts)
    got, _ = named(naming, insts)
    assert all(k == v for k, v in got.items()) and "T5" in got and not set(gone) & set(got)
    assert any(f"gap of ~{hidden} level(s)" in f for f in naming.flags), naming.flags
    above = {lv for lv in got if lv.startswith("T") and int(lv[1:]) < 11 - hidden}
    if hidden < 4:
        assert not naming.uncertain
    else:
        assert set(naming.uncertain) == above and "T5" in above
        assert all("gap of ~4 levels" in why for why in naming.uncertain.values())


def _without_levels(insts, spine, levels):
    return [i for i in insts if not any(np.allclose(i.centre(), spine.polygons[lv].mean(0), atol=3) for lv in levels)]


@pytest.mark.parametrize("kind", ["polygon", "mask"])
def test_levels_missed_in_a_row_are_gaps_by_the_bodies_length(kind):
    """With every other level missed from T5 to T9, the local median step is itself two levels long
    and sees no gap; the steps are each over twice a body's length, so each hides a level and the
    count up from S1 names every body right. With the bodies' length not used, T4, T6 and T8 are
    named three, two and one levels too low."""
    spine = toy_spine()
    insts = _without_levels(spine.instances(kind=kind), spine, ("T5", "T7", "T9"))
    naming = name_levels(insts)
    got, _ = named(naming, insts)
    assert "T4" in got and all(k == v for k, v in got.items()), got
    assert sum("gap of ~1 level(s)" in f for f in naming.flags) == 3, naming.flags
    off = name_levels(_without_levels(spine.instances(kind=kind), spine, ("T5", "T7", "T9")), gap_body_factor=0)
    got_off, _ = named(off, insts)
    assert (got_off["T7"], got_off["T8"], got_off["T9"]) == ("T4", "T6", "T8"), got_off


@pytest.mark.parametrize("scale", [0.5, 1.0, 2.0])
def test_a_spine_with_no_level_missed_has_no_gap_by_the_bodies_length(scale):
    """Steps between neighbouring bodies (a disc apart) are under `GAP_BODY_FACTOR` bodies' lengths at any size:
    nothing is counted hidden."""
    spine = toy_spine(scale=scale, size=(int(520 * max(1, scale)), int(820 * max(1, scale))))
    insts = spine.instances(kind="mask")
    naming = name_levels(insts)
    assert not any("gap of" in f for f in naming.flags), naming.flags
    for level, i in naming.levels.items():
        assert np.linalg.norm(insts[i].centre() - spine.polygons[level].mean(0)) < 3 * scale, level


def test_a_body_length_is_measured_along_the_direction_asked():
    """A 30 × 18 px box: 30 px across, 18 px down; at 45° the polygon's full projection, the mask's
    without its 2 % of pixels at each end (the thin corners)."""
    box = np.array([[10, 20], [40, 20], [40, 38], [10, 38]], float)
    poly, mask = Instance("thoracic", polygon=box), Instance("thoracic", mask=rasterize(box, (60, 60)))
    for inst in (poly, mask):
        assert inst.length_along((1, 0)) == pytest.approx(30, abs=1.5)
        assert inst.length_along((0, 1)) == pytest.approx(18, abs=1.5)
    diagonal = (2 ** -0.5, 2 ** -0.5)
    assert poly.length_along(diagonal) == pytest.approx(48 / 2 ** 0.5, abs=0.5)
    assert 0.8 * 48 / 2 ** 0.5 < mask.length_along(diagonal) < 48 / 2 ** 0.5
