"""A camera direction that varies over time: keyframes on the sphere, interpolated the short way.

A :class:`CameraPath` holds keyframes ``(time_s, azimuth, elevation)`` in the video's own timeline (seconds
from the start of the file, as a video editor shows them) in the package's public convention (degrees,
azimuth counter-clockwise from the front toward the left, elevation up). Between keyframes the direction moves
along the great circle at constant angular speed (:func:`visage_hf.audio.foa.interpolate_directions`), so a
pan from +170° to −170° turns 20° across the back, not 340° across the front. A constant path is one keyframe;
scalar ``azimuth=``/``elevation=`` arguments everywhere mean exactly that.

CSV files have a header row naming the columns ``time``, ``azimuth`` and ``elevation`` (any order, extra
columns ignored), one keyframe per row, times strictly increasing::

    time,azimuth,elevation
    0.0,-90,0
    4.0,90,10
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.foa import interpolate_directions
from ..directions import check_elevation, vector_to_direction, wrap_azimuth

__all__ = ["CSV_COLUMNS", "CameraPath", "resolve_camera_path"]

CSV_COLUMNS = ("time", "azimuth", "elevation")
# A path must reach the clip's ends; this much slack absorbs rounding of hand-typed or exported times.
_COVER_TOLERANCE_S = 1e-6


@dataclass(frozen=True)
class CameraPath:
    """Keyframes ``times`` ``(k,)`` seconds (strictly increasing), ``azimuth``/``elevation`` ``(k,)`` degrees."""

    times: np.ndarray
    azimuth: np.ndarray
    elevation: np.ndarray

    def __post_init__(self) -> None:
        times = np.atleast_1d(np.asarray(self.times, dtype=np.float64))
        azimuth = np.atleast_1d(np.asarray(self.azimuth, dtype=np.float64))
        elevation = np.atleast_1d(np.asarray(self.elevation, dtype=np.float64))
        if not (times.ndim == azimuth.ndim == elevation.ndim == 1) or not (
            len(times) == len(azimuth) == len(elevation) >= 1
        ):
            raise ValueError(
                "camera path: expected one time, azimuth and elevation per keyframe, got "
                f"{times.shape}, {azimuth.shape}, {elevation.shape}"
            )
        if not np.isfinite(times).all():
            raise ValueError("camera path: keyframe times must be finite seconds")
        if np.any(np.diff(times) <= 0):
            row = int(np.argmax(np.diff(times) <= 0)) + 1
            raise ValueError(
                f"camera path: keyframe times must be strictly increasing (keyframe {row + 1}: "
                f"{times[row]:g} s after {times[row - 1]:g} s)"
            )
        azimuth = np.asarray(wrap_azimuth(azimuth), dtype=np.float64)
        elevation = np.asarray(check_elevation(elevation, "camera path elevation"), dtype=np.float64)
        # Validates that no two consecutive keyframes are opposite (the great circle would be undefined).
        interpolate_directions(azimuth, elevation, times, times)
        for name, value in (("times", times), ("azimuth", azimuth), ("elevation", elevation)):
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------------------------------------- builders

    @classmethod
    def constant(cls, azimuth: float, elevation: float) -> CameraPath:
        """One direction for the whole video."""
        return cls(np.zeros(1), np.array([azimuth]), np.array([elevation]))

    @classmethod
    def from_keyframes(cls, keyframes: Iterable[Sequence[float]]) -> CameraPath:
        """From ``[(time_s, azimuth, elevation), ...]``."""
        rows = [tuple(row) for row in keyframes]
        if not rows or any(len(row) != 3 for row in rows):
            raise ValueError("camera path: expected keyframes (time_s, azimuth, elevation), at least one")
        times, azimuth, elevation = (np.array(column, dtype=np.float64) for column in zip(*rows))
        return cls(times, azimuth, elevation)

    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> CameraPath:
        """From a CSV file with the columns ``time,azimuth,elevation`` (see the module docstring)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"camera path file not found: {path}")
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [name.strip().lower() for name in reader.fieldnames or []]
            missing = [name for name in CSV_COLUMNS if name not in columns]
            if missing:
                raise ValueError(
                    f"camera path {path.name}: missing column(s) {', '.join(missing)} "
                    f"(expected a header row {','.join(CSV_COLUMNS)})"
                )
            reader.fieldnames = columns
            rows = [_csv_row(row, line, path.name) for line, row in enumerate(reader, start=2)]
        if not rows:
            raise ValueError(f"camera path {path.name}: no keyframes after the header")
        return cls.from_keyframes(rows)

    # -------------------------------------------------------------------------------------------- queries

    @property
    def is_constant(self) -> bool:
        """True when every keyframe has the same direction (the path never moves)."""
        vectors = self.vectors_at(self.times)
        return bool(np.all(np.abs(vectors - vectors[0]) < 1e-12))

    def vectors_at(self, times) -> np.ndarray:
        """Unit vectors ``(m, 3)`` (x front, y left, z up) at ``times`` ``(m,)`` seconds; held past the ends."""
        query = np.atleast_1d(np.asarray(times, dtype=np.float64))
        return interpolate_directions(self.azimuth, self.elevation, self.times, query)

    def directions_at(self, times) -> tuple[np.ndarray, np.ndarray]:
        """``(azimuth, elevation)`` degrees, each ``(m,)``, at ``times`` ``(m,)`` seconds."""
        if len(self.times) == 1:  # exact, no round trip through a vector
            count = np.atleast_1d(np.asarray(times)).shape[0]
            return np.full(count, self.azimuth[0]), np.full(count, self.elevation[0])
        azimuth, elevation = vector_to_direction(self.vectors_at(times))
        return np.asarray(azimuth, dtype=np.float64), np.asarray(elevation, dtype=np.float64)

    def check_covers(self, start: float, end: float) -> None:
        """ValueError unless the keyframes span ``[start, end]`` seconds (a constant path spans everything)."""
        if len(self.times) == 1:
            return
        first, last = float(self.times[0]), float(self.times[-1])
        if first > start + _COVER_TOLERANCE_S or last < end - _COVER_TOLERANCE_S:
            raise ValueError(
                f"camera path covers {first:g}–{last:g} s but the clip is {start:g}–{end:g} s: add keyframes "
                "at (or beyond) both ends of the clip"
            )


def resolve_camera_path(
    azimuth: float | None, elevation: float | None, camera_path: CameraPath | None
) -> CameraPath:
    """The camera path of a call given either a fixed ``azimuth``/``elevation`` or a ``camera_path``."""
    if camera_path is not None:
        if azimuth is not None or elevation is not None:
            raise ValueError("pass either azimuth/elevation or camera_path, not both")
        if not isinstance(camera_path, CameraPath):
            raise ValueError(f"camera_path: expected a CameraPath, got {type(camera_path).__name__}")
        return camera_path
    if azimuth is None or elevation is None:
        raise ValueError("pass the camera direction: azimuth and elevation (degrees), or a camera_path")
    return CameraPath.constant(float(azimuth), float(elevation))


def _csv_row(row: dict, line: int, name: str) -> tuple[float, float, float]:
    values = []
    for column in CSV_COLUMNS:
        text = (row.get(column) or "").strip()
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"camera path {name} line {line}: {column} {text!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"camera path {name} line {line}: {column} must be finite, got {text}")
        values.append(value)
    return values[0], values[1], values[2]
