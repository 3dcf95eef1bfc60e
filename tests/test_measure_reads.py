"""The photo's and its mirror image's reads (`test.flip`): an angle the two read far apart, or the
fused detections read far from both, is left out with the readings, unless every look at the
photo turned sides with one read, or just one read made no judgement call on it (then that
read's); the rest are the mean of the two reads (`measure.reads_mean`) or stand as the fused
detections measure them."""
import math

import numpy as np
import pytest

from measure_factory import toy_spine

from spine_d2.angles import ANGLE_NAMES, Angle
from spine_d2.measure.anterior import Anterior
from spine_d2.measure.flags import CALL_ABOUT_NAMING, Flags, judged
from spine_d2.measure.pipeline import Measurement, measure_instances
from spine_d2.measure.preannotation import labelme_document
from spine_d2.levels import LEVELS
from spine_d2.measure.reads import (clean_read, mean_of_reads, measure_reads, measure_with_reads, names_apart,
                                    without_disagreeing_reads, without_fused_apart, without_names_apart)


def test_only_angles_both_reads_measured_far_apart_are_left_out():
    angles = {"TK": Angle(30.0), "LL": Angle(40.0), "SS": Angle(35.0), "PT": Angle.missing("femoral heads not in view")}
    reads = [{"TK": Angle(29.0), "LL": Angle(41.0), "SS": Angle(34.0), "PT": Angle(12.0)},
             {"TK": Angle(52.0), "LL": Angle(55.0), "SS": Angle.missing("S1 superior: level not found"),
              "PT": Angle(40.0)}]
    out = without_disagreeing_reads(angles, reads, max_apart=20.0)
    assert math.isnan(out["TK"].value)
    assert out["TK"].reason == "the photo and its mirror image read 29° and 52° (more than 20° apart)"
    assert out["LL"] == angles["LL"]      # 14° apart: within 20°
    assert out["SS"] == angles["SS"]      # one read has none: nothing to compare
    assert out["PT"] == angles["PT"]      # not measured: its own reason stays
    assert without_disagreeing_reads(angles, reads, max_apart=0.0) == angles  # 0: off
    assert without_disagreeing_reads(angles, reads[:1], max_apart=20.0) == angles
    assert math.isnan(without_disagreeing_reads(angles, reads, max_apart=13.9)["LL"].value)


def test_the_angles_on_s1s_plate_leave_with_ss_where_the_reads_disagree_on_ss():
    angles = {"LL": Angle(45.0), "LL_S1": Angle(60.0), "SS": Angle(52.0), "PT": Angle(11.0), "PI": Angle(63.0)}
    reads = [{"LL": Angle(45.0), "LL_S1": Angle(60.0), "SS": Angle(52.0), "PT": Angle(11.0), "PI": Angle(63.0)},
             {"LL": Angle(47.0), "LL_S1": Angle(75.0), "SS": Angle(74.0), "PT": Angle(8.0), "PI": Angle(82.0)}]
    out = without_disagreeing_reads(angles, reads, max_apart=20.0)  # LL_S1 15°, PI 19° apart: within 20° alone
    assert all(math.isnan(out[n].value) for n in ("SS", "LL_S1", "PI"))
    assert out["PI"].reason == out["LL_S1"].reason == (
        "S1's plate as SS: the photo and its mirror image read 52° and 74° (more than 20° apart)")
    assert out["PT"] == angles["PT"] and out["LL"] == angles["LL"]  # PT takes the plate's midpoint only
    agree = [reads[0], dict(reads[1], SS=Angle(60.0))]
    assert without_disagreeing_reads(angles, agree, max_apart=20.0) == angles
    no_ss = dict(angles, SS=Angle.missing("S1 superior: level not found"))  # already out: PI's own reason stays
    assert without_disagreeing_reads(no_ss, reads, max_apart=20.0)["PI"] == angles["PI"]


