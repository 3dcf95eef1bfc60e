"""Agreement statistics against hand computations; degenerate input; summary.json schema."""
import json
import math
import warnings

import numpy as np
import pytest
from scipy import stats as st

from spine_d2.angles import ANGLE_NAMES
from spine_d2.evaluation.agreement import AGREEMENT_KEYS, agreement, icc_2_1, mean_sd, summarize
from spine_d2.evaluation.per_image import image_row, per_image_table

SUMMARY_KEYS = {"mae", "sd", "bias", "r2", "p", "slope_deg", "s", "loa_low", "loa_high", "icc",
                "n", "missing"}


def nan(x):
    return x is None or (isinstance(x, float) and math.isnan(x))


def test_small_example_by_hand():
    t = np.array([10.0, 20.0, 30.0, 40.0])
    p = np.array([12.0, 18.0, 33.0, 41.0])
    a = agreement(t, p)
    # differences 2, -2, 3, 1
    assert a["n"] == 4 and a["missing"] == 0
    assert a["mae"] == pytest.approx(2.0)
    assert a["sd"] == pytest.approx(math.sqrt(2 / 3))          # |d| = 2, 2, 3, 1
    assert a["bias"] == pytest.approx(1.0)
    assert a["sd_diff"] == pytest.approx(math.sqrt(14 / 3))     # d − 1 = 1, −3, 2, 0
    assert a["loa_low"] == pytest.approx(1 - 1.96 * math.sqrt(14 / 3))
    assert a["loa_high"] == pytest.approx(1 + 1.96 * math.sqrt(14 / 3))
    # OLS by hand: Sxx = 500, Sxy = 510 → slope 1.02, intercept 26 − 1.02·25 = 0.5;
    # residuals 1.3, −2.9, 1.9, −0.3 → SSR 13.8; SST(pred) = 534
    assert a["slope"] == pytest.approx(1.02)
    assert a["intercept"] == pytest.approx(0.5)
    assert a["slope_deg"] == pytest.approx(math.degrees(math.atan(1.02)))
    assert a["r2"] == pytest.approx(1 - 13.8 / 534)
    s = math.sqrt(13.8 / 2)
    assert a["s"] == pytest.approx(s)
    t_stat = 1.02 / (s / math.sqrt(500))
    assert a["p"] == pytest.approx(2 * st.t.sf(t_stat, 2))
    # ICC(2,1) by hand: MSR = 1027/3, MSC = 2, MSE = 7/3 → (MSR − MSE)/(MSR + MSE + 2(MSC − MSE)/4)
    assert a["icc"] == pytest.approx(340 / 344.5)
    assert a["icc_ci_low"] < a["icc"] < a["icc_ci_high"] <= 1
    assert list(a) == list(AGREEMENT_KEYS)


