"""The report: every section and the numbers in it, self-contained HTML, per_image.csv round trip,
missing values, never overwriting, and tools/report.py as a subprocess."""
import json
import math
import re
from html.parser import HTMLParser

import cv2
import numpy as np
import pandas as pd
import pytest

from conftest import run_tool
from spine_d2.angles import Angle
from spine_d2.evaluation.agreement import summarize
from spine_d2.evaluation.per_image import (
    PER_IMAGE_COLUMNS,
    PerImageError,
    image_row,
    per_image_table,
    read_per_image,
)
from spine_d2.evaluation.figures import OVERLAY_MAX_SIDE, overlay_jpeg
from spine_d2.evaluation.report import new_report_dir, write_report
from spine_d2.evaluation.report_content import choose_examples


# Reference and automatic TK/LL/SS for five images; image "e" has no automatic LL (with a reason)
# and no reference SS. Other parameters are absent.
TRUE = {"a": (30, 40, 35), "b": (40, 50, 30), "c": (50, 45, 40), "d": (20, 30, 25), "e": (35, 55, None)}
PRED = {"a": (32, 41, 35), "b": (39, 52, 33), "c": (53, 44, 40), "d": (20, 29, 27), "e": (36, None, 30)}
DICE = {"a": 0.80, "b": 0.90, "c": 0.70, "d": 0.85, "e": 0.60}


def _rows():
    rows = []
    for img in TRUE:
        t = dict(zip(("TK", "LL", "SS"), TRUE[img]))
        p = {k: (Angle.missing("L5 not found") if v is None else Angle(float(v)))
             for k, v in zip(("TK", "LL", "SS"), PRED[img])}
        rows.append(image_row(img, true=t, pred=p, dice=DICE[img], iou=DICE[img] - 0.15,
                              frame={"TK": "radiograph", "LL": "radiograph",
                                     "SS": "image" if img == "d" else "radiograph"},
                              extra={"dice_L3": DICE[img] - 0.05}))
    return rows


class _Html(HTMLParser):
    def __init__(self):
        super().__init__()
        self.headings, self.imgs, self.text, self._tag = [], [], [], None

    def handle_starttag(self, tag, attrs):
        self._tag = tag
        if tag == "img":
            self.imgs.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        self._tag = None

    def handle_data(self, data):
        if self._tag in ("h1", "h2", "h3"):
            self.headings.append(data.strip())
        self.text.append(data)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    overlay_file = tmp / "worst.png"
    cv2.imwrite(str(overlay_file), np.full((40, 30, 3), 200, np.uint8))
    overlays = {"best": np.zeros((50, 40, 3), np.uint8), "median": np.full((50, 40, 3), 90, np.uint8),
                "worst": overlay_file}
    table = per_image_table(_rows())
    out = write_report(table, tmp / "eval", summary=summarize(table, coco_segm_ap=0.3725),
                       overlays=overlays, config_text="model:\n  name: fast\n",
                       code_version="spine_d2 test-1")
    return out, table


def _mae(col):
    d = [abs(PRED[i][col] - TRUE[i][col]) for i in TRUE
         if PRED[i][col] is not None and TRUE[i][col] is not None]
    return sum(d) / len(d), len(d)


def test_files_and_round_trip(report):
    out, table = report
    for name in ("per_image.csv", "summary.json", "report.md", "report.html", "config.yaml",
                 "code_version.txt", "figures/overlap.png", "figures/agreement_TK.png",
                 "figures/overlay_best.jpg", "figures/overlay_worst.jpg"):
        assert (out / name).is_file(), name
    csv = read_per_image(out / "per_image.csv")
    assert list(csv.columns[:len(PER_IMAGE_COLUMNS)]) == list(PER_IMAGE_COLUMNS)
    assert "dice_L3" in csv.columns
    assert csv.loc[csv.image == "e", "LL_pred"].isna().all()
    assert csv.loc[csv.image == "e", "LL_note"].iloc[0] == "L5 not found"
    assert csv.loc[csv.image == "d", "SS_frame"].iloc[0] == "image"
    # the numbers are recomputable from per_image.csv
    assert _close(json.loads((out / "summary.json").read_text()), summarize(csv, coco_segm_ap=0.3725))


def _close(a, b):
    """Nested dicts equal, floats to 1e-9 relative."""
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9)
    return a == b


