"""Clean-up: stray fragments, tiny masks, duplicates, centres off the chain (our turn rule, the study's slope rule),
doubted centres crowded inside one level's step."""

import math
from dataclasses import replace

import numpy as np
import pytest

from measure_factory import toy_spine

from spine_d2.measure.cleanup import (SAME_BODY_IOU, chain_outliers, clean_instances, crowded_centres, detours,
                                     mask_iou, mask_overlap, slope_changes, turn_scores)
from spine_d2.measure.instances import Instance
from spine_d2.measure.pipeline import measure_instances
from spine_d2.polygons import rasterize


def square(x, y, s=30.0):
    return np.array([[x, y], [x + s, y], [x + s, y + s], [x, y + s]], float)


def test_slope_changes_flag_a_centre_off_the_chain():
    centres = np.array([[100, 0], [102, 40], [180, 80], [104, 120], [106, 160]], float)
    ch = slope_changes(centres)
    assert ch.argmax() == 2 and ch[2] > 1.7
    assert slope_changes(centres[[0, 1, 3, 4]]).max() < 0.2


def test_turn_scores_tell_a_spike_from_a_bend():
    """A centre that sticks out and comes back is off the chain; a chain that bends (even 50° in
    one level, more than any spine) keeps its centres; the study's slope sees both alike."""
    spike = np.array([[100, 0], [102, 40], [160, 80], [104, 120], [106, 160]], float)
    s = turn_scores(spike)
    assert s.argmax() == 2 and s[2] > 90
    assert turn_scores(spike[[0, 1, 3, 4]]).max() < 5
    assert chain_outliers(dict(enumerate(spike)), dict.fromkeys(range(5), 1.0))[0][0] == 2
    t = np.radians(np.cumsum([0, 10, 20, 25, 30]))  # a bend of 85° over four levels
    bend = np.cumsum(np.stack([40 * np.sin(t), 40 * np.cos(t)], axis=1), axis=0)
    assert turn_scores(bend).max() == 0
    assert slope_changes(bend).max() > 1.7  # the study's rule would remove a true centre here
    end = np.array([[200, 0], [100, 40], [102, 80], [104, 120], [106, 160]], float)  # the top end off
    assert turn_scores(end).argmax() == 0 and turn_scores(end)[0] > 60


@pytest.mark.parametrize("missed", [("T6", "T7"), ("T5", "T6", "T7")])
def test_a_detour_of_bodies_beside_the_spine_is_removed(missed):
    """The model misses two or three upper thoracic bodies and finds as many blobs in the soft
    tissue beside them: no blob is a spike, so the spike rule alone keeps them (it may take a
    true body as the spike instead); as a detour they go, each with its reason, and TK is right."""
    spine = toy_spine(tk=45.0)
    insts = [i for lv, i in zip(spine.polygons, spine.instances(heads=False)) if lv not in missed]
    insts += spine.instances()[len(spine.polygons):]  # the femoral heads
    step = np.linalg.norm(spine.polygons["T8"].mean(0) - spine.polygons["T9"].mean(0))
    blobs = [Instance("thoracic", polygon=spine.polygons[lv] + [-2.0 * step, 0.0], score=0.9) for lv in missed]
    _, kept, removals = clean_instances(insts + blobs, spine.shape)
    assert sorted(r.index for r in removals) == list(range(len(insts), len(insts) + len(missed)))
    assert all(f"a detour of {len(missed)} centres" in r.reason for r in removals)
    _, kept, removals = clean_instances(insts + blobs, spine.shape, max_detour=1)
    assert not {r.index for r in removals} & set(range(len(insts), len(insts) + len(missed)))  # spikes alone
    m = measure_instances(insts + blobs, spine.shape)
    if "T5" not in missed:
        assert m.angles["TK"].value == pytest.approx(spine.expected["TK"], abs=0.5)


def test_doubted_detections_zigzagging_with_sure_bodies_go_first():
    """Weak blobs beside the upper thoracic spine, each level with a sure body: sorted top to
    bottom the chain zigzags, and every centre, sure or not, is a spike; the doubted ones go."""
    spine = toy_spine(tk=45.0)
    insts = spine.instances()
    step = np.linalg.norm(spine.polygons["T8"].mean(0) - spine.polygons["T9"].mean(0))
    pairs = [("T8", "T7"), ("T7", "T6"), ("T6", "T5")]
    blobs = [Instance("thoracic", score=0.15, polygon=(spine.polygons[a] + spine.polygons[b]) / 2
                      + [1.2 * step, 0.0]) for a, b in pairs]
    _, kept, removals = clean_instances(insts + blobs, spine.shape)
    assert sorted(r.index for r in removals) == list(range(len(insts), len(insts) + len(blobs)))
    m = measure_instances(insts + blobs, spine.shape)
    assert m.angles["TK"].value == pytest.approx(spine.expected["TK"], abs=0.5)


