"""Video reading with PyAV: probe, frames sampled at 4 fps by timestamp, and the audio track of a video file.

Reading (:func:`probe`, :func:`read_frames`, :func:`read_audio_track`): any container FFmpeg reads. Frames
are sampled by timestamp, so variable-frame-rate files are handled, and turned upright according to the
rotation (display matrix) metadata phones write. Times are seconds from the first video frame.

Field of view: the equirectangular -> rectilinear crop lives in :mod:`visage_hf.video.equirect` and is re-exported
here (:func:`equirect_to_fov`, :func:`fov_crop`, ...) so frame reading and cropping come from one place.

Writing (:func:`write_mp4`, :func:`write_video`) lives in :mod:`visage_hf.video.mux`; both names are still served
here (lazily, so the two modules do not import each other at load time).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from ..utils.limits import check_frame_time, check_video_container
from ..utils.moved import forward_names_to
from .equirect import (
    direction_to_yaw_pitch,
    equirect_to_fov,
    fov_crop,
    fov_sampling_grid,
    yaw_pitch_to_direction,
)
from .sampling import FfmpegFrameSelector, check_frame_sampling

__all__ = [  # write_mp4 and write_video: served from .mux by __getattr__ below
    "VideoInfo",
    "audio_track_info",
    "direction_to_yaw_pitch",
    "equirect_to_fov",
    "first_video_stream",
    "fov_crop",
    "fov_sampling_grid",
    "open_media",
    "probe",
    "read_audio_track",
    "read_frames",
    "segment_frames",
    "write_mp4",  # noqa: F822
    "write_video",  # noqa: F822
    "yaw_pitch_to_direction",
]

# Two timestamps closer than this are the same instant (well below any real frame interval).
_TIME_EPS = 1e-6


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


def open_media(path):
    """Open a media file with PyAV; one-line errors for a missing file, a directory or an unreadable file."""
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


def first_video_stream(container, path):
    """The first video stream of an open container (decoded with FFmpeg's threads), or a one-line error."""
    if not container.streams.video:
        kinds = [stream.type for stream in container.streams]
        found = (
            f"only {', '.join(kinds)} stream(s)" if kinds else "no streams at all (empty or zero-length file)"
        )
        raise ValueError(f"expected a video stream in {path}, found {found}")
    stream = container.streams.video[0]
    check_video_container(container, stream, path)
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
    with open_media(path) as container:
        stream = first_video_stream(container, path)
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
            check_frame_time(time + length, path)
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
    sampling: str = "exact",
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
        sampling: ``"exact"`` (above) or ``"ffmpeg"``: the frames ``ffmpeg -ss start -to start+duration -i path
            -r fps`` writes, as ViSAGe's training clips were cut (:mod:`visage_hf.video.sampling`); there
            ``times`` are the source frames' own times.

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
    if check_frame_sampling(sampling) == "ffmpeg" and fps is not None:
        return _read_like_ffmpeg(path, fps, start, duration, size)
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
    with open_media(path) as container:
        stream = first_video_stream(container, path)
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


def _read_like_ffmpeg(path, fps: float, start: float, duration: float | None, size):
    """:func:`read_frames` with ``sampling="ffmpeg"``: decode from the key frame before ``start`` and keep the
    frames FFmpeg's constant-rate output would (:class:`~visage_hf.video.sampling.FfmpegFrameSelector`)."""
    with open_media(path) as container:
        stream = first_video_stream(container, path)
        if start > 0:
            try:
                _seek(container, stream, start)
            except av.error.FFmpegError:
                container.seek(0)
        selector = FfmpegFrameSelector(
            stream.time_base,
            start=start,
            duration=duration,
            fps=fps,
            source_rate=stream.guessed_rate,
            container_start=container.start_time or 0,
            single_stream=len(container.streams) == 1,
        )
        picked: list[np.ndarray] = []
        times: list[float] = []
        converted: dict = {}  # id(frame) -> image, for the current and previous frame only

        def write(frame, time: float, count: int) -> None:
            if count and id(frame) not in converted:
                converted[id(frame)] = _to_rgb(frame, size)
            picked.extend([converted.get(id(frame))] * count)
            times.extend([time] * count)

        previous = None  # (frame, time) of the last frame seen, written or not: FFmpeg may repeat it
        for frame, time, _ in _decoded_frames(container, stream, path):
            if frame.pts is None:
                raise ValueError(f"sampling='ffmpeg' needs frame timestamps, {path} has none")
            counts = selector.push(frame.pts, frame.duration or 0)
            if counts is None:
                break
            write(*(previous or (frame, time)), counts[0])
            write(frame, time, counts[1])
            if not selector.kept(frame.pts):
                continue
            if previous is not None:
                converted.pop(id(previous[0]), None)
            previous = (frame, time)
        if previous is not None:
            write(*previous, selector.flush())
    if not picked:
        raise ValueError(f"no video frames from start={start:g} s in {path} (empty, or start beyond the end)")
    return np.stack(picked), np.asarray(times, dtype=np.float64)


def _to_rgb(frame, size: tuple[int, int] | None) -> np.ndarray:
    rotation = int(frame.rotation or 0)
    if size is None:
        image = frame.to_ndarray(format="rgb24")
    else:
        width, height = (size[1], size[0]) if round(rotation / 90) % 2 else size
        image = frame.to_ndarray(format="rgb24", width=int(width), height=int(height))
    return _rotate_upright(image, rotation)


def segment_frames(source, start: float, duration: float) -> Iterator[tuple[np.ndarray, float]]:
    """Upright uint8 ``(H, W, 3)`` frames of the open container ``source`` in ``[start, start + duration)``, with
    their times in seconds from ``start``."""
    stream = first_video_stream(source, source.name)
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


def read_audio_track(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of a media file (MP4, WebM, Opus, ...) with PyAV.

    Returns:
        ``(audio, sample_rate)``: float32 ``(channels, samples)`` in the stream's channel order, and Hz.

    Raises:
        FileNotFoundError / ValueError: missing, unreadable, or no audio stream.
    """
    with open_media(path) as container:
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
    with open_media(path) as container:
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


__getattr__ = forward_names_to("visage_hf.video", "mux")