def test_summary_values_by_hand(report):
    out, _ = report
    s = json.loads((out / "summary.json").read_text())
    assert s["n_images"] == 5 and s["coco_segm_ap"] == 0.3725
    assert s["dice_mean"] == pytest.approx(np.mean(list(DICE.values())))
    mae, n = _mae(0)
    assert s["TK"]["mae"] == pytest.approx(mae) and s["TK"]["n"] == n == 5
    assert s["LL"]["n"] == 4 and s["LL"]["missing"] == 1
    assert s["SS"]["n"] == 4 and s["SS"]["missing"] == 0      # e has no reference SS
    assert s["PT"]["n"] == 0 and s["PT"]["mae"] is None


def test_html_is_self_contained_and_has_every_section(report):
    out, _ = report
    text = (out / "report.html").read_text()
    p = _Html()
    p.feed(text)
    heads = " | ".join(p.headings)
    for section in ("Segmentation", "Angles", "Figures per parameter", "Example images",
                    "Per-image results and the frame used", "What the numbers mean", "Provenance"):
        assert section in heads, section
    for name in ("TK", "LL", "SS"):
        assert any(h.startswith(f"{name} —") for h in p.headings)
    # every image inlined: overlap + TK, LL, SS agreement + 3 overlays
    assert len(p.imgs) == 7 and all(src.startswith("data:image/") for src in p.imgs)
    assert "figures/" not in text
    body = "".join(p.text)
    assert "Table 1." in body and "Table 2." in body
    # our numbers and the study's side by side
    mae, _ = _mae(0)
    assert f"{mae:.1f} ±" in body
    assert "84.6 ± 3.8" in body and "72.1 ± 4.8" in body and "3.0°" in body and "3.3°" in body
    assert "0.91–0.95" in body and "42–44°" in body and "3.4–3.5°" in body
    assert "37.2" in body or "37.3" in body                      # COCO AP
    assert "spine_d2 test-1" in body and "name: fast" in body   # code version and config
    assert "L5 not found" in body                               # the reason a value is missing
    assert "SS: image" in body                                  # the frame used per image
    frame_table = re.search(r"\| SS +\| +(\d+) +\| +(\d+) +\|", (out / "report.md").read_text())
    assert frame_table and frame_table.groups() == ("1", "4")   # SS: image 1, radiograph 4 (e too)


def test_markdown_has_the_same_sections_and_existing_figures(report):
    out, _ = report
    md = (out / "report.md").read_text()
    heads = re.findall(r"^#+ (.+)$", md, flags=re.M)
    assert any("Segmentation" in h for h in heads) and any("Provenance" in h for h in heads)
    assert "Table 1." in md and "Table 2." in md
    figs = re.findall(r"\]\((figures/[^)]+)\)", md)
    assert len(figs) == 7 and all((out / f).is_file() for f in figs)
    # Table 1 row of TK by hand: MAE ± SD of |d| = 2, 1, 3, 0, 1
    d = np.array([2, 1, 3, 0, 1.0])
    assert re.search(rf"\| {d.mean():.1f} ± {d.std(ddof=1):.1f}° +\|", md)


def test_never_overwrites(tmp_path):
    table = per_image_table(_rows()[:3])
    first = write_report(table, tmp_path / "eval")
    before = (first / "report.html").read_bytes()
    second = write_report(table.assign(dice=0.5), tmp_path / "eval")
    assert first == tmp_path / "eval" and second == tmp_path / "eval_2"
    assert (first / "report.html").read_bytes() == before
    assert new_report_dir(tmp_path / "eval") == tmp_path / "eval_3"
    (tmp_path / "empty").mkdir()
    assert new_report_dir(tmp_path / "empty") == tmp_path / "empty"


def test_choose_examples():
    table = per_image_table(_rows())
    assert choose_examples(table) == {"best": "b", "median": "a", "worst": "e"}
    assert choose_examples(table.assign(dice=math.nan)) == {}


