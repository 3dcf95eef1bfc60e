"""Endplate lines of rotated rectangles and trapezoids (polygons and masks), both methods; the old names."""
import math

import numpy as np
import pytest

import drawn_spines
from measure_factory import rounded

from spine_d2.angles import endplate_tilt
from spine_d2.measure.endplates import (
    EndplateError, fit_endplates, method_name, order_anterior_posterior)
from spine_d2.measure.instances import Instance
from spine_d2.polygons import rasterize


def body(tilt_inf, wedge, rot=0.0, depth=120.0, height=80.0, centre=(200.0, 200.0)):
    """Trapezoid with anterior at +x before `rot` (CCW on screen); returns polygon, true sup/inf tilts."""
    t_i, t_s = math.radians(tilt_inf), math.radians(tilt_inf + wedge)
    ui = np.array([math.cos(t_i), -math.sin(t_i)])
    us = np.array([math.cos(t_s), -math.sin(t_s)])
    ni = np.array([-math.sin(t_i), -math.cos(t_i)])
    c = np.zeros(2)
    cs = c + ni * height
    poly = np.array([cs + us * depth / 2, cs - us * depth / 2, c - ui * depth / 2, c + ui * depth / 2])
    r = math.radians(rot)
    R = np.array([[math.cos(r), math.sin(r)], [-math.sin(r), math.cos(r)]])
    poly = (poly - cs / 2) @ R.T + np.asarray(centre)
    cranial = R @ ni
    return poly, tilt_inf + wedge + rot, tilt_inf + rot, cranial


def tilts(fit, anterior):
    return {side: endplate_tilt(order_anterior_posterior(seg, anterior), 1) for side, seg in fit.items()}


CASES = [(0.0, 0.0, 0.0), (0.0, 0.0, 17.0), (-10.0, 6.0, 0.0), (5.0, -8.0, -25.0), (20.0, 4.0, 40.0)]


@pytest.mark.parametrize("method", ["border", "rectangle"])
@pytest.mark.parametrize("tilt_inf,wedge,rot", CASES)
def test_polygon_lines_have_the_true_tilts(method, tilt_inf, wedge, rot):
    poly, t_sup, t_inf, cranial = body(tilt_inf, wedge, rot)
    ant = np.array([-cranial[1], cranial[0]])  # across the body: +x for an upright body
    got = tilts(fit_endplates(Instance("lumbar", polygon=poly).contour(), cranial, method), ant)
    tol = 1e-6 if method == "border" or wedge == 0 else 0.6
    assert got["superior"] == pytest.approx(t_sup, abs=tol)
    assert got["inferior"] == pytest.approx(t_inf, abs=tol)


@pytest.mark.parametrize("method", ["border", "rectangle"])
@pytest.mark.parametrize("tilt_inf,wedge,rot", CASES)
def test_mask_lines_are_within_half_a_degree(method, tilt_inf, wedge, rot):
    poly, t_sup, t_inf, cranial = body(tilt_inf, wedge, rot)
    inst = Instance("lumbar", mask=rasterize(poly, (420, 420)))
    got = tilts(fit_endplates(inst.contour(), cranial, method), np.array([-cranial[1], cranial[0]]))
    tol = 0.5 if method == "border" or wedge == 0 else 1.0
    assert got["superior"] == pytest.approx(t_sup, abs=tol)
    assert got["inferior"] == pytest.approx(t_inf, abs=tol)


def test_border_ignores_rounded_corners_of_a_wedged_body():
    poly, t_sup, t_inf, cranial = body(-12.0, 8.0, 10.0)
    ant = np.array([-cranial[1], cranial[0]])
    contour = Instance("lumbar", polygon=rounded(poly, 14.0)).contour()
    border = tilts(fit_endplates(contour, cranial, "border"), ant)
    rectangle = tilts(fit_endplates(contour, cranial, "rectangle"), ant)
    err = lambda g: max(abs(g["superior"] - t_sup), abs(g["inferior"] - t_inf))  # noqa: E731
    assert err(border) < 0.05
    assert err(border) < err(rectangle)


