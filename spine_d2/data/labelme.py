"""Labelme annotation folders → detectron2 dataset dicts, with the checks a real folder needs.

Coordinates are in the image frame: pixels of the photo as Labelme shows it (EXIF orientation
applied to image files; embedded ``imageData`` shown as stored), x right, y down. Images (JPEG,
PNG, HEIC, 16-bit PNG/TIFF, …) are read by `spine_d2.data.images`, the project's one reader.

One place for the checks: `check_labelme_dataset` reads every annotation file into a `FileCheck`
(the detectron2 record, or the `Problem`s that make the file bad). `load_labelme_dataset` raises a
`DatasetError` from those problems (strict) or skips the bad files with a warning (lenient);
`spine_d2.data.summary` prints them. Nothing in the dataset folder is ever written: an embedded
image with no file on disk is decoded once into a cache outside it (`image_cache_dir`).

Accepted: Labelme 3 to 6 JSON; shapes `polygon`, `rectangle` (2 points → 4 corners),
`circle` (centre + rim point → polygon, plus ``circle`` [cx, cy, r]), `oriented_rectangle` and
`mask`; `imagePath` relative to the JSON (Windows separators too); `imageData` embedded or null.
Corner points (`point` shapes labelled `L3_sa` … `L3_ip`, `spine_d2.levels.CORNERS`) go with their
level's outline as its annotation's ``corners`` {corner: [x, y]} (not trained on; the measurement
takes an endplate given by both its corners as is). Shape flags are read only for
``level_uncertain`` (→ the annotation's ``level_uncertain``: True); others are ignored.
"""
from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path, PureWindowsPath

import numpy as np
import PIL.Image

from spine_d2.data.images import oriented_size  # the one reader; also lets Pillow open HEIC
from spine_d2.levels import FEMORAL_HEAD, KNOWN_LABELS, ClassMap, get_class_map, is_level, parse_corner_label

log = logging.getLogger(__name__)

MIN_POLYGON_AREA = 1.0  # px²: a smaller polygon is "zero area"
#: Points farther outside than this fraction of the longer side (at least 5 px) are "far outside";
#: nearer ones are clipped to the image.
OUTSIDE_TOLERANCE = 0.02
CIRCLE_VERTICES = 32  # polygon vertices that stand for a Labelme circle
MAX_FEMORAL_HEADS = 2

#: Short names of the problems a file can have (kind → what it means).
PROBLEM_KINDS: dict[str, str] = {
    "json": "unreadable or truncated JSON",
    "format": "not a Labelme annotation",
    "image_missing": "missing image",
    "image_unreadable": "unreadable image",
    "size": "image size differs from the JSON",
    "no_shapes": "no shapes",
    "label": "unknown label",
    "shape": "unsupported shape type",
    "polygon": "polygon under 3 points or zero area",
    "outside": "points far outside the image",
    "duplicate": "level annotated twice",
    "corner": "corner point without its level's outline",
}


class DatasetError(ValueError):
    """A dataset file is bad; the message names the file and the problem."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one file."""

    file: str
    kind: str  # a key of PROBLEM_KINDS (or "measurements"/"splits" for those files)
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"


@dataclass
class FileCheck:
    """The outcome of reading one annotation file: its record, or the problems that make it bad."""

    json_path: Path
    image: str  # the image stem (key of measurements.csv and splits)
    image_id: int
    labels: list[str] = field(default_factory=list)  # every label annotated, in file order
    problems: list[Problem] = field(default_factory=list)
    record: dict | None = None  # the detectron2 dict; None when the file is bad

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, message: str) -> None:
        self.problems.append(Problem(str(self.json_path), kind, message))


@dataclass
class DatasetCheck:
    """Every annotation file of a dataset folder, checked."""

    root: Path
    class_map: ClassMap
    files: list[FileCheck]

    @property
    def records(self) -> list[dict]:
        return [f.record for f in self.files if f.ok]

    @property
    def bad(self) -> list[FileCheck]:
        return [f for f in self.files if not f.ok]

    @property
    def problems(self) -> list[Problem]:
        return [p for f in self.files for p in f.problems]

    def why_skipped(self) -> str:
        """One line: how many files are bad and why, e.g. '2 of 9 annotation files: 1 × …'."""
        kinds = collections.Counter(f.problems[0].kind for f in self.bad)
        why = ", ".join(f"{n} × {PROBLEM_KINDS.get(k, k)}" for k, n in kinds.most_common())
        return f"{len(self.bad)} of {len(self.files)} annotation files in {self.root} ({why})"

    def error_message(self, limit: int = 20) -> str:
        lines = [str(p) for p in self.problems]
        if len(lines) > limit:
            lines = lines[:limit] + [f"… and {len(lines) - limit} more problems"]
        return (f"bad annotation files: {self.why_skipped()}\n  " + "\n  ".join(lines)
                + "\n(fix them, or load with strict=false to skip bad files)")


