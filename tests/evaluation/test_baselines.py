"""Tests for visage_hf.evaluation.baselines: "Ambi Enc." in both conventions and the two-stage spatialisation hook.

References: physics (an encoded source is found at its direction by the energy map and the intensity
vector) and the original ``data/mono_to_ambi.mono2ambi`` formula typed out from docs/original-implementation.md §9 B7 / §5.5.
"""

import math

import numpy as np
import pytest

from visage_hf.audio.foa import direction_from_energy_map, direction_from_intensity, energy_map
from visage_hf.audio.io import read_audio, write_audio
from visage_hf.directions import angular_distance
from visage_hf.evaluation.baselines import ambi_enc, ambi_enc_from_indices, spatialize_outputs

RATE = 16_000


def _noise(seconds=0.5, seed=0):
    return np.random.default_rng(seed).standard_normal(int(RATE * seconds)).astype(np.float32)


@pytest.mark.parametrize(("azimuth", "elevation"), [(0, 0), (75, 20), (-120, -30), (179, 60)])
def test_sn3d_ambi_enc_is_found_at_the_camera_by_the_energy_map(azimuth, elevation):
    foa = ambi_enc(_noise(), azimuth, elevation, convention="sn3d")
    peak = direction_from_energy_map(energy_map(foa))
    assert angular_distance(*peak, azimuth, elevation) <= 1.5  # the 2° grid
    assert angular_distance(*direction_from_intensity(foa), azimuth, elevation) < 1e-4
    np.testing.assert_allclose(foa[0], _noise(), atol=1e-6)  # SN3D: W = s, |(X, Y, Z)| = |s|
    np.testing.assert_allclose(np.linalg.norm(foa[1:], axis=0), np.abs(_noise()), rtol=1e-5)


def test_original_ambi_enc_has_sqrt2_gain_and_the_mirrored_azimuth():
    mono = _noise(seed=1)
    elevation_index, azimuth_index = 35, 60
    foa = ambi_enc_from_indices(mono, elevation_index, azimuth_index, convention="original")
    # data/mono_to_ambi.mono2ambi, typed out: s = √2·w; x = s cos(el) cos(az); y = s cos(el) sin(az);
    # z = s sin(el); stacked (w, y, z, x), with el = 89 - 2e and az = 2a - 179 in radians.
    el, az = math.radians(89 - 2 * elevation_index), math.radians(azimuth_index * 2 - 179)
    s = math.sqrt(2) * mono.astype(np.float64)
    expected = np.stack(
        [mono, s * math.cos(el) * math.sin(az), s * math.sin(el), s * math.cos(el) * math.cos(az)]
    )
    np.testing.assert_allclose(foa, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(foa[1:], axis=0), math.sqrt(2) * np.abs(mono), rtol=1e-5)
    # The true camera is at azimuth 179 - 2a = 59°; the original's source lands at 2a - 179 = -59°.
    found_azimuth, found_elevation = direction_from_intensity(foa)
    assert found_azimuth == pytest.approx(-59.0, abs=1e-4)
    assert found_elevation == pytest.approx(19.0, abs=1e-4)
    sn3d_azimuth, _ = direction_from_intensity(ambi_enc_from_indices(mono, elevation_index, azimuth_index))
    assert sn3d_azimuth == pytest.approx(59.0, abs=1e-4)


def test_multichannel_input_original_takes_the_first_channel():
    stereo = np.stack([_noise(seed=2), _noise(seed=3)])
    np.testing.assert_allclose(ambi_enc(stereo, 10, 0, "original")[0], stereo[0])
    np.testing.assert_allclose(ambi_enc(stereo, 10, 0, "sn3d")[0], stereo.mean(axis=0), atol=1e-6)
    with pytest.raises(ValueError, match="convention"):
        ambi_enc(stereo[0], 0, 0, convention="fuma")


def test_spatialize_a_folder_of_mono_outputs(tmp_path):
    source = tmp_path / "v2a"
    write_audio(source / "clipA.wav", _noise(seed=4), RATE)
    write_audio(source / "sub" / "clipB.flac", _noise(seed=5), RATE)
    write_audio(source / "clipC.wav", _noise(seed=6), RATE)
    (source / "broken.wav").write_bytes(b"not audio")
    directions = {"clipA": (30.0, 0.0), "clipB": (-90.0, 10.0), "broken": (0.0, 0.0)}
    report = spatialize_outputs(source, directions, tmp_path / "foa", progress=False)
    assert sorted(report.written) == ["clipA", "clipB"]
    assert report.missing_direction == ["clipC"]
    assert list(report.failed) == ["broken"]
    foa, rate = read_audio(tmp_path / "foa" / "clipB.wav")
    assert rate == RATE and foa.shape == (4, RATE // 2)
    assert angular_distance(*direction_from_intensity(foa), -90.0, 10.0) < 1e-3
    again = spatialize_outputs(source, directions, tmp_path / "foa", progress=False)
    assert sorted(again.skipped_existing) == ["clipA", "clipB"] and not again.written


def test_spatialize_a_callable_v2a_model(tmp_path):
    calls = []

    def v2a(clip_id):
        calls.append(clip_id)
        return _noise(seed=len(calls)), 22_050

    report = spatialize_outputs(
        v2a, {"x1": (45.0, 0.0), "x2": (0.0, 45.0)}, tmp_path, convention="original", progress=False
    )
    assert report.written == ["x1", "x2"] and calls == ["x1", "x2"]
    foa, rate = read_audio(tmp_path / "x1.wav")
    assert rate == 22_050
    assert direction_from_intensity(foa)[0] == pytest.approx(-45.0, abs=1e-3)  # original convention mirrors
