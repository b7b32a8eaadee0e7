"""Tests for visage_hf.video.equirect: the field-of-view crop, in both modes.

References are independent of the code under test: panoramas are rendered here from the AmbiX equirect layout
(column j at azimuth 180 - 360 (j + 0.5) / W, image-left = +azimuth); the corrected crop is checked against
the pinhole law ``f·tan(angle)`` and against rays built from the camera's forward/right vectors; the original
mode against a per-pixel loop written from docs/original-implementation.md §5.6 (and the original
``prepare_dataset.project`` it describes).
"""

from __future__ import annotations

import bisect
import math

import numpy as np
import pytest

from visage_hf.video import equirect
from visage_hf.video import io as video


def _equirect_with_marker(height, azimuth, elevation, radius_degrees=4.0):
    """Equirect (H, 2H, 3): a white cap around (azimuth, elevation) on black. Pixel centres: column j at
    azimuth 180 - 360 (j + 0.5) / W (centre = front, image-left = +azimuth), row i at 90 - 180 (i + 0.5) / H."""
    width = 2 * height
    az = np.deg2rad(180.0 - 360.0 * (np.arange(width) + 0.5) / width)[None, :]
    el = np.deg2rad(90.0 - 180.0 * (np.arange(height) + 0.5) / height)[:, None]
    pixels = np.stack(np.broadcast_arrays(np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)), -1)
    a, e = np.deg2rad(azimuth), np.deg2rad(elevation)
    target = np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[pixels @ target >= np.cos(np.deg2rad(radius_degrees))] = 255
    return image


def _centroid(image):
    weights = image[..., 0].astype(float)
    rows, cols = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    return (weights * rows).sum() / weights.sum(), (weights * cols).sum() / weights.sum()


@pytest.mark.parametrize(("azimuth", "elevation"), [(0, 0), (30, 10), (-100, -35), (150, 60)])
def test_corrected_crop_centres_the_direction(azimuth, elevation):
    panorama = _equirect_with_marker(256, azimuth, elevation)
    crop = equirect.fov_crop(panorama, azimuth, elevation, size=65)
    row, col = _centroid(crop)
    assert abs(row - 32) < 0.3 and abs(col - 32) < 0.3


def test_crop_follows_the_pinhole_law():
    """Looking 20° further left (azimuth +20) puts the marker f·tan(20°) right of centre; 15° higher, below."""
    panorama = _equirect_with_marker(256, 10, 0, radius_degrees=2.0)
    size, fov = 129, 90.0
    focal = (size / 2) / math.tan(math.radians(fov / 2))
    row, col = _centroid(equirect.fov_crop(panorama, 30, 0, fov=fov, size=size))
    assert col - 64 == pytest.approx(focal * math.tan(math.radians(20)), abs=0.5)
    assert row == pytest.approx(64, abs=0.5)
    row, col = _centroid(equirect.fov_crop(panorama, 10, 15, fov=fov, size=size))
    assert row - 64 == pytest.approx(focal * math.tan(math.radians(15)), abs=0.5)


@pytest.mark.parametrize("azimuth", [180.0, -176.0])
def test_corrected_crop_wraps_around_the_seam(azimuth):
    panorama = _equirect_with_marker(256, azimuth, 0)
    front = equirect.fov_crop(_equirect_with_marker(256, 0, 0), 0, 0, size=65)
    crop = equirect.fov_crop(panorama, azimuth, 0, size=65)
    row, col = _centroid(crop)
    assert abs(row - 32) < 0.3 and abs(col - 32) < 0.3
    assert crop[..., 0].astype(float).sum() == pytest.approx(front[..., 0].astype(float).sum(), rel=0.03)


