"""Media synthesised offline: test fixtures, README demos and dataset-pipeline checks without any download.

* :func:`moving_object_video` — a coloured disc crossing a textured gradient (an ordinary, FoV-style clip).
* :func:`equirect_scene` — a 360° equirectangular clip with a coloured object at an ambisonic direction
  (optionally moving), and the matching FOA: a tone or noise encoded at the object's direction, muxed as the
  MP4's spatial-audio track.

Everything is deterministic given ``seed``. Directions use the public convention (degrees; azimuth
counter-clockwise from the front toward the left, elevation up); in the equirect frame the front is the
image centre and +azimuth is image-left.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.foa import encode, interpolate_directions
from ..directions import check_elevation
from ..video.equirect import equirect_directions
from ..video.io import write_mp4, write_video

__all__ = [
    "SyntheticScene",
    "equirect_scene",
    "moving_object_frames",
    "moving_object_video",
    "render_equirect_frames",
]

DEFAULT_COLOR = (230, 30, 30)


def _check_positive(value: float, name: str) -> float:
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name}: expected a positive number, got {value}")
    return value


def _check_color(color) -> np.ndarray:
    color = np.asarray(color)
    if color.shape != (3,) or np.any((color < 0) | (color > 255)):
        raise ValueError(f"color: expected (r, g, b) in 0..255, got {tuple(np.ravel(color))}")
    return color.astype(np.float32)


def _textured_background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A dim blue-green gradient with faint seeded texture, float32 ``(H, W, 3)``; its red stays low so a
    saturated red object stands out."""
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    cols = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    background = np.empty((height, width, 3), dtype=np.float32)
    background[..., 0] = 20 + 20 * cols
    background[..., 1] = 50 + 60 * rows
    background[..., 2] = 90 + 60 * (1 - rows) * (0.5 + 0.5 * cols)
    return background + rng.normal(0.0, 4.0, size=(height, width, 1)).astype(np.float32)


