"""Audio I/O, validation and resampling."""

import numpy as np
import pytest
import soundfile as sf

from visage_hf.audio import io as audio


def test_float_wav_round_trip_is_exact(tmp_path):
    data = np.random.default_rng(0).uniform(-2, 2, (4, 1000)).astype(np.float32)  # > 1: no clipping in float
    path = audio.write_audio(tmp_path / "sub" / "foa.wav", data, 48000)
    assert sf.info(str(path)).subtype == "FLOAT" and sf.info(str(path)).channels == 4
    back, sample_rate = audio.read_audio(path)
    assert sample_rate == 48000 and back.dtype == np.float32 and back.shape == (4, 1000)
    np.testing.assert_array_equal(back, data)


def test_other_containers_and_subtypes(tmp_path):
    data = (0.5 * np.sin(np.linspace(0, 100, 800))).astype(np.float32)
    flac = audio.write_audio(tmp_path / "x.flac", data, 16000)  # FLAC has no float subtype: default used
    back, _ = audio.read_audio(flac)
    assert back.shape == (1, 800)
    np.testing.assert_allclose(back[0], data, atol=1e-4)
    pcm = audio.write_audio(tmp_path / "x16.wav", data, 16000, subtype="PCM_16")
    np.testing.assert_allclose(audio.read_audio(pcm)[0][0], data, atol=1 / 32768 + 1e-6)
    opus = audio.write_audio(tmp_path / "x.opus", np.stack([data] * 4), 48000)  # lossy; checks the container
    assert sf.info(str(opus)).subtype == "OPUS" and audio.read_audio(opus)[0].shape[0] == 4
    with pytest.raises(ValueError, match="extension"):
        audio.write_audio(tmp_path / "x.xyz", data, 16000)


def test_write_is_atomic(tmp_path, monkeypatch):
    path = audio.write_audio(tmp_path / "keep.wav", np.zeros((4, 10), dtype=np.float32), 8000)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sf, "write", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        audio.write_audio(path, np.ones((4, 20), dtype=np.float32), 8000)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.wav"]  # no temporary left behind


def test_write_refuses_bad_arrays(tmp_path):
    with pytest.raises(ValueError, match="transpose"):
        audio.write_audio(tmp_path / "a.wav", np.zeros((1000, 4), dtype=np.float32), 8000)
    with pytest.raises(ValueError, match="NaN"):
        audio.write_audio(tmp_path / "a.wav", np.full((2, 10), np.inf, dtype=np.float32), 8000)
    with pytest.raises(ValueError, match="sample_rate"):
        audio.write_audio(tmp_path / "a.wav", np.zeros((2, 10), dtype=np.float32), 0)
    assert not any(tmp_path.iterdir())


def test_read_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        audio.read_audio(tmp_path / "missing.wav")
    garbage = tmp_path / "garbage.wav"
    garbage.write_text("not audio at all")
    with pytest.raises(ValueError, match="could not read audio"):
        audio.read_audio(garbage)
    with pytest.raises(ValueError, match="directory"):
        audio.read_audio(tmp_path)
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros((0, 4), dtype=np.float32), 8000, subtype="FLOAT")
    with pytest.raises(ValueError, match="empty"):
        audio.read_audio(empty)


def test_check_foa():
    good = np.zeros((4, 8), dtype=np.float32)
    assert audio.check_foa(good) is good
    assert audio.check_foa(np.zeros((2, 4, 8)), allow_batch=True).shape == (2, 4, 8)
    cases = [
        (np.zeros((3, 8)), r"expected 4-channel FOA of shape \(4, samples\).*got shape \(3, 8\)"),
        (np.zeros((8, 4)), "transpose"),
        (np.zeros((2, 4, 8)), r"got shape \(2, 4, 8\)"),
        (np.zeros((4, 0)), "empty"),
        (np.zeros((4, 8), dtype=np.int16), "floating-point.*int16"),
        (np.array([[0.0, np.nan]] * 4), "4 NaN/inf"),
    ]
    for bad, message in cases:
        with pytest.raises(ValueError, match=message):
            audio.check_foa(bad)


