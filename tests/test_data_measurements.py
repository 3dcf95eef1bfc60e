"""measurements.csv: angles per image in degrees; every bad row named."""
import math

import pandas as pd
import pytest

from spine_d2.angles import ANGLE_NAMES
from spine_d2.data.labelme import DatasetError
from spine_d2.data.measurements import measurements_by_image, read_measurements


def _csv(tmp_path, text, name="measurements.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_all_columns_as_float_degrees(tmp_path):
    path = _csv(tmp_path, "image,TK,LL,SS,LL_S1,PT,PI\n"
                          "a,30.5,41,35,55,12,47\n"
                          "b,,38.25,,50,NaN,\n")
    m = read_measurements(path, images=["a", "b", "c"])
    assert list(m.columns) == list(ANGLE_NAMES) and m.index.name == "image"
    assert list(m.index) == ["a", "b"]
    assert (m.dtypes == float).all()
    assert m.loc["a"].tolist() == [30.5, 41.0, 55.0, 35.0, 12.0, 47.0]  # ANGLE_NAMES order
    assert m.loc["b", "LL"] == 38.25
    assert m.loc["b", ["TK", "SS", "PT", "PI"]].isna().all()


def test_optional_columns_may_be_absent_and_other_columns_are_ignored(tmp_path):
    path = _csv(tmp_path, "\ufeffimage , SS,TK,LL,notes\nx,20,10,30,re-measured\n")  # BOM, Excel
    m = read_measurements(path)
    assert m.loc["x", "TK"] == 10 and m.loc["x", "SS"] == 20 and m.loc["x", "LL"] == 30
    assert m.loc["x", ["LL_S1", "PT", "PI"]].isna().all()
    assert list(m.columns) == list(ANGLE_NAMES)


def test_blank_lines_are_skipped(tmp_path):
    m = read_measurements(_csv(tmp_path, "image,TK,LL,SS\na,1,2,3\n\n,,,\nb,4,5,6\n"))
    assert list(m.index) == ["a", "b"]


@pytest.mark.parametrize("body,expected", [
    ("a,1,2,3\nb,12°,2,3\n", r"row 3 \(image 'b'\): TK = '12°' is not a number"),
    ("a,1,2,3\nb,1,abc,3\n", r"row 3 \(image 'b'\): LL = 'abc'"),
    ("a,1,2,3\nb,1,inf,3\n", r"row 3 .*LL = 'inf'"),
    ("a,1,2,3\nb,1,2,3\na,4,5,6\n", r"row 4 \(image 'a'\): duplicate image, already on row 2"),
    ("a,1,2,3\n,1,2,3\n", r"row 3: no image name"),
    ("a,1,2,3\nb,1,2,3,5\n", r"row 3: 5 cells but the header has 4"),
])
def test_bad_rows_are_named(tmp_path, body, expected):
    path = _csv(tmp_path, "image,TK,LL,SS\n" + body)
    with pytest.raises(DatasetError, match=expected) as err:
        read_measurements(path)
    assert str(err.value).startswith(str(path))


def test_unknown_image_is_named_when_images_are_given(tmp_path):
    path = _csv(tmp_path, "image,TK,LL,SS\na,1,2,3\nzz,1,2,3\n")
    assert list(read_measurements(path).index) == ["a", "zz"]  # no image list: no check
    with pytest.raises(DatasetError, match=r"row 3 \(image 'zz'\): unknown image"):
        read_measurements(path, images=["a", "b"])


def test_file_names_with_their_extension_are_accepted(tmp_path):
    """Specialists' sheets name the file (`img_001.jpg`, `IMG_7.HEIC`, a Windows path): each
    name that matches exactly one image, by stem or file name, is that image."""
    path = _csv(tmp_path, "image,TK,LL,SS\nimg_001.jpg,1,2,3\nIMG_7.HEIC,4,5,6\nb,7,8,9\n"
                          "left\\c.png,10,11,12\n")
    m = read_measurements(path, images=["img_001", "IMG_7", "b", "left/c", "right/d"])
    assert list(m.index) == ["img_001", "IMG_7", "b", "left/c"]
    assert m.loc["IMG_7", "TK"] == 4 and m.loc["left/c", "SS"] == 12


def test_a_stem_in_a_subfolder_is_found_by_its_file_name(tmp_path):
    m = read_measurements(_csv(tmp_path, "image,TK,LL,SS\nd.jpg,1,2,3\nd2,4,5,6\n"),
                          images=["right/d", "right/d2"])
    assert list(m.index) == ["right/d", "right/d2"]


def test_an_exact_stem_wins_over_a_file_name_elsewhere(tmp_path):
    m = read_measurements(_csv(tmp_path, "image,TK,LL,SS\na,1,2,3\n"), images=["a", "sub/a"])
    assert list(m.index) == ["a"]


@pytest.mark.parametrize("body,images,expected", [
    ("a.jpg,1,2,3\n", ["x/a", "y/a"], r"row 2 \(image 'a.jpg'\): ambiguous image name, it matches 2 "
                                       r"images \(x/a, y/a\); write the stem with its folder"),
    ("zz.jpg,1,2,3\n", ["a"], r"row 2 \(image 'zz.jpg'\): unknown image, no annotation file has this "
                              r"stem or file name"),
    ("a,1,2,3\na.png,4,5,6\n", ["a"], r"row 3 \(image 'a.png'\): duplicate image, already on row 2"),
])
def test_unknown_ambiguous_and_twice_named_images_are_errors_naming_csv_and_row(tmp_path, body, images,
                                                                               expected):
    path = _csv(tmp_path, "image,TK,LL,SS\n" + body)
    with pytest.raises(DatasetError, match=expected) as err:
        read_measurements(path, images=images)
    assert str(err.value).startswith(str(path))


@pytest.mark.parametrize("header,expected", [
    ("image,TK,LL\n", "missing column.*SS"),
    ("image,tk,LL,SS\n", "'tk' should be spelled 'TK'"),
    ("image,TK,TK,LL,SS\n", "appear twice"),
    ("", "empty file"),
])
def test_bad_header(tmp_path, header, expected):
    with pytest.raises(DatasetError, match=expected):
        read_measurements(_csv(tmp_path, header))


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="measurements file not found"):
        read_measurements(tmp_path / "nope.csv")


def test_header_only_gives_an_empty_table(tmp_path):
    m = read_measurements(_csv(tmp_path, "image,TK,LL,SS\n"))
    assert m.empty and list(m.columns) == list(ANGLE_NAMES)


def test_by_image_dict_keeps_every_angle():
    frame = pd.DataFrame({a: [float(i)] for i, a in enumerate(ANGLE_NAMES)}, index=["a"])
    frame.loc["a", "PT"] = math.nan
    table = measurements_by_image(frame)
    assert set(table["a"]) == set(ANGLE_NAMES) and table["a"]["TK"] == 0.0
    assert math.isnan(table["a"]["PT"])
