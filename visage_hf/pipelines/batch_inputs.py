"""Inputs of ``visage generate-batch``: where each clip's conditions come from, and which clips to run.

* :class:`FeatureFiles`: a folder of ``<clip id>.npz`` files written by ``dataset_scripts/extract_features.py``
  (``clip_features (T, 512)``, ``energy_map (T, 49)``, the camera direction in their ``meta``);
* :class:`FeatureTable`: a feature dataset as :mod:`visage_hf.data.schema` reads it (Parquet file(s) / glob, a folder
  of Parquet shards, a ``save_to_disk`` folder), one row per clip; ``codes`` are not read;
* :class:`VideoFolder`: ``<clip id>.mp4`` (.mkv, .webm, ...) videos plus a directions table;
* :class:`VideoTable`: a CSV ``video,azimuth,elevation[,start,duration]`` (optional ``id``).

A source lists the clips it can load (``clip_ids``) and the ones it knows but cannot (``problems``: clip ->
reason, e.g. no direction), so that nothing asked for is skipped silently. Directions tables come from
:func:`visage_hf.data.clip_files.load_directions` (YT-Ambigen ``ambi.json``, JSON or CSV, public degrees); YT-Ambigen
indices stored with features give the original's bit-exact model vector
(:func:`visage_hf.directions.model_direction_vector`).
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.clip_files import VIDEO_EXTENSIONS, clip_id_from_name, load_directions
from ..directions import check_elevation, direction_to_model_vector, model_direction_vector, wrap_azimuth

__all__ = [
    "ClipConditions",
    "ClipSource",
    "FeatureFiles",
    "FeatureTable",
    "VideoFolder",
    "VideoRequest",
    "VideoTable",
    "open_source",
    "read_clip_list",
]


@dataclass
class ClipConditions:
    """What the model needs for one clip.

    Args:
        clip_id: the clip's name (output ``<clip_id>.wav``).
        clip_features: float32 ``(T, clip_dim)`` CLIP tokens at the model's video rate (4 fps).
        energy_map: float32 ``(T, energy_map_dim)``.
        direction: float32 ``(3,)`` model direction vector (``visage_hf.directions``).
        num_samples: output samples at the codec's rate; None: ``round(T / fps · rate)``.
    """

    clip_id: str
    clip_features: np.ndarray
    energy_map: np.ndarray
    direction: np.ndarray
    num_samples: int | None = None


@dataclass
class VideoRequest:
    """A video clip to featurise: ``[start, start + duration)`` of ``video`` seen from the direction."""

    clip_id: str
    video: Path
    azimuth: float
    elevation: float
    start: float = 0.0
    duration: float | None = None


def read_clip_list(path: str | os.PathLike) -> list[str]:
    """Clip ids of a CSV with an ``id``, ``clip`` or ``file_path`` column (extensions such as ``.npy`` stripped),
    in file order, without repeats."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"clip list not found: {path}")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        column = next((name for name in ("id", "clip", "file_path") if name in fields), None)
        if column is None:
            raise ValueError(
                f"clip list {path}: expected an 'id', 'clip' or 'file_path' column, got {fields}"
            )
        ids = [clip_id_from_name(row[column]) for row in reader if (row[column] or "").strip()]
    if not ids:
        raise ValueError(f"clip list {path} lists no clips")
    return list(dict.fromkeys(ids))


def _direction_vector(azimuth: float, elevation: float) -> np.ndarray:
    return direction_to_model_vector(float(wrap_azimuth(azimuth)), float(check_elevation(elevation)))


class ClipSource:
    """A set of clips: ``clip_ids`` it can load, ``problems`` (clip -> why it cannot), ``load(clip_id)``."""

    kind = "features"

    def __init__(self, description: str):
        self.description = description
        self.clip_ids: list[str] = []
        self.problems: dict[str, str] = {}

    def load(self, clip_id: str) -> ClipConditions | VideoRequest:
        raise NotImplementedError


