"""MP4 files carrying spatial audio: the FOA as one 4-channel track tagged with Google's ``SA3D`` box.

:func:`write_mp4` writes the FOA as one 4-channel track (AAC ``4.0`` or Opus with channel mapping family 2,
48 kHz) and gets the ``SA3D`` box (:mod:`visage_hf.video.sa3d`), which is what YouTube and spatial-audio players
look for; the picture is copied from a file, cut from it, or encoded from frames. :func:`write_video` encodes
frames alone. Files are written atomically (temporary sibling + ``os.replace``).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np

from ..audio.io import check_foa, check_sample_rate, resample
from ..utils.files import temporary_sibling as _temporary_path
from .io import first_video_stream, open_media, probe, segment_frames
from .sa3d import inject_spatial_metadata

__all__ = ["YOUTUBE_SAMPLE_RATE", "Reframe", "write_mp4", "write_video"]

YOUTUBE_SAMPLE_RATE = 48000
# YouTube's minimum bit rates for first-order ambisonics (Help answer 6395969).
_AUDIO_CODECS = {
    # FFmpeg's "fast" coder: a sixth of "twoloop"'s CPU (5 s of FOA: 0.09 vs 0.5 s on a 2-core AVX-512 EPYC), and
    # by FFmpeg's AAC maintainer (commit fcb681ac, 2018) it sounds better than twoloop at high rates, as here
    # (96 kb/s a channel).
    "aac": {
        "encoder": "aac",
        "layout": "4.0",
        "options": {"aac_coder": "fast"},
        "format": "fltp",
        "min_bitrate": 256_000,
    },
    "opus": {
        "encoder": "libopus",
        "layout": "ambisonic 1",
        "options": {"mapping_family": "2"},
        "format": "flt",
        "min_bitrate": 512_000,
    },
}
_DEFAULT_BITRATE = {"aac": 384_000, "opus": 512_000}
_AUDIO_CHUNK = 4096


def _frame_rate(fps) -> Fraction:
    if fps is None or not (math.isfinite(float(fps)) and float(fps) > 0):
        raise ValueError(f"fps: expected a positive frame rate for the frames, got {fps}")
    return Fraction(fps).limit_denominator(1001) if not isinstance(fps, Fraction) else fps


def _check_frames(frames) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or 0 in frames.shape:
        raise ValueError(f"frames: expected uint8 (T, H, W, 3) RGB, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ValueError(f"frames: expected dtype uint8, got {frames.dtype}")
    return frames


_ENCODER_TIME_BASE = Fraction(1, 90000)


def _add_video_encoder(container, rate: Fraction, width: int, height: int):
    """An H.264 (or MPEG-4 part 2 where libx264 is missing) stream for upright RGB frames of this size."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    # crf 18 sets the quality; "veryfast" reaches it in ~60% of "fast"'s time (a 5-s 1280x640 clip: 0.66 vs 1.05 s
    # on a 2-core AVX-512 EPYC) at some cost in file size.
    options = {"crf": "18", "preset": "veryfast"} if codec == "libx264" else {}
    stream = container.add_stream(codec, rate=rate, options=options)
    # PyAV defaults to slice threads; frame threads are FFmpeg's own default for x264 and compress better.
    stream.codec_context.thread_type = "FRAME"
    stream.codec_context.time_base = _ENCODER_TIME_BASE
    # 4:2:0 chroma needs even sizes; odd frames get their last row/column repeated.
    stream.width, stream.height = width + width % 2, height + height % 2
    stream.pix_fmt = "yuv420p"
    return stream


def _encode_images(stream, images: Iterator[tuple[np.ndarray, float]]) -> Iterator:
    """Encode ``(image uint8 (H, W, 3), seconds)`` pairs; yields packets, then the encoder's remaining ones."""
    for image, seconds in images:
        pad_h, pad_w = stream.height - image.shape[0], stream.width - image.shape[1]
        if pad_h not in (0, 1) or pad_w not in (0, 1):
            raise ValueError(
                f"frame size changed mid-stream: {image.shape[1]}x{image.shape[0]}, "
                f"expected {stream.width}x{stream.height}"
            )
        if pad_h or pad_w:
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base = round(seconds / _ENCODER_TIME_BASE), _ENCODER_TIME_BASE
        yield from stream.encode(frame)
    yield from stream.encode()


