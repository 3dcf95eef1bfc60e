"""The photo's and its mirror image's reads (`test.flip`): an angle the two read far apart is left
out with both readings; the rest are the mean of the two reads (`measure.reads_mean`) or stand as
the fused detections measure them."""
import math

import pytest

from measure_factory import toy_spine

from spine_d2.angles import ANGLE_NAMES, Angle
from spine_d2.measure.pipeline import measure_instances
from spine_d2.measure.reads import mean_of_reads, measure_with_reads, without_disagreeing_reads


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
