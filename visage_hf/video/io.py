"""Video I/O with PyAV: frames sampled at 4 fps by timestamp, and MP4 files carrying spatial audio.

Reading (:func:`probe`, :func:`read_frames`, :func:`read_audio_track`): any container FFmpeg reads. Frames
are sampled by timestamp, so variable-frame-rate files are handled, and turned upright according to the
rotation (display matrix) metadata phones write. Times are seconds from the first video frame.

Field of view: the equirectangular -> rectilinear crop lives in :mod:`visage_hf.video.equirect` and is re-exported
here (:func:`equirect_to_fov`, :func:`fov_crop`, ...) so frame reading and cropping come from one place.

Writing (:func:`write_mp4`, :func:`write_video`): the FOA becomes one 4-channel track (AAC ``4.0`` or Opus
with channel mapping family 2, 48 kHz) and gets Google's ``SA3D`` box (:mod:`visage_hf.video.sa3d`), which is
what YouTube and spatial-audio players look for. Files are written atomically.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..audio.io import check_foa, check_sample_rate, resample
from ..utils.files import temporary_sibling as _temporary_path
from .equirect import (
    direction_to_yaw_pitch,
    equirect_to_fov,
    fov_crop,
    fov_sampling_grid,
    yaw_pitch_to_direction,
)
from .sa3d import inject_spatial_metadata

__all__ = [
    "VideoInfo",
    "audio_track_info",
    "direction_to_yaw_pitch",
    "equirect_to_fov",
    "fov_crop",
    "fov_sampling_grid",
    "probe",
    "read_audio_track",
    "read_frames",
    "write_mp4",
    "write_video",
    "yaw_pitch_to_direction",
]

YOUTUBE_SAMPLE_RATE = 48000
# YouTube's minimum bit rates for first-order ambisonics (Help answer 6395969).
_AUDIO_CODECS = {
    "aac": {"encoder": "aac", "layout": "4.0", "options": {}, "format": "fltp", "min_bitrate": 256_000},
    "opus": {
        "encoder": "libopus",
        "layout": "ambisonic 1",
        "options": {"mapping_family": "2"},
        "format": "flt",
        "min_bitrate": 512_000,
    },
}
_DEFAULT_BITRATE = {"aac": 384_000, "opus": 512_000}
# Two timestamps closer than this are the same instant (well below any real frame interval).
_TIME_EPS = 1e-6
_AUDIO_CHUNK = 4096


# ============================================================================================ reading


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` finds. ``width``/``height`` are as displayed (after ``rotation``); ``rotation`` is the
    counter-clockwise display rotation in degrees; ``duration`` and ``fps`` may be estimates for files
    without an index; ``num_frames`` is None when the container does not say."""

    duration: float
    fps: float
    width: int
    height: int
    rotation: int
    num_frames: int | None
    codec: str
    has_audio: bool
    audio_channels: int | None
    audio_sample_rate: int | None


def _open(path):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video file not found: {path}")
    if path.is_dir():
        raise ValueError(f"expected a video file, got a directory: {path}")
    try:
        return av.open(str(path))
    except av.error.FFmpegError as error:
        raise ValueError(
            f"could not read {path} as a media file (corrupt or not audio/video): {error}"
        ) from None


def _video_stream(container, path):
    if not container.streams.video:
        kinds = [stream.type for stream in container.streams]
        found = (
            f"only {', '.join(kinds)} stream(s)" if kinds else "no streams at all (empty or zero-length file)"
        )
        raise ValueError(f"expected a video stream in {path}, found {found}")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return stream


def _stream_origin(stream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def _nominal_fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _rotate_upright(image: np.ndarray, rotation: int) -> np.ndarray:
    # ``rotation`` is how far the stored picture must turn counter-clockwise to be displayed, as np.rot90 does.
    quarter_turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(image, quarter_turns)) if quarter_turns else image


def probe(path: str | os.PathLike) -> VideoInfo:
    """Describe a video file without decoding more than its first frame.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable / corrupt file, or no video stream.
    """
    with _open(path) as container:
        stream = _video_stream(container, path)
        if stream.duration is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = 0.0
        rotation = 0
        try:
            first = next(container.decode(stream), None)
            rotation = int(first.rotation) if first is not None else 0
        except av.error.FFmpegError:
            pass
        width, height = stream.codec_context.width, stream.codec_context.height
        if round(rotation / 90) % 2:
            width, height = height, width
        audio = container.streams.audio[0] if container.streams.audio else None
        return VideoInfo(
            duration=duration,
            fps=_nominal_fps(stream),
            width=width,
            height=height,
            rotation=rotation,
            num_frames=stream.frames or None,
            codec=stream.codec_context.name,
            has_audio=audio is not None,
            audio_channels=audio.channels if audio is not None else None,
            audio_sample_rate=audio.rate if audio is not None else None,
        )


def _decoded_frames(container, stream, path) -> Iterator[tuple[object, float, float]]:
    """Yield ``(frame, time, duration)`` in presentation order; times in seconds from the stream start."""
    origin = _stream_origin(stream)
    fallback_step = 1.0 / _nominal_fps(stream) if _nominal_fps(stream) else 0.0
    previous = None
    try:
        for frame in container.decode(stream):
            if frame.pts is not None:
                time = float(frame.pts * stream.time_base) - origin
            else:  # raw streams without timestamps: assume the nominal rate
                time = 0.0 if previous is None else previous + fallback_step
            length = float(frame.duration * stream.time_base) if frame.duration else fallback_step
            previous = time
            yield frame, time, length
    except av.error.FFmpegError as error:
        raise ValueError(f"could not decode the video of {path}: {error}") from None


def _check_window(fps, start, duration) -> tuple[float | None, float, float | None]:
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps: expected a positive number of frames per second (or None), got {fps}")
    if not (math.isfinite(start) and start >= 0):
        raise ValueError(f"start: expected seconds >= 0, got {start}")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise ValueError(
            f"duration: expected seconds > 0 (or None for the rest of the video), got {duration}"
        )
    return (
        (None if fps is None else float(fps)),
        float(start),
        (None if duration is None else float(duration)),
    )


def _seek(container, stream, seconds: float) -> None:
    """Seek to the key frame at or before ``seconds`` (from the stream start)."""
    target = int((seconds + _stream_origin(stream)) / stream.time_base)
    container.seek(target, backward=True, any_frame=False, stream=stream)


