"""Synthetic patients and their lateral spine geometry: sampling in degrees, building in millimetres.

Patient frame: millimetres, x anterior (the patient faces +x), y down (caudal), origin at the
midpoint of the S1 superior endplate. `Anatomy.mapped(M)` takes every structure through a 3×3
matrix into another frame (the radiograph frame: pixels of the film, possibly mirrored).

A patient is drawn as *intended* spino-pelvic parameters (PI, PT, SS, LL_S1, LL, TK) with the
couplings of shared/PHANTOM.md; the spine is then built bottom-up from the S1 plate by chaining
vertebral bodies (level-dependent depth, height, wedging) and wedged discs, so the intended angles
hold by construction (balancing the trunk over the sacrum may move TK: `Anatomy.plan`). The ground
truth is never these intentions: it is what `spine_d2.angles.sagittal_angles` measures on the
stored endplates (see `generate`).

An endplate is ``[anterior, posterior]``: the two ends of the flat part of the plate, where the
rounded rim of the body starts. Both are vertices of the level's polygon.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from spine_d2.levels import LUMBAR, THORACIC
from spine_d2.synthetic.balance import add_kyphosis, balance_trunk, lean_off_target

# level: (endplate depth, mean body height, intended kyphotic wedge) in mm / degrees
# (Egwu 2019, Bang 2019, Palm 2025, Cook & Baker 2021, PMC2899959; see shared/PHANTOM.md)
BODY_DIMS: dict[str, tuple[float, float, float]] = {
    "C6": (16.0, 13.0, 0.0), "C7": (17.5, 14.0, 0.0),
    **{f"T{i}": (22.0 + (i - 1) * 10.0 / 11.0, h, k) for i, h, k in zip(
        range(1, 13),
        (16.5, 17.5, 17.8, 18.1, 18.4, 18.7, 19.0, 19.4, 19.8, 20.6, 21.4, 22.5),
        (2.5, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0, 4.0, 4.0, 3.5, 3.0, 3.0),
    )},
    "L1": (34.0, 24.5, 3.0), "L2": (36.0, 26.0, 2.0), "L3": (37.5, 27.0, 0.0),
    "L4": (37.5, 27.5, -2.0), "L5": (36.0, 28.0, -6.0),
}
# disc below each level: mean height mm (Fletcher 2015, Zhang 2018)
DISC_HEIGHT: dict[str, float] = {
    "C6": 4.0, "C7": 4.0,
    **{f"T{i}": 3.0 + (i - 1) * 2.0 / 11.0 for i in range(1, 12)},
    "T12": 6.0, "L1": 7.0, "L2": 9.0, "L3": 10.5, "L4": 12.0, "L5": 12.0,
}
#: lordosis shared by the lumbar discs L1-2 … L4-5 (Sci Rep 2022: 1, 6, 9, 13 of 51°)
LUMBAR_DISC_WEIGHTS = (1.0, 6.0, 9.0, 13.0)
S1_DEPTH, S1_HEIGHT = 37.0, 28.0
FEMORAL_HEAD_RADIUS = 23.5


@dataclass(frozen=True)
class Patient:
    """Intended sagittal parameters (degrees) and body size; the generator's input, not the truth."""

    kind: str  # "adult" | "deformity" | "cover"
    PI: float
    PT: float
    LL_S1: float
    LL: float
    TK: float
    size: float  # global scale of the skeleton

    @property
    def SS(self) -> float:
        return self.PI - self.PT


