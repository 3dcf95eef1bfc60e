"""The sacrum, pelvis and femora as solids, hung on the sagittal plan's S1 and hip axis.

Patient frame (mm, x anterior, y caudal, z lateral). Pelvis frame of the plan: e1 from the S1
endplate's midpoint to the hip axis (`dist` mm away, PT off the vertical), e2 anterior. The two
femoral heads sit on the hip axis `hip_half` mm either side of the mid-sagittal plane; the
acetabula cup them, the iliac wings rise lateral to the sacrum, the ischia and pubic rami close the
ring below, the femoral necks and shafts run down and out.
"""
from __future__ import annotations

import numpy as np

from spine_d2.synthetic.anatomy import Anatomy, Body
from spine_d2.synthetic.solids import (BONE, Solid, cross, ellipsoid, frame, half_space, shelled,
                                       tube)
from spine_d2.synthetic.vertebrae import EW, BoneMaterial, Pose, body_frame, vertebral_body


def _p3(p2, z: float = 0.0) -> np.ndarray:
    return np.array([p2[0], p2[1], z])


def sacrum(anat: Anatomy, s1_width: float, mat: BoneMaterial, pose: Pose, rng: np.random.Generator) -> list[Solid]:
    """S2…S5 fused below S1 (tapering, narrowing), the sacral alae beside S1 and the dorsal crest."""
    out = []
    pairs = anat.sacral  # (6, 2, 2): [anterior, posterior] from the S1 inferior plate down
    for k in range(len(pairs) - 2):
        corners = np.array([pairs[k][0], pairs[k][1], pairs[k + 1][1], pairs[k + 1][0]])
        body = Body(corners, corners[:2], corners[2:], None, corners, 1.5, 0.3)
        width = s1_width * (0.85 - 0.15 * k)
        solids, _, _ = vertebral_body("", body, width, mat, pose)
        out += solids
    e_u, e_v, (a_s, p_s, p_i, a_i) = body_frame(anat.bodies["S1"].corners)
    centre = (a_s + p_s + p_i + a_i) / 4
    d = float(np.linalg.norm(a_s - p_s))
    axes = np.stack([e_u, e_v, EW])
    for side in (-1.0, 1.0):
        c = centre + EW * side * (s1_width / 2 + 20.0) - e_u * 4.0 - e_v * 2.0
        make = lambda mu, channel, tag="", semi=(0.0, 0.0, 0.0): ellipsoid(c, axes, semi, mu, channel, tag=tag)  # noqa: E731
        semi = np.array([0.45 * d, 13.0, 26.0]) * rng.uniform(0.9, 1.1)
        out += shelled(make, {"semi": semi}, {"semi": semi - 1.0}, mat.cortical, 0.5 * mat.trabecular)
        facet = p_s - e_u * 8.0 + e_v * 4.0 + EW * side * 0.3 * s1_width
        out.append(ellipsoid(facet, axes, [6.0, 8.0, 5.0], 0.7 * mat.cortical, BONE))
    crest = np.array([pairs[k][1] for k in range(len(pairs))]) + 0.0
    crest3 = np.array([_p3(p) for p in crest]) - np.array([_p3(e_u[:2] * 14.0)] * len(crest))
    out += tube(crest3, 6.0, 1.2, mat.cortical, 0.6 * mat.trabecular)
    return [pose.solid(s) for s in out]


def femoral_heads(anat: Anatomy, hip_half: float, rng: np.random.Generator) -> np.ndarray:
    """(2, 4) femoral heads [x, y, z, r] (mm), one either side of the mid-sagittal plane."""
    ax = anat.pelvis["axis"]
    off = rng.normal(0.0, 2.0, 2)
    return np.array([[ax[0] + off[0], ax[1] + off[1], -hip_half, anat.heads[0][2]],
                     [ax[0] - off[0], ax[1] - off[1], hip_half, anat.heads[1][2]]])


