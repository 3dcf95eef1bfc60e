"""A trained model on photos: checkpoint → predictions → measurement (image frame, pixels; degrees).

`SpinePredictor` runs a checkpoint with exactly the preprocessing of training and evaluation
(`spine_d2.data.transforms.model_input`); `measure_image` adds the measurement pipeline;
`predict_paths` does it for files (tools/predict.py; read by `spine_d2.data.images`, HEIC and
16-bit included), reporting and skipping unreadable ones, and with `labelme=True` writes each
photo's Labelme pre-annotation beside it (never replacing a file);
`evaluate_checkpoint` runs `SpineEvaluator` over a registered split (tools/evaluate.py). The web
page (tools/serve.py) uses the same `SpinePredictor` and `measure_image`.
"""
from __future__ import annotations

import json
import logging
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import cv2
import numpy as np
import pandas as pd
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode
from detectron2.evaluation import inference_on_dataset
from detectron2.modeling import build_model
from detectron2.utils import comm
from tqdm import tqdm

from spine_d2 import zoo
from spine_d2.data.images import IMAGE_SUFFIXES, ImageReadError, read_image, within_pixels
from spine_d2.engine.config import load_d2_cfg, resolve_device
from spine_d2.engine.processes import share_cores, usable_processes, worker_logging
from spine_d2.engine.test_time import (autocast_at_test, for_evaluation, mirror_twin, refine, refine_lazily,
                                       refine_with_reads, tiebreak_looks)
from spine_d2.engine.soft_masks import with_soft_masks
from spine_d2.levels import get_class_map
from spine_d2.measure import CSV_COLUMNS, MeasureConfig, Measurement, draw_overlay
from spine_d2.measure import instances_from_predictions, lazy_instances, lazy_run, measurement_row
from spine_d2.measure.negative import better_of, named_scores, negative, negative_asked, unseen_spine
from spine_d2.measure.preannotation import labelme_document, write_new_json
from spine_d2.measure.reads import measure_with_reads
from spine_d2.measure.turned import QUARTER_TURNS, lying, turned
from spine_d2.schema import FLIP_WHEN, TURNED_BOXES

log = logging.getLogger(__name__)

MAX_PIXELS = 16_000_000  # a larger photo is measured on a copy scaled down to this (`within_pixels`); predict.max_megapixels
NOT_PHOTOS = (".json", ".csv", ".txt", ".md", ".yaml")  # files a photo folder holds beside its photos
RUN_CONFIG = "d2_config.yaml"  # written by every training run beside its checkpoints


class InferenceError(ValueError):
    """A checkpoint, config or input that cannot be used; the message names it."""


def hydra_record(checkpoint: str | Path) -> tuple[Any, list[str]] | None:
    """The Hydra record of the run that wrote `checkpoint` (`.hydra/` beside it): its composed
    config (an OmegaConf DictConfig) and its command-line overrides; None when there is no
    readable record (a checkpoint copied out of its run directory)."""
    import yaml
    from omegaconf import DictConfig, OmegaConf

    hydra_dir = Path(checkpoint).parent / ".hydra"
    try:
        config = OmegaConf.load(hydra_dir / "config.yaml")
        overrides_file = hydra_dir / "overrides.yaml"
        overrides = [str(o) for o in OmegaConf.load(overrides_file)] if overrides_file.is_file() else []
    except (OSError, ValueError, yaml.YAMLError):  # no record, or unreadable
        return None
    return (config, overrides) if isinstance(config, DictConfig) else None


SYNTHETIC = ("trained on the synthetic phantom only (films simulated from 3-D patients, photographed "
             "and screenshotted; no patient data): on photos of real films expect larger errors than "
             "the phantom's benchmark")