def sample_patient(rng: np.random.Generator, deformity_fraction: float = 0.15,
                   cover_fraction: float = 0.2) -> Patient:
    """One patient: coupled adult (Le Huec 2016), deformity (couplings broken) or range cover.

    "cover" patients draw TK, LL and SS uniformly over the reference study's ranges (TK 0.6–71°,
    LL 16–90°, SS 8–72°) so the extremes are always represented.
    """
    u = rng.random()
    kind = "cover" if u < cover_fraction else "deformity" if u < cover_fraction + deformity_fraction else "adult"
    l5s1 = float(np.clip(rng.normal(17.0, 5.0), 4.0, 32.0))
    if kind == "cover":
        ss = rng.uniform(8.0, 72.0)
        pt = float(np.clip(rng.normal(14.0, 9.0), -5.0, 40.0))
        pi = ss + pt
        ll = float(np.clip(ss + rng.uniform(-8.0, 30.0), 16.0, 90.0))
        tk = rng.uniform(0.6, 71.0)
    else:
        pi = float(np.clip(rng.normal(52.0, 11.0), 30.0, 90.0))
        if kind == "adult":
            pt = 0.44 * pi - 11.4 + rng.normal(0.0, 4.5)
            ll_s1 = 0.54 * pi + 27.6 + rng.normal(0.0, 7.0)
            tk = rng.normal(33.0 + 0.25 * (ll_s1 - 55.0), 11.0)
        else:  # sagittal imbalance: lost lordosis, retroverted pelvis (PI − LL > 10–20°, PT > 20°)
            pt = 0.44 * pi - 11.4 + rng.uniform(8.0, 22.0)
            ll_s1 = pi - rng.uniform(10.0, 40.0)
            tk = rng.normal(30.0, 18.0)
        pt = float(np.clip(pt, -5.0, 40.0))
        ss = float(np.clip(pi - pt, 8.0, 72.0))
        pt = pi - ss
        ll = max(ll_s1 - l5s1, 5.0)
        tk = float(np.clip(tk, 0.6, 75.0))
    return Patient(kind, float(pi), float(pt), float(ll + l5s1), float(ll), float(tk),
                   float(np.clip(rng.normal(1.0, 0.06), 0.85, 1.15)))


@dataclass
class Body:
    """One vertebral body (or the S1 segment): outline and endplates, in the frame of its owner."""

    polygon: np.ndarray  # (N, 2), closed implicitly
    superior: np.ndarray  # (2, 2) [anterior, posterior]
    inferior: np.ndarray  # (2, 2)
    posterior: np.ndarray | None = None  # outline of pedicle, facets, spinous process
    corners: np.ndarray | None = None  # (4, 2) unrounded [sup. anterior, sup. posterior, inf. posterior, inf. anterior]
    rounding: float = 0.0  # mm of plate given to the rounded rim at each corner
    waist: float = 0.0  # mm the anterior wall is drawn in at mid-height


@dataclass
class Anatomy:
    """The patient's sagittal plan (patient frame, mm): labelled `bodies` (C6–L5, S1) and `heads`,
    the sacrum below S1 and the pelvis frame the 3-D build hangs the pelvis and femora on."""

    bodies: dict[str, Body]
    heads: np.ndarray  # (k, 3) cx, cy, r of the femoral heads
    sacrum: np.ndarray  # outline of S2…coccyx (unlabelled)
    sacral: np.ndarray | None = None  # (6, 2, 2) [anterior, posterior] points down the sacrum
    pelvis: dict | None = None  # axis (hip axis, mm), e1 (S1 midpoint → hip axis), e2 (anterior), dist (mm)
    plan: Patient | None = None  # the patient as built: TK as the trunk's balance left it


