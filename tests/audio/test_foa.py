"""FOA core against physics, closed forms, scipy, naive loops and the original's published numbers."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from visage_hf.audio import foa

SAMPLE_RATE = 8000


def _unit(azimuth, elevation):
    az, el = np.deg2rad(azimuth), np.deg2rad(elevation)
    return np.array(np.broadcast_arrays(np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)))


def _angle_between(u, v):
    return np.rad2deg(np.arccos(np.clip(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v), -1, 1)))


def _plane_wave(signal, azimuth, elevation):
    """Textbook AmbiX (ACN, SN3D) plane wave: W = s, Y = s·u_y, Z = s·u_z, X = s·u_x."""
    x, y, z = _unit(azimuth, elevation)
    return np.stack([signal, y * signal, z * signal, x * signal])


def _original_grid():
    """`utils/view_video.spherical_grid(2.0)` then `np.flipud` of the maps (docs/original-implementation.md §6.2), restated."""
    azimuths = np.flip(np.arange(-180.0, 180.0, 2.0))
    elevations = np.flip(np.arange(-90.0, 90.0, 2.0))
    return azimuths, elevations


@pytest.fixture(scope="module")
def noise():
    return np.random.default_rng(1234).standard_normal(2048)


# ----------------------------------------------------------------------------- localisation (physics)


def _ten_degree_directions():
    directions = [(0.0, 90.0), (0.0, -90.0)]
    for elevation in range(-80, 90, 10):
        directions += [(float(azimuth), float(elevation)) for azimuth in range(-170, 190, 10)]
    return directions


def test_sources_on_a_ten_degree_grid_are_found(noise):
    mono = noise.astype(np.float32)
    worst_map, worst_intensity = 0.0, 0.0
    for azimuth, elevation in _ten_degree_directions():  # poles and the ±180° seam included
        field = foa.encode(mono, azimuth, elevation)
        found = foa.direction_from_energy_map(foa.energy_map(field))
        worst_map = max(worst_map, _angle_between(_unit(*found), _unit(azimuth, elevation)))
        found = foa.direction_from_intensity(field)
        worst_intensity = max(worst_intensity, _angle_between(_unit(*found), _unit(azimuth, elevation)))
    assert worst_map <= 2.0 + 1e-9  # one grid step
    assert worst_intensity < 1.0


def test_energy_map_of_a_plane_wave_is_the_closed_form_beam(noise):
    azimuth, elevation = 130.0, -25.0
    maps = foa.energy_map(_plane_wave(noise, azimuth, elevation))
    grid_azimuth, grid_elevation = _original_grid()
    cosine = np.einsum(
        "i...,i->...", _unit(grid_azimuth[None, :], grid_elevation[:, None]), _unit(azimuth, elevation)
    )
    rms = np.sqrt(np.mean(noise**2))
    np.testing.assert_allclose(maps, rms * (1.0 + cosine), atol=1e-10)  # SN3D grid beam: 1 + cos α


def test_original_normalization_biases_the_peak_toward_the_horizon(noise):
    maps = foa.energy_map(_plane_wave(noise, 0.0, 40.0), normalization="original")
    _, found_elevation = foa.direction_from_energy_map(maps)
    # Closed form of the original's beam at azimuth 0: 1 + √2 cos ν cos 40° + sin ν sin 40°, maximal at
    # tan ν = sin 40° / (√2 cos 40°).
    expected = np.rad2deg(np.arctan(np.sin(np.deg2rad(40)) / (np.sqrt(2) * np.cos(np.deg2rad(40)))))
    assert abs(found_elevation - expected) <= 1.0 and found_elevation < 35


# ----------------------------------------------------------------------------- rotation


def test_rotate_encode_commutes_with_rotating_the_direction(noise):
    rng = np.random.default_rng(7)
    mono = noise[:256].astype(np.float32)
    for _ in range(20):
        yaw, pitch, roll = rng.uniform(-180, 180), rng.uniform(-90, 90), rng.uniform(-180, 180)
        azimuth, elevation = rng.uniform(-180, 180), rng.uniform(-90, 90)
        rotated = foa.rotate(foa.encode(mono, azimuth, elevation), yaw, pitch, roll)
        moved = foa.rotate_direction(azimuth, elevation, yaw, pitch, roll)
        np.testing.assert_allclose(rotated, foa.encode(mono, *moved), atol=1e-6)


def test_rotation_matrix_matches_scipy_and_the_axis_conventions():
    rng = np.random.default_rng(3)
    for _ in range(20):
        yaw, pitch, roll = rng.uniform(-180, 180, 3)
        # Extrinsic z, then y, then x: R = Rx(roll)·Ry(pitch)·Rz(yaw), an independent implementation.
        expected = Rotation.from_euler("zyx", [yaw, pitch, roll], degrees=True).as_matrix()
        np.testing.assert_allclose(foa.rotation_matrix(yaw, pitch, roll), expected, atol=1e-12)
        azimuth, elevation = rng.uniform(-180, 180), rng.uniform(-89, 89)
        moved = foa.rotate_direction(azimuth, elevation, yaw, pitch, roll)
        assert _angle_between(_unit(*moved), expected @ _unit(azimuth, elevation)) < 1e-6
    # docs/original-implementation.md §E4.4: +yaw moves sources left, +pitch tips the front down, +roll lifts the left.
    assert _angle_between(_unit(*foa.rotate_direction(0, 0, yaw=90)), [0, 1, 0]) < 1e-9
    assert _angle_between(_unit(*foa.rotate_direction(0, 0, pitch=90)), [0, 0, -1]) < 1e-9
    assert _angle_between(_unit(*foa.rotate_direction(90, 0, roll=90)), [0, 0, 1]) < 1e-9


def test_original_augmentation_is_yaw_minus_90(noise):
    field = np.random.default_rng(5).standard_normal((4, 300))
    w, y, z, x = field
    swapped = np.stack([w, -x, z, y])  # infer_dac.py --rotate: Y' = −X, X' = Y
    np.testing.assert_allclose(foa.rotate(field, yaw=-90), swapped, atol=1e-6)
    batch = np.stack([field, 2 * field])
    np.testing.assert_allclose(foa.rotate(batch, yaw=-90)[1], 2 * swapped, atol=1e-5)


def test_rotation_to_the_camera_direction_makes_it_the_front(noise):
    azimuth, elevation = -70.0, 35.0
    field = foa.rotate(foa.encode(noise, azimuth, elevation), yaw=-azimuth, pitch=elevation)
    assert _angle_between(_unit(*foa.direction_from_intensity(field)), [1, 0, 0]) < 1e-4


# ----------------------------------------------------------------------------- conventions


def test_fuma_of_a_plane_wave_has_the_textbook_values(noise):
    azimuth, elevation = 35.0, -20.0
    fuma = foa.ambix_to_fuma(foa.encode(noise, azimuth, elevation))
    az, el = np.deg2rad(azimuth), np.deg2rad(elevation)
    expected = np.stack(
        [
            noise / np.sqrt(2),
            noise * np.cos(az) * np.cos(el),
            noise * np.sin(az) * np.cos(el),
            noise * np.sin(el),
        ]
    )
    np.testing.assert_allclose(fuma, expected, atol=1e-6)


def test_convention_round_trips():
    field = np.random.default_rng(0).standard_normal((2, 4, 100))
    np.testing.assert_allclose(foa.fuma_to_ambix(foa.ambix_to_fuma(field)), field, atol=1e-6)
    np.testing.assert_allclose(foa.n3d_to_sn3d(foa.sn3d_to_n3d(field)), field, atol=1e-6)
    n3d = foa.sn3d_to_n3d(field[0])
    np.testing.assert_allclose(n3d[0], field[0, 0], atol=1e-6)
    np.testing.assert_allclose(n3d[1:], np.sqrt(3) * field[0, 1:], atol=1e-5)  # √(2l + 1) at l = 1


# ----------------------------------------------------------------------------- virtual microphones


@pytest.mark.parametrize("pattern", [0.0, 0.3, 0.5, 0.75, 1.0, "cardioid", "figure8"])
def test_virtual_microphone_gains_are_the_closed_form(pattern, noise):
    p = foa.PATTERNS.get(pattern, pattern)
    azimuth, elevation = 40.0, 15.0
    field = foa.encode(noise, azimuth, elevation)
    cases = {
        0.0: (azimuth, elevation),
        90.0: (azimuth, elevation - 90.0),
        180.0: (azimuth + 180.0, -elevation),
    }
    for angle, direction in cases.items():
        assert _angle_between(_unit(*direction), _unit(azimuth, elevation)) == pytest.approx(angle, abs=1e-6)
        out = foa.virtual_microphone(field, *direction, pattern=pattern)
        gain = (1 - p) + p * np.cos(np.deg2rad(angle))
        np.testing.assert_allclose(out, gain * noise, atol=2e-6)


def test_decode_mono_modes(noise):
    field = np.random.default_rng(2).standard_normal((4, 200))
    azimuth, elevation = 30.0, -10.0
    az, el = np.deg2rad(azimuth), np.deg2rad(elevation)
    w, y, z, x = field
    original = (
        w + np.cos(el) * np.cos(az) * x + np.cos(el) * np.sin(az) * y + np.sin(el) * z
    )  # §6.7 ambi2mono
    np.testing.assert_allclose(
        foa.decode_mono(field, azimuth, elevation, mode="original"), original, atol=1e-5
    )
    np.testing.assert_allclose(foa.decode_mono(field, azimuth, elevation), original / 2, atol=1e-5)
    on_axis = foa.encode(noise, azimuth, elevation)
    np.testing.assert_allclose(foa.decode_mono(on_axis, azimuth, elevation), noise, atol=2e-6)  # unit gain
    np.testing.assert_allclose(
        foa.decode_mono(on_axis, azimuth, elevation, mode="original"), 2 * noise, atol=4e-6
    )


def test_decode_stereo_is_a_pair_of_cardioids(noise):
    left, right = foa.decode_stereo(foa.encode(noise, 90.0, 0.0))
    np.testing.assert_allclose(left, noise, atol=2e-6)  # on the left mic's axis
    np.testing.assert_allclose(right, 0.0, atol=2e-6)  # in the right mic's null
    left, right = foa.decode_stereo(foa.encode(noise, 0.0, 0.0))
    np.testing.assert_allclose([left, right], [noise / 2, noise / 2], atol=2e-6)  # 90° off both
    # Looking up at 60° elevation toward azimuth 30: a source there is 90° off both mics.
    left, right = foa.decode_stereo(foa.encode(noise, 30.0, 60.0), azimuth=30.0, elevation=60.0)
    np.testing.assert_allclose([left, right], [noise / 2, noise / 2], atol=2e-6)


def test_virtual_microphone_rejects_bad_patterns(noise):
    field = foa.encode(noise, 0, 0)
    for bad in (-0.1, 1.5, "shotgun", np.nan):
        with pytest.raises(ValueError, match="pattern"):
            foa.virtual_microphone(field, 0, 0, pattern=bad)


# ----------------------------------------------------------------------------- spherical harmonics and maps


def test_grid_is_the_originals():
    azimuths, elevations = foa.spherical_grid(2.0)
    expected_azimuths, expected_elevations = _original_grid()
    np.testing.assert_array_equal(azimuths, expected_azimuths)
    np.testing.assert_array_equal(elevations, expected_elevations)
    assert (azimuths[89], azimuths[44], azimuths[134], elevations[0], elevations[89]) == (0, 90, -90, 88, -90)
    assert foa.grid_sh_matrix().shape == (90, 180, 4)
    with pytest.raises(ValueError, match="resolution"):
        foa.spherical_grid(7.0)


def test_sh_matrix_original_anchor_and_sn3d():
    psi, nu = np.rad2deg(0.3), np.rad2deg(0.4)
    np.testing.assert_allclose(foa.sh_matrix(psi, nu, "original"), [1, 0.38494, 0.38942, 1.24440], atol=1e-5)
    # SN3D real SH (Google spatial-audio RFC; docs/original-implementation.md §E4.2): (1, cos ν sin ψ, sin ν, cos ν cos ψ).
    expected = [1, np.cos(0.4) * np.sin(0.3), np.sin(0.4), np.cos(0.4) * np.cos(0.3)]
    np.testing.assert_allclose(foa.sh_matrix(psi, nu), expected, atol=1e-12)
    np.testing.assert_allclose(
        foa.sh_matrix(psi, nu, "n3d"), np.array(expected) * [1, *[np.sqrt(3)] * 3], atol=1e-12
    )


def _naive_energy_maps(field, window, normalization):
    """Decode every sample at every grid point, then RMS over each window (the original's einsum)."""
    grid_azimuth, grid_elevation = _original_grid()
    az, el = np.deg2rad(grid_azimuth)[None, :], np.deg2rad(grid_elevation)[:, None]
    horizontal = np.sqrt(2) if normalization == "original" else 1.0
    weights = np.stack(
        np.broadcast_arrays(
            1.0, horizontal * np.cos(el) * np.sin(az), np.sin(el), horizontal * np.cos(el) * np.cos(az)
        ),
        axis=-1,
    )  # (H, W, 4) for W, Y, Z, X
    maps = []
    for start in range(0, field.shape[1] - window + 1, window):
        decoded = np.einsum("hwc,ct->hwt", weights, field[:, start : start + window].astype(np.float64))
        maps.append(np.sqrt(np.mean(decoded**2, axis=-1)))
    return np.stack(maps)


@pytest.mark.parametrize("normalization", ["sn3d", "original"])
@pytest.mark.parametrize("chunk", [None, 100])
def test_covariance_energy_map_equals_the_naive_decode(normalization, chunk, monkeypatch):
    if chunk is not None:  # long recordings are converted to float64 chunk by chunk: same result
        monkeypatch.setattr(foa, "_CHUNK_SAMPLES", chunk)
    rng = np.random.default_rng(11)
    field = (rng.standard_normal((4, 450)) * [[1.0], [0.3], [0.7], [0.2]]).astype(np.float32)
    whole = foa.energy_map(field, normalization=normalization)
    np.testing.assert_allclose(whole, _naive_energy_maps(field, 450, normalization)[0], rtol=1e-6, atol=1e-9)
    # 0.02 s windows at 8 kHz = 160 samples: 2 full windows, the trailing 130 samples are dropped.
    windowed = foa.energy_map(field, SAMPLE_RATE, 0.02, normalization=normalization)
    assert windowed.shape == (2, 90, 180)
    np.testing.assert_allclose(windowed, _naive_energy_maps(field, 160, normalization), rtol=1e-6, atol=1e-9)


def test_energy_map_window_counts_like_the_paper():
    field = np.random.default_rng(0).standard_normal((4, 5 * 1600)).astype(np.float32)
    assert foa.energy_map(field, 1600, 1.0).shape == (5, 90, 180)
    assert foa.energy_map(field, 1600, 0.2).shape == (25, 90, 180)
    assert foa.energy_map(field, resolution=5.0).shape == (36, 72)
    with pytest.raises(ValueError, match="sample_rate"):
        foa.energy_map(field, window_seconds=0.2)
    with pytest.raises(ValueError, match="window"):
        foa.energy_map(field, 1600, 10.0)


def test_silence_gives_a_zero_map_not_nan():
    maps = foa.energy_map(np.zeros((4, 100), dtype=np.float32))
    assert np.all(maps == 0.0)
    with pytest.raises(ValueError, match="intensity"):
        foa.direction_from_intensity(np.zeros((4, 100)))


def test_a_flat_map_points_nowhere():
    """Silence has no direction: NaN, not the first grid cell (+178°, +88°) that argmax of zeros picks."""
    assert all(np.isnan(foa.direction_from_energy_map(np.zeros((90, 180)))))
    assert all(np.isnan(foa.direction_from_energy_map(np.full((90, 180), 0.3))))
    # Per window: a silent window points nowhere, a sounding one is still found.
    sound = np.random.default_rng(0).standard_normal(2000)
    field = np.concatenate([np.zeros((4, 2000)), foa.encode(sound, 60.0, 10.0)], axis=1)
    azimuths, elevations = foa.direction_from_energy_map(foa.energy_map(field, 2000, 1.0))
    assert np.isnan(azimuths[0]) and np.isnan(elevations[0])
    assert abs(azimuths[-1] - 60.0) <= 2.0 and abs(elevations[-1] - 10.0) <= 2.0


def _naive_er_sphere_sample(data):
    """docs/original-implementation.md §6.3 restated: per row, S = round(W sin(π(r + ½)/H)) points by np.interp with period 360."""
    height, width = data.shape
    out = []
    for row in range(height):
        count = np.round(width * np.sin(np.pi * (row + 0.5) / height))
        positions = np.arange(count) * (width - 0.5 * (width / count)) / count
        out.extend(np.interp(positions, np.arange(width), data[row], period=360).tolist())
    return np.array(out)


def test_equal_area_resample_matches_the_original():
    rng = np.random.default_rng(4)
    maps = rng.random((3, 90, 180))
    resampled = foa.equal_area_resample(maps)
    assert resampled.shape == (3, 10312)
    for index in range(3):
        np.testing.assert_allclose(resampled[index], _naive_er_sphere_sample(maps[index]), atol=1e-12)
    np.testing.assert_allclose(foa.equal_area_resample(maps[0]), resampled[0])
    row_of_each_point = foa.equal_area_resample(np.repeat(np.arange(90.0)[:, None], 180, axis=1))
    counts = np.bincount(np.round(row_of_each_point).astype(int), minlength=90)
    assert counts[:6].tolist() == [3, 9, 16, 22, 28, 34] and counts[-6:].tolist() == [34, 28, 22, 16, 9, 3]
    small = rng.random((9, 18))
    np.testing.assert_allclose(foa.equal_area_resample(small), _naive_er_sphere_sample(small), atol=1e-12)


# ----------------------------------------------------------------------------- trajectories


def _wrap(azimuth):
    return (azimuth + 180.0) % 360.0 - 180.0


def test_trajectory_crosses_the_seam_the_short_way():
    rng = np.random.default_rng(9)
    mono = rng.standard_normal(SAMPLE_RATE).astype(np.float32)  # 1 s
    field = foa.encode(mono, [150.0, -150.0], [0.0, 0.0], sample_rate=SAMPLE_RATE, times=[0.0, 1.0])
    window = 0.1
    centres = (np.arange(10) + 0.5) * window
    expected = 150.0 + 60.0 * centres  # the short way: 150 -> 180 -> 210 (= -150), never through 0
    found_azimuth, found_elevation = foa.direction_from_intensity(field, SAMPLE_RATE, window)
    np.testing.assert_allclose(_wrap(found_azimuth - expected), 0.0, atol=0.5)  # power varies in a window
    np.testing.assert_allclose(found_elevation, 0.0, atol=1e-6)
    map_azimuth, _ = foa.direction_from_energy_map(foa.energy_map(field, SAMPLE_RATE, window))
    assert np.all(np.abs(_wrap(map_azimuth - expected)) <= 2.0)


def test_trajectory_passes_over_the_pole_and_holds_at_the_ends():
    mono = np.random.default_rng(8).standard_normal(SAMPLE_RATE).astype(np.float32)
    times = [0.25, 0.75]
    field = foa.encode(mono, [0.0, 180.0], [80.0, 80.0], sample_rate=SAMPLE_RATE, times=times)
    centres = (np.arange(20) + 0.5) * 0.05
    azimuth, elevation = foa.direction_from_intensity(field, SAMPLE_RATE, 0.05)
    # Great circle over the zenith: elevation rises linearly to 90 at the midpoint, then the azimuth flips.
    progress = np.clip((centres - 0.25) / 0.5, 0, 1)
    expected_polar = 10.0 - 20.0 * progress  # signed angle from the zenith toward azimuth 0
    found_polar = np.where(np.abs(_wrap(azimuth)) < 90, 90.0 - elevation, elevation - 90.0)
    np.testing.assert_allclose(found_polar, expected_polar, atol=0.3)
    # Held before the first and after the last key frame.
    np.testing.assert_allclose(field[:, :100], foa.encode(mono[:100], 0.0, 80.0), atol=1e-6)
    np.testing.assert_allclose(field[:, -100:], foa.encode(mono[-100:], 180.0, 80.0), atol=1e-6)


def test_fixed_direction_with_times_equals_a_fixed_encode(noise):
    moving = foa.encode(noise, 25.0, -5.0, sample_rate=SAMPLE_RATE, times=[0.0, 0.1])
    np.testing.assert_allclose(moving, foa.encode(noise, 25.0, -5.0), atol=1e-6)


def test_trajectory_validation():
    mono = np.zeros(100, dtype=np.float32)
    with pytest.raises(ValueError, match="times"):
        foa.encode(mono, [0.0, 10.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="increasing"):
        foa.encode(mono, [0.0, 10.0], [0.0, 0.0], sample_rate=100, times=[0.5, 0.5])
    with pytest.raises(ValueError, match="opposite"):
        foa.encode(mono, [0.0, 180.0], [0.0, 0.0], sample_rate=100, times=[0.0, 1.0])
    with pytest.raises(ValueError, match="one time per"):
        foa.encode(mono, [0.0, 10.0, 20.0], [0.0, 0.0, 0.0], sample_rate=100, times=[0.0, 1.0])


# ----------------------------------------------------------------------------- bad input


def test_bad_input_is_refused_with_a_clear_message(noise):
    with pytest.raises(ValueError, match=r"\(4, samples\).*\(3, 10\)"):
        foa.energy_map(np.zeros((3, 10)))
    with pytest.raises(ValueError, match="floating-point"):
        foa.rotate(np.zeros((4, 10), dtype=np.int16))
    with pytest.raises(ValueError, match="NaN"):
        foa.energy_map(np.full((4, 10), np.nan))
    with pytest.raises(ValueError, match="empty"):
        foa.ambix_to_fuma(np.zeros((4, 0)))
    with pytest.raises(ValueError, match=r"\[-90, 90\]"):
        foa.encode(noise, 0.0, 91.0)
    with pytest.raises(ValueError, match="mono"):
        foa.encode(np.zeros((2, 10)), 0.0, 0.0)
    np.testing.assert_allclose(
        foa.encode(noise, 400.0, 0.0), foa.encode(noise, 40.0, 0.0), atol=1e-6
    )  # wraps
    assert foa.encode(noise.astype(np.float64), 0, 0).dtype == np.float32
