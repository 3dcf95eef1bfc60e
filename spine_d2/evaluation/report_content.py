"""What an evaluation report says, as a list of blocks (headings, text, tables, figures); degrees, %.

`build_blocks` turns per_image.csv's table and its summary into the report's content once; it is
rendered as Markdown and HTML by `spine_d2.evaluation.report`, which also writes the files.
Figures travel in their blocks as encoded bytes (`spine_d2.evaluation.figures`). `headline` gives
the few sentences a console prints.
"""
from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd

from spine_d2.angles import ANGLE_NAMES
from spine_d2.evaluation.agreement import mean_sd
from spine_d2.evaluation.figures import agreement_figure, overlap_figure, overlay_jpeg
from spine_d2.evaluation.formatting import DASH, fmt, p_value, plus_minus
from spine_d2.evaluation.level_naming import MIN_SHARE
from spine_d2.evaluation.per_image import frames_used, pairs
from spine_d2.evaluation.study import REFERENCE_STUDY, StudyResults
from spine_d2.levels import LEVEL_INDEX
from spine_d2.measure.instances import SURE_SCORE

#: Plain-words names of the parameters, for captions and tables.
PARAMETER_NAMES: dict[str, str] = {
    "TK": "thoracic kyphosis (T5–T12)",
    "LL": "lumbar lordosis (L1–L5)",
    "LL_S1": "lumbar lordosis (L1–S1)",
    "SS": "sacral slope",
    "PT": "pelvic tilt",
    "PI": "pelvic incidence",
}
EXAMPLES = ("best", "median", "worst")
GLOSSARY = [
    ("Dice, IoU", "overlap of the automatic and the hand-drawn outlines (100 % = identical)."),
    ("MAE", "mean absolute error: the average size of the error, ignoring its direction (°)."),
    ("Bias", "the average of automatic − reference: positive means the method reads too high (°)."),
    ("Limits of agreement", "bias ± 1.96 SD of the differences: 95 % of single-image differences "
                            "are expected in this range (°)."),
    ("R²", "how much of the variation between patients the automatic values follow (1 = all)."),
    ("p", "the probability of a slope this far from 0 if the method were unrelated to the reference."),
    ("Slope", "change of the automatic value per degree of the reference (1, i.e. 45°, is ideal)."),
    ("S", "standard error of the estimate: typical distance of a value from the fitted line (°)."),
    ("ICC(2,1)", "intraclass correlation for absolute agreement of single measurements (1 = "
                 "perfect; above 0.9 is usually called excellent)."),
]


@dataclass
class Block:
    kind: str                     # h1 h2 h3 p table figure pre
    text: str = ""
    headers: Sequence[str] = ()
    rows: Sequence[Sequence[str]] = ()
    path: str = ""                # figure: file name under figures/
    data: bytes = b""             # figure: encoded image
    mime: str = "image/png"


