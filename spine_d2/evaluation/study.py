"""The reference study's published results, as data: the one place for every number we compare with.

Units: Dice and mIoU in percent (mean ± SD over its test images), angles in degrees. Only what the
study reports is here: the mean absolute error for TK, LL and SS (no SD is quoted), and R², S and
the regression slope as ranges over those three parameters (not per parameter). Nothing is
reported for LL_S1, PT or PI; the report shows "—" there rather than a guess.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping


@dataclass(frozen=True)
class StudyResults:
    """Published results of a comparison study; None / absent = not reported."""

    name: str
    description: str
    dice_pct: tuple[float, float]                  # mean, SD (%)
    miou_pct: tuple[float, float]                  # mean, SD (%)
    parameters: tuple[str, ...]                    # the angles the study measured
    mae_deg: Mapping[str, float] = field(default_factory=dict)
    r2_range: tuple[float, float] | None = None    # over `parameters`
    s_deg_range: tuple[float, float] | None = None
    slope_deg_range: tuple[float, float] | None = None

    def range_text(self, key: str, unit: str = "") -> str:
        """'0.91–0.95' for a reported range, '' when not reported."""
        r = getattr(self, key)
        if r is None:
            return ""
        lo, hi = r
        fmt = (lambda v: f"{v:g}")
        return f"{fmt(lo)}–{fmt(hi)}{unit}" if lo != hi else f"{fmt(lo)}{unit}"


REFERENCE_STUDY = StudyResults(
    name="reference study",
    description="COCO-pretrained Mask R-CNN fine-tuned on 300 phone photos of lateral spine X-rays",
    dice_pct=(84.6, 3.8),
    miou_pct=(72.1, 4.8),
    parameters=("TK", "LL", "SS"),
    mae_deg=MappingProxyType({"TK": 3.0, "LL": 3.2, "SS": 3.3}),
    r2_range=(0.91, 0.95),
    s_deg_range=(3.4, 3.5),
    slope_deg_range=(42.0, 44.0),
)
