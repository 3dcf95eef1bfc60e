"""Vertebrae as solids: the body (cortical shell, trabecular core, concave endplates, rounded rims,
waisted wall) and the posterior elements, built from a level's sagittal corners (mm).

Local frame of a level (patient frame, mm): e_u along its inferior endplate towards anterior, e_v
cranial along the walls, e_w lateral (z). The body is an elliptic cross-section (a one-sheet
hyperboloid when waisted) cut by the two endplate planes, a flat posterior wall and four
chamfers that round the rims; a `Pose` then places the level in 3-D (scoliosis, axial rotation,
a patient not quite lateral). Endplate ground truth: the anterior and posterior ends of the flat
plate in the level's mid-sagittal plane (where the rim's rounding starts), as a reader clicks them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from spine_d2.synthetic.anatomy import Body
from spine_d2.synthetic.projection import interval
from spine_d2.synthetic.solids import (BONE, TRABECULAR, Quadric, Solid, cross, cylinder, ellipsoid,
                                       half_space, norm, shelled)

EW = np.array([0.0, 0.0, 1.0])
AP_FRACTION = 0.58  # the cross-section's AP semi-axis as a share of the endplate depth


@dataclass(frozen=True)
class Pose:
    """Rigid motion (or a mirror) of the patient frame: X ↦ R·X + t (mm)."""

    R: np.ndarray
    t: np.ndarray

    @staticmethod
    def identity() -> "Pose":
        return Pose(np.eye(3), np.zeros(3))

    @staticmethod
    def about(R: np.ndarray, pivot) -> "Pose":
        """`R` about the point `pivot`."""
        pivot = np.asarray(pivot, float)
        return Pose(np.asarray(R, float), pivot - np.asarray(R, float) @ pivot)

    def then(self, other: "Pose") -> "Pose":
        """This motion followed by `other`."""
        return Pose(other.R @ self.R, other.R @ self.t + other.t)

    def point(self, p) -> np.ndarray:
        return np.asarray(p, float) @ self.R.T + self.t

    def solid(self, s: Solid) -> Solid:
        RT = self.R.T
        quads = [Quadric(self.point(q.centre), q.axes @ RT, q.k) for q in s.quadrics]
        planes = []
        for n, d in s.planes:  # n·X + d ≤ 0 with X = R⁻¹(Y − t)
            n2 = self.R @ n
            planes.append((n2, d - float(n2 @ self.t)))
        return replace(s, quadrics=quads, planes=planes, box_centre=self.point(s.box_centre),
                       box_axes=s.box_axes @ RT)


def rotation(axis, degrees: float) -> np.ndarray:
    """Rotation matrix about `axis` by `degrees` (right hand)."""
    k = np.asarray(axis, float) / norm(axis)
    a = np.radians(degrees)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K


@dataclass(frozen=True)
class BoneMaterial:
    """Relative attenuation (1/mm, minus soft tissue) and shell thicknesses (mm) of a patient's bone."""

    cortical: float
    trabecular: float
    cortex: float  # vertebral wall
    endplate: float  # bony endplate
    concavity: float  # central depression of the endplates


def _xyz(p2) -> np.ndarray:
    return np.array([p2[0], p2[1], 0.0])


def _unit(v) -> np.ndarray:
    return v / norm(v)


def _outward(n, inside, point) -> np.ndarray:
    """`n` oriented to point away from `inside` (as seen from `point`)."""
    return n if float(n @ (point - inside)) > 0 else -n


def body_frame(corners: np.ndarray):
    """(e_u, e_v, plate points) of a body's sagittal corners [a_s, p_s, p_i, a_i] (mm)."""
    a_s, p_s, p_i, a_i = (_xyz(c) for c in corners)
    e_u = _unit(a_i - p_i)
    e_v = np.array([e_u[1], -e_u[0], 0.0])  # cranial (y points down)
    return e_u, e_v, (a_s, p_s, p_i, a_i)


