"""Small lateral spines with known endplates for the measurement tests (image frame, pixels).

`toy_spine(...)` stacks trapezoid bodies (T4…L5, S1) whose endplate tilts realise the given
angles and places the femoral heads at the given PT, so the expected angles are the arguments
themselves (SS and PT moved by a rotation of the picture): what the measurement must find back from
the outlines alone. (tests/test_angles.py checks that the angle definitions give them back.)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spine_d2.levels import LUMBAR, THORACIC
from spine_d2.measure.instances import Instance
from spine_d2.polygons import rasterize

CHAIN = ("S1",) + tuple(reversed(LUMBAR)) + tuple(reversed(THORACIC[3:]))  # bottom-up, S1 … T4


@dataclass
class ToySpine:
    polygons: dict[str, np.ndarray]
    endplates: dict[str, dict[str, list]]
    heads: list[list[float]]
    shape: tuple[int, int]
    expected: dict = field(default_factory=dict)

    def instances(self, kind: str = "polygon", classes: str = "default", labels: bool = False,
                  heads: bool = True) -> list[Instance]:
        out = []
        for level, poly in self.polygons.items():
            if classes == "per_level":
                name = level
            else:
                name = "sacrum" if level == "S1" else "thoracic" if level.startswith("T") else "lumbar"
                if classes == "two_class" and name == "sacrum":
                    continue
            label = level if labels else None
            if kind == "mask":
                out.append(Instance(name, mask=rasterize(poly, self.shape), label=label))
            else:
                out.append(Instance(name, polygon=poly, label=label))
        if heads and classes != "two_class":
            hname = "FH" if classes == "per_level" else "femoral_head"
            for cx, cy, r in self.heads:
                if kind == "mask":
                    t = np.linspace(0, 2 * np.pi, 90, endpoint=False)
                    circle = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], 1)
                    out.append(Instance(hname, mask=rasterize(circle, self.shape)))
                else:
                    out.append(Instance(hname, circle=(cx, cy, r)))
        return out


def _dirs(t_deg: float, facing: int):
    t = math.radians(t_deg)
    u = np.array([facing * math.cos(t), -math.sin(t)])  # posterior → anterior
    n = np.array([-facing * math.sin(t), -math.cos(t)])  # cranial normal
    return u, n


def toy_spine(tk=40.0, ll=45.0, ll_s1=60.0, ss=38.0, pt=12.0, facing=1, rotate_deg=0.0,
              scale=1.0, size=(520, 820)) -> ToySpine:
    """A spine realising the given angles; `facing` −1 mirrors it; `rotate_deg` turns the whole
    picture counter-clockwise on screen (SS and PT then change, Cobb angles do not)."""
    # plate tilts bottom-up: S1 sup, L5 inf, L5 sup, …, T4 sup; anchors where the angles need them
    names = [("S1", "superior")] + [(lv, s) for lv in CHAIN[1:] for s in ("inferior", "superior")]
    idx = {k: i for i, k in enumerate(names)}
    t_s1 = -ss
    t_l1 = ll_s1 + t_s1
    anchors = {idx[("S1", "superior")]: t_s1, idx[("L5", "inferior")]: t_l1 - ll,
               idx[("L1", "superior")]: t_l1, idx[("T12", "inferior")]: 5.0,
               idx[("T5", "superior")]: 5.0 - tk, len(names) - 1: 5.0 - tk - 4.0}
    xs, ys = zip(*sorted(anchors.items()))
    tilts = np.interp(np.arange(len(names)), xs, ys)
    tilt = {k: float(tilts[i]) for k, i in idx.items()}

    W, H = size
    polygons, endplates = {}, {}
    s1_mid = np.array([W / 2 + facing * 20 * scale, H * 0.62])
    depth = 40.0 * scale
    u, n = _dirs(tilt[("S1", "superior")], facing)
    a, p = s1_mid + u * depth / 2, s1_mid - u * depth / 2
    polygons["S1"] = np.array([a, p, p - n * 30 * scale + u * 4 * scale, a - n * 34 * scale + u * 2 * scale])
    endplates["S1"] = {"superior": [a.tolist(), p.tolist()]}
    below_mid, below_n = s1_mid, n
    for lv in CHAIN[1:]:
        lumbar = lv.startswith("L")
        depth = (40.0 if lumbar else 30.0) * scale
        height = (26.0 if lumbar else 18.0) * scale
        disc = (9.0 if lumbar else 5.0) * scale
        ti, ts = tilt[(lv, "inferior")], tilt[(lv, "superior")]
        ui, ni = _dirs(ti, facing)
        us, ns = _dirs(ts, facing)
        c_inf = below_mid + below_n * disc
        c_sup = c_inf + (ni + ns) / np.linalg.norm(ni + ns) * height
        ai, pi_ = c_inf + ui * depth / 2, c_inf - ui * depth / 2
        as_, ps = c_sup + us * depth / 2, c_sup - us * depth / 2
        polygons[lv] = np.array([as_, ps, pi_, ai])
        endplates[lv] = {"superior": [as_.tolist(), ps.tolist()], "inferior": [ai.tolist(), pi_.tolist()]}
        below_mid, below_n = c_sup, ns
    dist = 3.3 * 40.0 * scale
    axis = s1_mid + dist * np.array([facing * math.sin(math.radians(pt)), math.cos(math.radians(pt))])
    heads = [[axis[0] + 3 * scale, axis[1] - 2 * scale, 24.0 * scale],
             [axis[0] - 3 * scale, axis[1] + 2 * scale, 23.0 * scale]]
    if rotate_deg:
        t = math.radians(rotate_deg)
        R = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
        c = np.array([W / 2, H / 2])
        rot = lambda q: (np.asarray(q, float) - c) @ R.T + c  # noqa: E731
        polygons = {k: rot(v) for k, v in polygons.items()}
        endplates = {k: {s: rot(v).tolist() for s, v in d.items()} for k, d in endplates.items()}
        heads = [[*rot(h[:2]), h[2]] for h in heads]
    # a counter-clockwise turn lifts the anterior end: SS falls and PT rises by it (mirrored: the reverse)
    turn = facing * rotate_deg
    expected = {"TK": tk, "LL": ll, "LL_S1": ll_s1, "SS": ss - turn, "PT": pt + turn, "PI": ss + pt}
    return ToySpine(polygons, endplates, heads, (H, W), expected)


def rounded(poly: np.ndarray, r: float, k: int = 6) -> np.ndarray:
    """The polygon with each corner replaced by a quadratic arc starting `r` px from it."""
    out = []
    n = len(poly)
    for i in range(n):
        c, prev, nxt = poly[i], poly[i - 1], poly[(i + 1) % n]
        t_in = c + r * (prev - c) / np.linalg.norm(prev - c)
        t_out = c + r * (nxt - c) / np.linalg.norm(nxt - c)
        s = np.linspace(0, 1, k)[:, None]
        out.extend((1 - s) ** 2 * t_in + 2 * (1 - s) * s * c + s ** 2 * t_out)
    return np.array(out)
