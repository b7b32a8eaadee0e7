"""The conditioning frames of one clip: a video file (or 4-fps frames) + a time span -> uint8 frames at 4 fps.

360° equirectangular input (``equirect=True``, or detected: 2:1 frames with Spherical Video V2 metadata) is
cropped to the 90° field of view at the camera direction (:func:`visage_hf.video.equirect.fov_crop`), as ViSAGe's
training data was. Bad input fails early with one clear ``ValueError`` / ``FileNotFoundError``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .camera_path import CameraPath, resolve_camera_path
from .equirect import fov_crop
from .frames import validate_frames
from .io import VideoInfo, probe, read_frames
from .sa3d import read_spherical

__all__ = ["EQUIRECT_SIZE", "VideoClip", "load_video_clip", "probe_clip"]

# Frames of a 360° video are scaled to the original dataset's equirect size before cropping (bounds memory;
# the 224 px crop of a 90° view needs no more than 896 x 448).
EQUIRECT_SIZE = (896, 448)


@dataclass(frozen=True)
class VideoClip:
    """The conditioning frames of one clip: uint8 ``frames`` ``(T, H, W, 3)`` at the model's fps (cropped to
    the field of view for 360° input), the clip's ``start`` and ``duration`` in seconds, whether the source was
    ``equirect``, and the ``source`` path (None for frames passed as an array)."""

    frames: np.ndarray
    start: float
    duration: float
    equirect: bool
    source: Path | None


def _looks_equirect(path: Path, width: int, height: int) -> bool:
    """2:1 frames with Spherical Video V2 metadata (an MP4 box walk: cheap, no decoding)."""
    if abs(width - 2 * height) > 0.01 * width:
        return False
    try:
        spherical = read_spherical(path)
    except (ValueError, OSError):  # not an MP4/MOV: no spherical boxes to find
        return False
    return bool(spherical) and spherical.get("projection") == "equirectangular"


def _check_seconds(start: float, duration: float | None) -> None:
    if not (isinstance(start, (int, float)) and math.isfinite(start) and start >= 0):
        raise ValueError(f"start: expected seconds >= 0, got {start!r}")
    if duration is not None and not (
        isinstance(duration, (int, float)) and math.isfinite(duration) and duration > 0
    ):
        raise ValueError(
            f"duration: expected seconds > 0 (or None for the rest of the video), got {duration!r}"
        )


def _read_size(width: int, height: int, target: int | None, equirect: bool) -> tuple[int, int] | None:
    """FFmpeg-side scaling at read time, so that long high-resolution clips fit in memory: 360° frames to
    896 x 448 (the original dataset's size), others to a short side of ``target`` (CLIP's input, long side
    ``int(target · long / short)``: the original's ffmpeg pre-scaling, which CLIP's processor then leaves
    alone). None keeps frames that are small already."""
    if equirect:
        return EQUIRECT_SIZE if width > EQUIRECT_SIZE[0] else None
    short, long = min(width, height), max(width, height)
    if target is None or short <= target:
        return None
    scaled_long = int(target * long / short)
    return (scaled_long, target) if width >= height else (target, scaled_long)


def load_video_clip(
    video,
    azimuth: float | None,
    elevation: float | None,
    start: float = 0.0,
    duration: float | None = None,
    *,
    fps: float = 4.0,
    equirect: bool | None = None,
    short_side: int | None = None,
    sampling: str = "exact",
    mode: str = "corrected",
    camera_path: CameraPath | None = None,
) -> VideoClip:
    """Frames at ``fps`` over ``[start, start + duration)`` of a video file or of an array of frames.

    Args:
        video: a path, or uint8 frames ``(T, H, W, 3)`` already at ``fps`` (frame ``k`` shown at ``k / fps``).
        azimuth, elevation: the camera direction (degrees); 360° input is cropped there (90°, 224 x 224).
        duration: seconds; None = to the end of the video.
        equirect: True for a 360° equirectangular video; None detects it for files (2:1 frames + spherical
            metadata); arrays are taken as field-of-view frames unless True.
        short_side: scale larger field-of-view frames of a file to this short side while decoding (memory;
            arrays are used as given).
        sampling: which source frames of a file stand for the ``fps`` frames: ``"exact"`` (the frame shown at
            ``start + k / fps``) or ``"ffmpeg"`` (those FFmpeg's ``-ss start -r fps`` writes, as the original
            training clips; :mod:`visage_hf.video.sampling`). Arrays are already at ``fps``.
        mode: the 360° crop's projection (:func:`visage_hf.video.equirect.fov_crop`): ``"corrected"`` or the
            original's ``"original"`` (what a model in original mode was trained on).
        camera_path: a moving camera (in the video's timeline) instead of ``azimuth``/``elevation`` (pass None
            for those): each frame ``k`` of 360° input is cropped at the path's direction at ``start + k / fps``.

    Raises:
        FileNotFoundError / ValueError: no such file, unreadable file, no video stream, a ``start`` at or
            beyond the end, a ``duration`` longer than the video, or a non-positive ``duration``.
    """
    _check_seconds(start, duration)
    if isinstance(video, (str, os.PathLike)):
        frames, duration, equirect, source = _frames_from_file(
            Path(video), start, duration, fps, equirect, short_side, sampling
        )
    else:
        frames, duration, equirect, source = (
            *_frames_from_array(video, start, duration, fps),
            bool(equirect),
            None,
        )
    needed = math.ceil(round(duration * 1e6) * fps / 1e6)  # frames shown before the end
    if len(frames) + 1 < needed:
        raise ValueError(
            f"only {len(frames)} frames at {fps:g} fps could be read from start={start:g} s, but "
            f"duration={duration:g} s needs {needed}: the video ends early"
        )
    if len(frames) < needed:  # timestamps rounding at the very end: a player keeps showing the last frame
        frames = np.concatenate([frames, frames[-1:]])
    frames = frames[:needed]
    if equirect:
        frames = _crop_along(frames, resolve_camera_path(azimuth, elevation, camera_path), start, fps, mode)
    return VideoClip(frames, float(start), float(duration), bool(equirect), source)


def _crop_along(frames: np.ndarray, path: CameraPath, start: float, fps: float, mode: str) -> np.ndarray:
    """Field-of-view crops of 360° frames ``(T, H, W, 3)``, frame ``k`` at the path's direction then."""
    if path.is_constant:
        return fov_crop(frames, float(path.azimuth[0]), float(path.elevation[0]), mode=mode)
    azimuth, elevation = path.directions_at(start + np.arange(len(frames)) / fps)
    crops = [fov_crop(frame[None], a, e, mode=mode)[0] for frame, a, e in zip(frames, azimuth, elevation)]
    return np.stack(crops)


def probe_clip(
    path: str | os.PathLike, start: float = 0.0, duration: float | None = None, fps: float = 4.0
) -> tuple[VideoInfo, float | None]:
    """Check ``[start, start + duration)`` against a video file without decoding it.

    Returns:
        ``(info, duration)``: :func:`visage_hf.video.io.probe`'s description and the clip's duration in seconds
        (``duration``, or the rest of the video when None; None if the container does not say how long it is).

    Raises:
        FileNotFoundError / ValueError: no such file, a corrupt file, no video stream, ``start`` at or beyond the
            end, a non-positive ``duration``, or one that goes more than a frame (``1 / fps``) past the end.
    """
    _check_seconds(start, duration)
    info = probe(path)
    if info.duration <= 0:
        return info, duration
    if start >= info.duration:
        raise ValueError(
            f"start={start:g} s is at or beyond the end of the video ({info.duration:.3f} s long): {path}"
        )
    available = info.duration - start
    if duration is None:
        return info, available
    if duration > available + 1 / fps:
        raise ValueError(
            f"duration={duration:g} s from start={start:g} s goes past the end of the video "
            f"({info.duration:.3f} s long): at most {available:.3f} s is available"
        )
    return info, duration


def _frames_from_file(path: Path, start, duration, fps, equirect, short_side, sampling):
    info, duration = probe_clip(path, start, duration, fps)
    if equirect is None:
        equirect = _looks_equirect(path, info.width, info.height)
    size = _read_size(info.width, info.height, short_side, equirect)
    frames, _ = read_frames(path, fps=fps, start=start, duration=duration, size=size, sampling=sampling)
    if duration is None:  # a container that does not state its duration
        duration = len(frames) / fps
    return frames, float(duration), bool(equirect), path


def _frames_from_array(video, start, duration, fps):
    clips = validate_frames(video)
    if clips.shape[0] != 1:
        raise ValueError(f"video: expected one clip of frames (T, H, W, 3), got {clips.shape[0]} clips")
    frames = clips[0]
    length = len(frames) / fps
    if start >= length:
        raise ValueError(
            f"start={start:g} s is at or beyond the end of the frames ({length:g} s at {fps:g} fps)"
        )
    if duration is None:
        duration = length - start
    elif start + duration > length + 1e-9:
        raise ValueError(
            f"duration={duration:g} s from start={start:g} s goes past the end of the frames ({length:g} s)"
        )
    count = math.ceil(round(duration * 1e6) * fps / 1e6)
    indices = np.floor((start + np.arange(count) / fps) * fps + 1e-6).astype(int)
    return frames[np.minimum(indices, len(frames) - 1)], float(duration)