def body_solid(body: Body, width: float, shrink: float = 0.0, plate_in: float = 0.0, **kw) -> Solid:
    """The body's outline solid (cortical outer surface), or an inner one `shrink` mm inside its
    walls and `plate_in` mm inside its endplates.

    Mid-sagittally the body is its trapezoid of corners: four planes (the endplates and the flat
    anterior and posterior walls, each containing the lateral axis) with chamfered rims. Around
    them a waisted quadric (one-sheet hyperboloid along the body's axis, centred behind the
    middle) rounds the cross-section laterally and draws the anterior wall in by `body.waist` mm
    at mid-height, where it lies inside the anterior plane."""
    a_s, p_s, p_i, a_i = (_xyz(c) for c in body.corners)
    m_s, m_i = (a_s + p_s) / 2, (a_i + p_i) / 2
    e_v = _unit(m_s - m_i)
    e_u = np.array([-e_v[1], e_v[0], 0.0])
    e_u = e_u if e_u @ (a_s + a_i - p_s - p_i) > 0 else -e_u
    centre = (a_s + p_s + p_i + a_i) / 4
    d = 0.5 * (norm(a_s - p_s) + norm(a_i - p_i))
    h = norm(m_s - m_i)
    x_ant = float(((a_s + a_i) / 2 - centre) @ e_u)  # the anterior plane, at mid-height
    a_w = AP_FRACTION * d
    u_c = x_ant - body.waist - a_w
    b_w = width / 2 - body.waist
    k_end = (x_ant + 1.5 + 0.05 * d - u_c) / a_w  # the quadric clears the wall's plane at the plates
    ch = (h / 2 + 2.0) / np.sqrt(k_end ** 2 - 1.0)
    axes = np.array([e_u, e_v, EW])
    quad = Quadric(centre + e_u * u_c, axes, np.array([1 / (a_w - shrink) ** 2, -1 / ch ** 2, 1 / (b_w - shrink) ** 2]))
    planes = []
    for p0, p1, inset in ((a_s, p_s, plate_in), (p_i, a_i, plate_in), (a_i, a_s, shrink), (p_s, p_i, shrink)):
        n = _unit(_outward(cross(p1 - p0, EW), centre, p0))  # superior, inferior, anterior, posterior
        planes.append(half_space(n, p0 - n * inset))
    r = body.rounding
    for c, along, down in ((a_s, p_s, a_i), (p_s, a_s, p_i), (p_i, a_i, p_s), (a_i, p_i, a_s)):
        q1, q2 = c + _unit(along - c) * r, c + _unit(down - c) * 1.3 * r
        n = _unit(_outward(cross(q2 - q1, EW), centre, c))
        planes.append(half_space(n, q1 - n * shrink))
    tall = max(norm(a_s - a_i), norm(p_s - p_i))
    half = np.array([d / 2 + 3.0, tall / 2 + 3.0, width / 2 * k_end + 2.0])
    return Solid([quad], planes, 0.0, BONE, centre, axes, half, **kw)


def rim_points(outer: Solid, body: Body) -> dict[str, np.ndarray]:
    """Endplate ground truth in the local (unposed) frame: side → (2, 3) [anterior, posterior]."""
    e_u, e_v, (a_s, p_s, p_i, a_i) = body_frame(body.corners)
    out = {}
    for side, (ant, post) in (("superior", (a_s, p_s)), ("inferior", (a_i, p_i))):
        along = _unit(ant - post)
        inward = -e_v if side == "superior" else e_v
        normal = _unit(cross(along, EW))
        normal = normal if normal @ inward > 0 else -normal
        mid = (ant + post) / 2 + normal * 1e-3
        t = interval(outer, mid, along)
        out[side] = np.array([mid + along * t[1], mid + along * t[0]])
    return out


def vertebral_body(level: str, body: Body, width: float, mat: BoneMaterial, pose: Pose):
    """Solids of one body and its endplate ground truth (3-D, posed): (solids, outer, rims)."""
    def make(mu, channel, tag="", shrink=0.0, plate_in=0.0):
        return replace(body_solid(body, width, shrink, plate_in), mu=mu, channel=channel, tag=tag)

    solids = shelled(make, {}, {"shrink": mat.cortex, "plate_in": mat.endplate}, mat.cortical, mat.trabecular,
                     tag=level)
    outer = body_solid(body, width)
    e_u, e_v, (a_s, p_s, p_i, a_i) = body_frame(body.corners)
    d = float(np.linalg.norm(a_i - p_i))
    for ant, post, inward in ((a_s, p_s, -e_v), (a_i, p_i, e_v)):
        along = _unit(ant - post)
        normal = _unit(cross(along, EW))
        normal = normal if normal @ inward > 0 else -normal
        mid = (ant + post) / 2 + along * 0.04 * d
        axes = np.stack([along, normal, EW])
        depth = mat.concavity
        plate = half_space(-normal, mid)  # the body side of the plate
        inner_plate = half_space(-normal, mid + normal * mat.endplate)
        solids.append(ellipsoid(mid, axes, [0.36 * d, depth, 0.32 * width], -mat.cortical, BONE, [plate]))
        semi = [0.34 * d, depth + mat.endplate, 0.30 * width]
        solids.append(ellipsoid(mid, axes, semi, mat.cortical, BONE, [inner_plate]))
        solids.append(ellipsoid(mid, axes, semi, -mat.trabecular, TRABECULAR, [inner_plate]))
    rims = {side: np.array([pose.point(p) for p in pts]) for side, pts in rim_points(outer, body).items()}
    return [pose.solid(s) for s in solids], pose.solid(replace(outer, tag=level)), rims


