"""Reads a dataset's measurements.csv: the specialists' angles per image, in degrees.

Columns: ``image``, ``TK``, ``LL``, ``SS`` and optionally ``LL_S1``, ``PT``, ``PI``; an empty cell
(or NaN/NA) means "not measured". Other columns (e.g. notes) are ignored. ``image`` names an image
by its stem (``img_001``, or ``sub/img_001`` in a subfolder) or its file name (``img_001.jpg``, as
specialists' sheets do): any name that matches exactly one image of the dataset.
Angles are in degrees as the specialist measured them on the radiograph; nothing is converted.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Iterable

import pandas as pd

from spine_d2.angles import ANGLE_NAMES
from spine_d2.data.images import IMAGE_SUFFIXES
from spine_d2.data.labelme import DatasetError

REQUIRED_COLUMNS = ("image", "TK", "LL", "SS")
OPTIONAL_COLUMNS = tuple(a for a in ANGLE_NAMES if a not in REQUIRED_COLUMNS)
MISSING_VALUES = frozenset({"", "nan", "na", "n/a", "none"})


def _number(text: str) -> float:
    """A cell as float degrees; NaN for an empty cell; ValueError for anything else."""
    text = text.strip()
    if text.lower() in MISSING_VALUES:
        return math.nan
    value = float(text)  # ValueError for "abc", "12,5", "12°"
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def record_stem(record: dict) -> str:
    """The image stem a dataset record's measurements are keyed by (`measurements_by_image`)."""
    return record.get("image") or Path(record["file_name"]).stem


def image_matches(name: str, stems: Iterable[str]) -> list[str]:
    """The image stems a measurements.csv name can mean: the stem itself when it is one; else
    every stem whose full or last part equals the name, or the name without its image extension
    (`img_001.jpg` → `img_001`, `sub/img_001`)."""
    stems = list(stems)
    if name in stems:
        return [name]
    name = name.replace("\\", "/")  # a path written on Windows
    forms = {name}
    if name.lower().endswith(IMAGE_SUFFIXES):
        forms.add(name.rsplit(".", 1)[0])
    return [s for s in stems if s in forms or s.rsplit("/", 1)[-1] in forms]


def _resolve(image: str, stems: list[str] | None, where: str) -> str:
    """The one stem `image` names (itself when no image list is given); DatasetError otherwise."""
    if stems is None:
        return image
    found = image_matches(image, stems)
    if len(found) == 1:
        return found[0]
    if not found:
        raise DatasetError(f"{where}: unknown image, no annotation file has this stem or file name")
    raise DatasetError(f"{where}: ambiguous image name, it matches {len(found)} images "
                       f"({', '.join(sorted(found)[:5])}); write the stem with its folder")