def test_read_per_image_names_the_problem(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("image,dice,iou,TK_true,TK_pred\na,0.8,0.7,30,31\nb,0.9,0.8,abc,31\n")
    with pytest.raises(PerImageError, match=r"bad\.csv, line 3, column TK_true: 'abc'"):
        read_per_image(f)
    f.write_text("name,dice\na,0.8\n")
    with pytest.raises(PerImageError, match=r"bad\.csv: no 'image' column"):
        read_per_image(f)
    f.write_text("image,TK_true,TK_pred\na,30,\nb,,\n")     # a partial table is completed
    t = read_per_image(f)
    assert list(t.columns) == list(PER_IMAGE_COLUMNS) and t["dice"].isna().all()


def report_tool(*overrides, cwd):
    return run_tool("report.py", *overrides, cwd=cwd, check=False, timeout=180)


def test_tool_rerenders_from_the_csv_into_a_new_directory(tmp_path):
    run = tmp_path / "run" / "eval"
    run.mkdir(parents=True)
    table = per_image_table(_rows())
    table.to_csv(run / "per_image.csv", index=False)
    (run / "summary.json").write_text(json.dumps({"coco_segm_ap": 0.125}))
    # a specialist corrects one value: image a's TK becomes 32 → its TK error is now 0
    edited = pd.read_csv(run / "per_image.csv", dtype={"image": str})
    edited.loc[edited.image == "a", "TK_true"] = 32.0
    edited.to_csv(run / "per_image.csv", index=False)
    res = report_tool(f"per_image={run / 'per_image.csv'}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "run" / "eval_rerender"
    assert f"report: {out / 'report.html'}" in res.stdout and "84.6" in res.stdout
    s = json.loads((out / "summary.json").read_text())
    assert s["TK"]["mae"] == pytest.approx((0 + 1 + 3 + 0 + 1) / 5) and s["coco_segm_ap"] == 0.125
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]   # no clutter where it ran
    # again: a new directory, the first one untouched
    before = (out / "summary.json").read_text()
    res = report_tool(f"per_image={run / 'per_image.csv'}", f"out={out}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "run" / "eval_rerender_2" / "report.html").is_file()
    assert (out / "summary.json").read_text() == before


def test_tool_reports_a_bad_file_clearly(tmp_path):
    res = report_tool(f"per_image={tmp_path / 'nope.csv'}", cwd=tmp_path)
    assert res.returncode != 0
    assert "nope.csv: per-image table not found" in res.stderr and "Traceback" not in res.stderr


def test_overlays_are_shrunk_once_and_jpeg_bytes_kept_as_given(tmp_path):
    big = np.zeros((3000, 1000, 3), np.uint8)
    big[:, :500] = 255
    jpeg = overlay_jpeg(big)
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert max(decoded.shape[:2]) == OVERLAY_MAX_SIDE and decoded.shape[0] / decoded.shape[1] == pytest.approx(3, rel=0.01)
    assert overlay_jpeg(jpeg) == jpeg  # already encoded: not decoded and compressed again
    table = per_image_table(_rows())
    out = write_report(table, tmp_path / "eval", overlays={"best": jpeg})
    assert (out / "figures" / "overlay_best.jpg").read_bytes() == jpeg


def test_the_named_vertebrae_overlap_gets_its_rows_and_headline_but_no_structure_row(tmp_path):
    rows = [image_row(r["image"], true={}, pred={}, dice=r["dice"], iou=r["iou"],
                      extra={"dice_L3": r["dice_L3"], "named_dice": r["dice"] + 0.05, "named_iou": r["iou"] + 0.05})
            for r in _rows()]
    table = per_image_table(rows)
    out = write_report(table, tmp_path / "eval", summary=summarize(table))
    md = (out / "report.md").read_text()
    named = [d + 0.05 for d in DICE.values()]
    value = f"{100 * np.mean(named):.1f} ± {100 * np.std(named, ddof=1):.1f}"
    assert re.search(rf"\| Dice \(%\) of the vertebrae named \| {re.escape(value)} \|", md), md[:3000]
    assert "| IoU (%) of the vertebrae named |" in md
    assert f"Labelme pre-annotation writes): Dice {value} %" in md
    assert not re.search(r"^\| named \|", md, re.M)        # not mistaken for a class or level
    assert "| L3 |" in md
    assert "of every mask detected" not in md and "sure of" not in md  # a table without scores


def test_every_mask_detected_gets_its_rows_beside_the_sure_masks(tmp_path):
    rows = [image_row(r["image"], true={}, pred={}, dice=r["dice"], iou=r["iou"],
                      extra={"all_dice": r["dice"] - 0.1, "all_iou": r["iou"] - 0.1}) for r in _rows()]
    table = per_image_table(rows)
    md = (write_report(table, tmp_path / "eval", summary=summarize(table)) / "report.md").read_text()
    every = [d - 0.1 for d in DICE.values()]
    value = f"{100 * np.mean(every):.1f} ± {100 * np.std(every, ddof=1):.1f}"
    assert re.search(rf"\| Dice \(%\) of every mask detected \| {re.escape(value)} \|", md), md[:3000]
    assert f"Every mask detected, whatever its score: Dice {value} %" in md
    assert "Of the masks the model is sure of (score ≥ 0.5): Dice " in md
    assert not re.search(r"^\| all \|", md, re.M)


def test_a_note_every_parameter_shares_is_written_once_per_image(tmp_path):
    rows = [image_row("f", true={"TK": 30.0, "LL": 40.0}, pred={"TK": 31.0, "LL": Angle.missing("L5 not found")},
                      dice=0.9, iou=0.8, notes="removed #3 lumbar: duplicate of #2")]
    out = write_report(per_image_table(rows), tmp_path / "eval")
    md = (out / "report.md").read_text()
    assert md.count("removed #3 lumbar: duplicate of #2") == 2, md      # the shared note, LL's own
    assert "TK/LL_S1/SS/PT/PI: removed #3 lumbar: duplicate of #2; LL: removed #3 lumbar: duplicate of #2; " \
           "L5 not found" in md


def test_levels_misnamed_get_a_section_a_headline_and_survive_the_csv(tmp_path):
    """Image 'b' named one level off at T11–T12: counted, listed with its errors, read back as text."""
    extra = {img: {"levels_named": 17, "levels_misnamed": 2 if img == "b" else 0,
                   "misnamed": "T12 on T11, L1 on T12" if img == "b" else ""} for img in TRUE}
    rows = [{**r, **extra[r["image"]]} for r in _rows()]
    table = per_image_table(rows)
    summary = summarize(table)
    assert (summary["levels_named"], summary["levels_misnamed"]) == (85, 2)
    assert (summary["images_named"], summary["images_misnamed"]) == (5, 1)
    out = write_report(table, tmp_path / "eval", summary=summary)
    md = (out / "report.md").read_text()
    assert "Level names: were the vertebrae named right?" in md
    assert "83 of 85 named levels (97.6 %) carry their annotated name; 1 of 5 images have a level misnamed" in md
    assert "Levels named as annotated: 97.6 % of 85 (1 image with a level misnamed)." in md
    assert re.search(r"^\| b \| T12 on T11, L1 on T12 \| TK -1\.0, LL \+2\.0, SS \+3\.0 \|$", md, re.M), md
    assert not re.search(r"^\| a \| ", md.split("Level names")[1].split("##")[0], re.M)
    back = read_per_image(out / "per_image.csv")
    assert back.set_index("image").loc["b", "misnamed"] == "T12 on T11, L1 on T12"
    assert back.set_index("image").loc["a", "misnamed"] == ""


def test_no_level_names_section_without_annotated_levels(report):
    out, _ = report
    assert "Level names" not in (out / "report.md").read_text()


def test_the_bland_altman_panel_labels_its_mean_difference_clear_of_the_line():
    """The mean difference is written once, with its sign, beside its line on the side away from
    zero (statsmodels' own "mean diff" label sat across the line), and the limits keep theirs."""
    from matplotlib.figure import Figure

    from spine_d2.evaluation.agreement import agreement
    from spine_d2.evaluation.figures import _bland_altman_panel

    rng = np.random.default_rng(0)
    t = rng.uniform(0, 40, 60)
    for shift in (-0.7, 1.3):
        p = t + shift + rng.normal(0, 2, 60)
        stats = agreement(t, p)
        ax = Figure().subplots()
        _bland_altman_panel(ax, t, p, "PT", stats)
        texts = [x.get_text() for x in ax.texts]
        assert not any("mean diff:" in x for x in texts), texts
        mean = [x for x in ax.texts if x.get_text().startswith("mean difference")]
        assert len(mean) == 1 and mean[0].get_text() == f"mean difference {stats['bias']:+.2f}°"
        assert mean[0].get_va() == ("bottom" if stats["bias"] >= 0 else "top")
        assert any(x.startswith("upper limit") for x in texts) and any(x.startswith("lower limit") for x in texts)