def trained_on(where: str | Path) -> str | None:
    """What the model at `where` (a checkpoint, `zoo:<name>`, or a run directory) was trained on,
    in words for a reader; None when nothing says (a checkpoint copied out of its run)."""
    where = str(where)
    if zoo.is_zoo(where) or zoo.is_zoo_file(where):
        card = zoo.card(Path(where).stem if zoo.is_zoo_file(where) else where)
        gen = (card.get("trained_on") or {}).get("generate") or {}
        dice = card.get("real_anatomy_dice")
        return (f"{SYNTHETIC}; phantom n={gen.get('n', '?')}, seed {gen.get('seed', '?')}"
                + (f"; Dice on real anatomy {100 * dice:.0f} %" if dice is not None else ""))
    path = Path(where)
    record = hydra_record(path / "model_final.pth" if path.is_dir() else path)  # reads the folder's .hydra/
    if record is None:
        return None
    ds = record[0].get("dataset") or {}
    root = Path(str(ds.get("root", "")))
    if ds.get("generate") is not None or (root / "phantom.json").is_file():
        return f"{SYNTHETIC}; phantom {root}"
    return f"trained on {root}"


def config_for_checkpoint(checkpoint: str | Path, device: str = "auto", highres: bool | None = None,
                          soft_masks: bool | None = None, flip: bool | None = None,
                          sacrum_corners: bool | None = None, turns: list[float] | None = None,
                          turn_strip: bool | None = None, flip_turns: bool | None = None,
                          amp: bool | None = None, tiebreak_turns: list[float] | None = None,
                          flip_when: str | None = None, turned_boxes: str | None = None,
                          amp_corners: bool | None = None, share_turns: bool | None = None,
                          negative: bool | None = None) -> CfgNode:
    """The detectron2 config a checkpoint was trained with (`d2_config.yaml` in its run directory,
    or `<stem>.yaml` beside it as for the zoo's `zoo:<name>`), with `MODEL.WEIGHTS` pointing at it;
    `highres` True/False switches the high-resolution second pass on or off, `soft_masks` the
    sub-pixel outlines from the soft masks, `flip` the mirrored run, `sacrum_corners` S1's corners
    from the pass's windows, `turns` the degrees the windows run again turned by ([]: upright only),
    `turn_strip` the spine's strip of the photo turned so where no windows are made, `flip_turns`
    the mirrored run's windows turned too, `amp` the backbone under autocast, `tiebreak_turns` the
    degrees the photo is turned by for looks that break the two reads' ties ([]: none), `flip_when`
    always or doubt (the mirrored run made only where the measurement doubts the photo's own run),
    `turned_boxes` given or own (the turned looks read the corners of the bodies found, in boxes
    given from them, or detect everything again), `amp_corners` the corner head's convolutions under
    autocast too, with `amp`, `share_turns` the turns shared out between the photo's and the
    mirrored run, `negative` the photo's negative measured where the photo's measurement sees no
    spine (None: as trained, or the default where the run predates the key)."""
    if flip_when is not None and str(flip_when) not in FLIP_WHEN:
        raise InferenceError(f"flip_when={flip_when}: choose one of {', '.join(FLIP_WHEN)}")
    if turned_boxes is not None and str(turned_boxes) not in TURNED_BOXES:
        raise InferenceError(f"turned_boxes={turned_boxes}: choose one of {', '.join(TURNED_BOXES)}")
    try:
        checkpoint = Path(zoo.resolve(str(checkpoint)))
    except zoo.ZooError as e:
        raise InferenceError(f"checkpoint={checkpoint}: {e}") from None
    if not checkpoint.is_file():
        raise InferenceError(f"checkpoint={checkpoint}: no such file (a run writes model_final.pth)")
    cfg_path = checkpoint.parent / RUN_CONFIG
    if not cfg_path.is_file():
        cfg_path = checkpoint.with_suffix(".yaml")
    if not cfg_path.is_file():
        raise InferenceError(f"checkpoint={checkpoint}: no {RUN_CONFIG} beside it, so the model's "
                             f"architecture is unknown; use a checkpoint from a run directory")
    cfg = load_d2_cfg(str(cfg_path))
    cfg.MODEL.WEIGHTS = str(checkpoint)
    cfg.MODEL.DEVICE = resolve_device(device)
    if highres is not None:
        cfg.SPINE.HIGHRES.ENABLED = bool(highres)
    if soft_masks is not None:
        cfg.SPINE.SOFT_MASKS = bool(soft_masks)
    if flip is not None:
        cfg.SPINE.FLIP = bool(flip)
    if sacrum_corners is not None:
        cfg.SPINE.HIGHRES.SACRUM_CORNERS = bool(sacrum_corners)
    if turns is not None:
        cfg.SPINE.HIGHRES.TURNS = _degrees("turns", turns)
    if turn_strip is not None:
        cfg.SPINE.HIGHRES.TURN_STRIP = bool(turn_strip)
    if flip_turns is not None:
        cfg.SPINE.HIGHRES.FLIP_TURNS = bool(flip_turns)
    if amp is not None:
        cfg.SPINE.TEST_AMP = bool(amp)
    if amp_corners is not None:
        cfg.SPINE.TEST_AMP_CORNERS = bool(amp_corners)
    if share_turns is not None:
        cfg.SPINE.HIGHRES.SHARE_TURNS = bool(share_turns)
    if negative is not None:
        cfg.SPINE.NEGATIVE = bool(negative)
    if tiebreak_turns is not None:
        cfg.SPINE.TIEBREAK_TURNS = _degrees("tiebreak_turns", tiebreak_turns)
    if flip_when is not None:
        cfg.SPINE.FLIP_WHEN = str(flip_when)
    if turned_boxes is not None:
        cfg.SPINE.HIGHRES.TURNED_BOXES = str(turned_boxes)
    cfg.freeze()
    return cfg


