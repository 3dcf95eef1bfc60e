"""Level names, regions and class maps."""
import pytest

from spine_d2.levels import (
    CLASS_MAPS,
    KNOWN_LABELS,
    LEVELS,
    ClassMap,
    get_class_map,
    is_level,
    region,
)


def test_levels_run_cranial_to_caudal():
    assert LEVELS[0] == "T1" and LEVELS[11] == "T12" and LEVELS[12] == "L1"
    assert LEVELS[-2:] == ("L5", "S1")
    assert len(LEVELS) == 18


@pytest.mark.parametrize(
    "label,expected",
    [("T5", "thoracic"), ("T12", "thoracic"), ("L1", "lumbar"), ("S1", "sacrum"),
     ("FH", "femoral_head"), ("thoracic", "thoracic"), ("lumbar", "lumbar")],
)
def test_region(label, expected):
    assert region(label) == expected


def test_unknown_label_names_itself():
    with pytest.raises(KeyError, match="'T13'"):
        region("T13")


def test_is_level():
    assert is_level("L3") and is_level("S1")
    assert not is_level("FH") and not is_level("lumbar")


def test_two_class_map_is_the_studys():
    cm = CLASS_MAPS["two_class"]
    assert cm.classes == ("thoracic", "lumbar")
    assert cm.category_id("T7") == 0 and cm.category_id("L2") == 1
    assert cm.category_id("thoracic") == 0 and cm.category_id("lumbar") == 1
    assert cm.category_id("S1") is None and cm.category_id("FH") is None


def test_default_map_keeps_every_known_label():
    cm = get_class_map(None)
    assert cm.name == "default"
    assert all(cm.keeps(label) for label in KNOWN_LABELS)
    assert cm.classes[cm.category_id("S1")] == "sacrum"
    assert cm.classes[cm.category_id("FH")] == "femoral_head"


def test_per_level_map_has_one_class_per_level():
    cm = get_class_map("per_level")
    assert [cm.category_id(lvl) for lvl in LEVELS] == list(range(len(LEVELS)))
    assert not cm.keeps("lumbar")


def test_unknown_map_and_bad_map():
    with pytest.raises(KeyError, match="two_class"):
        get_class_map("three_class")
    with pytest.raises(ValueError, match="undeclared"):
        ClassMap("bad", ("a",), {"T1": "b"})
