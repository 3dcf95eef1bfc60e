"""The bony thorax and shoulders as solids: 12 pairs of ribs, sternum, clavicles, scapulae, humeri.

Patient frame (mm, x anterior, y caudal, z lateral). The chest at thoracic level n is an ellipse
in the axial plane (AP semi-axis `chest_a[n]`, lateral `chest_b[n]`) whose posterior part holds
the spine; each rib runs from its costovertebral joint past the transverse process and round
that ellipse to the front, dropping caudally as it goes, and moves with its vertebra's pose.
"""
from __future__ import annotations

import numpy as np

from spine_d2.levels import THORACIC
from spine_d2.synthetic.anatomy import Anatomy
from spine_d2.synthetic.solids import BONE, MU_SOFT, SOFT, cross, ellipsoid, frame, shelled, tube
from spine_d2.synthetic.vertebrae import EW, BoneMaterial, Pose, body_frame

#: chest semi-axes (AP, lateral) in mm for T1…T12 at patient size 1 (~)
CHEST_A = np.interp(np.arange(12), [0, 3, 8, 11], [45.0, 75.0, 105.0, 100.0])
CHEST_B = np.interp(np.arange(12), [0, 3, 7, 11], [65.0, 115.0, 140.0, 135.0])


def chest(anat: Anatomy, girth: float) -> dict[str, tuple[float, float, float, float]]:
    """Per thoracic level: (x of the chest's centre, y of the level, AP and lateral semi-axes)."""
    out = {}
    for i, lv in enumerate(THORACIC):
        c = anat.bodies[lv].corners
        post_x = float((c[1][0] + c[2][0]) / 2)
        a, b = CHEST_A[i] * girth, CHEST_B[i] * girth
        out[lv] = (post_x - 45.0 * girth + a, float(c[:, 1].mean()), a, b)
    return out


def ribs(anat: Anatomy, poses: dict[str, Pose], mat: BoneMaterial, girth: float,
         rng: np.random.Generator) -> list:
    """Both ribs of T1…T12 (floating ribs 11 and 12 short), each posed with its vertebra."""
    ch = chest(anat, girth)
    out = []
    for i, lv in enumerate(THORACIC):
        e_u, e_v, (a_s, p_s, p_i, a_i) = body_frame(anat.bodies[lv].corners)
        width = float(np.linalg.norm(a_s - p_s)) * 1.15
        xc, yc, a, b = ch[lv]
        drop = (25.0 + 40.0 * np.sin(np.pi * min(i, 9) / 11)) * girth * rng.uniform(0.8, 1.2)
        end = (0.55 if i >= 10 else 0.92 - 0.01 * i) * np.pi
        for side in (-1.0, 1.0):
            head = p_s + 0.35 * (p_i - p_s) + e_u * 3.0 + EW * side * 0.45 * width
            tubercle = head - e_u * 16.0 + EW * side * 16.0 - e_v * 2.0
            phis = np.linspace(0.55, end, 11)
            arc = np.stack([xc - a * np.cos(phis), np.full_like(phis, tubercle[1]), side * b * np.sin(phis)], 1)
            arc[:, 1] += drop * (1 - np.cos(phis - 0.55)) / (1 - np.cos(end - 0.55))
            arc[0] = 0.5 * (arc[0] + tubercle - e_u * 18.0 + EW * side * 10.0)
            pts = np.vstack([head, tubercle, arc]) + rng.normal(0.0, 1.0, (len(arc) + 2, 3))
            r = (4.0 if i < 2 else 5.2) * rng.uniform(0.9, 1.1)
            rib = tube(pts, r, 0.9, mat.cortical, 0.5 * mat.trabecular, hint=(0.0, 1.0, 0.0), flat=0.55)
            out += [poses[lv].solid(s) for s in rib]
    return out


def sternum_and_shoulders(anat: Anatomy, mat: BoneMaterial, girth: float, arms: str,
                          rng: np.random.Generator) -> tuple[list, list]:
    """(bones, arm soft tissue): sternum, clavicles, scapulae and, with `arms` != "none", humeri."""
    ch = chest(anat, girth)
    c, t = mat.cortical, mat.trabecular
    x2, y2, a2, b2 = ch["T2"]
    x9, y9, a9, _ = ch["T9"]
    top = np.array([x2 + a2 * 0.95, ch["T1"][1] + 5.0, 0.0])
    bottom = np.array([x9 + a9 * 0.95, y9, 0.0])
    mid = (top + bottom) / 2 + [8.0, 0.0, 0.0]
    bones = tube(np.array([top, mid, bottom]), 13.0, 1.2, c, t, hint=(0.0, 0.0, 1.0), flat=0.45)
    soft = []
    x5, y5, a5, b5 = ch["T5"]
    for side in (-1.0, 1.0):
        acromion = np.array([x2 - 0.35 * a2, ch["T1"][1] - 12.0, side * (b2 + 18.0)])
        clav = np.array([top + [0, -6, side * 14.0], top + [-10, -8, side * 0.45 * b2],
                         top + [-0.55 * a2, -12, side * 0.85 * b2], acromion])
        bones += tube(clav, 6.0, 1.2, c, t)
        # scapula: a thin plate on the posterolateral chest wall, its lateral border and spine
        phi = 0.75
        centre = np.array([x5 - a5 * np.cos(phi) - 10.0, y5 - 10.0, side * b5 * np.sin(phi) * 0.95])
        tangent = np.array([a5 * np.sin(phi), 0.0, side * b5 * np.cos(phi)])
        rows = frame(cross(tangent, [0.0, 1.0, 0.0]), [0.0, 1.0, 0.0])  # e2: plate normal
        bones.append(ellipsoid(centre, rows, [70.0, 45.0, 2.5], 0.8 * c, BONE))
        glenoid = acromion + [12.0, 25.0, -side * 10.0]
        inferior_angle = centre + rows[0] * 65.0
        bones += tube(np.array([inferior_angle, (inferior_angle + glenoid) / 2 + [8, 0, 0], glenoid]),
                      5.0, 1.0, c, t)
        bones += tube(np.array([centre - rows[0] * 35.0 - rows[1] * 35.0, acromion]), 4.5, 1.0, c, t)
        if arms == "none":
            continue
        head = glenoid + [8.0, 8.0, side * 14.0]
        lift = np.radians(rng.uniform(30.0, 95.0))  # arms raised forward (fists on the clavicles, or on a support)
        direction = np.array([np.cos(lift - np.pi / 2) * 0.9 + 0.1, -np.sin(lift - np.pi / 2) * 0.9 + 0.3, 0.0])
        direction = direction / np.linalg.norm(direction)
        elbow = head + direction * 290.0 + [0.0, 0.0, -side * 20.0]
        make = lambda mu, channel, tag="", rad=22.0: ellipsoid(head, np.eye(3), [rad] * 3, mu, channel, tag=tag)  # noqa: E731
        bones += shelled(make, {"rad": 22.0}, {"rad": 20.8}, c, 0.5 * t)
        bones += tube(np.array([head + direction * 15.0, elbow]), 11.0, 3.0, c, 0.2 * t)
        bones.append(ellipsoid(elbow, frame(direction, [0.0, 0.0, 1.0]), [14.0, 30.0, 16.0], 0.7 * c, BONE))
        arm = frame(direction, [0.0, 0.0, 1.0])
        soft.append(ellipsoid((head + elbow) / 2, arm, [45.0, 40.0, 190.0], MU_SOFT, SOFT))  # outside the trunk
    return bones, soft
