"""A reader's corrections through the API: POST /api/angles measures the angles again from moved endplates
(image frame, mapped into the radiograph frame as the measurement did), POST /api/labelme gives the photo's
Labelme JSON with them, and measuring that file gives the corrected angles back.

Expected values come from the known rotation, computed here with plain numpy, never from the code under test.
"""
from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from labelme._label_file import LabelFile
from loguru import logger
from standin import AnnotationPredictor

from spine_d2.angles import ANGLE_NAMES
from spine_d2.measure.dataset import measure_dataset
from spine_d2.serve import create_app
from spine_d2.synthetic.generate import generate_dataset

logger.disable("labelme")


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("fix") / "phantom", 6, seed=5, workers=1, progress=False)


def measure_all(client, phantom) -> dict[str, dict]:
    """/api/measure's answer for each phantom photo, by file name."""
    return {p.name: client.post("/api/measure", files={"file": (p.name, p.read_bytes(), "image/jpeg")}).json()
            for p in sorted((phantom / "images").iterdir())}


@pytest.fixture(scope="module")
def measured(phantom) -> dict[str, dict]:
    return measure_all(TestClient(create_app(AnnotationPredictor(phantom))), phantom)


@pytest.fixture(scope="module")
def image_frame(phantom):
    """(client, answers) of the page with the frame correction off: every photo in the image frame."""
    client = TestClient(create_app(AnnotationPredictor(phantom), {"frame": {"enabled": False}}))
    return client, measure_all(client, phantom)


@pytest.fixture(scope="module")
def client(phantom):
    return TestClient(create_app(AnnotationPredictor(phantom)))


def with_pelvis(measured: dict, frame: str) -> tuple[str, dict]:
    """A photo measured in `frame` with SS, PT and PI."""
    return next((name, res) for name, res in measured.items()
                if res["frame"] == frame and all(res["angles"][a]["value"] is not None for a in ("SS", "PT", "PI")))


def homog(H, pts) -> np.ndarray:
    p = np.hstack([np.asarray(pts, float), np.ones((len(pts), 1))]) @ np.asarray(H, float).T
    return p[:, :2] / p[:, 2:]


def raise_anterior_end(plate, degrees: float) -> np.ndarray:
    """The plate [anterior, posterior] turned about its midpoint so that its anterior end rises by
    `degrees` (x right, y down)."""
    plate = np.asarray(plate, float)
    mid = plate.mean(axis=0)
    # counter-clockwise on screen when anterior points to +x, clockwise when to -x
    t = math.radians(degrees) * (1 if plate[0, 0] > plate[1, 0] else -1)
    rot = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
    return (plate - mid) @ rot.T + mid


def values(answer: dict) -> dict[str, float | None]:
    return {name: answer["angles"][name]["value"] for name in ANGLE_NAMES}


def test_unmoved_endplates_give_exactly_the_measurements_angles(client, measured):
    for name, res in measured.items():
        answer = client.post("/api/angles", json=res["geometry"]).json()
        assert values(answer) == {a: res["angles"][a]["value"] for a in ANGLE_NAMES}, name
        assert answer["frame"] == res["frame"] and answer["corrected"] == []
        assert not any(a["corrected"] for a in answer["angles"].values())
        for a in ANGLE_NAMES:
            if res["angles"][a]["value"] is None:
                assert answer["angles"][a]["reason"], (name, a)


@pytest.mark.parametrize("frame", ["image", "radiograph"])
def test_turning_s1s_endplate_by_a_known_angle_changes_ss_and_pi_by_it(client, measured, image_frame, frame):
    if frame == "image":  # the phantom's photos are corrected: measure them with the correction off
        client, measured = image_frame
    name, res = with_pelvis(measured, frame)
    geometry = copy.deepcopy(res["geometry"])
    plate = geometry["endplates"]["S1"]["superior"]
    theta = 7.5
    if frame == "radiograph":  # turn it on the film: map out, turn, map back into the photo
        H = np.asarray(geometry["homography"])
        moved = homog(H, raise_anterior_end(homog(np.linalg.inv(H), plate), theta))
    else:
        moved = raise_anterior_end(plate, theta)
    geometry["endplates"]["S1"]["superior"] = moved.tolist()
    geometry["corrected"] = ["S1 superior"]
    answer = client.post("/api/angles", json=geometry).json()
    before, after = {a: res["angles"][a]["value"] for a in ANGLE_NAMES}, values(answer)
    assert after["SS"] == pytest.approx(before["SS"] - theta, abs=1e-6)  # the sacral plate is flatter
    assert after["PI"] == pytest.approx(before["PI"] - theta, abs=1e-6)
    assert after["PT"] == pytest.approx(before["PT"], abs=1e-6)          # its midpoint did not move
    if before["LL_S1"] is not None:
        assert after["LL_S1"] == pytest.approx(before["LL_S1"] - theta, abs=1e-6)
    assert after["TK"] == before["TK"] and after["LL"] == before["LL"]
    assert {a for a in ANGLE_NAMES if answer["angles"][a]["corrected"]} == {"LL_S1", "SS", "PT", "PI"}
    assert answer["frame"] == frame
    assert answer["row"]["SS"] == after["SS"] and "S1 superior" in answer["row"]["notes"]


