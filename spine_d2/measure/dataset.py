"""Angles from the ground-truth shapes of a Labelme dataset: the geometry alone; image frame in, CSV rows out.

`measure_record` measures one detectron2 dataset dict (from `spine_d2.data.labelme`) either from
its polygons or from masks rasterised from them (what a perfect model would give), with the
photo's frame estimated from the image (default), taken from the phantom's stored homography
(`frame_source="truth"`, a check of the rest), or not corrected (`"none"`). `measure_dataset`
does it for a folder and returns the rows of measurements.csv-like output.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from spine_d2.data.images import ImageReadError, read_image
from spine_d2.measure.instances import Instance, instances_from_record
from spine_d2.measure.pipeline import MeasureConfig, Measurement, measure_instances, measurement_row
from spine_d2.measure.rectify import FrameEstimate, estimate_frame, frame_bones, given_frame

log = logging.getLogger(__name__)

SOURCES = ("polygons", "masks")
FRAME_SOURCES = ("estimate", "truth", "none")


def record_frame(record: dict, cfg: MeasureConfig, frame_source: str = "estimate",
                 image: np.ndarray | None = None, instances: Sequence[Instance] | None = None
                 ) -> tuple[FrameEstimate | None, str]:
    """The frame estimate for a record and a note when it could not be had; `instances`: its
    vertebrae and femoral heads (annotated or found), whose edges an estimate from the photo leaves
    out (`frame_bones`)."""
    shape = (int(record["height"]), int(record["width"]))
    if frame_source == "none" or not cfg.frame.enabled:
        return None, ""
    if frame_source == "truth":
        H = (record.get("spine_d2") or {}).get("homography")
        if H is None:
            return None, "no stored homography: image frame"
        return given_frame(H, shape), ""
    if image is None:
        try:
            image = read_image(record["file_name"])
        except ImageReadError as e:
            return None, f"image unreadable ({e}): image frame"
    bones = frame_bones(instances, shape, cfg.frame) if instances is not None else None
    return estimate_frame(image, cfg.frame, bones), ""


def measure_record(record: dict, class_names: Sequence[str], cfg: Any = None, source: str = "polygons",
                   frame_source: str = "estimate") -> Measurement:
    """Measure one dataset dict from its ground-truth shapes (see the module docstring)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    if frame_source not in FRAME_SOURCES:
        raise ValueError(f"frame_source must be one of {FRAME_SOURCES}, got {frame_source!r}")
    c = MeasureConfig.from_cfg(cfg)
    shape = (int(record["height"]), int(record["width"]))
    insts = instances_from_record(record, class_names, rasterize_masks=(source == "masks"))
    frame, note = record_frame(record, c, frame_source, instances=insts)
    m = measure_instances(insts, shape, class_names, c, frame=frame)
    if note:
        m.flags.append(note)
    return m


def measure_records(records: Iterable[dict], class_names: Sequence[str], cfg: Any = None,
                    source: str = "polygons", frame_source: str = "estimate") -> list[dict]:
    """CSV rows (image, angles, frame, notes) for dataset dicts, in their order."""
    rows = []
    for rec in records:
        m = measure_record(rec, class_names, cfg, source, frame_source)
        rows.append(measurement_row(str(rec.get("image", Path(rec["file_name"]).stem)), m))
    return rows


def measure_dataset(root: str | Path, cfg: Any = None, class_map: str = "default", strict: bool = True,
                    source: str = "polygons", frame_source: str = "estimate") -> list[dict]:
    """Rows for every image of the Labelme dataset at `root` (loaded by `spine_d2.data.labelme`)."""
    from spine_d2.data.labelme import load_labelme_dataset
    from spine_d2.levels import get_class_map

    cmap = get_class_map(class_map)
    records = load_labelme_dataset(root, cmap, strict=strict)
    log.info("measuring %d images of %s (%s, %s frame)", len(records), root, source, frame_source)
    return measure_records(records, cmap.classes, cfg, source, frame_source)