def test_a_true_chain_bending_hard_is_no_detour():
    """Arcs turning up to 30° a level (120° over four levels, beyond any lordosis), short
    thoracic steps above long lumbar ones, and a bend of 45° at one level: no run of centres is a
    detour; a run of two set beside a straight chain is."""
    for per_level in (5.0, 10.0, 20.0, 30.0):
        t = np.radians(np.arange(12) * per_level)
        for steps in (np.full(12, 30.0), np.r_[np.full(7, 18.0), np.full(5, 36.0)]):
            arc = np.cumsum(np.stack([steps * np.sin(t), steps * np.cos(t)], axis=1), axis=0)
            assert detours(arc) == [] and detours(arc[::-1]) == []
    t = np.radians(np.r_[np.zeros(6), np.full(6, 45.0)])
    assert detours(np.cumsum(np.stack([30 * np.sin(t), 30 * np.cos(t)], axis=1), axis=0)) == []
    line = np.stack([np.full(10, 100.0), np.arange(10) * 30.0], axis=1)
    line[4:6, 0] += 60.0  # two steps beside the chain: it leaves and rejoins at 63°
    (first, stop, leave, rejoin), = detours(line)
    assert (first, stop) == (4, 6) and leave > 60 and rejoin > 60
    assert detours(line, max_run=1) == []
    line[4:6, 0] -= 20.0  # 53°: a detour leaves or rejoins the chain at least as sharply as a spike turns
    assert detours(line) == []


def test_a_deep_lordosis_with_a_body_missed_is_no_detour():
    """The centres of phantom_0347 (LL 80.9°) as session 35's model found them, top to bottom
    (image frame, px): the lumbar bodies bulge anterior (+x) and one between them was missed, so
    the chain leaves the line past them by ~45° and rejoins it by ~45°, but no more than 60°: they
    stay (removed, they took LL 20° off or out)."""
    c = np.array([[413, 197], [405, 220], [395, 234], [389, 245], [379, 268], [371, 289], [369, 312], [369, 334],
                  [374, 356], [382, 377], [393, 400], [411, 424], [421, 436], [451, 465], [465, 517], [450, 546],
                  [418, 578]], float)
    assert detours(c) == []
    assert detours(c, turn_limit_deg=40.0) != []  # at a lower limit the bulge would count


def test_stray_detection_beside_the_spine_is_removed_with_its_reason():
    spine = toy_spine()
    insts = spine.instances()
    l3 = spine.polygons["L3"].mean(axis=0)
    stray = Instance("lumbar", polygon=square(l3[0] + 150, l3[1] + 20), score=0.9)
    for rule, reason in (("turn", "off the spine's chain (turn"), ("slope", "slope change")):
        kept_idx, kept, removals = clean_instances(insts + [stray], spine.shape, chain_rule=rule)
        assert len(kept) == len(insts)
        assert [r.index for r in removals] == [len(insts)]
        assert reason in removals[0].reason, rule
    assert "1.7" in removals[0].reason
    _, kept, removals = clean_instances(insts + [stray], spine.shape, chain_rule="off")
    assert not removals and len(kept) == len(insts) + 1


def test_thresholds_are_configurable():
    spine = toy_spine()
    insts = spine.instances()
    mid = (spine.polygons["T9"].mean(axis=0) + spine.polygons["T10"].mean(axis=0)) / 2
    stray = Instance("thoracic", polygon=square(mid[0] + 25, mid[1] - 15, 30.0), score=0.5)
    chain = np.array(sorted([i.centre() for i in insts if i.region in ("thoracic", "lumbar")] + [stray.centre()],
                            key=lambda c: c[1]))
    for rule, key, worst, default in (("slope", "slope_threshold", slope_changes(chain).max(), 1.7),
                                      ("turn", "turn_limit_deg", turn_scores(chain).max(), 60.0)):
        assert worst > default
        _, kept, removals = clean_instances(insts + [stray], spine.shape, chain_rule=rule)
        assert [r.index for r in removals] == [len(insts)]
        _, kept, removals = clean_instances(insts + [stray], spine.shape, chain_rule=rule, **{key: worst + 0.1})
        assert not removals and len(kept) == len(insts) + 1