@pytest.mark.parametrize("azimuth", [180.0, 0.0, 97.0])
def test_corrected_crop_samples_the_right_longitudes(azimuth):
    """A float panorama 128 + 100·sin(azimuth) (steepest at the seam): each crop pixel must show the value at
    its own ray's azimuth; the ray is built here from the camera's forward/right vectors. Clamping at the
    seam instead of wrapping would leave a ~1-level step there."""
    height, width, size = 128, 256, 33
    column_azimuth = np.deg2rad(180.0 - 360.0 * (np.arange(width) + 0.5) / width)
    panorama = np.broadcast_to((128 + 100 * np.sin(column_azimuth))[None, :, None], (height, width, 3))
    crop = equirect.fov_crop(panorama.astype(np.float32), azimuth, 0.0, size=size)[..., 0]

    a = np.deg2rad(azimuth)
    forward, right, up = (
        np.array([np.cos(a), np.sin(a), 0]),
        np.array([np.sin(a), -np.cos(a), 0]),
        np.array([0, 0, 1]),
    )
    u = (2 * (np.arange(size) + 0.5) / size - 1)[None, :, None]  # tan(45°) = 1
    v = (2 * (np.arange(size) + 0.5) / size - 1)[:, None, None]
    rays = forward + u * right - v * up
    expected = 128 + 100 * np.sin(np.arctan2(rays[..., 1], rays[..., 0]))
    assert np.abs(crop - expected).max() < 0.05


def test_yaw_is_minus_azimuth():
    panorama = _equirect_with_marker(128, 40, 20)
    np.testing.assert_array_equal(
        equirect.fov_crop(panorama, 40, 20, size=33), equirect.equirect_to_fov(panorama, -40, 20, size=33)
    )
    assert equirect.yaw_pitch_to_direction(*equirect.direction_to_yaw_pitch(-170.0, 5.0)) == (-170.0, 5.0)


def _original_project_loop(pano, yaw_degrees, pitch_degrees, out_size):
    """Per-pixel re-implementation of the original ``project()`` (docs/original-implementation.md §5.6): corner rays, R_y(yaw)·R_x(pitch),
    longitude/latitude from lookup tables, MATLAB +1 shift, clamping, then bilinear with black outside."""
    in_h, in_w = pano.shape[:2]
    yaw, pitch = math.radians(yaw_degrees), math.radians(pitch_degrees)
    acos_table = [-math.cos(math.pi * i / (2 * in_w)) for i in range(2 * in_w + 1)]
    atan_table = [math.tan(-math.pi / 2 + math.pi * i / (2 * in_h)) for i in range(2 * in_h + 1)]
    atan_table[0] = math.tan(math.pi / (4 * in_h) - math.pi / 2)
    atan_table[-1] = math.tan(-math.pi / (4 * in_h) + math.pi / 2)

    def table_index(table, value):  # linear interpolation of the index, extrapolated at the ends
        k = min(max(bisect.bisect_right(table, value) - 1, 0), len(table) - 2)
        return k + (value - table[k]) / (table[k + 1] - table[k])

    out = np.zeros((out_size, out_size, pano.shape[2]))
    coords = np.zeros((2, out_size, out_size))
    for row in range(out_size):
        for col in range(out_size):
            x0, y0, z0 = -1 + 2 * col / out_size, -1 + 2 * row / out_size, 1.0
            # R_x(pitch) then R_y(yaw)
            y1, z1 = y0 * math.cos(pitch) - z0 * math.sin(pitch), y0 * math.sin(pitch) + z0 * math.cos(pitch)
            x, y, z = x0 * math.cos(yaw) + z1 * math.sin(yaw), y1, -x0 * math.sin(yaw) + z1 * math.cos(yaw)
            nxz = math.sqrt(x * x + z * z)
            if nxz < 10e-10:
                lat, lon = (math.pi / 2 if y > 0 else -math.pi / 2), 0.0
            else:
                lat = table_index(atan_table, y / nxz) * math.pi / (2 * in_h) - math.pi / 2
                lon = table_index(acos_table, -z / nxz) * math.pi / (2 * in_w)
                lon = -lon if x < 0 else lon
            in_x = min(max(lon / math.pi * (in_w / 2) + in_w / 2 + 1, 1), in_w - 1)
            in_y = min(max(lat / (math.pi / 2) * (in_h / 2) + in_h / 2 + 1, 1), in_h - 1)
            coords[:, row, col] = in_x, in_y
            ix, iy = math.floor(in_x), math.floor(in_y)
            fx, fy = in_x - ix, in_y - iy
            for dy, wy in ((0, 1 - fy), (1, fy)):
                for dx, wx in ((0, 1 - fx), (1, fx)):
                    if 0 <= ix + dx < in_w and 0 <= iy + dy < in_h:
                        out[row, col] += wx * wy * pano[iy + dy, ix + dx]
    return out, coords


