"""The projection renderer: exact chords and volumes, shadows and the endplate ground truth."""
from __future__ import annotations

import math

import numpy as np
import pytest

from spine_d2.angles import ANGLE_NAMES, angle_values, sagittal_angles
from spine_d2.synthetic.anatomy import build_anatomy, sample_patient
from spine_d2.synthetic.projection import Beam, Geometry, interval, line_integrals, project, silhouette
from spine_d2.synthetic.scene import build_scene
from spine_d2.synthetic.solids import BONE, SOFT, cylinder, ellipsoid, half_space

K = 4.0  # px per mm
FAR = 1e7  # a source this far is a parallel beam


def _geometry(source_z: float = FAR, size: int = 400) -> Geometry:
    M = np.array([[K, 0.0, size / 2], [0.0, K, size / 2], [0.0, 0.0, 1.0]])
    return Geometry(M, (size, size), (Beam((0.0, 0.0, source_z), (0, size)),))


def test_chords_and_volumes_are_exact():
    g = _geometry()
    ball = ellipsoid([0, 0, 0], np.eye(3), [20, 15, 10], 1.0, BONE)
    half = ellipsoid([0, 0, 0], np.eye(3), [20, 15, 10], 1.0, SOFT, [half_space([0, 1, 0], [0, 0, 0])])
    L = line_integrals([ball, half], g)
    assert L[BONE, 200, 200] == pytest.approx(20.0, abs=0.02)  # the full depth at the centre (2 × 10 mm)
    assert L[BONE].sum() / K ** 2 == pytest.approx(4 / 3 * math.pi * 20 * 15 * 10, rel=2e-3)
    assert L[SOFT].sum() / K ** 2 == pytest.approx(2 / 3 * math.pi * 20 * 15 * 10, rel=3e-3)
    # a cylinder cut by an oblique plane: its volume is the mean length times the section
    tilted = cylinder([0, -20, 0], [0, 20, 0], (8, 6), 1.0, BONE, cut1=np.array([0.0, 1.0, 0.5]))
    vol = line_integrals([tilted], g)[BONE].sum() / K ** 2
    assert vol == pytest.approx(math.pi * 8 * 6 * 40, rel=3e-3)


def test_divergent_beam_magnifies_by_depth():
    g = _geometry(source_z=1000.0)
    near, far = [0.0, 10.0, 100.0], [0.0, 10.0, -100.0]
    y_near, y_far = project(g, [near, far])[:, 1] - 200
    assert y_near / y_far == pytest.approx((1000 + 100) / (1000 - 100), rel=1e-9)
    assert y_far == pytest.approx(10 * K * 1000 / 1100, rel=1e-9)


def test_silhouette_of_a_sphere_is_its_circle():
    g = _geometry()
    outline = silhouette(ellipsoid([5, -3, 0], np.eye(3), [12, 12, 12], 1.0, BONE), g)
    r = np.linalg.norm(outline - [200 + 5 * K, 200 - 3 * K], axis=1)
    assert np.abs(r - 12 * K).max() < 0.5


def test_interval_along_a_line():
    box = cylinder([0, 0, 0], [0, 10, 0], (5, 5), 1.0, BONE)
    assert interval(box, [-20, 5, 0], [1, 0, 0]) == pytest.approx((15.0, 25.0))
    assert interval(box, [-20, 50, 0], [1, 0, 0]) is None


@pytest.mark.parametrize("i", range(6))
def test_a_perfect_lateral_in_a_parallel_beam_gives_the_planned_angles(i):
    """Rim points projected straight (no turn, lean, scoliosis; parallel beam) are the sagittal
    plan's endplate points, so their angles are the plan's, to 0.01°."""
    rng = np.random.default_rng([21, i])
    patient = sample_patient(rng)
    plan = build_anatomy(patient, rng)
    patient = plan.plan
    scene = build_scene(patient, plan, rng, posture=False)
    g = _geometry()
    rims = {lv: {side: project(g, pts) for side, pts in sides.items()} for lv, sides in scene.rims.items()}
    heads = [[*project(g, [h[:3]])[0], h[3] * K] for h in scene.heads]
    got = angle_values(sagittal_angles(rims, heads))
    for name in ANGLE_NAMES:  # the patient's angles as built, which the plan realises
        assert got[name] == pytest.approx(getattr(patient, name), abs=0.01), name
    for lv, sides in scene.rims.items():
        for side, pts in sides.items():
            plan_pts = getattr(plan.bodies[lv], side)
            assert np.abs(project(g, pts) - (np.asarray(plan_pts) * K + 200)).max() < 0.01 * K, (lv, side)


def _bone_contrast(scatter: float, gap_mm: int) -> float:
    """Grey levels between a bone insert (+1.5 nats) in a thick body (8 nats, a lateral pelvis)
    and the body beside it, `gap_mm` from the open beam (px = mm)."""
    from spine_d2.synthetic.film import Exposure, develop

    A = np.full((300, 400), 8.0, np.float32)
    A[:, :100] = 0.0  # open beam beside the body
    x0 = 100 + gap_mm
    A[130:170, x0:x0 + 40] += 1.5
    exp = Exposure(photons=1e7, scatter=scatter, heel=0.0, blur_mm=0.3, equalise=0.0, equalise_mm=30.0,
                   detail=0.0, detail_mm=3.0, enhance=0.0, window=(0.001, 0.9999), gamma=1.0, sigmoid=0.0, seams=())
    film = develop(A, np.ones(A.shape, bool), A > 4.0, 1.0, exp, np.random.default_rng(0)).astype(float)
    return float(film[135:165, x0 + 5:x0 + 35].mean() - film[135:165, x0 + 45:x0 + 75].mean())


def test_scatter_comes_from_the_patient_so_bone_deep_in_a_thick_body_stays_visible():
    # without a grid (the highest scatter sampled), 30 mm and 150 mm inside a 8-nat body
    near, deep = _bone_contrast(0.4, 30), _bone_contrast(0.4, 150)
    assert near > 25 and deep > 25, (near, deep)
    # scatter still veils: more of it, less contrast
    assert _bone_contrast(0.0, 150) > deep + 5
