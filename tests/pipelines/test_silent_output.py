"""Issue 13 (deliver 2): a generation whose FOA is all zero is exported as silence and said to be silent, by
`visage generate`, the app and the energy-map picture, which never marks a loudest direction no sound came from.
The silent result comes from the real pipeline: a tiny-random pipeline whose codec decoder has zero weights."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from matplotlib.figure import Figure

from visage_hf.app import logic
from visage_hf.audio.foa import encode, energy_map
from visage_hf.commands.main import main
from visage_hf.pipelines import tiny
from visage_hf.pipelines.pipeline_visage import VisagePipeline
from visage_hf.video.plotting import _draw_map

_TINY_RANDOM_COMPONENTS = tiny.tiny_random_components


def _silent_components(**kwargs) -> dict:
    """tiny-random's components with a codec that decodes every code to zero (its decoder's weights zeroed)."""
    components = _TINY_RANDOM_COMPONENTS(**kwargs)
    with torch.no_grad():
        for parameter in components["codec"].decoder.parameters():
            parameter.zero_()
    return components


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    from visage_hf.data.synthetic import moving_object_video

    return moving_object_video(
        tmp_path_factory.mktemp("video") / "clip.mp4", 1.0, fps=10, width=96, height=72
    )


def _marks(maps) -> tuple[dict, list[str]]:
    """Line labels -> (x, y) and the texts that `_draw_map` puts on one map (camera at azimuth 30°)."""
    axis = Figure().subplots()
    _draw_map(axis, maps, float(maps.min()), float(maps.max()), True, camera=(30.0, 0.0))
    lines = {line.get_label(): (line.get_xdata()[0], line.get_ydata()[0]) for line in axis.get_lines()}
    return lines, [text.get_text() for text in axis.texts]


def test_energy_map_picture_marks_no_direction_for_silence_or_a_flat_field():
    silence = energy_map(np.zeros((4, 4800), np.float32))
    lines, texts = _marks(silence)
    assert "loudest direction" not in lines and texts == ["silent: no loudest direction"]
    assert "camera direction" in lines  # the camera is still shown
    # W only (an omnidirectional field): as loud everywhere, so also no direction, but not called silent.
    omni = np.zeros((4, 4800), np.float32)
    omni[0] = np.random.default_rng(0).normal(size=4800)
    lines, texts = _marks(energy_map(omni))
    assert "loudest direction" not in lines and texts == ["flat map: no loudest direction"]
    # A source somewhere keeps its cross (the flat test must not swallow real maps).
    tone = np.sin(2 * np.pi * 500 * np.arange(4800) / 48000).astype(np.float32)
    lines, texts = _marks(energy_map(encode(tone, 60.0, 0.0)))
    assert abs(lines["loudest direction"][0] - 60.0) <= 3 and texts == []


def test_generate_of_a_silent_result_says_so_and_marks_no_direction(video, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tiny, "tiny_random_components", _silent_components)
    arguments = ["generate", str(video), "--azimuth", "30", "--model", "tiny-random", "--device", "cpu"]
    assert main([*arguments, "--duration", "0.5", "--greedy", "--quiet", "-o", str(tmp_path / "out")]) == 0
    foa, rate = sf.read(tmp_path / "out" / "foa_ambix.wav")
    assert foa.shape == (round(0.5 * rate), 4) and not foa.any()  # the pipeline did produce silence
    out = capsys.readouterr().out
    assert "which is silent (every sample zero): no loudest direction to mark" in out
    assert "× = loudest direction" not in out
    assert (tmp_path / "out" / "energy_map.png").stat().st_size > 0


def test_app_says_a_silent_result_is_silent(video, tmp_path):
    request, _ = logic.check_request(video, 0.0, 0.5, 30.0, 0.0, seed=1, random_seed=False)
    result = logic.run_generation(VisagePipeline(**_silent_components()), request, tmp_path)
    assert not sf.read(result.foa)[0].any()
    assert result.notes == [logic.SILENT_NOTE] and result.summary.endswith(logic.SILENT_NOTE)
