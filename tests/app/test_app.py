"""The Gradio app: `python app.py` started on localhost with the tiny random pipeline and called through
`gradio_client` (what a Space visitor's browser or a script does), and its logic (visage_hf.app.logic)
checked directly. Nothing is downloaded."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import free_port
from visage_hf.app import logic as logic
from visage_hf.data.synthetic import moving_object_video
from visage_hf.video.io import probe, read_audio_track
from visage_hf.video.sa3d import read_sa3d, read_spherical

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_RATE = 44100
# Small limits so that an over-long video is cheap to make.
MAX_VIDEO_SECONDS = 3.0
MAX_CLIP_SECONDS = 2.0
SETTINGS = {
    "guidance": "joint",
    "guidance_scale": 2.5,
    "direction_guidance_scale": 2.5,
    "top_k": 256,
    "temperature": 1.0,
}


# ============================================================================================ fixtures


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp("media")
    text = folder / "notes.mp4"
    text.write_text("this is a text file, not a video\n")
    return {
        "good": moving_object_video(folder / "good.mp4", seconds=2.0, fps=12, width=96, height=72),
        "one_frame": moving_object_video(folder / "one_frame.mp4", seconds=0.04, fps=25, width=96, height=72),
        "too_long": moving_object_video(folder / "long.mp4", seconds=4.0, fps=8, width=64, height=48),
        "text": text,
    }


@pytest.fixture(scope="module")
def app_url(tmp_path_factory, serve_app):
    limits = {
        "VISAGE_MAX_VIDEO_SECONDS": str(MAX_VIDEO_SECONDS),
        "VISAGE_MAX_CLIP_SECONDS": str(MAX_CLIP_SECONDS),
    }
    with serve_app(tmp_path_factory.mktemp("app"), limits) as url:
        yield url


@pytest.fixture(scope="module")
def client(app_url, tmp_path_factory):
    from gradio_client import Client

    return Client(app_url, verbose=False, download_files=str(tmp_path_factory.mktemp("downloads")))


def _generate(client, video, **overrides):
    from gradio_client import handle_file

    arguments = {
        "start": 0.0,
        "duration": 1.0,
        "azimuth": 30.0,
        "elevation": 10.0,
        **SETTINGS,
        "seed": 7,
        "random_seed": False,
        **overrides,
    }
    return client.predict(video=handle_file(str(video)), api_name="/generate", **arguments)


# ============================================================================================ through the app


def test_generate_returns_binaural_preview_ambix_wav_and_youtube_mp4(client, media):
    summary, binaural, overlay, foa, mp4, energy, seed, player = _generate(client, media["good"])

    preview = sf.info(binaural)
    assert (preview.channels, preview.samplerate, preview.frames) == (2, SAMPLE_RATE, SAMPLE_RATE)
    ambix = sf.info(foa)
    assert (ambix.channels, ambix.samplerate, ambix.frames) == (4, SAMPLE_RATE, SAMPLE_RATE)
    assert np.abs(sf.read(foa)[0]).max() > 0

    sa3d = read_sa3d(mp4)
    assert sa3d is not None, "the MP4 has no SA3D spatial-audio box"
    assert (sa3d["ambisonic_order"], sa3d["ambisonic_channel_ordering"], sa3d["ambisonic_normalization"]) == (
        1,
        0,
        0,
    )
    assert sa3d["num_channels"] == 4
    track, _ = read_audio_track(mp4)
    assert track.shape[0] == 4

    overlay_info = probe(overlay)
    assert overlay_info.audio_channels == 2 and abs(overlay_info.duration - 1.0) < 0.15
    assert Path(energy).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert seed == 7 and "Seed **7**" in summary and "(random)" not in summary
    # The look-around player gets the camera, the filters at the FOA's rate, and where the overlay's
    # whole-sphere panel starts: after the 96x72 clip scaled to 270 px high (360 px), the panel 540 px wide.
    assert player["camera"] == [30.0, 10.0] and player["filters"]["sampleRate"] == SAMPLE_RATE
    assert player["sphereFrom"] == pytest.approx(360 / 900)


def test_same_seed_same_audio(client, media):
    first = _generate(client, media["good"], duration=0.5, seed=11)
    second = _generate(client, media["good"], duration=0.5, seed=11)
    np.testing.assert_array_equal(sf.read(first[3])[0], sf.read(second[3])[0])


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("text", "Could not read notes.mp4 as a video"),
        ("one_frame", "too short (1 frame"),
        ("too_long", f"accepts videos up to {MAX_VIDEO_SECONDS:g} s"),
    ],
)
def test_bad_video_gives_a_readable_message(client, media, kind, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as caught:
        _generate(client, media[kind])
    assert message in str(caught.value) and "Traceback" not in str(caught.value)


def test_over_long_duration_is_refused(client, media):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as caught:
        _generate(client, media["good"], duration=MAX_CLIP_SECONDS + 0.5)
    # Gradio's own slider check answers first; check_request has the same limit for other callers.
    assert f"greater than maximum value {MAX_CLIP_SECONDS:g}" in str(caught.value)


def test_app_keeps_serving_after_bad_input_and_shows_the_random_seed(client, media):
    from gradio_client.exceptions import AppError

    for kind in ("text", "one_frame", "too_long"):
        with pytest.raises(AppError):
            _generate(client, media[kind])
    summary, binaural, *_, seed, _ = _generate(client, media["good"], duration=0.5, random_seed=True)
    assert sf.info(binaural).channels == 2
    assert isinstance(seed, (int, float)) and 0 <= seed <= logic.MAX_SEED
    assert f"Seed **{int(seed)}** (random)" in summary


def _listen(client, path, fuma=False):
    from gradio_client import handle_file

    return client.predict(upload=handle_file(str(path)), fuma=fuma, api_name="/listen")


@pytest.fixture(scope="module")
def ambisonics_files(tmp_path_factory):
    """A plane wave (noise) from az 60°, el 20° as AmbiX and FuMa WAV, and bad files."""
    from visage_hf.audio.foa import ambix_to_fuma, encode

    folder = tmp_path_factory.mktemp("ambisonics")
    noise = 0.1 * np.random.default_rng(5).standard_normal(SAMPLE_RATE // 2).astype(np.float32)
    foa = encode(noise, 60.0, 20.0)
    nan = foa.copy()
    nan[2, 100] = np.nan
    files = {"ambix": foa, "fuma": ambix_to_fuma(foa), "stereo": foa[:2], "nan": nan}
    paths = {name: folder / f"{name}.wav" for name in files}
    for name, audio in files.items():
        sf.write(paths[name], audio.T, SAMPLE_RATE, subtype="FLOAT")
    paths["text"], paths["empty"] = folder / "text.wav", folder / "empty.wav"
    paths["text"].write_text("not audio at all\n")
    paths["empty"].write_bytes(b"")
    return foa, paths


def test_listen_plays_ambix_and_fuma_alike_and_locates_the_source(client, ambisonics_files):
    from visage_hf.audio.foa import direction_from_intensity

    foa, paths = ambisonics_files
    summary, energy, played, movie, player = _listen(client, paths["ambix"])
    ambix, rate = sf.read(played, dtype="float32", always_2d=True)
    assert rate == SAMPLE_RATE and "0.50 s" in summary
    np.testing.assert_allclose(ambix.T, foa, atol=1e-6)
    fuma_played = sf.read(_listen(client, paths["fuma"], fuma=True)[2], dtype="float32")[0]
    np.testing.assert_allclose(fuma_played, ambix, atol=1e-5)
    # The energy-map movie and picture exist; the player gets the filters at the file's rate.
    assert probe(movie).duration == pytest.approx(0.5, abs=0.15)
    assert Path(energy).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert player["filters"]["sampleRate"] == SAMPLE_RATE and player["sphereFrom"] == 0.0
    azimuth, elevation = direction_from_intensity(ambix.T)
    assert (float(azimuth), float(elevation)) == pytest.approx((60.0, 20.0), abs=1.0)


def test_listen_reads_the_spatial_mp4_that_generate_wrote(client, media):
    *_, foa, mp4, _, _, _ = _generate(client, media["good"], duration=1.0, azimuth=30.0, elevation=10.0)
    played = sf.read(_listen(client, mp4)[2], dtype="float32", always_2d=True)[0].T
    # The download is spatial_360.mp4: the clip on the sphere and the world-frame field, as generated.
    assert read_spherical(mp4)["projection"] == "equirectangular"
    expected = sf.read(foa, dtype="float32", always_2d=True)[0].T
    # The SA3D channel map puts every channel back in its place: per-channel levels match (AAC is lossy).
    level = lambda x: 10 * np.log10(np.mean(x[:, :40000] ** 2, axis=1))  # noqa: E731
    np.testing.assert_allclose(level(played), level(expected), atol=1.0)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("stereo", "stereo.wav has 2 channels; first-order ambisonics has 4"),
        ("text", "text.wav could not be read as audio"),
        ("empty", "empty.wav is empty (0 bytes)"),
        ("nan", "nan.wav cannot be played: 1 NaN/infinite sample"),
    ],
)
def test_listen_refuses_bad_files_with_a_readable_message(client, ambisonics_files, name, message):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as caught:
        _listen(client, ambisonics_files[1][name])
    assert message in str(caught.value) and "Traceback" not in str(caught.value)


def test_page_states_the_limits_and_the_tiny_model(app_url, client):
    config = httpx.get(app_url + "config", timeout=10).text
    assert f"{MAX_VIDEO_SECONDS:g} s" in config and f"{MAX_CLIP_SECONDS:g} s of audio" in config
    assert "random weights: its audio is noise" in client.predict(api_name="/model_status")


# ============================================================================================ in-process


def _load_app_module():
    spec = importlib.util.spec_from_file_location("visage_space_app", ROOT / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_page_loads_and_says_why_when_the_model_cannot_load(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    app = _load_app_module()
    missing = tmp_path / "no-such-model"
    demo = app.build_demo(model=str(missing), output_root=tmp_path / "out", start_loading=True)
    assert demo.model_loader.wait(timeout=30)
    demo.queue().launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    try:
        from gradio_client import Client

        assert httpx.get(demo.local_url, timeout=10).status_code == 200
        status = Client(demo.local_url, verbose=False).predict(api_name="/model_status")
        assert f"**not available**: model folder not found: {missing}" in status
    finally:
        demo.close()


# ============================================================================================ app_logic


@pytest.fixture
def limits():
    return logic.DemoLimits(
        max_upload_mb=1, max_video_seconds=MAX_VIDEO_SECONDS, max_clip_seconds=MAX_CLIP_SECONDS
    )


def _check(video, limits, **overrides):
    arguments = {"start": 0.0, "duration": 1.0, "azimuth": 0.0, "elevation": 0.0, **SETTINGS, "seed": 3}
    arguments.update({"random_seed": False, **overrides})
    return logic.check_request(video, limits=limits, **arguments)


def test_check_request_accepts_a_good_clip(media, limits):
    request, notes = _check(media["good"], limits, azimuth=-45, elevation=20, top_k=100.0)
    assert notes == []
    assert (request.start, request.duration, request.azimuth, request.elevation) == (0.0, 1.0, -45.0, 20.0)
    assert request.top_k == 100 and isinstance(request.top_k, int)
    assert (request.seed, request.random_seed) == (3, False)


def test_check_request_shortens_a_clip_that_runs_past_the_end(media, limits):
    request, notes = _check(media["good"], limits, start=1.2, duration=2.0)
    assert request.duration == pytest.approx(0.8, abs=0.011)
    assert len(notes) == 1 and "generating 0.80 s" in notes[0]


def test_check_request_draws_a_random_seed(media, limits):
    seeds = {_check(media["good"], limits, random_seed=True)[0].seed for _ in range(5)}
    assert len(seeds) > 1 and all(0 <= seed <= logic.MAX_SEED for seed in seeds)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"video": None}, "upload a video"),
        ({"azimuth": 200}, "Azimuth: expected a value from -180° to 180°"),
        ({"elevation": "up"}, "Elevation: expected a number"),
        ({"duration": 0.2}, "Duration: expected at least 0.5 s"),
        ({"duration": 2.5}, "over this demo's limit of 2 s per run"),
        ({"start": 2.8}, "Choose an earlier start"),
        ({"guidance": "loud"}, "Guidance: expected one of joint"),
        ({"top_k": 2.5}, "Top-k: expected a whole number"),
        ({"temperature": 0}, "Temperature: expected a value from 0.05"),
        ({"seed": -1}, "Seed: expected a value from 0"),
    ],
)
def test_check_request_refuses_bad_values(media, limits, overrides, message):
    video = overrides.pop("video", media["good"])
    with pytest.raises(logic.DemoError) as caught:
        _check(video, limits, **overrides)
    assert message in str(caught.value)


def test_check_request_refuses_an_upload_over_the_size_limit_before_decoding(tmp_path, limits, monkeypatch):
    import av

    from visage_hf.video import io as video_io

    # A real video just over the limit (an MP4 of random pixels), so only the size check can refuse it.
    large = moving_object_video(tmp_path / "large.mp4", seconds=0.5, fps=8, width=64, height=48)
    with open(large, "ab") as padding:
        padding.write(np.random.default_rng(0).bytes(limits.max_upload_mb * 2**20))
    opened = []
    monkeypatch.setattr(av, "open", lambda *args, **kwargs: opened.append(args) or pytest.fail("decoded"))
    monkeypatch.setattr(
        video_io, "probe", lambda *args, **kwargs: opened.append(args) or pytest.fail("probed")
    )
    with pytest.raises(logic.DemoError, match="accepts up to 1 MB"):
        _check(large, limits)
    assert opened == []


def test_limits_from_environment(monkeypatch):
    monkeypatch.setenv("VISAGE_MAX_CLIP_SECONDS", "4")
    monkeypatch.setenv("VISAGE_MAX_UPLOAD_MB", "20")
    monkeypatch.setenv("VISAGE_KEEP_SECONDS", "60")
    limits = logic.DemoLimits.from_env()
    # Gradio deletes cached files older than 60 s every 30 s: none lives past 90 s.
    assert limits.keep_seconds == 60 and limits.delete_cache == (30, 60)
    assert (limits.max_clip_seconds, limits.max_upload_mb, limits.max_file_size) == (4.0, 20, "20mb")
    assert "up to 20 MB" in limits.describe() and "to 4 s of audio" in limits.describe()
    monkeypatch.setenv("VISAGE_MAX_CLIP_SECONDS", "lots")
    with pytest.raises(ValueError, match="VISAGE_MAX_CLIP_SECONDS: expected a number"):
        logic.DemoLimits.from_env()


def test_model_loader_reports_a_failure_and_retries():
    calls = []

    def flaky_loader(model):
        calls.append(model)
        if len(calls) == 1:
            raise logic.DemoError("could not download some/model (no network?)")
        return "a pipeline"

    loader = logic.ModelLoader("some/model", loader=flaky_loader)
    assert "loads with the first request" in loader.status()
    with pytest.raises(logic.DemoError, match="not available: could not download"):
        loader.get()
    assert "**not available**: could not download some/model" in loader.status()
    assert loader.get() == "a pipeline" and "ready" in loader.status()
    assert calls == ["some/model", "some/model"]


def test_load_pipeline_compiles_the_generation_kernels_at_load(monkeypatch):
    # At start-up (the loader's thread), not in the first person's request.
    from visage_hf.models import row_kernels

    compiled = []
    monkeypatch.setattr(row_kernels, "compile_kernels", compiled.append)
    monkeypatch.setattr(row_kernels, "available", lambda: True)
    pipeline = logic.load_pipeline("tiny-random")
    assert compiled == [torch.float32] and pipeline.foa_model.dtype == torch.float32


def test_load_pipeline_names_a_missing_folder(tmp_path):
    with pytest.raises(logic.DemoError, match="model folder not found"):
        logic.load_pipeline(str(tmp_path / "missing"))


def test_load_pipeline_offline_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(logic.DemoError, match=r"could not download .* VISAGE_MODEL .* tiny-random"):
        logic.load_pipeline("nobody-here/not-a-cached-model")


def test_prune_outputs_removes_only_old_runs(tmp_path):
    old, new, other = tmp_path / "run-old", tmp_path / "run-new", tmp_path / "examples"
    for folder in (old, new, other):
        folder.mkdir()
    past = time.time() - 7200
    os.utime(old, (past, past))
    os.utime(other, (past, past))
    assert logic.prune_outputs(tmp_path, max_age_seconds=3600) == 1
    assert not old.exists() and new.exists() and other.exists()


def test_outputs_stay_in_the_output_folder_whatever_the_upload_is_called(tmp_path):
    """The upload's name reaches the page, never a path we write: every file a generation makes is inside
    a fresh folder of ``output_root``, under fixed names."""
    from visage_hf.pipelines.pipeline_visage import build_tiny_random_pipeline

    uploads = tmp_path / "gradio" / "0123abcd"
    uploads.mkdir(parents=True)
    video = moving_object_video(uploads / "..mp4", seconds=1.0, fps=8, width=64, height=48)
    named = f"{uploads}/../0123abcd/..mp4"  # a path with a `..` step, to a file named `..mp4`
    output_root = tmp_path / "outputs"
    before = {path for path in tmp_path.rglob("*") if path.is_file()}
    request, _ = _check(named, logic.DemoLimits(), duration=0.5)
    result = logic.run_generation(build_tiny_random_pipeline(), request, output_root)
    made = {path for path in tmp_path.rglob("*") if path.is_file()} - before
    assert made and all(path.resolve().is_relative_to(result.folder.resolve()) for path in made), made
    assert result.folder.parent == output_root and video.is_file()
    assert all(".." not in path.name for path in made), made