def pelvis_and_femora(anat: Anatomy, heads: np.ndarray, mat: BoneMaterial, pose: Pose,
                      rng: np.random.Generator) -> list[Solid]:
    """Iliac wings and crests, arcuate lines, acetabula, ischia, pubic rami and both femora."""
    c, t = mat.cortical, mat.trabecular
    e1, e2 = _p3(anat.pelvis["e1"]), _p3(anat.pelvis["e2"])
    s1 = anat.bodies["S1"].corners
    out = []
    for head in heads:
        side = float(np.sign(head[2]))
        centre, r = head[:3], float(head[3])
        lat = EW * side
        # acetabulum: a hemispherical shell over the head, open laterally, anteriorly and down
        opening = 0.75 * lat + 0.45 * e1 + 0.35 * e2
        cut = half_space(opening, centre)
        out.append(ellipsoid(centre, np.eye(3), [r + 7.0] * 3, 0.8 * c, BONE, [cut]))
        out.append(ellipsoid(centre, np.eye(3), [r + 1.5] * 3, -0.8 * c, BONE, [cut]))
        # iliac wing: a thin plate from the sacroiliac joint up and forward, turned out ~40°
        s1_mid = _p3((s1[0] + s1[1]) / 2)
        up = np.array([0.0, -1.0, 0.0])
        crest_y = float(anat.bodies["L4"].corners[2:, 1].mean()) + rng.uniform(-10.0, 15.0)
        roof_y = centre[1] - r - 8.0
        psis = float(anat.bodies["S1"].corners[[1, 2], 0].mean()) - rng.uniform(15.0, 30.0)
        asis = centre[0] + rng.uniform(30.0, 55.0)
        wing_c = np.array([(psis + asis) / 2, (crest_y + roof_y) / 2, 0.0]) + lat * 70.0
        turn = np.radians(rng.uniform(20.0, 35.0))
        horiz = np.cos(turn) * np.array([1.0, 0, 0]) + np.sin(turn) * lat
        rows = frame(cross(up, horiz), up)  # e0 cranial, e1 ~ anterior-lateral, e2 the wing's normal
        semi = np.array([(roof_y - crest_y) / 2 + 12.0, (asis - psis) / 2 / np.cos(turn), 3.0])
        make = lambda mu, channel, tag="", semi=semi: ellipsoid(wing_c, rows, semi, mu, channel, tag=tag)  # noqa: E731
        out += shelled(make, {"semi": semi}, {"semi": semi - [1.0, 1.0, 1.3]}, c, 0.6 * t)
        ang = np.linspace(-0.75 * np.pi, 0.6 * np.pi, 9)  # crest: the wing's cranial rim, PSIS → ASIS
        crest = wing_c + np.outer(np.cos(ang), rows[0] * semi[0] * 0.96) + np.outer(np.sin(ang), rows[1] * semi[1] * 0.96)
        out += tube(crest, 5.0, 1.3, c, 0.5 * t)
        # arcuate line: from the sacral ala past the acetabulum's roof to the pubic symphysis
        symph = centre + e2 * 55.0 + e1 * 25.0 - lat * (abs(head[2]) - 5.0)
        start = s1_mid + lat * 35.0 + e1 * 10.0
        brim = np.array([start, (start + centre) / 2 + e2 * 12.0 - lat * 10.0, centre - e1 * (r + 12.0) + e2 * 8.0 - lat * 22.0,
                         centre + e2 * 35.0 - e1 * 5.0 - lat * 30.0, symph])
        out += tube(brim, 2.5, 0.8, 0.7 * c, 0.3 * t)
        tuber = centre + e1 * 60.0 - e2 * 25.0 - lat * 15.0
        out += tube(np.array([centre + e1 * (r + 4.0) - e2 * 10.0, tuber]), 11.0, 1.6, c, 0.6 * t)
        out += tube(np.array([tuber, symph + e1 * 30.0]), 6.0, 1.3, c, 0.6 * t)
        out += _femur(centre, r, lat, e2, mat, rng)
    return [pose.solid(s) for s in out]


def _femur(centre, r, lat, anterior, mat: BoneMaterial, rng) -> list[Solid]:
    c, t = mat.cortical, mat.trabecular
    down = np.array([0.0, 1.0, 0.0])
    make = lambda mu, channel, tag="", rad=r: ellipsoid(centre, np.eye(3), [rad] * 3, mu, channel, tag=tag)  # noqa: E731
    out = shelled(make, {"rad": r}, {"rad": r - 1.5}, c, t)
    neck_dir = lat * np.cos(np.radians(40)) + down * np.sin(np.radians(40)) + anterior * 0.2
    neck_dir /= np.linalg.norm(neck_dir)
    base = centre + neck_dir * rng.uniform(48.0, 56.0)
    out += tube(np.array([centre + neck_dir * (r - 4.0), base]), 15.0, 1.8, c, t, hint=down, flat=0.8)
    out.append(ellipsoid(base + lat * 12.0 - down * 8.0 - anterior * 6.0, np.eye(3), [16.0, 22.0, 14.0], 0.9 * c, BONE))
    out.append(ellipsoid(base - lat * 18.0 + down * 25.0 - anterior * 12.0, np.eye(3), [8.0, 10.0, 8.0], 0.8 * c, BONE))
    knee = base + down * rng.uniform(260.0, 330.0) - lat * 35.0 + anterior * 10.0
    bow = (base + knee) / 2 + anterior * 8.0
    out += tube(np.array([base + down * 10.0, bow, knee]), 13.5, 5.0, c, 0.1 * t)
    return out
