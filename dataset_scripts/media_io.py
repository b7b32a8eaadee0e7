"""Media reading and encoding the dataset scripts need beyond `visage_hf.video.io` / `visage_hf.audio.io`.

* :func:`decode_audio_windows`: many clip windows out of one long audio track (a YouTube ``.webm``, an MP4's
  track) in **one** decoding pass, so a video with hundreds of clips is decoded once, with bounded memory.
* :func:`encode_flac` / :func:`decode_flac`: FOA (or mono) as FLAC bytes for the ``media`` config's binary
  columns. Decoding asserts the channel count: `datasets`' ``Audio`` feature would silently downmix 4 channels.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import av
import numpy as np

__all__ = [
    "AudioWindow",
    "audio_stream_info",
    "decode_audio_windows",
    "decode_flac",
    "encode_flac",
    "select_mono_view",
    "stereo_layout",
]

# A seek lands on a packet boundary before the target; start this much earlier to be safe.
_SEEK_MARGIN_SECONDS = 2.0
# Below this the first window is close enough to the start that decoding from 0 is cheaper than seeking.
_SEEK_THRESHOLD_SECONDS = 30.0


class AudioWindow:
    """A window ``[start, start + seconds)`` being filled from decoded frames (samples at the stream's rate)."""

    def __init__(self, index: int, start: int, length: int, channels: int):
        self.index, self.start, self.length = index, start, length
        self.data = np.zeros((channels, length), dtype=np.float32)
        self.filled_until = start  # first sample not yet written

    @property
    def end(self) -> int:
        return self.start + self.length

    def add(self, position: int, samples: np.ndarray) -> None:
        first, last = max(position, self.start), min(position + samples.shape[1], self.end)
        if last > first:
            self.data[:, first - self.start : last - self.start] = samples[
                :, first - position : last - position
            ]
            self.filled_until = max(self.filled_until, last)

    def samples(self) -> np.ndarray:
        """The window, cut to what was decoded (a track that ends early gives a shorter window)."""
        return self.data[:, : max(0, self.filled_until - self.start)]


def audio_stream_info(path: str | os.PathLike) -> dict:
    """``{"channels", "sample_rate", "layout", "codec", "duration"}`` of the first audio stream (ValueError: none)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"media file not found: {path}")
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ValueError(f"expected an audio stream in {path}, found none")
            stream = container.streams.audio[0]
            duration = None
            if stream.duration is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            return {
                "channels": int(stream.channels),
                "sample_rate": int(stream.rate),
                "layout": stream.layout.name,
                "codec": stream.codec_context.name,
                "duration": duration,
            }
    except av.error.FFmpegError as error:
        raise ValueError(f"could not open {path}: {error}") from None


def _frame_samples(frame) -> np.ndarray:
    data = frame.to_ndarray()
    if not frame.format.is_planar:  # packed: (1, samples·channels) interleaved
        data = data.reshape(-1, frame.layout.nb_channels).T
    if data.dtype.kind != "f":
        data = data.astype(np.float64) / float(-np.iinfo(data.dtype).min)
    return data.astype(np.float32, copy=False)


def _decode_pass(
    container, stream, windows: list[AudioWindow], seek_to: float | None
) -> Iterator[AudioWindow]:
    """Decode frames and fill windows (sorted by start); yield each window once its end has been decoded."""
    rate = int(stream.rate)
    time_base = stream.time_base
    origin = int(stream.start_time or 0)
    if seek_to is not None:
        container.seek(int(seek_to / time_base) + origin, backward=True, any_frame=False, stream=stream)
    pending = list(windows)
    counted = 0  # fallback position for frames without a timestamp
    first = True
    for frame in container.decode(stream):
        position = round(float((frame.pts - origin) * time_base) * rate) if frame.pts is not None else counted
        if first and seek_to is not None and position > pending[0].start:
            raise _SeekOvershoot
        first = False
        samples = _frame_samples(frame)
        counted = position + samples.shape[1]
        for window in pending:
            if window.start >= counted:
                break
            window.add(position, samples)
        # Windows are sorted by start, not end: a long early window may finish after a later short one.
        finished = [window for window in pending if window.end <= counted]
        for window in finished:
            pending.remove(window)
            yield window
        if not pending:
            return
    yield from pending  # the track ended: the rest are short (or empty)


class _SeekOvershoot(Exception):
    pass


def decode_audio_windows(
    path: str | os.PathLike, windows: Sequence[tuple[float, float]]
) -> Iterator[tuple[int, np.ndarray, int]]:
    """Decode ``windows`` (``(start seconds, duration seconds)``) of the first audio stream of ``path``.

    Time 0 is the stream's first presentation time, as for `visage_hf.video.io.read_frames` of the same file;
    samples are placed by their timestamps (so encoder delay and gaps are handled like a player would).

    Yields:
        ``(window index, audio float32 (channels, samples), sample_rate)`` in order of completion; a window past
        the end of the track comes back shorter than asked (the caller decides whether that is a failure).

    Raises:
        FileNotFoundError / ValueError: missing file, no audio stream, undecodable data.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"media file not found: {path}")
    if not windows:
        return
    for start, seconds in windows:
        if not (math.isfinite(start) and start >= 0 and math.isfinite(seconds) and seconds > 0):
            raise ValueError(
                f"expected windows (start >= 0, duration > 0) in seconds, got ({start}, {seconds})"
            )
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ValueError(f"expected an audio stream in {path}, found none")
            stream = container.streams.audio[0]
            rate, channels = int(stream.rate), int(stream.channels)
            order = sorted(range(len(windows)), key=lambda i: windows[i][0])
            first_start = windows[order[0]][0]
            seek_to = first_start - _SEEK_MARGIN_SECONDS if first_start > _SEEK_THRESHOLD_SECONDS else None

            def fresh() -> list[AudioWindow]:
                return [
                    AudioWindow(i, round(windows[i][0] * rate), round(windows[i][1] * rate), channels)
                    for i in order
                ]

            try:
                for window in _decode_pass(container, stream, fresh(), seek_to):
                    yield window.index, window.samples(), rate
            except (_SeekOvershoot, av.error.FFmpegError):
                if seek_to is None:
                    raise
                container.seek(0)  # a poorly indexed file: decode from the beginning instead
                for window in _decode_pass(container, stream, fresh(), None):
                    yield window.index, window.samples(), rate
    except av.error.FFmpegError as error:
        raise ValueError(f"could not decode the audio of {path}: {error}") from None


