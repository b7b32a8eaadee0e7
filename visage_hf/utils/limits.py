"""Resource limits for files from strangers, stated in one place, and the checks that enforce them.

Every parser that reads a user file (video, audio, MP4 boxes) asks this module before it allocates: a header
that declares a 30000 x 30000 picture, an hour of video, hundreds of streams, 64 audio channels or a
data chunk larger than the file is refused with one ``ValueError`` naming the limit, before any frame or
sample is decoded. The limits are generous for visage-hf's work (clips of seconds to minutes, first-order
ambisonics) and tight enough that one request cannot take the machine's memory.

Each limit can be changed for a process with an environment variable ``VISAGE_LIMIT_<NAME>`` (e.g.
``VISAGE_LIMIT_MAX_VIDEO_SECONDS=7200``), read once when this module is imported, or by replacing
:data:`LIMITS` (``visage_hf.utils.limits.LIMITS = dataclasses.replace(LIMITS, max_video_seconds=60)``).
The Gradio Space applies its own, stricter limits on top (``visage_hf.app.logic.DemoLimits``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "LIMITS",
    "Limits",
    "check_audio_header",
    "check_finite_samples",
    "check_frame_time",
    "check_mp4_box_depth",
    "check_mp4_moov_size",
    "check_riff_sizes",
    "check_video_container",
]

# Streamed WAVs (written to a pipe) cannot know their length and store one of these sizes.
_RIFF_UNKNOWN_SIZES = (0, 0xFFFFFFFF)
_RIFF_CONTAINERS = (b"RIFF", b"RIFX")


@dataclass(frozen=True)
class Limits:
    """What one input file may declare.

    Attributes:
        max_video_side: pixels on the longer side of the picture (8192: DCI 8K; 8K equirectangular is 7680).
        max_video_pixels: width x height (one 8192 x 4320 RGB frame is 106 MB).
        max_streams: streams of any kind in one container.
        max_video_seconds: declared duration, and the timestamp of any decoded frame.
        max_audio_channels: 16 is third-order ambisonics; visage-hf produces 4.
        max_audio_seconds: declared duration of an audio file.
        max_sample_rate: Hz.
        max_audio_bytes: decoded float32 size of an audio file (channels x frames x 4).
        max_moov_bytes: the MP4 ``moov`` box, read whole into memory by the SA3D reader/writer.
        max_box_depth: nesting of MP4 boxes the SA3D reader follows.
    """

    max_video_side: int = 8192
    max_video_pixels: int = 8192 * 4320
    max_streams: int = 64
    max_video_seconds: float = 1800.0
    max_audio_channels: int = 16
    max_audio_seconds: float = 1800.0
    max_sample_rate: int = 384_000
    max_audio_bytes: int = 2 << 30
    max_moov_bytes: int = 64 << 20
    max_box_depth: int = 16

    @classmethod
    def from_env(cls, environ=None) -> Limits:
        """Defaults, each overridden by ``VISAGE_LIMIT_<FIELD NAME IN CAPITALS>`` when set."""
        environ = os.environ if environ is None else environ
        values = {}
        for field in dataclasses.fields(cls):
            raw = environ.get(f"VISAGE_LIMIT_{field.name.upper()}")
            if raw is None:
                continue
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(
                    f"VISAGE_LIMIT_{field.name.upper()}: expected a number, got {raw!r}"
                ) from None
            if not (math.isfinite(value) and value > 0):
                raise ValueError(
                    f"VISAGE_LIMIT_{field.name.upper()}: expected a positive number, got {raw!r}"
                )
            values[field.name] = value if field.type == "float" else int(value)
        return cls(**values)


LIMITS = Limits.from_env()


def _refuse(path, what: str, value, limit, unit: str = "", name: str = "") -> None:
    variable = f" (VISAGE_LIMIT_{name.upper()})" if name else ""
    raise ValueError(f"{path}: {what} {value:g}{unit} is over the limit of {limit:g}{unit}{variable}")


# --------------------------------------------------------------------------------------------- video


def check_video_container(container, stream, path) -> None:
    """Refuse a PyAV ``container`` whose header declares too many streams, too large a picture for its first
    video ``stream``, or too long a duration. Reads only the header (nothing decoded)."""
    limits = LIMITS
    if len(container.streams) > limits.max_streams:
        _refuse(path, "stream count", len(container.streams), limits.max_streams, name="max_streams")
    if stream.codec_context is None:  # FFmpeg found the stream but no decoder for it (unknown/damaged codec)
        raise ValueError(f"{path}: no decoder for its video stream (unknown or corrupt codec)")
    width, height = int(stream.codec_context.width or 0), int(stream.codec_context.height or 0)
    if max(width, height) > limits.max_video_side or width * height > limits.max_video_pixels:
        raise ValueError(
            f"{path}: picture {width}x{height} is over the limit of {limits.max_video_side} pixels a side "
            f"and {limits.max_video_pixels} pixels (VISAGE_LIMIT_MAX_VIDEO_SIDE / _MAX_VIDEO_PIXELS)"
        )
    durations = [container.duration / 1_000_000 if container.duration else 0.0]
    if stream.duration and stream.time_base:
        durations.append(float(stream.duration * stream.time_base))
    if max(durations) > limits.max_video_seconds:
        _refuse(path, "duration", max(durations), limits.max_video_seconds, " s", "max_video_seconds")


def check_frame_time(seconds: float, path) -> None:
    """Refuse a decoded frame shown past the duration limit (``seconds``: when it ends). A header can lie
    (one frame an hour long in a file that declares half a second), so every frame is checked."""
    if not seconds <= LIMITS.max_video_seconds:  # also catches NaN
        _refuse(path, "a frame shown until", seconds, LIMITS.max_video_seconds, " s", "max_video_seconds")


# --------------------------------------------------------------------------------------------- audio


def check_audio_header(channels: int, frames: int, sample_rate: int, path) -> None:
    """Refuse an audio header (``soundfile.info``) before its samples are read."""
    limits = LIMITS
    if not 1 <= channels <= limits.max_audio_channels:
        raise ValueError(
            f"{path}: {channels} audio channels; expected 1 to {limits.max_audio_channels} "
            "(VISAGE_LIMIT_MAX_AUDIO_CHANNELS)"
        )
    if not 1 <= sample_rate <= limits.max_sample_rate:
        raise ValueError(
            f"{path}: sample rate {sample_rate} Hz; expected 1 to {limits.max_sample_rate} "
            "(VISAGE_LIMIT_MAX_SAMPLE_RATE)"
        )
    if frames / sample_rate > limits.max_audio_seconds:
        _refuse(path, "duration", frames / sample_rate, limits.max_audio_seconds, " s", "max_audio_seconds")
    if frames * channels * 4 > limits.max_audio_bytes:
        _refuse(
            path, "decoded size", frames * channels * 4, limits.max_audio_bytes, " bytes", "max_audio_bytes"
        )


def check_finite_samples(samples: np.ndarray, path) -> None:
    """Refuse decoded samples holding NaN or infinity (float WAVs can store them; every later step breaks)."""
    if not np.isfinite(samples).all():
        bad = int(samples.size - np.count_nonzero(np.isfinite(samples)))
        raise ValueError(f"{path}: {bad} NaN/infinite sample(s); expected finite audio")


def check_riff_sizes(path) -> None:
    """Refuse a WAV (RIFF/RIFX) whose header declares more bytes than the file holds (truncated or forged).

    libsndfile quietly clamps such sizes; refusing them says the file is damaged instead of returning part of
    it. Sizes meaning "unknown" (0 and 0xFFFFFFFF, written by streaming encoders) are accepted."""
    path = Path(path)
    file_size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] not in _RIFF_CONTAINERS or head[8:12] != b"WAVE":
            return
        order = "<" if head[:4] == b"RIFF" else ">"
        (riff_size,) = struct.unpack(order + "I", head[4:8])
        if riff_size not in _RIFF_UNKNOWN_SIZES and riff_size + 8 > file_size:
            raise ValueError(
                f"{path}: the RIFF header declares {riff_size + 8} bytes, the file holds {file_size} "
                "(truncated or corrupt WAV)"
            )
        offset = 12
        while offset + 8 <= file_size:
            handle.seek(offset)
            kind, size = struct.unpack(order + "4sI", handle.read(8))
            if kind == b"data":
                if size not in _RIFF_UNKNOWN_SIZES and offset + 8 + size > file_size:
                    raise ValueError(
                        f"{path}: the WAV data chunk declares {size} bytes, only {file_size - offset - 8} "
                        "follow (truncated or corrupt WAV)"
                    )
                return
            offset += 8 + size + (size & 1)  # chunks are padded to an even length


# --------------------------------------------------------------------------------------------- MP4 boxes


def check_mp4_moov_size(size: int, path) -> None:
    """Refuse an MP4 ``moov`` box too large to read into memory."""
    if size > LIMITS.max_moov_bytes:
        _refuse(path, "the 'moov' box of", size, LIMITS.max_moov_bytes, " bytes", "max_moov_bytes")


def check_mp4_box_depth(box_path: str) -> None:
    """Refuse MP4 boxes nested deeper than any real file (``moov/trak/trak/...`` would exhaust the stack)."""
    depth = box_path.count("/") + 1
    if depth > LIMITS.max_box_depth:
        raise ValueError(
            f"MP4 boxes nested {depth} deep at {box_path[:80]}...: over the limit of {LIMITS.max_box_depth} "
            "(corrupt or hostile file)"
        )
