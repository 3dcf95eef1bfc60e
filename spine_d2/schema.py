"""The schema of our Hydra configs (conf/): every key of ours, its type and its default (px, iterations).

One dataclass per config node, registered in Hydra's ConfigStore when this module is imported
(the tools and the tests import it before composing): `train_schema` is the root of
conf/config.yaml, and `dataset/schema`, `measure/schema` are the bases of those groups' options
(conf/dataset/*.yaml, conf/measure/default.yaml). Composition checks every key against them: a
typo, a wrong type or a value outside a key's choices fails with Hydra's message before anything
runs. The values here are the defaults: the YAML files hold only what an option or an experiment
changes. Raw detectron2 keys go under `model.d2` (checked by detectron2 when merged).
`spine_d2.engine.config` turns a composed tree into a detectron2 CfgNode.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, Dict, List, Optional, get_type_hints

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from spine_d2.engine.phases import Phase
from spine_d2.levels import CLASS_MAPS
from spine_d2.measure.config import MeasureConfig, choices

FLIP_WHEN = ("always", "doubt")  # test.flip_when: when the mirrored run is made
FlipWhen = choices("FlipWhen", FLIP_WHEN)
TURNED_BOXES = ("given", "own")  # test.highres.turned_boxes: how the turned looks find the bodies
TurnedBoxes = choices("TurnedBoxes", TURNED_BOXES)

Fit = choices("Fit", ("resize", "keep_aspect"))
MaskHead = choices("MaskHead", ("standard", "pointrend"))
ClassMapName = choices("ClassMapName", CLASS_MAPS)


def node(cls: type) -> Any:
    """A nested config node: the dataclass `cls` with its defaults."""
    return field(default_factory=cls)


@dataclass
class InputConfig:
    """Preprocessing, identical in training, evaluation and prediction."""

    height: int = 840                 # network input, px (the study: 840 x 360, height x width)
    width: int = 360
    fit: Fit = Fit.resize             # resize: exactly height x width | keep_aspect: largest size inside it
    mean_intensity: Optional[float] = 128.0  # per-image normalisation to this mean; null = off


@dataclass
class FlipConfig:                     # horizontal flip
    enabled: bool = True
    prob: float = 0.5


@dataclass
class ContrastConfig:                 # blend with the image mean, factor uniform in [min, max]
    enabled: bool = True
    prob: float = 0.5
    min: float = 0.7
    max: float = 1.3


@dataclass
class ScaleConfig:                    # multi-scale: input size times a factor uniform in [min, max]
    enabled: bool = True
    min: float = 0.9
    max: float = 1.1


@dataclass
class CropConfig:                     # a random window of height x width px of the resized image:
    enabled: bool = False             # trains at a higher input size for the cost of a smaller one
    height: int = 384
    width: int = 384


@dataclass
class RotationConfig:                 # rotation by +-[min_deg, max_deg] degrees about the centre
    enabled: bool = True
    prob: float = 0.5
    min_deg: float = 1.0
    max_deg: float = 5.0


@dataclass
class PhotometricConfig:              # another film's look: gamma, blur or sharpening, noise, JPEG
    enabled: bool = False             # (spine_d2/data/transforms.py Photometric); on in experiment=long
    prob: float = 0.5


@dataclass
class AugmentConfig:
    """Training only; each can be switched off with <name>.enabled=false."""

    flip: FlipConfig = node(FlipConfig)
    contrast: ContrastConfig = node(ContrastConfig)
    scale: ScaleConfig = node(ScaleConfig)
    crop: CropConfig = node(CropConfig)
    rotation: RotationConfig = node(RotationConfig)
    photometric: PhotometricConfig = node(PhotometricConfig)


@dataclass
class SolverConfig:
    """SGD; the lr of each phase is base_lr * phase.lr_factor (schedule group)."""

    base_lr: float = 0.001
    ims_per_batch: int = 2            # total over all processes
    momentum: float = 0.9
    weight_decay: float = 0.0001
    warmup_iters: int = 50
    checkpoint_period: int = 500
    average_iters: int = 0            # final weights: the mean over the last average_iters steps (SWA); 0: the last step's
    average_period: int = 100         # ... of a snapshot every average_period steps, the last step included
    keep_start: float = 0.0           # then keep_start x model.weights + the rest x those (WiSE-FT); 0: as trained
    amp: bool = False                 # mixed precision: fp16 + grad scaler on CUDA (AMPTrainer), bf16 on the CPU


@dataclass
class RareConfig:
    """Films whose `angle` (measurements.csv) is rare among the training films drawn more often:
    up to `max_repeat` times per epoch (spine_d2/data/rare.py); angle null: every film once."""

    angle: Optional[str] = None       # TK | LL | LL_S1 | SS | PT | PI
    bandwidth_deg: float = 5.0        # the smoothing kernel's sigma, degrees
    max_repeat: float = 3.0


@dataclass
class DataloaderConfig:
    num_workers: int = 0              # 0: data loaded in the training process (bit-exact resume, least memory)
    rare: RareConfig = node(RareConfig)


@dataclass
class HighresConfig:
    """A second pass on upright windows along the spine where the vertebrae are larger
    (spine_d2/engine/highres.py); the tools' highres= overrides `enabled`."""

    enabled: bool = False
    windows: int = 6                  # at most this many windows
    target_px: float = 22.0           # median vertebra box height in a window, input px
    min_gain: float = 1.25            # no second pass when the windows would enlarge the vertebrae less
    min_score: float = 0.5            # a window's bodies scoring less are not used
    sacrum_corners: bool = True       # the sacrum's corners (S1) averaged with a window's where they agree
    # degrees: the windows run again turned by each of these about their centres, the bodies'
    # corners averaged over the runs where they agree (engine/highres.py); []: upright only
    turns: List[float] = field(default_factory=lambda: [-5.0, 5.0])
    # where no windows are made, the photo cut to the spine's columns runs turned by `turns` instead,
    # the bodies' corners averaged alike (engine/highres.py)
    turn_strip: bool = True
    flip_turns: bool = True           # the mirrored run (test.flip) turns its windows too; false: upright only (faster)
    # with the mirrored run on every photo, the two runs share `turns` out (the photo's every other one from the
    # first, the mirrored run the others as seen on the mirror image): half the turned looks (engine/test_time.py)
    share_turns: bool = False
    # the turned looks: given (each body found is given to the box and corner heads: no proposals or
    # masks, a third faster) or own (they detect everything again, matched to the bodies by their masks)
    turned_boxes: TurnedBoxes = TurnedBoxes.given