def test_pt_is_the_mean_of_the_reads_and_pi_moves_with_it():
    angles = {"TK": Angle(30.0), "LL": Angle(40.0), "SS": Angle(35.0), "PT": Angle(15.0), "PI": Angle(50.0)}
    a = {"TK": Angle(28.0), "LL": Angle(41.0), "SS": Angle(34.0), "PT": Angle(14.0), "PI": Angle(48.0)}
    b = {"TK": Angle(31.0), "LL": Angle(44.0), "SS": Angle(38.0), "PT": Angle(18.0), "PI": Angle(56.0)}
    out = mean_of_reads(angles, [a, b])
    assert out["PT"].value == pytest.approx(16.0)
    assert out["PI"].value == pytest.approx(out["PT"].value + out["SS"].value) == pytest.approx(51.0)
    assert {n: out[n] for n in ("TK", "LL", "SS")} == {n: angles[n] for n in ("TK", "LL", "SS")}
    no_heads = dict(b, PT=Angle.missing("femoral heads not in view"), PI=Angle.missing("femoral heads not in view"))
    assert mean_of_reads(angles, [a, no_heads]) == angles  # one read has no PT: the fused
    none = dict(angles, PT=Angle.missing("femoral heads not in view"), PI=Angle.missing("femoral heads not in view"))
    assert mean_of_reads(none, [a, b]) == none             # the fused has none: no mean makes one
    assert mean_of_reads(angles, [a]) == angles


def test_the_reads_are_measured_alone_in_the_fused_measurements_frame():
    fused, same, far = toy_spine(ll=45.0), toy_spine(ll=44.0), toy_spine(ll=70.0)
    plain = measure_instances(fused.instances(), fused.shape)
    m = measure_with_reads(fused.instances(), [same.instances(), far.instances()], fused.shape)
    assert math.isnan(m.angles["LL"].value) and "read 44° and 70°" in m.angles["LL"].reason
    assert "LL NaN: the photo and its mirror image read 44° and 70°" in m.notes
    for name in ANGLE_NAMES:
        if name != "LL":  # only L5's inferior plate differs between the reads
            assert m.angles[name].value == pytest.approx(plain.angles[name].value), name
    kept = measure_with_reads(fused.instances(), [same.instances(), toy_spine(ll=60.0).instances()], fused.shape)
    assert kept.angles["LL"].value == pytest.approx(plain.angles["LL"].value)  # 16° apart
    heads = measure_with_reads(fused.instances(), [toy_spine(pt=10.0).instances(), toy_spine(pt=16.0).instances()],
                               fused.shape)
    assert heads.angles["PT"].value == pytest.approx(13.0, abs=0.2)  # the reads' hip axes; the fused's 12°
    assert heads.angles["PI"].value - heads.angles["PT"].value == pytest.approx(plain.angles["SS"].value)
    assert heads.angles["LL"] == plain.angles["LL"]
    off = measure_with_reads(fused.instances(), [same.instances(), far.instances()], fused.shape,
                             cfg={"reads_apart": 0, "reads_mean": False})
    assert off.angles == plain.angles
    assert measure_with_reads(fused.instances(), [], fused.shape).angles == plain.angles


def _without(toy, level):
    """The toy spine's instances with `level`'s body left out (a gap the naming counts across)."""
    return [i for i in toy.instances() if i.polygon is None or not np.array_equal(i.polygon, toy.polygons[level])]