def _dirs(tilt_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors along an endplate (posterior → anterior) and its normal pointing cranially."""
    t = math.radians(tilt_deg)
    return np.array([math.cos(t), -math.sin(t)]), np.array([-math.sin(t), -math.cos(t)])


def smooth_closed(p: np.ndarray, iterations: int = 3) -> np.ndarray:
    """Chaikin corner cutting of a closed outline (for unlabelled structures only)."""
    p = np.asarray(p, float)
    for _ in range(iterations):
        q = np.roll(p, -1, axis=0)
        p = np.stack([0.75 * p + 0.25 * q, 0.25 * p + 0.75 * q], axis=1).reshape(-1, 2)
    return p


def _bezier(p0, c, p1, k: int) -> np.ndarray:
    s = np.linspace(0.0, 1.0, k)[:, None]
    return (1 - s) ** 2 * p0 + 2 * (1 - s) * s * c + s ** 2 * p1


def rounded_body(a_sup, p_sup, p_inf, a_inf, r_plate: float, r_wall: float, waist: float):
    """Outline of a body with rounded corners and a concave anterior wall.

    Returns (polygon, superior [ant, post], inferior [ant, post]); the endplate points are where the
    flat plate meets the rounded rim and are vertices of the polygon.
    """
    corners = [np.asarray(c, float) for c in (a_sup, p_sup, p_inf, a_inf)]
    unit = lambda v: v / np.linalg.norm(v)  # noqa: E731
    pts: list[np.ndarray] = []
    plate_pts = {}
    for i, c in enumerate(corners):
        prev, nxt = corners[i - 1], corners[(i + 1) % 4]
        # edges: 0→1 superior plate, 1→2 posterior wall, 2→3 inferior plate, 3→0 anterior wall
        r_in = r_plate if i in (1, 3) else r_wall
        r_out = r_plate if i in (0, 2) else r_wall
        t_in, t_out = c + r_in * unit(prev - c), c + r_out * unit(nxt - c)
        arc = _bezier(t_in, c, t_out, 4)
        pts.extend(arc)
        plate_pts[i] = t_out if i in (0, 2) else t_in
        if i == 3:  # concave anterior wall between A_inf and A_sup
            mid = (c + corners[0]) / 2 + waist * unit(corners[1] - corners[0])
            pts.append(mid)
        if i == 1:
            mid = (c + corners[2]) / 2 + 0.3 * waist * unit(corners[3] - corners[2])
            pts.append(mid)
    poly = np.array(pts)
    # keep the plate points exactly (they are arc ends already); order: start at superior anterior
    sup = np.array([plate_pts[0], plate_pts[1]])
    inf = np.array([plate_pts[3], plate_pts[2]])
    return poly, sup, inf


def _posterior_elements(p_sup, p_inf, tilt: float, h: float, level: str, rng) -> np.ndarray:
    """Pedicle, articular processes and spinous process behind a body (unlabelled)."""
    u, n = _dirs(tilt)
    base = (np.asarray(p_sup) + np.asarray(p_inf)) / 2 - n * h / 2
    thoracic = level.startswith("T")
    ls = (30.0 if thoracic else 32.0) * rng.uniform(0.85, 1.15)
    ds = (0.75 if thoracic else 0.15) * ls
    local = [(0, 0.85), (-14, 0.95), (-20, 1.28), (-27, 1.05), (-31, 0.8),
             (None, None), (-25, 0.2), (-21, -0.22), (-15, 0.05), (0, 0.3)]
    out = []
    for du, dn in local:
        if du is None:  # spinous process, in mm from its base
            out.append(base - u * (31 + ls) + n * (0.8 * h - ds))
            out.append(base - u * (30 + ls) + n * (0.8 * h - ds - 9))
            continue
        out.append(base + u * du + n * dn * h)
    out = np.array(out) + rng.normal(0.0, 1.2, (len(out), 2))
    return smooth_closed(out, 2)


def build_anatomy(patient: Patient, rng: np.random.Generator, pathology=None) -> Anatomy:
    """The sagittal plan of `patient` (patient frame): the spine chained up from S1, the sacrum
    and the hip axis; `pathology` (`spine_d2.synthetic.pathology.Pathology`) may narrow discs,
    wedge fractured bodies, slip a level or make the lumbosacral segment transitional."""
    from spine_d2.synthetic.pathology import Pathology, apply_to_plan

    pathology = pathology or Pathology()
    s = patient.size
    # --- segmental angles (lordotic positive), bottom-up ---------------------------------------
    wedge = {lv: -BODY_DIMS[lv][2] + rng.normal(0, 1.0) for lv in BODY_DIMS}
    disc = {lv: rng.normal(0, 1.0) for lv in DISC_HEIGHT}
    disc["L5"] = patient.LL_S1 - patient.LL  # L5-S1
    lumbar_w = sum(wedge[lv] for lv in LUMBAR)
    weights = np.array(LUMBAR_DISC_WEIGHTS) * rng.uniform(0.7, 1.3, 4)
    for lv, share in zip(LUMBAR[:4], weights / weights.sum()):
        disc[lv] = (patient.LL - lumbar_w) * share
    tk_levels = THORACIC[4:]  # T5…T12 bodies; discs T5-6 … T11-12
    rho = rng.uniform(0.7, 0.9)  # share of TK from wedging (Finoco 2025)
    ww = rng.uniform(0.7, 1.3, len(tk_levels))
    tk_per_degree = {lv: -rho * share for lv, share in zip(tk_levels, ww / ww.sum())}
    tk_per_degree.update({f"disc {lv}": -(1 - rho) / (len(tk_levels) - 1) for lv in tk_levels[:-1]})
    wedge.update({lv: 0.0 for lv in tk_levels})
    disc.update({lv: 0.0 for lv in tk_levels[:-1]})
    add_kyphosis(wedge, disc, tk_per_degree, patient.TK)
    disc["T12"] = rng.normal(0.0, 2.0)
    for lv in THORACIC[:4]:
        wedge[lv] = -abs(rng.normal(3.0, 1.5))
    disc["C7"] = rng.normal(4.0, 2.0)
    disc["C6"] = rng.normal(6.0, 2.0)
    heights = dict(DISC_HEIGHT)
    apply_to_plan(pathology, wedge, disc, heights, tk_levels)

    # --- chain the bodies upward, balancing the trunk over the sacrum --------------------------
    chain_seed = int(rng.integers(2**31))

    def chain():
        return _chain(patient, wedge, disc, np.random.default_rng(chain_seed), heights, pathology.slips)

    bodies = chain()[0]
    target_x = bodies["S1"].superior[1][0] + rng.normal(10.0, 20.0) * s + (
        rng.uniform(20.0, 70.0) * s if patient.kind == "deformity" else 0.0)
    tk = balance_trunk(lambda: lean_off_target(chain()[0], target_x), wedge, disc, tk_per_degree, patient.TK)
    patient = replace(patient, TK=tk)
    bodies, a_b, p_b, d1 = chain()
    t_s1 = -patient.SS
    anat = _surroundings(patient, bodies, a_b, p_b, d1, t_s1, rng, pathology.transitional == "lumbarised S1")
    anat.plan = patient
    return anat


def _chain(patient: Patient, wedge: dict, disc: dict, rng: np.random.Generator, heights: dict, slips: dict):
    """Bodies S1 → C6 chained upward from the S1 plate (midpoint at the origin, tilt −SS); disc
    heights in mm at size 1, `slips` mm forward over the level below."""
    s = patient.size
    bodies: dict[str, Body] = {}
    t_s1 = -patient.SS
    u, n = _dirs(t_s1)
    d1 = S1_DEPTH * s * rng.uniform(0.95, 1.05)
    a_s1, p_s1 = u * d1 / 2, -u * d1 / 2
    # S1 segment: down along the sacral axis, anterior wall a little longer
    down = -n
    a_b = a_s1 + down * S1_HEIGHT * s + u * 3.0
    p_b = p_s1 + down * (S1_HEIGHT - 4.0) * s + u * 5.0
    poly, sup, inf = rounded_body(a_s1, p_s1, p_b, a_b, 1.8 * s, 2.5 * s, 0.8)
    bodies["S1"] = Body(poly, sup, inf, None, np.array([a_s1, p_s1, p_b, a_b]), 1.8 * s, 0.8)
    below_sup, t_below = (a_s1, p_s1), t_s1
    order = ("L5", "L4", "L3", "L2", "L1") + tuple(reversed(THORACIC)) + ("C7", "C6")
    for lv in order:
        depth, height, _ = BODY_DIMS[lv]
        depth, height = depth * s * rng.uniform(0.96, 1.04), height * s * rng.uniform(0.96, 1.04)
        d_ang = disc[lv]
        t_inf = t_below + d_ang
        ub, nb = _dirs(t_below)
        d_prev = np.linalg.norm(below_sup[0] - below_sup[1])
        hd = max(heights[lv] * s, d_prev / 2 * math.tan(math.radians(abs(d_ang))) + 1.2)
        mid = (below_sup[0] + below_sup[1]) / 2 + nb * hd + ub * (rng.normal(0.0, 1.0) + slips.get(lv, 0.0))
        ui, ni = _dirs(t_inf)
        a_i, p_i = mid + ui * depth / 2, mid - ui * depth / 2
        w = wedge[lv]
        tw = math.tan(math.radians(w)) * depth / 2
        height = max(height, abs(tw) + 4.0)
        a_s, p_s = a_i + ni * (height + tw), p_i + ni * (height - tw)
        r_plate, waist = rng.uniform(1.2, 2.2) * s, rng.uniform(0.5, 1.5)
        poly, sup, inf = rounded_body(a_s, p_s, p_i, a_i, r_plate, r_plate * 1.3, waist)
        t_sup = t_inf + w
        post = _posterior_elements(p_s, p_i, (t_inf + t_sup) / 2, height, lv, rng)
        bodies[lv] = Body(poly, sup, inf, post, np.array([a_s, p_s, p_i, a_i]), r_plate, waist)
        below_sup, t_below = (a_s, p_s), t_sup
    return bodies, a_b, p_b, d1


def _surroundings(patient: Patient, bodies: dict, a_b, p_b, d1: float, t_s1: float,
                  rng: np.random.Generator, lumbarised: bool = False) -> Anatomy:
    """The sacrum below S1 (a disc-like gap under a lumbarised S1) and the hip axis (PT off the
    vertical, ~3.3 S1 plate lengths away)."""
    s = patient.size
    # --- sacrum below S1: a curved, tapering column of fused segments --------------------------
    if lumbarised:
        gap = -_dirs(t_s1)[1] * 6.0 * s
        a_b, p_b = a_b + gap, p_b + gap
    sac_a, sac_p = [a_b], [p_b]
    ang, width = t_s1, np.linalg.norm(a_b - p_b)
    pa, pp = a_b, p_b
    for k in range(5):
        ang += rng.uniform(4.0, 9.0)  # the sacrum is concave anteriorly
        uk, nk = _dirs(ang)
        seg = (22.0 - 2.5 * k) * s
        centre = (pa + pp) / 2 - nk * seg
        width *= 0.8 if k else 1.0
        pa, pp = centre + uk * width / 2, centre - uk * width / 2
        sac_a.append(pa)
        sac_p.append(pp)
    sacrum = smooth_closed(np.array(sac_a + sac_p[::-1]), 2)
    # --- femoral heads on the hip axis (both project there on a true lateral) -------------------
    dist = 3.3 * d1 * rng.uniform(0.92, 1.05)
    pt = math.radians(patient.PT)
    axis = dist * np.array([math.sin(pt), math.cos(pt)])
    r1, r2 = FEMORAL_HEAD_RADIUS * s * rng.uniform(0.95, 1.05, 2)
    heads = np.array([[*axis, r1], [*axis, r2]])
    e1 = axis / dist  # pelvis frame: S1 midpoint → hip axis, and anterior
    e2 = np.array([e1[1], -e1[0]])
    e2 = -e2 if e2[0] < 0 else e2
    return Anatomy(bodies, heads, sacrum, np.stack([np.array(sac_a), np.array(sac_p)], 1),
                   {"axis": axis, "e1": e1, "e2": e2, "dist": dist})