def moving_object_frames(
    seconds: float = 5.0,
    fps: float = 25.0,
    width: int = 160,
    height: int = 120,
    *,
    color: tuple[int, int, int] = DEFAULT_COLOR,
    radius: int | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Frames uint8 ``(round(seconds * fps), height, width, 3)`` of a disc moving left to right across a
    textured gradient (the texture depends on ``seed``).

    The disc centre goes linearly from 20 % to 80 % of the width over the clip, bobbing gently around
    mid-height, so frame ``k`` (time ``k / fps``) has its centre at ``x = width · (0.2 + 0.6 k / (count - 1))``.
    """
    seconds, fps = _check_positive(seconds, "seconds"), _check_positive(fps, "fps")
    if width < 8 or height < 8:
        raise ValueError(f"width/height: expected at least 8 pixels, got {width}x{height}")
    color = _check_color(color)
    radius = max(2, min(width, height) // 8) if radius is None else int(radius)
    background = _textured_background(height, width, np.random.default_rng(seed))
    count = max(1, round(seconds * fps))
    rows, cols = np.mgrid[0:height, 0:width]
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    for index in range(count):
        progress = index / max(count - 1, 1)
        centre_x = width * (0.2 + 0.6 * progress)
        centre_y = height * (0.5 + 0.1 * np.sin(2 * np.pi * progress))
        inside = (cols + 0.5 - centre_x) ** 2 + (rows + 0.5 - centre_y) ** 2 <= radius**2
        image = background.copy()
        image[inside] = color
        frames[index] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return frames


def moving_object_video(
    path: str | os.PathLike,
    seconds: float = 5.0,
    fps: float = 25.0,
    width: int = 160,
    height: int = 120,
    *,
    color: tuple[int, int, int] = DEFAULT_COLOR,
    radius: int | None = None,
    seed: int = 0,
) -> Path:
    """Write :func:`moving_object_frames` as an H.264 MP4 (atomically) and return its path.

    The rendered content is a pure function of the arguments; the encoded bytes are not guaranteed to be
    identical between runs (multi-threaded x264 is not bit-reproducible).
    """
    frames = moving_object_frames(seconds, fps, width, height, color=color, radius=radius, seed=seed)
    return write_video(path, frames, fps)


def render_equirect_frames(
    directions: np.ndarray,
    height: int = 128,
    *,
    radius_degrees: float = 12.0,
    color: tuple[int, int, int] = DEFAULT_COLOR,
    seed: int = 0,
) -> np.ndarray:
    """Equirect frames uint8 ``(T, H, 2H, 3)`` with a round object (a spherical cap of ``radius_degrees``)
    centred on each unit vector of ``directions`` ``(T, 3)``, over a textured gradient."""
    directions = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    width = 2 * int(height)
    color = _check_color(color)
    background = _textured_background(height, width, np.random.default_rng(seed))
    pixels = equirect_directions(height, width)
    threshold = np.cos(np.deg2rad(_check_positive(radius_degrees, "radius_degrees")))
    frames = np.empty((len(directions), height, width, 3), dtype=np.uint8)
    for index, direction in enumerate(directions):
        image = background.copy()
        image[pixels @ direction >= threshold] = color
        frames[index] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return frames


@dataclass
class SyntheticScene:
    """What :func:`equirect_scene` made: the MP4 ``path``; the rendered ``frames`` uint8 ``(T, H, 2H, 3)`` and
    the FOA ``(4, samples)`` at ``sample_rate`` as they were before lossy encoding; the frame ``times`` ``(T,)``
    and the object's ``azimuth`` and ``elevation`` ``(T,)`` in degrees at those times."""

    path: Path
    frames: np.ndarray
    foa: np.ndarray
    sample_rate: int
    times: np.ndarray
    azimuth: np.ndarray
    elevation: np.ndarray


def _source_signal(kind: str, samples: int, sample_rate: int, frequency: float, rng) -> np.ndarray:
    if kind == "tone":
        signal = np.sin(2 * np.pi * frequency * np.arange(samples) / sample_rate)
    elif kind == "noise":
        signal = rng.standard_normal(samples)
        signal /= np.max(np.abs(signal))
    else:
        raise ValueError(f"sound: expected 'tone' or 'noise', got {kind!r}")
    return (0.25 * signal).astype(np.float32)


def equirect_scene(
    path: str | os.PathLike,
    seconds: float = 5.0,
    object_azimuth: float = 0.0,
    object_elevation: float = 0.0,
    *,
    end_azimuth: float | None = None,
    end_elevation: float | None = None,
    fps: float = 4.0,
    height: int = 128,
    radius_degrees: float = 12.0,
    color: tuple[int, int, int] = DEFAULT_COLOR,
    sound: str = "tone",
    frequency: float = 440.0,
    sample_rate: int = 48000,
    codec: str = "aac",
    mux_audio: bool = True,
    seed: int = 0,
) -> SyntheticScene:
    """Write a 360° equirectangular MP4 (``2 * height`` x ``height``) of an object at an ambisonic direction,
    with the matching FOA.

    The object starts at ``(object_azimuth, object_elevation)`` and, if ``end_azimuth``/``end_elevation`` are
    given, moves along the great circle to there by the end of the clip. The FOA is ``sound`` (a ``tone`` at
    ``frequency`` or seeded white ``noise``, peak 0.25) encoded as a plane wave following the same path
    (:func:`visage_hf.audio.foa.encode`). With ``mux_audio`` the FOA is the MP4's spatial-audio track (``codec``
    ``"aac"`` or ``"opus"``, ``SA3D`` + spherical-video metadata); otherwise the MP4 is video only (with
    spherical metadata) and the FOA is just returned.
    """
    seconds, fps = _check_positive(seconds, "seconds"), _check_positive(fps, "fps")
    check_elevation(object_elevation)
    if height < 8:
        raise ValueError(f"height: expected at least 8 pixels, got {height}")
    moving = end_azimuth is not None or end_elevation is not None
    end_azimuth = object_azimuth if end_azimuth is None else end_azimuth
    end_elevation = object_elevation if end_elevation is None else end_elevation
    key_azimuth = np.array([object_azimuth, end_azimuth], dtype=np.float64)
    key_elevation = np.array([object_elevation, end_elevation], dtype=np.float64)
    key_times = np.array([0.0, seconds])

    count = max(1, round(seconds * fps))
    times = np.arange(count) / fps
    vectors = interpolate_directions(key_azimuth, key_elevation, key_times, times)
    frames = render_equirect_frames(vectors, height, radius_degrees=radius_degrees, color=color, seed=seed)

    rng = np.random.default_rng(seed)
    samples = round(seconds * sample_rate)
    mono = _source_signal(sound, samples, sample_rate, frequency, rng)
    if moving:
        foa = encode(mono, key_azimuth, key_elevation, sample_rate=sample_rate, times=key_times)
    else:
        foa = encode(mono, object_azimuth, object_elevation)

    if mux_audio:
        path = write_mp4(path, foa, sample_rate, frames, fps=fps, codec=codec, spherical=True)
    else:
        path = write_video(path, frames, fps, spherical=True)
    azimuth = np.rad2deg(np.arctan2(vectors[:, 1], vectors[:, 0]))
    elevation = np.rad2deg(np.arcsin(np.clip(vectors[:, 2], -1.0, 1.0)))
    return SyntheticScene(Path(path), frames, foa, int(sample_rate), times, azimuth, elevation)


def main(argv: list[str] | None = None) -> int:
    """``python -m visage_hf.data.synthetic OUT.mp4 [--equirect] ...``: write a synthetic clip (offline demo input)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m visage_hf.data.synthetic",
        description="Write a synthetic test video: a red disc crossing the frame, or (--equirect) a 360° clip "
        "with an object and a tone at --azimuth/--elevation muxed as AmbiX spatial audio.",
    )
    parser.add_argument("output", help="MP4 file to write")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--equirect", action="store_true", help="360° equirectangular scene with FOA")
    parser.add_argument(
        "--azimuth", type=float, default=30.0, help="degrees, counter-clockwise from the front"
    )
    parser.add_argument("--elevation", type=float, default=0.0, help="degrees up from the horizon")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.equirect:
            scene = equirect_scene(
                args.output, args.seconds, args.azimuth, args.elevation, height=256, seed=args.seed
            )
            path = scene.path
        else:
            path = moving_object_video(args.output, args.seconds, seed=args.seed)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