def _timed(frames: np.ndarray, rate: Fraction) -> Iterator[tuple[np.ndarray, float]]:
    return ((image, float(index / rate)) for index, image in enumerate(frames))


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float, *, spherical: bool = False) -> Path:
    """Encode uint8 RGB frames ``(T, H, W, 3)`` as an H.264 MP4 (MPEG-4 part 2 if libx264 is missing), atomically.

    ``spherical=True`` adds Spherical Video V2 metadata (equirectangular frames)."""
    path = Path(path)
    frames = _check_frames(frames)
    rate = _frame_rate(fps)
    temporary = _temporary_path(path, ".mp4")
    try:
        with av.open(str(temporary), "w", format="mp4") as container:
            stream = _add_video_encoder(container, rate, frames.shape[2], frames.shape[1])
            for packet in _encode_images(stream, _timed(frames, rate)):
                container.mux(packet)
        if spherical:
            inject_spatial_metadata(temporary, path, num_channels=None, spherical=True)
            temporary.unlink()
        else:
            os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def _prepare_foa(foa, sample_rate) -> np.ndarray:
    foa = check_foa(foa)
    sample_rate = check_sample_rate(sample_rate)
    foa = resample(foa.astype(np.float32), sample_rate, YOUTUBE_SAMPLE_RATE)
    peak = float(np.max(np.abs(foa)))
    if peak > 1.0:
        warnings.warn(
            f"FOA peaks at {peak:.2f} (> 1.0 full scale); players may clip it. Scale it down before writing.",
            stacklevel=3,
        )
    return np.ascontiguousarray(foa, dtype=np.float32)


def _encode_audio(container, foa: np.ndarray, codec: str, bitrate: int) -> list:
    """Encode ``(4, n)`` 48 kHz FOA; returns the packets (encoded up front so they can be interleaved)."""
    spec = _AUDIO_CODECS[codec]
    stream = container.add_stream(
        spec["encoder"], rate=YOUTUBE_SAMPLE_RATE, layout=spec["layout"], options=dict(spec["options"])
    )
    stream.codec_context.format = spec["format"]
    stream.bit_rate = bitrate
    packets = []
    for offset in range(0, foa.shape[1], _AUDIO_CHUNK):
        frame = av.AudioFrame.from_ndarray(
            foa[:, offset : offset + _AUDIO_CHUNK], format="fltp", layout=spec["layout"]
        )
        frame.sample_rate = YOUTUBE_SAMPLE_RATE
        frame.pts = offset
        packets.extend(stream.encode(frame))
    packets.extend(stream.encode())
    return packets


def _mux_interleaved(container, video_packets, audio_packets: list) -> int:
    """Mux both streams in time order so neither has to be buffered whole; returns the video packet count."""
    pending = iter(audio_packets)
    next_audio = next(pending, None)
    count = 0
    for packet in video_packets:
        if packet.dts is None:  # the encoder's flush marker
            continue
        video_time = float(packet.dts * packet.time_base)
        while next_audio is not None and float(next_audio.dts * next_audio.time_base) <= video_time:
            container.mux(next_audio)
            next_audio = next(pending, None)
        container.mux(packet)
        count += 1
    while next_audio is not None:
        container.mux(next_audio)
        next_audio = next(pending, None)
    return count


def _remuxed_packets(source, container) -> Iterator:
    """Add a copy of ``source``'s first video stream to ``container``; return its packets (no re-encode)."""
    stream = first_video_stream(source, source.name)
    output = container.add_stream_from_template(stream)

    def packets():
        for packet in source.demux(stream):
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            packet.stream = output
            yield packet

    return packets()


class Reframe(NamedTuple):
    """A per-frame picture transform applied while re-encoding: ``function(image, seconds_from_start)`` maps
    each upright uint8 ``(h, w, 3)`` source frame to a uint8 ``(height, width, 3)`` one."""

    height: int
    width: int
    function: Callable[[np.ndarray, float], np.ndarray]


def _add_video(
    container,
    stack: ExitStack,
    video,
    fps,
    video_start: float | None,
    seconds: float,
    reframe: Reframe | None,
):
    """Add the video stream (before the audio one, so it is track 1) and return its packet iterator."""
    if isinstance(video, (str, os.PathLike)):
        source = stack.enter_context(open_media(video))
        if video_start is None and reframe is None:
            return _remuxed_packets(source, container)
        info = probe(video)
        rate = Fraction(info.fps).limit_denominator(1001) if info.fps > 0 else Fraction(25)
        images = segment_frames(source, float(video_start or 0.0), seconds)
        if reframe is None:
            return _encode_images(_add_video_encoder(container, rate, info.width, info.height), images)
        stream = _add_video_encoder(container, rate, reframe.width, reframe.height)
        return _encode_images(stream, ((reframe.function(image, time), time) for image, time in images))
    rate = _frame_rate(fps)
    stream = _add_video_encoder(container, rate, video.shape[2], video.shape[1])
    return _encode_images(stream, _timed(video, rate))