def test_rectangle_border_fits_bodies_by_the_rectangle_and_the_sacral_plate_by_its_border():
    poly, _, _, cranial = body(-12.0, 8.0, 10.0)
    contour = Instance("lumbar", polygon=rounded(poly, 14.0)).contour()
    border, rectangle = fit_endplates(contour, cranial, "border"), fit_endplates(contour, cranial, "rectangle")
    assert not np.allclose(border["superior"], rectangle["superior"])  # the two methods differ here
    for level, expected in (("L3", rectangle), ("T5", rectangle), (None, rectangle), ("S1", border)):
        got = fit_endplates(contour, cranial, "rectangle+border", level)
        for side in ("superior", "inferior"):
            assert np.array_equal(got[side], expected[side]), (level, side)


@pytest.mark.parametrize("old,new", [("paper", "rectangle"), ("ours", "border"), ("mixed", "rectangle+border")])
def test_the_old_method_names_still_fit_the_same_lines(old, new):
    poly, _, _, cranial = body(-12.0, 8.0, 10.0)
    contour = Instance("lumbar", polygon=rounded(poly, 14.0)).contour()
    for level in ("L3", "S1"):
        got, want = fit_endplates(contour, cranial, old, level), fit_endplates(contour, cranial, new, level)
        assert all(np.array_equal(got[side], want[side]) for side in ("superior", "inferior"))
    assert method_name(old) == new


def test_anterior_posterior_order():
    seg = np.array([[0.0, 0.0], [10.0, 1.0]])
    assert order_anterior_posterior(seg, [1, 0])[0].tolist() == [10.0, 1.0]
    assert order_anterior_posterior(seg, [-1, 0])[0].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("method", ["border", "rectangle"])
def test_degenerate_outlines_raise_endplate_error(method):
    with pytest.raises(EndplateError, match="outline"):
        fit_endplates(np.array([[0, 0], [1, 0], [2, 0]]), [0, -1], method)
    line = np.stack([np.arange(20.0), np.zeros(20)], 1)
    with pytest.raises(EndplateError):
        fit_endplates(line, [0, -1], method)
    with pytest.raises(ValueError, match="unknown endplate method"):
        fit_endplates(line, [0, -1], "magic")


# ---- the sacral plate on sacra of other shapes ----------------------------------------------


def _plate_error(fit, plate) -> float:
    d, t = fit[1] - fit[0], plate[1] - plate[0]
    e = abs(math.degrees(math.atan2(d[0] * t[1] - d[1] * t[0], d @ t)))
    return min(e, 180 - e)


@pytest.mark.parametrize("shape", drawn_spines.SACRUM_SHAPES)
@pytest.mark.parametrize("method", ["rectangle+border", "border"])
def test_the_sacral_plate_of_every_shape_is_its_top_edge(shape, method):
    """Triangles (3 points), five-point wedges, curved sacra (up to 30 points, concave front), a
    promontory lip and plain boxes, at sacral slopes 8–75°, either side anterior, outlines and masks:
    the S1 superior line is the drawn plate; no inferior border is needed (a sacrum may taper)."""
    rng = np.random.default_rng(7)
    for ss in (8.0, 30.0, 55.0, 75.0):
        for facing in (1, -1):
            poly, plate = drawn_spines.sacrum_outline(np.array([300.0, 200.0]), ss, 120.0, facing, shape, rng)
            _, normal = drawn_spines.plate_axes(-ss, facing)
            for inst, tol in ((Instance("sacrum", polygon=poly), 1e-6),
                              (Instance("sacrum", mask=rasterize(poly, (700, 700))), 1.0)):
                l5 = plate.mean(axis=0) + 60 * normal  # the next body up
                fit = fit_endplates(inst.contour(), l5 - inst.centre(), method, "S1", which=("superior",))
                assert set(fit) == {"superior"}
                assert _plate_error(fit["superior"], plate) <= tol, (shape, ss, facing, inst.mask is not None)


def test_a_three_point_sacrum_has_a_plate_but_no_inferior_border():
    plate = np.array([[240.0, 200.0], [150.0, 150.0]])  # anterior (right, lower: SS 29°), posterior
    poly = np.vstack([plate, [[170.0, 330.0]]])
    contour = Instance("sacrum", polygon=poly).contour()
    fit = fit_endplates(contour, [0.3, -1.0], "border", "S1", which=("superior",))
    assert _plate_error(fit["superior"], plate) < 1e-6
    with pytest.raises(EndplateError, match="inferior"):
        fit_endplates(contour, [0.3, -1.0], "border", "S1")  # both sides asked: the tip is no endplate