def test_the_labelme_download_measures_as_the_corrected_page(client, measured, phantom, tmp_path):
    name, res = with_pelvis(measured, "radiograph")
    geometry = copy.deepcopy(res["geometry"])
    l1 = np.asarray(geometry["endplates"]["L1"]["superior"])
    geometry["endplates"]["L1"]["superior"] = (l1 + [[0.0, -6.0], [0.0, 4.0]]).tolist()
    geometry["corrected"] = ["L1 superior"]
    answer = client.post("/api/angles", json=geometry).json()
    assert values(answer)["LL"] != pytest.approx(res["angles"]["LL"]["value"], abs=1.0)

    corrected = {"L1": {"superior": geometry["endplates"]["L1"]["superior"]}}
    doc = client.post("/api/labelme", json={"labelme": res["labelme"], "endplates": corrected})
    assert doc.status_code == 200, doc.text
    doc = doc.json()
    points = {s["label"]: s for s in doc["shapes"] if s["shape_type"] == "point"}
    assert set(points) == {"L1_sa", "L1_sp"} and points["L1_sa"]["flags"] == {"corrected": True}
    assert doc["imagePath"] == name and doc["imageData"] is None
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(phantom / "images" / name, folder / name)
    (folder / f"{Path(name).stem}.json").write_text(json.dumps(doc))
    assert LabelFile(str(folder / f"{Path(name).stem}.json")).shapes
    (row,) = measure_dataset(folder)
    for a in ANGLE_NAMES:
        want = values(answer)[a]
        assert (math.isnan(row[a]) if want is None else row[a] == pytest.approx(want, abs=0.01)), a


def test_a_photo_over_the_scale_cap_is_measured_on_a_copy_its_labelme_in_the_photos_pixels(phantom, measured):
    """A photo enlarged 2x (each pixel a 2x2 block) with the cap at the original's pixel count is
    measured on a copy equal to the original: the answer is the original's, in its pixels; the
    Labelme document and a reader's corrected endplates are in the enlarged photo's."""
    import cv2

    from spine_d2.data.images import read_image

    name, res = with_pelvis(measured, "radiograph")
    image = read_image(phantom / "images" / name)
    h, w = image.shape[:2]
    big = cv2.resize(image, (2 * w, 2 * h), interpolation=cv2.INTER_NEAREST)
    client = TestClient(create_app(AnnotationPredictor(phantom), scale_pixels=h * w))
    png = cv2.imencode(".png", big)[1].tobytes()
    got = client.post("/api/measure", files={"file": ("big.png", png, "image/png")}).json()
    assert (got["width"], got["height"]) == (w, h) and values(got) == values(res)
    assert got["notes"].startswith(f"measured on a copy scaled to {w}×{h} px (the photo: {2 * w}×{2 * h}, over ")
    assert got["row"]["notes"] == got["notes"] and got["geometry"] == res["geometry"]
    doc = got["labelme"]
    assert (doc["imageWidth"], doc["imageHeight"]) == (2 * w, 2 * h)
    assert doc["spine_d2"]["prediction"]["measured_on"] == [w, h]
    first = next(s for s in res["labelme"]["shapes"] if s["shape_type"] == "polygon")
    same = next(s for s in doc["shapes"] if s["label"] == first["label"])
    assert np.allclose(same["points"], (np.asarray(first["points"]) + 0.5) * 2 - 0.5, atol=0.002)
    plate = np.asarray(got["geometry"]["endplates"]["L1"]["superior"]) + [[0.0, -6.0], [0.0, 4.0]]
    fixed = client.post("/api/labelme", json={"labelme": doc, "endplates": {"L1": {"superior": plate.tolist()}}}).json()
    points = {s["label"]: s["points"][0] for s in fixed["shapes"] if s["shape_type"] == "point"}
    assert np.allclose([points["L1_sa"], points["L1_sp"]], (plate + 0.5) * 2 - 0.5, atol=0.002)
    assert client.get("/api/health").json()["scale_megapixels"] == h * w / 1e6


def test_bad_corrections_get_a_plain_422(client, measured):
    geometry = next(iter(measured.values()))["geometry"]
    cases = [
        ({**geometry, "endplates": {"L6": {"superior": [[0, 0], [1, 1]]}}}, "'L6' is not a level"),
        ({**geometry, "endplates": {"L1": {"superior": [[0, 0]]}}}, "[[x, y] anterior, [x, y] posterior]"),
        ({**geometry, "endplates": {"L1": {"middle": [[0, 0], [1, 1]]}}}, "superior|inferior"),
        ({**geometry, "endplates": {"L1": {"superior": [[3, 3], [3, 3]]}}}, "both ends at the same point"),
        ({**geometry, "homography": [[0, 0, 0], [0, 0, 0], [0, 0, 1]]}, "3×3 invertible"),
        ({**geometry, "anterior_sign": 0}, "+1 or -1"),
        ({**geometry, "corrected": ["T13 superior"]}, "not among the endplates sent"),
        ({"endplates": "L1"}, "not what this endpoint takes"),
    ]
    for body, text in cases:
        r = client.post("/api/angles", json=body)
        assert r.status_code == 422 and text in r.json()["detail"], (text, r.text)
    r = client.post("/api/labelme", json={"labelme": {"no": "shapes"}})
    assert r.status_code == 422 and "Labelme document" in r.json()["detail"]
    spec = client.get("/openapi.json").json()
    assert {"/api/angles", "/api/labelme"} <= set(spec["paths"])