def _kind(level: str) -> str:
    return "lumbar" if level.startswith("L") else "cervical" if level.startswith("C") else "thoracic"


def posterior_elements(level: str, body: Body, width: float, mat: BoneMaterial, pose: Pose,
                       rng: np.random.Generator) -> list[Solid]:
    """Pedicles, laminae, spinous, transverse and articular processes behind a body (unlabelled)."""
    e_u, e_v, (a_s, p_s, p_i, a_i) = body_frame(body.corners)
    kind = _kind(level)
    h = float((p_s - p_i) @ e_v)
    base = (p_s + p_i) / 2
    c, t = mat.cortical, mat.trabecular
    ped_len = {"lumbar": 13.0, "thoracic": 11.0, "cervical": 7.0}[kind] * rng.uniform(0.85, 1.15)
    ped_w = {"lumbar": 5.0, "thoracic": 3.5, "cervical": 2.8}[kind] * rng.uniform(0.85, 1.2)
    lam_len = {"lumbar": 16.0, "thoracic": 15.0, "cervical": 12.0}[kind] * rng.uniform(0.85, 1.15)
    sp_len = {"lumbar": 30.0, "thoracic": 40.0, "cervical": 25.0}[kind] * rng.uniform(0.85, 1.15)
    sp_down = np.radians({"lumbar": rng.uniform(0, 15), "thoracic": rng.uniform(30, 60),
                          "cervical": rng.uniform(10, 30)}[kind])
    sp_h = {"lumbar": 0.3 * h, "thoracic": 4.5, "cervical": 4.0}[kind]
    out = []
    spine_base = base - e_u * (ped_len + lam_len) - e_v * (0.25 * h if kind == "thoracic" else 0.05 * h)
    for side in (-1.0, 1.0):
        p0 = base + e_v * 0.15 * h + EW * side * 0.3 * width - e_u * 1.0
        p1 = p0 - e_u * ped_len + EW * side * 2.0
        ped = {"p0": p0, "p1": p1, "hint": e_v}
        out += shelled(cylinder, {**ped, "radii": (0.3 * h, ped_w)},
                       {**ped, "radii": (0.3 * h - 1.0, max(ped_w - 1.0, 0.5))}, c, t)
        out.append(cylinder(p1, spine_base + EW * side * 2.0, (0.36 * h, 2.8), 0.75 * c, BONE, hint=e_v))
        if kind == "lumbar":
            tp_end = p1 + EW * side * rng.uniform(14, 24) - e_u * 3.0
        else:
            tp_end = p1 + EW * side * rng.uniform(16, 22) - e_u * 12.0 + e_v * 3.0
        out.append(cylinder(p1 - e_u * 2.0, tp_end, (4.5, 4.0), 0.7 * c, BONE, hint=e_v))
        sup_art = p1 + e_v * 0.45 * h - e_u * 2.0
        inf_art = p1 - e_v * 0.55 * h - e_u * 7.0
        for centre in (sup_art, inf_art):
            out.append(ellipsoid(centre, np.stack([e_u, e_v, EW]), [4.5, 8.0, 3.5], 0.35 * c, BONE))
    d_sp = -e_u * np.cos(sp_down) - e_v * np.sin(sp_down)
    tip = spine_base + d_sp * sp_len
    sp = {"p0": spine_base, "p1": tip, "hint": e_v}
    out += shelled(cylinder, {**sp, "radii": (sp_h, 2.6)}, {**sp, "radii": (max(sp_h - 1.2, 1.0), 1.5)}, c, t)
    knob = {"lumbar": (7.0, 0.38 * h, 4.0), "thoracic": (5.0, 6.0, 4.0), "cervical": (4.0, 5.0, 5.0)}[kind]
    out.append(ellipsoid(tip, np.stack([d_sp, cross(EW, d_sp), EW]), knob, 0.6 * c, BONE))
    return [pose.solid(s) for s in out]
