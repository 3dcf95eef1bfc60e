"""Checks a whole dataset folder and prints what it holds: labels, missing levels, measurement
coverage, splits and the problems of each bad file (the logic behind tools/check_dataset.py).

Counts only; no coordinates. The per-file checks are `spine_d2.data.labelme`'s; this module adds
the folder-level ones (measurements.csv, splits/) as `Problem`s of those files.
"""
from __future__ import annotations

import collections
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
from omegaconf import OmegaConf
from tabulate import tabulate

from spine_d2.angles import ANGLE_NAMES, NEEDS_FEMORAL_HEADS, REQUIRED_ENDPLATES
from spine_d2.data.labelme import (
    DatasetCheck,
    DatasetError,
    Problem,
    check_labelme_dataset,
)
from spine_d2.data.measurements import read_measurements, sheet_notes
from spine_d2.data.splits import dataset_splits
from spine_d2.levels import FEMORAL_HEAD, KNOWN_LABELS, LEVELS, ClassMap, is_level, parse_corner_label

MAX_ROWS = 40  # rows shown per table before "… and N more"


@dataclass
class DatasetReport:
    """A checked dataset folder: the per-file check plus measurements and splits."""

    check: DatasetCheck
    measurements: pd.DataFrame | None = None
    splits: dict[str, list[str]] | None = None
    folder_problems: list[Problem] = field(default_factory=list)  # measurements.csv, splits/

    @property
    def ok(self) -> bool:
        return not self.check.bad and not self.folder_problems

    @property
    def bad_files(self) -> list[str]:
        return [str(f.json_path) for f in self.check.bad] + [p.file for p in self.folder_problems]


def check_dataset(root: str | Path, class_map: str | ClassMap | None = None,
                  measurements: str | None = "measurements.csv", test_fraction: float = 0.3,
                  split_seed: int = 0) -> DatasetReport:
    """Check every file of a dataset folder; never raises for a bad file, only reports it.
    (A missing or empty folder still raises DatasetError: there is nothing to report on.)"""
    check = check_labelme_dataset(root, class_map, build_records=False)
    report = DatasetReport(check=check)
    stems = [f.image for f in check.files]
    if measurements:
        path = Path(root) / measurements
        if path.is_file():
            try:
                report.measurements = read_measurements(path, images=stems)
            except DatasetError as e:
                report.folder_problems.append(Problem(str(path), "measurements", str(e)))
    try:
        report.splits = dataset_splits(root, stems, test_fraction, split_seed)
    except (DatasetError, ValueError) as e:
        report.folder_problems.append(Problem(str(Path(root) / "splits"), "splits", str(e)))
    return report


def _ranges(levels: list[str]) -> str:
    """'T1–T4, L2, S1' from a list of levels in LEVELS order."""
    idx = [LEVELS.index(lv) for lv in levels]
    runs: list[list[int]] = []
    for i in idx:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(LEVELS[r[0]] if len(r) == 1 else f"{LEVELS[r[0]]}–{LEVELS[r[-1]]}"
                     for r in runs)


def unmeasurable_angles(labels: set[str]) -> list[str]:
    """Angles that cannot be measured from an image annotated with these labels."""
    out = []
    for name in ANGLE_NAMES:
        need = {level for level, _ in REQUIRED_ENDPLATES[name]}
        if not need <= labels or (name in NEEDS_FEMORAL_HEADS and FEMORAL_HEAD not in labels):
            out.append(name)
    return out


def _clip(rows: list, width: int) -> list:
    if len(rows) > MAX_ROWS:
        return rows[:MAX_ROWS] + [[f"… and {len(rows) - MAX_ROWS} more"] + [""] * (width - 1)]
    return rows


def _labels_section(good: list, cmap: ClassMap) -> list[str]:
    images = collections.Counter(lb for f in good for lb in set(f.labels))
    shapes = collections.Counter(lb for f in good for lb in f.labels)
    rows = [[lb, images[lb], shapes[lb], cmap.label_to_class.get(lb, "(dropped)")]
            for lb in KNOWN_LABELS if shapes[lb]]
    out = ["", "Annotations per label (good files)",
           tabulate(rows, ["label", "images", "shapes", "class"]) if rows else "  none"]
    corners = [f for f in good if any(parse_corner_label(lb) for lb in f.labels)]
    if corners:
        n = sum(1 for f in corners for lb in f.labels if parse_corner_label(lb))
        out.append(f"  and {n} corner point(s) (endplate ends, e.g. L3_sa) in {len(corners)} image(s)")
    return out