def _read_rows(path: Path) -> list[list[str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise DatasetError(f"{path}: measurements file not found") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{path}: cannot read measurements ({e})") from None
    if not rows:
        raise DatasetError(f"{path}: empty file; expected a header {','.join(REQUIRED_COLUMNS)}")
    return rows


def _columns(path: Path, header: list[str]) -> dict[str, int]:
    """Column name → index of the known columns of the header; DatasetError for a misspelt,
    doubled or missing one."""
    known = {c.lower(): c for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS}
    for h in header:
        if h.lower() in known and h != known[h.lower()]:
            raise DatasetError(f"{path}: column {h!r} should be spelled {known[h.lower()]!r}")
    if len(set(header)) != len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        raise DatasetError(f"{path}: column(s) {dup} appear twice in the header")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {', '.join(missing)}; the header must "
                           f"have {','.join(REQUIRED_COLUMNS)}[,{','.join(OPTIONAL_COLUMNS)}]")
    return {c: header.index(c) for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if c in header}


def _angles(row: list[str], col: dict[str, int], where: str) -> dict[str, float]:
    """The row's angles (degrees; NaN where not measured or not a column)."""
    values = {}
    for name in ANGLE_NAMES:
        if name not in col:
            values[name] = math.nan
            continue
        cell = row[col[name]]
        try:
            values[name] = _number(cell)
        except ValueError:
            raise DatasetError(f"{where}: {name} = {cell!r} is not a number of degrees "
                               "(leave the cell empty when not measured)") from None
    return values


def read_measurements(path: str | Path, images: Iterable[str] | None = None) -> pd.DataFrame:
    """measurements.csv → DataFrame indexed by image stem, columns exactly ANGLE_NAMES (float
    degrees, NaN = not measured). `images`: the dataset's image stems; each row's name is resolved
    to one of them (`image_matches`), and a row naming no image, or several, is an error. Every
    error is a DatasetError naming the file and the row (file line number)."""
    path = Path(path)
    rows = _read_rows(path)
    header = [h.strip() for h in rows[0]]
    col = _columns(path, header)
    known_images = None if images is None else list(images)
    data, first_row = {}, {}
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        where = f"{path} row {line}"
        if len(row) > len(header):
            raise DatasetError(f"{where}: {len(row)} cells but the header has {len(header)} "
                               "(a decimal comma? use a dot: 12.5)")
        row = row + [""] * (len(header) - len(row))
        image = row[col["image"]].strip()
        if not image:
            raise DatasetError(f"{where}: no image name")
        where = f"{where} (image {image!r})"
        image = _resolve(image, known_images, where)
        if image in first_row:
            raise DatasetError(f"{where}: duplicate image, already on row {first_row[image]}")
        first_row[image], data[image] = line, _angles(row, col, where)
    frame = pd.DataFrame.from_dict(data, orient="index", columns=list(ANGLE_NAMES), dtype=float)
    frame.index.name = "image"
    return frame


def measurements_by_image(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """{stem: {angle: degrees}} with every name of ANGLE_NAMES (NaN = not measured)."""
    return {str(image): {k: float(v) for k, v in row.items()} for image, row in frame.iterrows()}


#: what to do with a column written in the other sign convention (said wherever one is found)
NEGATE_ADVICE = "the signs here are spine_d2/angles.py's (kyphosis and lordosis positive); negate the column"
#: degrees: a row whose PI and PT + SS differ by more than this is noted (PI = PT + SS exactly on a
#: film; a reader measuring the three apart lands within a few degrees)
PI_IDENTITY_DEG = 5.0
#: the angles no upright adult's film gives negative (our signs, spine_d2/angles.py); PT may be
POSITIVE_ANGLES = ("TK", "LL", "LL_S1", "SS", "PI")
#: a column is noted as negated when at least this share of its (at least `MIN_ROWS`) values is
NEGATIVE_SHARE = 0.8
MIN_ROWS = 5


def sheet_notes(frame: pd.DataFrame, shown: int = 5) -> list[str]:
    """What a measurements table (`read_measurements`) says against itself, in words: a column of
    `POSITIVE_ANGLES` that is mostly negative (written in another sign convention), and rows whose
    PI is not PT + SS within `PI_IDENTITY_DEG` (a typing slip, or PT measured another way)."""
    out = []
    for a in POSITIVE_ANGLES:
        v = frame[a].dropna() if a in frame else pd.Series(dtype=float)
        if len(v) >= MIN_ROWS and (v < 0).mean() >= NEGATIVE_SHARE:
            out.append(f"{a} is negative on {int((v < 0).sum())} of {len(v)} rows: {NEGATE_ADVICE}")
    if {"PI", "PT", "SS"} <= set(frame):
        gap = (frame["PI"] - frame["PT"] - frame["SS"]).dropna()
        off = gap[gap.abs() > PI_IDENTITY_DEG].sort_values(key=abs, ascending=False)
        if len(off):
            rows = ", ".join(f"{im} ({g:+.1f}°)" for im, g in off.head(shown).items())
            more = f" and {len(off) - shown} more" if len(off) > shown else ""
            out.append(f"PI − (PT + SS) beyond ±{PI_IDENTITY_DEG:g}° on {len(off)} of {len(gap)} rows: "
                       f"{rows}{more}")
    return out
