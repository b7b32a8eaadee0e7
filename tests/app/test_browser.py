"""The Gradio app in a real browser: headless Debian Chromium driven by selenium loads the page, uploads a
video, presses generate and finds the players and downloads; the look-around player renders FOA to binaural
in the page (checked by its ``window.visageLookAround`` hook against physics and against
visage_hf.audio.binaural), turns with a drag and keeps the video in step with the audio clock. Needs /usr/bin/chromium and /usr/bin/chromedriver
(`.ci/system-deps` installs them); nothing is downloaded (selenium-manager is never asked for a driver).

``VISAGE_SCREENSHOT=docs/screenshot.png pytest tests/test_browser.py`` also writes the README's screenshot."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

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
SCREENSHOT_MAX_BYTES = 500_000  # well under the 1 MB limit on committed files
RATE = 44100
APP_START_SECONDS = 240  # a busy shared CPU can take minutes to import gradio and torch
# The hook's promises, awaited by selenium (the callback is the last argument).
MEASURE_JS = """const done = arguments[arguments.length - 1];
window.visageLookAround.measure(arguments[0], arguments[1]).then(done, (e) => done(String(e)));"""
RENDER_JS = """const done = arguments[arguments.length - 1];
window.visageLookAround.render(arguments[0], arguments[1], arguments[2]).then(done, (e) => done(String(e)));"""
SEEK_JS = """const bar = document.querySelector('#lookaround-file .la-seek');
bar.value = String(arguments[0]); bar.dispatchEvent(new Event('input'));"""
TOASTS_JS = "return [...document.querySelectorAll('[data-testid=toast-text]')].map((e) => e.textContent)"
STATE_JS = "return window.visageLookAround ? window.visageLookAround.state() : null"


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
    with serve_app(tmp_path_factory.mktemp("app"), {}, APP_START_SECONDS) as url:
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
    driver.set_script_timeout(60)
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
    # The status line follows the background load (weights, then the generation kernels' compile on a cold
    # numba cache) and turns to the model's description when it is done.
    wait.until(ready.text_to_be_present_in_element((By.ID, "model-status"), "random weights"))

    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(clip))
    wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "video"))
    browser.find_element(By.ID, "generate").click()

    wait.until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "#mp4-file a"))
    downloads = {
        name: browser.find_element(By.CSS_SELECTOR, f"#{name} a").get_attribute("href")
        for name in ("foa-file", "mp4-file")
    }
    assert downloads["foa-file"].endswith("foa_ambix.wav") and downloads["mp4-file"].endswith(
        "spatial_360.mp4"
    )
    for href in downloads.values():  # the links serve the files
        assert httpx.get(href, timeout=10).status_code == 200
    summary = browser.find_element(By.ID, "summary").text
    assert f"Generated {CLIP_SECONDS:.2f} s" in summary and "Seed" in summary
    # The headphone player shows the clip's length; the overlay video has a source.
    wait.until(lambda driver: "0:05" in driver.find_element(By.ID, "binaural").text)
    overlay = browser.find_element(By.CSS_SELECTOR, "#overlay video").get_attribute("src")
    assert "overlay.mp4" in overlay
    assert not browser.find_elements(By.XPATH, "//*[contains(text(), 'Traceback')]")
    # The look-around player got the generated FOA (world frame) and follows the camera (default az 0).
    state = wait.until(lambda driver: (s := driver.execute_script(STATE_JS)) and s["loaded"] and s)
    assert (
        state["title"] == "generated" and state["follow"] and state["duration"] == pytest.approx(CLIP_SECONDS)
    )
    left, right = browser.execute_async_script(MEASURE_JS, 0, 0)
    assert left > 0 and right > 0 and math.isfinite(left + right)

    time.sleep(1.0)  # the players draw their first frame / waveform
    screenshot = tmp_path / "screenshot.png"
    _save_screenshot(browser, screenshot)
    assert screenshot.stat().st_size < SCREENSHOT_MAX_BYTES
    target = os.environ.get("VISAGE_SCREENSHOT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_bytes(screenshot.read_bytes())


# ============================================================================================ look around


@pytest.fixture(scope="module")
def foa_files(tmp_path_factory):
    """Plane waves of white noise (AmbiX float WAV, 44.1 kHz) and the bad files of the AmbiX tab."""
    from visage_hf.audio.foa import encode

    folder = tmp_path_factory.mktemp("foa")
    rng = np.random.default_rng(16)
    noise = 0.1 * rng.standard_normal(4 * RATE).astype(np.float32)
    fields = {
        "left.wav": encode(noise, 90.0, 0.0),  # 4 s: also long enough to watch playback
        "front.wav": encode(noise[: RATE // 2], 0.0, 0.0),
        "up60.wav": encode(noise[: RATE // 2], 0.0, 60.0),
        # Four independent channels: every filter and every rotation gain matters.
        "random.wav": 0.1 * rng.standard_normal((4, RATE // 4)).astype(np.float32),
        "stereo.wav": encode(noise[: RATE // 4], 0.0, 0.0)[:2],
    }
    nan = encode(noise[: RATE // 4], 0.0, 0.0)
    nan[0, 50] = np.nan
    fields["nan.wav"] = nan
    paths = {}
    for name, audio in fields.items():
        paths[name] = folder / name
        sf.write(paths[name], audio.T, RATE, subtype="FLOAT")
    paths["text.wav"] = folder / "text.wav"
    paths["text.wav"].write_text("a text file, renamed\n")
    paths["empty.wav"] = folder / "empty.wav"
    paths["empty.wav"].write_bytes(b"")
    return fields, paths


def _wait(browser, seconds: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, seconds, poll_frequency=0.2)


def _open_listen_tab(browser, app_url) -> None:
    from selenium.webdriver.common.by import By

    browser.get(app_url)
    _wait(browser).until(lambda driver: driver.find_element(By.ID, "listen-tab-button").is_displayed())
    browser.find_element(By.ID, "listen-tab-button").click()


def _upload_and_listen(browser, path: Path) -> None:
    from selenium.webdriver.common.by import By

    clear = browser.find_elements(By.CSS_SELECTOR, "#ambix-upload button[aria-label=Clear]")
    if clear:
        clear[0].click()
    _wait(browser).until(
        lambda driver: driver.find_elements(By.CSS_SELECTOR, "#ambix-upload input[type=file]")
    )
    browser.find_element(By.CSS_SELECTOR, "#ambix-upload input[type=file]").send_keys(str(path))
    selector = f"#ambix-upload td.filename[aria-label='{path.name}']"
    _wait(browser).until(lambda driver: driver.find_elements(By.CSS_SELECTOR, selector))
    browser.find_element(By.ID, "listen").click()


def _listen(browser, path: Path) -> dict:
    """Upload a good file; wait until the player has decoded it."""
    _upload_and_listen(browser, path)

    def loaded(driver):
        state = driver.execute_script(STATE_JS)
        return (
            state
            if state and state.get("title") == path.name and (state["loaded"] or state["error"])
            else None
        )

    state = _wait(browser).until(loaded)
    assert state["loaded"], state["error"]
    return state


def _measure(browser, yaw: float, pitch: float) -> tuple[float, float]:
    left, right = browser.execute_async_script(MEASURE_JS, yaw, pitch)
    return left, right


def _db(a: float, b: float) -> float:
    return 20 * math.log10(a / b)


def test_plane_wave_from_the_left_turns_with_the_head(app_url, browser, foa_files):
    _open_listen_tab(browser, app_url)
    _listen(browser, foa_files[1]["left.wav"])
    assert _db(*_measure(browser, 0, 0)) >= 6.0  # facing front: the source is at the left ear
    assert abs(_db(*_measure(browser, 90, 0))) < 1.5  # facing it
    assert _db(*_measure(browser, 180, 0)) <= -6.0  # facing back: it is at the right ear

    # A source 60° up, heard looking up at it, is a frontal source: the same ear signals, sample by sample.
    _listen(browser, foa_files[1]["front.wav"])
    front = np.array(browser.execute_async_script(RENDER_JS, 0, 0, RATE // 4))
    _listen(browser, foa_files[1]["up60.wav"])
    looking_up = np.array(browser.execute_async_script(RENDER_JS, 0, 60, RATE // 4))
    looking_ahead = np.array(browser.execute_async_script(RENDER_JS, 0, 0, RATE // 4))
    peak = np.max(np.abs(front))
    assert np.max(np.abs(looking_up - front)) < 1e-3 * peak
    assert np.max(np.abs(looking_ahead - front)) > 0.1 * peak  # the comparison can tell them apart
    assert abs(_db(*_measure(browser, 0, 60))) < 1.5


def test_browser_render_equals_the_python_binaural_renderer(app_url, browser, foa_files):
    from visage_hf.audio.binaural import BinauralRenderer

    fields, paths = foa_files
    _open_listen_tab(browser, app_url)
    _listen(browser, paths["random.wav"])
    renderer = BinauralRenderer(peak="none")
    for yaw, pitch in ((0.0, 0.0), (30.0, 20.0)):
        browser_ears = np.array(browser.execute_async_script(RENDER_JS, yaw, pitch, RATE // 4))
        # The head facing (yaw, pitch) hears the field turned by -yaw then pitched (camera -> front).
        # Measured here: 3e-7 of the peak (float32 FFT convolution in Chromium vs float64 in scipy).
        python_ears = renderer(fields["random.wav"], RATE, yaw=-yaw, pitch=pitch).audio
        assert browser_ears.shape == python_ears.shape
        error = np.max(np.abs(browser_ears - python_ears)) / np.max(np.abs(python_ears))
        assert error < 1e-5, f"head ({yaw}, {pitch}): browser and Python differ by {error:.2e} of the peak"


def test_drag_and_sliders_turn_the_head_and_playback_keeps_the_video_in_step(app_url, browser, foa_files):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _open_listen_tab(browser, app_url)
    state = _listen(browser, foa_files[1]["left.wav"])
    assert (state["yaw"], state["pitch"], state["follow"]) == (0, 0, True)
    stage = browser.find_element(By.CSS_SELECTOR, "#lookaround-file .la-stage")
    width = stage.size["width"]
    ActionChains(browser).move_to_element(stage).click_and_hold().move_by_offset(
        width // 4, 0
    ).release().perform()
    state = browser.execute_script(STATE_JS)
    # Dragging the picture a quarter of its width to the right brings what was 45° to the left in front.
    assert state["yaw"] == pytest.approx(45.0, abs=3.0) and not state["follow"]
    assert "facing az +4" in browser.find_element(By.CSS_SELECTOR, "#lookaround-file .la-readout").text
    browser.find_element(By.CSS_SELECTOR, "#lookaround-file .la-pitch").send_keys(Keys.ARROW_UP)
    assert browser.execute_script(STATE_JS)["pitch"] == pytest.approx(1.0)
    browser.find_element(By.CSS_SELECTOR, "#lookaround-file .la-follow").click()
    assert browser.execute_script(STATE_JS)["yaw"] == 0  # following the (front-facing) camera again

    _wait(browser).until(lambda driver: driver.execute_script(
        "return document.querySelector('#lookaround-file video').readyState >= 2"))  # fmt: skip
    browser.find_element(By.CSS_SELECTOR, "#lookaround-file .la-play").click()  # a user gesture
    _wait(browser, 20).until(lambda driver: (driver.execute_script(STATE_JS)["position"] or 0) > 0.5)
    states = []
    for _ in range(6):
        states.append(browser.execute_script(STATE_JS))
        time.sleep(0.2)
    assert all(state["playing"] and state["contextState"] == "running" for state in states)
    assert states[-1]["contextTime"] > states[0]["contextTime"] + 0.5  # the audio clock runs
    drifts = [abs(state["videoTime"] - state["position"]) for state in states]
    assert max(drifts) < 0.1, f"video vs audio clock: {drifts}"
    # A video that falls out of step (a decoder stall, a jump) is brought back to the audio clock.
    browser.execute_script("document.querySelector('#lookaround-file video').currentTime -= 0.5")
    _wait(browser, 5).until(
        lambda driver: (s := driver.execute_script(STATE_JS))["videoTime"] > s["position"] - 0.1
    )
    time.sleep(0.3)
    state = browser.execute_script(STATE_JS)
    assert state["playing"] and abs(state["videoTime"] - state["position"]) < 0.1
    # Seeking while playing moves both clocks.
    browser.execute_script(SEEK_JS, 0.5)
    state = browser.execute_script(STATE_JS)
    assert state["playing"] and state["position"] == pytest.approx(0.5, abs=0.1)
    assert abs(state["videoTime"] - state["position"]) < 0.1
    browser.find_element(By.CSS_SELECTOR, "#lookaround-file .la-play").click()
    paused = browser.execute_script(STATE_JS)
    assert not paused["playing"] and abs(paused["videoTime"] - paused["position"]) < 0.05


def test_bad_files_give_a_readable_message_and_the_page_keeps_working(app_url, browser, foa_files):
    from selenium.webdriver.common.by import By

    _open_listen_tab(browser, app_url)
    messages = {
        "stereo.wav": "stereo.wav has 2 channels",
        "text.wav": "text.wav could not be read as audio",
        "empty.wav": "empty.wav is empty",
        "nan.wav": "nan.wav cannot be played: 1 NaN/infinite sample",
    }
    for name, message in messages.items():
        _upload_and_listen(browser, foa_files[1][name])
        _wait(browser, 30).until(
            lambda driver, message=message: any(message in text for text in driver.execute_script(TOASTS_JS))
        )
    assert not browser.find_elements(By.XPATH, "//*[contains(text(), 'Traceback')]")
    _listen(browser, foa_files[1]["left.wav"])
    assert _db(*_measure(browser, 0, 0)) >= 6.0
