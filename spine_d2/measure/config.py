"""The `measure` config group's schema and defaults (units as each key says: px, degrees, shares).

`MeasureConfig` (with `FrameConfig` for `measure.frame`) is the one definition of the group's
keys, types and defaults: Hydra composes `conf/measure/default.yaml` from it (registered in the
ConfigStore by `spine_d2.schema`), so a typo, a wrong type or a value outside a key's choices
fails at composition with OmegaConf's message, and `from_cfg` checks a dict the same way.
Fields are plain values (a choice is a `StrEnum`, which is a `str`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Optional, TypeVar

from omegaconf import OmegaConf

from spine_d2.angles import REQUIRED_ENDPLATES
from spine_d2.levels import is_level
from spine_d2.measure.cleanup import CHAIN_RULES, CROWD_STEPS, CROWD_STEPS_SURE
from spine_d2.measure.endplates import METHOD_NAMES
from spine_d2.measure.femoral_heads import HEAD_RADIUS_RATIO, WEAK_HEAD_SCORE
from spine_d2.measure.level_endplates import FAINT_PLATE_SCORES
from spine_d2.measure.lumbosacral import LUMBOSACRAL_DEG
from spine_d2.measure.naming import GAP_BODY_FACTOR
from spine_d2.measure.wedges import (LUMBAR_WEDGE_DEG, MAX_WEDGE_DEG, THORACIC_WEDGE_DEG, TYPICAL_WEDGE_DEG,
                                     WEAK_CORNER_SCORES, WEDGE_FROM)

T = TypeVar("T")


def choices(name: str, values) -> type[StrEnum]:
    """A StrEnum whose members are `values` (OmegaConf checks a value against them by name)."""
    return StrEnum(name, {v: v for v in values})


EndplateMethod = choices("EndplateMethod", METHOD_NAMES)
ChainRule = choices("ChainRule", CHAIN_RULES)
LevelAnchor = choices("LevelAnchor", ("s1", "regions"))
OnImplausible = choices("OnImplausible", ("nan", "measure"))
AnteriorSide = choices("AnteriorSide", ("auto", "right", "left"))
CornerUse = choices("CornerUse", ("use", "fuse", "ignore"))


def checked(cls: type[T], cfg: Any) -> T:
    """`cfg` (None, a `cls`, a dict or an OmegaConf node) as a `cls`, checked by OmegaConf against
    the dataclass: an unknown key, a wrong type or a value outside a key's choices raises OmegaConf's
    error (a KeyError or ValueError) naming the key."""
    if cfg is None:
        return cls()
    if isinstance(cfg, cls):
        return cfg
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), cfg))


@dataclass
class FrameConfig:
    """`measure.frame`: the photo → radiograph correction (spine_d2.measure.rectify)."""

    enabled: bool = True
    max_side: int = 800               # px: the photo is shrunk to this for the border search
    min_line_fraction: float = 0.25   # a border spans at least this fraction of the photo side
    max_tilt_deg: float = 30.0        # borders deviate at most this from horizontal/vertical
    agree_deg: float = 1.5            # borders of a rotation-only estimate agree within this
    min_area_fraction: float = 0.15   # (with `aspect`) a border quadrilateral covers this share of the photo
    perspective: bool = True          # fit a pinhole camera to the screen's lines (else rotation only)
    aspect: Optional[float] = None    # known width:height of the bordered screen: four-border fit instead
    max_rotation_deg: float = 25.0    # larger corrections are not trusted
    focal_prior: float = 0.6          # phone focal length in image diagonals (26 mm-equivalent)
    fit_tol_deg: float = 0.4          # a line fits the camera model within this (degrees)
    min_lines: int = 3                # fitted lines needed, both directions (3: a pose with no line to check it)
    max_view_deg: float = 40.0        # the screen is seen at most this far off head-on
    min_per_direction: int = 1        # fitted lines needed in each direction (one: a view ≤ max_view_deg / 2)
    clutter: int = 2                  # lines with this many crossing neighbours are not borders (0: keep all)
    prefer_rotation: float = 0.9      # a head-on (rotation) fit explaining this share of a pinhole fit's lines wins
    crop: float = 0.2                 # share of each side a photo may have been cropped by (moves the principal point)
    max_spread_deg: float = 10.0      # a perspective fit that lens and crop could move by more: image frame
    max_spread_unchecked_deg: float = 3.0  # the same for a fit with no line to spare (3 lines)
    open_view_min_lines: int = 6      # ... but taken (confidence low) with this many lines on a view ≤ max_view_deg / 2; 0: never
    # a line with this share of its length over the bones found (vertebrae, femoral heads; grown by
    # `bone_grow` body heights) is a bone's edge, not a border: left out of the fit (not of the
    # lines endplates are checked against); 0: off (benchmarks/README.md, session 70)
    bone_share: float = 0.5
    bone_grow: float = 0.5
    # where no camera or agreeing rotation is found, but the borders found are opposite pairs (top
    # and bottom, left and right) and no long line lies on the pixel grid (a screenshot's), the photo
    # is turned by the pairs' mean tilt, confidence low (measure.rectify; benchmarks/README.md,
    # session 72); false: the image frame there
    paired_borders: bool = True

    @classmethod
    def from_cfg(cls, cfg: Any = None) -> "FrameConfig":
        return checked(cls, cfg)


@dataclass
class MeasureConfig:
    """The `measure` config group: measurement from masks or polygons (spine_d2.measure.pipeline)."""

    # endplate lines: rectangle+border (the rectangle for vertebral bodies, the border for S1) |
    # rectangle (the study's min-area rectangle + LS) | border (normal-selected border, robust TLS);
    # the old names mixed, paper, ours still work until the next release
    method: EndplateMethod = EndplateMethod["rectangle+border"]
    # centres off the spine's chain: turn (a spike turning it > turn_limit_deg) | slope (the study's) | off
    chain_rule: ChainRule = ChainRule.turn
    turn_limit_deg: float = 60.0      # turn: degrees the chain may turn at a centre that sticks out both ways
    max_detour: int = 3               # turn: centres a detour off the chain may hold (2-3 bodies beside it); <2: none
    slope_threshold: float = 1.7      # slope: the study's slope-change limit between neighbouring centres (tan 60°)
    duplicate_overlap: float = 0.5    # overlap (of the smaller mask) that makes two vertebrae duplicates
    duplicate_overlap_heads: float = 0.95  # the two femoral heads overlap on a lateral film by design
    min_area: float = 30.0            # px: smaller masks are dropped
    min_area_fraction: float = 0.2    # of the median vertebra area: smaller vertebra masks are dropped
    use_labels: bool = True           # trust level labels carried by instances (annotations, per-level model)
    gap_factor: float = 1.6           # a step between centres this much over the local median hides a level
    # a step no shorter than the local median and this much longer than the longer of its two bodies
    # along it hides a level (several levels missed in a row; measure.naming); 0: off
    gap_body_factor: float = GAP_BODY_FACTOR
    # a doubted centre (score < 0.5) whose neighbours lie closer than this many local steps apart
    # is a second find inside one level's step, removed (measure.cleanup, step 5); 0: off
    crowd_steps: float = CROWD_STEPS
    # a sure centre inside the chain whose neighbours lie closer than this many local steps apart and
    # whose mask touches a neighbour's is a second find too: one body found twice (measure.cleanup,
    # step 5); 0: off
    crowd_steps_sure: float = CROWD_STEPS_SURE
    # s1: name levels by counting up from S1 when in view | regions: by the classes
    level_anchor: LevelAnchor = LevelAnchor.s1
    # a doubted top sacrum instance (score < 0.5, or < 0.8 with another sacrum instance right below
    # it) is L5 when the classes of the sure bodies above it agree better with that than with its
    # being S1 (measure.naming); false: off
    l5_by_classes: bool = True
    # with no sacrum instance found, six lumbar bodies right below the thoracic ones hold one misread
    # body, at the end scoring lower: an S1 below or a T12 above (measure.naming); false: off (the
    # levels are then uncertain). Above a doubted sacrum instance, the lowest of six scoring lower
    # is S1 and the instance a lower sacral segment (false: counted up from the instance)
    lumbar_s1: bool = True
    # nan: angles needing an uncertainly named level are NaN | measure
    on_implausible: OnImplausible = OnImplausible.nan
    anterior: AnteriorSide = AnteriorSide.auto  # auto (from sacrum, hips and curves) | right (+x) | left (−x)
    # with `anterior` auto: where the side voted on is uncertain and reads TK and LL both under minus
    # this many degrees (a thorax in lordosis over a lumbar spine in kyphosis: no adult's), the other
    # side is taken, flagged (measure.pipeline); 0: never
    reversed_profile_deg: float = 10.0
    min_circle_radius: float = 3.0    # px: smaller femoral heads are ignored
    # femoral heads scoring under this are ignored beside one scoring at least this (a weak second
    # reading of the same head; measure.femoral_heads); 0: every head the model gives is used
    weak_head_score: float = WEAK_HEAD_SCORE
    # femoral heads whose radius differs from the best scored one's by more than this factor are
    # ignored (one film's two differ by ~10-20 %; measure.femoral_heads); 0: any radius
    head_radius_ratio: float = HEAD_RADIUS_RATIO
    # two femoral heads whose centres lie more than this many mean radii apart are no pair (one
    # film's two lie within 2.3): the best scored pair within it is used; 0: the two best scored
    head_pair_radii: float = 4.0
    # where the femoral heads put the hip axis caudal of S1's plate but more than 6 of its lengths
    # away (no head found a possible hip of this S1; ~3.3 in life), the plate is misread (too short,
    # or not S1's, the levels then counted up from the wrong one): with on_implausible nan, LL, LL_S1
    # and SS are left out with PT and PI (measure.femoral_heads); false: only PT and PI
    # (benchmarks/README.md, session 56)
    far_hips_doubt_s1: bool = True
    # S1's superior plate shorter than this fraction of L5's inferior plate (the phantom's truth:
    # 0.90-1.16) is misread: with on_implausible nan, LL, LL_S1, SS, PT and PI are left out
    # (measure.lumbosacral.short_s1_plate; benchmarks/README.md, session 57); 0: off
    s1_plate_min_ratio: float = 0.65
    # with on_implausible nan, a TK from the plates more than this many degrees from the bend of the
    # chain of body centres between the T4-T5 and T12-L1 discs (on the phantom's truth at most 23°
    # apart) is left out: a plate misread (measure.chain_curve); 0: off
    chain_tk_deg: float = 0.0
    border_px: float = 2.0            # px: an endplate ending this close to the image edge is cut, not used
    # an endplate lying along one of the photo's long straight lines (a film's, viewer's or screen's
    # border cutting the body: measure.photo_lines.along_a_line) is the cut, not used; false: kept
    film_edges: bool = True
    # endplates given by two corner points (Labelme points L3_sa…, a keypoint head): use (replace
    # the fit) | fuse (weighted with the fit by their score) | ignore
    corners: CornerUse = CornerUse.use
    min_corner_score: float = 0.2     # a predicted corner scoring less (0-1) counts as not found; annotated: 1
    # two corners closer together than this fraction of the outline's fitted endplate are no
    # endplate (two heatmap peaks on one point): the fit is used; 0: corners always used
    min_corner_length: float = 0.5
    # degrees an endplate of T1-L5 may lean off square to the spine's chain (the line through the
    # neighbouring centres) before it is taken square to the chain instead; 0: never (benchmarks/README.md)
    max_off_chain_deg: float = 20.0
    # with the mirrored run (test.flip): degrees the photo's and its mirror image's reads of an
    # angle, each measured alone, may lie apart before the angle is left out (measure.reads); 0: off
    reads_apart: float = 20.0
    # with the mirrored run: PT, where both reads measured it (and reads_apart did not leave it out;
    # with reads_apart 0, however far apart), is the mean of the two reads' and PI moves with it
    # (PI = PT + SS); false: PT as the fused detections measure it (measure.reads; benchmarks/README.md)
    reads_mean: bool = True
    # with the mirrored run: where the two reads name one body as different levels (a level one
    # off) and one of them therefore has no reading of an angle taking that level, the angle is
    # left out and the level's name marked uncertain (measure.reads.without_names_apart;
    # benchmarks/README.md, session 59); false: off
    reads_names: bool = True
    # with the mirrored run: degrees the fused detections' reading of an angle may lie from each of
    # the two reads' (which agree within as much) before it is left out: the fused corners are
    # the reads' average, so a fused angle far from both was read with another judgement (the
    # anterior side, a plate's fallback) than either read made (measure.reads.without_fused_apart;
    # benchmarks/README.md, session 60); 0: off
    fused_apart: float = 10.0
    # with the mirrored run: where the two reads of TK or LL lie more than reads_apart apart and just
    # one of them made no judgement call on it (no call in naming the levels, none on the plates it
    # takes, a sure anterior side: measure.flags), true takes that read's angle, flagged, instead of
    # leaving it out with both readings (measure.reads; benchmarks/README.md: the nearer read in 34
    # of 37 such disagreements, but 20-37 deg off where not, and every take adds error)
    reads_trust_clean: bool = False
    # with the mirrored run and test.tiebreak_turns: where the two reads of TK or LL lie more than
    # reads_apart apart, the photo turned whole is looked at again (a first pass of its own per
    # turn), and where every look reads the angle within this many degrees of the same read, that
    # read is taken, flagged, instead of leaving the angle out (measure.reads; benchmarks/README.md);
    # 0: off
    reads_agree: float = 10.0
    # with test.flip_when=doubt: the photo's own run is measured first, and the mirrored run made
    # only where a plate that TK or LL takes has a corner scoring under this (0-1), or an angle is
    # left out for another reason than a level not found or the femoral heads out of view
    # (measure.reads.doubted; benchmarks/README.md); 1: wherever such a plate has corners, 0: only
    # for the angles left out so
    doubt_corner_score: float = 0.3
    # the L5-S1 segment's plausible lordosis (degrees, kyphosis negative): an S1 plate from corner
    # points outside it gives way to the outline's when that one lies inside (measure.lumbosacral); []: off
    lumbosacral_deg: list[float] = field(default_factory=lambda: list(LUMBOSACRAL_DEG))
    # a sacral slope read under this (degrees) has S1's plate tilted the wrong way, as no standing
    # adult's is (8-72 deg in the reference study): with on_implausible nan, SS, LL_S1 and PI are
    # left out (measure.lumbosacral.wrong_way_s1; benchmarks/README.md, session 65); -90: off
    min_ss_deg: float = 0.0
    # a thoracic / lumbar body's plausible wedge (degrees, lordosis positive): outside it, a corner
    # plate that its outline's fit turns more than 10° and brings inside gives way to it
    # (measure.wedges); L5 outside it is not judged against S1; []: off
    thoracic_wedge_deg: list[float] = field(default_factory=lambda: list(THORACIC_WEDGE_DEG))
    lumbar_wedge_deg: list[float] = field(default_factory=lambda: list(LUMBAR_WEDGE_DEG))
    # a body whose plates wedge more than this either way (degrees), as none does, was misread: with
    # on_implausible nan, the angles taking its plates are left out (measure.wedges); 0: off
    max_wedge_deg: float = MAX_WEDGE_DEG
    # level → score: T5's superior and L5's inferior plate from corners scoring under their level's
    # score (the lower of the two) are averaged with the body's other plate turned by its typical
    # wedge (4° kyphotic, 6° lordotic; measure.wedges); 0: off for that level
    weak_corner_scores: dict[str, float] = field(default_factory=lambda: dict(WEAK_CORNER_SCORES))
    # level → the bodies whose wedges (read from their own plates, inside their window; the mean)
    # stand for a steadied plate's body's typical wedge: kyphosis lies in the thoracic bodies'
    # wedging, which neighbours share (measure.wedges; benchmarks/README.md, session 71); read the
    # other way than the typical wedge (T6–T7 lordotic: misread), 0°; a level given no bodies ([]:
    # off), or none of its bodies read, keeps its typical wedge
    weak_plate_wedge_from: dict[str, list[str]] = field(
        default_factory=lambda: {k: list(v) for k, v in WEDGE_FROM.items()})
    # angle → score: with on_implausible nan, an angle one of whose end plates comes from two corners
    # the lower of which scores under it (0.2: counted as not found, the plate read from a faint
    # body's outline) is left out (measure.level_endplates.faint_end_plates; benchmarks/README.md,
    # session 62: such a TK or LL was ~10° off on the phantom), as is one whose end plate is the
    # inferior plate of a body of the sacrum class (an L5 read as S1: LL; its corners there were never
    # trained); 0: off for that angle; LL_S1, SS, PT, PI may be named too
    faint_plate_scores: dict[str, float] = field(default_factory=lambda: dict(FAINT_PLATE_SCORES))
    frame: FrameConfig = field(default_factory=FrameConfig)

    def __post_init__(self) -> None:
        for key in ("lumbosacral_deg", "thoracic_wedge_deg", "lumbar_wedge_deg"):
            w = list(getattr(self, key))
            if w and (len(w) != 2 or w[0] > w[1]):
                raise ValueError(f"measure.{key} must be [min, max] degrees (or [] for off), got {w}")
        if not self.max_wedge_deg >= 0:
            raise ValueError(f"measure.max_wedge_deg must be degrees over 0 (or 0 for off), got {self.max_wedge_deg}")
        # level names in any case: a run's detectron2 config keeps its keys lower-cased (engine.config)
        self.weak_corner_scores = {str(k).upper(): float(v) for k, v in self.weak_corner_scores.items()}
        odd = sorted(set(self.weak_corner_scores) - set(TYPICAL_WEDGE_DEG))
        if odd:
            raise ValueError(f"measure.weak_corner_scores: no steadied plate for {', '.join(odd)} "
                             f"(levels: {', '.join(TYPICAL_WEDGE_DEG)})")
        self.weak_plate_wedge_from = {str(k).upper(): [str(v).upper() for v in vs]
                                      for k, vs in self.weak_plate_wedge_from.items()}
        odd = sorted(set(self.weak_plate_wedge_from) - set(TYPICAL_WEDGE_DEG))
        odd += sorted({v for vs in self.weak_plate_wedge_from.values() for v in vs if not is_level(v) or v == "S1"})
        if odd:
            raise ValueError(f"measure.weak_plate_wedge_from: {', '.join(odd)}: not a steadied plate's level "
                             f"({', '.join(TYPICAL_WEDGE_DEG)}) or not a vertebral body (T1…L5)")
        self.faint_plate_scores = {str(k).upper(): float(v) for k, v in self.faint_plate_scores.items()}
        odd = sorted(set(self.faint_plate_scores) - set(REQUIRED_ENDPLATES))
        if odd:
            raise ValueError(f"measure.faint_plate_scores: no angle {', '.join(odd)} "
                             f"(angles: {', '.join(REQUIRED_ENDPLATES)})")

    @classmethod
    def from_cfg(cls, cfg: Any = None) -> "MeasureConfig":
        """From None, a MeasureConfig, a dict or an OmegaConf node (see `checked`)."""
        return checked(cls, cfg)
