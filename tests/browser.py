"""The page in a real headless browser: the app served in a thread, Debian's Chromium driven by Selenium, a screenshot.

For the browser test and the README's picture (a helper of the tests, not of the installed
package). Chromium and its driver come from the system (`apt-get install chromium
chromium-driver`, see the Makefile's `browser` step), never from a download: Selenium Manager is
switched off (SE_OFFLINE) and the flags keep Chromium off the network. Regenerate the README
screenshot with a trained model:

    python tests/browser.py --checkpoint outputs/train/<date>/<time>/model_final.pth \\
        --photo datasets/phantom428/images/phantom_0002.jpg --out docs/serve.png

or with the phantom's ground truth standing in for a model (`--annotations datasets/phantom428`).
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars")


def browser_missing() -> str:
    """Why the headless browser cannot run here ('' when it can)."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if not missing:
        return ""
    return (f"{' and '.join(missing)} not installed: run `make browser` "
            "(or `apt-get install -y chromium chromium-driver` as root)")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerThread:
    """An ASGI app served by uvicorn on 127.0.0.1 in a daemon thread: ``with ServerThread(app) as url:``."""

    def __init__(self, app, port: int | None = None, host: str = "127.0.0.1"):
        import uvicorn

        self.host, self.port = host, port or free_port(host)
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the test server did not start on {self.url}")
            time.sleep(0.05)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def chromium(width: int = 1280, height: int = 900):
    """A headless Debian Chromium under Selenium with a fresh profile: ``with chromium() as driver:``."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager never downloads a browser or driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    why = browser_missing()
    if why:
        raise RuntimeError(why)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="spine_d2-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def open_page(driver, url: str, timeout: float = 30):
    """Load the page and wait until it has read the server's limits and error figures."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url + "/")
    WebDriverWait(driver, timeout).until(
        lambda d: d.execute_script("return document.body.dataset.ready === '1'"))


def upload_and_wait(driver, photos: Sequence[str | Path], timeout: float = 120) -> list:
    """Pick `photos` in the page's file input and wait until every card is done or failed; the cards."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    before = len(driver.find_elements(By.CSS_SELECTOR, "article.card"))
    driver.find_element(By.ID, "files").send_keys("\n".join(str(Path(p).resolve()) for p in photos))
    want = before + len(photos)

    def finished(d):
        cards = d.find_elements(By.CSS_SELECTOR, "article.card")
        done = d.find_elements(By.CSS_SELECTOR, "article.card.ok, article.card.failed")
        return len(cards) == want and len(done) == want

    WebDriverWait(driver, timeout).until(finished)
    return driver.find_elements(By.CSS_SELECTOR, "article.card")


def screenshot(app, photos: Sequence[str | Path], out: str | Path, width: int = 1280) -> Path:
    """Serve `app`, upload `photos` in a headless Chromium `width` px wide, save the whole page as PNG."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with ServerThread(app) as url:
        with chromium(width, 900) as driver:
            open_page(driver, url)
            upload_and_wait(driver, photos)
            time.sleep(0.3)  # let the overlay image paint
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(width, min(int(height) + 20, 4000))
            driver.save_screenshot(str(out))
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Screenshot of the page with photos measured (the README's docs/serve.png).")
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="a trained model_final.pth")
    model.add_argument("--annotations", help="a Labelme folder whose ground truth stands in for a model")
    parser.add_argument("--photo", action="append", required=True, help="a photo to upload (repeatable)")
    parser.add_argument("--out", default="docs/serve.png")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--accuracy-dir", default="benchmarks/results")
    args = parser.parse_args(argv)

    from spine_d2.serve.app import create_app

    if args.checkpoint:
        from spine_d2.engine.inference import SpinePredictor

        predictor, name = SpinePredictor.from_checkpoint(args.checkpoint, "auto"), args.checkpoint
    else:
        from standin import AnnotationPredictor  # beside this file

        predictor = AnnotationPredictor(args.annotations)
        name = f"ground truth of {args.annotations} (stand-in, not a model)"
    app = create_app(predictor, accuracy_dir=args.accuracy_dir, model_name=name)
    print(screenshot(app, args.photo, args.out, args.width))


if __name__ == "__main__":
    main()