def read_frames(
    path: str | os.PathLike,
    fps: float | None = 4.0,
    start: float = 0.0,
    duration: float | None = None,
    *,
    size: tuple[int, int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode the frames shown at ``start + k / fps`` for every ``k`` with a time in ``[start, start + duration)``.

    The frame for time ``t`` is the last frame whose timestamp is ``<= t`` (what a player shows at ``t``), so
    variable frame rates are sampled correctly; a ``t`` before the first frame takes the first frame. Frames
    are rotated upright by the file's rotation metadata (multiples of 90°; flips are ignored).

    A clip shorter than asked returns only the times it covers (``t`` before the end of its last frame), so
    ``len(times)`` can be less than ``duration * fps``; the caller decides whether that is an error.

    Args:
        path: any file FFmpeg reads.
        fps: sampling rate; None returns every frame at its own timestamp.
        start: seconds from the first frame.
        duration: seconds; None reads to the end.
        size: ``(width, height)`` to scale the upright frames to (FFmpeg's scaler), None keeps them.

    Returns:
        ``(frames, times)``: uint8 ``(T, H, W, 3)`` RGB and float64 ``(T,)`` seconds.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unreadable / corrupt file, no video stream, no frames, ``start`` at or beyond the end,
            ``duration <= 0`` or ``fps <= 0``.
    """
    fps, start, duration = _check_window(fps, start, duration)
    if size is not None and (len(size) != 2 or min(size) < 1):
        raise ValueError(f"size: expected (width, height) in pixels, got {size}")
    try:
        frames, times, end_of_video = _sample(path, fps, start, duration, size, seek=start > 0)
    except _SeekOvershoot:
        # The seek landed after ``start`` (some files are poorly indexed): decode from the beginning.
        frames, times, end_of_video = _sample(path, fps, start, duration, size, seek=False)
    if not frames:
        if end_of_video is None:
            raise ValueError(f"no video frames could be decoded from {path} (empty or zero-length video)")
        raise ValueError(
            f"start={start:g} s is at or beyond the end of the video ({end_of_video:.3f} s long): {path}"
        )
    return np.stack(frames), np.asarray(times, dtype=np.float64)


class _SeekOvershoot(Exception):
    pass


def _sample(path, fps, start, duration, size, seek: bool):
    """Decode and pick frames; returns (frames, times, end time of the video or None if it has no frames)."""
    with _open(path) as container:
        stream = _video_stream(container, path)
        if seek:
            try:
                _seek(container, stream, start)
            except av.error.FFmpegError:
                container.seek(0)
        limit = None if duration is None else start + duration
        picked: list[np.ndarray] = []
        times: list[float] = []
        # The last converted (frame, image): a frame shown at several sample times is converted once.
        # (Holding the frame keeps it alive, so identity comparison is safe.)
        last: list = [None, None]

        def pick(frame, time: float) -> None:
            if last[0] is not frame:
                last[:] = [frame, _to_rgb(frame, size)]
            picked.append(last[1])
            times.append(time)

        def next_target() -> float | None:
            if fps is None:
                return None
            target = start + len(times) / fps
            return target if limit is None or target < limit - _TIME_EPS else None

        previous = None  # (frame, time, length) of the last frame at or before the next target
        for frame, time, length in _decoded_frames(container, stream, path):
            if seek and previous is None and time > start + _TIME_EPS:
                raise _SeekOvershoot
            if fps is None:
                if time >= start - _TIME_EPS and (limit is None or time < limit - _TIME_EPS):
                    pick(frame, time)
                elif limit is not None and time >= limit - _TIME_EPS:
                    break
                previous = (frame, time, length)
                continue
            target = next_target()
            while target is not None and target < time - _TIME_EPS:
                pick(previous[0] if previous is not None else frame, target)
                target = next_target()
            if target is None:
                return picked, times, time
            previous = (frame, time, length)
        if previous is None:
            return picked, times, None
        # Packet durations of reordered (B-frame) streams can be off; the track duration is the safer end.
        end_of_video = previous[1] + previous[2]
        if stream.duration:
            end_of_video = max(end_of_video, float(stream.duration * stream.time_base))
        target = next_target()
        while target is not None and target < end_of_video - _TIME_EPS:
            pick(previous[0], target)
            target = next_target()
        return picked, times, end_of_video


def _to_rgb(frame, size: tuple[int, int] | None) -> np.ndarray:
    rotation = int(frame.rotation or 0)
    if size is None:
        image = frame.to_ndarray(format="rgb24")
    else:
        width, height = (size[1], size[0]) if round(rotation / 90) % 2 else size
        image = frame.to_ndarray(format="rgb24", width=int(width), height=int(height))
    return _rotate_upright(image, rotation)


def read_audio_track(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of a media file (MP4, WebM, Opus, ...) with PyAV.

    Returns:
        ``(audio, sample_rate)``: float32 ``(channels, samples)`` in the stream's channel order, and Hz.

    Raises:
        FileNotFoundError / ValueError: missing, unreadable, or no audio stream.
    """
    with _open(path) as container:
        if not container.streams.audio:
            raise ValueError(f"expected an audio stream in {path}, found none")
        stream = container.streams.audio[0]
        chunks = []
        try:
            for frame in container.decode(stream):
                data = frame.to_ndarray()
                if not frame.format.is_planar:  # packed: (1, samples * channels) interleaved
                    data = data.reshape(-1, frame.layout.nb_channels).T
                chunks.append(data.astype(np.float32) if data.dtype.kind == "f" else _int_to_float(data))
        except av.error.FFmpegError as error:
            raise ValueError(f"could not decode the audio of {path}: {error}") from None
        if not chunks:
            raise ValueError(f"the audio stream of {path} holds no samples")
        return np.concatenate(chunks, axis=1), int(stream.rate)


def _int_to_float(data: np.ndarray) -> np.ndarray:
    return (data.astype(np.float64) / float(-np.iinfo(data.dtype).min)).astype(np.float32)


def audio_track_info(path: str | os.PathLike) -> dict | None:
    """The first audio stream as FFmpeg sees it: ``{"codec", "channels", "layout", "sample_rate", "bit_rate",
    "duration"}`` (``layout`` e.g. ``"4.0"`` or ``"ambisonic 1"``), or None when there is no audio."""
    with _open(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        duration = float(stream.duration * stream.time_base) if stream.duration is not None else None
        return {
            "codec": stream.codec_context.name,
            "channels": stream.channels,
            "layout": stream.layout.name,
            "sample_rate": int(stream.rate),
            "bit_rate": stream.bit_rate,
            "duration": duration,
            "num_audio_streams": len(container.streams.audio),
        }


# ============================================================================================ writing


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
    options = {"crf": "18", "preset": "fast"} if codec == "libx264" else {}
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
    stream = _video_stream(source, source.name)
    output = container.add_stream_from_template(stream)

    def packets():
        for packet in source.demux(stream):
            if packet.dts is None:  # the demuxer's end-of-stream marker
                continue
            packet.stream = output
            yield packet

    return packets()


def _segment_images(source, start: float, duration: float) -> Iterator[tuple[np.ndarray, float]]:
    """Upright frames of ``source`` in ``[start, start + duration)`` with times from ``start``."""
    stream = _video_stream(source, source.name)
    if start > 0:
        try:
            _seek(source, stream, start)
        except av.error.FFmpegError:
            source.seek(0)
    for frame, time, _ in _decoded_frames(source, stream, source.name):
        if time >= start + duration - _TIME_EPS:
            break
        if time >= start - _TIME_EPS:
            yield _to_rgb(frame, None), time - start


def _add_video(container, stack: ExitStack, video, fps, video_start: float | None, seconds: float):
    """Add the video stream (before the audio one, so it is track 1) and return its packet iterator."""
    if isinstance(video, (str, os.PathLike)):
        source = stack.enter_context(_open(video))
        if video_start is None:
            return _remuxed_packets(source, container)
        info = probe(video)
        rate = Fraction(info.fps).limit_denominator(1001) if info.fps > 0 else Fraction(25)
        stream = _add_video_encoder(container, rate, info.width, info.height)
        return _encode_images(stream, _segment_images(source, float(video_start), seconds))
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
) -> Path:
    """Write an MP4 whose single audio track is the FOA, tagged as AmbiX spatial audio (``SA3D`` box).

    The audio is resampled to 48 kHz (polyphase) and encoded as one 4-channel track: AAC with layout
    ``4.0`` (default 384 kb/s; YouTube asks >= 256) or Opus with channel mapping family 2 (layout
    ``ambisonic 1``, default 512 kb/s, YouTube's minimum). Video, if any:

    * a path: its first video stream is copied without re-encoding (whole stream; other streams dropped),
      or, with ``video_start``, the frames in ``[video_start, video_start + audio duration)`` are re-encoded
      with H.264 so the cut is exact;
    * uint8 frames ``(T, H, W, 3)`` with ``fps``: encoded with H.264.

    ``spherical=True`` also writes Spherical Video V2 metadata (equirectangular, mono) so YouTube treats the
    video as 360° and head-tracks the audio. ``faststart`` puts the index first for streaming. The file
    appears only when complete (temporary file + ``os.replace``).

    Args:
        foa: AmbiX ``(4, samples)`` float (W, Y, Z, X; SN3D).
        sample_rate: Hz of ``foa``.

    Returns:
        the written path.
    """
    if codec not in _AUDIO_CODECS:
        raise ValueError(f"codec: expected one of {sorted(_AUDIO_CODECS)}, got {codec!r}")
    bitrate = _DEFAULT_BITRATE[codec] if bitrate is None else int(bitrate)
    if bitrate < _AUDIO_CODECS[codec]["min_bitrate"]:
        warnings.warn(
            f"bitrate {bitrate} b/s is below YouTube's minimum for 4-channel {codec} "
            f"({_AUDIO_CODECS[codec]['min_bitrate']} b/s)",
            stacklevel=2,
        )
    if spherical and video is None:
        raise ValueError("spherical=True needs a video (an equirectangular file or frames)")
    path = Path(path)
    foa = _prepare_foa(foa, sample_rate)
    if isinstance(video, (str, os.PathLike)):
        if not Path(video).exists():
            raise FileNotFoundError(f"video file not found: {video}")
        if video_start is not None and not (math.isfinite(video_start) and video_start >= 0):
            raise ValueError(f"video_start: expected seconds >= 0, got {video_start}")
    elif video is not None:
        video = _check_frames(video)
        _frame_rate(fps)

    encoded = _temporary_path(path, ".mp4")
    try:
        options = {"movflags": "+faststart"} if faststart else {}
        with ExitStack() as stack:
            container = stack.enter_context(av.open(str(encoded), "w", format="mp4", options=options))
            seconds = foa.shape[1] / YOUTUBE_SAMPLE_RATE
            video_packets = None
            if video is not None:
                video_packets = _add_video(container, stack, video, fps, video_start, seconds)
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