def encode_flac(audio: np.ndarray, sample_rate: int, subtype: str = "PCM_24") -> bytes:
    """``(channels, samples)`` float in [-1, 1] -> FLAC file bytes (values beyond ±1 are clipped)."""
    import soundfile as sf

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1.0, 1.0).T, int(sample_rate), subtype=subtype, format="FLAC")
    return buffer.getvalue()


def decode_flac(data: bytes, expected_channels: int | None = 4) -> tuple[np.ndarray, int]:
    """FLAC (or any libsndfile format) bytes -> ``(float32 (channels, samples), sample_rate)``.

    Raises:
        ValueError: unreadable bytes (e.g. a binary column read under a numpy/torch format, which strips
            trailing NUL bytes: read media columns in the default Python format or with ``with_transform``),
            or a channel count other than ``expected_channels``.
    """
    import soundfile as sf

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"expected encoded audio bytes, got {type(data).__name__}")
    try:
        audio, sample_rate = sf.read(io.BytesIO(bytes(data)), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise ValueError(
            f"could not decode the audio bytes ({len(data)} bytes): {error}. Binary columns lose trailing NUL "
            "bytes under the numpy/torch formats; read them in the default format or with with_transform."
        ) from None
    if expected_channels is not None and audio.shape[1] != expected_channels:
        raise ValueError(f"expected {expected_channels}-channel audio, got {audio.shape[1]} channels")
    return np.ascontiguousarray(audio.T), int(sample_rate)


def stereo_layout(width: int, height: int, layout: str = "auto") -> str:
    """The frame layout of a 360° video: ``"mono"`` (2:1 equirect), ``"top-bottom"`` (1:1, left eye on top:
    YouTube's stereoscopic format) or ``"left-right"`` (4:1); ``"auto"`` decides from the aspect ratio."""
    if layout in ("mono", "top-bottom", "left-right"):
        return layout
    if layout != "auto":
        raise ValueError(f"stereo layout: expected auto, mono, top-bottom or left-right, got {layout!r}")
    ratio = width / height
    guess = {2: "mono", 1: "top-bottom", 4: "left-right"}.get(round(ratio))
    if guess is None or abs(ratio - round(ratio)) > 0.02:
        raise ValueError(
            f"expected an equirectangular video (2:1, or 1:1 / 4:1 stereoscopic), got {width}x{height}"
        )
    return guess


def select_mono_view(frames: np.ndarray, layout: str = "auto") -> tuple[np.ndarray, str]:
    """One eye of a stereoscopic 360° video: ``(T, H, W, 3)`` -> the 2:1 equirectangular view, and the layout
    used (see :func:`stereo_layout`)."""
    height, width = frames.shape[1:3]
    layout = stereo_layout(width, height, layout)
    if layout == "top-bottom":
        return frames[:, : height // 2], layout
    if layout == "left-right":
        return frames[:, :, : width // 2], layout
    return frames, layout