@pytest.mark.parametrize("tk,ll_s1,ss", [(60.0, 70.0, 45.0), (75.0, 80.0, 50.0), (75.0, 40.0, 25.0)])
def test_a_strongly_kyphotic_or_lordotic_chain_keeps_every_vertebra(tk, ll_s1, ss):
    """Clean ground truth with strong kyphosis (the upper thoracic chain runs steep) and lordosis:
    the default removes nothing and TK is measured; the study's slope rule, kept as an option,
    takes true upper thoracic vertebrae out."""
    spine = toy_spine(tk=tk, ll=ll_s1 - 15, ll_s1=ll_s1, ss=ss)
    insts = spine.instances()
    _, kept, removals = clean_instances(insts, spine.shape)
    assert not removals and len(kept) == len(insts)
    m = measure_instances(spine.instances(), spine.shape)
    assert m.angles["TK"].value == pytest.approx(spine.expected["TK"], abs=0.2)
    assert not m.removals
    study = chain_outliers({k: i.centre() for k, i in enumerate(insts) if i.region in ("thoracic", "lumbar")},
                           {k: 1.0 for k in range(len(insts))}, "slope")
    if tk >= 75:
        assert study and all("slope change" in why for _, why in study)


def test_noise_blobs_in_a_mask_and_tiny_masks_are_removed():
    spine = toy_spine(scale=1.0)
    insts = spine.instances("mask")
    blob = insts[3].mask.copy()
    blob[5:9, 5:9] = True  # a fragment far from the body
    insts[3] = Instance(insts[3].class_name, mask=blob)
    speck = np.zeros(spine.shape, bool)
    speck[700:703, 30:33] = True
    insts.append(Instance("thoracic", mask=speck, score=0.95))
    _, kept, removals = clean_instances(insts, spine.shape)
    assert any("stray fragment" in n for n in kept[3].notes)
    assert kept[3].mask[5:9, 5:9].sum() == 0
    assert [r.index for r in removals] == [len(insts) - 1]
    assert "mask too small" in removals[0].reason


def test_duplicates_keep_the_higher_score():
    spine = toy_spine()
    insts = spine.instances()
    dup = Instance("lumbar", polygon=spine.polygons["L2"] + [2.0, 1.0], score=0.4)
    _, kept, removals = clean_instances(insts + [dup], spine.shape)
    assert len(removals) == 1 and removals[0].index == len(insts)
    assert "duplicate of" in removals[0].reason
    # overlapping femoral heads are both kept: they superimpose on a lateral film
    assert sum(i.region == "femoral_head" for i in kept) == 2


def test_a_head_and_a_vertebra_on_one_object_keep_the_higher_score():
    spine = toy_spine()
    insts = spine.instances()
    s1 = spine.polygons["S1"]
    centre, r = s1.mean(axis=0), 0.4 * float(np.ptp(s1[:, 1]))
    ghost_head = Instance("femoral_head", circle=(float(centre[0]), float(centre[1]), r), score=0.2)
    ghost_sacrum = Instance("sacrum", polygon=spine.polygons["S1"] + 1.0, score=0.1)
    idx, kept, removals = clean_instances(insts + [ghost_head, ghost_sacrum], spine.shape)
    assert sorted(r.index for r in removals) == [len(insts), len(insts) + 1]
    assert any("duplicate of" in r.reason and r.class_name == "femoral_head" for r in removals)
    # the true heads, clear of S1, stay, as does S1 itself
    assert sum(i.region == "femoral_head" for i in kept) == 2 and any(i.region == "sacrum" for i in kept)
    weak_s1 = [replace(i, score=0.1) if i.region == "sacrum" else i for i in insts]
    _, kept, removals = clean_instances(weak_s1 + [ghost_head], spine.shape)
    assert [r.class_name for r in removals] == ["sacrum"]  # here the head scores higher


def test_a_duplicate_of_another_class_is_remembered_on_the_one_kept():
    spine = toy_spine()
    insts = spine.instances()
    s1 = next(i for i in insts if i.region == "sacrum")
    as_lumbar = Instance("lumbar", polygon=s1.polygon + 1.0, score=0.4)
    _, kept, removals = clean_instances(insts + [as_lumbar], spine.shape)
    assert [r.class_name for r in removals] == ["lumbar"]
    assert next(i for i in kept if i.region == "sacrum").also == {"lumbar": 0.4}
    assert s1.also == {}  # the input is left as it was


