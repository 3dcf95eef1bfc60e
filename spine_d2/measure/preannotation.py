"""A Measurement as a Labelme annotation to correct rather than draw; image frame, pixels (EXIF orientation applied).

`labelme_document(m, image_path)` is the JSON Labelme opens (its version is the installed,
pinned labelme's; `imageData` null, the photo found by `imagePath`):

- one `polygon` per named vertebral body, labelled with its level (`T1` … `L5`, `S1`): the outline
  of the model's mask, pixel by pixel (`mask_contour`), so measuring the file gives the angles
  measured on the masks; vertebrae left unnamed (above T1) are not written;
- the femoral heads (`FH`) as `circle`s (centre, then a point on the rim): those PT and PI used, so
  that measuring the file pairs the same ones; where none was used, the two best scored;
- corner points (`point`) where instances carry them (a keypoint model), labelled
  `<level>_<corner>`: `sa`/`sp` the anterior/posterior end of the superior endplate, `ia`/`ip` of
  the inferior one (`spine_d2.levels.CORNERS`), e.g. `L3_sa`;
- each shape's `description` holds its score and what is doubtful about it; its `flags` hold
  `level_uncertain` (vertebrae: true when the level naming was flagged — untick it once checked;
  the measurement leaves a flagged level out, as it did here) or `corrected` (points a reader
  moved on the page);
- the top-level key `spine_d2` keeps what the model said (angles, frame, notes), which Labelme
  carries through a save.

Measured on a scaled copy of the photo (`photo_shape`), every point is scaled to the photo's pixels
and `spine_d2.prediction.measured_on` keeps the copy's width and height.
`with_endplates(doc, endplates)` adds a reader's endplates as corner points (flag `corrected`);
`write_new_json` writes a document without ever replacing a file.
"""
from __future__ import annotations

import copy
import importlib.metadata
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from spine_d2.angles import ANGLE_NAMES
from spine_d2.levels import CORNER_SIDES, FEMORAL_HEAD, LEVEL_INDEX, corner_label, parse_corner_label
from spine_d2.measure.instances import Instance, circle_of, mask_contour
from spine_d2.measure.pipeline import Measurement
from spine_d2.polygons import polygon_area

UNCERTAIN_FLAG = "level_uncertain"
CORRECTED_FLAG = "corrected"


def labelme_version() -> str:
    """The installed Labelme's version (requirements.txt pins it), as Labelme writes it."""
    try:
        return importlib.metadata.version("labelme")
    except importlib.metadata.PackageNotFoundError:
        return "6.3.1"


def shape(label: str, points, shape_type: str, description: str = "",
          flags: Mapping[str, bool] | None = None) -> dict[str, Any]:
    """One Labelme shape, with the keys Labelme 6 writes."""
    return {"label": label, "points": [[round(float(x), 3), round(float(y), 3)] for x, y in points],
            "group_id": None, "description": description, "shape_type": shape_type,
            "flags": dict(flags or {}), "mask": None}


def outline(inst: Instance) -> np.ndarray:
    """An instance's outline as polygon vertices: its mask's boundary pixels, or its polygon."""
    if inst.mask is not None:
        sub, x0, y0 = inst.local_mask()
        return mask_contour(sub) + [x0, y0]
    return np.asarray(inst.polygon if inst.polygon is not None else inst.contour(), float)


def _vertebra_shapes(m: Measurement) -> tuple[list[dict], list[str]]:
    shapes, notes = [], []
    for level in sorted(m.levels, key=LEVEL_INDEX.get):  # top to bottom, as Labelme lists them
        inst = m.instances[m.levels[level]]
        poly = outline(inst)
        if len(poly) < 3 or polygon_area(poly) < 1.0:
            notes.append(f"{level}: outline too small to write")
            continue
        why = m.uncertain.get(level, "")
        text = "; ".join([f"score {inst.score:.3f}"] + ([f"level uncertain: {why}"] if why else []) + inst.notes)
        shapes.append(shape(level, poly, "polygon", text, {UNCERTAIN_FLAG: bool(why)}))
        for corner, (x, y, score) in inst.corners.items():
            shapes.append(shape(corner_label(level, corner), [(x, y)], "point", f"score {score:.3f}"))
    unnamed = sum(1 for k, inst in enumerate(m.instances) if inst.is_vertebra and k not in m.levels.values())
    if unnamed:
        notes.append(f"{unnamed} unnamed vertebra(e) not written")
    return shapes, notes


def _rim_point(cx: float, cy: float, r: float, width: int, height: int) -> tuple[float, float]:
    """A point on the circle, inside the image where one of the four axis points is."""
    for dx, dy in ((r, 0), (-r, 0), (0, r), (0, -r)):
        if 0 <= cx + dx <= width and 0 <= cy + dy <= height:
            return cx + dx, cy + dy
    return cx + r, cy


