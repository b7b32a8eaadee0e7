"""The pipeline reads a video file with the frame sampling and the 360° projection its model was trained with."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from tests.video.test_sampling import frame_number, write_numbered_video
from visage_hf.pipelines.tiny import build_tiny_random_pipeline
from visage_hf.video.equirect import fov_crop
from visage_hf.video.io import read_frames


def test_tiny_pipeline_samples_like_the_release(tmp_path):
    source = tmp_path / "numbered.mp4"
    write_numbered_video(source, Fraction(25), 6.0, "mp4")
    pipe = build_tiny_random_pipeline()
    assert pipe.foa_model.config.frame_sampling == "ffmpeg"
    frames, _, _ = pipe.load_frames(source, 0.0, 0.0, start=0.5, duration=5.0, equirect=False)
    expected, _ = read_frames(source, fps=4, start=0.5, duration=5.0, sampling="ffmpeg")
    assert [frame_number(image) for image in frames] == [frame_number(image) for image in expected[:20]]
    # FFmpeg: the first frame at or after 0.5 s, the next one (a near duplicate), then 0.75 - 0.04 s on
    assert [frame_number(image) for image in frames][:3] == [13, 14, 18]

    pipe.foa_model.config.frame_sampling = "exact"
    frames, _, _ = pipe.load_frames(source, 0.0, 0.0, start=0.5, duration=5.0, equirect=False)
    assert [frame_number(image) for image in frames][:3] == [12, 18, 25]


def test_equirect_crop_follows_the_model_mode(tmp_path):
    rng = np.random.default_rng(0)
    equirect = rng.integers(0, 256, size=(8, 64, 128, 3), dtype=np.uint8)
    pipe = build_tiny_random_pipeline(mode="original")
    frames, _, is_equirect = pipe.load_frames(equirect, 40.0, 10.0, duration=2.0, equirect=True)
    assert is_equirect
    np.testing.assert_array_equal(frames, fov_crop(equirect, 40.0, 10.0, mode="original"))
    assert not np.array_equal(frames, fov_crop(equirect, 40.0, 10.0, mode="corrected"))
    frames, _, _ = pipe.load_frames(equirect, 40.0, 10.0, duration=2.0, equirect=True, mode="corrected")
    np.testing.assert_array_equal(frames, fov_crop(equirect, 40.0, 10.0, mode="corrected"))
