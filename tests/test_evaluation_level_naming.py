"""The levels the measurement named against the annotation's: right, shifted, strays left out."""
import numpy as np
import pytest

from spine_d2.evaluation.level_naming import named_against_truth

LEVELS = ("T11", "T12", "L1", "L2")


def bodies(shape=(120, 60)):
    """Four annotated bodies, 20 px high, a 6-px disc apart, top to bottom T11…L2."""
    masks = []
    for k in range(len(LEVELS)):
        m = np.zeros(shape, bool)
        m[10 + 26 * k:30 + 26 * k, 15:45] = True
        masks.append(m)
    return masks


def test_levels_named_as_annotated_are_all_right():
    gt = bodies()
    got = named_against_truth(dict(zip(LEVELS, gt)), gt, list(LEVELS))
    assert got == {"levels_named": 4, "levels_misnamed": 0, "misnamed": ""}


def test_a_count_one_level_off_names_each_level_on_the_one_above():
    """Named one level too low (T12 on the annotated T11, …), outlines a little off: every one
    misnamed, one run listed as the names given on the annotation's levels."""
    gt = bodies()
    named = {lv: np.roll(m, 2, axis=1) for lv, m in zip(("T12", "L1", "L2", "L3"), gt)}
    got = named_against_truth(named, gt, list(LEVELS))
    assert got["levels_named"] == 4 and got["levels_misnamed"] == 4
    assert got["misnamed"] == "T12–L3 on T11–L2"


def test_runs_break_where_the_offset_or_the_sequence_changes():
    """T10 on T11's body, T12 right, L2 and L3 on L1's and L2's: a run holds consecutive names
    misnamed by the same number of levels, so T10 stands alone and L2–L3 is one run."""
    gt = bodies()
    named = {"T10": gt[0], "T12": gt[1], "L2": gt[2], "L3": gt[3]}
    got = named_against_truth(named, gt, list(LEVELS))
    assert got["levels_misnamed"] == 3 and got["misnamed"] == "T10 on T11, L2–L3 on L1–L2"


def test_a_stray_and_what_is_not_a_level_are_left_out():
    """A named mask lying mostly off every annotated body (here 0.22 of it on L2) is not checked;
    an annotated femoral head (no level) is nobody's level."""
    gt = bodies()
    stray = np.zeros_like(gt[0])
    stray[105:115, 15:55] = True  # 10 rows × 40, L2's last 3 rows × 30 columns under it
    head = np.zeros_like(gt[0])
    head[100:118, 0:14] = True
    named = {"T11": gt[0], "T12": gt[1], "L3": stray, "S1": head}
    got = named_against_truth(named, gt + [head], list(LEVELS) + [None])
    assert got == {"levels_named": 2, "levels_misnamed": 0, "misnamed": ""}


def test_nothing_to_check_without_annotated_levels():
    gt = bodies()
    assert named_against_truth(dict(zip(LEVELS, gt)), gt, [None] * 4) == {}
    with pytest.raises(ValueError, match="one level name"):
        named_against_truth({}, gt, list(LEVELS[:3]))
