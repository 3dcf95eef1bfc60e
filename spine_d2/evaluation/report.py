"""Writes an evaluation report (per_image.csv, summary.json, report.md/.html, figures); degrees, Dice/IoU %.

The only module of spine_d2 that draws figures (matplotlib Agg through `Figure`, seaborn styling).
The report's content is built once as a list of blocks (headings, paragraphs, tables, figures,
preformatted text) and rendered twice: Markdown (figures as files under figures/) and one
self-contained HTML file (figures and overlays inlined as base64).

Nothing already on disk is overwritten: `write_report` writes into `out_dir` when it is absent or
empty, otherwise into the first free `out_dir_2`, `out_dir_3`, … and returns the directory used.
Next to the report it keeps what a later re-rendering needs (`config.yaml`, `code_version.txt`), so
`tools/report.py` can rebuild the whole report from per_image.csv alone.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from spine_d2.angles import ANGLE_NAMES
from spine_d2.data.images import read_image
from spine_d2.levels import LEVEL_INDEX
from spine_d2.evaluation.agreement import complete_pairs, summarize
from spine_d2.evaluation.per_image import frames_used, pairs
from spine_d2.evaluation.segmentation import mean_sd
from spine_d2.evaluation.study import REFERENCE_STUDY, StudyResults

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
OVERLAY_MAX_SIDE = 1200  # px; larger overlays are shrunk to keep report.html small
DASH = "—"


# ----------------------------------------------------------------------------- helpers
def new_report_dir(path: str | Path) -> Path:
    """`path` if it is absent or an empty directory, else the first free `path_2`, `path_3`, …"""
    path = Path(path)
    candidate, i = path, 1
    while candidate.exists() and (not candidate.is_dir() or any(candidate.iterdir())):
        i += 1
        candidate = path.with_name(f"{path.name}_{i}")
    return candidate


def code_version(repo: str | Path | None = None) -> str:
    """'spine_d2 <version>, git <describe>' of the code in `repo` (default: this package's)."""
    import spine_d2

    repo = Path(repo) if repo else Path(spine_d2.__file__).resolve().parents[1]
    text = f"spine_d2 {spine_d2.__version__}"
    try:
        out = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty", "--tags"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            text += f", git {out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return text


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


def _f(x: Any, digits: int = 1, unit: str = "") -> str:
    """A number for a table; '—' for None/NaN."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return DASH
    return f"{x:.{digits}f}{unit}"


def _pm(m: Any, s: Any, digits: int = 1, unit: str = "", scale: float = 1.0) -> str:
    if m is None or (isinstance(m, float) and not math.isfinite(m)):
        return DASH
    bad = s is None or (isinstance(s, float) and not math.isfinite(s))
    sd = "" if bad else f" ± {s * scale:.{digits}f}"
    return f"{m * scale:.{digits}f}{sd}{unit}"


def _p(p: Any) -> str:
    if p is None or (isinstance(p, float) and not math.isfinite(p)):
        return DASH
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


# ----------------------------------------------------------------------------- content model
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


# ----------------------------------------------------------------------------- figures
def _save(fig: Figure, path: Path) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    data = buf.getvalue()
    path.write_bytes(data)
    return data


def _style():
    import seaborn as sns

    return sns.axes_style("whitegrid")


def agreement_figure(true, pred, name: str, stats: Mapping[str, Any], path: Path) -> bytes:
    """Regression (left) and Bland–Altman (right) plot of one parameter → PNG bytes (also at path)."""
    import seaborn as sns

    t, p, _ = complete_pairs(true, pred)
    with _style():
        fig = Figure(figsize=(10, 4.4))
        ax1, ax2 = fig.subplots(1, 2)
        lo = float(min(t.min(), p.min())) - 3
        hi = float(max(t.max(), p.max())) + 3
        ax1.plot([lo, hi], [lo, hi], ls="--", c="0.5", lw=1, label="perfect agreement")
        if stats.get("slope") is not None:
            xs = np.array([lo, hi])
            ax1.plot(xs, stats["intercept"] + stats["slope"] * xs, c="C3", lw=1.5,
                     label=f"fitted line (slope {_f(stats.get('slope_deg'))}°)")
        sns.scatterplot(x=t, y=p, ax=ax1, s=28, color="C0", edgecolor="white", linewidth=0.5)
        ax1.set(xlim=(lo, hi), ylim=(lo, hi), aspect="equal",
                xlabel=f"reference {name} (°)", ylabel=f"automatic {name} (°)",
                title=f"{name}: automatic vs reference")
        ax1.text(0.03, 0.97, f"n = {len(t)}\nR² = {_f(stats.get('r2'), 2)}\nS = {_f(stats.get('s'))}°",
                 transform=ax1.transAxes, va="top", fontsize=9,
                 bbox=dict(boxstyle="round", fc="white", ec="0.8"))
        ax1.legend(loc="lower right", fontsize=8)
        mean, diff = (t + p) / 2, p - t
        sns.scatterplot(x=mean, y=diff, ax=ax2, s=28, color="C0", edgecolor="white", linewidth=0.5)
        ax2.axhline(0, c="0.5", lw=1, ls=":")
        for key, ls, label in (("bias", "-", "bias"), ("loa_low", "--", "lower limit"),
                               ("loa_high", "--", "upper limit")):
            v = stats.get(key)
            if v is not None:
                ax2.axhline(v, c="C3", ls=ls, lw=1.3)
                ax2.annotate(f"{label} {v:+.1f}°", xy=(1, v), xycoords=("axes fraction", "data"),
                             xytext=(-4, 3), textcoords="offset points", ha="right", fontsize=8,
                             color="C3")
        span = max(float(np.abs(diff).max()), abs(stats.get("loa_low") or 0),
                   abs(stats.get("loa_high") or 0), 1.0) * 1.25
        ax2.set(ylim=(-span, span), xlabel=f"average of reference and automatic {name} (°)",
                ylabel="automatic − reference (°)", title=f"{name}: Bland–Altman")
        fig.tight_layout()
        return _save(fig, path)


def overlap_figure(per_image: pd.DataFrame, path: Path, study: StudyResults) -> bytes:
    """Distribution of per-image Dice and IoU (%) beside the study's mean ± SD → PNG bytes."""
    import seaborn as sns

    with _style():
        fig = Figure(figsize=(10, 3.6))
        axes = fig.subplots(1, 2)
        for ax, col, label, (sm, ss) in ((axes[0], "dice", "Dice", study.dice_pct),
                                         (axes[1], "iou", "IoU", study.miou_pct)):
            v = pd.to_numeric(per_image[col], errors="coerce").dropna().to_numpy() * 100
            ax.axvspan(sm - ss, sm + ss, color="C1", alpha=0.15, zorder=0)
            if len(v):
                sns.histplot(x=v, ax=ax, bins=min(20, max(5, len(v) // 2)), color="#9bbbdc",
                             zorder=1)
                ax.axvline(v.mean(), c="#173f73", lw=2.2, zorder=3,
                           label=f"this run: mean {v.mean():.1f} %")
            ax.axvline(sm, c="C1", lw=2, ls="--", zorder=3, label=f"{study.name}: {sm} ± {ss} %")
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylim(top=ax.get_ylim()[1] * 1.3)  # room for the legend
            ax.set(xlabel=f"{label} per image (%)", ylabel="number of images", title=label)
            ax.legend(fontsize=8, loc="upper left")
        fig.tight_layout()
        return _save(fig, path)


def overlay_jpeg(image: Any) -> bytes:
    """An overlay as the report's JPEG bytes (long side at most OVERLAY_MAX_SIDE): JPEG bytes are
    taken as they are (e.g. made earlier by this function); a file path or a BGR uint8 H×W×3 array
    (as OpenCV and `spine_d2.measure.overlay.draw_overlay` give) is shrunk to fit and encoded."""
    if isinstance(image, (bytes, bytearray)):
        return bytes(image)
    if isinstance(image, (str, Path)):
        arr = read_image(image)  # ImageReadError (a ValueError) naming the file
    else:
        arr = np.asarray(image)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        if arr.dtype != np.uint8:
            arr = np.clip(arr, 0, 255).astype(np.uint8)
        arr = np.ascontiguousarray(arr[..., :3])
    scale = OVERLAY_MAX_SIDE / max(arr.shape[:2])
    if scale < 1:
        arr = cv2.resize(arr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", arr, [cv2.IMWRITE_JPEG_QUALITY, 88])
    return buf.tobytes()


def _encode_overlay(image: Any, path: Path) -> tuple[bytes, str]:
    """`overlay_jpeg(image)`, also written to `path`."""
    data = overlay_jpeg(image)
    path.write_bytes(data)
    return data, "image/jpeg"


# ----------------------------------------------------------------------------- sections
def _segmentation_section(per_image, summary, study, fig_dir) -> list[Block]:
    b = [Block("h2", "Segmentation: how well the vertebrae were outlined")]
    b.append(Block("p", "Dice and IoU compare, per image, the area the method outlined as vertebrae "
                        "with the area outlined by hand (all vertebrae together). 100 % means the "
                        "outlines coincide exactly; 0 % means they do not overlap at all."))
    ap, box_ap = summary.get("coco_segm_ap"), summary.get("coco_bbox_ap")  # fractions 0–1
    rows = [["Dice (%)", _pm(summary.get("dice_mean"), summary.get("dice_sd"), scale=100),
             _pm(*study.dice_pct)],
            ["IoU (%) (mIoU: mean over images)", _pm(summary.get("miou_mean"), summary.get("miou_sd"),
                                                   scale=100), _pm(*study.miou_pct)],
            ["COCO mask AP (0–100)", _f(None if ap is None else 100 * ap), DASH]]
    if "coco_bbox_ap" in summary:
        rows.append(["COCO box AP (0–100)", _f(None if box_ap is None else 100 * box_ap), DASH])
    b += _table(f"Segmentation overlap, mean ± SD over {summary['n_images']} images",
                ["measure", "this run", study.name], rows)
    if per_image["dice"].notna().any():
        data = overlap_figure(per_image, fig_dir / "overlap.png", study)
        b.append(Block("figure", "How Dice and IoU are spread over the images: each bar counts the "
                                 "images in a range of values; the dark blue line is this run's "
                                 f"mean, the orange dashed line and band the {study.name}'s mean ± SD.",
                       path="overlap.png", data=data))
    extra = sorted((c for c in per_image.columns if c.startswith("dice_")),
                   key=lambda c: (c[5:] in LEVEL_INDEX, LEVEL_INDEX.get(c[5:], 0), c))
    if extra:
        rows = []
        for c in extra:
            name = c[len("dice_"):]
            d = pd.to_numeric(per_image[c], errors="coerce")
            i = pd.to_numeric(per_image.get(f"iou_{name}", pd.Series(dtype=float)), errors="coerce")
            rows.append([name, str(int(d.notna().sum())), _pm(*mean_sd(d), scale=100),
                         _pm(*mean_sd(i), scale=100)])
        b += _table("Overlap per structure (class, then vertebral level), mean ± SD over the "
                    "images where it occurs; a level the method missed counts as 0 %",
                    ["structure", "images", "Dice (%)", "IoU (%)"], rows)
    return b


def _study_mae(study: StudyResults, name: str) -> str:
    v = study.mae_deg.get(name)
    return DASH if v is None else f"{v:.1f}°"


def _angle_tables(summary, study) -> list[Block]:
    b = [Block("h2", "Angles: automatic vs reference")]
    b.append(Block("p", "The reference values are those in the dataset's measurements (e.g. a "
                        "specialist's). All angles are in degrees (°)."))
    rows1 = []
    for n in ANGLE_NAMES:
        s = summary[n]
        icc = DASH if s["icc"] is None else (
            f"{s['icc']:.2f}" + ("" if s.get("icc_ci_low") is None
                                 else f" ({s['icc_ci_low']:.2f}–{s['icc_ci_high']:.2f})"))
        rows1.append([f"{n} — {PARAMETER_NAMES[n]}", str(s["n"]), str(s["missing"]),
                      _pm(s["mae"], s["sd"], unit="°"), _study_mae(study, n),
                      _f(s["bias"], unit="°"),
                      DASH if s["loa_low"] is None else f"{s['loa_low']:.1f}° to {s['loa_high']:.1f}°",
                      icc])
    b += _table("Table 1. Error of the automatic angles: mean absolute error ± SD (as the study's "
                "Table 1), with bias, 95 % limits of agreement and ICC(2,1) (95 % CI)",
                ["parameter", "images", "not measured", "MAE ± SD", f"{study.name} MAE",
                 "bias", "limits of agreement", "ICC (95 % CI)"], rows1)
    b.append(Block("p", "*Images*: images with both a reference and an automatic value. *Not "
                        "measured*: images with a reference value where the method gave none (the "
                        "reasons are in the per-image table). The study reported no SD for its MAE."))
    rows2 = []
    for n in ANGLE_NAMES:
        s = summary[n]
        in_study = n in study.parameters
        rows2.append([n, _f(s["r2"], 2), _p(s["p"]), _f(s.get("slope"), 2),
                      _f(s["slope_deg"], unit="°"), _f(s["s"], unit="°"), _f(s.get("sd_diff"), unit="°"),
                      study.range_text("r2_range") if in_study else DASH,
                      study.range_text("slope_deg_range", "°") if in_study else DASH,
                      study.range_text("s_deg_range", "°") if in_study else DASH])
    b += _table("Table 2. Regression of the automatic on the reference angle (as the study's "
                "Table 2); the study's values are ranges over its three parameters (TK, LL, SS)",
                ["parameter", "R²", "p", "slope", "slope (°)", "S", "SD of differences",
                 f"{study.name} R²", f"{study.name} slope (°)", f"{study.name} S"], rows2)
    b.append(Block("p", "*S* is the standard error of the estimate: the typical distance (°) of a "
                        "point from the fitted line, √(Σ residual² / (n − 2)). *SD of differences* "
                        "is the spread of automatic − reference around the bias. A slope of 1 "
                        "(45°) means the method follows the reference one to one."))
    return b


def _figures_section(per_image, summary, fig_dir) -> list[Block]:
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
        t, p = pairs(per_image, n)
        data = agreement_figure(t, p, n, s, fig_dir / f"agreement_{n}.png")
        cap = (f"{n}: {s['n']} images. On average the automatic value was "
               f"{abs(s['bias']):.1f}° {'higher' if s['bias'] >= 0 else 'lower'} than the reference "
               f"(bias); for 95 % of images the difference is expected between "
               f"{_f(s['loa_low'])}° and {_f(s['loa_high'])}°. The typical size of the error (MAE) "
               f"is {s['mae']:.1f}°.")
        b.append(Block("figure", cap, path=f"agreement_{n}.png", data=data))
    return b


def _examples_section(per_image, overlays, fig_dir) -> list[Block]:
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
        data, mime = _encode_overlay(overlays[k], fig_dir / f"overlay_{k}.jpg")
        b.append(Block("figure", f"{k.capitalize()}{dice}.", path=f"overlay_{k}.jpg", data=data,
                       mime=mime))
    return b


def _per_image_section(per_image) -> list[Block]:
    b = [Block("h2", "Per-image results and the frame used")]
    frames = frames_used(per_image)
    b.append(Block("p", "Frame: an angle is measured in the *radiograph* frame when the photo's "
                        "tilt could be corrected, otherwise in the *image* frame (the photo as "
                        "taken). Cobb angles (TK, LL, LL_S1) do not depend on the frame; SS, PT and "
                        "PI measured in the image frame include the photo's tilt."))
    rows, names = [], set()
    for n in ANGLE_NAMES:
        measured = per_image[f"{n}_pred"].notna()
        counts = per_image.loc[measured, f"{n}_frame"].replace("", "not recorded").value_counts()
        if len(counts):
            rows.append((n, dict(counts)))
            names |= set(counts.index)
    if rows:
        cols = sorted(names, key=lambda f: (f == "not recorded", f))
        b += _table("Frame used: number of images per parameter (images with an automatic value)",
                    ["parameter"] + cols, [[n] + [str(c.get(f, 0)) for f in cols] for n, c in rows])
    rows = []
    for (_, r), fr in zip(per_image.iterrows(), frames):
        errs = []
        for n in ANGLE_NAMES:
            t, p = r[f"{n}_true"], r[f"{n}_pred"]
            if math.isfinite(t) and math.isfinite(p):
                errs.append(f"{n} {p - t:+.1f}")
            elif math.isfinite(t):
                errs.append(f"{n} not measured")
        notes = "; ".join(f"{n}: {r[f'{n}_note']}" for n in ANGLE_NAMES if r[f"{n}_note"])
        rows.append([r["image"], _f(r["dice"] * 100), _f(r["iou"] * 100), fr or DASH,
                     ", ".join(errs) or DASH, notes or DASH])
    b += _table("Per image: Dice and IoU (%), frame, error automatic − reference (°) per "
                "parameter, notes", ["image", "Dice", "IoU", "frame", "error (°)", "notes"], rows)
    return b


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


def build_blocks(per_image: pd.DataFrame, summary: Mapping[str, Any], fig_dir: Path, *,
                 overlays=None, config_text=None, code_version=None, title="Evaluation report",
                 study: StudyResults = REFERENCE_STUDY, source: str | None = None) -> list[Block]:
    """The report's content (figures are written into `fig_dir` on the way)."""
    b = [Block("h1", title)]
    lines = headline(summary, study)
    b.append(Block("p", f"{summary['n_images']} images. " + " ".join(lines)
                   + " Angles are in degrees; the terms are explained at the end "
                     "(*What the numbers mean*)."))
    b += _segmentation_section(per_image, summary, study, fig_dir)
    b += _angle_tables(summary, study)
    b += _figures_section(per_image, summary, fig_dir)
    b += _examples_section(per_image, overlays or {}, fig_dir)
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


def latest_report(run_dir: str | Path) -> Path | None:
    """The newest report directory (`eval`, `eval_2`, …) of a run, or None."""
    found = sorted(Path(run_dir).glob("eval*/summary.json"), key=lambda p: p.stat().st_mtime)
    return found[-1].parent if found else None


def headline(summary: Mapping[str, Any], study: StudyResults = REFERENCE_STUDY) -> list[str]:
    """Short sentences with the headline numbers beside the study's (for the report and consoles)."""
    out = [f"Dice {_pm(summary.get('dice_mean'), summary.get('dice_sd'), scale=100, unit=' %')} "
           f"({study.name}: {_pm(*study.dice_pct, unit=' %')}); "
           f"mIoU {_pm(summary.get('miou_mean'), summary.get('miou_sd'), scale=100, unit=' %')} "
           f"({study.name}: {_pm(*study.miou_pct, unit=' %')})."]
    maes = []
    for n in ANGLE_NAMES:
        s = summary.get(n) or {}
        if s.get("mae") is None:
            continue
        ref = f" ({study.name}: {study.mae_deg[n]:.1f}°)" if n in study.mae_deg else ""
        maes.append(f"{n} {s['mae']:.1f}°{ref}")
    if maes:
        out.append("Mean absolute error: " + ", ".join(maes) + ".")
    return out


# ----------------------------------------------------------------------------- rendering

def to_markdown(blocks: Sequence[Block]) -> str:
    out = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + b.text)
        elif b.kind == "p":
            out.append(b.text)
        elif b.kind == "table":
            esc = (lambda c: str(c).replace("|", "\\|").replace("\n", " "))
            out.append("| " + " | ".join(map(esc, b.headers)) + " |\n|"
                       + "|".join("---" for _ in b.headers) + "|\n"
                       + "\n".join("| " + " | ".join(map(esc, r)) + " |" for r in b.rows))
        elif b.kind == "figure":
            out.append(f"![{b.path}](figures/{b.path})\n\n*{b.text}*")
        elif b.kind == "pre":
            out.append("```\n" + b.text + "\n```")
    return "\n\n".join(out) + "\n"


def _html_inline(text: str) -> str:
    """Escape, then the two Markdown emphases we use (**bold**, *italic*)."""
    import re

    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", t)
    return re.sub(r"\*(.+?)\*", r"<em>\1</em>", t)


_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;
max-width:1100px;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}h1{border-bottom:2px solid #ccc}
h2{margin-top:2em;border-bottom:1px solid #ddd}table{border-collapse:collapse;margin:.5em 0 1em;
font-size:.92em}th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.92em;color:#444}pre{background:#f7f7f7;padding:1em;overflow-x:auto;
font-size:.85em}"""


def to_html(blocks: Sequence[Block], title: str) -> str:
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}"
           f"</title><style>{_CSS}</style></head><body>"]
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "p":
            out.append(f"<p>{_html_inline(b.text)}</p>")
        elif b.kind == "table":
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in b.headers)
            body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                           for r in b.rows)
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif b.kind == "figure":
            src = f"data:{b.mime};base64," + base64.b64encode(b.data).decode("ascii")
            out.append(f"<figure><img src='{src}' alt='{html.escape(b.path)}'>"
                       f"<figcaption>{_html_inline(b.text)}</figcaption></figure>")
        elif b.kind == "pre":
            out.append(f"<pre>{html.escape(b.text)}</pre>")
    out.append("</body></html>")
    return "\n".join(out)


# ----------------------------------------------------------------------------- entry point
def write_report(per_image: pd.DataFrame, out_dir: str | Path, *,
                 summary: Mapping[str, Any] | None = None,
                 overlays: Mapping[str, Any] | None = None, config_text: str | None = None,
                 code_version: str | None = None, title: str = "Spinal alignment: evaluation report",
                 study: StudyResults = REFERENCE_STUDY, source: str | None = None) -> Path:
    """Write per_image.csv, summary.json, report.md, report.html and figures/ → the directory used.

    `per_image`: the table of `spine_d2.evaluation.per_image` (e.g. from `per_image_table`);
    `summary`: only what per_image.csv cannot give is taken from it (coco_segm_ap, and extra
    keys such as coco_bbox_ap); everything else is recomputed from `per_image`, so the report's
    numbers always follow from its per_image.csv;
    `overlays`: {'best'|'median'|'worst'|other: image path, BGR uint8 array or JPEG bytes} (see
    `choose_examples`); `config_text`: the resolved config (YAML); `code_version`: e.g.
    `code_version()`. Never overwrites: see `new_report_dir`.
    """
    from spine_d2.evaluation.per_image import per_image_table

    per_image = per_image_table(per_image.to_dict("records"))
    out = new_report_dir(out_dir)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    given = dict(summary or {})
    summary = {**given, **summarize(per_image, coco_segm_ap=given.get("coco_segm_ap"))}
    per_image.to_csv(out / "per_image.csv", index=False)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
    if config_text:
        (out / "config.yaml").write_text(config_text.rstrip() + "\n")
    if code_version:
        (out / "code_version.txt").write_text(code_version.strip() + "\n")
    blocks = build_blocks(per_image, summary, fig_dir, overlays=overlays, config_text=config_text,
                          code_version=code_version, title=title, study=study, source=source)
    (out / "report.md").write_text(to_markdown(blocks))
    (out / "report.html").write_text(to_html(blocks, title))
    return out


def default_rerender_dir(per_image_csv: str | Path) -> Path:
    """Where a re-rendered report goes by default: `<csv folder>_rerender` beside the CSV's folder."""
    folder = Path(per_image_csv).resolve().parent
    return folder.with_name(f"{folder.name}_rerender")


def rerender(per_image_csv: str | Path, out_dir: str | Path | None = None, *,
             title: str | None = None, overlays: Mapping[str, Any] | None = None) -> Path:
    """Rebuild a whole report from a per_image.csv (e.g. after editing the reference values).

    Everything is recomputed from the CSV; from the CSV's folder it carries over, when present,
    the COCO AP (and other keys not derived from the CSV) of summary.json, config.yaml,
    code_version.txt and the figures/overlay_*.jpg images. Writes into `out_dir` (default
    `default_rerender_dir`), never over an existing report.
    """
    from spine_d2.evaluation.per_image import read_per_image

    csv = Path(per_image_csv)
    per_image = read_per_image(csv)
    folder = csv.resolve().parent
    try:
        old = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        old = {}
    old = old if isinstance(old, dict) else {}
    config = (folder / "config.yaml").read_text() if (folder / "config.yaml").is_file() else None
    produced = ((folder / "code_version.txt").read_text().strip()
                if (folder / "code_version.txt").is_file() else "not recorded")
    if overlays is None:
        overlays = {p.stem[len("overlay_"):]: p for p in sorted(folder.glob("figures/overlay_*.jpg"))}
    return write_report(per_image, out_dir or default_rerender_dir(csv),
                        summary=old, overlays=overlays,
                        config_text=config, title=title or "Spinal alignment: evaluation report",
                        code_version=f"{produced} (results); re-rendered by {code_version()}",
                        source=str(csv))
