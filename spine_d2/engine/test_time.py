"""What a photo gets at test time beyond the model's one pass: the high-resolution windows
(`test.highres`, spine_d2/engine/highres.py), the mirrored run (`test.flip`,
spine_d2/engine/flip.py; with `test.flip_when` doubt made only where the measurement doubts the
photo's own run) and, asked for only where the photo's and the mirror image's reads
disagree, the photo turned whole as tie-breaking looks (`test.tiebreak_turns`,
spine_d2/measure/reads.py); image frame, pixels. One place for `SpinePredictor` (prediction, the
page), training's final test and tools/evaluate.py.

On a CPU with two or more torch threads the mirrored run, where it is made on every photo, runs
beside the photo's own run in a second thread, on a copy of the model (`mirror_twin`), each with
half the threads (`side_by_side`): many of a run's operations are too small to keep two cores busy,
so a photo takes less time, and each run computes what it computes in an evaluation of two
processes of one thread each (benchmarks/README.md).
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from types import MethodType
from typing import Callable, Sequence, TypeVar

import numpy as np
import torch
from detectron2.structures import Instances

from spine_d2.data.transforms import model_input
from spine_d2.engine.flip import mirrored, with_mirrored_bodies, with_mirrored_pelvis
from spine_d2.engine.highres import (HEAD_CLASSES, CornerReader, Detection, average_corners, class_ids, detections,
                                     high_resolution_detections, high_resolution_pass, meta_arch,
                                     to_instances, with_corners_read)
from spine_d2.engine.precision import without_bf16_units
from spine_d2.engine.soft_masks import SoftMaskModel, with_soft_contours, with_soft_masks
from spine_d2.engine.windows import whole_turned
from spine_d2.measure.corners import heatmap_peaks
from spine_d2.measure.negative import negative, negative_on


def one_pass(model, cfg, image: np.ndarray) -> Instances:
    """The model's predictions on `image` (the model's input format, H×W×3 uint8) at its input size."""
    with torch.no_grad():
        return model([model_input(image, cfg)])[0]["instances"].to("cpu")


def first_pass(model, cfg, image: np.ndarray) -> tuple[Instances, CornerReader | None]:
    """The model's first pass over `image` (the model's input format, H×W×3 uint8) as `one_pass`
    makes it (the same detections, masks and outlines) but without corners, and the call that
    reads them for the detections asked for (indices into those Instances): the numbers
    `detections` decodes from a pass with its corner head, the head run later on the same features
    and on those boxes alone. The windows replace most of a first pass's bodies, whose corners are
    then never used (benchmarks/README.md). None for the call where the model has no corner head
    (the pass is then `one_pass`)."""
    net = meta_arch(model)
    heads = getattr(net, "roi_heads", None)
    if not getattr(heads, "keypoint_on", False) or getattr(net, "proposal_generator", None) is None:
        return one_pass(model, cfg, image), None  # no corner head (or not a two-stage detectron2 model)
    inputs = [model_input(image, cfg)]
    with torch.no_grad():
        images = net.preprocess_image(inputs)
        features = net.backbone(images.tensor)
        proposals, _ = net.proposal_generator(images, features, None)
        with _without_corner_head(heads):
            raw, _ = heads(images, features, proposals, None)
        raw[0].source = torch.arange(len(raw[0]), device=raw[0].pred_classes.device)
        # the input's frame (postprocessing scales the boxes in place), as the corner head sees them
        given = Instances(raw[0].image_size, pred_boxes=raw[0].pred_boxes.clone(), pred_classes=raw[0].pred_classes)
        outputs = (with_soft_contours(net, raw, inputs) if isinstance(model, SoftMaskModel)
                   else net._postprocess(raw, inputs, images.image_sizes))
    first = outputs[0]["instances"].to("cpu")
    positions = first.source.numpy()  # postprocessing drops boxes left empty
    first.remove("source")
    boxes = first.pred_boxes.tensor.numpy()

    def corners(index: Sequence[int]) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64)
        with torch.no_grad():
            read = heads._forward_keypoint(features, [given[torch.as_tensor(positions[index])]])[0]
        return heatmap_peaks(read.pred_keypoint_heatmaps.cpu().numpy(), boxes[index])

    return first, corners


@contextmanager
def _without_corner_head(heads):
    """`heads` (ROI heads with a corner head) run without it while inside."""
    heads.keypoint_on = False
    try:
        yield
    finally:
        heads.keypoint_on = True


A = TypeVar("A")
B = TypeVar("B")


def refine(model, cfg, image: np.ndarray, first: Instances | None = None, twin=None) -> Instances:
    """`first` (the model's one pass over `image`; None: made here) with the test-time passes
    `cfg.SPINE` asks for: the windows along the spine, then, with `FLIP`, the same again on the
    mirrored photo (its windows' turns: `run_turns`), its corners averaged in
    and, where the photo's run found no sacrum, its sacrum added, and its sure bodies where the
    photo's run found nothing (`spine_d2.engine.flip`). With `twin` (`mirror_twin`) the mirrored
    run is made on it, beside the photo's run (`side_by_side`)."""
    return _refine(model, cfg, image, first, with_reads=False, twin=twin)[0]


def refine_with_reads(model, cfg, image: np.ndarray, first: Instances | None = None,
                      twin=None) -> tuple[Instances, list[Instances]]:
    """`refine`, and with `FLIP` the two runs it fused, each alone (the photo's, the mirrored
    photo's mapped back): the two reads `spine_d2.measure.reads` checks the angles against; []
    without the mirrored run."""
    return _refine(model, cfg, image, first, with_reads=True, twin=twin)


def refine_lazily(model, cfg, image: np.ndarray, first: Instances | None = None, twin=None
                  ) -> tuple[Instances, list[Instances], Callable[[], tuple[Instances, list[Instances]]] | None]:
    """`refine_with_reads` as (instances, reads, None); or, with `test.flip_when` doubt, the photo's
    own run alone (its windows), no reads, and the call that makes the mirrored run and returns what
    `refine_with_reads` does, made only where the measurement doubts the photo's run
    (`spine_d2.measure.reads.doubted`): the mirrored run doubles a photo's model time."""
    if not flip_on_doubt(cfg):
        return (*refine_with_reads(model, cfg, image, first, twin), None)
    first = one_pass(model, cfg, image) if first is None else first
    if not _mirrored_run_asked(cfg, first):
        return (*refine_with_reads(model, cfg, image, first), None)
    own = _passes(model, cfg, image, first)
    return to_instances(own, image.shape[:2]), [], partial(_with_mirrored_run, model, cfg, image, own, True)


def flip_on_doubt(cfg) -> bool:
    """Whether the mirrored run waits for the measurement to doubt the photo's own run."""
    return bool(cfg.SPINE.get("FLIP", False)) and str(cfg.SPINE.get("FLIP_WHEN", "always")) == "doubt"


def mirror_twin(model, cfg):
    """A copy of `model` (the same weights, in its mode) for the mirrored run to be made on beside
    the photo's own run (`side_by_side`), or None where the two go one after the other: only on a
    CPU with two or more torch threads, where the mirrored run is made on every photo (`test.flip`,
    not on doubt) by a model with a corner head. A copy, because the windows' looks raise the box
    predictor's score threshold while they run (`spine_d2.engine.highres.score_floor`), which the
    other run's passes must not see. In evaluation mode, whatever `model`'s; none of a model split
    over processes (DistributedDataParallel: each has its share of the cores). Make it once the
    weights are final: the copy keeps those it was made with."""
    if not (cfg.SPINE.get("FLIP", False) and not flip_on_doubt(cfg) and cfg.MODEL.KEYPOINT_ON
            and torch.device(cfg.MODEL.DEVICE).type == "cpu" and torch.get_num_threads() >= 2):
        return None
    if any(isinstance(m, torch.nn.parallel.DistributedDataParallel) for m in model.modules()):
        return None
    return copy.deepcopy(model).eval()


def side_by_side(a: Callable[[], A], b: Callable[[], B]) -> tuple[A, B]:
    """(a(), b()), `b` made in a second thread while `a` runs in this one, torch's intra-op threads
    shared out between them (half each) while they run and restored after; one after the other
    where torch has a single thread. An exception of either is raised once both are done."""
    threads = torch.get_num_threads()
    if threads < 2:
        return a(), b()
    torch.set_num_threads(threads // 2)
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="spine_d2-mirrored-run") as pool:
            later = pool.submit(b)
            try:
                first = a()
            finally:
                second = later.result()  # waits for b even where a failed; raises b's error
    finally:
        torch.set_num_threads(threads)
    return first, second


def _mirrored_run_asked(cfg, first: Instances) -> bool:
    """Whether the mirrored run is made at all: `test.flip` asks for it and the model has a corner
    head (the run averages corners: a model without one has nothing to gain from it)."""
    return bool(cfg.SPINE.get("FLIP", False)) and (first.has("pred_keypoint_heatmaps") or first.has("pred_keypoints"))


def _refine(model, cfg, image: np.ndarray, first: Instances | None, with_reads: bool,
            twin=None) -> tuple[Instances, list[Instances]]:
    """`refine_with_reads`; the reads' Instances (each a stack of full-size masks) only `with_reads`.
    With `twin` the mirrored run is made on it beside the photo's run (the caller, `mirror_twin`,
    made sure the run is asked)."""
    if twin is not None and cfg.SPINE.get("FLIP", False):
        own, second = side_by_side(lambda: _passes(model, cfg, image, first),
                                   lambda: _mirrored_passes(twin, cfg, image))
        return _fused(cfg, image.shape[:2], own, second, with_reads)
    first = one_pass(model, cfg, image) if first is None else first
    if not _mirrored_run_asked(cfg, first):
        return (high_resolution_pass(model, cfg, image, first) if cfg.SPINE.HIGHRES.ENABLED else first), []
    return _with_mirrored_run(model, cfg, image, _passes(model, cfg, image, first), with_reads)


def _passes(model, cfg, photo: np.ndarray, one: Instances | None, mirrored: bool = False) -> list[Detection]:
    """The detections of one run on `photo` (the mirrored run's with `mirrored`): its first pass
    `one` (None: made here, its corners read only for the detections the windows leave standing,
    `first_pass`) with the windows', turned by `run_turns`."""
    shape = photo.shape[:2]
    if not cfg.SPINE.HIGHRES.ENABLED:
        return detections(one_pass(model, cfg, photo) if one is None else one, None, shape)
    one, corners = first_pass(model, cfg, photo) if one is None else (one, None)
    dets = high_resolution_detections(model, cfg, photo, one, run_turns(cfg, mirrored), corners)
    return detections(with_corners_read(one, corners), None, shape) if dets is None else dets


def _mirrored_passes(model, cfg, image: np.ndarray) -> list[Detection]:
    """The mirrored run: `_passes` of `image` mirrored left-right, mapped back to `image`'s frame."""
    mirror = np.ascontiguousarray(image[:, ::-1])
    return mirrored(_passes(model, cfg, mirror, None, mirrored=True), image.shape[1])


def run_turns(cfg, mirrored: bool) -> tuple[float, ...]:
    """The degrees a run's windows (or its strip, where it makes none) turn by for the turned looks.
    The photo's run: `test.highres.turns`; the mirrored run: the same on the mirror image, or none
    without `test.highres.flip_turns`. With `test.highres.share_turns`, where the mirrored run is
    made on every photo with its windows turned, the two runs share the turns out instead: the
    photo's run takes every other one from the first, the mirrored run the others, each turned the
    other way on the mirror image, so that it is that look at the photo, mirrored. Together the two
    runs then look at the spine from every angle once, with half the turned looks
    (benchmarks/README.md)."""
    hr = cfg.SPINE.HIGHRES
    turns = tuple(float(t) for t in getattr(hr, "TURNS", ()))  # none where the pass is off
    flip_turns = bool(getattr(hr, "FLIP_TURNS", True))
    if mirrored and not flip_turns:
        return ()
    shared = getattr(hr, "SHARE_TURNS", False) and flip_turns and cfg.SPINE.get("FLIP", False)
    if not shared or flip_on_doubt(cfg):
        return turns
    return tuple(-t for t in turns[1::2]) if mirrored else turns[0::2]


def _with_mirrored_run(model, cfg, image: np.ndarray, own: list[Detection], with_reads: bool
                       ) -> tuple[Instances, list[Instances]]:
    """The photo's run `own` fused with the mirrored run, made now, and the two runs each alone
    (`with_reads`)."""
    return _fused(cfg, image.shape[:2], own, _mirrored_passes(model, cfg, image), with_reads)


def _fused(cfg, shape: tuple[int, int], own: list[Detection], second: list[Detection], with_reads: bool
           ) -> tuple[Instances, list[Instances]]:
    """The photo's run `own` fused with the mirrored run `second` (in the photo's frame), and the
    two runs each alone (`with_reads`)."""
    reads = [to_instances(own, shape), to_instances(second, shape)] if with_reads else []
    sacrum = class_ids(cfg.SPINE.CLASS_MAP, ("sacrum",))
    fused = with_mirrored_pelvis(average_corners(own, second), second, sacrum,
                                 class_ids(cfg.SPINE.CLASS_MAP, HEAD_CLASSES))
    fused = with_mirrored_bodies(fused, second, class_ids(cfg.SPINE.CLASS_MAP, ("thoracic", "lumbar")), sacrum)
    return to_instances(fused, shape), reads


def turned_looks(model, cfg, image: np.ndarray, twin=None) -> list[Instances]:
    """The photo (`image`, the model's input format) turned whole by each of
    `cfg.SPINE.TIEBREAK_TURNS` degrees (`spine_d2.engine.windows.whole_turned`), each the model's
    first pass of its own (which names the levels and finds the anterior side), mapped back to the
    photo's frame: where the photo's and its mirror image's reads of an angle disagree, the looks
    that may break the tie (`spine_d2.measure.reads`). No windows: with them the looks took three
    times as long and, on the phantom, two takes 17° off (benchmarks/README.md, session 41). []
    without turns. With `twin` (`mirror_twin`) every other look is made on it, beside the others
    (`side_by_side`), each with the threads the two runs have."""
    shape = image.shape[:2]
    turns = [float(t) for t in cfg.SPINE.get("TIEBREAK_TURNS", ())]

    def looks(net, degrees: list[float]) -> list[Instances]:
        out = []
        for deg in degrees:
            win = whole_turned(shape, deg)
            look = one_pass(net, cfg, np.ascontiguousarray(win.crop(image)))
            out.append(to_instances(detections(look, win, shape), shape))
        return out

    if twin is None or not turns:
        return looks(model, turns)
    out: list = [None] * len(turns)
    out[0::2], out[1::2] = side_by_side(lambda: looks(model, turns[0::2]), lambda: looks(twin, turns[1::2]))
    return out


def tiebreak_looks(model, cfg, image: np.ndarray, twin=None):
    """A call that makes `turned_looks` of `image` when asked (the measurement asks only where the
    two reads disagree), or None where there are no two reads (`test.flip` off) or no turns."""
    if not cfg.SPINE.get("FLIP", False) or not cfg.SPINE.get("TIEBREAK_TURNS", ()):
        return None
    return partial(turned_looks, model, cfg, image, twin)


def autocast_at_test(model, cfg, inference_only: bool = False):
    """`model` (a detectron2 meta-architecture, in place) with its backbone run under autocast when
    `cfg.SPINE.TEST_AMP` and the model is not training: bfloat16 on the CPU, float16 on a GPU, its
    features handed on as float32. Most of a pass's time is the backbone's convolutions; a model
    trained with `solver.amp` saw its features so. With `cfg.SPINE.TEST_AMP_CORNERS` too, the
    corner head's convolutions (`corner_convs`: in float32 a fifth of a photo's time) run so as
    well, each handing on float32: the heatmaps and their sub-pixel decoding stay float32. The RPN's
    and the mask head's stay float32 (under autocast they cost the test split 0.1° of TK,
    benchmarks/README.md). Training (`model.training`) runs them all unchanged. A CPU without
    bfloat16 units would emulate it, each pass slower than in float32: there everything stays
    float32, and the log says so. `inference_only` (a model that will not be trained again: the
    predictor's, tools/evaluate.py's) holds those convolutions' weights in autocast's type
    (`hold_weights`): the casts autocast makes at every call, made once; the same numbers."""
    net = getattr(model, "module", model)
    backbone = getattr(net, "backbone", None)
    if not cfg.SPINE.get("TEST_AMP", False) or backbone is None or hasattr(backbone, "plain_forward"):
        return model
    if torch.device(cfg.MODEL.DEVICE).type == "cpu" and without_bf16_units(
            "test.amp", "each pass would run slower than in float32, so it runs in float32 (its numbers may "
                        "differ a little from bfloat16's)"):
        return model
    modules = [backbone, *(corner_convs(net) if cfg.SPINE.get("TEST_AMP_CORNERS", False) else ())]
    for module in modules:
        # instance attributes, bound methods (a deep copy rebinds them to the copy): the weights and
        # their names stay the module's
        module.plain_forward = module.forward
        module.forward = MethodType(_autocast_forward, module)
    if inference_only:
        hold_weights(modules, autocast_dtype(torch.device(cfg.MODEL.DEVICE).type))
    return model


def hold_weights(modules: list[torch.nn.Module], dtype: torch.dtype) -> None:
    """The weights and biases of every convolution in `modules` (in place) held in `dtype`, as
    autocast casts them at every call (a 3×3 convolution of the backbone on one core: 5–12 % of its
    time, benchmarks/README.md); anything else (the group norms' weights) stays as it is, as under
    autocast. Only for modules that run under autocast (`_autocast_forward`) and are not trained
    again."""
    for module in modules:
        for conv in module.modules():
            if isinstance(conv, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                for p in (conv.weight, conv.bias):
                    if p is not None:
                        p.data = p.data.to(dtype)


def autocast_dtype(device_type: str) -> torch.dtype:
    """The type autocast runs in at test: bfloat16 on the CPU, float16 on a GPU."""
    return torch.bfloat16 if device_type == "cpu" else torch.float16


def corner_convs(net) -> list[torch.nn.Module]:
    """The 3×3 convolutions of `net`'s corner (keypoint) head: not the transposed one after them
    that makes the heatmaps."""
    head = getattr(getattr(net, "roi_heads", None), "keypoint_head", None)
    if head is None:
        return []
    return [m for n, m in head.named_children() if n.startswith("conv_fcn") and isinstance(m, torch.nn.Conv2d)]


def _autocast_forward(module, x: torch.Tensor):
    """`module`'s own forward of `x` under autocast (outside training), its output (a tensor or a
    dict of them) as float32."""
    if module.training:
        return module.plain_forward(x)
    with torch.autocast(x.device.type, dtype=autocast_dtype(x.device.type)):
        out = module.plain_forward(x)
    return {k: v.float() for k, v in out.items()} if isinstance(out, dict) else out.float()


def for_evaluation(model, cfg, inference_only: bool = False):
    """`model` as evaluation runs it on dataset dicts: with the soft-mask outlines when
    `test.soft_masks`, the backbone (and the corner head's convolutions) under autocast when
    `test.amp` (`autocast_at_test`; `inference_only`: a model not trained again, tools/evaluate.py's),
    and the high-resolution pass and the mirrored run when `test.highres.enabled` and `test.flip`
    (the one place training's final test and tools/evaluate.py decide it)."""
    model = with_soft_masks(autocast_at_test(model, cfg, inference_only), cfg)
    return TestTimeModel(model, cfg) if cfg.SPINE.HIGHRES.ENABLED or cfg.SPINE.get("FLIP", False) else model


class TestTimeModel(torch.nn.Module):
    """A detectron2 model whose predictions get `refine`: for evaluation, where the inputs are
    dataset dicts (the original image is read again from `file_name`); each output's "reads" holds
    the two runs' instances each alone (`refine_with_reads`), its "mirrored_run" the call that makes
    the mirrored run when the measurement doubts the photo's (`refine_lazily`; None unless
    `test.flip_when` is doubt), its "tiebreak_looks" the call that makes `turned_looks` when the
    measurement asks (`tiebreak_looks`), its "negative_run" the call that makes all of these on the
    photo's negative when the measurement sees no spine (`spine_d2.measure.negative`; None with
    `test.negative` off). With a twin (`mirror_twin`) the photo's first pass is made from the photo
    read again (the loader's input is the same: `model_input`), beside the mirrored run, as
    `SpinePredictor` makes it."""

    def __init__(self, model, cfg):
        super().__init__()
        self.model, self.cfg = model, cfg
        self.twin = [mirror_twin(model, cfg)]  # in a list: not a submodule, no second set of weights in state_dict

    def forward(self, inputs):
        from spine_d2.data.images import read_image

        twin = self.twin[0]
        outputs = [{} for _ in inputs] if twin is not None else self.model(inputs)
        for inp, out in zip(inputs, outputs):
            image = read_image(inp["file_name"], self.cfg.INPUT.FORMAT)
            first = None if twin is not None else out["instances"].to("cpu")
            out.update(self._passes(image, first))
            out["negative_run"] = partial(self._negative_passes, image) if negative_on(self.cfg) else None
        return outputs

    def _negative_passes(self, image: np.ndarray) -> dict:
        return self._passes(negative(image))

    def _passes(self, image: np.ndarray, first: Instances | None = None) -> dict:
        twin = self.twin[0]
        instances, reads, mirrored = refine_lazily(self.model, self.cfg, image, first, twin)
        return {"instances": instances, "reads": reads, "mirrored_run": mirrored,
                "tiebreak_looks": tiebreak_looks(self.model, self.cfg, image, twin)}
