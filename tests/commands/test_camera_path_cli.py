"""`visage generate --camera-path PATH.csv`: a moving camera end to end, and bad path files refused in one line
(exit 2) with nothing written."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from visage_hf.commands.main import main
from visage_hf.data.synthetic import moving_object_video
from visage_hf.video.io import probe


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return moving_object_video(
        tmp_path_factory.mktemp("video") / "clip.mp4", seconds=2.0, fps=8, width=64, height=48
    )


def _write(tmp_path, text: str):
    path = tmp_path / "path.csv"
    path.write_text(text)
    return path


def _generate(video, out, *extra):
    return main(["generate", str(video), "--model", "tiny-random", "--duration", "1.5", "--quiet", "-o", str(out),
                 *extra])  # fmt: skip


def test_a_moving_camera_writes_every_output(tmp_path, video, capsys):
    path = _write(tmp_path, "time,azimuth,elevation\n0,-40,0\n1.5,40,10\n")
    out = tmp_path / "out"
    assert _generate(video, out, "--camera-path", str(path)) == 0
    printed = capsys.readouterr().out
    assert "a path of 2 keyframes" in printed and "spatial_360.mp4" in printed
    audio, rate = sf.read(str(out / "binaural.wav"), always_2d=True)
    assert audio.shape == (round(1.5 * rate), 2) and np.abs(audio).max() > 0
    info = probe(out / "spatial_360.mp4")
    assert info.width == 2 * info.height


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time,azimuth\n0,0\n", "missing column(s) elevation"),
        ("time,azimuth,elevation\n1,0,0\n0,10,0\n", "strictly increasing"),
        ("time,azimuth,elevation\n0,nan,0\n", "must be finite"),
        ("time,azimuth,elevation\n0,0,91\n2,0,0\n", "[-90, 90]"),
        ("time,azimuth,elevation\n0,0,0\n1,10,0\n", "covers 0–1 s but the clip is 0–1.5 s"),
    ],
)
def test_bad_path_files_are_one_line_and_nothing_is_written(tmp_path, video, capsys, text, message):
    out = tmp_path / "out"
    assert _generate(video, out, "--camera-path", str(_write(tmp_path, text))) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("visage: error:") and message in error and "\n" not in error
    assert not out.exists()


def test_path_and_fixed_direction_together_are_refused(tmp_path, video, capsys):
    path = _write(tmp_path, "time,azimuth,elevation\n0,0,0\n2,10,0\n")
    assert _generate(video, tmp_path / "out", "--camera-path", str(path), "--azimuth", "30") == 2
    assert "replaces --azimuth/--elevation" in capsys.readouterr().err
