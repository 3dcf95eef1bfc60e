"""tools/check_dataset.py: the summary, exit codes, and naming the bad file."""
import io
import json
from pathlib import Path

import pytest
from conftest import REPO, run_tool
from hydra import compose, initialize_config_dir
from labelme_factory import (
    image_cache,  # noqa: F401 - fixture
    make_dataset,
    shape,
    snapshot,
    spine_shapes,
    write_image,
    write_labelme,
)

from spine_d2.data.summary import check_dataset, format_report, run_check, unmeasurable_angles

pytestmark = pytest.mark.usefixtures("image_cache")


def check_tool(cwd, *overrides):
    return run_tool("check_dataset.py", *overrides, cwd=cwd, check=False, timeout=120)


def test_tool_good_folder_exit_0_and_no_clutter(tmp_path):
    root = make_dataset(tmp_path / "ds", n=3)
    work = tmp_path / "work"
    work.mkdir()
    before = snapshot(root)
    res = check_tool(work, f"dataset.root={root}")
    assert res.returncode == 0, res.stderr
    for heading in ("Annotations per label", "Levels missing per image", "Measurement coverage",
                    "Problems per file", "OK: every file is good"):
        assert heading in res.stdout
    assert list(work.iterdir()) == []  # no outputs/, no .hydra
    assert snapshot(root) == before


def _bad_folder(tmp_path):
    root = make_dataset(tmp_path / "ds", n=3)
    raw = json.loads((root / "annotations" / "img1.json").read_text())
    raw["shapes"][0]["label"] = "L9"
    (root / "annotations" / "img1.json").write_text(json.dumps(raw))
    return root


def test_tool_names_the_bad_file_and_exits_1(tmp_path):
    root = _bad_folder(tmp_path)
    res = check_tool(tmp_path, f"dataset.root={root}")
    assert res.returncode == 1
    assert "img1.json" in res.stdout and "unknown label 'L9'" in res.stdout
    assert "img0.json" not in res.stdout


def _dataset_cfg(root):
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose("check_dataset", overrides=[f"dataset.root={root}"]).dataset


def test_exit_code_follows_strict(tmp_path):
    root = _bad_folder(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    assert run_check(_dataset_cfg(root), strict=True, out=out, err=err) == 1
    assert "ERROR: 1 bad file(s)" in out.getvalue() and "img1.json" in out.getvalue()
    out = io.StringIO()
    assert run_check(_dataset_cfg(root), strict=False, out=out, err=err) == 0
    assert "WARNING: 1 bad file(s)" in out.getvalue() and "img1.json" in out.getvalue()
    assert run_check(_dataset_cfg(make_dataset(tmp_path / "good", n=2)), out=out) == 0


def test_missing_folder_is_a_clear_error(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    assert run_check(_dataset_cfg(tmp_path / "nope"), out=out, err=err) == 1
    assert "dataset folder not found" in err.getvalue() and out.getvalue() == ""
    cfg = _dataset_cfg("x")
    cfg.root = "???"  # the config's mandatory value, not given on the command line
    assert run_check(cfg, out=out, err=err) == 1 and "dataset.root=DIR" in err.getvalue()


def test_report_counts_levels_coverage_and_folder_problems(tmp_path):
    root = make_dataset(tmp_path / "ds", n=3)
    img = write_image(root / "images" / "short.png")
    write_labelme(root / "annotations" / "short.json", img,
                  spine_shapes(levels=["L1", "L2", "L4", "L5"], femoral_heads=0))
    report = check_dataset(root)
    assert report.ok
    text = format_report(report)
    assert "4 annotation files, 4 good, 0 bad" in text
    short = next(line for line in text.splitlines() if line.startswith("short"))
    assert "T1–T12, L3, S1" in short and "SS" in short and "PT" in short
    assert "1 image(s) without a row: short" in text
    (root / "measurements.csv").write_text("image,TK,LL,SS\nimg0,1,x,3\n")
    (root / "splits").mkdir()
    (root / "splits" / "test.txt").write_text("img7\n")
    report = check_dataset(root)
    assert not report.ok
    assert report.bad_files == [str(root / "measurements.csv"), str(root / "splits")]
    text = format_report(report)
    assert "LL = 'x' is not a number" in text and "unknown image 'img7'" in text


def test_the_coverage_notes_a_negated_column_and_pi_not_pt_plus_ss(tmp_path):
    root = make_dataset(tmp_path / "ds", n=6)
    rows = [f"img{k},{30 + k},{-(40 + k)},{35 + k},{12 + k},{47 + 2 * k + (8 if k == 2 else 0)}" for k in range(6)]
    (root / "measurements.csv").write_text("image,TK,LL,SS,PT,PI\n" + "\n".join(rows) + "\n")
    report = check_dataset(root)
    assert report.ok                                         # notes, not problems: the sheet is readable
    notes = [line for line in format_report(report).splitlines() if line.startswith("  note: ")]
    assert notes == ["  note: LL is negative on 6 of 6 rows: the signs here are spine_d2/angles.py's "
                     "(kyphosis and lordosis positive); negate the column",
                     "  note: PI − (PT + SS) beyond ±5° on 1 of 6 rows: img2 (+8.0°)"]
    (root / "measurements.csv").write_text("image,TK,LL,SS,PT,PI\n" + "\n".join(
        f"img{k},{30 + k},{40 + k},{35 + k},{12 + k},{47 + 2 * k}" for k in range(6)) + "\n")
    assert "note:" not in format_report(check_dataset(root))


def test_report_on_region_labels_and_bad_files(tmp_path):
    root = tmp_path / "ds"
    img = write_image(root / "images" / "a.png")
    write_labelme(root / "annotations" / "a.json", img,
                  spine_shapes(levels=["lumbar", "lumbar"], femoral_heads=0))
    write_labelme(root / "annotations" / "b.json", img, [shape("L1", [[1, 1], [2, 2]])])
    report = check_dataset(root, class_map="two_class")
    assert [Path(f).name for f in report.bad_files] == ["b.json"]
    text = format_report(report)
    assert "region labels only" in text and "no measurements file" in text
    assert "needs at least 3" in text


def test_unmeasurable_angles_follow_the_angle_definitions():
    assert unmeasurable_angles({"T5", "T12", "L1", "L5", "S1", "FH"}) == []
    assert unmeasurable_angles({"L1", "L5", "S1"}) == ["TK", "PT", "PI"]