@dataclass
class InferenceConfig:
    """`test`: evaluation and prediction."""

    eval_period: int = 0              # 0: evaluate once, at the end
    nms_thresh: float = 0.0001        # MODEL.ROI_HEADS.NMS_THRESH_TEST, the study's value
    score_thresh: float = 0.05
    detections_per_image: int = 40
    highres: HighresConfig = node(HighresConfig)
    soft_masks: bool = False          # outlines from the mask probabilities at 1/8 px (spine_d2/engine/soft_masks.py)
    flip: bool = False                # the model also on the photo mirrored, corners averaged (spine_d2/engine/flip.py)
    # with `flip`: always, or doubt: only where the photo's own run, measured first, is in doubt
    # (measure.doubt_corner_score; engine/test_time.py, measure/reads.py): faster, less accurate
    flip_when: FlipWhen = FlipWhen.always
    # degrees: where the photo's and the mirror image's reads of TK or LL disagree (measure.reads_apart),
    # the photo turned whole by each, a first pass of its own, to break the tie (engine/test_time.py,
    # measure.reads_agree); only with `flip`; []: off
    tiebreak_turns: List[float] = field(default_factory=lambda: [4.0, -4.0])
    amp: bool = False                 # the backbone under autocast (CPU bfloat16, GPU float16): faster (engine/test_time.py)
    amp_corners: bool = True          # with `amp`, the corner head's convolutions too (engine/test_time.py)
    # where a photo's measurement sees no spine (no angle, few or unsure bodies), its negative measured too (a
    # film shown inverted, bones dark; spine_d2/measure/negative.py); a photo whose spine was seen runs once
    negative: bool = True
    processes: int = 1                # the final test of a one-process run in this many processes (CPU: sharing the cores)


@dataclass
class LaunchConfig:
    """detectron2 launch(): processes are GPUs, or CPU processes (gloo)."""

    processes_per_machine: int = 1
    num_machines: int = 1
    machine_rank: int = 0
    dist_url: str = "auto"            # auto: a free local port (one machine); tcp://HOST:PORT for several


def _knobs_config() -> type:
    """Every phantom knob (spine_d2.synthetic.knobs.Knobs) as an optional key, None = the preset's."""
    from spine_d2.synthetic.knobs import Knobs

    hints = get_type_hints(Knobs)
    return make_dataclass("KnobsConfig", [(f.name, Optional[hints[f.name]], None) for f in fields(Knobs)])


KnobsConfig = _knobs_config()


@dataclass
class GenerateConfig:
    """How to make a synthetic dataset's `root` when it does not exist (tools/make_synthetic.py)."""

    n: int = 428
    seed: int = 1
    difficulty: str = "realistic"     # easy | realistic | hard (spine_d2/synthetic/knobs.py)
    # phantom knobs over the preset (spine_d2/synthetic/knobs.py; null: the preset's), e.g. a phantom
    # keeping a kind of variation out of training: dataset.generate.knobs.ct_fraction=0
    knobs: KnobsConfig = field(default_factory=KnobsConfig)


@dataclass
class TrainExtraConfig:
    """A further Labelme folder every image of which trains beside the dataset's train split (none
    is tested): more annotated films, or more phantom films (`generate`: made when absent)."""

    root: str = MISSING
    generate: Optional[GenerateConfig] = None


@dataclass
class DatasetConfig:
    """The `dataset` group: a Labelme folder (datasets/README.md) or the synthetic phantom."""

    name: str = MISSING               # DatasetCatalog names: <name>_train, <name>_test
    root: str = MISSING
    class_map: ClassMapName = ClassMapName.default  # two_class (the study's) | default | per_level
    test_fraction: float = 0.3        # used when root/splits/ is absent
    split_seed: int = 0
    strict: bool = True               # false: skip bad files with a warning instead of stopping
    measurements: str = "measurements.csv"
    generate: Optional[GenerateConfig] = None  # null: never generated, a missing root is an error
    # folders that only train, registered as <name>_extra<i>_all (spine_d2/data/register.py); the
    # class map, strictness and measurements file name are this dataset's
    train_extra: List[TrainExtraConfig] = field(default_factory=list)


@dataclass
class ModelConfig:
    """The `model` group: a detectron2 model-zoo config, its weights, and raw detectron2 keys."""

    name: str = MISSING
    base: str = MISSING               # model zoo config merged first
    # .pkl (model zoo / Detectron) or .pth, a path or URL; class-dependent head layers of another
    # size are re-initialised. null: from scratch, with `scratch_norm` in backbone, FPN and heads
    # (as for a .pth that was trained from scratch: norm layers in its FPN).
    weights: Optional[str] = None
    scratch_norm: str = "GN"          # norm from scratch, and for a .pth trained from scratch (norm in its FPN)
    corners: bool = False             # a keypoint head beside the mask head: each body's four corners
    corner_head: List[int] = field(default_factory=lambda: [256, 256, 256, 256])  # its conv channels
    # its training target: a Gaussian of this SD (heatmap cells) at each corner's exact position;
    # 0: detectron2's one-hot cell (spine_d2/engine/corner_head.py)
    corner_sigma: float = 0.0
    # standard: Mask R-CNN's 28x28 masks; pointrend: PointRend's point head refines each outline to
    # 224x224 on the stride-4 features (detectron2.projects.point_rend; sizes: ROI_MASK_HEAD.FC_DIM, POINT_HEAD.FC_DIM)
    mask_head: MaskHead = MaskHead.standard
    d2: Dict[str, Any] = field(default_factory=dict)  # raw detectron2 keys merged last (resolved)


@dataclass
class ScheduleConfig:
    """The `schedule` group: the training phases (spine_d2/engine/phases.py)."""

    name: str = MISSING
    phases: List[Phase] = MISSING


@dataclass
class TrainConfig:
    """The root of conf/config.yaml (tools/train.py)."""

    seed: int = 0                     # seeds numpy/torch/random, the train sampler and every iteration (resume)
    device: str = "auto"              # auto (cuda when available, else cpu) | cpu | cuda
    resume: bool = False              # true: continue from output_dir/last_checkpoint (needs the old hydra.run.dir)
    output_dir: str = "${hydra:runtime.output_dir}"
    optimized_metric: str = "segm/AP"  # what tools/train.py returns (Optuna's objective); key of the eval results
    log_period: int = 20              # iterations between progress lines (with ETA) and metrics.json records
    input: InputConfig = node(InputConfig)
    augment: AugmentConfig = node(AugmentConfig)
    solver: SolverConfig = node(SolverConfig)
    dataloader: DataloaderConfig = node(DataloaderConfig)
    test: InferenceConfig = node(InferenceConfig)
    launch: LaunchConfig = node(LaunchConfig)
    dataset: DatasetConfig = node(DatasetConfig)
    model: ModelConfig = node(ModelConfig)
    schedule: ScheduleConfig = node(ScheduleConfig)
    measure: MeasureConfig = node(MeasureConfig)


def dataset_config(node: Any) -> DictConfig:
    """A `dataset` node (composed, or a plain dict whose missing keys take their defaults) checked
    against DatasetConfig."""
    return OmegaConf.merge(OmegaConf.structured(DatasetConfig), node)


def register() -> None:
    """Put the schema into Hydra's ConfigStore (idempotent)."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(group="dataset", name="schema", node=DatasetConfig)
    cs.store(group="measure", name="schema", node=MeasureConfig)


register()
