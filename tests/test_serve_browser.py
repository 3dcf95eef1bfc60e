"""The page in a real headless browser (Debian's Chromium under Selenium): photos picked and dropped, the angle
table read off the page, errors shown in plain words, usable at a phone's width; and `tools/serve.py`
with the session's smoke-trained model, end to end.

Without Chromium these tests are skipped with the reason, or fail when SPINE_D2_REQUIRE_BROWSER=1
(as in .ci/run), so CI cannot pass without having run them.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from spine_d2.angles import ANGLE_NAMES
from spine_d2.serve import create_app
from spine_d2.serve.browser import ServerThread, browser_missing, chromium, free_port, open_page, upload_and_wait
from spine_d2.serve.standin import AnnotationPredictor
from spine_d2.synthetic.generate import generate_dataset

REPO = Path(__file__).resolve().parents[1]

if browser_missing():
    if os.environ.get("SPINE_D2_REQUIRE_BROWSER") == "1":
        pytest.fail(f"SPINE_D2_REQUIRE_BROWSER=1 but {browser_missing()}", pytrace=False)
    pytest.skip(browser_missing(), allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def driver():
    with chromium(1280, 900) as d:
        yield d


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("page") / "phantom", 2, seed=3, difficulty="easy",
                            workers=1, progress=False)


def card_for(driver, name: str):
    return next(c for c in driver.find_elements(By.CSS_SELECTOR, "article.card")
                if c.find_element(By.CSS_SELECTOR, ".name").text == name)


def angle_table(card) -> dict[str, tuple[str, str]]:
    """angle → (value text, reason text) as the page shows them."""
    rows = {}
    for tr in card.find_elements(By.CSS_SELECTOR, "table.angles tbody tr"):
        value = tr.find_element(By.CSS_SELECTOR, ".value").text
        reasons = tr.find_elements(By.CSS_SELECTOR, ".reason")
        rows[tr.get_attribute("data-angle")] = (value, reasons[0].text if reasons else "")
    return rows


def drop_bytes(driver, name: str, data: bytes) -> None:
    """Drop a file on the page's drop zone, as a user dragging it from the desktop."""
    driver.execute_script("""
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(arguments[1])], arguments[0], {type: 'image/jpeg'}));
        document.getElementById('drop').dispatchEvent(
            new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    """, name, list(data))


def test_a_clinician_drops_phantom_photos_and_reads_the_angles(driver, phantom, tmp_path):
    photo = sorted((phantom / "images").iterdir())[1]
    notes = tmp_path / "referral.txt"
    notes.write_text("Referral letter, not an image.\n")
    app = create_app(AnnotationPredictor(phantom), model_name="phantom ground truth")
    with ServerThread(app) as url:
        expected = httpx.post(url + "/api/measure", files={"file": (photo.name, photo.read_bytes())},
                              timeout=60).json()
        open_page(driver, url)
        assert "phantom ground truth" in driver.find_element(By.ID, "model").text
        upload_and_wait(driver, [photo, notes])

        card = card_for(driver, photo.name)
        assert "ok" in card.get_attribute("class")
        table = angle_table(card)
        assert list(table) == list(ANGLE_NAMES)
        for name in ANGLE_NAMES:
            value, reason = table[name]
            want = expected["angles"][name]
            if want["value"] is None:
                assert value == "—" and reason == want["reason"]
            else:
                assert float(value.rstrip("°")) == pytest.approx(want["value"], abs=0.05) and not reason
        assert re.fullmatch(r"-?\d+\.\d°", table["TK"][0])  # a real number on the page
        tk_row = card.find_element(By.CSS_SELECTOR, "tr[data-angle='TK']")
        assert tk_row.find_element(By.CSS_SELECTOR, ".study").text == "3.0°"
        assert tk_row.find_element(By.CSS_SELECTOR, ".ours").text  # ours, or "not yet measured"
        assert expected["frame"] in card.find_element(By.CSS_SELECTOR, ".frame").text
        img = card.find_element(By.CSS_SELECTOR, ".overlay img")
        assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) == \
            expected["width"]
        assert not card.find_element(By.CSS_SELECTOR, ".progress-row").is_displayed()

        bad = card_for(driver, notes.name)
        assert "failed" in bad.get_attribute("class")
        assert "not an image" in bad.find_element(By.CSS_SELECTOR, ".error").text

        drop_bytes(driver, "dropped.jpg", b"\xff\xd8\xff\xe0 only a header")
        WebDriverWait(driver, 30).until(lambda d: "failed" in card_for(d, "dropped.jpg").get_attribute("class"))
        assert "Could not measure this photo" in card_for(driver, "dropped.jpg").find_element(By.CSS_SELECTOR,
                                                                                              ".error").text

        driver.set_window_size(390, 844)  # a phone
        try:
            time.sleep(0.3)
            width = driver.execute_script("return window.innerWidth")
            assert driver.execute_script("return document.documentElement.scrollWidth") <= width
            assert img.size["width"] <= width
            assert tk_row.is_displayed() and card.find_element(By.CSS_SELECTOR, ".dl-csv").is_displayed()
        finally:
            driver.set_window_size(1280, 900)


def test_serve_tool_with_the_smoke_model_measures_a_photo_on_the_page(driver, smoke_run, tmp_path):
    root, run_dir = smoke_run
    port = free_port()
    log = open(tmp_path / "serve.log", "w")  # a file, not a pipe: a full pipe would block the server
    proc = subprocess.Popen([sys.executable, str(REPO / "tools" / "serve.py"),
                             f"checkpoint={run_dir / 'model_final.pth'}", f"port={port}", "device=cpu",
                             f"hydra.run.dir={tmp_path / 'run'}"],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(url + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "tools/serve.py did not answer within 90 s"
            time.sleep(0.3)
        photo = sorted((root / "images").iterdir())[0]
        open_page(driver, url)
        assert "model_final.pth" in driver.find_element(By.ID, "model").text
        upload_and_wait(driver, [photo])
        card = card_for(driver, photo.name)
        assert "ok" in card.get_attribute("class"), card.text
        table = angle_table(card)
        assert list(table) == list(ANGLE_NAMES)
        for value, reason in table.values():
            assert re.fullmatch(r"-?\d+\.\d°", value) or (value == "—" and reason)
        img = card.find_element(By.CSS_SELECTOR, ".overlay img")
        assert driver.execute_script("return arguments[0].naturalWidth", img) > 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