def _degrees(name: str, values) -> tuple[float, ...]:
    """`values` (a list of degrees from the command line) as a tuple, or the error naming `name`."""
    try:
        return tuple(float(t) for t in values)
    except (TypeError, ValueError):
        raise InferenceError(f"{name}={values}: a list of degrees, e.g. [-5,5], or [] for none") from None


def load_model(cfg: CfgNode):
    """The model `cfg` describes, with the weights of `cfg.MODEL.WEIGHTS`, in evaluation mode (the
    one way evaluation, prediction and the page build a model)."""
    model = build_model(cfg)
    model.eval()
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    if model.device.type == "cpu":  # oneDNN's convolutions run faster on channels-last tensors (benchmarks/README.md)
        model.to(memory_format=torch.channels_last)
    return model


class SpinePredictor:
    """A checkpoint in evaluation mode: BGR image (H×W×3 uint8) → detectron2 `Instances` on the CPU,
    in that image's frame."""

    def __init__(self, cfg: CfgNode):
        self.cfg = cfg
        self.class_names = list(get_class_map(cfg.SPINE.CLASS_MAP).classes)
        # the test-time passes: __call__; never trained again: the autocast convolutions' weights held in bfloat16
        self.model = with_soft_masks(autocast_at_test(load_model(cfg), cfg, inference_only=True), cfg)
        self.twin = mirror_twin(self.model, cfg)  # the mirrored run's, beside the photo's run (or None)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, device: str = "auto", highres: bool | None = None,
                        soft_masks: bool | None = None, flip: bool | None = None,
                        flip_when: str | None = None, turns: list[float] | None = None,
                        share_turns: bool | None = None, negative: bool | None = None) -> "SpinePredictor":
        return cls(config_for_checkpoint(checkpoint, device, highres, soft_masks, flip, turns=turns,
                                         flip_when=flip_when, share_turns=share_turns, negative=negative))

    @property
    def name(self) -> str:
        """The model's name in what it writes: `zoo:<name>` for a shipped model, else its path."""
        weights = str(self.cfg.MODEL.WEIGHTS)
        return f"{zoo.PREFIX}{Path(weights).stem}" if zoo.is_zoo_file(weights) else weights

    def __call__(self, image_bgr: np.ndarray):
        image = self._model_format(image_bgr)
        return refine(self.model, self.cfg, image, twin=self.twin)

    def predict(self, image_bgr: np.ndarray):
        """(Instances, reads): the predictions, and with the mirrored run its two runs each alone
        (`spine_d2.engine.test_time.refine_with_reads`)."""
        image = self._model_format(image_bgr)
        return refine_with_reads(self.model, self.cfg, image, twin=self.twin)

    def predict_lazily(self, image_bgr: np.ndarray):
        """(Instances, reads, mirrored): `predict`'s, or with `test.flip_when` doubt the photo's own
        run, no reads and the call that makes the mirrored run, (Instances, reads), when the
        measurement doubts the photo's (`spine_d2.engine.test_time.refine_lazily`)."""
        image = self._model_format(image_bgr)
        return refine_lazily(self.model, self.cfg, image, twin=self.twin)

    def tiebreak_looks(self, image_bgr: np.ndarray):
        """The call that makes the photo's turned looks when the measurement asks, or None
        (`spine_d2.engine.test_time.tiebreak_looks`)."""
        return tiebreak_looks(self.model, self.cfg, self._model_format(image_bgr), self.twin)

    def _model_format(self, image_bgr: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image_bgr if self.cfg.INPUT.FORMAT == "BGR" else image_bgr[:, :, ::-1])


