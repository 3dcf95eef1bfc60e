"""The per-image table (per_image.csv): one row per image; angles in degrees, Dice/IoU fractions 0–1.

Columns, in this order: ``image`` (the image stem), ``dice``, ``iou`` (all vertebra masks of the
image together), then for each parameter P of ANGLE_NAMES: ``P_true`` (the reference value, e.g.
the specialist's), ``P_pred`` (ours; empty = could not be measured), ``P_frame`` (the frame the
predicted angle was measured in: "radiograph" or "image") and ``P_note`` (why a value is missing,
or any remark). Further columns (e.g. ``dice_L3``, ``iou_lumbar``; ``levels_named``,
``levels_misnamed`` and the text ``misnamed``, the levels named against the annotation's) may
follow; they are kept.

This module is the one place that knows the table's layout: `image_row` + `per_image_table` build
it from per-image results (the evaluator's side), `read_per_image` reads it back (the report tool's
side), `pairs` hands one parameter's (true, pred) arrays to the statistics.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from spine_d2.angles import ANGLE_NAMES

SUFFIXES = ("true", "pred", "frame", "note")
PER_IMAGE_COLUMNS: tuple[str, ...] = ("image", "dice", "iou") + tuple(
    f"{p}_{s}" for p in ANGLE_NAMES for s in SUFFIXES)
#: text beyond the standard columns: the levels misnamed (evaluation.level_naming)
TEXT_EXTRAS = frozenset({"misnamed"})
TEXT_COLUMNS = frozenset({"image"} | {f"{p}_{s}" for p in ANGLE_NAMES for s in ("frame", "note")}) | TEXT_EXTRAS


class PerImageError(ValueError):
    """A per-image table that cannot be used; the message names the file and the problem."""


def _value(x: Any) -> tuple[float, str]:
    """A float, None, or an Angle-like object (.value, .reason) → (degrees or NaN, reason)."""
    if x is None:
        return math.nan, ""
    if hasattr(x, "value"):
        return float(x.value), str(getattr(x, "reason", "") or "")
    return float(x), ""


def _per_param(x: str | Mapping[str, str] | None, p: str) -> str:
    if x is None:
        return ""
    if isinstance(x, str):
        return x
    return str(x.get(p, "") or "")


def image_row(image: str, *, true: Mapping[str, float | None] | None = None,
              pred: Mapping[str, Any] | None = None, frame: str | Mapping[str, str] | None = None,
              notes: str | Mapping[str, str] | None = None, dice: float = math.nan,
              iou: float = math.nan, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One image's row. `pred` values may be floats or `spine_d2.angles.Angle`s (a missing angle's
    reason becomes its note); `frame` and `notes` are one string for all parameters or a dict per
    parameter; `extra` adds columns (e.g. the per-class/per-level scores of `image_segmentation`)."""
    true, pred = dict(true or {}), dict(pred or {})
    unknown = (set(true) | set(pred)) - set(ANGLE_NAMES)
    if unknown:
        raise ValueError(f"image {image}: unknown parameter(s) {sorted(unknown)}; "
                         f"expected {', '.join(ANGLE_NAMES)}")
    row: dict[str, Any] = {"image": str(image), "dice": float(dice), "iou": float(iou)}
    for p in ANGLE_NAMES:
        t, _ = _value(true.get(p))
        v, reason = _value(pred.get(p))
        note = _per_param(notes, p)
        if reason and math.isnan(v) and reason not in note:
            note = f"{note}; {reason}" if note else reason
        row.update({f"{p}_true": t, f"{p}_pred": v, f"{p}_frame": _per_param(frame, p),
                    f"{p}_note": note})
    for k, v in (extra or {}).items():
        if k in row:
            raise ValueError(f"image {image}: extra column {k!r} clashes with a standard column")
        row[k] = v
    return row


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Standard columns first (added empty where absent), extras after; types fixed."""
    df = df.copy()
    for c in PER_IMAGE_COLUMNS:
        if c not in df.columns:
            df[c] = "" if c in TEXT_COLUMNS else math.nan
    for c in df.columns:
        if c in TEXT_COLUMNS:
            df[c] = df[c].astype(object).where(df[c].notna(), "").astype(str)
    extras = [c for c in df.columns if c not in PER_IMAGE_COLUMNS]
    return df[list(PER_IMAGE_COLUMNS) + extras].reset_index(drop=True)


def per_image_table(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows (from `image_row`, or dicts with the same keys) → the per-image DataFrame."""
    rows = [dict(r) for r in rows]
    for i, r in enumerate(rows):
        if "image" not in r:
            raise ValueError(f"row {i}: no 'image' key")
    df = _normalise(pd.DataFrame(rows) if rows else pd.DataFrame(columns=list(PER_IMAGE_COLUMNS)))
    dup = df["image"][df["image"].duplicated()].tolist()
    if dup:
        raise ValueError(f"image(s) listed twice: {dup[:5]}")
    return df


