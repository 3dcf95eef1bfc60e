"""Agreement statistics of predicted vs reference angles (degrees) and the run's summary.json content.

For one parameter, from paired arrays (true, pred) with NaN = absent:

- ``n``: images with both values; ``missing``: images with a reference value but no prediction
  (the method could not measure). Images without a reference value count in neither.
- ``mae`` ± ``sd``: mean and sample SD (n − 1) of the absolute error |pred − true| (study, Table 1).
- ``bias``: mean of pred − true; ``sd_diff``: sample SD of pred − true; Bland–Altman limits of
  agreement ``loa_low``/``loa_high`` = bias ∓ 1.96 · sd_diff.
- Regression of pred on true by ordinary least squares (statsmodels OLS, pred = intercept +
  slope · true; study, Table 2): ``r2``; ``p`` = two-sided p-value of the slope's t-test;
  ``slope``, ``intercept``; ``slope_deg`` = degrees(atan(slope)) (the study reports 42–44°, i.e.
  slopes near 1 = 45°); ``s`` = the study's S, the *standard error of the estimate* (of the
  regression): sqrt(Σ residual² / (n − 2)), degrees — statsmodels' sqrt(mse_resid), Minitab's "S".
  It is not the SD of the differences (that is ``sd_diff``): S measures scatter around the fitted
  line, sd_diff scatter around the identity line shifted by the bias.
- ``icc``: ICC(2,1) (Shrout & Fleiss; McGraw & Wong's ICC(A,1): two-way random effects, absolute
  agreement, single measurement) with its F-based 95 % CI ``icc_ci_low``/``icc_ci_high``
  (pingouin's `intraclass_corr`).

Degenerate input gives NaN where a statistic is undefined, never an exception: fewer than 3 pairs
→ no regression and no ICC; one pair → no SD; constant reference values → no slope; constant
predictions → slope 0 with R² and p undefined; a perfect linear fit → R² 1, S 0, p 0; no residual
ANOVA error (perfect agreement or a constant bias) → ICC CI undefined.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from statsmodels.regression.linear_model import OLS

from spine_d2.angles import ANGLE_NAMES
from spine_d2.evaluation.per_image import pairs
from spine_d2.evaluation.sheet import reference_hints

NAN = math.nan
#: Keys of one parameter's statistics (summary.json holds them per parameter, in this order).
AGREEMENT_KEYS: tuple[str, ...] = (
    "mae", "sd", "bias", "r2", "p", "slope_deg", "s", "loa_low", "loa_high", "icc", "n", "missing",
    "slope", "intercept", "sd_diff", "icc_ci_low", "icc_ci_high")
MIN_PAIRS_REGRESSION = 3
_REL_TOL = 1e-12  # below this fraction of the total variation a residual variation counts as zero


def complete_pairs(true, pred) -> tuple[np.ndarray, np.ndarray, int]:
    """→ (true, pred) of the images with both values, and the number missing (reference present,
    prediction absent)."""
    t, p = np.asarray(true, float).ravel(), np.asarray(pred, float).ravel()
    if t.shape != p.shape:
        raise ValueError(f"true and pred differ in length: {t.size} vs {p.size}")
    ok = np.isfinite(t) & np.isfinite(p)
    return t[ok], p[ok], int(np.count_nonzero(np.isfinite(t) & ~np.isfinite(p)))


def sample_sd(x) -> float:
    """Sample SD (n − 1) of `x`; NaN for fewer than two values."""
    x = np.asarray(x, float)
    return float(np.std(x, ddof=1)) if len(x) > 1 else NAN


def mean_sd(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample SD (n − 1) of the finite values; NaN where undefined (none; SD of one)."""
    v = np.asarray(list(values), float)
    v = v[np.isfinite(v)]
    return (float(v.mean()) if len(v) else NAN), sample_sd(v)


