"""The overlay drawing: same size, the input untouched, masks/lines/text drawn."""

from dataclasses import replace

import numpy as np

from measure_factory import toy_spine

from spine_d2.measure.overlay import SUPERIOR, draw_overlay
from spine_d2.measure.pipeline import measure_instances


def test_overlay_draws_on_a_copy_of_the_right_size():
    spine = toy_spine()
    m = measure_instances(spine.instances(), spine.shape)
    grey = np.full(spine.shape, 40, np.uint8)
    out = draw_overlay(grey, m)
    assert out.shape == spine.shape + (3,) and out.dtype == np.uint8
    assert (grey == 40).all()
    changed = np.any(out != 40, axis=2)
    # every vertebra is tinted, and the legend box is drawn top-left
    for poly in spine.polygons.values():
        cx, cy = np.round(poly.mean(axis=0)).astype(int)
        assert changed[cy - 2:cy + 3, cx - 2:cx + 3].any()
    assert changed[:40, :100].any()
    # the superior endplate colour appears along L3's superior plate
    a, p = m.endplates["L3"]["superior"]
    mid = np.round((a + p) / 2).astype(int)
    patch = out[mid[1] - 2:mid[1] + 3, mid[0] - 2:mid[0] + 3].reshape(-1, 3)
    assert any(np.abs(px.astype(int) - SUPERIOR).max() < 40 for px in patch)


def test_overlay_of_an_empty_measurement_is_the_photo_with_a_legend():
    photo = np.zeros((120, 200, 3), np.uint8)
    m = measure_instances([], (120, 200))
    out = draw_overlay(photo, m)
    assert out.shape == photo.shape
    assert out[60:, 100:].max() == 0 and out[:30, :60].max() > 0


def test_an_uncertain_level_name_is_drawn_with_a_question_mark_there_and_nowhere_else():
    spine = toy_spine()
    m = measure_instances(spine.instances(), spine.shape)
    assert not m.uncertain
    grey = np.full(spine.shape, 40, np.uint8)
    plain = draw_overlay(grey, m)
    marked = draw_overlay(grey, replace(m, uncertain={"L3": "the reads name it apart"}))
    differ = np.argwhere(np.any(plain != marked, axis=2))
    assert len(differ)
    cx, cy = m.instances[m.levels["L3"]].centre()
    # "L3?" differs from "L3" only by the mark, drawn just right of the name written at L3's centre
    assert differ[:, 1].min() > cx and differ[:, 1].max() < cx + 40
    assert np.abs(differ[:, 0] - cy).max() < 20


def test_a_frame_corrected_with_low_confidence_is_drawn_with_a_question_mark_in_the_legend():
    from spine_d2.measure.rectify import given_frame

    spine = toy_spine()
    m = measure_instances(spine.instances(), spine.shape, frame=given_frame(np.eye(3), spine.shape))
    assert m.frame == "radiograph"
    grey = np.full(spine.shape, 40, np.uint8)
    plain = draw_overlay(grey, m)
    low = replace(m.correction, confidence="low")
    marked = draw_overlay(grey, replace(m, correction=low))
    differ = np.argwhere(np.any(plain != marked, axis=2))
    assert len(differ) and differ[:, 0].max() < 200 and differ[:, 1].max() < 200  # only in the legend box
    uncorrected = replace(m, frame="image", correction=low)  # the image frame: nothing taken, no mark
    assert (draw_overlay(grey, uncorrected) == draw_overlay(grey, replace(m, frame="image"))).all()


def test_a_measurement_read_on_the_photos_negative_says_so_in_the_legend():
    from spine_d2.measure.negative import NEGATIVE_NOTE

    spine = toy_spine()
    m = measure_instances(spine.instances(), spine.shape)
    grey = np.full(spine.shape, 40, np.uint8)
    plain = draw_overlay(grey, replace(m, flags=m.flags + ["another flag"]))
    marked = draw_overlay(grey, replace(m, flags=m.flags + [NEGATIVE_NOTE]))
    differ = np.argwhere(np.any(plain != marked, axis=2))
    assert len(differ) and differ[:, 0].max() < 260 and differ[:, 1].max() < 200  # only in the legend box
    legend_rows = lambda img: np.flatnonzero(np.any(img[:, :40] != 40, axis=(1, 2))).max()
    assert legend_rows(marked) > legend_rows(plain)  # one line more
