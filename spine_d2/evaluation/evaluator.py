"""SpineEvaluator: detectron2 evaluator from predictions to Dice/IoU, angles vs specialists and the report.

For each test image (image frame, pixels): the predicted instances go through the measurement
pipeline (`spine_d2.measure`), ground truth is looked up by `image_id` in the `DatasetCatalog`
(the test mapper drops annotations), Dice/IoU compare the vertebra masks the model is sure of
(score ≥ `SURE_SCORE`, 0.5, as detectron2's demo draws them; every mask as well: 'all_dice')
together, and the angles (degrees) are paired with the dataset's `measurements` metadata. COCO
AP (segm, bbox) comes from detectron2's own COCOEvaluator, run alongside, so the report carries it
too. `evaluate()` gathers every rank's rows, writes `per_image.csv`, `summary.json`,
`report.md/html` into `output_dir` (a new directory when it is already used) and returns
``{"segm": …, "bbox": …, "spine": {…}}``, which detectron2's EvalHook puts into the event
storage (TensorBoard, metrics.json).
"""
from __future__ import annotations

import atexit
import functools
import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.coco import convert_to_coco_json
from detectron2.evaluation import COCOEvaluator, DatasetEvaluator
from detectron2.utils import comm

from spine_d2.angles import ANGLE_NAMES
from spine_d2.data.images import read_image
from spine_d2.data.measurements import record_stem
from spine_d2.evaluation.agreement import NAMING_KEYS, OVERLAP_KEYS, summarize
from spine_d2.evaluation.figures import overlay_jpeg
from spine_d2.evaluation.level_naming import named_against_truth
from spine_d2.evaluation.per_image import image_row, per_image_table
from spine_d2.evaluation.report import write_report
from spine_d2.evaluation.report_content import choose_examples
from spine_d2.evaluation.segmentation import polygons_to_mask, image_segmentation
from spine_d2.levels import is_level
from spine_d2.measure import MeasureConfig, draw_overlay, instances_from_predictions, lazy_instances, lazy_run
from spine_d2.measure.instances import SURE_SCORE
from spine_d2.measure.negative import better_of, negative, unseen_spine
from spine_d2.measure.reads import measure_with_reads
from spine_d2.provenance import code_version

log = logging.getLogger(__name__)


def ground_truth_masks(record: dict, class_names) -> tuple[list[np.ndarray], list[str], list[str | None]]:
    """Boolean masks, class names and level names (None for FH and region labels) of a dataset
    dict's annotations."""
    shape = (int(record["height"]), int(record["width"]))
    masks, classes, labels = [], [], []
    for ann in record.get("annotations", []):
        masks.append(polygons_to_mask(ann["segmentation"], shape))
        classes.append(class_names[ann["category_id"]])
        label = ann.get("label")
        labels.append(label if label and is_level(label) else None)
    return masks, classes, labels