def test_a_read_is_clean_for_an_angle_without_a_judgement_call_on_it():
    angles = {name: Angle(30.0) for name in ANGLE_NAMES}
    sure, unsure = Anterior(1, True, [], ""), Anterior(1, False, [], "anterior side uncertain: …")
    assert all(clean_read(Measurement(angles, anterior=sure), name) for name in ANGLE_NAMES)
    named = Measurement(angles, anterior=sure, calls={CALL_ABOUT_NAMING: ["gap of ~1 level(s) …"]})
    assert not any(clean_read(named, name) for name in ANGLE_NAMES)  # every level is counted from S1
    l5 = Measurement(angles, anterior=sure, calls={"L5": ["L5 corners make its body wedge 31° …"]})
    assert [name for name in ANGLE_NAMES if not clean_read(l5, name)] == ["LL"]  # L5's plates: LL's alone
    s1 = Measurement(angles, anterior=sure, calls={"S1": ["S1 superior corners make L5-S1 42° …"]})
    assert [name for name in ANGLE_NAMES if clean_read(s1, name)] == ["TK", "LL"]
    assert not any(clean_read(Measurement(angles, anterior=unsure), name) for name in ANGLE_NAMES)


def test_the_measurement_keeps_its_judgement_calls_by_what_they_concern():
    toy = toy_spine(ll=45.0)
    assert measure_instances(toy.instances(), toy.shape).calls == {}
    m = measure_instances(_without(toy, "T8"), toy.shape)
    assert list(m.calls) == [CALL_ABOUT_NAMING] and m.calls[CALL_ABOUT_NAMING][0].startswith("gap of ~1 level")
    assert m.calls[CALL_ABOUT_NAMING][0] in m.flags  # a call is a flag too


def test_where_the_reads_disagree_the_one_read_without_a_call_is_taken():
    fused, far, on = toy_spine(ll=45.0), toy_spine(ll=70.0), {"reads_trust_clean": True}
    clean_photo = measure_with_reads(fused.instances(), [toy_spine(ll=44.0).instances(), _without(far, "T8")],
                                     fused.shape, cfg=on)
    assert clean_photo.angles["LL"].value == pytest.approx(45.0, abs=0.1)  # the fused, which has the photo's names
    assert "LL: the photo and its mirror image read 44° and 70°: the photo's read" in clean_photo.notes
    clean_mirror = measure_with_reads(fused.instances(), [_without(far, "T8"), toy_spine(ll=44.0).instances()],
                                      fused.shape, cfg=on)
    assert clean_mirror.angles["LL"].value == pytest.approx(44.0, abs=0.1)  # the mirror image's own reading
    assert "the mirror image's read, made without a judgement call, taken" in clean_mirror.notes
    pelvis = measure_with_reads(fused.instances(), [fused.instances(), _without(toy_spine(pt=40.0), "T8")],
                                fused.shape, cfg=on)
    assert math.isnan(pelvis.angles["PT"].value)  # the pelvis's angles: no read is trusted over the other
    assert "read 12° and 40°" in pelvis.angles["PT"].reason
    neither = measure_with_reads(fused.instances(), [_without(toy_spine(ll=44.0), "T8"), _without(far, "T8")],
                                 fused.shape, cfg=on)
    both = measure_with_reads(fused.instances(), [toy_spine(ll=44.0).instances(), far.instances()], fused.shape,
                              cfg=on)
    off = measure_with_reads(fused.instances(), [toy_spine(ll=44.0).instances(), _without(far, "T8")],
                             fused.shape, cfg={"reads_trust_clean": False})
    for m in (neither, both, off):  # no one read to trust over the other, or not asked to: left out
        assert math.isnan(m.angles["LL"].value) and "read 44° and 70°" in m.angles["LL"].reason


def test_a_call_is_kept_apart_only_where_the_flags_keep_calls():
    flags, plain = Flags(["L2: dropped 1 stray fragment(s), 2 px"]), []
    judged(flags, "L5", "L5 corners make its body wedge 31°: the outline's superior endplate used")
    judged(plain, "L5", "L5 corners make its body wedge 31°: the outline's superior endplate used")
    assert flags.calls == {"L5": ["L5 corners make its body wedge 31°: the outline's superior endplate used"]}
    assert list(flags) == ["L2: dropped 1 stray fragment(s), 2 px", flags.calls["L5"][0]] and plain == flags[1:]


