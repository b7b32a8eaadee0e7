"""A camera path through the pipeline: the model sees the path's direction at every 4-fps frame in every window,
and a constant path is exactly the scalar call."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from visage_hf import build_tiny_random_pipeline
from visage_hf.directions import direction_to_model_vector
from visage_hf.video.camera_path import CameraPath

FPS = 4


@pytest.fixture(scope="module")
def pipe():
    torch.set_num_threads(1)
    return build_tiny_random_pipeline(window_video_frames=20)  # 5-s windows, like the release


def _frames(seconds: float) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(int(seconds * FPS), 48, 64, 3), dtype=np.uint8)


def test_model_sees_the_path_in_both_windows_of_an_8_s_clip(pipe):
    """A horizontal pan at constant angular speed: azimuth is linear in time (closed form)."""
    path = CameraPath.from_keyframes([(0.0, -60.0, 0.0), (8.0, 60.0, 0.0)])
    seen = []
    hook = pipe.foa_model.model.encoder.register_forward_pre_hook(
        lambda module, args: seen.append(args[2].clone())
    )
    try:
        out = pipe(_frames(8.0), camera_path=path, guidance="none", do_sample=False, progress=False)
    finally:
        hook.remove()
    assert len(out.windows) == 2 and len(seen) == 2
    times = np.arange(32) / FPS
    expected = torch.as_tensor(
        direction_to_model_vector(-60.0 + 15.0 * times, np.zeros(32)), dtype=torch.float32
    )
    for window, direction in zip(out.windows, seen):
        assert direction.shape == (1, window.num_video_frames, 3)
        torch.testing.assert_close(
            direction[0], expected[window.video_start : window.video_stop], rtol=0, atol=1e-6
        )


def test_constant_path_is_the_scalar_call(pipe):
    frames = _frames(2.0)
    scalar = pipe(frames, azimuth=30.0, elevation=10.0, seed=3, progress=False)
    constant = pipe(frames, camera_path=CameraPath.constant(30.0, 10.0), seed=3, progress=False)
    assert torch.equal(scalar.codes, constant.codes)


def test_a_path_shorter_than_the_clip_is_refused(pipe):
    path = CameraPath.from_keyframes([(0.0, 0.0, 0.0), (1.0, 20.0, 0.0)])
    with pytest.raises(ValueError, match="covers 0–1 s but the clip is 0–2 s"):
        pipe(_frames(2.0), camera_path=path, progress=False)


def test_direction_and_path_together_are_refused(pipe):
    with pytest.raises(ValueError, match="either azimuth/elevation or camera_path"):
        pipe(_frames(1.0), azimuth=0.0, elevation=0.0, camera_path=CameraPath.constant(0, 0), progress=False)
