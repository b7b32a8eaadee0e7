"""visage_hf.video.overlay: pixel directions from the pinhole geometry, energy-map look-ups, a source encoded at a
known direction drawn where it is (field-of-view and 360° frames), the preview video's tracks, the camera
picture's layout."""

from __future__ import annotations

import numpy as np
import pytest

from visage_hf.audio.foa import encode, energy_map
from visage_hf.directions import direction_to_vector
from visage_hf.video.io import probe, read_audio_track
from visage_hf.video.overlay import (
    camera_basis,
    camera_direction_picture,
    fov_pixel_directions,
    render_overlay_frames,
    sample_energy_map,
    write_preview_video,
)

GRAY = 128


def _angle_between(az1, el1, az2, el2) -> float:
    return float(
        np.degrees(np.arccos(np.clip(direction_to_vector(az1, el1) @ direction_to_vector(az2, el2), -1, 1)))
    )


@pytest.mark.parametrize(("azimuth", "elevation"), [(0.0, 0.0), (30.0, 10.0), (-150.0, -40.0), (90.0, 80.0)])
def test_camera_basis_is_a_right_handed_frame_looking_at_the_direction(azimuth, elevation):
    forward, left, up = camera_basis(azimuth, elevation)
    np.testing.assert_allclose(forward, direction_to_vector(azimuth, elevation), atol=1e-12)
    np.testing.assert_allclose(np.cross(forward, left), up, atol=1e-12)
    np.testing.assert_allclose(
        np.stack([forward, left, up]) @ np.stack([forward, left, up]).T, np.eye(3), atol=1e-12
    )
    assert abs(left[2]) < 1e-12  # no roll: the horizon stays level


def test_fov_pixel_directions_follow_the_pinhole_geometry():
    size = 201  # odd: a pixel sits exactly at the centre
    focal = (size / 2) / np.tan(np.radians(45.0))
    azimuth, elevation = fov_pixel_directions(size, size, 30.0, 0.0)
    assert (azimuth[100, 100], elevation[100, 100]) == pytest.approx((30.0, 0.0), abs=1e-9)
    half_width = np.degrees(np.arctan(100 / focal))  # centre of the edge pixel, 100 px off axis
    assert (azimuth[100, 0], elevation[100, 0]) == pytest.approx(
        (30.0 + half_width, 0.0), abs=1e-9
    )  # image-left = left
    assert (azimuth[100, -1], elevation[100, -1]) == pytest.approx((30.0 - half_width, 0.0), abs=1e-9)
    assert (azimuth[0, 100], elevation[0, 100]) == pytest.approx((30.0, half_width), abs=1e-9)  # top = up
    corner = np.degrees(np.arctan(np.hypot(100, 100) / focal))
    assert _angle_between(azimuth[0, 0], elevation[0, 0], 30.0, 0.0) == pytest.approx(corner, abs=1e-9)


def test_fov_pixel_directions_tilted_camera_keeps_angles_to_the_centre():
    azimuth, elevation = fov_pixel_directions(160, 120, -100.0, 35.0)
    focal = 60 / np.tan(np.radians(45.0))
    rows, columns = np.meshgrid(np.arange(120) + 0.5 - 60, np.arange(160) + 0.5 - 80, indexing="ij")
    expected = np.degrees(np.arctan(np.hypot(rows, columns) / focal))
    found = np.degrees(
        np.arccos(np.clip(direction_to_vector(azimuth, elevation) @ direction_to_vector(-100.0, 35.0), -1, 1))
    )
    np.testing.assert_allclose(found, expected, atol=1e-6)


def test_sample_energy_map_hits_grid_values_and_wraps_at_the_back():
    from visage_hf.audio.foa import spherical_grid

    rng = np.random.default_rng(0)
    maps = rng.random((2, 90, 180))
    azimuths, elevations = spherical_grid(2.0)
    rows, columns = [3, 45, 89], [0, 89, 179]
    found = sample_energy_map(maps, azimuths[columns], elevations[rows])
    np.testing.assert_allclose(found, maps[:, rows, columns], atol=1e-12)
    # Azimuth 179° lies halfway between the last column (−180°) and the first (178°).
    halfway = sample_energy_map(maps[0], 179.0, elevations[10])
    assert halfway == pytest.approx((maps[0, 10, 0] + maps[0, 10, 179]) / 2)


def _source_maps(
    azimuth: float, elevation: float, sample_rate: int = 8000, seconds: float = 1.0, window: float = 0.25
):
    noise = np.random.default_rng(1).standard_normal(int(sample_rate * seconds)).astype(np.float32) * 0.1
    return energy_map(encode(noise, azimuth, elevation), sample_rate, window_seconds=window, resolution=2.0)


def _changed(frames: np.ndarray) -> np.ndarray:
    return np.abs(frames.astype(np.float32) - GRAY).sum(axis=-1)


def _brightest_centre(pixels: np.ndarray) -> np.ndarray:
    """Mean index of the brightest pixels along the last pixel axis (the top of a first-order map is flat
    within a few degrees, so whole-number pixels tie there; the tie is symmetric about the peak)."""
    brightness = pixels.astype(float).sum(axis=-1)
    top = brightness >= brightness.max(axis=-1, keepdims=True) - 1
    return (top * (np.arange(brightness.shape[-1]) + 0.5)).sum(axis=-1) / top.sum(axis=-1)


