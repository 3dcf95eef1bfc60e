"""Writes tiny Labelme datasets for tests, the way the Labelme program does.

JSON goes through labelme's own writer (`LabelFile.save`) and the image bytes through its own
reader (`LabelFile.load_image_file`, which applies the EXIF orientation as the app displays it),
so the files are what a real annotator's folder holds. Images are a few dozen pixels.

    root = make_dataset(tmp_path / "ds", n=4)              # datasets/<name>/ layout
    img = write_image(path, (40, 70), orientation=6)       # a phone photo shown as 40×70
    write_labelme(json_path, img, spine_shapes(40, 70))    # annotations/<stem>.json
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import PIL.Image
import pytest
from labelme._label_file import LabelFile
from loguru import logger

from spine_d2.angles import ANGLE_NAMES

logger.disable("labelme")  # its DEBUG line per image read is noise in test output

SIZE = (48, 96)  # (width, height) as displayed
LUMBAR_SPINE = ("L1", "L2", "L3", "L4", "L5", "S1")

#: PIL transpose that undoes EXIF orientation k (stored = inverse(displayed)).
_UNDO_ORIENTATION = {
    2: PIL.Image.Transpose.FLIP_LEFT_RIGHT, 3: PIL.Image.Transpose.ROTATE_180,
    4: PIL.Image.Transpose.FLIP_TOP_BOTTOM, 5: PIL.Image.Transpose.TRANSPOSE,
    6: PIL.Image.Transpose.ROTATE_90, 7: PIL.Image.Transpose.TRANSVERSE,
    8: PIL.Image.Transpose.ROTATE_270,
}


@pytest.fixture
def image_cache(tmp_path_factory, monkeypatch) -> Path:
    """Point the loader's image cache (SPINE_D2_CACHE_DIR) at a temporary folder; import this
    fixture into a test module (``from labelme_factory import image_cache``) to use it."""
    path = tmp_path_factory.mktemp("spine_d2_cache")
    monkeypatch.setenv("SPINE_D2_CACHE_DIR", str(path))
    return path


def displayed_pixels(size: Sequence[int] = SIZE, seed: int = 0) -> np.ndarray:
    """An RGB test picture (H×W×3): dark noise with a bright block in the top-left quarter, so
    the orientation a reader applied can be seen."""
    w, h = size
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
    arr[: h // 4, : w // 4] = 250
    return arr


def write_image(path: Path, size: Sequence[int] = SIZE, orientation: int | None = None,
                seed: int = 0) -> Path:
    """A JPEG/PNG (by suffix) that Labelme displays as `displayed_pixels(size, seed)`: with an
    EXIF orientation the stored pixels are turned so that applying the tag gives the picture."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = PIL.Image.fromarray(displayed_pixels(size, seed))
    kwargs = {"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    if orientation and orientation != 1:
        image = image.transpose(_UNDO_ORIENTATION[orientation])
    if orientation:
        exif = PIL.Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    image.save(path, **kwargs)
    return path


def shape(label: str, points, shape_type: str = "polygon") -> dict:
    """One shape as Labelme 6 writes it."""
    return {"label": label, "points": [[float(x), float(y)] for x, y in points],
            "group_id": None, "description": "", "shape_type": shape_type, "flags": {},
            "mask": None}


def spine_shapes(width: int = SIZE[0], height: int = SIZE[1],
                 levels: Iterable[str] = LUMBAR_SPINE, femoral_heads: int = 2) -> list[dict]:
    """Stacked quadrilateral vertebrae (one polygon per level, top to bottom), the last one as a
    Labelme rectangle, and femoral heads as circles below-anterior."""
    levels = list(levels)
    rows = len(levels) + 2
    step = height / rows
    out = []
    for i, label in enumerate(levels):
        y0, y1 = (i + 0.3) * step, (i + 0.9) * step
        x0, x1 = 0.25 * width, 0.7 * width
        if i == len(levels) - 1:
            out.append(shape(label, [[x0, y0], [x1, y1]], "rectangle"))
        else:
            out.append(shape(label, [[x0, y0], [x1, y0 + 1], [x1 - 1, y1], [x0 + 1, y1]]))
    r = min(width, height) * 0.08
    for k in range(femoral_heads):
        cx, cy = 0.75 * width + 2 * k, (len(levels) + 1) * step
        out.append(shape("FH", [[cx, cy], [cx + r, cy]], "circle"))
    return out


def write_labelme(json_path: Path, image_path: Path, shapes: list[dict], embed: bool = False,
                  other_data: dict | None = None, image_size: Sequence[int] | None = None) -> Path:
    """Save an annotation with labelme's `LabelFile`: imagePath relative to the JSON, the size
    the app would record (its displayed image), imageData embedded when `embed`.
    `image_size` (width, height) overrides the recorded size (to make a bad file; labelme's
    writer refuses that together with `embed`)."""
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    data = LabelFile.load_image_file(str(image_path))
    with PIL.Image.open(io.BytesIO(data)) as im:
        width, height = im.size
    if image_size is not None:
        width, height = image_size
    LabelFile().save(
        filename=str(json_path), shapes=shapes,
        image_path=os.path.relpath(image_path, json_path.parent),
        image_height=height, image_width=width,
        image_data=data if embed else None,
        other_data=other_data,
    )
    return json_path


def edit_json(json_path: Path, **changes) -> dict:
    """Rewrite some top-level keys of a Labelme JSON (to make a bad file); returns the dict."""
    raw = json.loads(Path(json_path).read_text())
    raw.update(changes)
    Path(json_path).write_text(json.dumps(raw))
    return raw


def write_measurements(path: Path, rows: dict[str, dict[str, object]],
                       columns: Sequence[str] = ANGLE_NAMES) -> Path:
    """measurements.csv: image,<columns>; a missing value is an empty cell."""
    lines = [",".join(("image",) + tuple(columns))]
    for image, values in rows.items():
        lines.append(",".join([image] + [str(values.get(c, "")) for c in columns]))
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def make_dataset(root: Path, n: int = 4, size: Sequence[int] = SIZE,
                 levels: Iterable[str] = LUMBAR_SPINE, measurements: bool = True,
                 splits: dict[str, list[str]] | None = None, suffix: str = ".png") -> Path:
    """datasets/<name>/ layout: images/img<k><suffix>, annotations/img<k>.json,
    measurements.csv (angles derived from k), optional splits/{train,test}.txt."""
    root = Path(root)
    levels = tuple(levels)
    for k in range(n):
        img = write_image(root / "images" / f"img{k}{suffix}", size, seed=k)
        write_labelme(root / "annotations" / f"img{k}.json", img,
                      spine_shapes(size[0], size[1], levels))
    if measurements:
        write_measurements(root / "measurements.csv", {
            f"img{k}": {"TK": 30 + k, "LL": 40.5 + k, "SS": 35 + k, "PT": 10 + k,
                        "PI": 45 + 2 * k} for k in range(n)})
    for split, stems in (splits or {}).items():
        (root / "splits").mkdir(exist_ok=True)
        (root / "splits" / f"{split}.txt").write_text("\n".join(stems) + "\n")
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file under root: to assert nothing changed."""
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(Path(root).rglob("*")) if p.is_file()}
