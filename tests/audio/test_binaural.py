"""Binaural rendering checked against physics and closed forms.

A source encoded on the left must be louder in the left ear (interaural level difference, ILD) and reach it
first (interaural time difference, ITD, from cross-correlation); front and back sources are symmetric;
rotating the scene moves the image. This holds for the shipped MIT KEMAR set, for a SOFA file written here
with h5py from an independent spherical-head model, and for the built-in spherical-head model.
"""

import logging

import h5py
import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt

from visage_hf.audio.binaural import (
    DEFAULT_HRIR_FILE,
    BinauralRenderer,
    HRIRSet,
    binaural_filters,
    decoder_matrix,
    default_hrirs,
    load_sofa,
    loudspeaker_layout,
    render_binaural,
    spherical_head_hrirs,
)
from visage_hf.audio.foa import encode, sh_matrix

SR = 44100
HEAD_RADIUS, SPEED_OF_SOUND = 0.0875, 343.0


# ----------------------------------------------------------------------------- helpers


def noise(seconds=0.5, seed=0, sample_rate=SR) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * sample_rate))).astype(np.float32)


def band_ild_db(ears: np.ndarray, sample_rate=SR, band=(1000.0, 4000.0)) -> float:
    """Left-minus-right level in dB within ``band``."""
    sos = butter(4, band, btype="bandpass", fs=sample_rate, output="sos")
    left, right = sosfiltfilt(sos, ears.astype(np.float64), axis=-1)
    return 10 * np.log10(np.sum(left**2) / np.sum(right**2))


def right_ear_lag(ears: np.ndarray, max_lag: int = 60) -> int:
    """The lag k maximising Σ left[n]·right[n + k]: k > 0 means the right ear hears it later (left first)."""
    left, right = ears.astype(np.float64)
    lags = np.arange(-max_lag, max_lag + 1)
    scores = [np.dot(left[max_lag:-max_lag], right[max_lag + k : len(right) - max_lag + k]) for k in lags]
    return int(lags[np.argmax(scores)])


def head_model_hrirs(azimuth, elevation, sample_rate=SR, taps=256, ear_azimuth=90.0):
    """An independent spherical-head HRIR model: Woodworth delay + Brown-Duda shadow, as a time-domain IIR.

    Written separately from visage_hf.audio.binaural.spherical_head_hrirs (bilinear-transformed one-pole filter
    and a windowed-sinc fractional delay instead of frequency sampling).
    """
    from scipy.signal import bilinear, lfilter

    a_over_c = HEAD_RADIUS / SPEED_OF_SOUND
    out = np.zeros((len(azimuth), 2, taps))
    for m, (az, el) in enumerate(zip(azimuth, elevation)):
        source = np.array(
            [
                np.cos(np.radians(el)) * np.cos(np.radians(az)),
                np.cos(np.radians(el)) * np.sin(np.radians(az)),
                np.sin(np.radians(el)),
            ]
        )
        for ear, side in enumerate((1, -1)):
            ear_vector = np.array(
                [np.cos(np.radians(ear_azimuth)), side * np.sin(np.radians(ear_azimuth)), 0.0]
            )
            theta = np.arccos(np.clip(source @ ear_vector, -1, 1))
            alpha = 1.05 + 0.95 * np.cos(theta / np.radians(150) * np.pi)
            delay = -a_over_c * np.cos(theta) if theta < np.pi / 2 else a_over_c * (theta - np.pi / 2)
            delay_samples = (delay + a_over_c) * sample_rate + 10
            n = np.arange(taps)
            impulse = np.sinc(n - delay_samples)  # band-limited delayed impulse
            beta = 2 * SPEED_OF_SOUND / HEAD_RADIUS
            b, a = bilinear([alpha, beta], [1, beta], fs=sample_rate)
            out[m, ear] = lfilter(b, a, impulse)
    return out


def write_sofa(
    path,
    ir,
    azimuth,
    elevation,
    sample_rate=SR,
    cartesian=False,
    receivers_right_first=False,
    delay=None,
    listener_view=(1.0, 0.0, 0.0),
    drop=(),
):
    """Write a SimpleFreeFieldHRIR SOFA file (AES69 layout) with h5py."""
    with h5py.File(path, "w") as f:
        for key, value in {
            "Conventions": "SOFA",
            "Version": "2.1",
            "SOFAConventions": "SimpleFreeFieldHRIR",
            "SOFAConventionsVersion": "1.1",
            "DataType": "FIR",
            "RoomType": "free field",
            "DatabaseName": "test head",
        }.items():
            f.attrs[key] = np.bytes_(value)

        def variable(name, data, **attrs):
            if name in drop:
                return
            dataset = f.create_dataset(name, data=np.asarray(data, dtype=np.float64))
            for key, value in attrs.items():
                dataset.attrs[key] = np.bytes_(value)

        variable("Data.IR", ir)
        variable("Data.SamplingRate", [sample_rate], Units="hertz")
        variable("Data.Delay", np.zeros((1, 2)) if delay is None else delay)
        az = np.mod(azimuth, 360.0)  # SOFA files usually store 0..360
        if cartesian:
            el = np.radians(elevation)
            positions = (
                np.stack(
                    [np.cos(el) * np.cos(np.radians(az)), np.cos(el) * np.sin(np.radians(az)), np.sin(el)],
                    axis=-1,
                )
                * 1.2
            )
            variable("SourcePosition", positions, Type="cartesian", Units="metre")
        else:
            variable(
                "SourcePosition",
                np.stack([az, elevation, np.full_like(az, 1.2)], axis=-1),
                Type="spherical",
                Units="degree, degree, metre",
            )
        receivers = np.array([[[0.0], [0.09], [0.0]], [[0.0], [-0.09], [0.0]]])
        variable(
            "ReceiverPosition",
            receivers[::-1] if receivers_right_first else receivers,
            Type="cartesian",
            Units="metre",
        )
        variable("ListenerPosition", [[0.0, 0.0, 0.0]], Type="cartesian", Units="metre")
        variable("ListenerView", [listener_view], Type="cartesian", Units="metre")
        variable("ListenerUp", [[0.0, 0.0, 1.0]])
        variable("EmitterPosition", np.zeros((1, 3, 1)), Type="cartesian", Units="metre")


def grid(step=15.0):
    elevations = np.arange(-90 + step, 90, step)
    az, el = np.meshgrid(np.arange(0, 360, step), elevations)
    return np.concatenate([az.ravel(), [0, 0]]), np.concatenate([el.ravel(), [90, -90]])


@pytest.fixture(scope="module")
def head_sofa(tmp_path_factory):
    azimuth, elevation = grid()
    path = tmp_path_factory.mktemp("sofa") / "spherical_head.sofa"
    write_sofa(path, head_model_hrirs(azimuth, elevation), azimuth, elevation)
    return path


SOURCES = ["default", "sofa-file", "spherical-head"]


def resolve(source, head_sofa):
    return {"default": None, "sofa-file": head_sofa, "spherical-head": "spherical-head"}[source]


# ----------------------------------------------------------------------------- physics


@pytest.mark.parametrize("source", SOURCES)
def test_left_source_is_louder_and_earlier_in_the_left_ear(source, head_sofa):
    sofa = resolve(source, head_sofa)
    left = render_binaural(encode(noise(), 90.0, 0.0), SR, sofa=sofa)
    assert left.shape == (2, int(0.5 * SR)) and left.dtype == np.float32
    assert band_ild_db(left) > 6.0
    assert right_ear_lag(left) > 0

    right = render_binaural(encode(noise(), -90.0, 0.0), SR, sofa=sofa)
    assert band_ild_db(right) < -6.0
    assert right_ear_lag(right) < 0


@pytest.mark.parametrize("source", SOURCES)
def test_front_and_back_sources_have_no_level_difference(source, head_sofa):
    sofa = resolve(source, head_sofa)
    for azimuth in (0.0, 180.0):
        ears = render_binaural(encode(noise(seed=1), azimuth, 0.0), SR, sofa=sofa)
        assert abs(band_ild_db(ears)) < 0.5
        assert right_ear_lag(ears) == 0


@pytest.mark.parametrize("source", SOURCES)
def test_turning_the_scene_moves_the_image(source, head_sofa):
    sofa = resolve(source, head_sofa)
    front = encode(noise(seed=2), 0.0, 0.0)
    assert band_ild_db(render_binaural(front, SR, sofa=sofa, yaw=90.0)) > 6.0
    assert band_ild_db(render_binaural(front, SR, sofa=sofa, yaw=-90.0)) < -6.0
    # Rotating the scene equals encoding the source where the rotation puts it.
    rotated = render_binaural(front, SR, sofa=sofa, yaw=90.0)
    np.testing.assert_allclose(
        rotated, render_binaural(encode(noise(seed=2), 90.0, 0.0), SR, sofa=sofa), atol=1e-5
    )


def test_the_image_follows_the_source_around_the_left_side():
    # ILD grows from the front toward the side: 0 < ILD(30°) < ILD(90°).
    ild = [band_ild_db(render_binaural(encode(noise(seed=3), az, 0.0), SR)) for az in (0.0, 30.0, 90.0)]
    assert abs(ild[0]) < 0.5 < ild[1] < ild[2]


def test_48k_audio_uses_resampled_hrirs_with_the_same_physical_delay():
    lag_44 = right_ear_lag(render_binaural(encode(noise(), 90.0, 0.0), SR)) / SR
    ears_48 = render_binaural(encode(noise(sample_rate=48000), 90.0, 0.0), 48000)
    lag_48 = right_ear_lag(ears_48) / 48000
    assert band_ild_db(ears_48, 48000) > 6.0
    assert lag_48 > 0 and abs(lag_48 - lag_44) <= 1.5 / SR


def test_frontal_white_noise_reaches_each_ear_at_its_own_level():
    source = noise(seconds=1.0, seed=4)
    ears = render_binaural(encode(source, 0.0, 0.0), SR)
    level_db = 20 * np.log10(
        np.sqrt(np.mean(ears.astype(np.float64) ** 2, axis=-1)) / np.sqrt(np.mean(source**2))
    )
    np.testing.assert_allclose(level_db, 0.0, atol=1.0)


# ----------------------------------------------------------------------------- the spherical-head model


def test_spherical_head_model_gives_woodworth_itd_and_brown_duda_shadow():
    rate = 192000  # fine time resolution for the delay
    model = spherical_head_hrirs([90.0, 0.0], [0.0, 0.0], sample_rate=rate, num_taps=1024, ear_azimuth=90.0)
    # Zero margins so the lag search window sees whole responses.
    side, front = np.pad(model.hrirs.astype(np.float64), ((0, 0), (0, 0), (200, 200)))
    woodworth = HEAD_RADIUS / SPEED_OF_SOUND * (np.pi / 2 + 1)  # (a/c)(θ + sin θ) at θ = 90°
    assert abs(right_ear_lag(side, max_lag=200) / rate - woodworth) < 2 / rate
    assert right_ear_lag(front, max_lag=200) == 0

    spectrum = np.abs(np.fft.rfft(side, axis=-1))
    frequencies = np.fft.rfftfreq(side.shape[-1], 1 / rate)
    high = np.argmin(np.abs(frequencies - 30000))
    # Far above the head's corner frequency the shadow filter tends to α(θ): α(0°) = 2, α(180°) = 1.05 + 0.95·cos(216°).
    expected_db = 20 * np.log10(2.0 / (1.05 + 0.95 * np.cos(np.radians(216))))
    assert abs(20 * np.log10(spectrum[0, high] / spectrum[1, high]) - expected_db) < 1.0


# ----------------------------------------------------------------------------- SOFA reading


def test_sofa_reader_gets_positions_sample_rate_and_ir_shape(tmp_path):
    azimuth = np.array([0.0, 90.0, 180.0, 270.0, 45.0])
    elevation = np.array([0.0, 0.0, 10.0, -30.0, 90.0])
    ir = np.random.default_rng(5).standard_normal((5, 2, 64))
    path = tmp_path / "grid.sofa"
    write_sofa(path, ir, azimuth, elevation, sample_rate=48000)

    hrirs = load_sofa(path)
    assert hrirs.hrirs.shape == (5, 2, 64) and hrirs.sample_rate == 48000
    np.testing.assert_allclose(hrirs.hrirs, ir, rtol=1e-6)
    np.testing.assert_allclose(hrirs.azimuth[:4], [0.0, 90.0, 180.0, -90.0], atol=1e-9)
    np.testing.assert_allclose(hrirs.elevation, elevation, atol=1e-9)
    assert hrirs.name == "test head"


def test_sofa_reader_handles_cartesian_positions_receiver_order_and_delays(tmp_path):
    azimuth, elevation = np.array([30.0, -120.0]), np.array([20.0, -10.0])
    ir = np.random.default_rng(6).standard_normal((2, 2, 32))
    path = tmp_path / "cartesian.sofa"
    # File order (right, left); the right receiver's responses are delayed by 3 samples.
    write_sofa(path, ir, azimuth, elevation, cartesian=True, receivers_right_first=True, delay=[[3.0, 0.0]])

    hrirs = load_sofa(path)
    np.testing.assert_allclose(hrirs.azimuth, azimuth, atol=1e-9)
    np.testing.assert_allclose(hrirs.elevation, elevation, atol=1e-9)
    assert hrirs.hrirs.shape == (2, 2, 35)
    np.testing.assert_allclose(hrirs.hrirs[:, 0, :32], ir[:, 1], rtol=1e-6)  # left = second receiver
    np.testing.assert_allclose(hrirs.hrirs[:, 1, 3:], ir[:, 0], rtol=1e-6)
    assert not hrirs.hrirs[:, 1, :3].any()


def test_sofa_directions_are_relative_to_the_listeners_view(tmp_path):
    path = tmp_path / "turned.sofa"
    # A listener looking along +y: a source at file azimuth 90° is straight ahead of them.
    write_sofa(path, np.ones((1, 2, 8)), np.array([90.0]), np.array([0.0]), listener_view=(0.0, 1.0, 0.0))
    hrirs = load_sofa(path)
    assert abs(hrirs.azimuth[0]) < 1e-9 and abs(hrirs.elevation[0]) < 1e-9


def test_bad_sofa_files_give_clear_errors(tmp_path):
    azimuth, elevation = np.array([0.0]), np.array([0.0])
    missing = tmp_path / "missing_ir.sofa"
    write_sofa(missing, np.ones((1, 2, 8)), azimuth, elevation, drop=("Data.IR",))
    with pytest.raises(ValueError, match=r"missing Data\.IR"):
        load_sofa(missing)

    three_ears = tmp_path / "three.sofa"
    with h5py.File(three_ears, "w") as f:
        f["Data.IR"] = np.ones((1, 3, 8))
        f["Data.SamplingRate"] = [SR]
        f["SourcePosition"] = [[0.0, 0.0, 1.0]]
    with pytest.raises(ValueError, match="2 receivers"):
        load_sofa(three_ears)

    mismatched = tmp_path / "mismatched.sofa"
    write_sofa(mismatched, np.ones((3, 2, 8)), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="SourcePosition"):
        load_sofa(mismatched)

    not_hdf5 = tmp_path / "text.sofa"
    not_hdf5.write_text("not a sofa file")
    with pytest.raises(ValueError, match="HDF5"):
        load_sofa(not_hdf5)
    with pytest.raises(FileNotFoundError):
        load_sofa(tmp_path / "absent.sofa")


# ----------------------------------------------------------------------------- layouts, decoders, data


@pytest.mark.parametrize("layout", ["cube", "octahedron", "icosahedron", "dodecahedron"])
def test_basic_decoder_feeds_re_encode_to_the_input(layout):
    azimuth, elevation = loudspeaker_layout(layout)
    assert len(azimuth) == {"cube": 8, "octahedron": 6, "icosahedron": 12, "dodecahedron": 20}[layout]
    encoding = sh_matrix(azimuth, elevation)  # (L, 4): each speaker's own AmbiX gains
    np.testing.assert_allclose(
        encoding.T @ decoder_matrix(azimuth, elevation, "basic"), np.eye(4), atol=1e-12
    )
    max_re = encoding.T @ decoder_matrix(azimuth, elevation, "max_re")
    np.testing.assert_allclose(max_re, np.diag([1.0] + [1 / np.sqrt(3)] * 3), atol=1e-12)


def test_max_re_cube_silences_the_far_side_for_a_side_source():
    azimuth, elevation = loudspeaker_layout("cube")
    feeds = decoder_matrix(azimuth, elevation) @ sh_matrix(90.0, 0.0)
    np.testing.assert_allclose(feeds[azimuth < 0], 0.0, atol=1e-12)
    assert np.all(feeds[azimuth > 0] > 0)


def test_default_hrirs_are_offline_package_data_with_kemar_geometry():
    assert DEFAULT_HRIR_FILE.stat().st_size < 1_000_000
    hrirs = default_hrirs()
    assert len(hrirs) == 710 and hrirs.sample_rate == 44100
    assert hrirs.elevation.min() == -40.0 and hrirs.elevation.max() == 90.0
    # A measured response from the left: the left ear gets more energy (KEMAR: about 8 dB at 1-4 kHz,
    # 12 dB broadband) and gets it first.
    (index,), _ = hrirs.nearest(90.0, 0.0)
    left, right = np.pad(hrirs.hrirs[index].astype(np.float64), ((0, 0), (100, 100)))
    assert band_ild_db(np.stack([left, right])) > 6.0
    assert 10 * np.log10(np.sum(left**2) / np.sum(right**2)) > 10.0
    assert np.argmax(np.abs(left)) < np.argmax(np.abs(right))


def test_nearest_direction_selection():
    hrirs = HRIRSet(np.zeros((3, 2, 4)), [0.0, 90.0, 180.0], [0.0, 0.0, 0.0], SR)
    index, errors = hrirs.nearest([10.0, 100.0, -170.0], [5.0, 0.0, 0.0])
    assert index.tolist() == [0, 1, 2]
    np.testing.assert_allclose(
        errors, [np.degrees(np.arccos(np.cos(np.radians(10)) * np.cos(np.radians(5)))), 10.0, 10.0], atol=1e-9
    )


def test_far_hrir_measurements_are_warned_about(caplog):
    with caplog.at_level(logging.WARNING, logger="visage_hf.audio.binaural"):
        binaural_filters(layout="octahedron")  # straight down; MIT KEMAR stops at -40°
    assert "no measurement within" in caplog.text


# ----------------------------------------------------------------------------- level, batches, bad input


def test_peak_limit_attenuates_loud_scenes_and_reports_the_gain():
    loud = 3.0 * encode(noise(seed=7) * 10, 90.0, 0.0)
    raw = BinauralRenderer(peak="none")(loud, SR)
    assert np.abs(raw.audio).max() > 1.0 and raw.gain_db == 0.0

    limited = BinauralRenderer()(loud, SR)
    assert limited.gain_db < 0
    assert abs(20 * np.log10(np.abs(limited.audio).max()) - (-1.0)) < 1e-3
    np.testing.assert_allclose(limited.audio, raw.audio * 10 ** (limited.gain_db / 20), rtol=1e-5, atol=1e-7)

    quiet = BinauralRenderer()(0.01 * loud, SR)
    assert quiet.gain_db == 0.0
    normalized = BinauralRenderer(peak="normalize", peak_dbfs=-3.0)(0.01 * loud, SR)
    assert abs(normalized.peak_dbfs + 3.0) < 1e-3 and normalized.gain_db > 0


def test_batches_render_clip_by_clip():
    clips = np.stack([encode(noise(seed=8), 60.0, 10.0), encode(noise(seed=9), -120.0, -20.0)])
    renderer = BinauralRenderer(peak="none")
    batched = renderer(clips, SR).audio
    assert batched.shape == (2, 2, clips.shape[-1])
    for index in range(2):
        np.testing.assert_allclose(batched[index], renderer(clips[index], SR).audio, atol=1e-6)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="4-channel"):
        render_binaural(np.zeros((2, 100), np.float32), SR)
    with pytest.raises(ValueError, match="sample_rate"):
        render_binaural(np.zeros((4, 100), np.float32), 0)
    with pytest.raises(ValueError, match="layout"):
        render_binaural(np.zeros((4, 100), np.float32), SR, layout="pentagon")
    with pytest.raises(ValueError, match="peak"):
        BinauralRenderer(peak="clip")
    with pytest.raises(ValueError, match="sofa"):
        BinauralRenderer(sofa=42)
    with pytest.raises(ValueError, match="at least 4 loudspeakers"):
        decoder_matrix([0.0, 90.0, 180.0], [0.0, 0.0, 0.0])


def test_torch_tensors_render_like_numpy_arrays():
    import torch

    foa = encode(noise(seed=10), 45.0, 0.0)
    np.testing.assert_array_equal(render_binaural(torch.from_numpy(foa), SR), render_binaural(foa, SR))