def test_where_the_reads_disagree_the_turned_looks_break_the_tie_if_they_all_side_with_one():
    fused = toy_spine(ll=45.0)
    reads = [toy_spine(ll=44.0).instances(), toy_spine(ll=70.0).instances()]
    asked = []

    def looks(*lls):
        def make():
            asked.append(lls)
            return [toy_spine(ll=ll).instances() for ll in lls]
        return make

    photo = measure_with_reads(fused.instances(), reads, fused.shape, looks=looks(46.0, 41.0))
    assert photo.angles["LL"].value == pytest.approx(45.0, abs=0.1)  # the fused, which has the photo's names
    assert ("LL: the photo and its mirror image read 44° and 70°: the photo's read, as the photo turned read it "
            "(46°, 41°), taken") in photo.notes
    mirror = measure_with_reads(fused.instances(), reads, fused.shape, looks=looks(72.0, 66.0))
    assert mirror.angles["LL"].value == pytest.approx(70.0, abs=0.1)  # the mirror image's own reading
    assert "the mirror image's read, as the photo turned read it (72°, 66°), taken" in mirror.notes
    def blind():  # one look without L5: it reads no LL
        asked.append("blind")
        return [toy_spine(ll=46.0).instances(), _without(toy_spine(ll=46.0), "L5")]

    for split in (looks(46.0, 70.0), looks(46.0, 57.0), looks(), blind):  # not every look with one read: left out
        m = measure_with_reads(fused.instances(), reads, fused.shape, looks=split)
        assert math.isnan(m.angles["LL"].value) and "read 44° and 70°" in m.angles["LL"].reason
    one_turn = measure_with_reads(fused.instances(), reads, fused.shape, looks=looks(42.0))
    assert one_turn.angles["LL"].measured
    off = measure_with_reads(fused.instances(), reads, fused.shape, cfg={"reads_agree": 0}, looks=looks(46.0, 41.0))
    assert math.isnan(off.angles["LL"].value)
    assert len(asked) == 7  # not where reads_agree is 0
    agreeing = [toy_spine(ll=44.0).instances(), toy_spine(ll=50.0).instances()]
    assert measure_with_reads(fused.instances(), agreeing, fused.shape, looks=looks(46.0)).angles["LL"].measured
    assert len(asked) == 7  # no tie, no look
    pelvis = measure_with_reads(fused.instances(), [fused.instances(), toy_spine(pt=40.0).instances()], fused.shape,
                                looks=looks(45.0, 45.0))
    assert math.isnan(pelvis.angles["PT"].value) and len(asked) == 7  # TK and LL only (SETTLED_BY_A_CLEAN_READ)


def _cornered(toy, score=0.6, weak=(), weak_score=0.2):
    """The toy spine's instances with their endplates' corners given, as a corner head gives them:
    scoring `score`, those of the levels in `weak` `weak_score`."""
    insts = toy.instances()
    for level, inst in zip(toy.polygons, insts):  # the bodies come first, in the polygons' order
        s = weak_score if level in weak else score
        inst.corners = {f"{side[0]}{end}": (*toy.endplates[level][side][k], s)
                        for side in toy.endplates[level] for k, end in enumerate("ap")}
    return insts