def measure_image(predictor: SpinePredictor, image_bgr: np.ndarray, measure_cfg: Any = None) -> Measurement:
    """Predict and measure one photo; geometry in its image frame, angles in the frame reported
    (checked against the photo's and its mirror image's reads, their ties broken by turned looks:
    `spine_d2.measure.reads`). Where the measurement sees no spine, the photo's negative is measured
    too, and taken where it sees it better (`test.negative`: a film shown inverted, bones dark;
    `spine_d2.measure.negative`); where neither sees it, the notes name the quarter or half turn of
    the photo in which the spine stands, if one does (`spine_d2.measure.turned`)."""
    m = _measure_photo(predictor, image_bgr, measure_cfg)
    cfg = getattr(predictor, "cfg", None)  # a model's (a stand-in for one has none: it sees what it is given)
    if cfg is None or not unseen_spine(m):
        return m
    if negative_asked(cfg, m):
        m, _ = better_of(m, _measure_photo(predictor, negative(image_bgr), measure_cfg))
    if unseen_spine(m):  # a photo lying on its side or upside down: the turn named, not measured
        seen = {k: t for k in QUARTER_TURNS
                if not unseen_spine(t := _measure_photo(predictor, turned(image_bgr, k), measure_cfg))}
        if seen:  # the turn whose spine is seen best (an upside-down thoracic view may pass as one too)
            return lying(m, max(seen, key=lambda k: sum(named_scores(seen[k]))))
    return m


def _measure_photo(predictor: SpinePredictor, image_bgr: np.ndarray, measure_cfg: Any = None) -> Measurement:
    predict = getattr(predictor, "predict_lazily", None)  # anything with class_names and __call__ measures too
    pred, reads, mirrored = predict(image_bgr) if predict is not None else (predictor(image_bgr), [], None)
    names = predictor.class_names
    looks = getattr(predictor, "tiebreak_looks", lambda _: None)(image_bgr)
    return measure_with_reads(instances_from_predictions(pred, names),
                              [instances_from_predictions(r, names) for r in reads],
                              image_bgr.shape[:2], names, MeasureConfig.from_cfg(measure_cfg), image=image_bgr,
                              looks=lazy_instances(looks, names), mirrored=lazy_run(mirrored, names))