def test_cleanup_restores_the_angles():
    spine = toy_spine()
    l3 = spine.polygons["L3"].mean(axis=0)
    noisy = spine.instances() + [Instance("lumbar", polygon=square(l3[0] - 160, l3[1]), score=0.99),
                                 Instance("thoracic", polygon=spine.polygons["T8"] + 1.5, score=0.2)]
    m = measure_instances(noisy, spine.shape)
    for name, value in spine.expected.items():
        assert m.angles[name].value == pytest.approx(value, abs=0.2), name
    assert len(m.removals) == 2 and "removed #" in m.notes
    assert m.removals[0].reason != m.removals[1].reason


def test_masks_become_masks_of_the_image_size():
    poly = square(10, 10)
    inst = Instance("lumbar", mask=rasterize(poly, (60, 80)))
    assert inst.mask.shape == (60, 80)
    assert inst.area() == pytest.approx(900, rel=0.1)
    assert np.allclose(inst.box(), (10, 10, 40, 40), atol=1)


def test_circle_overlap_is_the_lens_over_the_smaller_disc():
    from spine_d2.measure.cleanup import circle_overlap

    assert circle_overlap((0, 0, 1), (1, 0, 1)) == pytest.approx((2 * math.acos(0.5) - 0.5 * math.sqrt(3)) / math.pi)
    assert circle_overlap((0, 0, 5), (1, 0, 2)) == 1.0 and circle_overlap((0, 0, 1), (3, 0, 1)) == 0.0



def _column(n=10, step=20.0):
    """Centres of a straight spine, top to bottom, `step` px apart (keys 0…n−1), all sure."""
    return {k: np.array([100.0 + 0.3 * k, 50.0 + step * k]) for k in range(n)}, {k: 0.99 for k in range(n)}


@pytest.mark.parametrize("offset,where", [(8.0, 4), (12.0, 4), (5.0, 8)])
def test_a_doubted_centre_inside_one_levels_step_is_crowded_out(offset, where):
    centres, scores = _column()
    centres[99], scores[99] = centres[where] + np.array([1.0, offset]), 0.3   # a second, partial find
    out = crowded_centres(centres, scores)
    assert [k for k, _ in out] == [99]
    assert "crowded: its neighbours lie" in out[0][1] and "score 0.30" in out[0][1]
    scores[99] = 0.6                                          # one the model is sure of stays where that is off
    assert crowded_centres(centres, scores, crowd_steps_sure=0) == []
    scores[99] = 0.3
    assert crowded_centres(centres, scores, crowd_steps=0) == []


def test_a_sure_second_find_inside_one_levels_step_goes_a_sure_body_with_neighbours_1_3_steps_apart_stays():
    centres, scores = _column()
    centres[99], scores[99] = centres[4] + np.array([0.5, 14.0]), 0.9   # the body found twice, both sure
    out = crowded_centres(centres, scores)
    assert [k for k, _ in out] == [99]
    assert "its neighbours lie 1.00 levels' steps apart (< 1.25), score 0.90 ≥ 0.5" in out[0][1]
    assert crowded_centres(centres, scores, crowd_steps_sure=0) == []
    del centres[99], scores[99]
    centres[5] = (centres[4] + centres[6]) / 2 - np.array([0.0, 7.0])   # squeezed: T4 and T6 1.3 steps apart
    centres[6] = centres[5] + np.array([0.0, 13.0])
    assert crowded_centres(centres, scores) == []
    assert [k for k, _ in crowded_centres(centres, scores, crowd_steps_sure=1.35)] == [5]
    scores[0], centres[0] = 0.9, centres[1] - np.array([0.0, 5.0])     # a sure end is never crowded out
    assert crowded_centres(centres, scores) == []


def test_a_doubted_find_goes_before_a_sure_one_more_crowded():
    centres, scores = _column()
    centres[98], scores[98] = centres[2] + np.array([0.0, 10.0]), 0.9   # 1.0 steps between its neighbours
    centres[99], scores[99] = centres[6] + np.array([0.0, 8.0]), 0.3    # 1.0 too, doubted
    out = crowded_centres(centres, scores)
    assert [k for k, _ in out] == [99, 98]


