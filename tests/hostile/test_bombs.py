"""Resource bombs: files whose headers declare far more than they hold, or more than any clip needs.

Each is built here (a few hundred bytes to a few kB), and each must end in one ``ValueError`` that names the
limit, quickly and without allocating what the header declares (see ``guards.bounded``)."""

from __future__ import annotations

import dataclasses
import struct

import numpy as np
import pytest

from tests.hostile.builders import (
    box,
    foa_mp4,
    many_streams_mkv,
    set_durations,
    timed_mp4,
    wav_bytes,
    y4m_bytes,
)
from tests.hostile.guards import bounded
from visage_hf.audio.io import read_audio
from visage_hf.commands.main import main as visage_main
from visage_hf.utils import limits
from visage_hf.video.io import probe, read_frames
from visage_hf.video.sa3d import read_sa3d, walk_boxes

# ------------------------------------------------------------------------------------------------ video


def test_picture_of_16000_by_16000_is_refused_before_decoding(tmp_path):
    # FFmpeg itself accepts this header (it refuses past ~16384 x 16384): one RGB frame would be 768 MB.
    path = tmp_path / "huge.y4m"
    path.write_bytes(y4m_bytes(16000, 16000))
    for read in (probe, read_frames):
        with bounded(), pytest.raises(ValueError, match=r"picture 16000x16000 is over the limit"):
            read(path)


def test_picture_of_30000_by_30000_is_one_value_error(tmp_path):
    path = tmp_path / "huger.y4m"
    path.write_bytes(y4m_bytes(30000, 30000))
    with bounded(), pytest.raises(ValueError, match=r"could not read .* as a media file"):
        probe(path)


def test_hour_long_clip_is_refused_from_its_header(tmp_path):
    path = timed_mp4(tmp_path / "hour.mp4", [0.0, 3600.0])
    assert path.stat().st_size < 4096
    for read in (probe, read_frames):
        with bounded(), pytest.raises(ValueError, match=r"duration 3600.* over the limit of 1800 s"):
            read(path)


def test_limit_is_set_in_one_place(tmp_path, monkeypatch):
    path = timed_mp4(tmp_path / "minute.mp4", [0.0, 60.0])
    assert probe(path).duration == pytest.approx(60.25, abs=0.3)
    monkeypatch.setattr(limits, "LIMITS", dataclasses.replace(limits.LIMITS, max_video_seconds=30.0))
    with pytest.raises(ValueError, match=r"over the limit of 30 s"):
        probe(path)


def test_frame_an_hour_long_behind_a_lying_header_is_refused_while_decoding(tmp_path):
    honest = timed_mp4(tmp_path / "hour.mp4", [0.0, 3600.0])
    lying = tmp_path / "lying.mp4"
    data = set_durations(bytearray(honest.read_bytes()), walk_boxes(honest), 1 / 7200)
    lying.write_bytes(bytes(data))
    assert probe(lying).duration < 1.0  # the header now claims half a second
    with bounded(), pytest.raises(ValueError, match=r"a frame shown until 3600 s is over the limit"):
        read_frames(lying, fps=4.0)


def test_hundreds_of_streams_are_refused(tmp_path):
    path = many_streams_mkv(tmp_path / "streams.mkv", 300)
    with bounded(), pytest.raises(ValueError, match=r"stream count 301 is over the limit of 64"):
        probe(path)


# ------------------------------------------------------------------------------------------------ audio


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (wav_bytes(channels=0), r"could not read audio .*[Cc]hannel"),
        (wav_bytes(channels=64), r"64 audio channels; expected 1 to 16"),
        (wav_bytes(float_samples=np.array([0.0, np.nan, 0.5], np.float32)), r"1 NaN/infinite sample"),
        (wav_bytes(float_samples=np.array([np.inf, -np.inf], np.float32)), r"2 NaN/infinite sample"),
        (wav_bytes(frames=8, declared_data_size=0x7FFF0000), r"data chunk declares 2147418112 bytes"),
        (wav_bytes(frames=8, rate=1_000_000), r"sample rate 1000000 Hz"),
    ],
    ids=["0-channels", "64-channels", "nan", "inf", "size-beyond-file", "rate"],
)
def test_wav_bombs_are_one_value_error(tmp_path, data, message):
    path = tmp_path / "bomb.wav"
    path.write_bytes(data)
    with bounded(), pytest.raises(ValueError, match=message):
        read_audio(path)


def test_declared_riff_size_beyond_file_and_streamed_sizes(tmp_path):
    data = bytearray(wav_bytes(frames=8))
    struct.pack_into("<I", data, 4, 1 << 30)
    path = tmp_path / "riff.wav"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"RIFF header declares"):
        read_audio(path)
    # A streamed WAV (sizes unknown: 0xFFFFFFFF) is what encoders writing to a pipe produce: accepted.
    path.write_bytes(wav_bytes(frames=8, declared_data_size=0xFFFFFFFF))
    audio, rate = read_audio(path)
    assert audio.shape == (1, 8) and rate == 16000


def test_long_audio_is_refused_from_its_header(tmp_path, monkeypatch):
    path = tmp_path / "long.wav"
    path.write_bytes(wav_bytes(frames=16000 * 3))
    assert read_audio(path)[0].shape == (1, 48000)
    monkeypatch.setattr(limits, "LIMITS", dataclasses.replace(limits.LIMITS, max_audio_seconds=2.0))
    with pytest.raises(ValueError, match=r"duration 3 s is over the limit of 2 s"):
        read_audio(path)


def test_cli_turns_a_bomb_into_one_line_and_exit_2(tmp_path, capsys):
    path = tmp_path / "bomb.wav"
    path.write_bytes(wav_bytes(channels=64))
    code = visage_main(["encode", str(path), "--azimuth", "0", "-o", str(tmp_path / "out.wav")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "64 audio channels" in err
    assert not (tmp_path / "out.wav").exists()


# ------------------------------------------------------------------------------------------------ MP4 boxes


def _with_moov_size(data: bytes, size: int) -> bytes:
    at = data.index(b"moov") - 4
    return data[:at] + struct.pack(">I", size) + data[at + 4 :]


def test_mp4_box_claiming_bytes_past_the_end(tmp_path):
    good = foa_mp4(tmp_path / "good.mp4")
    assert read_sa3d(good)["num_channels"] == 4
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(_with_moov_size(good.read_bytes(), 0xFFFFFF00))
    with bounded(), pytest.raises(ValueError, match=r"corrupt MP4 box 'moov' .* does not fit"):
        read_sa3d(bad)


def test_mp4_boxes_nested_thousands_deep(tmp_path):
    nested = b""
    for _ in range(5000):
        nested = box(b"trak", nested)
    path = tmp_path / "deep.mp4"
    path.write_bytes(box(b"ftyp", b"isom\0\0\0\0") + box(b"moov", nested))
    with bounded(), pytest.raises(ValueError, match=r"nested 17 deep .* over the limit of 16"):
        walk_boxes(path)


def test_moov_over_the_memory_limit_is_refused_before_reading(tmp_path, monkeypatch):
    path = foa_mp4(tmp_path / "good.mp4")
    monkeypatch.setattr(limits, "LIMITS", dataclasses.replace(limits.LIMITS, max_moov_bytes=64))
    with pytest.raises(ValueError, match=r"the 'moov' box of .* bytes is over the limit of 64 bytes"):
        read_sa3d(path)