@pytest.mark.parametrize(("yaw", "pitch"), [(0, 0), (-89, 1), (179, -20), (37, 88.9)])
def test_original_mode_matches_the_reference_projection(yaw, pitch):
    pano = np.random.default_rng(7).integers(0, 256, (32, 64, 3), dtype=np.uint8)
    expected, expected_coords = _original_project_loop(pano.astype(float), yaw, pitch, 16)
    source_x, source_y = equirect.fov_sampling_grid(32, 64, float(yaw), float(pitch), 90.0, 16, "original")
    np.testing.assert_allclose(source_x, expected_coords[0], atol=1e-9)
    np.testing.assert_allclose(source_y, expected_coords[1], atol=1e-9)
    crop = equirect.equirect_to_fov(pano, yaw, pitch, size=16, mode="original")
    assert np.abs(crop.astype(float) - expected).max() <= 0.5 + 1e-3


def test_original_mode_is_shifted_against_corrected():
    """Near the view centre the original samples 1.5 px right/down (the +1 shift and its pixel-edge equirect
    mapping) minus half an output pixel (its rays through pixel corners): 1.5 - atan(1/224) / (2π/896) px."""
    x_original, y_original = equirect.fov_sampling_grid(448, 896, 0.0, 0.0, 90.0, 224, "original")
    x_corrected, y_corrected = equirect.fov_sampling_grid(448, 896, 0.0, 0.0, 90.0, 224, "corrected")
    expected = 1.5 - math.atan(1 / 224) / (2 * math.pi / 896)
    centre = slice(108, 116)
    assert np.median(x_original[centre, centre] - x_corrected[centre, centre]) == pytest.approx(
        expected, abs=0.01
    )
    assert np.median(y_original[centre, centre] - y_corrected[centre, centre]) == pytest.approx(
        expected, abs=0.01
    )


def test_crop_handles_batches_and_rejects_non_equirect():
    frames = np.stack([_equirect_with_marker(64, 0, 0), _equirect_with_marker(64, 90, 0)])
    crops = equirect.fov_crop(frames, 0, 0, size=17)
    assert crops.shape == (2, 17, 17, 3) and crops.dtype == np.uint8
    np.testing.assert_array_equal(crops[0], equirect.fov_crop(frames[0], 0, 0, size=17))
    assert equirect.fov_crop(frames.astype(np.float32), 0, 0, size=17).dtype == np.float32
    with pytest.raises(ValueError, match="2:1"):
        equirect.fov_crop(np.zeros((64, 64, 3), np.uint8), 0, 0)
    with pytest.raises(ValueError, match="mode"):
        equirect.fov_crop(frames, 0, 0, mode="matlab")


def test_pixel_directions_follow_the_ambix_layout():
    vectors = equirect.equirect_directions(4, 8)
    # Centre columns straddle the front; the left edge is just short of +180° (behind, to the left).
    np.testing.assert_allclose(
        vectors[1:3, 3:5, 0].min(), np.cos(np.deg2rad(22.5)) * np.cos(np.deg2rad(22.5))
    )
    assert vectors[2, 0, 1] > 0 > vectors[2, 7, 1]  # image-left is +y (left)
    assert vectors[0, 0, 2] > 0 > vectors[3, 0, 2]  # top row is up
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=-1), 1.0)


def test_video_module_re_exports_the_crop():
    assert video.fov_crop is equirect.fov_crop and video.equirect_to_fov is equirect.equirect_to_fov