def errors(t: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """MAE ± SD of |p − t|, bias and SD of p − t, Bland–Altman limits (complete pairs)."""
    if len(t) == 0:
        return dict(mae=NAN, sd=NAN, bias=NAN, sd_diff=NAN, loa_low=NAN, loa_high=NAN)
    d = p - t
    bias, sd_diff = float(d.mean()), sample_sd(d)
    return dict(mae=float(np.abs(d).mean()), sd=sample_sd(np.abs(d)), bias=bias, sd_diff=sd_diff,
                loa_low=bias - 1.96 * sd_diff, loa_high=bias + 1.96 * sd_diff)


def regression(t: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """OLS of pred on true (complete pairs): r2, p, slope, intercept, slope_deg, s."""
    out = dict(r2=NAN, p=NAN, slope=NAN, intercept=NAN, slope_deg=NAN, s=NAN)
    n = len(t)
    if n < MIN_PAIRS_REGRESSION or np.ptp(t) == 0:
        return out
    if np.ptp(p) == 0:  # flat predictions: slope 0, nothing explained, no test
        out.update(slope=0.0, intercept=float(p[0]), slope_deg=0.0, s=0.0)
        return out
    fit = OLS(p, np.column_stack([np.ones_like(t), t])).fit()
    slope, intercept = float(fit.params[1]), float(fit.params[0])
    out.update(slope=slope, intercept=intercept, slope_deg=math.degrees(math.atan(slope)))
    ss_res, ss_tot = float(fit.ssr), float(fit.centered_tss)
    if ss_res <= _REL_TOL * ss_tot:  # a perfect line: t-statistic infinite
        out.update(r2=1.0, p=0.0, s=0.0)
    else:
        out.update(r2=float(fit.rsquared), p=float(fit.pvalues[1]), s=math.sqrt(fit.mse_resid))
    return out


def icc_2_1(t: np.ndarray, p: np.ndarray) -> tuple[float, float, float]:
    """ICC(2,1) of two raters (true, pred) over n subjects with its 95 % CI → (icc, low, high):
    pingouin's ICC(A,1) (two-way ANOVA; CI by McGraw & Wong's F with Satterthwaite's degrees of
    freedom), its CI unrounded. Degenerate input is decided here: under 3 pairs or no variation →
    NaN; no residual (perfect agreement or a constant bias: F infinite) → the ICC without a CI."""
    import pingouin

    x = np.column_stack([np.asarray(t, float), np.asarray(p, float)])
    n, k = x.shape
    if n < MIN_PAIRS_REGRESSION or np.ptp(x) == 0:
        return NAN, NAN, NAN
    long = pd.DataFrame({"subject": np.tile(np.arange(n), k), "rater": np.repeat(np.arange(k), n),
                         "value": x.T.ravel()})
    saved = dict(pingouin.options)
    pingouin.options["round.column.CI95"] = None  # pingouin shows the CI to 2 decimals by default
    try:
        with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # F = MSR / 0 when nothing is left over
            row = pingouin.intraclass_corr(long, "subject", "rater", "value").set_index("Type").loc["ICC(A,1)"]
    finally:
        pingouin.options.update(saved)
    if not float(row["F"]) < 1 / _REL_TOL:  # no residual: the F-test and its CI are undefined
        return float(row["ICC"]), NAN, NAN
    low, high = row["CI95"]
    return float(row["ICC"]), float(low), float(high)


def agreement(true, pred) -> dict[str, float]:
    """All statistics of one parameter (keys AGREEMENT_KEYS) from paired arrays with NaNs."""
    t, p, missing = complete_pairs(true, pred)
    icc, lo, hi = icc_2_1(t, p)
    res = {**errors(t, p), **regression(t, p), "icc": icc, "icc_ci_low": lo, "icc_ci_high": hi,
           "n": len(t), "missing": missing}
    return {k: res[k] for k in AGREEMENT_KEYS}


#: Overlaps beside the headline Dice, each from the per-image columns <prefix>_dice, <prefix>_iou
#: (segmentation.image_segmentation): 'all', every predicted vertebra mask whatever its score;
#: 'named', the vertebrae the measurement named.
OTHER_OVERLAPS: tuple[str, ...] = ("all", "named")
#: summary.json's keys for them (fractions 0–1, mean ± SD over images).
OVERLAP_KEYS: tuple[str, ...] = tuple(f"{o}_{k}" for o in OTHER_OVERLAPS
                                      for k in ("dice_mean", "dice_sd", "miou_mean", "miou_sd"))


#: summary.json's counts of the levels named against the annotation's (evaluation.level_naming),
#: where the table has them: named levels lying on an annotated one, those misnamed, the images
#: with any named level and those with a level misnamed.
NAMING_KEYS: tuple[str, ...] = ("levels_named", "levels_misnamed", "images_named", "images_misnamed")


def summarize(per_image: pd.DataFrame, coco_segm_ap: float | None = None) -> dict[str, Any]:
    """The run's summary (summary.json), JSON-safe: n_images, dice_mean, dice_sd, miou_mean,
    miou_sd (Dice and IoU as fractions 0–1, mean ± SD over images; for each of OTHER_OVERLAPS
    whose columns the table has, the same as `OVERLAP_KEYS`), coco_segm_ap (COCO mask AP
    as a fraction 0–1 like them: detectron2's 0–100 AP / 100; or null), `NAMING_KEYS` (counts)
    where the table has the levels named against the annotation's, and per parameter of
    ANGLE_NAMES an object with AGREEMENT_KEYS (degrees; r2, slope, icc unitless); and
    reference_hints, angle → why its reference column may follow another convention than ours
    (`spine_d2.evaluation.sheet.reference_hints`; {} for none)."""
    dice_m, dice_s = mean_sd(per_image["dice"]) if "dice" in per_image else (NAN, NAN)
    iou_m, iou_s = mean_sd(per_image["iou"]) if "iou" in per_image else (NAN, NAN)
    out: dict[str, Any] = {
        "n_images": int(len(per_image)), "dice_mean": dice_m, "dice_sd": dice_s,
        "miou_mean": iou_m, "miou_sd": iou_s,
        "coco_segm_ap": None if coco_segm_ap is None else float(coco_segm_ap)}
    for o in OTHER_OVERLAPS:
        if f"{o}_dice" in per_image:
            out[f"{o}_dice_mean"], out[f"{o}_dice_sd"] = mean_sd(per_image[f"{o}_dice"])
            out[f"{o}_miou_mean"], out[f"{o}_miou_sd"] = mean_sd(per_image.get(f"{o}_iou", []))
    if "levels_named" in per_image:
        named = pd.to_numeric(per_image["levels_named"], errors="coerce").fillna(0)
        wrong = pd.to_numeric(per_image.get("levels_misnamed"), errors="coerce").fillna(0)
        out.update(levels_named=int(named.sum()), levels_misnamed=int(wrong.sum()),
                   images_named=int((named > 0).sum()), images_misnamed=int((wrong > 0).sum()))
    for name in ANGLE_NAMES:
        out[name] = agreement(*pairs(per_image, name))
    out["reference_hints"] = reference_hints(per_image)
    return json_safe(out)


def json_safe(obj: Any) -> Any:
    """Nested dicts/lists of numbers → plain Python types with NaN/inf as None (valid JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj
