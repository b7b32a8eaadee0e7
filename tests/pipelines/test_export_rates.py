"""Issue 13, weakness 9: WAVs written at 48 kHz and 16 kHz (``--sample-rate``; generate-batch's default) carry the
generated sound, not only the right number of samples: a 1 kHz plane wave keeps its frequency, its level in every
channel (the SN3D gains of its direction, a closed form) and its samples (scipy's ``resample_poly``)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from visage_hf.pipelines.export import OUTPUT_FILES, export_generation

MODEL_RATE = 44100
SECONDS = 0.5
FREQUENCY, AMPLITUDE = 1000.0, 0.01  # a quiet tone: the tolerances below are relative to its level
AZIMUTH, ELEVATION = 60.0, 20.0


def sn3d_gains(azimuth: float, elevation: float) -> np.ndarray:
    """AmbiX W, Y, Z, X gains of a plane wave from (azimuth, elevation) (first order, SN3D), written out."""
    a, e = np.radians(azimuth), np.radians(elevation)
    return np.array([1.0, np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)])


@pytest.fixture(scope="module")
def tone_foa() -> np.ndarray:
    t = np.arange(round(SECONDS * MODEL_RATE)) / MODEL_RATE
    return (sn3d_gains(AZIMUTH, ELEVATION)[:, None] * AMPLITUDE * np.sin(2 * np.pi * FREQUENCY * t)).astype(
        np.float32
    )


def _tone_frequency_and_amplitude(signal: np.ndarray, rate: int) -> tuple[float, float]:
    """Frequency (Hz, interpolated FFT peak) and amplitude of the single tone in ``signal`` (Hann window)."""
    window = np.hanning(len(signal))
    spectrum = np.abs(np.fft.rfft(signal * window))
    peak = int(np.argmax(spectrum[1:])) + 1
    left, centre, right = np.log(spectrum[peak - 1 : peak + 2])
    offset = 0.5 * (left - right) / (left - 2 * centre + right)  # parabolic interpolation of the log peak
    amplitude = np.exp(centre - 0.25 * (left - right) * offset) * 2 / window.sum()
    return (peak + offset) * rate / len(signal), float(amplitude)


@pytest.mark.parametrize("rate", [48000, 16000])
def test_resampled_wavs_keep_the_tone_its_level_and_its_samples(tmp_path, tone_foa, rate):
    files = export_generation(tmp_path, tone_foa, MODEL_RATE, AZIMUTH, ELEVATION, output_sample_rate=rate)
    foa, written_rate = sf.read(files.foa, dtype="float32")
    foa = foa.T
    assert written_rate == rate == files.sample_rate and foa.shape == (4, round(SECONDS * rate))
    middle = slice(rate // 20, -rate // 20)  # away from the resampling filter's edge transients
    expected_amplitudes = AMPLITUDE * np.abs(sn3d_gains(AZIMUTH, ELEVATION))
    for channel in range(4):
        frequency, amplitude = _tone_frequency_and_amplitude(foa[channel, middle], rate)
        assert frequency == pytest.approx(FREQUENCY, rel=1e-3), channel
        assert amplitude == pytest.approx(expected_amplitudes[channel], rel=0.01), channel
    # Sample by sample: scipy's polyphase resampler, to a tolerance relative to the tone (a 10 % error fails).
    up, down = (160, 147) if rate == 48000 else (160, 441)
    reference = resample_poly(tone_foa.astype(np.float64), up, down, axis=-1)[:, : foa.shape[-1]]
    assert np.abs(foa - reference).max() <= 1e-4 * AMPLITUDE
    # The binaural preview is at the same rate and still the 1 kHz tone.
    binaural, binaural_rate = sf.read(tmp_path / OUTPUT_FILES["binaural"], dtype="float32")
    assert binaural_rate == rate and binaural.shape == (foa.shape[-1], 2)
    for ear in range(2):
        assert _tone_frequency_and_amplitude(binaural[middle, ear], rate)[0] == pytest.approx(
            FREQUENCY, rel=1e-3
        )
