"""Tests for visage_hf.data.synthetic: the object is where it was asked to be (in the decoded equirect, in the FoV
crop) and the decoded FOA's intensity vector W·(X, Y, Z), computed here, points at it too.

Directions of equirect pixels are computed in this file from the AmbiX layout (image centre = front,
image-left = +azimuth), not with the package's helpers.
"""

from __future__ import annotations

import numpy as np
import pytest

from visage_hf.data import synthetic
from visage_hf.video import io as video
from visage_hf.video import sa3d


def _red_mask(frames):
    frames = frames.astype(int)
    return (frames[..., 0] > 150) & (frames[..., 1] < 100) & (frames[..., 2] < 100)


def _pixel_vectors(height, width):
    azimuth = np.deg2rad(180.0 - 360.0 * (np.arange(width) + 0.5) / width)[None, :]
    elevation = np.deg2rad(90.0 - 180.0 * (np.arange(height) + 0.5) / height)[:, None]
    return np.stack(
        np.broadcast_arrays(
            np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)
        ),
        axis=-1,
    )


def _direction(vector):
    x, y, z = vector / np.linalg.norm(vector)
    return np.rad2deg(np.arctan2(y, x)), np.rad2deg(np.arcsin(z))


def _angle_between(azimuth_a, elevation_a, azimuth_b, elevation_b):
    def unit(az, el):
        az, el = np.deg2rad(az), np.deg2rad(el)
        return np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])

    return np.rad2deg(np.arccos(np.clip(unit(azimuth_a, elevation_a) @ unit(azimuth_b, elevation_b), -1, 1)))


def _object_direction(frame):
    """Mean direction of the object's pixels (a spherical cap's centre, also across the ±180° seam)."""
    mask = _red_mask(frame)
    assert mask.sum() > 10
    return _direction(_pixel_vectors(*frame.shape[:2])[mask].sum(axis=0))


def _intensity_direction(foa):
    w, y, z, x = foa.astype(np.float64)
    return _direction(np.array([np.mean(w * x), np.mean(w * y), np.mean(w * z)]))


@pytest.mark.parametrize(
    ("azimuth", "elevation", "codec"), [(60.0, 20.0, "aac"), (-120.0, -30.0, "opus"), (180.0, 5.0, "aac")]
)
def test_static_object_is_where_asked_in_video_and_audio(tmp_path, azimuth, elevation, codec):
    scene = synthetic.equirect_scene(
        tmp_path / "scene.mp4",
        seconds=1.0,
        object_azimuth=azimuth,
        object_elevation=elevation,
        height=64,
        codec=codec,
    )
    frames, times = video.read_frames(scene.path)
    assert frames.shape == (4, 64, 128, 3)
    np.testing.assert_allclose(times, scene.times)
    for frame in frames:
        assert _angle_between(*_object_direction(frame), azimuth, elevation) < 1.5

    crop = video.fov_crop(frames[0], azimuth, elevation, size=65)
    rows, cols = np.nonzero(_red_mask(crop))
    assert abs(rows.mean() - 32) < 1.0 and abs(cols.mean() - 32) < 1.0

    decoded, rate = video.read_audio_track(scene.path)
    assert rate == 48000 and decoded.shape[0] == 4
    assert _angle_between(*_intensity_direction(decoded), azimuth, elevation) < 1.0
    assert _angle_between(*_intensity_direction(scene.foa), azimuth, elevation) < 1e-3
    assert sa3d.read_sa3d(scene.path)["num_channels"] == 4
    assert sa3d.read_spherical(scene.path)["projection"] == "equirectangular"


