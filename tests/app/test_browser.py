"""The Gradio app in a real browser: headless Debian Chromium driven by selenium loads the page, uploads a
video, presses generate and finds the players and downloads. Needs /usr/bin/chromium and /usr/bin/chromedriver
(`.ci/system-deps` installs them); nothing is downloaded (selenium-manager is never asked for a driver).

``VISAGE_SCREENSHOT=docs/screenshot.png pytest tests/test_browser.py`` also writes the README's screenshot."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from visage_hf.data.synthetic import moving_object_video

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CLIP_SECONDS = 5.0  # the duration slider's default: no "the video is shorter" warning over the screenshot
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
    "--hide-scrollbars",
]
SCREENSHOT_MAX_BYTES = 300_000


def _missing_browser() -> str | None:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        return (
            f"{' and '.join(missing)} not installed (run .ci/system-deps: Debian chromium + chromium-driver)"
        )
    return None


if _missing_browser():
    pytest.skip(_missing_browser(), allow_module_level=True)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, serve_app):
    with serve_app(tmp_path_factory.mktemp("app"), {}) as url:
        yield url


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    # An explicit driver path: selenium-manager is not consulted and downloads nothing.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _save_screenshot(driver, path: Path) -> None:
    """The whole page (the window grown to its height), as a small palette PNG."""
    from PIL import Image

    for _ in range(2):  # the layout reflows after a resize
        height, chrome = driver.execute_script(
            "return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight]"
        )
        driver.set_window_size(1280, min(int(height) + int(chrome), 3000))
        time.sleep(0.5)
    driver.execute_script("window.scrollTo(0, 0)")
    raw = path.with_suffix(".raw.png")
    driver.save_screenshot(str(raw))
    image = Image.open(raw).convert("RGB")
    image.thumbnail((1100, 3000))
    palette = image.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    # Dithering (only applied against a given palette) keeps the colour gradients free of contour bands.
    image.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(path, optimize=True)
    raw.unlink()


def test_upload_generate_and_find_players_and_downloads(app_url, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    clip = moving_object_video(tmp_path / "clip.mp4", seconds=CLIP_SECONDS, fps=12, width=320, height=240)
    browser.get(app_url)
    wait = WebDriverWait(browser, 60)
    wait.until(ready.element_to_be_clickable((By.ID, "generate")))
    assert "ViSAGe" in browser.find_element(By.TAG_NAME, "h1").text
    assert "random weights" in browser.find_element(By.ID, "model-status").text

    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(clip))
    wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "video"))
    browser.find_element(By.ID, "generate").click()

    wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "#mp4-file a"))
    downloads = {
        name: browser.find_element(By.CSS_SELECTOR, f"#{name} a").get_attribute("href")
        for name in ("foa-file", "mp4-file")
    }
    assert downloads["foa-file"].endswith("foa_ambix.wav") and downloads["mp4-file"].endswith("spatial.mp4")
    for href in downloads.values():  # the links serve the files
        assert httpx.get(href, timeout=10).status_code == 200
    summary = browser.find_element(By.ID, "summary").text
    assert f"Generated {CLIP_SECONDS:.2f} s" in summary and "Seed" in summary
    # The headphone player shows the clip's length; the overlay video has a source.
    wait.until(lambda driver: "0:05" in driver.find_element(By.ID, "binaural").text)
    overlay = browser.find_element(By.CSS_SELECTOR, "#overlay video").get_attribute("src")
    assert "overlay.mp4" in overlay
    assert not browser.find_elements(By.XPATH, "//*[contains(text(), 'Traceback')]")

    time.sleep(1.0)  # the players draw their first frame / waveform
    screenshot = tmp_path / "screenshot.png"
    _save_screenshot(browser, screenshot)
    assert screenshot.stat().st_size < SCREENSHOT_MAX_BYTES
    target = os.environ.get("VISAGE_SCREENSHOT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_bytes(screenshot.read_bytes())
