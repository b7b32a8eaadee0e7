"""`visage generate` and `visage convert-original` end to end (in-process `main([...])`), and the files they write
(visage_hf.pipelines.export), with a tiny random pipeline saved and reloaded from disk; nothing is downloaded."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from visage_hf.audio.foa import direction_from_intensity, encode
from visage_hf.commands import generate as cli
from visage_hf.commands.generate import GUIDANCE_CHOICES
from visage_hf.commands.main import main
from visage_hf.data.synthetic import equirect_scene, moving_object_video
from visage_hf.models.configuration_visage import GUIDANCE_MODES
from visage_hf.pipelines.export import OUTPUT_FILES, export_generation
from visage_hf.pipelines.pipeline_visage import VisagePipeline
from visage_hf.pipelines.tiny import tiny_random_components
from visage_hf.utils import hub
from visage_hf.video.io import audio_track_info, probe, read_audio_track
from visage_hf.video.sa3d import read_sa3d, read_spherical

SAMPLE_RATE = 44100
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ORIGINAL_FIXTURE = "tests/fixtures/original_tiny/foa"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """The tiny random pipeline, saved: `--model DIR` reloads it through `VisagePipeline.from_pretrained`."""
    path = tmp_path_factory.mktemp("model") / "tiny"
    VisagePipeline(**tiny_random_components(seed=0)).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return moving_object_video(
        tmp_path_factory.mktemp("video") / "clip.mp4", seconds=13.0, fps=10, width=96, height=72
    )


def _generate(video, out, *extra, model=None):
    return main(["generate", str(video), "--azimuth", "30", "--elevation", "10", "--quiet", "-o", str(out),
                 *(["--model", str(model)] if model else []), *extra])  # fmt: skip


def _read_wav(path):
    info = sf.info(str(path))
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return data.T, rate, info.subtype


def _no_leftovers(folder):
    """Nothing was written: no output folder, no staging folder beside it."""
    return not folder.exists() and not [
        p for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}")
    ]


# ============================================================================================== the main job


def test_generate_12_s_through_the_windowed_path(model_dir, video, tmp_path, capsys):
    out = tmp_path / "out"
    assert _generate(video, out, "--start", "0.5", "--duration", "12", "--seed", "0", model=model_dir) == 0
    stdout = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES.values())
    for name in OUTPUT_FILES.values():
        assert str(out / name) in stdout
    assert "3 window(s)" in stdout and "44100 Hz" in stdout

    foa, rate, subtype = _read_wav(out / "foa_ambix.wav")
    assert foa.shape == (4, 12 * SAMPLE_RATE) and rate == SAMPLE_RATE and subtype == "FLOAT"
    assert np.isfinite(foa).all() and np.abs(foa).max() > 0
    binaural, rate, _ = _read_wav(out / "binaural.wav")
    assert binaural.shape == (2, 12 * SAMPLE_RATE) and rate == SAMPLE_RATE

    mp4 = out / "spatial.mp4"
    box = read_sa3d(mp4)
    assert box is not None and box["num_channels"] == 4 and box["ambisonic_order"] == 1
    assert (box["ambisonic_channel_ordering"], box["ambisonic_normalization"]) == (0, 0)  # ACN, SN3D
    track = audio_track_info(mp4)
    assert track["channels"] == 4 and track["num_audio_streams"] == 1
    assert probe(mp4).duration == pytest.approx(12.0, abs=0.15)  # the requested segment, not the whole video
    assert read_spherical(mp4) is None  # a field-of-view clip is not declared 360°
    assert (out / "energy_map.png").read_bytes()[:8] == PNG_MAGIC
    assert _no_leftovers(tmp_path / "elsewhere") and len(list(tmp_path.iterdir())) == 1


def test_generate_short_clip_at_48_khz_from_the_env_model(video, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(cli.MODEL_ENV, "tiny-random")
    out = tmp_path / "out"
    assert _generate(video, out, "--duration", "0.7", "--sample-rate", "48000", "--seed", "5") == 0
    assert "noise" in capsys.readouterr().err  # the tiny random model says what it is
    foa, rate, _ = _read_wav(out / "foa_ambix.wav")
    binaural, _, _ = _read_wav(out / "binaural.wav")
    assert rate == 48000 and foa.shape == (4, round(0.7 * 48000)) and binaural.shape == (2, foa.shape[1])
    # The content, not only the length: the model's 44.1 kHz output resampled by scipy (issue 13, weakness 9).
    model_rate = VisagePipeline(**tiny_random_components())(
        video, 30.0, 10.0, duration=0.7, seed=5, progress=False
    )
    reference = resample_poly(model_rate.audio[0].astype(np.float64), 160, 147, axis=-1)[:, : foa.shape[1]]
    peak = np.abs(reference).max()
    assert peak > 1e-3 and np.abs(foa - reference).max() <= 1e-4 * peak  # relative: a 10 % error fails


def test_generate_from_a_360_video_crops_it_and_keeps_it_360(tmp_path, capsys):
    scene = equirect_scene(tmp_path / "scene.mp4", seconds=1.0, object_azimuth=60.0, mux_audio=False)
    out = tmp_path / "out"
    assert main(["generate", str(scene.path), "--azimuth", "60", "--model", "tiny-random", "-o", str(out),
                 "--quiet"]) == 0  # fmt: skip
    assert "360° video" in capsys.readouterr().out
    assert read_spherical(out / "spatial.mp4")["projection"] == "equirectangular"
    assert read_sa3d(out / "spatial.mp4")["num_channels"] == 4


# ============================================================================================== the files


@pytest.fixture(scope="module")
def tone_at_60():
    """A 1 kHz tone encoded at azimuth 60° (the camera direction below), 1 s at 44.1 kHz."""
    time = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    return encode((0.3 * np.sin(2 * np.pi * 1000 * time)).astype(np.float32), 60.0, 0.0)


def _level_db(signal):
    return 10 * np.log10(np.mean(np.square(signal)))


def test_binaural_preview_puts_the_camera_direction_in_front(tone_at_60, tmp_path):
    files = export_generation(tmp_path / "out", tone_at_60, SAMPLE_RATE, 60.0, 0.0)
    left, right = _read_wav(files.binaural)[0]
    # The source sits at the camera direction: in front of the viewer, so both ears get the same level.
    assert abs(_level_db(left) - _level_db(right)) < 1.0
    # Physics check of the reference: unaligned, the source is 60° to the left and the left ear is louder.
    files = export_generation(tmp_path / "unaligned", tone_at_60, SAMPLE_RATE, 0.0, 0.0)
    left, right = _read_wav(files.binaural)[0]
    assert _level_db(left) - _level_db(right) > 3.0
    foa, _, _ = _read_wav(files.foa)
    np.testing.assert_allclose(foa, tone_at_60, atol=1e-7)  # the WAV is the world frame, as generated


def test_mp4_track_is_viewer_aligned_for_flat_video_and_world_frame_for_360(tone_at_60, video, tmp_path):
    flat = export_generation(
        tmp_path / "flat", tone_at_60, SAMPLE_RATE, 60.0, 0.0, video=video, video_start=2.0
    )
    track, rate = read_audio_track(flat.video)
    azimuth, _ = direction_from_intensity(track)
    assert rate == 48000 and track.shape[0] == 4 and abs(azimuth) < 5  # in front of the viewer
    assert probe(flat.video).duration == pytest.approx(1.0, abs=0.15)
    scene = equirect_scene(tmp_path / "scene.mp4", seconds=1.0, object_azimuth=60.0, mux_audio=False)
    world = export_generation(
        tmp_path / "world", tone_at_60, SAMPLE_RATE, 60.0, 0.0, video=scene.path, equirect=True
    )
    azimuth, _ = direction_from_intensity(read_audio_track(world.video)[0])
    assert abs(azimuth - 60.0) < 5 and read_spherical(world.video) is not None


# ============================================================================================== bad input


def _assert_one_line_error(capsys, *fragments):
    err = capsys.readouterr().err.strip()
    assert err.startswith("visage: error: ") and "\n" not in err and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


@pytest.mark.parametrize(
    ("make_input", "extra", "fragments"),
    [
        (lambda tmp, video: _write_bytes(tmp / "corrupt.mp4", b"\x00\x01not a video" * 100), [], ["corrupt"]),
        (lambda tmp, video: _write_bytes(tmp / "empty.mp4", b""), [], ["empty.mp4"]),
        (lambda tmp, video: _write_wav(tmp / "sound.wav"), [], ["expected a video stream"]),
        (lambda tmp, video: video, ["--duration", "0"], ["--duration", "seconds > 0"]),
        (lambda tmp, video: video, ["--start", "100"], ["start=100", "beyond the end"]),
        (lambda tmp, video: video, ["--start", "5", "--duration", "20"], ["past the end"]),
        (lambda tmp, video: tmp / "missing.mp4", [], ["not found", "missing.mp4"]),
    ],
    ids=["corrupt", "zero-byte", "no-video", "zero-duration", "start-beyond-end", "too-long", "missing-file"],
)
def test_bad_input_is_one_line_and_writes_nothing(make_input, extra, fragments, video, tmp_path, capsys):
    source = make_input(tmp_path, video)
    out = tmp_path / "out"
    assert _generate(source, out, *extra, model="tiny-random") == 2
    _assert_one_line_error(capsys, *fragments)
    assert _no_leftovers(out)


def test_missing_model_folder_is_one_line(video, tmp_path, capsys):
    out = tmp_path / "out"
    assert _generate(video, out, model=tmp_path / "no-such-model") == 2
    _assert_one_line_error(capsys, "model folder not found", "no-such-model")
    assert _no_leftovers(out)


def test_default_model_without_network_says_what_to_do(video, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(cli.MODEL_ENV, raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=5.0: False)
    out = tmp_path / "out"
    assert _generate(video, out, "--duration", "1") == 2
    _assert_one_line_error(capsys, "jaeyeonkim99/visage", "offline", "--model tiny-random", "--model DIR")
    assert _no_leftovers(out)


def test_offline_hub_errors_are_recognised(video, tmp_path, capsys, monkeypatch):
    # HF_HUB_OFFLINE with an empty cache: the Hub libraries' own errors must become the one-line hint.
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    out = tmp_path / "out"
    assert _generate(video, out, "--duration", "1", model="someone/some-visage-model") == 2
    _assert_one_line_error(capsys, "someone/some-visage-model", "offline", "tiny-random")
    assert _no_leftovers(out)


def test_output_that_is_a_file_is_refused(video, tmp_path, capsys):
    target = _write_bytes(tmp_path / "taken", b"x")
    assert _generate(video, target, model="tiny-random") == 2
    _assert_one_line_error(capsys, "output folder")


def _write_bytes(path, data):
    path.write_bytes(data)
    return path


def _write_wav(path):
    sf.write(str(path), np.zeros((8000, 2), dtype=np.float32), 8000)
    return path


def test_guidance_choices_are_the_model_modes():
    assert tuple(GUIDANCE_CHOICES) == tuple(GUIDANCE_MODES)


# ============================================================================================== convert-original


def test_convert_original_writes_a_loadable_checkpoint(tmp_path, capsys):
    source = shutil.copytree(ORIGINAL_FIXTURE, tmp_path / "original")
    target = tmp_path / "converted"
    assert main(["convert-original", str(source), str(target)]) == 0
    assert str(target) in capsys.readouterr().out
    config = json.loads((target / "config.json").read_text())
    assert config["model_type"] == "visage" and config["mode"] == "original"
    assert (target / "model.safetensors").is_file()

    assert main(["convert-original", str(source), str(target)]) == 2  # exists: refuse without --overwrite
    _assert_one_line_error(capsys, "overwrite")
    assert main(["convert-original", str(source), str(target), "--overwrite"]) == 0
    capsys.readouterr()
    assert main(["convert-original", str(tmp_path / "nowhere"), str(tmp_path / "x")]) == 2
    _assert_one_line_error(capsys, "checkpoint folder not found", "nowhere")
