"""What can be wrong with a Labelme dataset's files, and the record of checking them: one problem names one file."""
from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path

from spine_d2.levels import ClassMap

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