def _table(caption: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[Block]:
    return [Block("p", f"**{caption}**"), Block("table", headers=headers, rows=rows)]


def choose_examples(per_image: pd.DataFrame, by: str = "dice") -> dict[str, str]:
    """Images with the highest, the median and the lowest `by` → {'best'|'median'|'worst': image}.
    The median image is the one closest to the median value; images without a value are skipped."""
    if by not in per_image.columns:
        return {}
    v = pd.to_numeric(per_image[by], errors="coerce")
    ok = per_image[v.notna()].assign(_v=v[v.notna()]).sort_values(["_v", "image"], kind="stable")
    if ok.empty:
        return {}
    med = float(ok["_v"].median())
    mid = (ok["_v"] - med).abs().to_numpy().argmin()
    return {"best": str(ok["image"].iloc[-1]), "median": str(ok["image"].iloc[mid]),
            "worst": str(ok["image"].iloc[0])}


#: The overlaps beside the headline Dice (agreement.OTHER_OVERLAPS): (the table's words, the
#: headline's words).
OVERLAP_WORDS: dict[str, tuple[str, str]] = {
    "all": ("every mask detected", "Every mask detected, whatever its score"),
    "named": ("the vertebrae named",
              "The vertebrae named with a level (what the Labelme pre-annotation writes)")}


def headline(summary: Mapping[str, Any], study: StudyResults = REFERENCE_STUDY) -> list[str]:
    """Short sentences with the headline numbers beside the study's (for the report and consoles)."""
    out = [f"Dice {plus_minus(summary.get('dice_mean'), summary.get('dice_sd'), scale=100, unit=' %')} "
           f"({study.name}: {plus_minus(*study.dice_pct, unit=' %')}); "
           f"mIoU {plus_minus(summary.get('miou_mean'), summary.get('miou_sd'), scale=100, unit=' %')} "
           f"({study.name}: {plus_minus(*study.miou_pct, unit=' %')})."]
    if summary.get("all_dice_mean") is not None:
        out[0] = f"Of the masks the model is sure of (score ≥ {SURE_SCORE:g}): " + out[0]
    for o, (_, words) in OVERLAP_WORDS.items():
        if summary.get(f"{o}_dice_mean") is not None:
            out.append(f"{words}: Dice "
                       f"{plus_minus(summary.get(f'{o}_dice_mean'), summary.get(f'{o}_dice_sd'), scale=100, unit=' %')}, "
                       f"mIoU {plus_minus(summary.get(f'{o}_miou_mean'), summary.get(f'{o}_miou_sd'), scale=100, unit=' %')}.")
    named, wrong = summary.get("levels_named"), summary.get("levels_misnamed") or 0
    if named:
        bad = summary.get("images_misnamed", 0)
        out.append(f"Levels named as annotated: {100 * (named - wrong) / named:.1f} % of {named} "
                   f"({bad} image{'' if bad == 1 else 's'} with a level misnamed).")
    maes = []
    for n in ANGLE_NAMES:
        s = summary.get(n) or {}
        if s.get("mae") is None:
            continue
        ref = f" ({study.name}: {study.mae_deg[n]:.1f}°)" if n in study.mae_deg else ""
        maes.append(f"{n} {s['mae']:.1f}°{ref}")
    if maes:
        out.append("Mean absolute error: " + ", ".join(maes) + ".")
    for n, hint in (summary.get("reference_hints") or {}).items():
        out.append(f"{n}: the reference values may follow another convention than ours: {hint}.")
    return out


# ----------------------------------------------------------------------------- sections
def _overlap_rows(summary, study) -> list[list[str]]:
    ap, box_ap = summary.get("coco_segm_ap"), summary.get("coco_bbox_ap")  # fractions 0–1
    rows = [["Dice (%)", plus_minus(summary.get("dice_mean"), summary.get("dice_sd"), scale=100),
             plus_minus(*study.dice_pct)],
            ["IoU (%) (mIoU: mean over images)",
             plus_minus(summary.get("miou_mean"), summary.get("miou_sd"), scale=100), plus_minus(*study.miou_pct)],
            ["COCO mask AP (0–100)", fmt(None if ap is None else 100 * ap), DASH]]
    for o, (words, _) in reversed(OVERLAP_WORDS.items()):
        if f"{o}_dice_mean" in summary:
            rows[2:2] = [[f"Dice (%) of {words}",
                          plus_minus(summary.get(f"{o}_dice_mean"), summary.get(f"{o}_dice_sd"), scale=100), DASH],
                         [f"IoU (%) of {words}",
                          plus_minus(summary.get(f"{o}_miou_mean"), summary.get(f"{o}_miou_sd"), scale=100), DASH]]
    if "coco_bbox_ap" in summary:
        rows.append(["COCO box AP (0–100)", fmt(None if box_ap is None else 100 * box_ap), DASH])
    return rows


def _per_structure_rows(per_image) -> list[list[str]]:
    """Dice and IoU per class and level column (dice_<name>), classes first, levels in order."""
    extra = sorted((c for c in per_image.columns if c.startswith("dice_")),
                   key=lambda c: (c[5:] in LEVEL_INDEX, LEVEL_INDEX.get(c[5:], 0), c))
    rows = []
    for c in extra:
        name = c[len("dice_"):]
        d = pd.to_numeric(per_image[c], errors="coerce")
        i = pd.to_numeric(per_image.get(f"iou_{name}", pd.Series(dtype=float)), errors="coerce")
        rows.append([name, str(int(d.notna().sum())), plus_minus(*mean_sd(d), scale=100),
                     plus_minus(*mean_sd(i), scale=100)])
    return rows


def _segmentation_section(per_image, summary, study) -> list[Block]:
    b = [Block("h2", "Segmentation: how well the vertebrae were outlined")]
    which = (f"The first rows score the masks the model is sure of (score ≥ {SURE_SCORE:g}, as "
             "detectron2 draws them), the rows 'of every mask detected' every one it kept (down to "
             "`test.score_thresh`, 0.05 by default, for COCO's AP)" if "all_dice_mean" in summary
             else "The first rows score every mask the model found")
    b.append(Block("p", "Dice and IoU compare, per image, the area the method outlined as vertebrae "
                        "with the area outlined by hand (all vertebrae together). 100 % means the "
                        "outlines coincide exactly; 0 % means they do not overlap at all. "
                        f"{which}; the rows 'of the vertebrae named' "
                        "score only those the measurement named with a level (what the Labelme "
                        "pre-annotation writes), without the strays it removed or left unnamed."))
    b += _table(f"Segmentation overlap, mean ± SD over {summary['n_images']} images",
                ["measure", "this run", study.name], _overlap_rows(summary, study))
    if per_image["dice"].notna().any():
        b.append(Block("figure", "How Dice and IoU are spread over the images: each bar counts the "
                                 "images in a range of values; the dark blue line is this run's "
                                 f"mean, the orange dashed line and band the {study.name}'s mean ± SD.",
                       path="overlap.png", data=overlap_figure(per_image, study)))
    rows = _per_structure_rows(per_image)
    if rows:
        b += _table("Overlap per structure (class, then vertebral level), mean ± SD over the "
                    "images where it occurs; a level the method missed counts as 0 %",
                    ["structure", "images", "Dice (%)", "IoU (%)"], rows)
    return b


def _naming_section(per_image, summary) -> list[Block]:
    """The levels named against the annotation's (evaluation.level_naming), where the table has them."""
    named, wrong = summary.get("levels_named"), summary.get("levels_misnamed")
    if not named:
        return []
    b = [Block("h2", "Level names: were the vertebrae named right?")]
    b.append(Block("p", f"Each vertebra the measurement named is checked against the annotation: it is the "
                        f"annotated level whose outline covers most of it (at least {100 * MIN_SHARE:.0f} % of it). "
                        f"{named - wrong} of {named} named levels ({100 * (named - wrong) / named:.1f} %) "
                        f"carry their annotated name; {summary.get('images_misnamed', 0)} of "
                        f"{summary.get('images_named', 0)} images have a level misnamed. A level missed or "
                        "counted twice renames every level above it: such an image's outlines (its Dice) can "
                        "be right and its angles far off."))
    bad = per_image[pd.to_numeric(per_image.get("levels_misnamed"), errors="coerce").fillna(0) > 0]
    if len(bad):
        rows = [[r["image"], str(r.get("misnamed", "") or DASH), _errors(r)] for _, r in bad.iterrows()]
        b += _table("Images with a level misnamed: the name given on the annotation's level, top to bottom; "
                    "error automatic − reference (°)", ["image", "misnamed", "error (°)"], rows)
    return b


def _icc_text(s) -> str:
    if s["icc"] is None:
        return DASH
    ci = "" if s.get("icc_ci_low") is None else f" ({s['icc_ci_low']:.2f}–{s['icc_ci_high']:.2f})"
    return f"{s['icc']:.2f}{ci}"


def _error_table(summary, study) -> list[Block]:
    """The study's Table 1: MAE ± SD, with bias, limits of agreement and ICC."""
    rows = []
    for n in ANGLE_NAMES:
        s = summary[n]
        loa = DASH if s["loa_low"] is None else f"{s['loa_low']:.1f}° to {s['loa_high']:.1f}°"
        rows.append([f"{n} — {PARAMETER_NAMES[n]}", str(s["n"]), str(s["missing"]),
                     plus_minus(s["mae"], s["sd"], unit="°"), fmt(study.mae_deg.get(n), unit="°"),
                     fmt(s["bias"], unit="°"), loa, _icc_text(s)])
    return _table("Table 1. Error of the automatic angles: mean absolute error ± SD (as the study's "
                  "Table 1), with bias, 95 % limits of agreement and ICC(2,1) (95 % CI)",
                  ["parameter", "images", "not measured", "MAE ± SD", f"{study.name} MAE",
                   "bias", "limits of agreement", "ICC (95 % CI)"], rows)


def _regression_table(summary, study) -> list[Block]:
    """The study's Table 2: regression of the automatic on the reference angle."""
    rows = []
    for n in ANGLE_NAMES:
        s, ours = summary[n], n in study.parameters
        rows.append([n, fmt(s["r2"], 2), p_value(s["p"]), fmt(s.get("slope"), 2),
                     fmt(s["slope_deg"], unit="°"), fmt(s["s"], unit="°"), fmt(s.get("sd_diff"), unit="°"),
                     study.range_text("r2_range") if ours else DASH,
                     study.range_text("slope_deg_range", "°") if ours else DASH,
                     study.range_text("s_deg_range", "°") if ours else DASH])
    return _table("Table 2. Regression of the automatic on the reference angle (as the study's "
                  "Table 2); the study's values are ranges over its three parameters (TK, LL, SS)",
                  ["parameter", "R²", "p", "slope", "slope (°)", "S", "SD of differences",
                   f"{study.name} R²", f"{study.name} slope (°)", f"{study.name} S"], rows)


def _angle_tables(summary, study) -> list[Block]:
    b = [Block("h2", "Angles: automatic vs reference")]
    b.append(Block("p", "The reference values are those in the dataset's measurements (e.g. a "
                        "specialist's). All angles are in degrees (°)."))
    b += _error_table(summary, study)
    b.append(Block("p", "*Images*: images with both a reference and an automatic value. *Not "
                        "measured*: images with a reference value where the method gave none (the "
                        "reasons are in the per-image table). The study reported no SD for its MAE."))
    b += _regression_table(summary, study)
    b.append(Block("p", "*S* is the standard error of the estimate: the typical distance (°) of a "
                        "point from the fitted line, √(Σ residual² / (n − 2)). *SD of differences* "
                        "is the spread of automatic − reference around the bias. A slope of 1 "
                        "(45°) means the method follows the reference one to one."))
    return b


def _figures_section(per_image, summary) -> list[Block]:
    b = [Block("h2", "Figures per parameter")]
    b.append(Block("p", "Left: each dot is one image, the reference angle across and the automatic "
                        "angle up; dots on the grey dashed line would mean perfect agreement, the "
                        "red line is the best straight-line fit. Right (Bland–Altman): each dot is "
                        "one image, the average of the two angles across and their difference "
                        "(automatic − reference) up; the solid red line is the average difference "
                        "(bias) and 95 % of differences are expected between the dashed lines."))
    for n in ANGLE_NAMES:
        s = summary[n]
        b.append(Block("h3", f"{n} — {PARAMETER_NAMES[n]}"))
        if s["n"] < 2:
            b.append(Block("p", f"No reference values for {n} in these data." if s["n"] == 0
                           and not per_image[f"{n}_true"].notna().any() else
                           f"Too few images with both values to plot ({s['n']})."))
            continue
        cap = (f"{n}: {s['n']} images. On average the automatic value was "
               f"{abs(s['bias']):.1f}° {'higher' if s['bias'] >= 0 else 'lower'} than the reference "
               f"(bias); for 95 % of images the difference is expected between "
               f"{fmt(s['loa_low'])}° and {fmt(s['loa_high'])}°. The typical size of the error (MAE) "
               f"is {s['mae']:.1f}°.")
        b.append(Block("figure", cap, path=f"agreement_{n}.png",
                       data=agreement_figure(*pairs(per_image, n), n, s)))
    return b


def _examples_section(per_image, overlays) -> list[Block]:
    b = [Block("h2", "Example images: best, median and worst outline")]
    if not overlays:
        b.append(Block("p", "No overlays were supplied to this report."))
        return b
    b.append(Block("p", "The method's outlines drawn on the photo, for the images with the "
                        "highest, the middle and the lowest Dice."))
    chosen = choose_examples(per_image)
    keys = [k for k in EXAMPLES if k in overlays] + [k for k in overlays if k not in EXAMPLES]
    for k in keys:
        img = chosen.get(k)
        dice = ""
        if img is not None:
            d = per_image.loc[per_image["image"] == img, "dice"]
            dice = (f" (image {img}, Dice {float(d.iloc[0]) * 100:.1f} %)" if len(d)
                    else f" (image {img})")
        b.append(Block("figure", f"{k.capitalize()}{dice}.", path=f"overlay_{k}.jpg",
                       data=overlay_jpeg(overlays[k]), mime="image/jpeg"))
    return b


def _frame_counts(per_image) -> list[Block]:
    """How many images had each parameter measured in each frame."""
    rows, names = [], set()
    for n in ANGLE_NAMES:
        measured = per_image[f"{n}_pred"].notna()
        counts = per_image.loc[measured, f"{n}_frame"].replace("", "not recorded").value_counts()
        if len(counts):
            rows.append((n, dict(counts)))
            names |= set(counts.index)
    if not rows:
        return []
    cols = sorted(names, key=lambda f: (f == "not recorded", f))
    return _table("Frame used: number of images per parameter (images with an automatic value)",
                  ["parameter"] + cols, [[n] + [str(c.get(f, 0)) for f in cols] for n, c in rows])


def _errors(r) -> str:
    """One image's errors, automatic − reference (°), per parameter with a reference."""
    errs = []
    for n in ANGLE_NAMES:
        t, p = r[f"{n}_true"], r[f"{n}_pred"]
        if math.isfinite(t) and math.isfinite(p):
            errs.append(f"{n} {p - t:+.1f}")
        elif math.isfinite(t):
            errs.append(f"{n} not measured")
    return ", ".join(errs) or DASH


def _image_row(r, frame: str) -> list[str]:
    by_note: dict[str, list[str]] = {}  # parameters with the same note share one entry (often all six)
    for n in ANGLE_NAMES:
        if r[f"{n}_note"]:
            by_note.setdefault(r[f"{n}_note"], []).append(n)
    notes = "; ".join(f"{'/'.join(names)}: {note}" for note, names in by_note.items())
    return [r["image"], fmt(r["dice"] * 100), fmt(r["iou"] * 100), frame or DASH, _errors(r), notes or DASH]


def _per_image_section(per_image) -> list[Block]:
    b = [Block("h2", "Per-image results and the frame used")]
    b.append(Block("p", "Frame: an angle is measured in the *radiograph* frame when the photo's "
                        "tilt could be corrected, otherwise in the *image* frame (the photo as "
                        "taken). Cobb angles (TK, LL, LL_S1) do not depend on the frame; SS, PT and "
                        "PI measured in the image frame include the photo's tilt."))
    b += _frame_counts(per_image)
    rows = [_image_row(r, fr) for (_, r), fr in zip(per_image.iterrows(), frames_used(per_image))]
    b += _table("Per image: Dice and IoU (%), frame, error automatic − reference (°) per "
                "parameter, notes", ["image", "Dice", "IoU", "frame", "error (°)", "notes"], rows)
    return b


def build_blocks(per_image: pd.DataFrame, summary: Mapping[str, Any], *, overlays=None, config_text=None,
                 code_version=None, title="Evaluation report", study: StudyResults = REFERENCE_STUDY,
                 source: str | None = None, trained_on: str | None = None) -> list[Block]:
    """The report's content, figures included (as bytes); `trained_on`: what the model learnt from."""
    b = [Block("h1", title)]
    if trained_on:
        b.append(Block("p", f"**The model:** {trained_on}."))
    b.append(Block("p", f"{summary['n_images']} images. " + " ".join(headline(summary, study))
                   + " Angles are in degrees; the terms are explained at the end "
                     "(*What the numbers mean*)."))
    b += _segmentation_section(per_image, summary, study)
    b += _naming_section(per_image, summary)
    b += _angle_tables(summary, study)
    b += _figures_section(per_image, summary)
    b += _examples_section(per_image, overlays or {})
    b += _per_image_section(per_image)
    b.append(Block("h2", "What the numbers mean"))
    b += [Block("table", headers=["term", "meaning"], rows=GLOSSARY)]
    b.append(Block("h2", "Provenance: configuration and code version"))
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    b.append(Block("p", f"Written {when}. Code: {code_version or 'not recorded'}."
                   + (f" Rendered from {source}." if source else "")
                   + " Every number here can be recomputed from per_image.csv."))
    b.append(Block("pre", config_text.strip() if config_text else "(configuration not recorded)"))
    return b
