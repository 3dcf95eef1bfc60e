"""The whole patient in 3-D: every level's pose (scoliosis, axial rotation, a patient not quite
lateral), bone material, body habitus, and all solids, with the labelled parts kept apart.

Patient frame (mm, x anterior, y caudal, z lateral towards the source). The sagittal plan
(`spine_d2.synthetic.anatomy`) fixes the mid-sagittal geometry; this module thickens it into
solids and moves them. Ground truth for labels stays attached: the outline solid of each body
(C6…L5, S1), the endplate rim points and the femoral heads, all posed like the anatomy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spine_d2.synthetic.anatomy import Anatomy, Patient
from spine_d2.synthetic.pathology import Pathology, extra_solids
from spine_d2.synthetic.pelvis import femoral_heads, pelvis_and_femora, sacrum
from spine_d2.synthetic.soft_tissue import Habitus, organs
from spine_d2.synthetic.solids import MU_CORTICAL, MU_SOFT, MU_TRABECULAR, Solid
from spine_d2.synthetic.thorax import ribs, sternum_and_shoulders
from spine_d2.synthetic.vertebrae import (BoneMaterial, Pose, posterior_elements, rotation,
                                          vertebral_body)

#: lateral width of the vertebral body over its endplate depth, by region (~)
WIDTH_RATIO = {"C": 1.45, "T": 1.2, "L": 1.4, "S": 1.3}


@dataclass
class Scene:
    bones: list[Solid] = field(default_factory=list)  # BONE / TRABECULAR / METAL channels
    soft: list[Solid] = field(default_factory=list)  # organs, gas, arms (SOFT channel, smooth)
    outlines: dict[str, Solid] = field(default_factory=dict)  # level → the body's outline solid
    rims: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # level → side → (2, 3)
    heads: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))  # (k, 4) x, y, z, r
    habitus: Habitus | None = None
    material: BoneMaterial | None = None
    info: dict = field(default_factory=dict)


def sample_material(rng: np.random.Generator, osteoporotic: bool) -> BoneMaterial:
    """Bone attenuation relative to soft tissue (1/mm) and shell thicknesses (mm)."""
    bmd = rng.uniform(0.35, 0.6) if osteoporotic else rng.uniform(0.75, 1.2)
    return BoneMaterial(cortical=(MU_CORTICAL - MU_SOFT) * rng.uniform(0.85, 1.1),
                        trabecular=(MU_TRABECULAR - MU_SOFT) * bmd * rng.uniform(0.9, 1.2),
                        cortex=rng.uniform(0.5, 1.1) * (0.8 if osteoporotic else 1.0),
                        endplate=rng.uniform(0.7, 1.3), concavity=rng.uniform(0.8, 2.2))


def level_poses(anat: Anatomy, rng: np.random.Generator, scoliosis: float, global_pose: Pose) -> dict[str, Pose]:
    """Per level: a coronal curve with axial rotation towards its convexity (probability
    `scoliosis`), then the patient's pose as a whole."""
    levels = list(anat.bodies)  # S1 first, C6 last
    poses = {lv: global_pose for lv in levels}
    if rng.random() >= scoliosis:
        return poses
    apex = rng.uniform(4, 14)  # index from S1: L2 … T7
    span = rng.uniform(2.5, 5.0)
    lateral = rng.uniform(8, 35) * rng.choice([-1.0, 1.0])
    turn = rng.uniform(4, 18)
    for i, lv in enumerate(levels):
        g = np.exp(-((i - apex) / span) ** 2)
        slope = -2 * (i - apex) / span ** 2 * g * lateral  # mm of z per level
        c = anat.bodies[lv].corners.mean(axis=0)
        centre = np.array([c[0], c[1], 0.0])
        R = rotation([1.0, 0.0, 0.0], np.degrees(np.arctan2(slope, 30.0))) @ rotation([0.0, 1.0, 0.0], turn * g * np.sign(lateral))
        local = Pose.about(R, centre).then(Pose(np.eye(3), np.array([0.0, 0.0, lateral * g])))
        poses[lv] = local.then(global_pose)
    return poses


def build_scene(patient: Patient, anat: Anatomy, rng: np.random.Generator, *, scoliosis: float = 0.12,
                osteoporosis: float = 0.15, source_side: float = 1.0, posture: bool = True,
                pathology: Pathology | None = None, arms: str | None = None) -> Scene:
    """All solids of `patient` (plan `anat`), posed; `source_side` −1 turns the patient round;
    `posture` False: a perfect lateral (no turn, lean or scoliosis)."""
    mat = sample_material(rng, rng.random() < osteoporosis)
    hab = Habitus.sample(rng, patient.size)
    centre_y = float(np.mean([b.corners[:, 1].mean() for b in anat.bodies.values()]))
    turn = float(np.clip(rng.normal(0.0, 3.5), -12, 12)) if posture else 0.0
    lean = float(np.clip(rng.normal(0.0, 1.5), -5, 5)) if posture else 0.0
    scoliosis = scoliosis if posture else 0.0
    mirror = np.diag([1.0, 1.0, source_side])
    g = Pose.about(rotation([0, 1, 0], turn) @ rotation([1, 0, 0], lean), [0.0, centre_y, 0.0]).then(Pose(mirror, np.zeros(3)))
    poses = level_poses(anat, rng, scoliosis, g)
    sc = Scene(habitus=hab, material=mat, info={"turn_deg": turn, "lean_deg": lean})
    for lv, body in anat.bodies.items():
        width = WIDTH_RATIO[lv[0]] * float(np.linalg.norm(body.corners[2] - body.corners[3])) * rng.uniform(0.92, 1.08)
        solids, outer, rims = vertebral_body(lv, body, width, mat, poses[lv])
        sc.bones += solids
        sc.outlines[lv], sc.rims[lv] = outer, rims
        if lv != "S1":
            sc.bones += posterior_elements(lv, body, width, mat, poses[lv], rng)
        else:
            sc.bones += sacrum(anat, width, mat, poses[lv], rng)
    heads = femoral_heads(anat, rng.uniform(75.0, 92.0) * patient.size, rng)
    sc.heads = np.array([[*g.point(h[:3]), h[3]] for h in heads])
    sc.bones += pelvis_and_femora(anat, heads, mat, g, rng)
    sc.bones += ribs(anat, poses, mat, hab.girth, rng)
    arms = arms or str(rng.choice(["forward", "none"], p=[0.65, 0.35]))
    bones, soft = sternum_and_shoulders(anat, mat, hab.girth, arms, rng)
    sc.bones += [g.solid(s) for s in bones]
    sc.soft += [g.solid(s) for s in soft + organs(anat, hab, rng)]
    if pathology is not None and pathology.any:
        sc.bones += extra_solids(pathology, anat, poses, mat, rng)
    sc.info["arms"] = arms
    sc.info["global_pose"] = g
    return sc