def write_mp4(
    path: str | os.PathLike,
    foa: np.ndarray,
    sample_rate: int,
    video: str | os.PathLike | np.ndarray | None = None,
    *,
    fps: float | None = None,
    video_start: float | None = None,
    codec: str = "aac",
    bitrate: int | None = None,
    spherical: bool = False,
    faststart: bool = True,
    reframe: Reframe | None = None,
) -> Path:
    """Write an MP4 whose single audio track is the FOA, tagged as AmbiX spatial audio (``SA3D`` box).

    The audio is resampled to 48 kHz (polyphase) and encoded as one 4-channel track: AAC with layout
    ``4.0`` (default 384 kb/s; YouTube asks >= 256) or Opus with channel mapping family 2 (layout
    ``ambisonic 1``, default 512 kb/s, YouTube's minimum). Video, if any:

    * a path: its first video stream is copied without re-encoding (whole stream; other streams dropped),
      or, with ``video_start``, the frames in ``[video_start, video_start + audio duration)`` are re-encoded
      with H.264 so the cut is exact;
    * uint8 frames ``(T, H, W, 3)`` with ``fps``: encoded with H.264.

    ``reframe`` (with a video path) re-encodes the segment through a per-frame transform, e.g. painting a
    field-of-view clip onto an equirectangular canvas for a 360° file.

    ``spherical=True`` also writes Spherical Video V2 metadata (equirectangular, mono) so YouTube treats the
    video as 360° and head-tracks the audio. ``faststart`` puts the index first for streaming. The file
    appears only when complete (temporary file + ``os.replace``).

    Args:
        foa: AmbiX ``(4, samples)`` float (W, Y, Z, X; SN3D).
        sample_rate: Hz of ``foa``.

    Returns:
        the written path.
    """
    bitrate = _check_bitrate(codec, bitrate)
    if spherical and video is None:
        raise ValueError("spherical=True needs a video (an equirectangular file or frames)")
    path = Path(path)
    foa = _prepare_foa(foa, sample_rate)
    video = _check_video(video, fps, video_start)

    encoded = _temporary_path(path, ".mp4")
    try:
        options = {"movflags": "+faststart"} if faststart else {}
        with ExitStack() as stack:
            container = stack.enter_context(av.open(str(encoded), "w", format="mp4", options=options))
            seconds = foa.shape[1] / YOUTUBE_SAMPLE_RATE
            video_packets = None
            if video is not None:
                video_packets = _add_video(container, stack, video, fps, video_start, seconds, reframe)
            audio_packets = _encode_audio(container, foa, codec, bitrate)
            if video_packets is None:
                for packet in audio_packets:
                    container.mux(packet)
            elif not _mux_interleaved(container, video_packets, audio_packets):
                raise ValueError(f"no video frames in {video} from video_start={video_start or 0:g} s on")
        inject_spatial_metadata(encoded, path, spherical=spherical)
    except av.error.FFmpegError as error:
        raise ValueError(f"could not write {path}: {error}") from None
    finally:
        encoded.unlink(missing_ok=True)
    return path


def _check_bitrate(codec: str, bitrate: int | None) -> int:
    """The audio bit rate (the codec's default when None); a warning below YouTube's minimum."""
    if codec not in _AUDIO_CODECS:
        raise ValueError(f"codec: expected one of {sorted(_AUDIO_CODECS)}, got {codec!r}")
    bitrate = _DEFAULT_BITRATE[codec] if bitrate is None else int(bitrate)
    if bitrate < _AUDIO_CODECS[codec]["min_bitrate"]:
        warnings.warn(
            f"bitrate {bitrate} b/s is below YouTube's minimum for 4-channel {codec} "
            f"({_AUDIO_CODECS[codec]['min_bitrate']} b/s)",
            stacklevel=3,
        )
    return bitrate


def _check_video(video, fps, video_start: float | None):
    """A video path that exists (with a valid ``video_start``), checked frames (with a valid ``fps``), or None."""
    if isinstance(video, (str, os.PathLike)):
        if not Path(video).exists():
            raise FileNotFoundError(f"video file not found: {video}")
        if video_start is not None and not (math.isfinite(video_start) and video_start >= 0):
            raise ValueError(f"video_start: expected seconds >= 0, got {video_start}")
        return video
    if video is not None:
        video = _check_frames(video)
        _frame_rate(fps)
    return video
