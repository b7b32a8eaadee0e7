"""YT-Ambigen clip lists: clip ids, the original split lists and the camera-direction table.

A clip id is ``<11-character YouTube id>_<start second>`` (e.g. ``jrvzuQmr5to_5``): the clip is seconds
``[start, start + 5)`` of that video. The split lists are the original's ``csv/yt_ambigen/{train,valid,test}.csv``
(``file_path`` = ``<clip id>.npy``), shipped gzip-compressed in ``dataset_scripts/splits/``.

The camera directions are the original's ``csv/yt_ambigen/ambi.json``: clip id -> ``[elevation_index,
azimuth_index]`` in 2° units (``visage_hf.directions`` converts them). The file is not copied here; it is read
from the original repository at a pinned commit (:data:`DEFAULT_DIRECTIONS_URL`) or from a local copy.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import re
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from visage_hf.directions import NUM_AZIMUTH_INDICES, NUM_ELEVATION_INDICES

__all__ = [
    "DEFAULT_DIRECTIONS_URL",
    "EXPECTED_SPLIT_SIZES",
    "SPLITS",
    "SPLIT_FILES",
    "SPLIT_LIST_DIR",
    "direction_columns",
    "fetch_to_cache",
    "load_direction_table",
    "parse_clip_id",
    "read_split_list",
    "read_split_lists",
    "resolve_splits",
    "youtube_url",
]

ORIGINAL_REPO = "jaeyeonkim99/visage"
# The newest commit of the original repository known to this project (its README and prepare_dataset.py read
# ambi.json at this path). Pinned so that a rebuilt dataset does not change when the repository does.
ORIGINAL_COMMIT = "d0949e41e0cd61f11f22652eab4d28bba9014c11"
DEFAULT_DIRECTIONS_URL = (
    f"https://raw.githubusercontent.com/{ORIGINAL_REPO}/{ORIGINAL_COMMIT}/csv/yt_ambigen/ambi.json"
)
SPLIT_LIST_DIR = Path(__file__).resolve().parent / "splits"
SPLITS = ("train", "validation", "test")
SPLIT_FILES = {"train": "train.csv.gz", "validation": "valid.csv.gz", "test": "test.csv.gz"}
# docs/original-implementation.md §5.1
EXPECTED_SPLIT_SIZES = {"train": 81_594, "validation": 9_604, "test": 11_166}
_SPLIT_ALIASES = {"valid": "validation", "val": "validation", "dev": "validation"}
YOUTUBE_ID_LENGTH = 11
_YOUTUBE_ID = re.compile(r"^[A-Za-z0-9_-]{11}$")


def parse_clip_id(clip_id: str) -> tuple[str, int]:
    """``"jrvzuQmr5to_5"`` (or ``"jrvzuQmr5to_5.npy"``) -> ``("jrvzuQmr5to", 5)``.

    YouTube ids may themselves contain ``_`` and ``-``, so the id is the first 11 characters, not a split on ``_``.
    """
    stem = clip_id[:-4] if clip_id.endswith(".npy") else clip_id
    youtube_id, separator, start = (
        stem[:YOUTUBE_ID_LENGTH],
        stem[YOUTUBE_ID_LENGTH : YOUTUBE_ID_LENGTH + 1],
        stem[12:],
    )
    if not (_YOUTUBE_ID.match(youtube_id) and separator == "_" and start.isdigit()):
        raise ValueError(
            f"expected a clip id '<11-character YouTube id>_<start second>' (e.g. 'jrvzuQmr5to_5'), got {clip_id!r}"
        )
    return youtube_id, int(start)


def youtube_url(youtube_id: str) -> str:
    return f"https://www.youtube.com/watch?v={youtube_id}"


def resolve_splits(names: Iterable[str] | None) -> list[str]:
    """Split names as the user typed them (``valid`` accepted for ``validation``) -> canonical names."""
    if names is None:
        return list(SPLITS)
    resolved = []
    for name in names:
        canonical = _SPLIT_ALIASES.get(name.strip().lower(), name.strip().lower())
        if canonical not in SPLITS:
            raise ValueError(f"unknown split {name!r}: expected some of {list(SPLITS)} (or 'valid')")
        if canonical not in resolved:
            resolved.append(canonical)
    return resolved


def read_split_list(split: str, directory: str | os.PathLike | None = None) -> list[str]:
    """Clip ids of one split, in the original file's order (``directory``: where the ``*.csv[.gz]`` lists are;
    default the copies shipped with dataset_scripts). Plain ``.csv`` files are read if there is no ``.gz``."""
    (split,) = resolve_splits([split])
    directory = SPLIT_LIST_DIR if directory is None else Path(directory)
    path = directory / SPLIT_FILES[split]
    if not path.exists() and path.with_suffix("").exists():
        path = path.with_suffix("")  # train.csv
    if not path.exists():
        raise FileNotFoundError(f"split list for {split!r} not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or header[0].strip() != "file_path":
            raise ValueError(f"{path}: expected a 'file_path' header, got {header}")
        ids = [row[0].strip().removesuffix(".npy") for row in reader if row and row[0].strip()]
    return ids


def read_split_lists(
    splits: Iterable[str] | None = None, directory: str | os.PathLike | None = None
) -> dict[str, list[str]]:
    """``{split: [clip ids]}`` for the requested splits (default all three)."""
    return {split: read_split_list(split, directory) for split in resolve_splits(splits)}


def _is_url(source: str) -> bool:
    return str(source).startswith(("http://", "https://"))


def fetch_to_cache(url: str, cache_dir: str | os.PathLike | None = None, timeout: float = 60.0) -> Path:
    """Download ``url`` once into ``cache_dir`` (default ``~/.cache/visage_hf/dataset_scripts``); later calls
    reuse the file. The download is written to a temporary name and renamed, so a broken transfer never
    leaves a truncated cache entry."""
    from .jobs import atomic_file

    cache_dir = Path(cache_dir or Path.home() / ".cache" / "visage_hf" / "dataset_scripts")
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", url.split("://", 1)[-1])[-150:]
    target = cache_dir / name
    if target.exists():
        return target
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_file(target) as temporary:
            temporary.write_bytes(response.read())
    except OSError as error:  # URLError is an OSError
        raise OSError(
            f"could not download {url}: {error}. Download it by hand and pass the local file instead."
        ) from None
    return target


def _read_json_bytes(path: Path) -> object:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return json.load(io.BytesIO(data))


def load_direction_table(
    source: str | os.PathLike | Mapping, cache_dir: str | os.PathLike | None = None
) -> dict[str, tuple[int, int]]:
    """The camera-direction table ``{clip id: (elevation_index, azimuth_index)}``.

    Args:
        source: the original's ``ambi.json`` as a URL (downloaded once, see :func:`fetch_to_cache`), a local
            ``.json`` / ``.json.gz`` path, or an already-loaded mapping. Keys may carry a ``.npy`` suffix.

    Raises:
        ValueError: an entry is not a pair of integers in ``0..89`` x ``0..179`` (all bad entries are counted and
            the first few named).
    """
    if isinstance(source, Mapping):
        raw = source
    else:
        path = fetch_to_cache(str(source), cache_dir) if _is_url(str(source)) else Path(source)
        if not path.exists():
            raise FileNotFoundError(f"direction table not found: {path}")
        raw = _read_json_bytes(path)
        if not isinstance(raw, Mapping):
            raise ValueError(
                f"{source}: expected a JSON object {{clip id: [elevation, azimuth]}}, got {type(raw).__name__}"
            )
    table: dict[str, tuple[int, int]] = {}
    bad: list[str] = []
    for key, value in raw.items():
        try:
            elevation, azimuth = (int(v) for v in value)
            valid = (
                all(float(v) == int(v) for v in value)
                and 0 <= elevation < NUM_ELEVATION_INDICES
                and 0 <= azimuth < NUM_AZIMUTH_INDICES
            )
        except (TypeError, ValueError):
            valid = False
        if not valid:
            bad.append(f"{key}: {value!r}")
            continue
        table[str(key).removesuffix(".npy")] = (elevation, azimuth)
    if bad:
        raise ValueError(
            f"{len(bad)} direction entr{'y' if len(bad) == 1 else 'ies'} are not [elevation_index 0..89, "
            f"azimuth_index 0..179] integer pairs, e.g. {bad[:3]}"
        )
    return table


def direction_columns(
    table: Mapping[str, tuple[int, int]], clip_ids: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Elevation and azimuth indices ``(n,)`` int16 for ``clip_ids``; ValueError naming missing clips."""
    missing = [clip_id for clip_id in clip_ids if clip_id not in table]
    if missing:
        raise ValueError(
            f"the direction table has no entry for {len(missing)} of {len(clip_ids)} clips, e.g. {missing[:3]}"
        )
    pairs = np.array([table[clip_id] for clip_id in clip_ids], dtype=np.int16).reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]