def test_moving_object_video_and_audio_follow_the_same_path(tmp_path):
    scene = synthetic.equirect_scene(
        tmp_path / "moving.mp4",
        seconds=2.0,
        object_azimuth=60.0,
        object_elevation=0.0,
        end_azimuth=-60.0,
        end_elevation=20.0,
        height=64,
        sound="noise",
    )
    frames, _ = video.read_frames(scene.path)
    assert len(frames) == 8
    for frame, azimuth, elevation in zip(frames, scene.azimuth, scene.elevation):
        assert _angle_between(*_object_direction(frame), azimuth, elevation) < 1.5
    assert scene.azimuth[0] == pytest.approx(60.0) and scene.azimuth[-1] < -40.0

    audio = scene.foa
    window = scene.sample_rate // 20  # 50 ms around each frame time
    for time, azimuth, elevation in zip(scene.times, scene.azimuth, scene.elevation):
        start = int(time * scene.sample_rate)
        found = _intensity_direction(audio[:, start : start + window])
        assert _angle_between(*found, azimuth, elevation) < 3.0


def test_video_only_scene_and_determinism(tmp_path):
    a = synthetic.equirect_scene(tmp_path / "a.mp4", seconds=0.5, height=32, mux_audio=False, seed=1)
    b = synthetic.equirect_scene(tmp_path / "b.mp4", seconds=0.5, height=32, mux_audio=False, seed=1)
    c = synthetic.equirect_scene(
        tmp_path / "c.mp4", seconds=0.5, height=32, mux_audio=False, seed=2, sound="noise"
    )
    assert video.probe(a.path).has_audio is False
    assert sa3d.read_spherical(a.path)["projection"] == "equirectangular"
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.foa, b.foa)
    assert not np.array_equal(a.frames, c.frames) and not np.array_equal(a.foa, c.foa)
    decoded, _ = video.read_frames(a.path)
    assert np.abs(decoded.astype(int) - a.frames).mean() < 4.0  # lossy H.264 + 4:2:0 chroma


def test_moving_object_video_moves_as_documented(tmp_path):
    path = synthetic.moving_object_video(tmp_path / "disc.mp4", seconds=2.0, fps=10, width=96, height=64)
    info = video.probe(path)
    assert (info.width, info.height, info.num_frames, info.fps) == (96, 64, 20, 10.0)
    frames, _ = video.read_frames(path, fps=None)
    for index in (0, 10, 19):
        _, cols = np.nonzero(_red_mask(frames[index]))
        expected = 96 * (0.2 + 0.6 * index / 19)
        assert abs(cols.mean() + 0.5 - expected) < 1.0
    rendered = synthetic.moving_object_frames(seconds=2.0, fps=10, width=96, height=64)
    np.testing.assert_array_equal(
        rendered, synthetic.moving_object_frames(seconds=2.0, fps=10, width=96, height=64)
    )
    assert not np.array_equal(rendered, synthetic.moving_object_frames(2.0, 10, 96, 64, seed=5))
    assert np.abs(frames.astype(int) - rendered).mean() < 4.0  # lossy H.264 + 4:2:0 chroma


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="seconds"):
        synthetic.moving_object_video(tmp_path / "x.mp4", seconds=0)
    with pytest.raises(ValueError, match="sound"):
        synthetic.equirect_scene(tmp_path / "x.mp4", seconds=0.5, height=16, sound="chirp")
    with pytest.raises(ValueError, match="elevation"):
        synthetic.equirect_scene(tmp_path / "x.mp4", seconds=0.5, object_elevation=120)
    assert not (tmp_path / "x.mp4").exists()


def test_command_line(tmp_path, capsys):
    assert synthetic.main([str(tmp_path / "demo.mp4"), "--seconds", "0.5"]) == 0
    assert video.probe(tmp_path / "demo.mp4").num_frames == 12
    assert (
        synthetic.main([str(tmp_path / "vr.mp4"), "--seconds", "0.5", "--equirect", "--azimuth", "-45"]) == 0
    )
    assert sa3d.read_sa3d(tmp_path / "vr.mp4")["num_channels"] == 4
    assert synthetic.main([str(tmp_path / "bad.mp4"), "--seconds", "0"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert not (tmp_path / "bad.mp4").exists()