def test_on_doubt_the_mirrored_run_is_made_only_where_the_photos_run_is_in_doubt():
    photo, fused = toy_spine(ll=45.0), toy_spine(ll=50.0)
    made = []

    def mirrored():
        made.append(1)
        return _cornered(fused), [_cornered(photo), _cornered(fused)]

    sure = measure_with_reads(_cornered(photo), [], photo.shape, mirrored=mirrored)
    assert not made and sure.angles["LL"].value == pytest.approx(45.0, abs=0.1)  # the photo's run, as measured
    assert sure.angles == measure_instances(_cornered(photo), photo.shape).angles
    weak = measure_with_reads(_cornered(photo, weak=("T5",)), [], photo.shape, mirrored=mirrored)
    assert made == [1] and weak.angles["LL"].value == pytest.approx(50.0, abs=0.1)  # the fused runs', measured
    assert "mirrored run made: T5 superior corners score 0.20 (< 0.3)" in weak.notes
    measure_with_reads(_cornered(photo, weak=("T4", "L3")), [], photo.shape, mirrored=mirrored)
    assert made == [1]  # weak corners on plates TK and LL do not take: no doubt
    measure_with_reads(_cornered(photo, weak=("L5",)), [], photo.shape, mirrored=mirrored, cfg={"doubt_corner_score": 0})
    assert made == [1]
    unnamed = [i for lv, i in zip([*photo.polygons, None, None], _cornered(photo)) if lv not in ("T4", "T5")]
    # T4 and T5 not found: TK left out for a level not found, no doubt
    assert math.isnan(measure_with_reads(unnamed, [], photo.shape, mirrored=mirrored).angles["TK"].value)
    assert made == [1]
    no_heads = [i for i in _cornered(photo) if i.circle is None]  # PT and PI: heads out of view, no doubt
    measure_with_reads(no_heads, [], photo.shape, mirrored=mirrored)
    assert made == [1]
    doubtful = _cornered(photo)
    doubtful[list(photo.polygons).index("L1")].uncertain = "a name in doubt"  # LL left out for another reason
    called = measure_with_reads(doubtful, [], photo.shape, mirrored=mirrored)
    assert made == [1, 1] and "LL left out (L1 superior: level name uncertain (a name in doubt))" in called.notes
    both = measure_with_reads(_cornered(photo, weak=("T5",)), [_cornered(photo)] * 2, photo.shape, mirrored=mirrored)
    assert len(made) == 2 and both.angles["LL"].value == pytest.approx(45.0, abs=0.1)  # reads given: made already


def test_a_read_whose_s1_plate_is_doubted_still_disagrees_with_the_other():
    """A read whose S1 plate is a fragment (0.4 of L5's inferior plate: under
    `measure.s1_plate_min_ratio`, and left out when measured alone) and reads SS far from the other
    read: its reading still counts, and SS leaves the fused measurement with both readings, rather
    than the other read's standing unchecked (reads.AS_READ)."""
    fused, short = toy_spine(ss=30.0), toy_spine(ss=60.0)
    a, p = np.asarray(short.endplates["S1"]["superior"])
    short.polygons["S1"] = p + 0.4 * (short.polygons["S1"] - p)
    read = short.instances(heads=False)
    assert not measure_instances(read, short.shape).angles["SS"].measured  # doubted alone
    m = measure_with_reads(fused.instances(heads=False), [fused.instances(heads=False), read], fused.shape)
    assert not m.angles["SS"].measured and "read 30° and 60°" in m.angles["SS"].reason, m.angles["SS"]
    assert m.angles["TK"].measured
    agree = toy_spine(ss=33.0)
    kept = measure_with_reads(fused.instances(heads=False), [fused.instances(heads=False), agree.instances(heads=False)],
                              fused.shape)
    assert kept.angles["SS"].value == pytest.approx(30.0, abs=0.5)


def test_a_read_whose_end_plate_is_faint_still_disagrees_with_the_other():
    """A read whose T5 corners score 0.1 (under `measure.faint_plate_scores`' 0.2: left out when
    measured alone) and reads TK far from the other read: its reading still counts (reads.AS_READ),
    and TK leaves the fused measurement with both readings; the fused detections' own faint T5
    leaves TK out whatever the reads say."""
    fused, far = toy_spine(tk=40.0), toy_spine(tk=70.0)
    faint = _cornered(far, weak=("T5",), weak_score=0.1)
    assert not measure_instances(faint, far.shape).angles["TK"].measured  # doubted alone
    assert measure_reads_of(far, [faint])[0].angles["TK"].value == pytest.approx(70.0, abs=1.0)
    m = measure_with_reads(_cornered(fused), [_cornered(fused), faint], fused.shape)
    assert not m.angles["TK"].measured and "read 40° and 70°" in m.angles["TK"].reason, m.angles["TK"]
    own = measure_with_reads(_cornered(fused, weak=("T5",), weak_score=0.1), [_cornered(fused)] * 2, fused.shape)
    assert own.angles["TK"].reason == "T5 superior corners score 0.10 (< 0.2): a faint plate"
    assert own.angles["LL"].measured


