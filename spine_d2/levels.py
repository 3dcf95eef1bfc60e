"""Vertebral level names, their order and region, and the maps from annotation labels to model classes.

Labels are what an annotator writes in Labelme (`T1`…`T12`, `L1`…`L5`, `S1`, `FH`, or the region
labels `thoracic`/`lumbar`; corner points `L3_sa` … `L3_ip`, the ends of a level's endplates);
classes are what the model predicts. A `ClassMap` folds labels into classes; a label a map does
not keep (e.g. `FH` in the study's two-class setting) is dropped from training, not an error.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

THORACIC = tuple(f"T{i}" for i in range(1, 13))
LUMBAR = tuple(f"L{i}" for i in range(1, 6))
SACRUM = ("S1",)
FEMORAL_HEAD = "FH"

#: Vertebral levels from cranial to caudal; index = order along the spine.
LEVELS: tuple[str, ...] = THORACIC + LUMBAR + SACRUM
LEVEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(LEVELS)}

#: Region labels an annotator may use instead of level names.
REGION_LABELS = ("thoracic", "lumbar")

#: Every label the loader accepts for an outline (polygon, rectangle, circle, mask).
KNOWN_LABELS: tuple[str, ...] = LEVELS + (FEMORAL_HEAD,) + REGION_LABELS

#: The four corners of a vertebral body, the ends of its endplates: superior/inferior ×
#: anterior/posterior. A corner point is labelled `<level>_<corner>`, e.g. `L3_sa`.
CORNERS: tuple[str, ...] = ("sa", "sp", "ia", "ip")
CORNER_SIDES: dict[str, tuple[str, str]] = {"superior": ("sa", "sp"), "inferior": ("ia", "ip")}


def corner_label(level: str, corner: str) -> str:
    """The label of a corner point: `corner_label("L3", "sa")` → "L3_sa"."""
    if not is_level(level) or corner not in CORNERS:
        raise ValueError(f"no corner {corner!r} of level {level!r}; corners: {', '.join(CORNERS)}")
    return f"{level}_{corner}"


def parse_corner_label(label: str) -> tuple[str, str] | None:
    """(level, corner) of a corner-point label such as "L3_sa"; None for any other label."""
    level, _, corner = label.rpartition("_")
    return (level, corner) if is_level(level) and corner in CORNERS else None


def region(label: str) -> str:
    """Region of a label: 'thoracic', 'lumbar', 'sacrum' or 'femoral_head'.

    Raises KeyError for a label that is not in KNOWN_LABELS.
    """
    if label in THORACIC or label == "thoracic":
        return "thoracic"
    if label in LUMBAR or label == "lumbar":
        return "lumbar"
    if label in SACRUM:
        return "sacrum"
    if label == FEMORAL_HEAD:
        return "femoral_head"
    raise KeyError(f"unknown label {label!r}; known: {', '.join(KNOWN_LABELS)}")


def is_level(label: str) -> bool:
    """True for a named vertebral level (T1…S1), False for FH and region labels."""
    return label in LEVEL_INDEX


@dataclass(frozen=True)
class ClassMap:
    """Folds annotation labels into model classes.

    `classes` is the model's `thing_classes` (order = category id); `label_to_class` maps each kept
    label to one of them. Labels absent from `label_to_class` are dropped from training.
    """

    name: str
    classes: tuple[str, ...]
    label_to_class: Mapping[str, str] = field(repr=False)

    def __post_init__(self):
        unknown = set(self.label_to_class.values()) - set(self.classes)
        if unknown:
            raise ValueError(f"class map {self.name!r} maps to undeclared classes {sorted(unknown)}")

    def category_id(self, label: str) -> int | None:
        """Category id of an annotation label, or None when this map drops the label."""
        cls = self.label_to_class.get(label)
        return None if cls is None else self.classes.index(cls)

    def keeps(self, label: str) -> bool:
        return label in self.label_to_class


def _by_region(keep: tuple[str, ...]) -> dict[str, str]:
    return {label: region(label) for label in KNOWN_LABELS if region(label) in keep}


CLASS_MAPS: dict[str, ClassMap] = {
    # The reference study's setting: thoracic and lumbar vertebrae only.
    "two_class": ClassMap("two_class", ("thoracic", "lumbar"), _by_region(("thoracic", "lumbar"))),
    # The default: also the sacrum (S1 endplate → SS) and femoral heads (→ PT, PI).
    "default": ClassMap(
        "default",
        ("thoracic", "lumbar", "sacrum", "femoral_head"),
        _by_region(("thoracic", "lumbar", "sacrum", "femoral_head")),
    ),
    # One class per level; region labels carry no level and are dropped.
    "per_level": ClassMap(
        "per_level",
        LEVELS + (FEMORAL_HEAD,),
        {label: label for label in LEVELS + (FEMORAL_HEAD,)},
    ),
}


def get_class_map(name_or_map: str | ClassMap | None) -> ClassMap:
    """The ClassMap named `name_or_map` (None → 'default'); a ClassMap is returned as is."""
    if isinstance(name_or_map, ClassMap):
        return name_or_map
    name = name_or_map or "default"
    try:
        return CLASS_MAPS[name]
    except KeyError:
        raise KeyError(f"unknown class map {name!r}; choose one of {', '.join(CLASS_MAPS)}") from None