def _levels_section(good: list) -> list[str]:
    if not any(is_level(lb) for f in good for lb in f.labels):
        return ["", "Levels missing per image: no level labels (region labels only)"]
    rows = []
    for f in good:
        labels = set(f.labels)
        missing = [lv for lv in LEVELS if lv not in labels]
        if missing or FEMORAL_HEAD not in labels:
            rows.append([f.image, _ranges(missing) or "-", ", ".join(unmeasurable_angles(labels)) or "-"])
    return ["", f"Levels missing per image ({len(rows)} of {len(good)} images miss some)",
            tabulate(_clip(rows, 3), ["image", "missing levels", "angles not measurable"])
            if rows else "  none: every image has T1–S1 and FH"]


def _coverage_section(report: DatasetReport) -> list[str]:
    out = ["", "Measurement coverage"]
    m = report.measurements
    if m is None:
        out.append("  no measurements file" if not any(p.kind == "measurements" for p in report.folder_problems)
                   else "  measurements file is bad (see problems)")
        return out
    stems = [f.image for f in report.check.files]
    rows = [[a, int(m.loc[m.index.isin(stems), a].notna().sum()), len(stems)] for a in ANGLE_NAMES]
    no_row = [s for s in stems if s not in m.index]
    out.append(tabulate(rows, ["angle", "measured", "images"]))
    if no_row:
        out.append(f"  {len(no_row)} image(s) without a row: {', '.join(no_row[:10])}"
                   + (" …" if len(no_row) > 10 else ""))
    out += [f"  note: {n}" for n in sheet_notes(m)]
    return out


def _problems_section(report: DatasetReport) -> list[str]:
    problems = report.check.problems + report.folder_problems
    out = ["", f"Problems per file ({len(report.bad_files)} bad file(s))"]
    if problems:
        out.append(tabulate(_clip([[p.file, p.kind, p.message] for p in problems], 3), ["file", "kind", "problem"]))
    else:
        out.append("  none")
    return out


def format_report(report: DatasetReport) -> str:
    """The summary tables, as text."""
    check, good = report.check, [f for f in report.check.files if f.ok]
    cmap = check.class_map
    out = [f"dataset {check.root}: {len(check.files)} annotation files, {len(good)} good, "
           f"{len(check.bad)} bad; class map {cmap.name!r} → {', '.join(cmap.classes)}"]
    out += _labels_section(good, cmap)
    out += _levels_section(good)
    out += _coverage_section(report)
    if report.splits is not None:
        source = "splits/*.txt" if (Path(check.root) / "splits").is_dir() else "seeded split"
        out += ["", f"Splits ({source}): " + ", ".join(f"{k} {len(v)}" for k, v in report.splits.items())]
    out += _problems_section(report)
    return "\n".join(out)


def run_check(dataset_cfg: Mapping[str, Any], strict: bool = True, out=sys.stdout,
              err=sys.stderr) -> int:
    """What tools/check_dataset.py does: print the report of the `dataset` config node's folder;
    returns the exit code (1 when strict and any file is bad, or the folder cannot be read)."""
    from spine_d2.schema import dataset_config

    d = dataset_config(dataset_cfg)
    if OmegaConf.is_missing(d, "root") or not d.root:
        print("error: say which folder to check: dataset.root=DIR", file=err)
        return 1
    try:
        report = check_dataset(d.root, str(d.class_map), d.measurements, d.test_fraction, d.split_seed)
    except DatasetError as e:
        print(f"error: {e}", file=err)
        return 1
    print(format_report(report), file=out)
    if report.ok:
        print("\nOK: every file is good", file=out)
        return 0
    shown = ", ".join(report.bad_files[:10]) + (" …" if len(report.bad_files) > 10 else "")
    print(f"\n{'ERROR' if strict else 'WARNING'}: {len(report.bad_files)} bad file(s): {shown}",
          file=out)
    return 1 if strict else 0