def test_check_mono():
    assert audio.check_mono(np.zeros((1, 5))).shape == (5,)
    with pytest.raises(ValueError, match=r"mono.*\(2, 5\)"):
        audio.check_mono(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="floating-point"):
        audio.check_mono(np.zeros(5, dtype=np.int32))
    with pytest.raises(ValueError, match="empty"):
        audio.check_mono(np.zeros(0))


def test_resample_keeps_a_tone():
    seconds = 0.5
    time_48k = np.arange(int(48000 * seconds)) / 48000
    tone = np.sin(2 * np.pi * 1000 * time_48k).astype(np.float32)
    down = audio.resample(np.stack([tone, 0.5 * tone]), 48000, 16000)
    assert down.shape == (2, 8000) and down.dtype == np.float32
    expected = np.sin(2 * np.pi * 1000 * np.arange(8000) / 16000)
    np.testing.assert_allclose(down[0, 200:-200], expected[200:-200], atol=2e-3)  # edges: filter transients
    np.testing.assert_allclose(down[1, 200:-200], 0.5 * expected[200:-200], atol=1e-3)
    assert audio.resample(np.zeros(44100), 44100, 48000).shape == (48000,)  # ratio 160/147
    same = audio.resample(tone, 48000, 48000)
    assert same is not tone and np.array_equal(same, tone)


def _fmt_chunk(path) -> tuple[int, int, int]:
    """``(fmt chunk size, format tag, channels)`` read from the RIFF bytes (independent of libsndfile)."""
    import struct

    data = path.read_bytes()
    assert data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    offset = 12
    while offset + 8 <= len(data):
        name, size = data[offset : offset + 4], struct.unpack("<I", data[offset + 4 : offset + 8])[0]
        if name == b"fmt ":
            tag, channels = struct.unpack("<HH", data[offset + 8 : offset + 12])
            return size, tag, channels
        offset += 8 + size + size % 2
    raise AssertionError("no fmt chunk")


def test_multichannel_wav_is_wave_format_extensible(tmp_path):
    foa = np.random.default_rng(0).uniform(-0.5, 0.5, (4, 480)).astype(np.float32)
    path = audio.write_audio(tmp_path / "foa.wav", foa, 48000)
    assert _fmt_chunk(path) == (40, 0xFFFE, 4)  # WAVEFORMATEXTENSIBLE: 18 + 22 bytes, tag 0xFFFE
    back, rate = audio.read_audio(path)
    assert rate == 48000
    np.testing.assert_array_equal(back, foa)
    stereo = audio.write_audio(tmp_path / "stereo.wav", foa[:2], 48000)
    assert _fmt_chunk(stereo)[2] == 2


@pytest.mark.skipif(__import__("shutil").which("sox") is None, reason="needs sox (.ci/system-deps)")
def test_sox_reads_our_foa_wav_as_extensible(tmp_path):
    """sox, an independent WAV reader, sees WAVE_FORMAT_EXTENSIBLE with 4 channels. (SoX 14.4.2 still prints
    "missing extended part of fmt chunk" for every IEEE-float WAV, extensible or not, libsndfile's stereo float
    WAV included: its check looks at the float sub-format. A 16-bit FOA WAV reads without any warning.)"""
    import subprocess

    foa = np.random.default_rng(0).uniform(-0.5, 0.5, (4, 480)).astype(np.float32)
    path = audio.write_audio(tmp_path / "foa.wav", foa, 48000)
    result = subprocess.run(["sox", "-V3", str(path), "-n"], capture_output=True, text=True, check=True)
    assert "wav: EXTENSIBLE" in result.stderr and "Channels       : 4" in result.stderr, result.stderr
    assert "32-bit Floating Point PCM" in result.stderr
    pcm = audio.write_audio(tmp_path / "foa16.wav", foa, 48000, subtype="PCM_16")
    result = subprocess.run(["sox", "-V3", str(pcm), "-n"], capture_output=True, text=True, check=True)
    assert "wav: EXTENSIBLE" in result.stderr and "WARN" not in result.stderr, result.stderr