def test_doubted_true_vertebrae_and_ends_one_step_away_are_kept():
    centres, scores = _column()
    for k in (0, 3, 9):
        scores[k] = 0.1                         # weak, but a level's step from each neighbour
    assert crowded_centres(centres, scores) == []
    scores[9] = 0.99
    centres[10], scores[10] = centres[9] + np.array([0.5, 7.0]), 0.2   # past the chain's end, 0.35 of a step
    centres[11], scores[11] = centres[0] - np.array([0.0, 14.0]), 0.2  # before its top, 0.7 of a step
    out = crowded_centres(centres, scores)
    assert [k for k, _ in out] == [10] and "at the chain's end" in out[0][1]


def test_two_doubted_finds_crowding_one_step_both_go_the_most_crowded_first():
    centres, scores = _column()
    centres[20], scores[20] = centres[5] + np.array([0.0, 9.0]), 0.2
    centres[21], scores[21] = centres[5] + np.array([0.0, 4.0]), 0.1
    assert sorted(k for k, _ in crowded_centres(centres, scores)) == [20, 21]


def test_a_second_weak_find_of_a_thoracic_body_no_longer_renames_the_levels_above_it():
    spine = toy_spine()
    t8, t9 = spine.polygons["T8"], spine.polygons["T9"]
    # a weak find over the T8-T9 disc: half a level's step below T8, overlapping each under half
    extra = Instance("thoracic", polygon=t8 + 0.5 * (t9.mean(axis=0) - t8.mean(axis=0)), score=0.3)
    insts = spine.instances() + [extra]
    before = measure_instances(spine.instances() + [extra], spine.shape, cfg={"crowd_steps": 0})
    m = measure_instances(insts, spine.shape)
    assert [r.step for r in m.removals] == ["crowded"]
    assert before.levels["T5"] != m.levels["T5"]                    # counted as a level, it renamed T4-T8
    for name, value in spine.expected.items():
        assert m.angles[name].value == pytest.approx(value, abs=0.2), name


def test_a_sure_second_find_of_a_thoracic_body_no_longer_renames_the_levels_above_it():
    spine = toy_spine()
    t8, t9 = spine.polygons["T8"], spine.polygons["T9"]
    extra = Instance("thoracic", polygon=t8 + 0.5 * (t9.mean(axis=0) - t8.mean(axis=0)), score=0.9)
    before = measure_instances(spine.instances() + [extra], spine.shape, cfg={"crowd_steps_sure": 0})
    m = measure_instances(spine.instances() + [extra], spine.shape)
    assert [r.step for r in m.removals] == ["crowded"] and "score 0.90" in m.removals[0].reason
    assert before.levels["T5"] != m.levels["T5"] and not before.removals
    for name, value in spine.expected.items():
        assert m.angles[name].value == pytest.approx(value, abs=0.2), name


def test_a_sure_stray_the_chain_rule_left_crowds_no_true_body_out():
    """A sure stray beside L3 left in the chain (the chain rule off) stretches the local steps of the
    bodies around it: sure as they are, they touch no neighbour, so none is taken for a second find
    (without that check three true bodies went)."""
    spine = toy_spine()
    l3 = spine.polygons["L3"].mean(axis=0)
    stray = Instance("lumbar", polygon=square(l3[0] + 150, l3[1] + 20), score=0.9)
    _, kept, removals = clean_instances(spine.instances() + [stray], spine.shape, chain_rule="off")
    assert removals == [] and len(kept) == len(spine.instances()) + 1
    centres = {i: inst.centre() for i, inst in enumerate(kept) if inst.region in ("thoracic", "lumbar")}
    scores = {i: kept[i].score for i in centres}
    assert len(crowded_centres(centres, scores)) >= 2  # by the centres alone, true bodies would go


def test_one_body_across_reads_is_judged_by_iou_so_a_mask_over_two_bodies_matches_neither():
    def body(y0, y1, x0=10, x1=40):
        m = np.zeros((120, 60), bool)
        m[y0:y1, x0:x1] = True
        return Instance("thoracic", mask=m)

    upper, lower = body(20, 40), body(44, 64)
    assert mask_iou(upper, body(22, 42, 11, 41)) >= SAME_BODY_IOU  # one body, read a little apart
    both = body(20, 64)  # one read's mask drawn over both bodies
    assert mask_overlap(upper, both) == 1.0  # a duplicate within one read, by the smaller's overlap
    assert mask_iou(upper, both) < SAME_BODY_IOU and mask_iou(lower, both) < SAME_BODY_IOU
    assert mask_iou(upper, lower) == 0.0 and mask_overlap(upper, lower) == 0.0
    assert mask_iou(upper, upper) == 1.0