def test_perfect_agreement():
    t = np.array([10.0, 20.0, 30.0, 45.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = agreement(t, t.copy())
    for k in ("mae", "sd", "bias", "sd_diff", "loa_low", "loa_high", "s", "p"):
        assert a[k] == pytest.approx(0.0, abs=1e-9), k
    assert a["r2"] == pytest.approx(1.0) and a["slope"] == pytest.approx(1.0)
    assert a["slope_deg"] == pytest.approx(45.0)
    assert a["icc"] == pytest.approx(1.0)
    assert nan(a["icc_ci_low"]) and nan(a["icc_ci_high"])   # no residual: F undefined


def test_constant_bias():
    t = np.array([10.0, 20.0, 30.0, 45.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = agreement(t, t + 3.0)
    assert a["mae"] == pytest.approx(3.0) and a["bias"] == pytest.approx(3.0)
    assert a["sd"] == pytest.approx(0.0, abs=1e-9) and a["sd_diff"] == pytest.approx(0.0, abs=1e-9)
    assert a["loa_low"] == pytest.approx(3.0) and a["loa_high"] == pytest.approx(3.0)
    assert a["r2"] == pytest.approx(1.0) and a["slope"] == pytest.approx(1.0)
    assert a["intercept"] == pytest.approx(3.0) and a["s"] == pytest.approx(0.0, abs=1e-9)
    # by hand: MSE = 0, MSR = 2·var(t), MSC = n·2·1.5² → ICC = var(t) / (var(t) + 3²/2)
    v = np.var(t, ddof=1)
    assert a["icc"] == pytest.approx(v / (v + 4.5))


def test_icc_and_its_ci_from_the_anova_mean_squares_by_hand():
    """ICC(A,1) and McGraw & Wong's CI (Satterthwaite's v) from the two-way ANOVA, computed here."""
    rng = np.random.default_rng(7)
    n, k = 15, 2
    t = rng.normal(40, 10, n)
    p = 0.9 * t + 6 + rng.normal(0, 3, n)
    x = np.column_stack([t, p])
    g = x.mean()
    msr = k * ((x.mean(1) - g) ** 2).sum() / (n - 1)
    msc = n * ((x.mean(0) - g) ** 2).sum() / (k - 1)
    mse = ((x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + g) ** 2).sum() / ((n - 1) * (k - 1))
    icc = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    fj = msc / mse
    v = ((n - 1) * (k - 1) * (k * icc * fj + n * (1 + (k - 1) * icc) - k * icc) ** 2
         / ((n - 1) * k ** 2 * icc ** 2 * fj ** 2 + (n * (1 + (k - 1) * icc) - k * icc) ** 2))
    fu, fl = st.f.ppf(0.975, n - 1, v), st.f.ppf(0.975, v, n - 1)
    low = n * (msr - fu * mse) / (fu * (k * msc + (k * n - k - n) * mse) + n * msr)
    high = n * (fl * msr - mse) / (k * msc + (k * n - k - n) * mse + n * fl * msr)
    assert icc_2_1(t, p) == pytest.approx((icc, low, high), rel=1e-9)
    assert low < icc < high


def test_regression_matches_scipy_linregress():
    rng = np.random.default_rng(11)
    t = rng.uniform(10, 70, 30)
    p = 0.95 * t + 2 + rng.normal(0, 4, 30)
    a = agreement(t, p)
    lr = st.linregress(t, p)
    assert a["slope"] == pytest.approx(lr.slope) and a["intercept"] == pytest.approx(lr.intercept)
    assert a["r2"] == pytest.approx(lr.rvalue ** 2) and a["p"] == pytest.approx(lr.pvalue)
    resid = p - (lr.intercept + lr.slope * t)
    assert a["s"] == pytest.approx(math.sqrt((resid ** 2).sum() / 28))


def test_missing_values_are_counted_not_used():
    t = np.array([10.0, np.nan, 30.0, 40.0, 50.0])
    p = np.array([11.0, 20.0, np.nan, 41.0, 52.0])
    a = agreement(t, p)
    assert a["n"] == 3            # 10/11, 40/41, 50/52
    assert a["missing"] == 1      # reference 30 without a prediction; the NaN reference counts nowhere
    assert a["mae"] == pytest.approx(4 / 3) and a["bias"] == pytest.approx(4 / 3)


@pytest.mark.parametrize("t,p", [
    ([], []),
    ([np.nan, np.nan], [1.0, 2.0]),
    ([10.0, 20.0], [11.0, 19.0]),               # n < 3
    ([30.0, 30.0, 30.0, 30.0], [29.0, 31.0, 30.0, 32.0]),   # constant reference
    ([10.0, 20.0, 30.0], [25.0, 25.0, 25.0]),   # constant prediction
    ([30.0, 30.0, 30.0], [30.0, 30.0, 30.0]),   # all equal
])
def test_degenerate_input_gives_nan_not_an_error(t, p):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = agreement(np.array(t), np.array(p))
    assert set(a) == set(AGREEMENT_KEYS)
    n = a["n"]
    if n < 3 or np.ptp(np.asarray(t)[np.isfinite(t)]) == 0:
        assert nan(a["slope"]) and nan(a["r2"]) and nan(a["p"])
    if n < 3:
        assert nan(a["icc"])
    if n == 0:
        assert all(nan(a[k]) for k in AGREEMENT_KEYS if k not in ("n", "missing"))
    if p == [25.0, 25.0, 25.0]:
        assert a["slope"] == 0.0 and nan(a["r2"]) and nan(a["p"])


def _table():
    rows = [
        image_row("a", dice=0.8, iou=0.7, true={"TK": 30.0, "LL": 40.0, "SS": 35.0},
                  pred={"TK": 32.0, "LL": 41.0, "SS": 35.0}, frame="radiograph"),
        image_row("b", dice=0.9, iou=0.8, true={"TK": 40.0, "LL": 50.0, "SS": 30.0},
                  pred={"TK": 39.0, "LL": None, "SS": 33.0}, frame="image"),
        image_row("c", dice=0.7, iou=0.6, true={"TK": 50.0, "LL": 45.0, "SS": 40.0},
                  pred={"TK": 53.0, "LL": 44.0, "SS": 40.0}, frame="radiograph"),
        image_row("d", dice=float("nan"), iou=float("nan"), true={"TK": 20.0}, pred={"TK": 20.0}),
    ]
    return per_image_table(rows)


def test_summarize_schema_and_values():
    s = summarize(_table(), coco_segm_ap=0.415)
    text = json.dumps(s, allow_nan=False)            # JSON-safe: no NaN
    assert json.loads(text) == s
    assert {"n_images", "dice_mean", "dice_sd", "miou_mean", "miou_sd", "coco_segm_ap", "reference_hints"} | set(
        ANGLE_NAMES) == set(s)
    assert s["reference_hints"] == {}
    assert s["n_images"] == 4 and s["coco_segm_ap"] == 0.415
    assert s["dice_mean"] == pytest.approx(0.8) and s["dice_sd"] == pytest.approx(0.1)
    assert s["miou_mean"] == pytest.approx(0.7) and s["miou_sd"] == pytest.approx(0.1)
    for name in ANGLE_NAMES:
        assert SUMMARY_KEYS <= set(s[name])
    assert s["TK"]["n"] == 4 and s["TK"]["mae"] == pytest.approx((2 + 1 + 3 + 0) / 4)
    assert s["LL"]["n"] == 2 and s["LL"]["missing"] == 1 and s["LL"]["r2"] is None
    assert s["PT"]["n"] == 0 and s["PT"]["mae"] is None
    assert summarize(_table())["coco_segm_ap"] is None


def test_mean_sd():
    assert mean_sd([1.0, 2.0, 3.0, math.nan]) == (2.0, 1.0)
    m, s = mean_sd([0.5])
    assert m == 0.5 and math.isnan(s)
    assert all(math.isnan(v) for v in mean_sd([]))


def test_summarize_adds_the_named_and_every_mask_overlaps_when_the_table_has_them():
    rows = [image_row(name, dice=d, iou=d - 0.1, extra={"named_dice": n, "named_iou": n - 0.1,
                                                         "all_dice": d - 0.2, "all_iou": d - 0.3})
            for name, d, n in (("a", 0.8, 0.9), ("b", 0.7, 0.95), ("c", 0.9, float("nan")))]
    s = summarize(per_image_table(rows))
    assert s["dice_mean"] == pytest.approx(0.8)
    assert s["named_dice_mean"] == pytest.approx(0.925) and s["named_dice_sd"] == pytest.approx(0.05 / 2 ** 0.5)
    assert s["named_miou_mean"] == pytest.approx(0.825)
    assert s["all_dice_mean"] == pytest.approx(0.6) and s["all_miou_mean"] == pytest.approx(0.5)
    assert "all_dice_mean" not in summarize(per_image_table(rows[:1]).drop(columns=["all_dice", "all_iou"]))
    assert json.loads(json.dumps(s, allow_nan=False)) == s
