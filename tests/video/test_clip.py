"""The clip reader (visage_hf.video.clip): 4 fps frames over the requested span, refused spans, and the crop of
equirectangular input at the camera direction (found by the colour of an object the test scene put there)."""

from __future__ import annotations

import numpy as np
import pytest

from visage_hf.data.synthetic import equirect_scene, moving_object_video
from visage_hf.video.clip import load_video_clip, probe_clip

RED = np.array([230, 30, 30])


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "moving.mp4"
    return moving_object_video(path, seconds=4.0, fps=10, width=96, height=72)


def test_clip_reader_samples_four_fps_over_the_span(video):
    clip = load_video_clip(video, 30.0, 0.0, start=1.0, duration=1.3)
    assert clip.frames.shape == (6, 72, 96, 3) and clip.frames.dtype == np.uint8  # ceil(1.3 · 4) frames
    assert not clip.equirect and clip.duration == pytest.approx(1.3)
    whole = load_video_clip(video, 30.0, 0.0)
    assert whole.duration == pytest.approx(4.0, abs=0.05) and len(whole.frames) == 16


@pytest.mark.parametrize(
    ("start", "duration", "message"),
    [
        (4.5, None, "beyond the end"),
        (1.0, 5.0, "past the end"),
        (0.0, 0.0, "duration"),
        (-1.0, None, "start"),
    ],
)
def test_clip_reader_rejects_impossible_spans(video, start, duration, message):
    with pytest.raises(ValueError, match=message):
        probe_clip(video, start, duration)
    with pytest.raises(ValueError, match=message):
        load_video_clip(video, 0.0, 0.0, start, duration)


def test_equirect_input_is_cropped_at_the_direction(tmp_path):
    scene = equirect_scene(
        tmp_path / "scene.mp4", seconds=1.0, object_azimuth=60.0, object_elevation=10.0, mux_audio=False
    )
    looking = load_video_clip(scene.path, 60.0, 10.0)
    assert looking.equirect  # detected: 2:1 frames with spherical metadata
    assert looking.frames.shape == (4, 224, 224, 3)
    centre = looking.frames[:, 100:124, 100:124].reshape(-1, 3).mean(axis=0)
    assert np.abs(centre - RED).max() < 40  # the object the scene put at (60°, 10°)
    away = load_video_clip(scene.path, -120.0, 10.0).frames[:, 100:124, 100:124].reshape(-1, 3).mean(axis=0)
    assert np.abs(away - RED).max() > 100
    flat = load_video_clip(scene.path, 60.0, 10.0, equirect=False)
    assert not flat.equirect and flat.frames.shape[1:3] == (128, 256)
