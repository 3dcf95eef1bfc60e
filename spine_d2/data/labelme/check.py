"""Checking Labelme annotation files: one file → its detectron2 record or the problems that make it bad.

`check_labelme_file` reads one JSON (format, image, size, every shape, levels and corner points
annotated at most once) into a `FileCheck`; `check_labelme_dataset` does it for every file of a
folder. Coordinates are in the image frame (px) of the picture Labelme shows.
"""
from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np

from spine_d2.data.labelme.files import (annotation_dir, annotation_files, decode_to_cache, image_cache_dir,
                                         resolve_image, stem)
from spine_d2.data.labelme.problems import DatasetCheck, DatasetError, FileCheck
from spine_d2.data.labelme.shapes import annotation, check_inside, corner_point, label_hint, shape_polygon
from spine_d2.levels import FEMORAL_HEAD, KNOWN_LABELS, ClassMap, get_class_map, is_level, parse_corner_label

MAX_FEMORAL_HEADS = 2


def _read_json(json_path: Path, fc: FileCheck) -> dict | None:
    """The annotation as a dict, or None after adding why it is no Labelme annotation."""
    try:
        raw = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        fc.add("json", f"unreadable or truncated JSON ({e})")
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("shapes"), list):
        fc.add("format", "not a Labelme annotation: no 'shapes' list")
        return None
    if not raw.get("imagePath") and not raw.get("imageData"):
        fc.add("format", "not a Labelme annotation: neither imagePath nor imageData")
        return None
    return raw


def _check_size(raw: dict, width: int, height: int, fc: FileCheck) -> None:
    jw, jh = raw.get("imageWidth"), raw.get("imageHeight")
    if jw is not None and jh is not None and (int(jw), int(jh)) != (width, height):
        fc.add("size", f"image is {width}×{height} px but the JSON records {jw}×{jh}"
               + (" (width and height swapped: annotated in a tool that ignores EXIF rotation?)"
                  if (int(jw), int(jh)) == (height, width) else ""))


def _read_shapes(raw: dict, width: int, height: int, have_image: bool, class_map: ClassMap, fc: FileCheck):
    """(outlines kept for the class map: (polygon, circle, label, category, flags), label → shape
    numbers, level → corner → [x, y]); every shape's problem goes into `fc`."""
    kept, where_label = [], collections.defaultdict(list)
    corners: dict[str, dict[str, list[float]]] = collections.defaultdict(dict)
    for i, shape in enumerate(raw["shapes"], start=1):  # numbered as Labelme lists them
        label = shape.get("label") if isinstance(shape, dict) else None
        if not isinstance(label, str):
            fc.add("format", f"shape {i}: no label")
            continue
        fc.labels.append(label)
        where_label[label].append(i)
        corner = parse_corner_label(label)
        if corner is not None:
            point = corner_point(shape, i, label, width, height, have_image, fc)
            if point is not None:
                corners[corner[0]][corner[1]] = point
            continue
        if label not in KNOWN_LABELS:
            fc.add("label", f"shape {i}: unknown label {label!r}{label_hint(label)}")
            continue
        got = shape_polygon(shape, i, fc)
        if got is None or not have_image or not check_inside(
                np.asarray(shape["points"], float), width, height, f"shape {i} {label!r}", fc):
            continue
        if class_map.keeps(label):
            poly = np.clip(got[0], 0, [width, height])
            kept.append((poly, got[1], label, class_map.category_id(label), shape.get("flags")))
    return kept, where_label, corners


def _check_counts(where_label: dict, corners: dict, fc: FileCheck) -> None:
    """Corner points need their level's outline; a level (or corner) at most once, FH at most twice."""
    for level in sorted(set(corners) - set(where_label)):
        fc.add("corner", f"corner point(s) {', '.join(f'{level}_{c}' for c in corners[level])} "
                         f"but no {level!r} outline")
    for label, where in where_label.items():
        limit = (MAX_FEMORAL_HEADS if label == FEMORAL_HEAD else
                 1 if is_level(label) or parse_corner_label(label) else None)
        if limit is not None and len(where) > limit:
            fc.add("duplicate", f"{label!r} annotated {len(where)} times (shapes "
                                f"{', '.join(map(str, where))}; at most {limit})")


def check_labelme_file(json_path: Path, root: Path, image_id: int, image: str,
                       class_map: ClassMap, build_record: bool = True) -> FileCheck:
    """Read and check one Labelme file; a good file gets its detectron2 `record` (unless
    `build_record` is False: then nothing is decoded and detectron2 is not imported)."""
    fc = FileCheck(json_path=json_path, image=image, image_id=image_id)
    raw = _read_json(json_path, fc)
    if raw is None:
        return fc
    file_name, width, height = resolve_image(raw, fc, root)
    have_image = fc.ok  # without it the shapes are still checked, except against its size
    if have_image:
        _check_size(raw, width, height, fc)
    if not raw["shapes"]:
        fc.add("no_shapes", "no shapes annotated")
        return fc
    kept, where_label, corners = _read_shapes(raw, width, height, have_image, class_map, fc)
    _check_counts(where_label, corners, fc)
    if not fc.ok or not build_record:
        return fc
    fc.record = {
        "file_name": file_name or str(decode_to_cache(raw["imageData"])),  # embedded only: decoded once
        "image_id": image_id,
        "image": image,
        "height": height,
        "width": width,
        "annotations": [annotation(*k, corners=corners.get(k[2])) for k in kept],
    }
    if isinstance(raw.get("spine_d2"), dict):
        fc.record["spine_d2"] = raw["spine_d2"]
    return fc


def check_labelme_dataset(root: str | Path, class_map: str | ClassMap | None = None,
                          build_records: bool = True) -> DatasetCheck:
    """Check every annotation file of a dataset folder (see `annotation_dir`); with
    `build_records` False only the problems and labels are collected (fast, for a report)."""
    root = Path(root)
    cmap = get_class_map(class_map)
    cache = image_cache_dir()
    if root.resolve() in (cache, *cache.parents):
        raise DatasetError(f"{cache}: the image cache must lie outside the dataset folder {root}; "
                           "set SPINE_D2_CACHE_DIR elsewhere")
    folder = annotation_dir(root)
    files = [check_labelme_file(p, root, i, stem(p, folder), cmap, build_records)
             for i, p in enumerate(annotation_files(root))]
    return DatasetCheck(root=root, class_map=cmap, files=files)