def image_paths(input_path: str | Path) -> list[Path]:
    """The image files of a folder (sorted, not recursive), or the one file given."""
    p = Path(input_path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        other = sorted(f.name for f in p.iterdir() if f.is_file() and f.suffix.lower() not in IMAGE_SUFFIXES
                       and f.suffix.lower() not in NOT_PHOTOS and not f.name.startswith("."))
        if other:
            log.warning(f"left out {len(other)} file(s) of {p} that are no image type read here "
                        f"({', '.join(IMAGE_SUFFIXES)}): {', '.join(other[:10])}{' …' if len(other) > 10 else ''}")
        if not files:
            raise InferenceError(f"input={p}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        return files
    if p.is_file():
        return [p]
    raise InferenceError(f"input={p}: no such file or folder")


def predict_paths(predictor: SpinePredictor, paths: Iterable[Path], out_dir: Path,
                  measure_cfg: Any = None, labelme: bool = False, max_pixels: int = MAX_PIXELS) -> pd.DataFrame:
    """predictions.csv (image,TK,LL,LL_S1,SS,PT,PI,frame,notes,model) and `<name>_overlay.jpg` per photo
    in `out_dir`, its name the photo's stem (`output_names`); an unreadable photo gets a row whose
    notes say why, and no overlay, as does a photo whose measurement failed (the error logged with
    its traceback): the other photos are still measured, and predictions.csv holds the rows done
    even when the run is stopped. A photo of more than `max_pixels` pixels is measured on a copy
    scaled down to that (`spine_d2.data.images.within_pixels`; its notes say so; the overlay is
    the copy's size). With `labelme`, `<stem>.json` beside each photo
    (`spine_d2.measure.preannotation`, in the photo's pixels), unless a file of that name is
    there: it is kept as it is and the photo named in a warning."""
    out_dir.mkdir(parents=True, exist_ok=True)
    measure_cfg = MeasureConfig.from_cfg(measure_cfg)  # checked once, not per photo (~10 ms each)
    paths = list(paths)
    rows, written = [], 0
    try:
        for path, name in tqdm(list(zip(paths, output_names(paths))), desc="predict", unit="image"):
            try:
                image = read_image(path)
            except ImageReadError as e:
                log.warning(f"skipped: {e}")
                rows.append({"image": name, "frame": "", "notes": f"skipped: {e}"})
                continue
            work = within_pixels(image, max_pixels)
            try:
                m = measure_image(predictor, work, measure_cfg)
                overlay = draw_overlay(work, m)
            except Exception as e:  # noqa: BLE001 - one photo's failure costs its row, not the others'
                log.exception(f"{path}: measuring it failed, the other photos go on")
                rows.append({"image": name, "frame": "", "notes": f"failed: {type(e).__name__}: {e}"})
                continue
            rows.append(measurement_row(name, m))
            if work is not image:
                rows[-1]["notes"] = f"{scaled_copy_note(work.shape, image.shape, max_pixels)}; {rows[-1]['notes']}"
            cv2.imwrite(str(out_dir / f"{name}_overlay.jpg"), overlay, [cv2.IMWRITE_JPEG_QUALITY, 92])
            if labelme:
                written += write_preannotation(path, m, getattr(predictor, "name", ""), image.shape)
    finally:  # what is done is kept, however the run ends
        table = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
        table["model"] = getattr(predictor, "name", "")  # which model measured (zoo:… for the shipped one)
        table.to_csv(out_dir / "predictions.csv", index=False, float_format="%.2f")
    if labelme:
        log.info(f"{written} Labelme pre-annotation(s) written beside the photos")
    return table


def output_names(paths: Sequence[Path]) -> list[str]:
    """What each photo is called in predictions.csv and its overlay's name: its stem, or where
    photos of one run share a stem (scan.png, scan.jpg), `<stem>_<suffix>` (scan_png, scan_jpg), so
    that no overlay replaces another."""
    seen = Counter(p.stem for p in paths)
    return [p.stem if seen[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.')}" for p in paths]


def scaled_copy_note(work_shape: Sequence[int], photo_shape: Sequence[int], max_pixels: int) -> str:
    """What a measurement's notes say when it was made on a copy of the photo (`within_pixels`)."""
    return (f"measured on a copy scaled to {work_shape[1]}×{work_shape[0]} px (the photo: {photo_shape[1]}×"
            f"{photo_shape[0]}, over {max_pixels / 1e6:g} megapixels)")


def write_preannotation(photo: Path, m: Measurement, model: str = "", photo_shape: Sequence[int] | None = None
                        ) -> bool:
    """`<stem>.json` beside `photo`: its Labelme pre-annotation, in the photo's pixels (`photo_shape`,
    H, W, where `m` was measured on a scaled copy). Nothing is written (and the reason logged) when
    a file of that name is already there or nothing was found to outline."""
    target = photo.with_suffix(".json")
    doc = labelme_document(m, photo.name, model, photo_shape)
    if not doc["shapes"]:
        log.warning(f"{photo.name}: no named vertebra or femoral head to outline: no pre-annotation written")
        return False
    if not write_new_json(target, doc):
        log.warning(f"{target} already exists: kept as it is, no pre-annotation written for {photo.name} "
                    f"(move that file away to pre-annotate the photo again)")
        return False
    return True


def evaluate_checkpoint(cfg: CfgNode, dataset_name: str, out_dir: Path, measure_cfg: Any = None,
                        config_text: str | None = None, *, processes: int = 1, dataset_cfg: Any = None,
                        register: Callable | None = None) -> dict:
    """COCO AP, Dice/IoU and angle agreement of `cfg.MODEL.WEIGHTS` on a registered split; the
    report goes to `out_dir` (see SpineEvaluator).

    `processes` > 1: that many processes (detectron2's launch; on a CPU each with its share of the
    cores; on GPUs one per GPU: `spine_d2.engine.processes.usable_processes`) evaluate a share of
    the images each, with the same numbers. They register the split again, from `dataset_cfg`
    (required then) with `register` (default `register_from_cfg`), and log to `out_dir`'s folder
    (log.txt)."""
    usable = usable_processes(int(processes), cfg.MODEL.DEVICE)
    if usable < processes:
        log.info(f"evaluating in {usable} process(es), not {processes}: one per GPU, or one for a CPU "
                 f"model on a machine with GPUs")
    if usable <= 1:
        return _evaluate(cfg, dataset_name, Path(out_dir), measure_cfg, config_text)
    if dataset_cfg is None:  # the new processes would not know the split
        raise InferenceError(f"evaluating {dataset_name} in {usable} processes needs the dataset's config "
                             f"(dataset_cfg) to register it there")
    from detectron2.engine import launch
    from omegaconf import DictConfig, OmegaConf

    def plain(x):
        return OmegaConf.to_container(x, resolve=True, enum_to_str=True) if isinstance(x, DictConfig) else x

    with tempfile.TemporaryDirectory(prefix="spine_d2_eval_") as tmp:
        result_file = Path(tmp) / "results.json"
        launch(_evaluate_worker, usable, dist_url="auto",
               args=(cfg, dataset_name, str(out_dir), plain(measure_cfg), config_text, plain(dataset_cfg),
                     register, str(result_file)))
        return json.loads(result_file.read_text())


def _evaluate(cfg: CfgNode, dataset_name: str, out_dir: Path, measure_cfg: Any, config_text: str | None) -> dict:
    from spine_d2.engine.trainer import SpineTrainer
    from spine_d2.evaluation.evaluator import SpineEvaluator

    model = for_evaluation(load_model(cfg), cfg, inference_only=True)
    evaluator = SpineEvaluator(dataset_name, measure_cfg, str(out_dir), config_text=config_text,
                               trained_on=trained_on(cfg.MODEL.WEIGHTS))
    results = inference_on_dataset(model, SpineTrainer.build_test_loader(cfg, dataset_name), evaluator)
    results["report_dir"] = str(evaluator.report_dir) if evaluator.report_dir else None
    return results


def _evaluate_worker(cfg: CfgNode, dataset_name: str, out_dir: str, measure_cfg: Any, config_text: str | None,
                     dataset_cfg: dict, register: Callable | None, result_file: str) -> None:
    """One of `evaluate_checkpoint`'s processes; rank 0 writes the results to `result_file`."""
    from omegaconf import OmegaConf

    worker_logging(str(Path(out_dir).parent))
    if register is None:
        from spine_d2.data.register import register_from_cfg as register
    register(OmegaConf.create(dataset_cfg))
    share_cores(cfg.MODEL.DEVICE)
    results = _evaluate(cfg, dataset_name, Path(out_dir), measure_cfg, config_text)
    if comm.is_main_process():
        Path(result_file).write_text(json.dumps(results))
