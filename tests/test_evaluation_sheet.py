"""The specialists' sheet against the angles of its own annotations: agreement, far films, conventions."""
import math

import numpy as np

from spine_d2.evaluation.agreement import summarize
from spine_d2.evaluation.per_image import per_image_table
from spine_d2.evaluation.report_content import headline
from spine_d2.evaluation.sheet import FAR_DEG, HINT, MIN_FILMS, check_sheet, format_checks

NAN = math.nan


def films(n=8, seed=0):
    """The annotations' angles of n films (degrees), as tools/measure.py gives them."""
    rng = np.random.default_rng(seed)
    out = {}
    for k in range(n):
        ll = float(rng.uniform(30, 60))
        ss = float(rng.uniform(25, 50))
        out[f"p{k:02d}"] = {"TK": float(rng.uniform(20, 55)), "LL": ll, "LL_S1": ll + float(rng.uniform(10, 20)),
                            "SS": ss, "PT": float(rng.uniform(5, 25)), "PI": NAN}
    return out


def as_read(geometry, seed=1, sd=1.0):
    """A specialist's sheet of the same films: each value within a reader's scatter."""
    rng = np.random.default_rng(seed)
    return {im: {a: v + float(rng.normal(0, sd)) for a, v in row.items()} for im, row in geometry.items()}


def by_angle(checks):
    return {c.angle: c for c in checks}


def test_a_sheet_read_alike_agrees_and_names_the_films_far_apart():
    geo = films()
    sheet = as_read(geo)
    sheet["p03"]["SS"] = geo["p03"]["SS"] + 14.0              # a typing slip
    sheet["p05"]["PT"] = NAN                                   # not measured
    checks = by_angle(check_sheet(sheet, geo))
    assert set(checks) == {"TK", "LL", "LL_S1", "SS", "PT"}   # PI: in no row of the sheet
    assert checks["TK"].n == 8 and checks["TK"].median_abs < 2.0 and not checks["TK"].far
    assert checks["PT"].n == 7
    assert [im for im, _ in checks["SS"].far] == ["p03"] and checks["SS"].far[0][1] > FAR_DEG
    assert not any(c.hint for c in checks.values())
    lines = format_checks(list(checks.values()))
    ss = [line for line in lines if line.startswith("SS: median |sheet − annotations|")]
    assert len(ss) == 1 and "1 beyond 10°: p03 (+" in ss[0]
    assert not any(HINT in line for line in lines)


def test_a_column_with_the_sign_reversed_or_lordosis_to_s1_is_named():
    geo = films()
    sheet = as_read(geo)
    for im, row in sheet.items():
        row["TK"] = -row["TK"]                                 # kyphosis written negative
        row["LL"] = geo[im]["LL_S1"] + 0.5                     # the sheet's LL runs from L1 to S1
    checks = by_angle(check_sheet(sheet, geo))
    assert "sign reversed" in checks["TK"].hint and "negate the column" in checks["TK"].hint
    assert "L1–S1" in checks["LL"].hint and checks["LL"].hint.endswith("rename the column LL_S1")
    assert not checks["SS"].hint and not checks["LL_S1"].hint
    lines = format_checks(list(checks.values()))
    assert sum(HINT in line for line in lines) == 2


def test_too_few_films_or_none_paired_judge_no_column():
    geo = films(MIN_FILMS - 1)
    sheet = {im: {**row, "TK": -row["TK"]} for im, row in geo.items()}
    assert not by_angle(check_sheet(sheet, geo))["TK"].hint   # four films: listed, not judged
    alone = {"q1": {"TK": 30.0}}
    (only,) = check_sheet(alone, geo)
    assert (only.angle, only.n, math.isnan(only.median_abs)) == ("TK", 0, True)
    assert format_checks([only]) == ["TK: no film with both the sheet's value and one from the annotations"]


def test_an_evaluation_whose_reference_is_negated_says_so_in_its_summary_and_headline():
    geo = films()
    rows = [{"image": im, "dice": 0.9, "iou": 0.8, **{f"{a}_true": v for a, v in read.items()},
             **{f"{a}_pred": v for a, v in geo[im].items()}} for im, read in as_read(geo).items()]
    for r in rows:
        r["LL_true"] = -r["LL_true"]                          # the sheet's lordosis negative
    s = summarize(per_image_table(rows))
    assert list(s["reference_hints"]) == ["LL"] and "sign reversed" in s["reference_hints"]["LL"]
    assert s["LL"]["mae"] > 50
    assert any(line.startswith("LL: the reference values may follow another convention than ours: its values are "
                               "the automatic angles' with the sign reversed") for line in headline(s))