class FeatureFiles(ClipSource):
    """A folder of ``<clip id>.npz`` feature files (``dataset_scripts/extract_features.py``).

    The direction comes from ``directions`` (clip -> ``(azimuth, elevation)`` degrees) when given, else from the
    file's ``meta``: YT-Ambigen indices (bit-exact original vector) or ``azimuth`` / ``elevation`` degrees."""

    def __init__(
        self, folder: str | os.PathLike, directions: Mapping[str, tuple[float, float]] | None = None
    ):
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"features folder not found: {folder}")
        super().__init__(str(folder))
        self.directions = directions
        files = sorted(path for path in folder.rglob("*.npz") if not path.name.startswith("."))
        self.paths = {path.relative_to(folder).with_suffix("").as_posix(): path for path in files}
        if not self.paths:
            raise ValueError(f"expected <clip id>.npz feature files in {folder}, found none")
        self.clip_ids = _with_directions(self, list(self.paths), directions)

    def load(self, clip_id: str) -> ClipConditions:
        path = self.paths[clip_id]
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in ("clip_features", "energy_map") if key not in data.files]
            if missing:
                raise ValueError(f"{path.name} lacks {missing}; it holds {sorted(data.files)}")
            arrays = {key: np.asarray(data[key], dtype=np.float32) for key in ("clip_features", "energy_map")}
            meta = json.loads(str(data["meta"])) if "meta" in data.files else {}
        if self.directions is not None:
            direction = _direction_vector(*self.directions[clip_id])
        elif meta.get("elevation_index") is not None and meta.get("azimuth_index") is not None:
            direction = model_direction_vector(int(meta["elevation_index"]), int(meta["azimuth_index"]))
        elif meta.get("azimuth") is not None and meta.get("elevation") is not None:
            direction = _direction_vector(meta["azimuth"], meta["elevation"])
        else:
            raise ValueError(f"{path.name} has no camera direction in its meta; pass --directions")
        return ClipConditions(clip_id, arrays["clip_features"], arrays["energy_map"], direction)


class FeatureTable(ClipSource):
    """A feature dataset (:func:`visage_hf.data.schema.load_feature_dataset`): Parquet file(s) / glob, a folder of
    Parquet shards or a ``save_to_disk`` folder, one row per clip; ``codes`` columns are not read."""

    def __init__(
        self,
        path: str | os.PathLike,
        split: str = "test",
        directions: Mapping[str, tuple[float, float]] | None = None,
    ):
        from ..data.schema import (
            AZIMUTH_INDEX,
            CLIP_FEATURES,
            CLIP_ID,
            DIRECTION,
            ELEVATION_INDEX,
            ENERGY_MAP,
            load_feature_dataset,
        )

        path = os.fspath(path)
        super().__init__(path)
        is_files = path.endswith(".parquet") or any(char in path for char in "*?[")
        if not is_files and not Path(path).is_dir():
            raise FileNotFoundError(f"features not found: {path} (expected a folder or Parquet file(s))")
        dataset = (
            load_feature_dataset(data_files=path, split=split)
            if is_files
            else load_feature_dataset(path, split=split)
        )
        names = set(dataset.column_names)
        columns = [CLIP_ID, CLIP_FEATURES, ENERGY_MAP]
        if directions is None:
            if DIRECTION in names:
                columns.append(DIRECTION)
            elif {ELEVATION_INDEX, AZIMUTH_INDEX} <= names:
                columns += [ELEVATION_INDEX, AZIMUTH_INDEX]
            else:
                columns.append(f"{DIRECTION} (or {ELEVATION_INDEX} + {AZIMUTH_INDEX}, or --directions)")
        missing = [name for name in columns if name not in names]
        if missing:
            raise ValueError(f"feature dataset {path} lacks column(s) {missing}; it has {sorted(names)}")
        self.columns, self.directions = columns, directions
        self.rows = dataset.with_format("numpy", columns=columns)
        ids = [str(clip) for clip in dataset[CLIP_ID]]
        repeated = sorted(clip for clip, count in Counter(ids).items() if count > 1)
        if repeated:
            raise ValueError(f"feature dataset {path} holds clip ids more than once: {repeated[:5]}")
        self.index = {clip: row for row, clip in enumerate(ids)}
        self.clip_ids = _with_directions(self, ids, directions)

    def load(self, clip_id: str) -> ClipConditions:
        row = self.rows[self.index[clip_id]]
        if self.directions is not None:
            direction = _direction_vector(*self.directions[clip_id])
        elif "direction" in self.columns:
            direction = np.asarray(row["direction"], dtype=np.float32).reshape(3)
        else:
            direction = model_direction_vector(int(row["elevation_index"]), int(row["azimuth_index"]))
        features, energy = (np.asarray(row[key], dtype=np.float32) for key in ("clip_features", "energy_map"))
        return ClipConditions(clip_id, features, energy, direction)