def _head_shapes(m: Measurement) -> list[dict]:
    h, w = m.image_shape
    heads = []
    for inst in m.instances:
        circ = circle_of(inst) if inst.region == "femoral_head" else None
        if circ is not None and 0 <= circ[0] <= w and 0 <= circ[1] <= h:
            heads.append((inst.score, circ))
    used = {tuple(np.round(c, 6)) for c in m.femoral_heads}
    ranked = sorted(heads, key=lambda t: -t[0])
    if used:  # the pair (or the one head) PT and PI used, which need not be the two best scored
        ranked = [t for t in ranked if tuple(np.round(t[1], 6)) in used]
    out = []
    for score, (cx, cy, r) in ranked[:2]:
        note = "" if used else f"; not used: {m.heads_reason}"
        out.append(shape(FEMORAL_HEAD, [(cx, cy), _rim_point(cx, cy, r, w, h)], "circle", f"score {score:.3f}{note}"))
    return out


def labelme_document(m: Measurement, image_path: str, model: str = "",
                     photo_shape: Sequence[int] | None = None) -> dict[str, Any]:
    """The Labelme JSON of a measurement (see the module docstring); `image_path` as Labelme
    stores it, relative to where the JSON will lie (the photo's file name when beside it).
    `photo_shape` (H, W): the photo's size where `m` was measured on a copy of another size
    (`spine_d2.data.images.within_pixels`); every point is scaled to the photo's pixels."""
    vertebrae, notes = _vertebra_shapes(m)
    prediction = {"model": model, "frame": m.frame, "notes": m.notes,
                  "angles": {n: (None if math.isnan(m.angles[n].value) else round(m.angles[n].value, 4))
                             for n in ANGLE_NAMES}}
    if notes:
        prediction["written"] = "; ".join(notes)
    shapes = vertebrae + _head_shapes(m)
    h, w = (int(v) for v in (m.image_shape if photo_shape is None else photo_shape[:2]))
    if (h, w) != tuple(int(v) for v in m.image_shape):
        shapes = [{**s, "points": scaled_points(s["points"], m.image_shape, (h, w))} for s in shapes]
        prediction["measured_on"] = [int(m.image_shape[1]), int(m.image_shape[0])]  # the copy's width, height
    return {"version": labelme_version(), "flags": {}, "shapes": shapes,
            "imagePath": image_path, "imageData": None, "imageHeight": h,
            "imageWidth": w, "spine_d2": {"prediction": prediction}}


def scaled_points(points: Sequence[Sequence[float]], from_shape: Sequence[int], to_shape: Sequence[int]
                  ) -> list[list[float]]:
    """Points (x, y, px) of an image of `from_shape` (H, W) in the pixels of the same picture at
    `to_shape`, pixel centres at integers as a resize maps them; rounded to 0.001 px."""
    sx, sy = to_shape[1] / from_shape[1], to_shape[0] / from_shape[0]
    return [[round((x + 0.5) * sx - 0.5, 3), round((y + 0.5) * sy - 0.5, 3)] for x, y in points]


def with_endplates(doc: Mapping[str, Any], endplates: Mapping[str, Mapping[str, Any]],
                   description: str = "moved by a reader") -> dict[str, Any]:
    """A copy of `doc` with `endplates` (level → side → [[x, y] anterior, [x, y] posterior], image
    frame) as corner points flagged `corrected`, replacing any corner points of those sides. Where
    the measurement was made on a scaled copy of the photo (the document's `measured_on`, width and
    height), the endplates are in the copy's pixels, as the measurement's answer gave them, and are
    scaled to the photo's."""
    out = copy.deepcopy(dict(doc))
    copy_size = ((out.get("spine_d2") or {}).get("prediction") or {}).get("measured_on")
    if copy_size:
        sizes = (int(copy_size[1]), int(copy_size[0])), (int(out["imageHeight"]), int(out["imageWidth"]))
        endplates = {lv: {side: scaled_points(ends, *sizes) for side, ends in sides.items()}
                     for lv, sides in endplates.items()}
    replaced = {corner_label(lv, c) for lv, sides in endplates.items() for side in sides
                for c in CORNER_SIDES[side]}
    shapes = [s for s in out.get("shapes", []) if s.get("label") not in replaced]
    for lv, sides in endplates.items():
        for side, (anterior, posterior) in sides.items():
            for corner, point in zip(CORNER_SIDES[side], (anterior, posterior)):
                shapes.append(shape(corner_label(lv, corner), [point], "point", description, {CORRECTED_FLAG: True}))
    out["shapes"] = shapes
    return out


def corner_points(doc: Mapping[str, Any]) -> dict[str, dict[str, list[float]]]:
    """level → corner → [x, y] of a document's corner points."""
    out: dict[str, dict[str, list[float]]] = {}
    for s in doc.get("shapes", []):
        parsed = parse_corner_label(str(s.get("label", "")))
        if parsed and s.get("shape_type") == "point":
            out.setdefault(parsed[0], {})[parsed[1]] = list(s["points"][0])
    return out


def write_new_json(path: str | Path, doc: Mapping[str, Any]) -> bool:
    """Write `doc` to `path` as Labelme does (UTF-8, indented); False, writing nothing, when a
    file is already there."""
    try:
        with open(path, "x", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=2)
    except FileExistsError:
        return False
    return True