def _relabelled(toy, shift: int = 1, kind: str = "mask") -> list:
    """`toy`'s instances labelled as a read that counts every level `shift` too low (S1 named L5, …)."""
    out = toy.instances(kind=kind, labels=True)
    for inst in out:
        if inst.label in LEVELS:
            k = LEVELS.index(inst.label) - shift
            inst.label = LEVELS[k] if k >= 0 else None
    return [i for i in out if i.label is not None or not i.is_vertebra]


def measure_reads_of(toy, reads):
    """Each read measured alone, as `measure_with_reads` measures them (no frame given)."""
    return measure_reads(reads, toy.shape, None, None, None)


def test_an_angle_one_read_cannot_measure_because_it_names_the_levels_one_off_is_left_out():
    toy = toy_spine(tk=40.0, ll=45.0, ll_s1=60.0, ss=38.0)
    photo = toy.instances(kind="mask", labels=True)
    mirror = _relabelled(toy)  # its sacrum named L5, its L5 L4, …: no S1, so no SS, LL_S1, PT, PI
    reads = measure_reads_of(toy, [photo, mirror])
    apart = names_apart(reads)
    assert apart["S1"] == "the photo's read names a body S1, its mirror image's L5"
    assert apart["L5"] == "the photo's read names a body L5, its mirror image's L4"
    assert {"T5", "T12", "L1"} <= set(apart)
    fused = measure_instances(toy.instances(kind="mask", labels=True), toy.shape)
    out, disputed = without_names_apart(fused.angles, reads)
    assert disputed == {"S1": apart["S1"]}  # L1, disputed too, is not the level the mirror's read lacks
    for name in ("SS", "LL_S1", "PT", "PI"):
        assert math.isnan(out[name].value), name
    assert out["SS"].reason == "the photo's read names a body S1, its mirror image's L5: S1 in dispute"
    assert out["PI"].reason == out["LL_S1"].reason == out["SS"].reason
    for name in ("TK", "LL"):  # both reads measured them: their readings judge them, not this rule
        assert reads[1].angles[name].measured
        assert out[name] == fused.angles[name], name
    assert without_names_apart(fused.angles, reads, settled=("SS",))[0]["SS"] == fused.angles["SS"]
    agree = measure_reads_of(toy, [photo, toy.instances(kind="mask", labels=True)])
    assert names_apart(agree) == {} and without_names_apart(fused.angles, agree) == (fused.angles, {})
    assert names_apart(reads[:1]) == {}


def test_measure_with_reads_leaves_out_what_the_reads_name_apart_unless_switched_off():
    toy = toy_spine(tk=40.0, ll=45.0, ll_s1=60.0, ss=38.0)
    fused = toy.instances(kind="mask", labels=True)
    reads = [toy.instances(kind="mask", labels=True), _relabelled(toy)]
    m = measure_with_reads(fused, reads, toy.shape)
    assert math.isnan(m.angles["SS"].value) and "S1 in dispute" in m.angles["SS"].reason
    assert m.uncertain["S1"] == "the photo's read names a body S1, its mirror image's L5"  # the overlay's "S1?"
    s1 = next(sh for sh in labelme_document(m, "photo.png")["shapes"] if sh["label"] == "S1")
    assert s1["flags"] == {"level_uncertain": True} and "its mirror image's L5" in s1["description"]
    plain = measure_instances(toy.instances(kind="mask", labels=True), toy.shape)
    assert "S1" not in plain.uncertain
    assert m.angles["TK"] == plain.angles["TK"] and m.angles["LL"] == plain.angles["LL"]
    off = measure_with_reads(toy.instances(kind="mask", labels=True),
                             [toy.instances(kind="mask", labels=True), _relabelled(toy)], toy.shape,
                             cfg={"reads_names": False})
    assert off.angles["SS"] == plain.angles["SS"] and "S1" not in off.uncertain
    assert plain.angles["SS"].value == pytest.approx(toy.expected["SS"], abs=1.0)


