"""Labelme annotation folders → detectron2 dataset dicts, with the checks a real folder needs.

Coordinates are in the image frame: pixels of the photo as Labelme shows it (EXIF orientation
applied to image files; embedded ``imageData`` shown as stored), x right, y down. Images (JPEG,
PNG, HEIC, 16-bit PNG/TIFF, …) are read by `spine_d2.data.images`, the project's one reader.

One place for the checks (`check`): `check_labelme_dataset` reads every annotation file into a
`FileCheck` (the detectron2 record, or the `Problem`s that make the file bad, `problems`).
`load_labelme_dataset` raises a `DatasetError` from those problems (strict) or skips the bad files
with a warning (lenient); `spine_d2.data.summary` prints them. Where the files are and the image
each names: `files`; nothing in the dataset folder is ever written (an embedded image with no file
on disk is decoded once into a cache outside it, `image_cache_dir`).

Accepted (`shapes`): Labelme 3 to 6 JSON; shapes `polygon`, `rectangle` (2 points → 4 corners),
`circle` (centre + rim point → polygon, plus ``circle`` [cx, cy, r]), `oriented_rectangle` and
`mask`; `imagePath` relative to the JSON (Windows separators too); `imageData` embedded or null.
Corner points (`point` shapes labelled `L3_sa` … `L3_ip`, `spine_d2.levels.CORNERS`) go with their
level's outline as its annotation's ``corners`` {corner: [x, y]} (not trained on; the measurement
takes an endplate given by both its corners as is). Shape flags are read only for
``level_uncertain`` (→ the annotation's ``level_uncertain``: True); others are ignored.
"""
from __future__ import annotations

import logging
from pathlib import Path

from spine_d2.data.labelme.check import check_labelme_dataset, check_labelme_file
from spine_d2.data.labelme.files import annotation_dir, annotation_files, image_cache_dir, image_stems
from spine_d2.data.labelme.problems import PROBLEM_KINDS, DatasetCheck, DatasetError, FileCheck, Problem
from spine_d2.data.labelme.shapes import CIRCLE_VERTICES
from spine_d2.levels import ClassMap

log = logging.getLogger(__name__)


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
    "DatasetError", "Problem", "FileCheck", "DatasetCheck", "PROBLEM_KINDS", "CIRCLE_VERTICES",
    "load_labelme_dataset", "check_labelme_dataset", "check_labelme_file",
    "annotation_dir", "annotation_files", "image_stems", "image_cache_dir",
]