# ---------------------------------------------------------------------------------------------
# Finding files


def annotation_dir(root: str | Path) -> Path:
    """Where the annotation JSON files are: `root/annotations/` if present, else `root/images/`
    (Labelme's default: the JSON beside its image), else `root` itself."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    for sub in ("annotations", "images"):
        if (root / sub).is_dir() and any((root / sub).rglob("*.json")):
            return root / sub
    return root


def annotation_files(root: str | Path) -> list[Path]:
    """The sorted annotation files of a dataset folder (their index is the `image_id`)."""
    folder = annotation_dir(root)
    files = sorted(folder.rglob("*.json") if folder != Path(root) else folder.glob("*.json"))
    if not files:
        raise DatasetError(f"{root}: no Labelme annotation files (*.json) in annotations/, "
                           "images/ or the folder itself")
    return files


def image_stems(root: str | Path) -> list[str]:
    """The image stem of each annotation file (same order as `annotation_files`)."""
    folder = annotation_dir(root)
    return [_stem(p, folder) for p in annotation_files(root)]


def _stem(json_path: Path, folder: Path) -> str:
    return json_path.relative_to(folder).with_suffix("").as_posix()


def image_cache_dir() -> Path:
    """Cache for images decoded from embedded `imageData`: $SPINE_D2_CACHE_DIR, else
    $XDG_CACHE_HOME/spine_d2, else ~/.cache/spine_d2; images go to its `labelme_images/`."""
    base = os.environ.get("SPINE_D2_CACHE_DIR")
    if not base:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "spine_d2"
    return Path(base).expanduser().resolve() / "labelme_images"


# ---------------------------------------------------------------------------------------------
# Images


def _decode_to_cache(image_data: str, raw: bytes) -> Path:
    """Decode an embedded image once into the cache (PNG, no EXIF: Labelme shows embedded data as
    stored); the file name is a hash of the data, so a second call finds it."""
    from labelme.utils import img_data_to_pil  # labelme's own decoder for imageData

    path = image_cache_dir() / f"{hashlib.sha1(image_data.encode()).hexdigest()}.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        image = img_data_to_pil(raw)
        if image.mode not in ("1", "L", "P", "RGB", "RGBA", "LA", "I;16"):
            image = image.convert("RGB")
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    return path


def _resolve_image(raw: dict, fc: FileCheck, root: Path) -> tuple[str | None, int, int]:
    """(file_name, width, height) of the image the annotator saw; file_name None when the image is
    embedded and not yet decoded (decoded only for a good file)."""
    rel = PureWindowsPath(str(raw.get("imagePath") or "")).as_posix()
    on_disk = None
    if rel:
        candidates = [Path(os.path.normpath(fc.json_path.parent / rel)),
                      root / "images" / Path(rel).name]
        on_disk = next((c for c in candidates if c.is_file()), None)
    file_size = None
    if on_disk is not None:
        try:
            with PIL.Image.open(on_disk) as im:
                file_size = oriented_size(im)
        except (OSError, PIL.UnidentifiedImageError, ValueError) as e:
            if not raw.get("imageData"):
                fc.add("image_unreadable", f"image {on_disk} cannot be read ({e})")
                return None, 0, 0
    if raw.get("imageData"):
        try:
            data = base64.b64decode(raw["imageData"], validate=False)
            with PIL.Image.open(io.BytesIO(data)) as im:
                embedded_size = im.size  # Labelme shows embedded data as stored
        except (binascii.Error, ValueError, TypeError, OSError, PIL.UnidentifiedImageError) as e:
            fc.add("image_unreadable", f"embedded imageData cannot be decoded ({e})")
            return None, 0, 0
        if file_size == embedded_size:  # the file shows the same picture: use it, no cache
            return str(on_disk.resolve()), *embedded_size
        return None, *embedded_size
    if on_disk is None:
        where = (f"imagePath {rel!r} → {os.path.normpath(fc.json_path.parent / rel)}" if rel
                 else "no imagePath")
        fc.add("image_missing", f"image not found ({where}) and no imageData embedded")
        return None, 0, 0
    return str(on_disk.resolve()), *file_size


# ---------------------------------------------------------------------------------------------
# Shapes


def _polygon_area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _label_hint(label: str) -> str:
    by_fold = {k.lower(): k for k in KNOWN_LABELS}
    guess = by_fold.get(label.strip().lower().replace(" ", ""))
    return f" (did you mean {guess!r}?)" if guess else f"; known: {', '.join(KNOWN_LABELS)}"


def _mask_polygon(shape: dict, pts: np.ndarray) -> np.ndarray:
    """Outer contour of a Labelme 'mask' shape (a PNG patch whose top-left corner is points[0])."""
    import cv2
    from labelme.utils import img_b64_to_arr

    mask = img_b64_to_arr(shape["mask"]).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.zeros((0, 2))
    return max(contours, key=cv2.contourArea)[:, 0, :].astype(float) + pts.min(axis=0)


def _shape_polygon(shape: dict, i: int, fc: FileCheck) -> tuple[np.ndarray, list | None] | None:
    """Polygon (N×2) and optional circle [cx, cy, r] of a shape, or None after adding a problem."""
    label, kind = shape["label"], shape.get("shape_type") or "polygon"
    where = f"shape {i} {label!r}"
    try:
        pts = np.asarray(shape.get("points"), dtype=float)
        if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
            raise ValueError
    except (TypeError, ValueError):
        fc.add("format", f"{where}: points are not a list of [x, y] numbers")
        return None
    circle = None
    if kind in ("polygon", "oriented_rectangle") or (kind == "rectangle" and len(pts) != 2):
        poly = pts
    elif kind == "rectangle":
        (x0, y0), (x1, y1) = pts
        poly = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=float)
    elif kind == "circle":
        if len(pts) != 2:
            fc.add("polygon", f"{where}: a circle needs 2 points (centre, rim), got {len(pts)}")
            return None
        (cx, cy), rim = pts[0], pts[1]
        r = float(np.hypot(*(rim - pts[0])))
        t = np.linspace(0, 2 * np.pi, CIRCLE_VERTICES, endpoint=False)
        poly = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)
        circle = [float(cx), float(cy), r]
    elif kind == "mask" and isinstance(shape.get("mask"), str):
        try:
            poly = _mask_polygon(shape, pts)
        except Exception as e:  # noqa: BLE001 - any decode failure is this file's problem
            fc.add("format", f"{where}: mask cannot be decoded ({e})")
            return None
    else:
        fc.add("shape", f"{where}: shape type {kind!r} cannot outline a structure "
                        "(use polygon, rectangle or circle)")
        return None
    if len(poly) < 3:
        fc.add("polygon", f"{where}: {kind} has {len(poly)} point(s), needs at least 3")
        return None
    area = _polygon_area(poly)
    if area < MIN_POLYGON_AREA:
        fc.add("polygon", f"{where}: {kind} has zero area ({area:.2g} px²)")
        return None
    return poly, circle


def _check_inside(pts: np.ndarray, width: int, height: int, where: str, fc: FileCheck) -> bool:
    tol = max(5.0, OUTSIDE_TOLERANCE * max(width, height))
    over = np.maximum.reduce([-pts[:, 0], -pts[:, 1], pts[:, 0] - width, pts[:, 1] - height])
    if over.max() > tol:
        x, y = pts[int(over.argmax())]
        fc.add("outside", f"{where}: point ({x:.0f}, {y:.0f}) lies {over.max():.0f} px outside "
                          f"the {width}×{height} image")
        return False
    return True


def _annotation(poly: np.ndarray, circle: list | None, label: str, category_id: int,
                flags: dict | None = None, corners: dict | None = None) -> dict:
    from detectron2.structures import BoxMode  # here: checking a folder needs no torch

    x0, y0 = poly.min(axis=0)
    x1, y1 = poly.max(axis=0)
    ann = {
        "bbox": [float(x0), float(y0), float(x1), float(y1)],
        "bbox_mode": BoxMode.XYXY_ABS,
        "segmentation": [[float(v) for v in poly.reshape(-1)]],
        "category_id": int(category_id),
        "label": label,
    }
    if circle is not None:
        ann["circle"] = circle
    if isinstance(flags, dict) and flags.get("level_uncertain") is True:
        ann["level_uncertain"] = True
    if corners:
        ann["corners"] = corners
    return ann


def _corner_point(shape: dict, i: int, label: str, width: int, height: int, have_image: bool,
                  fc: FileCheck) -> list[float] | None:
    """[x, y] of a corner point, or None after adding a problem."""
    where = f"shape {i} {label!r}"
    if (shape.get("shape_type") or "polygon") != "point":
        fc.add("shape", f"{where}: a corner is a point, not a {shape.get('shape_type')!r}")
        return None
    try:
        pts = np.asarray(shape.get("points"), dtype=float)
        if pts.shape != (1, 2) or not np.isfinite(pts).all():
            raise ValueError
    except (TypeError, ValueError):
        fc.add("format", f"{where}: a point needs one [x, y]")
        return None
    if have_image and not _check_inside(pts, width, height, where, fc):
        return None
    return [float(v) for v in pts[0]]


# ---------------------------------------------------------------------------------------------
# One file, a folder


def check_labelme_file(json_path: Path, root: Path, image_id: int, image: str,
                       class_map: ClassMap, build_record: bool = True) -> FileCheck:
    """Read and check one Labelme file; a good file gets its detectron2 `record` (unless
    `build_record` is False: then nothing is decoded and detectron2 is not imported)."""
    fc = FileCheck(json_path=json_path, image=image, image_id=image_id)
    try:
        raw = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        fc.add("json", f"unreadable or truncated JSON ({e})")
        return fc
    if not isinstance(raw, dict) or not isinstance(raw.get("shapes"), list):
        fc.add("format", "not a Labelme annotation: no 'shapes' list")
        return fc
    if not raw.get("imagePath") and not raw.get("imageData"):
        fc.add("format", "not a Labelme annotation: neither imagePath nor imageData")
        return fc
    file_name, width, height = _resolve_image(raw, fc, root)
    have_image = fc.ok  # without it the shapes are still checked, except against its size
    jw, jh = raw.get("imageWidth"), raw.get("imageHeight")
    if have_image and jw is not None and jh is not None and (int(jw), int(jh)) != (width, height):
        fc.add("size", f"image is {width}×{height} px but the JSON records {jw}×{jh}"
               + (" (width and height swapped: annotated in a tool that ignores EXIF rotation?)"
                  if (int(jw), int(jh)) == (height, width) else ""))
    if not raw["shapes"]:
        fc.add("no_shapes", "no shapes annotated")
        return fc

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
            point = _corner_point(shape, i, label, width, height, have_image, fc)
            if point is not None:
                corners[corner[0]][corner[1]] = point
            continue
        if label not in KNOWN_LABELS:
            fc.add("label", f"shape {i}: unknown label {label!r}{_label_hint(label)}")
            continue
        got = _shape_polygon(shape, i, fc)
        if got is None:
            continue
        poly, circle = got
        if not have_image or not _check_inside(np.asarray(shape["points"], float), width,
                                               height, f"shape {i} {label!r}", fc):
            continue
        poly = np.clip(poly, 0, [width, height])
        if class_map.keeps(label):
            kept.append((poly, circle, label, class_map.category_id(label), shape.get("flags")))
    for level in sorted(set(corners) - set(where_label)):
        fc.add("corner", f"corner point(s) {', '.join(f'{level}_{c}' for c in corners[level])} "
                         f"but no {level!r} outline")
    for label, where in where_label.items():
        limit = (MAX_FEMORAL_HEADS if label == FEMORAL_HEAD else
                 1 if is_level(label) or parse_corner_label(label) else None)
        if limit is not None and len(where) > limit:
            fc.add("duplicate", f"{label!r} annotated {len(where)} times (shapes "
                                f"{', '.join(map(str, where))}; at most {limit})")
    if not fc.ok or not build_record:
        return fc
    if file_name is None:  # embedded only: decode once into the cache
        file_name = str(_decode_to_cache(raw["imageData"], base64.b64decode(raw["imageData"])))
    fc.record = {
        "file_name": file_name,
        "image_id": image_id,
        "image": image,
        "height": height,
        "width": width,
        "annotations": [_annotation(*k, corners=corners.get(k[2])) for k in kept],
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
    files = [check_labelme_file(p, root, i, _stem(p, folder), cmap, build_records)
             for i, p in enumerate(annotation_files(root))]
    return DatasetCheck(root=root, class_map=cmap, files=files)


def load_labelme_dataset(root: str | Path, class_map: str | ClassMap | None = None,
                         strict: bool = True) -> list[dict]:
    """detectron2 dicts of a Labelme dataset folder (datasets/README.md).

    strict: any bad file raises a `DatasetError` naming every bad file and its problem;
    otherwise bad files are skipped with a warning and a summary of how many and why.
    """
    check = check_labelme_dataset(root, class_map)
    if check.bad:
        if strict:
            raise DatasetError(check.error_message())
        for problem in check.problems:
            log.warning("skipping %s", problem)
        log.warning("skipped %s", check.why_skipped())
    return check.records


__all__ = [
    "DatasetError", "Problem", "FileCheck", "DatasetCheck", "PROBLEM_KINDS",
    "load_labelme_dataset", "check_labelme_dataset", "check_labelme_file",
    "annotation_dir", "annotation_files", "image_stems", "image_cache_dir",
]

