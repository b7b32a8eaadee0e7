"""The viewer frame: a fixed camera equals `foa.rotate(yaw=-az, pitch=el)`; a moving camera's binaural preview
turns smoothly (ILD monotonic across a pan, no clicks)."""

from __future__ import annotations

import numpy as np
import pytest

from visage_hf.audio.binaural import render_binaural
from visage_hf.audio.foa import direction_from_intensity, encode, rotate
from visage_hf.audio.viewer import to_viewer_frame
from visage_hf.video.camera_path import CameraPath

RATE = 16_000


def _noise(seconds: float, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(int(seconds * RATE)).astype(np.float32) * 0.1


@pytest.mark.parametrize(("azimuth", "elevation"), [(0, 0), (30, 10), (-120, -40), (170, 80)])
def test_fixed_camera_equals_the_rotation_formula(azimuth, elevation):
    foa = encode(_noise(0.2), 50.0, 20.0)
    np.testing.assert_allclose(
        to_viewer_frame(foa, azimuth, elevation), rotate(foa, yaw=-azimuth, pitch=elevation), atol=1e-6
    )


@pytest.mark.parametrize(("source", "camera"), [((40, 0), (40, 0)), ((10, 30), (-20, 5))])
def test_source_seen_by_the_camera_lands_where_the_camera_sees_it(source, camera):
    """Physics: relative to the viewer, a source at the camera direction is straight ahead."""
    aligned = to_viewer_frame(encode(_noise(0.5), *source), *camera)
    azimuth, elevation = direction_from_intensity(aligned, RATE)
    if source == camera:
        assert abs(azimuth) < 0.5 and abs(elevation) < 0.5
    else:
        assert elevation > 0  # the source is above this camera's horizon


def _ild_db(stereo: np.ndarray, windows: int) -> np.ndarray:
    left, right = (np.array_split(channel, windows) for channel in stereo)
    return np.array([10 * np.log10(np.mean(lw**2) / np.mean(rw**2)) for lw, rw in zip(left, right)])


def test_pan_moves_the_image_from_one_ear_to_the_other_monotonically():
    """A world-fixed plane wave at azimuth 0 and a camera panning from -90 to +90: at the start the source is
    on the viewer's left (camera looks right), at the end on the right; the ILD falls monotonically."""
    seconds = 4.0
    foa = encode(_noise(seconds), 0.0, 0.0)
    path = CameraPath.from_keyframes([(0.0, -90.0, 0.0), (seconds / 2, 0.0, 0.0), (seconds, 90.0, 0.0)])
    azimuth, elevation = path.directions_at(np.arange(foa.shape[-1]) / RATE)
    stereo = render_binaural(to_viewer_frame(foa, azimuth, elevation), RATE, peak="none")
    ild = _ild_db(stereo[:, RATE // 10 :], windows=12)
    assert ild[0] > 6 and ild[-1] < -6
    assert np.all(np.diff(ild) < 0), ild


def test_moving_camera_has_no_clicks():
    """Per-sample rotation: the largest sample-to-sample step is no larger than for a fixed camera."""
    tone = np.sin(2 * np.pi * 220 * np.arange(2 * RATE) / RATE).astype(np.float32) * 0.5
    foa = encode(tone, 0.0, 0.0)
    path = CameraPath.from_keyframes([(0.0, -60.0, 0.0), (2.0, 60.0, 0.0)])
    azimuth, elevation = path.directions_at(np.arange(foa.shape[-1]) / RATE)
    moving = to_viewer_frame(foa, azimuth, elevation)
    fixed = to_viewer_frame(foa, 0.0, 0.0)
    assert np.abs(np.diff(moving, axis=-1)).max() <= np.abs(np.diff(fixed, axis=-1)).max() * 1.01


def test_wrong_number_of_directions_is_refused():
    with pytest.raises(ValueError, match="one per sample"):
        to_viewer_frame(np.zeros((4, 10), np.float32), np.zeros(9), np.zeros(9))
