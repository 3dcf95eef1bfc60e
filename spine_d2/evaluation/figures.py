"""The report's pictures as encoded bytes: agreement and overlap plots (PNG), overlays (JPEG); degrees, %.

Drawn with matplotlib's object API (`Figure`, Agg: no display, no global state), seaborn for the
panels and styling, statsmodels' `mean_diff_plot` for the Bland–Altman panel. Nothing here writes
a file: `spine_d2.evaluation.report` writes what these return.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Mapping

import cv2
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import rcParams
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from statsmodels.graphics.agreement import mean_diff_plot

from spine_d2.data.images import read_image
from spine_d2.evaluation.agreement import complete_pairs
from spine_d2.evaluation.formatting import fmt
from spine_d2.evaluation.study import StudyResults

OVERLAY_MAX_SIDE = 1200  # px; larger overlays are shrunk to keep report.html small
_POINTS = dict(s=28, color="C0", edgecolor="white", linewidths=0.5)


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _regression_panel(ax, t: np.ndarray, p: np.ndarray, name: str, stats: Mapping[str, Any]) -> None:
    """Automatic against reference with the identity line and seaborn's least-squares line."""
    lo, hi = float(min(t.min(), p.min())) - 3, float(max(t.max(), p.max())) + 3
    ax.plot([lo, hi], [lo, hi], ls="--", c="0.5", lw=1, label="perfect agreement")
    sns.regplot(x=t, y=p, ax=ax, ci=None, fit_reg=stats.get("slope") is not None,
                scatter_kws=_POINTS,
                line_kws=dict(color="C3", lw=1.5, label=f"fitted line (slope {fmt(stats.get('slope_deg'))}°)"))
    ax.set(xlim=(lo, hi), ylim=(lo, hi), aspect="equal", xlabel=f"reference {name} (°)",
           ylabel=f"automatic {name} (°)", title=f"{name}: automatic vs reference")
    ax.text(0.03, 0.97, f"n = {len(t)}\nR² = {fmt(stats.get('r2'), 2)}\nS = {fmt(stats.get('s'))}°",
            transform=ax.transAxes, va="top", fontsize=9, bbox=dict(boxstyle="round", fc="white", ec="0.8"),
            zorder=0.8)  # under the points (1): a gross over-estimate lands in this corner and must show
    ax.legend(loc="lower right", fontsize=8)


def _bland_altman_panel(ax, t: np.ndarray, p: np.ndarray, name: str, stats: Mapping[str, Any]) -> None:
    """statsmodels' mean-difference plot of automatic − reference; the limits of agreement drawn
    from `stats` (sample SD, as in the tables: the library's own limits use the population SD)."""
    mean_diff_plot(p, t, sd_limit=0, ax=ax, scatter_kwds=_POINTS,
                   mean_line_kwds=dict(color="C3", linestyle="-", linewidth=1.3))
    for text in list(ax.texts):  # the library's "mean diff" label sits across its line: ours below
        text.remove()
    ax.axhline(0, c="0.5", lw=1, ls=":")
    bias = stats.get("bias")
    if bias is not None and np.isfinite(bias):
        # at the left, clear of the limits' labels at the right; on the side of its line away from 0
        up = bias >= 0
        ax.annotate(f"mean difference {bias:+.2f}°", xy=(0, bias), xycoords=("axes fraction", "data"),
                    xytext=(4, 3 if up else -3), textcoords="offset points", ha="left",
                    va="bottom" if up else "top", fontsize=8, color="C3",
                    bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
    for key, label in (("loa_low", "lower limit"), ("loa_high", "upper limit")):
        v = stats.get(key)
        if v is not None:
            ax.axhline(v, c="C3", ls="--", lw=1.3)
            ax.annotate(f"{label} {v:+.1f}°", xy=(1, v), xycoords=("axes fraction", "data"), xytext=(-4, 3),
                        textcoords="offset points", ha="right", fontsize=8, color="C3")
    span = max(float(np.abs(p - t).max()), abs(stats.get("loa_low") or 0), abs(stats.get("loa_high") or 0),
               1.0) * 1.25
    ax.set(ylim=(-span, span), title=f"{name}: Bland–Altman")
    size = rcParams["axes.labelsize"]  # the library's labels and ticks are larger than the left panel's
    ax.set_xlabel(f"average of reference and automatic {name} (°)", fontsize=size)
    ax.set_ylabel("automatic − reference (°)", fontsize=size)
    ax.tick_params(labelsize=rcParams["xtick.labelsize"])


def agreement_figure(true, pred, name: str, stats: Mapping[str, Any]) -> bytes:
    """Regression (left) and Bland–Altman (right) plot of one parameter → PNG bytes."""
    t, p, _ = complete_pairs(true, pred)
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(10, 4.4))
        ax1, ax2 = fig.subplots(1, 2)
        _regression_panel(ax1, t, p, name, stats)
        _bland_altman_panel(ax2, t, p, name, stats)
        fig.tight_layout()
        return png_bytes(fig)


def overlap_figure(per_image: pd.DataFrame, study: StudyResults) -> bytes:
    """Distribution of per-image Dice and IoU (%) beside the study's mean ± SD → PNG bytes."""
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(10, 3.6))
        axes = fig.subplots(1, 2)
        for ax, col, label, (sm, ss) in ((axes[0], "dice", "Dice", study.dice_pct),
                                         (axes[1], "iou", "IoU", study.miou_pct)):
            v = pd.to_numeric(per_image[col], errors="coerce").dropna().to_numpy() * 100
            ax.axvspan(sm - ss, sm + ss, color="C1", alpha=0.15, zorder=0)
            if len(v):
                sns.histplot(x=v, ax=ax, bins=min(20, max(5, len(v) // 2)), color="#9bbbdc", zorder=1)
                ax.axvline(v.mean(), c="#173f73", lw=2.2, zorder=3, label=f"this run: mean {v.mean():.1f} %")
            ax.axvline(sm, c="C1", lw=2, ls="--", zorder=3, label=f"{study.name}: {sm} ± {ss} %")
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylim(top=ax.get_ylim()[1] * 1.3)  # room for the legend
            ax.set(xlabel=f"{label} per image (%)", ylabel="number of images", title=label)
            ax.legend(fontsize=8, loc="upper left")
        fig.tight_layout()
        return png_bytes(fig)


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
