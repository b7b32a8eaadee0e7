"""Tests for visage_hf.video.io: timestamp sampling, rotation, errors, the FoV projection (both modes), MP4 writing.

References are independent of the code under test: frame indices are drawn into the pixels as a binary code
and compared with the index a player would show (last timestamp <= t, computed here from the timestamps we
wrote); the projection is compared with a per-pixel loop written from docs/original-implementation.md §5.6 and
with the closed-form pinhole position ``f·tan(angle)``; audio channel order is checked by frequency peaks.
"""

from __future__ import annotations

import bisect
import struct
from fractions import Fraction

import av
import numpy as np
import pytest

from visage_hf.video import io as video
from visage_hf.video import sa3d

BITS = 8
BLOCK = 8
CODE_WIDTH, CODE_HEIGHT = BITS * BLOCK, 2 * BLOCK


# --------------------------------------------------------------------------------------------- fixtures


def _coded_image(index: int, height: int = CODE_HEIGHT, width: int = CODE_WIDTH) -> np.ndarray:
    """Frame ``index`` as 8 black/white blocks on the top row (most significant bit first)."""
    image = np.full((height, width, 3), 128, dtype=np.uint8)
    for bit in range(BITS):
        value = 255 if (index >> (BITS - 1 - bit)) & 1 else 0
        image[:BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = value
    return image


def _read_code(image: np.ndarray) -> int:
    index = 0
    for bit in range(BITS):
        block = image[2 : BLOCK - 2, bit * BLOCK + 2 : (bit + 1) * BLOCK - 2].astype(float)
        index = (index << 1) | int(block.mean() > 128)
    return index


def _write_timed_video(path, times, images=None, rotation=None):
    """H.264 MP4 with one frame per timestamp in ``times`` (seconds, millisecond precision), a key frame every
    10 frames (so reading from ``start`` really seeks) and B-frames (so decode order differs from display)."""
    images = [_coded_image(i) for i in range(len(times))] if images is None else images
    height, width = images[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "12", "g": "10", "bf": "2"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for image, time in zip(images, times):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = round(time * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _expected_indices(frame_times, sample_times):
    """What a player shows at each time: the last frame whose timestamp is <= t."""
    return [bisect.bisect_right(frame_times, t + 1e-9) - 1 for t in sample_times]


@pytest.fixture(scope="module")
def cfr_video(tmp_path_factory):
    times = [i / 25 for i in range(75)]  # 3 s at 25 fps
    return _write_timed_video(tmp_path_factory.mktemp("cfr") / "cfr.mp4", times), times


def _sines(frequencies, seconds, sample_rate):
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return np.stack([0.2 * np.sin(2 * np.pi * f * t) for f in frequencies]).astype(np.float32)


def _peak_frequencies(audio, sample_rate):
    spectrum = np.abs(np.fft.rfft(audio, axis=-1))
    return np.argmax(spectrum, axis=-1) * sample_rate / audio.shape[-1]


# --------------------------------------------------------------------------------------------- sampling


def test_constant_rate_sampling_shows_last_frame_at_or_before_each_time(cfr_video):
    path, frame_times = cfr_video
    frames, times = video.read_frames(path, fps=4.0)
    expected_times = np.arange(12) / 4  # t < 3 s; t = 1.0 lands exactly on frame 25
    np.testing.assert_allclose(times, expected_times)
    assert frames.shape == (12, CODE_HEIGHT, CODE_WIDTH, 3) and frames.dtype == np.uint8
    assert [_read_code(f) for f in frames] == _expected_indices(frame_times, expected_times)


def test_start_and_duration_select_a_window(cfr_video):
    path, frame_times = cfr_video
    frames, times = video.read_frames(path, fps=4.0, start=1.3, duration=0.9)
    expected_times = 1.3 + np.arange(4) / 4  # ceil(0.9 * 4) = 4 times in [1.3, 2.2)
    np.testing.assert_allclose(times, expected_times)
    assert [_read_code(f) for f in frames] == _expected_indices(frame_times, expected_times)


def test_variable_frame_rate_is_sampled_by_timestamp(tmp_path):
    rng = np.random.default_rng(3)
    gaps = rng.choice([0.01, 0.03, 0.07, 0.2, 0.45], size=30)
    frame_times = list(np.round(np.concatenate([[0.0], np.cumsum(gaps)[:-1]]), 3))
    path = _write_timed_video(tmp_path / "vfr.mp4", frame_times)

    _, every = video.read_frames(path, fps=None)
    np.testing.assert_allclose(every, frame_times, atol=1e-6)

    frames, times = video.read_frames(path, fps=4.0, start=0.37, duration=2.2)
    expected_times = 0.37 + np.arange(9) / 4
    np.testing.assert_allclose(times, expected_times)
    assert [_read_code(f) for f in frames] == _expected_indices(frame_times, expected_times)


def test_clip_shorter_than_asked_returns_what_exists(tmp_path):
    path = _write_timed_video(tmp_path / "short.mp4", [i / 25 for i in range(25)])  # 1.0 s
    frames, times = video.read_frames(path, fps=4.0, start=0.5, duration=5.0)
    np.testing.assert_allclose(times, [0.5, 0.75])  # t = 1.0 is past the last frame's end
    assert [_read_code(f) for f in frames] == [12, 18]


def test_rotation_metadata_turns_frames_upright(tmp_path):
    stored = np.zeros((32, 64, 3), dtype=np.uint8)
    stored[:8, :8] = 255  # marker in the stored picture's top-left corner
    path = _write_timed_video(tmp_path / "phone.mp4", [0.0, 0.04], [stored, stored], rotation=-90)

    # Independent of PyAV: the QuickTime track matrix of a phone's portrait clip is (a, b, c, d) = (0, 1, -1, 0),
    # i.e. the stored picture is shown turned a quarter clockwise.
    tkhd = next(box for box in sa3d.walk_boxes(path) if box.path == "moov/trak/tkhd")
    with open(path, "rb") as f:
        f.seek(tkhd.payload_offset + 40)
        a, b, _, c, d = struct.unpack(">5i", f.read(20))
    assert (a, b, c, d) == (0, 1 << 16, -(1 << 16), 0)

    frames, _ = video.read_frames(path, fps=4.0)
    upright = np.rot90(stored, k=-1)  # clockwise: the marker ends in the top-right corner
    assert frames.shape[1:] == upright.shape
    assert np.abs(frames[0].astype(int) - upright).mean() < 4
    assert frames[0][:8, -8:].mean() > 200 and frames[0][-8:, :8].mean() < 50
    info = video.probe(path)
    assert (info.width, info.height, info.rotation) == (32, 64, -90)


def test_probe_reports_stream_facts(cfr_video):
    path, _ = cfr_video
    info = video.probe(path)
    assert info.fps == pytest.approx(25.0)
    assert info.duration == pytest.approx(3.0, abs=0.05)
    assert (info.width, info.height, info.num_frames, info.has_audio) == (CODE_WIDTH, CODE_HEIGHT, 75, False)


def test_resize_on_decode(cfr_video):
    path, _ = cfr_video
    frames, _ = video.read_frames(path, fps=4.0, duration=0.5, size=(32, 8))
    assert frames.shape == (2, 8, 32, 3)


# --------------------------------------------------------------------------------------------- errors


def test_bad_files_give_clear_errors(tmp_path):
    random_bytes = tmp_path / "random.mp4"
    random_bytes.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    for path in (random_bytes, text):
        with pytest.raises(ValueError, match=r"could not read .* as a media file"):
            video.read_frames(path)
        with pytest.raises(ValueError, match="could not read"):
            video.probe(path)
    with pytest.raises(FileNotFoundError, match="not found"):
        video.read_frames(tmp_path / "missing.mp4")


def test_audio_only_and_empty_files_are_rejected(tmp_path):
    audio_only = video.write_mp4(tmp_path / "audio.mp4", _sines([440] * 4, 0.5, 48000), 48000)
    with pytest.raises(ValueError, match=r"expected a video stream .* found only audio"):
        video.read_frames(audio_only)
    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = 64, 48
        container.start_encoding()
    with pytest.raises(ValueError, match="empty or zero-length"):
        video.read_frames(empty)


def test_bad_windows_are_rejected(cfr_video):
    path, _ = cfr_video
    with pytest.raises(ValueError, match="beyond the end of the video"):
        video.read_frames(path, start=10.0)
    with pytest.raises(ValueError, match="duration: expected seconds > 0"):
        video.read_frames(path, duration=0.0)
    with pytest.raises(ValueError, match="duration: expected seconds > 0"):
        video.read_frames(path, duration=-1.0)
    with pytest.raises(ValueError, match="start: expected seconds >= 0"):
        video.read_frames(path, start=-0.5)
    with pytest.raises(ValueError, match="fps"):
        video.read_frames(path, fps=0.0)


# --------------------------------------------------------------------------------------------- writing


FREQUENCIES = (220.0, 330.0, 440.0, 550.0)


@pytest.mark.parametrize("faststart", [True, False])
@pytest.mark.parametrize(("codec", "layout"), [("aac", "4.0"), ("opus", "ambisonic 1")])
def test_write_mp4_keeps_four_channels_in_order(tmp_path, codec, layout, faststart):
    foa = _sines(FREQUENCIES, 2.0, 44100)  # 44.1 kHz in, 48 kHz out
    frames = np.stack([_coded_image(i) for i in range(8)])
    path = video.write_mp4(tmp_path / "out.mp4", foa, 44100, frames, fps=4, codec=codec, faststart=faststart)

    info = video.audio_track_info(path)
    assert info["num_audio_streams"] == 1
    assert (info["channels"], info["layout"], info["sample_rate"]) == (4, layout, 48000)
    assert info["duration"] == pytest.approx(2.0, abs=0.03)
    audio, rate = video.read_audio_track(path)
    assert audio.shape[0] == 4 and audio.shape[1] >= 96000
    np.testing.assert_allclose(_peak_frequencies(audio[:, :96000], rate), FREQUENCIES, atol=1.0)
    decoded, _ = video.read_frames(path, fps=None)
    assert [_read_code(f) for f in decoded] == list(range(8))
    assert sa3d.read_sa3d(path)["sample_entry"] == {"aac": "mp4a", "opus": "Opus"}[codec]
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]  # no temporary files left


def test_write_mp4_remuxes_a_source_video_without_reencoding(cfr_video, tmp_path):
    source, _ = cfr_video
    path = video.write_mp4(tmp_path / "remux.mp4", _sines(FREQUENCIES, 3.0, 48000), 48000, source)

    def packets(file):
        with av.open(str(file)) as container:
            return [bytes(p) for p in container.demux(container.streams.video[0]) if p.size]

    assert packets(path) == packets(source)
    np.testing.assert_allclose(video.read_frames(path, fps=None)[1], video.read_frames(source, fps=None)[1])
    assert video.audio_track_info(path)["channels"] == 4


def test_write_mp4_cuts_a_segment_exactly(cfr_video, tmp_path):
    source, _ = cfr_video
    path = video.write_mp4(
        tmp_path / "cut.mp4", _sines(FREQUENCIES, 1.0, 48000), 48000, source, video_start=1.2
    )
    frames, times = video.read_frames(path, fps=None)
    assert [_read_code(f) for f in frames] == list(range(30, 55))
    np.testing.assert_allclose(times, np.arange(25) / 25, atol=1e-3)


def test_write_mp4_leaves_nothing_on_error(tmp_path):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\0" * 100)
    with pytest.raises(ValueError):
        video.write_mp4(tmp_path / "out.mp4", _sines(FREQUENCIES, 0.5, 48000), 48000, corrupt)
    with pytest.raises(ValueError, match="4"):
        video.write_mp4(tmp_path / "out.mp4", np.zeros((2, 100), np.float32), 48000)
    with pytest.raises(ValueError, match="codec"):
        video.write_mp4(tmp_path / "out.mp4", _sines(FREQUENCIES, 0.5, 48000), 48000, codec="mp3")
    short = _write_timed_video(tmp_path / "short.mp4", [0.0, 0.04])
    with pytest.raises(ValueError, match="no video frames"):
        video.write_mp4(tmp_path / "out.mp4", _sines(FREQUENCIES, 0.5, 48000), 48000, short, video_start=5.0)
    with pytest.raises(ValueError, match="fps"):
        video.write_mp4(
            tmp_path / "out.mp4", _sines(FREQUENCIES, 0.5, 48000), 48000, np.zeros((2, 8, 8, 3), np.uint8)
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.mp4", "short.mp4"]


def test_write_video_round_trip(tmp_path):
    frames = np.stack([_coded_image(i, 17, 65) for i in range(6)])  # odd size gets padded to even
    path = video.write_video(tmp_path / "v.mp4", frames, fps=4)
    decoded, times = video.read_frames(path, fps=None)
    assert decoded.shape == (6, 18, 66, 3)
    assert [_read_code(f) for f in decoded] == list(range(6))
    np.testing.assert_allclose(times, np.arange(6) / 4)