def read_per_image(path: str | Path) -> pd.DataFrame:
    """per_image.csv → DataFrame (standard columns completed, extras kept). Every problem is a
    PerImageError naming the file, and the line and column where it is in a cell."""
    path = Path(path)
    if not path.is_file():
        raise PerImageError(f"{path}: per-image table not found")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as e:
        raise PerImageError(f"{path}: cannot read the per-image table ({e})") from None
    raw.columns = [c.strip() for c in raw.columns]
    if "image" not in raw.columns:
        raise PerImageError(f"{path}: no 'image' column; the header must start with "
                            f"{', '.join(PER_IMAGE_COLUMNS[:4])}, …")
    df = pd.DataFrame({"image": raw["image"].str.strip()})
    for c in raw.columns:
        if c == "image":
            continue
        if c in TEXT_COLUMNS:
            df[c] = raw[c].astype(str)
            continue
        cells = raw[c].str.strip()
        blank = cells.str.lower().isin(["", "nan", "na", "n/a", "none", "null"])
        values = pd.to_numeric(cells.where(~blank, None), errors="coerce")
        bad = values.isna() & ~blank
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise PerImageError(f"{path}, line {i + 2}, column {c}: {raw[c].iloc[i]!r} "
                                "is not a number")
        df[c] = values.astype(float)
    if (df["image"] == "").any():
        i = int(np.flatnonzero((df["image"] == "").to_numpy())[0])
        raise PerImageError(f"{path}, line {i + 2}: empty image name")
    dup = df["image"][df["image"].duplicated()].tolist()
    if dup:
        raise PerImageError(f"{path}: image(s) listed twice: {dup[:5]}")
    return _normalise(df)


def pairs(per_image: pd.DataFrame, parameter: str) -> tuple[np.ndarray, np.ndarray]:
    """(true, pred) float arrays of one parameter, NaN where absent (one entry per image)."""
    if parameter not in ANGLE_NAMES:
        raise KeyError(f"unknown parameter {parameter!r}; expected one of {', '.join(ANGLE_NAMES)}")
    cols = [f"{parameter}_true", f"{parameter}_pred"]
    if not set(cols) <= set(per_image.columns):
        n = len(per_image)
        return np.full(n, math.nan), np.full(n, math.nan)
    return tuple(pd.to_numeric(per_image[c], errors="coerce").to_numpy(float) for c in cols)


def frames_used(per_image: pd.DataFrame) -> pd.Series:
    """Per image, the frame(s) the predicted angles were measured in, in words (e.g. 'radiograph',
    or 'SS, PT, PI: image; TK, LL, LL_S1: radiograph' when they differ); '' when none is recorded."""
    out = []
    for _, r in per_image.iterrows():
        by_frame: dict[str, list[str]] = {}
        for p in ANGLE_NAMES:
            f = str(r.get(f"{p}_frame", "") or "")
            if f and not (isinstance(r.get(f"{p}_pred"), float) and math.isnan(r.get(f"{p}_pred"))):
                by_frame.setdefault(f, []).append(p)
        if len(by_frame) <= 1:
            out.append(next(iter(by_frame), ""))
        else:
            out.append("; ".join(f"{', '.join(ps)}: {f}" for f, ps in by_frame.items()))
    return pd.Series(out, index=per_image.index, dtype=object)