def test_overlay_draws_a_source_where_it_is_in_the_view_and_on_the_sphere():
    maps = _source_maps(25.0, 0.0)
    frames = np.full((4, 120, 160, 3), GRAY, dtype=np.uint8)
    output = render_overlay_frames(
        frames, np.arange(4) * 0.25, maps, 0.25, azimuth=0.0, elevation=0.0, height=270
    )
    view_width = 360  # 160 x 120 scaled to a height of 270
    assert output.shape == (4, 270, view_width + 540, 3)
    view, panel = output[:, :, :view_width], output[:, :, view_width:]
    focal = 135 / np.tan(np.radians(45.0))
    expected_column = view_width / 2 - focal * np.tan(np.radians(25.0))  # left of the centre
    # Inferno's lightness grows with the value, and so does the overlay's opacity: brightest = loudest.
    np.testing.assert_allclose(_brightest_centre(view[:, 135]), expected_column, atol=5)
    np.testing.assert_allclose(180.0 - _brightest_centre(panel[:, 135]) / 540 * 360, 25.0, atol=2)


def test_overlay_on_equirect_frames_marks_the_source_direction():
    maps = _source_maps(-60.0, 30.0)
    frames = np.full((2, 90, 180, 3), GRAY, dtype=np.uint8)
    output = render_overlay_frames(
        frames, np.array([0.0, 0.5]), maps, 0.25, 0.0, 0.0, equirect=True, height=270
    )
    assert output.shape == (2, 270, 540, 3)
    change = _changed(output[0])
    change[:, :] = np.where(
        np.all(output[0] == [120, 220, 255], axis=-1), 0, change
    )  # ignore the view outline
    row, column = np.unravel_index(np.argmax(change), change.shape)
    assert (row + 0.5, column + 0.5) == pytest.approx(((90 - 30) / 180 * 270, (180 + 60) / 360 * 540), abs=8)


def test_overlay_quiet_moments_fade():
    sample_rate = 8000
    noise = np.random.default_rng(2).standard_normal(sample_rate).astype(np.float32)
    noise[sample_rate // 2 :] *= 1e-3  # loud first half, nearly silent second half
    maps = energy_map(encode(noise, 0.0, 0.0), sample_rate, window_seconds=0.25)
    frames = np.full((4, 60, 80, 3), GRAY, dtype=np.uint8)
    output = render_overlay_frames(frames, np.arange(4) * 0.25, maps, 0.25, 0.0, 0.0, height=60)
    change = _changed(output[:, :, :80]).mean(axis=(1, 2))
    assert change[0] > 10 * change[3]


def test_write_preview_video_has_even_frames_and_left_right_audio(tmp_path):
    sample_rate = 44100
    time = np.arange(sample_rate) / sample_rate
    audio = np.stack([0.3 * np.sin(2 * np.pi * 440 * time), 0.3 * np.sin(2 * np.pi * 1500 * time)]).astype(
        np.float32
    )
    frames = np.random.default_rng(0).integers(0, 255, (10, 61, 81, 3), dtype=np.uint8)
    path = write_preview_video(tmp_path / "preview.mp4", frames, 10.0, audio, sample_rate)
    info = probe(path)
    assert (info.width, info.height, info.codec) == (82, 62, "h264")
    assert info.duration == pytest.approx(1.0, abs=0.05) and info.audio_channels == 2
    track, rate = read_audio_track(path)
    spectrum = np.abs(np.fft.rfft(track[:, rate // 4 : 3 * rate // 4], axis=-1))
    frequencies = np.fft.rfftfreq(rate // 2, 1 / rate)
    assert frequencies[np.argmax(spectrum, axis=-1)] == pytest.approx([440, 1500], abs=5)  # left, right
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


def test_write_preview_video_needs_stereo(tmp_path):
    with pytest.raises(ValueError, match=r"expected stereo \(2, samples\)"):
        write_preview_video(
            tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.uint8), 10.0, np.zeros((4, 100)), 8000
        )


def _marker_centre(picture: np.ndarray) -> tuple[float, float]:
    """Centre of the camera-direction dot (#ea580c) in the map on the right half of the picture."""
    half = picture.shape[1] // 2
    target = np.array([0xEA, 0x58, 0x0C])
    close = np.abs(picture[:, half:].astype(int) - target).sum(axis=-1) < 30
    rows, columns = np.nonzero(close)
    return rows.mean(), columns.mean()


def test_camera_direction_picture_puts_left_on_the_left_and_up_on_top():
    picture = camera_direction_picture(0.0, 0.0, height=220)
    assert picture.shape == (220, 528, 3) and picture.dtype == np.uint8
    _, left_column = _marker_centre(camera_direction_picture(90.0, 0.0))
    _, right_column = _marker_centre(camera_direction_picture(-90.0, 0.0))
    upper_row, _ = _marker_centre(camera_direction_picture(0.0, 45.0))
    lower_row, _ = _marker_centre(camera_direction_picture(0.0, -45.0))
    assert left_column < right_column and upper_row < lower_row


def test_camera_direction_picture_refuses_impossible_elevation():
    with pytest.raises(ValueError, match="elevation"):
        camera_direction_picture(0.0, 120.0)


def test_sphere_panel_outlines_the_view_at_the_camera_direction():
    maps = _source_maps(0.0, 0.0)
    frames = np.full((1, 90, 90, 3), GRAY, dtype=np.uint8)
    output = render_overlay_frames(frames, np.zeros(1), maps, 0.25, azimuth=60.0, elevation=-20.0, height=180)
    panel = output[0, :, 180:]
    rows, columns = np.nonzero(np.all(panel == [120, 220, 255], axis=-1))
    # A 90° square view around (60°, -20°): its outline is centred there (to within the pole-ward bulge).
    assert columns.mean() + 0.5 == pytest.approx((180 - 60) / 360 * 360, abs=4)
    assert rows.mean() + 0.5 == pytest.approx((90 + 20) / 180 * 180, abs=8)
