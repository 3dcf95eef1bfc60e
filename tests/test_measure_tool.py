"""tools/measure.py on a small Labelme folder written by the test: columns, values, notes, no overwrite."""
import csv
import math
from pathlib import Path

import pytest

from conftest import REPO, run_tool
from labelme_factory import image_cache, shape, write_image, write_labelme  # noqa: F401
from measure_factory import toy_spine

from spine_d2.measure.dataset import measure_dataset


def make_folder(root: Path) -> dict:
    expected = {}
    for k, (facing, heads) in enumerate([(1, True), (-1, False)]):
        spine = toy_spine(facing=facing, ss=30.0 + 5 * k)
        h, w = spine.shape
        img = write_image(root / "images" / f"img{k}.png", (w, h), seed=k)
        shapes = [shape(lv, poly) for lv, poly in spine.polygons.items()]
        if heads:
            shapes += [shape("FH", [[cx, cy], [cx + r, cy]], "circle") for cx, cy, r in spine.heads]
        write_labelme(root / "annotations" / f"img{k}.json", img, shapes)
        expected[f"img{k}"] = spine.expected
    return expected


def test_measure_dataset_finds_the_angles_of_the_polygons(tmp_path, image_cache):
    expected = make_folder(tmp_path / "ds")
    for source in ("polygons", "masks"):
        rows = {r["image"]: r for r in measure_dataset(tmp_path / "ds", {"method": "border"}, source=source)}
        tol = 0.3 if source == "polygons" else 2.0
        for stem, exp in expected.items():
            for name in ("TK", "LL", "LL_S1", "SS"):
                assert rows[stem][name] == pytest.approx(exp[name], abs=tol), (source, stem, name)
        assert math.isnan(rows["img1"]["PT"]) and "femoral heads not in view" in rows["img1"]["notes"]
        assert rows["img0"]["PT"] == pytest.approx(expected["img0"]["PT"], abs=max(tol, 0.5))


def test_the_tool_writes_the_csv_and_never_overwrites(tmp_path, image_cache):
    make_folder(tmp_path / "ds")
    out = tmp_path / "angles.csv"
    args = [f"dataset.root={tmp_path / 'ds'}", f"out={out}", "measure.method=rectangle"]
    run_tool("measure.py", *args, cwd=tmp_path, timeout=120)
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["image", "TK", "LL", "LL_S1", "SS", "PT", "PI", "frame", "notes"]
    assert [r["image"] for r in rows] == ["img0", "img1"]
    assert rows[1]["PT"] == "" and float(rows[0]["LL"]) > 0
    assert not any(p.name != "angles.csv" and p.name != "ds" for p in tmp_path.iterdir())  # no clutter
    again = run_tool("measure.py", *args, cwd=tmp_path, check=False, timeout=120)
    assert again.returncode == 2 and "exists" in (again.stderr + again.stdout)


def test_the_tool_compares_the_specialists_sheet_with_the_annotations(tmp_path, image_cache):
    """With measurements.csv in the folder, each angle of it is set against the annotations' after
    the CSV is written: a sheet whose TK is negative and whose LL runs to S1 is told so; a film far
    off is named; a sheet that cannot be read is reported, the angles kept."""
    root = tmp_path / "ds"
    truth = {}
    for k in range(6):
        spine = toy_spine(facing=1 if k % 2 == 0 else -1, ss=30.0 + 3 * k)
        h, w = spine.shape
        img = write_image(root / "images" / f"img{k}.png", (w, h), seed=k)
        write_labelme(root / "annotations" / f"img{k}.json", img, [shape(lv, p) for lv, p in spine.polygons.items()])
        truth[f"img{k}"] = spine.expected
    rows = ["image,TK,LL,SS"] + [f"{im}.png,{-e['TK']:.1f},{e['LL_S1']:.1f},{e['SS'] + (15 if im == 'img4' else 0):.1f}"
                                 for im, e in truth.items()]
    (root / "measurements.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "angles.csv"
    proc = run_tool("measure.py", f"dataset.root={root}", f"out={out}", cwd=tmp_path, timeout=120)
    log = proc.stdout + proc.stderr
    assert out.is_file() and f"{root / 'measurements.csv'} against the annotations:" in log
    assert "TK: the sheet may follow another convention: its values are the annotations' with the sign reversed" in log
    assert "LL: the sheet may follow another convention: it agrees with the annotations' L1–S1" in log
    assert "SS: median |sheet − annotations|" in log and "1 beyond 10°: img4 (+15.0°)" in log
    (root / "measurements.csv").write_text("image,TK,LL,SS\nnobody.png,30,40,35\n")
    again = run_tool("measure.py", f"dataset.root={root}", f"out={out}", "overwrite=true", cwd=tmp_path, timeout=120)
    assert "not compared:" in again.stdout + again.stderr and "unknown image" in again.stdout + again.stderr
    assert len(list(csv.DictReader(out.open()))) == 6


def test_the_measure_config_group_composes_and_is_accepted():
    from hydra import compose, initialize_config_dir

    from spine_d2.measure.pipeline import MeasureConfig

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("measure_dataset", overrides=["dataset.root=x", "out=y.csv", "measure.method=rectangle+border"])
    m = MeasureConfig.from_cfg(cfg.measure)
    assert m.method == "rectangle+border" and m.slope_threshold == 1.7 and m.frame.enabled
    assert cfg.source == "polygons" and cfg.frame_source == "estimate"