@functools.lru_cache(maxsize=1)
def _coco_cache() -> Path:
    """This process's scratch folder for split COCO jsons; removed when the process exits."""
    path = Path(tempfile.mkdtemp(prefix="spine_d2_coco_json_"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def coco_json_file(dataset_name: str) -> str:
    """The split's COCO-format json (detectron2's convert_to_coco_json), made once per process and
    recorded as the split's `json_file` metadata, where COCOEvaluator looks for it."""
    meta = MetadataCatalog.get(dataset_name)
    if not hasattr(meta, "json_file"):  # re-registering a split (multirun) drops its metadata
        path = _coco_cache() / f"{dataset_name}_coco_format.json"
        convert_to_coco_json(dataset_name, str(path), allow_cached=False)
        meta.json_file = str(path)
    return meta.json_file


class SpineEvaluator(DatasetEvaluator):
    """Segmentation overlap and sagittal angles of one registered dataset split; see module doc."""

    def __init__(self, dataset_name: str, measure_cfg: Any = None, output_dir: str | None = None, *,
                 coco: bool = True, distributed: bool = True, config_text: str | None = None,
                 title: str | None = None, trained_on: str | None = None):
        self._dataset_name = dataset_name
        meta = MetadataCatalog.get(dataset_name)
        self._class_names = list(meta.thing_classes)
        self._measurements = dict(meta.get("measurements", None) or {})
        self._measure_cfg = MeasureConfig.from_cfg(measure_cfg)
        self._output_dir = output_dir
        self._distributed = distributed
        self._config_text = config_text
        self._trained_on = trained_on  # what the model learnt from, in words (the report says it)
        self._title = title or f"spine_d2 evaluation: {dataset_name}"
        # COCOEvaluator's results go to a scratch folder, then into the report's coco/ folder, so
        # the report directory is new and complete; the split's COCO json is made once per process.
        self._coco_dir = Path(tempfile.mkdtemp(prefix="spine_d2_coco_")) if coco else None
        if coco:
            coco_json_file(dataset_name)
        self._coco = (COCOEvaluator(dataset_name, tasks=("bbox", "segm"), distributed=distributed,
                                    output_dir=str(self._coco_dir), use_fast_impl=False) if coco else None)
        self._records: dict[int, dict] | None = None
        self.report_dir: Path | None = None

    def _record(self, image_id: int) -> dict:
        if self._records is None:
            self._records = {r["image_id"]: r for r in DatasetCatalog.get(self._dataset_name)}
        return self._records[image_id]

    def reset(self):
        self._rows: list[dict] = []
        self._overlays: dict[str, bytes] = {}
        if self._coco is not None:
            self._coco.reset()

    def process(self, inputs, outputs):
        for inp, out in zip(inputs, outputs):
            record = self._record(inp["image_id"])
            stem = record_stem(record)
            image = read_image(record["file_name"])
            m, insts = self._measure(out, image)
            if out.get("negative_run") is not None and unseen_spine(m):  # test.negative
                neg = out["negative_run"]()
                m_neg, insts_neg = self._measure(neg, negative(image))
                m, taken = better_of(m, m_neg)
                if taken:  # COCO's AP and the Dice take what was measured
                    out["instances"], insts = neg["instances"], insts_neg
            gt_masks, gt_classes, gt_labels = ground_truth_masks(record, self._class_names)
            named = {lv: m.instances[k].mask for lv, k in m.levels.items()}  # level → the mask named so
            seg = image_segmentation([i.mask for i in insts], [i.class_name for i in insts],
                                     gt_masks, gt_classes, gt_labels, shape=image.shape[:2],
                                     named_masks=list(named.values()),
                                     pred_scores=[i.score for i in insts], min_score=SURE_SCORE)
            names = named_against_truth(named, gt_masks, gt_labels)
            true = self._measurements.get(stem, {})
            self._rows.append(image_row(
                stem, true=true, pred=m.angles, frame=m.frame, notes=m.notes,
                dice=seg["dice"], iou=seg["iou"],
                extra={**{k: v for k, v in seg.items() if k not in ("dice", "iou")}, **names}))
            self._overlays[stem] = overlay_jpeg(draw_overlay(image, m))  # kept for the examples
        if self._coco is not None:
            self._coco.process(inputs, outputs)

    def _measure(self, out: dict, image: np.ndarray):
        """(the measurement, its instances) of one output's passes (`TestTimeModel`'s keys); where the
        measurement makes the mirrored run (`test.flip_when` doubt), `out["instances"]` becomes its."""
        insts = instances_from_predictions(out["instances"].to("cpu"), self._class_names)
        reads = [instances_from_predictions(r, self._class_names) for r in out.get("reads", [])]
        mirrored = lazy_run(out.get("mirrored_run"), self._class_names)  # test.flip_when doubt
        m = measure_with_reads(insts, reads, image.shape[:2], self._class_names, self._measure_cfg, image=image,
                               looks=lazy_instances(out.get("tiebreak_looks"), self._class_names),
                               mirrored=mirrored)
        if mirrored is not None and mirrored.made is not None:
            # the measurement made the mirrored run: COCO's AP and the Dice take what it measured
            out["instances"], insts = mirrored.made, mirrored.instances
        return m, insts

    def evaluate(self):
        results = dict(self._coco.evaluate() or {}) if self._coco is not None else {}
        rows, overlays = self._rows, self._overlays
        if self._distributed and comm.get_world_size() > 1:
            comm.synchronize()
            gathered = comm.gather((rows, overlays), dst=0)
            if not comm.is_main_process():
                self._drop_coco_dir()
                return {}
            rows = [r for part, _ in gathered for r in part]
            overlays = {k: v for _, part in gathered for k, v in part.items()}
        if not rows:
            log.warning(f"SpineEvaluator on {self._dataset_name}: no predictions to evaluate")
            return results
        table = per_image_table(rows).sort_values("image").reset_index(drop=True)
        coco_ap = results.get("segm", {}).get("AP")
        summary = summarize(table, coco_segm_ap=None if coco_ap is None else coco_ap / 100.0)
        if self._output_dir:
            examples = {k: overlays[stem] for k, stem in choose_examples(table).items() if stem in overlays}
            self.report_dir = write_report(
                table, Path(self._output_dir), summary=summary, overlays=examples,
                config_text=self._config_text, code_version=code_version(), title=self._title,
                trained_on=self._trained_on)
            log.info(f"spine report: {self.report_dir / 'report.html'}")
            if self._coco_dir is not None:
                shutil.copytree(self._coco_dir, self.report_dir / "coco", dirs_exist_ok=True)
        self._drop_coco_dir()
        results["spine"] = flat_summary(summary)
        return results

    def _drop_coco_dir(self) -> None:
        if self._coco_dir is not None:
            shutil.rmtree(self._coco_dir, ignore_errors=True)  # COCOEvaluator makes it anew if needed


def flat_summary(summary: dict) -> dict[str, float]:
    """summary.json's numbers as one flat dict of floats (`dice_mean`, `TK_mae`, …) for the event
    storage; undefined values become NaN."""
    flat: dict[str, float] = {}
    for key in ("n_images", "dice_mean", "dice_sd", "miou_mean", "miou_sd", *OVERLAP_KEYS, *NAMING_KEYS):
        flat[key] = _num(summary.get(key))
    for name in ANGLE_NAMES:
        for key, value in (summary.get(name) or {}).items():
            flat[f"{name}_{key}"] = _num(value)
    return flat


def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan
