"""Pathology and post-operative hardware in a share of the phantom's patients, and their solids.

What changes the sagittal plan (and so the ground truth, honestly): degenerated discs (narrowed),
wedge/compression fractures (anterior height lost; the other segments of the same angle make up
for it, so the patient's intended TK/LL still hold), spondylolisthesis (a level slipped forward on
the one below) and a transitional lumbosacral segment (a sacralised L5 with a rudimentary L5–S1
disc and broad transverse processes, or a lumbarised S1 with a disc below it; the levels keep their
names: counted from above, as they are). What only adds solids: osteophytes (anterior lips, not
part of the labelled outline), sclerotic endplates, vacuum discs, and pedicle screws, rods and
interbody cages (titanium or steel; PEEK cages show only their marker beads). Patient frame, mm.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spine_d2.levels import THORACIC
from spine_d2.synthetic.anatomy import Anatomy
from spine_d2.synthetic.solids import (BONE, METAL, MU_SOFT, MU_STEEL, MU_TITANIUM, SOFT, Solid, cylinder,
                                       ellipsoid, rod)
from spine_d2.synthetic.vertebrae import EW, BoneMaterial, Pose, body_frame

INSTRUMENTED = ("L1", "L2", "L3", "L4", "L5", "S1")


@dataclass(frozen=True)
class Pathology:
    disc_height: dict[str, float] = field(default_factory=dict)  # disc below a level → height factor
    fractures: dict[str, float] = field(default_factory=dict)  # level → anterior height lost (fraction)
    slips: dict[str, float] = field(default_factory=dict)  # level → forward slip over the one below, mm
    osteophytes: tuple[str, ...] = ()
    vacuum: tuple[str, ...] = ()  # discs (below these levels) with gas
    transitional: str | None = None  # "sacralised L5" | "lumbarised S1"
    fused: tuple[str, ...] = ()  # instrumented levels, top to bottom
    metal: str = "titanium"
    cages: tuple[str, ...] = ()  # discs (below these levels) holding a cage
    cage_kind: str = "titanium"  # titanium | peek

    @property
    def any(self) -> bool:
        return bool(self.disc_height or self.fractures or self.slips or self.osteophytes or self.transitional
                    or self.fused)

    def describe(self) -> dict:
        """What this patient has, for the phantom's JSON (plain types)."""
        out = {}
        if self.disc_height:
            out["degenerated_discs"] = sorted(self.disc_height)
        if self.fractures:
            out["fractures"] = {k: round(v, 3) for k, v in self.fractures.items()}
        if self.slips:
            out["spondylolisthesis_mm"] = {k: round(v, 2) for k, v in self.slips.items()}
        if self.osteophytes:
            out["osteophytes"] = list(self.osteophytes)
        if self.transitional:
            out["transitional"] = self.transitional
        if self.fused:
            out["instrumented"] = list(self.fused)
            out["hardware"] = self.metal
            if self.cages:
                out["cages"] = {"discs": list(self.cages), "kind": self.cage_kind}
        return out

    @staticmethod
    def sample(rng: np.random.Generator, share: float, hardware: float) -> "Pathology":
        """Nothing for 1 − `share` of patients; otherwise a few findings; hardware in `hardware`."""
        if rng.random() >= share:
            return Pathology()
        kw: dict = {}
        if rng.random() < 0.6:
            discs = [lv for lv in ("L3", "L4", "L5", "L2", "T12") if rng.random() < 0.45] or ["L4"]
            kw["disc_height"] = {lv: float(rng.uniform(0.3, 0.7)) for lv in discs}
            kw["osteophytes"] = tuple(lv for lv in discs if rng.random() < 0.7)
            kw["vacuum"] = tuple(lv for lv in discs if rng.random() < 0.25)
        if rng.random() < 0.25:
            lv = str(rng.choice(list(THORACIC[6:]) + ["L1", "L2"]))
            kw["fractures"] = {lv: float(rng.uniform(0.15, 0.5))}
        if rng.random() < 0.2:
            lv = str(rng.choice(["L5", "L4", "L3"], p=[0.5, 0.4, 0.1]))
            kw["slips"] = {lv: float(rng.uniform(3.0, 12.0))}
        if rng.random() < 0.1:
            kw["transitional"] = str(rng.choice(["sacralised L5", "lumbarised S1"]))
        if rng.random() < hardware / max(share, 1e-9):
            n = int(rng.integers(2, 5))
            top = int(rng.integers(0, len(INSTRUMENTED) - n + 1))
            kw["fused"] = INSTRUMENTED[top:top + n]
            kw["metal"] = str(rng.choice(["titanium", "steel"], p=[0.8, 0.2]))
            kw["cages"] = tuple(lv for lv in kw["fused"][:-1] if rng.random() < 0.5)
            kw["cage_kind"] = str(rng.choice(["titanium", "peek"]))
        return Pathology(**kw)


def apply_to_plan(path: Pathology, wedge: dict, disc: dict, disc_height: dict, tk_levels) -> None:
    """Fractures into the segmental angles (kyphotic wedge), made up for within the same angle:
    TK by the thoracic discs of T5–T12, LL (through `disc`) by the lumbar discs; disc heights."""
    for lv, loss in path.fractures.items():
        extra = float(np.degrees(np.arctan(loss * 0.8)))  # anterior height lost over a ~depth-long body
        wedge[lv] -= extra
        if lv in tk_levels:
            for d in tk_levels[:-1]:
                disc[d] += extra / (len(tk_levels) - 1)
    for lv, f in path.disc_height.items():
        disc_height[lv] = disc_height[lv] * f
    if path.transitional == "sacralised L5":
        disc_height["L5"] = disc_height["L5"] * 0.3
    for lv in path.cages:
        disc_height[lv] = max(disc_height[lv], 9.0)


def extra_solids(path: Pathology, anat: Anatomy, poses: dict[str, Pose], mat: BoneMaterial,
                 rng: np.random.Generator) -> list[Solid]:
    """Osteophytes, sclerosis, vacuum discs, transverse processes of a sacralised L5, hardware."""
    out = []
    for lv in path.osteophytes:
        out += [poses[lv].solid(s) for s in _osteophytes(anat, lv, mat, rng)]
    for lv in path.vacuum:
        e_u, e_v, (a_s, p_s, p_i, a_i) = body_frame(anat.bodies[lv].corners)
        c = (p_i + a_i) / 2 - e_v * 3.0
        out.append(poses[lv].solid(ellipsoid(c, np.stack([e_u, e_v, EW]), [10.0, 1.0, 12.0], -MU_SOFT, SOFT)))
    for lv in path.fractures:  # trabeculae crushed together: a denser band under the superior plate
        e_u, e_v, (a_s, p_s, p_i, a_i) = body_frame(anat.bodies[lv].corners)
        c = (a_s + p_s) / 2 - e_v * 4.0
        out.append(poses[lv].solid(ellipsoid(c, np.stack([e_u, e_v, EW]), [12.0, 3.0, 14.0], 0.5 * mat.cortical, BONE)))
    if path.transitional == "sacralised L5":
        e_u, e_v, (a_s, p_s, p_i, a_i) = body_frame(anat.bodies["L5"].corners)
        for side in (-1.0, 1.0):
            c = (p_s + p_i) / 2 - e_u * 12.0 + EW * side * 38.0 - e_v * 6.0
            out.append(poses["L5"].solid(ellipsoid(c, np.stack([e_u, e_v, EW]), [11.0, 13.0, 18.0], 0.7 * mat.cortical, BONE)))
    if path.fused:
        out += hardware(path, anat, poses, rng)
    return out


def _osteophytes(anat: Anatomy, lv: str, mat: BoneMaterial, rng) -> list[Solid]:
    """Anterior lips at a level's rims, growing towards the disc (2–6 mm)."""
    e_u, e_v, (a_s, p_s, p_i, a_i) = body_frame(anat.bodies[lv].corners)
    out = []
    for corner, towards in ((a_s, e_v), (a_i, -e_v)):
        size = rng.uniform(2.0, 6.0)
        c = corner + e_u * size * 0.4 + towards * size * 0.5
        out.append(ellipsoid(c, np.stack([e_u, e_v, EW]), [size * 0.6, size, 10.0], 0.7 * mat.cortical, BONE))
    return out


def hardware(path: Pathology, anat: Anatomy, poses: dict[str, Pose], rng: np.random.Generator) -> list[Solid]:
    """Pedicle screws at each fused level, a rod each side through their heads, interbody cages."""
    mu = MU_TITANIUM if path.metal == "titanium" else MU_STEEL
    mu -= MU_SOFT
    heads = {-1.0: [], 1.0: []}
    out = []
    for lv in path.fused:
        e_u, e_v, (a_s, p_s, p_i, a_i) = body_frame(anat.bodies[lv].corners)
        width = 1.4 * float(np.linalg.norm(a_i - p_i))
        mid_post = (p_s + p_i) / 2 + e_v * 2.0
        length = rng.uniform(40.0, 50.0) if lv != "S1" else rng.uniform(35.0, 45.0)
        for side in (-1.0, 1.0):
            entry = mid_post - e_u * 22.0 + EW * side * (0.3 * width + 4.0)
            aim = e_u * np.cos(np.radians(12)) - EW * side * np.sin(np.radians(12))
            tip = entry + aim * length
            pose = poses[lv]
            out.append(pose.solid(cylinder(entry, tip, (3.2, 3.2), mu, METAL)))
            head = entry - aim * 6.0
            out.append(pose.solid(ellipsoid(head, np.stack([e_u, e_v, EW]), [6.0, 7.0, 6.0], mu, METAL)))
            heads[side].append(pose.point(head))
    for side, pts in heads.items():
        if len(pts) >= 2:
            pts = np.array(pts)
            ends = np.vstack([pts[0] + (pts[0] - pts[1]) * 0.15, pts, pts[-1] + (pts[-1] - pts[-2]) * 0.15])
            out += rod(ends, 2.8, mu, METAL)
    for lv in path.cages:
        out += _cage(anat, lv, poses[lv], path.cage_kind, rng)
    return out


def _cage(anat: Anatomy, lv: str, pose: Pose, kind: str, rng) -> list[Solid]:
    """An interbody cage in the disc below `lv`: a titanium box, or a PEEK one's marker beads."""
    order = list(anat.bodies)  # S1 first
    below = anat.bodies[order[order.index(lv) - 1]]
    e_u, e_v, (a_s, p_s, p_i, a_i) = body_frame(anat.bodies[lv].corners)
    b_sup = below.corners[:2]
    top = (p_i + a_i) / 2
    bottom = np.array([*(b_sup.mean(axis=0)), 0.0])
    centre = (top + bottom) / 2 - e_u * 2.0
    if kind == "peek":
        return [pose.solid(ellipsoid(centre + e_u * dx, np.eye(3), [0.6] * 3, MU_STEEL - MU_SOFT, METAL))
                for dx in (-11.0, 0.0, 11.0)]
    gap = float(np.linalg.norm(top - bottom))
    return [pose.solid(cylinder(centre - e_v * gap * 0.4, centre + e_v * gap * 0.4, (13.0, 9.0),
                                (MU_TITANIUM - MU_SOFT) * 0.35, METAL, hint=e_u))]

