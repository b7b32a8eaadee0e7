"""Which clips a run works on: clip ids from file names and lists, camera directions per clip, and the
pairing of generated and ground-truth audio files (`visage evaluate`, `visage generate-batch`, the baselines).

**Directions file**, clip id -> camera direction:

* JSON ``{"clip": [elevation_index, azimuth_index]}``: YT-Ambigen's ``ambi.json`` (integer 2° indices,
  converted with :func:`visage_hf.directions.indices_to_direction` to the true camera direction);
* JSON ``{"clip": {"azimuth": deg, "elevation": deg}}``: public degrees;
* CSV with a header: ``clip,azimuth,elevation`` (degrees) or ``clip,elevation_index,azimuth_index``
  (``id`` or ``file_path`` are accepted for ``clip``; a trailing ``.npy``/audio extension is stripped).

**Pairing** (:func:`match_files`): files are paired by their path relative to each folder without the
extension (``a/b.wav`` <-> ``a/b.flac``), then, for what is left, by file stem when the stem is unique on both
sides. The clip id is the prediction's relative path without extension.

Standard library only at import time (the ``visage`` CLI builds its parsers from modules that import this).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "AUDIO_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "audio_files",
    "clip_id_from_name",
    "load_directions",
    "match_files",
]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".aiff", ".aif")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")
_STRIPPED_EXTENSIONS = {*AUDIO_EXTENSIONS, *VIDEO_EXTENSIONS, ".npy", ".npz"}


def clip_id_from_name(name: str) -> str:
    """A clip id from a file name or path in a list: ``a/b.npy`` -> ``a/b`` (audio, feature and video extensions
    are stripped; anything else is kept, e.g. YouTube ids with dots)."""
    path = Path(name.strip())
    return path.with_suffix("").as_posix() if path.suffix.lower() in _STRIPPED_EXTENSIONS else path.as_posix()


def _direction_from_json_value(clip: str, value) -> tuple[float, float]:
    from ..directions import check_elevation, indices_to_direction

    if isinstance(value, Mapping) and {"azimuth", "elevation"} <= set(value):
        return float(value["azimuth"]), float(check_elevation(float(value["elevation"])))
    if (
        isinstance(value, Sequence)
        and len(value) == 2
        and all(isinstance(item, int) and not isinstance(item, bool) for item in value)
    ):
        azimuth, elevation = indices_to_direction(value[0], value[1])
        return float(azimuth), float(elevation)
    raise ValueError(
        f"directions[{clip!r}]: expected [elevation_index, azimuth_index] (integers) or "
        f'{{"azimuth": deg, "elevation": deg}}, got {value!r}'
    )


def load_directions(path: str | os.PathLike) -> dict[str, tuple[float, float]]:
    """Read a directions file (formats in the module docstring) -> clip id -> ``(azimuth, elevation)``
    in public degrees (true ambisonic azimuth)."""
    from ..directions import check_elevation, indices_to_direction

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"directions file not found: {path}")
    if path.suffix.lower() == ".json":
        try:
            table = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"directions file {path} is not valid JSON: {error}") from None
        if not isinstance(table, Mapping):
            raise ValueError(
                f"directions file {path}: expected a JSON object clip -> direction, got {type(table).__name__}"
            )
        return {
            clip_id_from_name(str(clip)): _direction_from_json_value(clip, value)
            for clip, value in table.items()
        }
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields = set(reader.fieldnames or ())
        clip_field = next((name for name in ("clip", "id", "file_path") if name in fields), None)
        if clip_field is None:
            raise ValueError(
                f"directions file {path}: expected a 'clip' (or 'id', 'file_path') column, got {sorted(fields)}"
            )
        directions = {}
        for row in reader:
            clip = clip_id_from_name(row[clip_field])
            if {"azimuth", "elevation"} <= fields:
                directions[clip] = (float(row["azimuth"]), float(check_elevation(float(row["elevation"]))))
            elif {"elevation_index", "azimuth_index"} <= fields:
                azimuth, elevation = indices_to_direction(
                    int(row["elevation_index"]), int(row["azimuth_index"])
                )
                directions[clip] = (float(azimuth), float(elevation))
            else:
                raise ValueError(
                    f"directions file {path}: expected columns azimuth,elevation (degrees) or "
                    f"elevation_index,azimuth_index, got {sorted(fields)}"
                )
        return directions


def audio_files(folder: Path, exclude: Path | None = None) -> dict[str, Path]:
    """Audio files under ``folder`` by clip id (relative path without extension); hidden files (an atomic write
    in progress) and anything under ``exclude`` are skipped; two files with one id are an error."""
    files: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in AUDIO_EXTENSIONS:
            continue
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            continue  # hidden: temporary files of an atomic write in progress
        if exclude is not None and exclude in path.resolve().parents:
            continue
        key = path.relative_to(folder).with_suffix("").as_posix()
        if key in files:
            raise ValueError(
                f"two files in {folder} share the clip id {key!r}: {files[key].name} and {path.name}"
            )
        files[key] = path
    return files


def match_files(
    prediction_dir: str | os.PathLike, target_dir: str | os.PathLike, exclude: str | os.PathLike | None = None
) -> tuple[list[tuple[str, Path, Path]], list[Path], list[Path]]:
    """Pair audio files of two folders (rules in the module docstring).

    Returns:
        ``(pairs, unmatched_predictions, unmatched_targets)`` with pairs ``(clip_id, prediction, target)``
        sorted by clip id. ``exclude``: a folder to skip (the report folder, if it lies inside).
    """
    exclude = Path(exclude).resolve() if exclude is not None else None
    predictions = audio_files(Path(prediction_dir), exclude)
    targets = audio_files(Path(target_dir), exclude)
    pairs = {key: (predictions[key], targets[key]) for key in predictions.keys() & targets.keys()}
    left_predictions = {key: path for key, path in predictions.items() if key not in pairs}
    left_targets = {key: path for key, path in targets.items() if key not in pairs}

    def by_unique_stem(files: dict[str, Path]) -> dict[str, str]:
        stems: dict[str, list[str]] = {}
        for key in files:
            stems.setdefault(Path(key).name, []).append(key)
        return {stem: keys[0] for stem, keys in stems.items() if len(keys) == 1}

    prediction_stems, target_stems = by_unique_stem(left_predictions), by_unique_stem(left_targets)
    for stem in prediction_stems.keys() & target_stems.keys():
        key, target_key = prediction_stems[stem], target_stems[stem]
        pairs[key] = (left_predictions.pop(key), left_targets.pop(target_key))
    ordered = [(key, *pairs[key]) for key in sorted(pairs)]
    return ordered, sorted(left_predictions.values()), sorted(left_targets.values())