def test_an_angle_the_fused_detections_read_far_from_both_reads_is_left_out():
    angles = {"TK": Angle(-19.0), "LL": Angle(40.0), "LL_S1": Angle(55.0), "SS": Angle(20.0), "PT": Angle(30.0),
              "PI": Angle(50.0)}
    reads = [{"TK": Angle(18.0), "LL": Angle(44.0), "LL_S1": Angle(56.0), "SS": Angle(35.0), "PT": Angle(10.0),
              "PI": Angle(45.0)},
             {"TK": Angle(16.0), "LL": Angle(31.0), "LL_S1": Angle(54.0), "SS": Angle(33.0), "PT": Angle(12.0),
              "PI": Angle(45.0)}]
    out = without_fused_apart(angles, reads, max_apart=10.0)
    assert out["TK"].reason == ("the fused detections read -19°, the photo and its mirror image 16° and 18° "
                                "(more than 10° from both)")
    assert out["LL"] == angles["LL"]  # 4° from one read (9° from the other): near one is enough
    apart = [dict(reads[0], TK=Angle(18.0)), dict(reads[1], TK=Angle(30.0))]  # the reads 12° apart: no one reading
    assert without_fused_apart(dict(angles, TK=Angle(43.0)), apart, max_apart=10.0)["TK"].value == 43.0
    assert math.isnan(out["SS"].value)  # 13° and 15° off both: S1's plate, so LL_S1 and PI leave with it
    assert out["LL_S1"].reason == out["PI"].reason == f"S1's plate as SS: {out['SS'].reason}"
    assert out["PT"] == angles["PT"]  # PT is the reads' mean (`mean_of_reads`), judged there
    assert without_fused_apart(angles, reads, max_apart=0.0) == angles  # 0: off
    assert without_fused_apart(angles, reads[:1], max_apart=10.0) == angles  # one reading: nothing to judge
    assert without_fused_apart(angles, reads, max_apart=10.0, settled=("TK",))["TK"] == angles["TK"]
    assert without_fused_apart(angles, reads, max_apart=40.0) == angles


def test_measure_with_reads_leaves_out_a_fused_angle_far_from_both_reads_unless_switched_off():
    fused = toy_spine(tk=60.0, ll=45.0, ll_s1=60.0, ss=38.0)
    read = toy_spine(tk=40.0, ll=45.0, ll_s1=60.0, ss=38.0)
    reads = [read.instances(kind="mask", labels=True), read.instances(kind="mask", labels=True)]
    m = measure_with_reads(fused.instances(kind="mask", labels=True), reads, fused.shape)
    assert math.isnan(m.angles["TK"].value) and "more than 10° from both" in m.angles["TK"].reason
    plain = measure_instances(fused.instances(kind="mask", labels=True), fused.shape)
    assert m.angles["LL"] == plain.angles["LL"] and m.angles["SS"] == plain.angles["SS"]
    off = measure_with_reads(fused.instances(kind="mask", labels=True), reads, fused.shape, cfg={"fused_apart": 0})
    assert off.angles["TK"] == plain.angles["TK"]
    assert plain.angles["TK"].value == pytest.approx(60.0, abs=2.0)