class VideoFolder(ClipSource):
    """A folder of ``<clip id>.<video extension>`` files and a directions table (clip -> degrees)."""

    kind = "videos"

    def __init__(
        self,
        folder: str | os.PathLike,
        directions: Mapping[str, tuple[float, float]],
    ):
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"videos folder not found: {folder}")
        super().__init__(str(folder))
        files = sorted(
            path
            for path in folder.rglob("*")
            if path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".") and path.is_file()
        )
        self.paths = {path.relative_to(folder).with_suffix("").as_posix(): path for path in files}
        if not self.paths:
            raise ValueError(f"expected video files ({', '.join(VIDEO_EXTENSIONS)}) in {folder}, found none")
        self.directions = directions
        self.clip_ids = _with_directions(self, list(self.paths), directions)

    def load(self, clip_id: str) -> VideoRequest:
        azimuth, elevation = self.directions[clip_id]
        return VideoRequest(clip_id, self.paths[clip_id], float(wrap_azimuth(azimuth)), float(elevation))


class VideoTable(ClipSource):
    """A CSV of ``video,azimuth,elevation[,start,duration]`` (optional ``id`` / ``clip``); degrees, seconds."""

    kind = "videos"

    def __init__(self, path: str | os.PathLike):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"videos list not found: {path}")
        super().__init__(str(path))
        self.requests: dict[str, VideoRequest] = {}
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            fields = set(reader.fieldnames or ())
            if not {"video", "azimuth", "elevation"} <= fields:
                raise ValueError(
                    f"videos list {path}: expected columns video,azimuth,elevation[,start,duration], got {sorted(fields)}"
                )
            id_field = next((name for name in ("id", "clip") if name in fields), None)
            for line, row in enumerate(reader, start=2):
                request = _video_request(row, id_field, path.parent, f"{path}:{line}")
                if request.clip_id in self.requests:
                    raise ValueError(
                        f"videos list {path}: clip id {request.clip_id!r} appears twice (line {line}); "
                        "add an 'id' column to name each clip"
                    )
                self.requests[request.clip_id] = request
        if not self.requests:
            raise ValueError(f"videos list {path} lists no videos")
        for clip, request in self.requests.items():
            if request.video.is_file():
                self.clip_ids.append(clip)
            else:
                self.problems[clip] = f"video file not found: {request.video}"

    def load(self, clip_id: str) -> VideoRequest:
        return self.requests[clip_id]


def _video_request(row: dict, id_field: str | None, base: Path, where: str) -> VideoRequest:
    video = Path((row["video"] or "").strip()).expanduser()
    video = video if video.is_absolute() else base / video
    clip_id = (row[id_field] or "").strip() if id_field else video.stem
    try:
        azimuth, elevation = float(row["azimuth"]), float(row["elevation"])
        start = float(row["start"]) if (row.get("start") or "").strip() else 0.0
        duration = float(row["duration"]) if (row.get("duration") or "").strip() else None
    except ValueError as error:
        raise ValueError(
            f"{where}: expected numbers for azimuth, elevation, start, duration ({error})"
        ) from None
    if not clip_id:
        raise ValueError(f"{where}: empty clip id")
    check_elevation(elevation)
    return VideoRequest(clip_id, video, float(wrap_azimuth(azimuth)), elevation, start, duration)


def _with_directions(source: ClipSource, clip_ids: list[str], directions: Mapping | None) -> list[str]:
    """The clips that have a direction; the others go to ``source.problems``."""
    if directions is None:
        return clip_ids
    for clip in clip_ids:
        if clip not in directions:
            source.problems[clip] = "no direction for this clip in the directions file"
    return [clip for clip in clip_ids if clip in directions]


def open_source(
    features: str | None = None,
    videos: str | None = None,
    directions: str | os.PathLike | None = None,
    split: str = "test",
) -> ClipSource:
    """The clip source of the ``generate-batch`` inputs (see the module docstring); exactly one of ``features``
    and ``videos``."""

    if (features is None) == (videos is None):
        raise ValueError("expected exactly one input: --features PATH or --videos PATH")
    table = None if directions is None else load_directions(directions)
    if features is not None:
        path = Path(features)
        if path.is_dir() and any(path.rglob("*.npz")):
            return FeatureFiles(path, table)
        return FeatureTable(features, split, table)
    path = Path(videos)
    if path.is_file() and path.suffix.lower() == ".csv":
        if table is not None:
            raise ValueError("--directions goes with a videos folder; a videos CSV holds its own directions")
        return VideoTable(path)
    if table is None:
        raise ValueError(f"a videos folder needs --directions FILE (clip id -> direction), got only {videos}")
    return VideoFolder(path, table)
