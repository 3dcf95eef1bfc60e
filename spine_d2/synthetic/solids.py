"""Solid primitives of the 3-D phantom: convex quadric regions cut by half-spaces, in millimetres.

Patient frame (mm): x anterior, y caudal, z lateral towards the X-ray source; origin at the
midpoint of the S1 superior endplate. A `Solid` is the intersection of one or two quadric
regions (ellipsoid, elliptic cylinder, or a one-sheet hyperboloid for a waisted wall) and any
number of half-spaces; along a ray such a region is one interval, so its chord length has a closed
form (`spine_d2.synthetic.projection`). Each solid adds `mu × chord` to one image channel: `mu` is
its linear attenuation *relative to soft tissue* in 1/mm (bone > 0, air < 0), so overlapping
layers compose additively (a cortical shell is an outer solid at μ_cortical plus an inner one at
μ_trabecular − μ_cortical).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: image channels a solid can add to; TRABECULAR is modulated by the bone texture, SOFT is smooth
BONE, TRABECULAR, SOFT, METAL = 0, 1, 2, 3
CHANNELS = 4

# linear attenuation, 1/mm, at the ~45–60 keV a lateral spine beam has after the body
# (shared/PHANTOM.md; bone towards the upper end of its range); solids carry them relative to soft tissue
MU_SOFT = 0.020
MU_FAT = 0.018
MU_LUNG = 0.005
MU_AIR = 0.0
MU_TRABECULAR = 0.032
MU_CORTICAL = 0.060
MU_TITANIUM = 0.12
MU_STEEL = 0.35


@dataclass
class Quadric:
    """Σ k_i ((X − centre)·axes[i])² ≤ 1: k = (1/a², 1/b², 1/c²) an ellipsoid, a 0 an infinite
    cylinder along that axis, a negative entry a one-sheet hyperboloid (waisted along that axis)."""

    centre: np.ndarray  # (3,)
    axes: np.ndarray  # (3, 3), rows are orthonormal local axes in the patient frame
    k: np.ndarray  # (3,)


@dataclass
class Solid:
    quadrics: list[Quadric]
    planes: list[tuple[np.ndarray, float]]  # (n, d): n·X + d ≤ 0 inside
    mu: float  # 1/mm, relative to soft tissue
    channel: int
    box_centre: np.ndarray  # a local box that surely contains the solid (for its image bbox)
    box_axes: np.ndarray
    box_half: np.ndarray
    tag: str = ""  # e.g. "L3 body": labelled outlines are found by tag


def cross(a, b) -> np.ndarray:
    """a × b of two 3-vectors (np.cross is slow on single vectors)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]], float)


def norm(v) -> float:
    """|v| of one vector, the very value np.linalg.norm gives (√ of the dot product; the phantom
    stays byte-identical) without its overhead: the scene takes ~10⁴ of them per image."""
    v = np.asarray(v, float).ravel()
    return math.sqrt(v.dot(v))


