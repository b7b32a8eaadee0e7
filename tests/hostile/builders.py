"""Small hostile files built byte by byte (headers with struct) or with PyAV: the seeds of the bomb tests,
the property tests and the fuzz script. Every file is a few kB at most."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SIDE = 16


def wav_bytes(
    channels: int = 1,
    frames: int = 16,
    *,
    rate: int = 16000,
    float_samples: np.ndarray | None = None,
    declared_data_size: int | None = None,
) -> bytes:
    """A canonical RIFF/WAVE file: 16-bit PCM zeros, or IEEE float ``float_samples`` (interleaved)."""
    if float_samples is not None:
        tag, bits, payload = 3, 32, np.asarray(float_samples, dtype="<f4").tobytes()
    else:
        tag, bits, payload = 1, 16, bytes(frames * channels * 2)
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    data_size = len(payload) if declared_data_size is None else declared_data_size
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", data_size)
        + payload
    )
    return b"RIFF" + struct.pack("<I", len(body)) + body


def y4m_bytes(width: int, height: int, payload: int = 64) -> bytes:
    """A YUV4MPEG2 stream header declaring ``width`` x ``height`` with one (truncated) frame."""
    return b"YUV4MPEG2 W%d H%d F25:1 Ip A1:1 C420jpeg\nFRAME\n" % (width, height) + bytes(payload)


def timed_mp4(path: Path, times: list[float], *, side: int = SIDE, container_format: str = "mp4") -> Path:
    """A tiny MPEG-4 part 2 video with one grey frame at each timestamp (seconds)."""
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for index, seconds in enumerate(times):
            image = np.full((side, side, 3), 40 * index % 256, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = round(seconds * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def many_streams_mkv(path: Path, audio_streams: int) -> Path:
    """A Matroska file with one 16 x 16 video frame and ``audio_streams`` empty PCM streams.

    (PyAV's muxer crashes above about 1000 streams, so "thousands" is tested with hundreds against a
    limit of tens.)"""
    with av.open(str(path), "w", format="matroska") as container:
        video = container.add_stream("mpeg4", rate=4)
        video.width = video.height = SIDE
        video.pix_fmt = "yuv420p"
        for _ in range(audio_streams):
            container.add_stream("pcm_s16le", rate=8000, layout="mono")
        frame = av.VideoFrame.from_ndarray(np.zeros((SIDE, SIDE, 3), np.uint8), format="rgb24")
        frame.pts = 0
        for packet in [*video.encode(frame), *video.encode()]:
            container.mux(packet)
    return path


def foa_mp4(path: Path, seconds: float = 0.25) -> Path:
    """A small MP4 with a 4-channel AAC track tagged with SA3D (our own writer), no video."""
    from visage_hf.video.io import write_mp4

    foa = np.zeros((4, int(48000 * seconds)), np.float32)
    foa[0] = 0.1 * np.sin(np.arange(foa.shape[1]) / 10)
    return write_mp4(path, foa, 48000)


def box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def set_durations(data: bytearray, boxes, seconds_scale: float) -> bytearray:
    """Scale the durations of every ``mvhd``/``mdhd``/``tkhd`` (version 0) and ``elst`` entry by
    ``seconds_scale``: a header that lies about how long the file is."""
    field = {"mvhd": 16, "mdhd": 16, "tkhd": 20}  # duration offset after the 8-byte header
    for info in boxes:
        kind = info.type
        if kind in field and data[info.offset + 8] == 0:
            at = info.offset + 8 + field[kind]
            (value,) = struct.unpack_from(">I", data, at)
            struct.pack_into(">I", data, at, int(value * seconds_scale))
        elif kind == "elst" and data[info.offset + 8] == 0:
            (count,) = struct.unpack_from(">I", data, info.offset + 12)
            for entry in range(count):
                at = info.offset + 16 + 12 * entry
                (value,) = struct.unpack_from(">I", data, at)
                struct.pack_into(">I", data, at, int(value * seconds_scale))
    return data