def frame(axis: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """Orthonormal rows (e0, e1, e2) with e2 ∥ `axis` and e0 as close to `hint` as possible."""
    e2 = np.asarray(axis, float) / norm(axis)
    e0 = np.asarray(hint, float) - np.dot(hint, e2) * e2
    n = norm(e0)
    if n < 1e-9:  # hint parallel to the axis: any perpendicular
        e0 = cross(e2, [1.0, 0.0, 0.0] if abs(e2[0]) < 0.9 else [0.0, 1.0, 0.0])
        n = norm(e0)
    e0 /= n
    return np.array([e0, cross(e2, e0), e2])


def half_space(normal, point) -> tuple[np.ndarray, float]:
    """The half-space behind `point` as seen along `normal` (outward)."""
    n = np.asarray(normal, float) / norm(normal)
    return n, -float(n @ np.asarray(point, float))


def ellipsoid(centre, axes, semi, mu: float, channel: int, planes=(), tag: str = "") -> Solid:
    """An ellipsoid of semi-axes `semi` along the rows of `axes`, optionally cut by `planes`."""
    semi = np.asarray(semi, float)
    c, a = np.asarray(centre, float), np.asarray(axes, float)
    return Solid([Quadric(c, a, 1.0 / semi ** 2)], list(planes), mu, channel, c, a, semi, tag)


def cylinder(p0, p1, radii, mu: float, channel: int, hint=(1.0, 0.0, 0.0), cut0=None, cut1=None,
             tag: str = "") -> Solid:
    """An elliptic cylinder from `p0` to `p1` (semi-axes `radii` along hint and its normal).

    The ends are planes through p0 and p1, perpendicular to the axis unless `cut0`/`cut1` give their
    outward normals (mitred joints of a tube)."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    ax = p1 - p0
    length = norm(ax)
    rows = frame(ax, np.asarray(hint, float))
    ra, rb = radii
    q = Quadric((p0 + p1) / 2, rows, np.array([1.0 / ra ** 2, 1.0 / rb ** 2, 0.0]))
    planes = [half_space(-rows[2] if cut0 is None else cut0, p0), half_space(rows[2] if cut1 is None else cut1, p1)]
    slack = max(ra, rb) * 1.5  # a mitred end reaches beyond the square end
    return Solid([q], planes, mu, channel, (p0 + p1) / 2, rows, np.array([ra, rb, length / 2]) + [0, 0, slack], tag)


def shelled(make, outer: dict, inner: dict, mu_cortical: float, mu_core: float,
            core_channel: int = TRABECULAR, tag: str = "") -> list[Solid]:
    """A cortical shell around a core: `make(**outer)` at μ_cortical (carries `tag`), and
    `make(**inner)` (the same solid shrunk by the shell) trading cortical bone for core bone."""
    return [make(mu=mu_cortical, channel=BONE, tag=tag, **outer),
            make(mu=-mu_cortical, channel=BONE, **inner),
            make(mu=mu_core, channel=core_channel, **inner)]


def _segments(points: np.ndarray, hint):
    """Per segment of a polyline: the cylinder() end arguments with mitred joints."""
    pts = np.asarray(points, float)
    seg = np.diff(pts, axis=0)
    unit = seg / np.linalg.norm(seg, axis=1, keepdims=True)
    joint = [None] + [u0 + u1 for u0, u1 in zip(unit[:-1], unit[1:])] + [None]  # mitre normals
    return [{"p0": pts[i], "p1": pts[i + 1], "hint": hint, "cut0": None if joint[i] is None else -joint[i],
             "cut1": joint[i + 1]} for i in range(len(seg))]


def rod(points: np.ndarray, radius: float, mu: float, channel: int) -> list[Solid]:
    """A solid round bar along the polyline `points` (mm), mitred at its joints."""
    return [cylinder(radii=(radius, radius), mu=mu, channel=channel, **ends) for ends in _segments(points, (1.0, 0, 0))]


def tube(points: np.ndarray, radius: float, shell: float, mu_cortical: float, mu_core: float,
         hint=(1.0, 0.0, 0.0), flat: float = 1.0, tag: str = "") -> list[Solid]:
    """A long bone along the polyline `points` (mm): mitred elliptic cylinder segments of semi-axes
    (radius, radius·flat), a cortical shell `shell` mm thick around a trabecular core."""
    out = []
    for ends in _segments(points, hint):
        r_in = max(radius - shell, 0.3)
        out += shelled(cylinder, {"radii": (radius, radius * flat), **ends},
                       {"radii": (r_in, max(radius * flat - shell, 0.3)), **ends}, mu_cortical, mu_core, tag=tag)
    return out


@dataclass
class Scene:
    """Everything the beam passes through: solids, plus named outlines to label."""

    solids: list[Solid] = field(default_factory=list)

    def add(self, items) -> None:
        if isinstance(items, Solid):
            self.solids.append(items)
        else:
            self.solids.extend(items)

    def tagged(self, tag: str) -> list[Solid]:
        return [s for s in self.solids if s.tag == tag]
