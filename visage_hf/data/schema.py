"""The on-disk feature schema: what a feature dataset holds, its column names, and how to open one.

Inference (``visage generate-batch --features``) reads features through this module only; training batches
are built by :mod:`visage_hf.data.collator`.

**On-disk schema** (one row per clip; :func:`feature_schema` builds the `datasets.Features`):

==================  ==============================  =====================================================
column              type                            meaning
==================  ==============================  =====================================================
``clip_id``         string                          unique clip name, e.g. ``jrvzuQmr5to_5``
``clip_features``   Array2D (None, 512) fp16/fp32   CLIP frame tokens at ``config.video_fps`` (4 fps)
``energy_map``      Array2D (None, 49) float32      patchwise visual energy map per frame (FOA only)
``direction``       List(float32, 3)                the model's camera-direction vector (FOA only), or:
``elevation_index``,
``azimuth_index``   int                             YT-Ambigen indices (see ``visage_hf.directions``)
``codes``           Array2D (None, 36) int16        DAC codes, TIME-MAJOR ``(frames, streams)``, stream
                                                    ``j = 9·c + q`` (AmbiX W, Y, Z, X × 9 levels); mono: 9
``codes_yaw-90`` …  Array2D (None, 36) int16        optional: codes of the sound field rotated by that yaw
==================  ==============================  =====================================================

Codes are time-major because `datasets` allows a dynamic size only in the first dimension of an Array2D. A
rotated-codes column ``codes_yaw{yaw:+d}`` holds the codes of ``foa.rotate(foa, yaw=yaw)`` (the original's
precomputed augmentation is ``codes_yaw-90``: ``Y' = −X, X' = Y``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..models.configuration_visage import VisageConfig

__all__ = [
    "AZIMUTH_INDEX",
    "CLIP_FEATURES",
    "CLIP_ID",
    "CODES",
    "DIRECTION",
    "ELEVATION_INDEX",
    "ENERGY_MAP",
    "ORIGINAL_ROTATION_YAW",
    "check_feature_columns",
    "feature_schema",
    "load_feature_dataset",
    "rotated_codes_column",
    "rotation_yaws_in",
]

CLIP_ID = "clip_id"
CLIP_FEATURES = "clip_features"
ENERGY_MAP = "energy_map"
DIRECTION = "direction"
ELEVATION_INDEX = "elevation_index"
AZIMUTH_INDEX = "azimuth_index"
CODES = "codes"
ORIGINAL_ROTATION_YAW = -90  # the original's precomputed rotation: Y' = −X, X' = Y (foa.rotate yaw=-90)
_ROTATED_COLUMN = re.compile(r"^codes_yaw([+-]\d+)$")


def rotated_codes_column(yaw: int) -> str:
    """Column name of the codes rotated by ``yaw`` degrees (``foa.rotate`` convention): -90 -> ``codes_yaw-90``."""
    if isinstance(yaw, bool) or not float(yaw).is_integer():
        raise ValueError(f"rotation yaw must be a whole number of degrees, got {yaw!r}")
    return f"codes_yaw{int(yaw):+d}"


def rotation_yaws_in(column_names: Sequence[str]) -> list[int]:
    """Yaws (degrees) whose rotated codes are present among ``column_names``, sorted."""
    return sorted(int(m.group(1)) for m in map(_ROTATED_COLUMN.match, column_names) if m)


def feature_schema(
    num_channels: int = 4,
    num_codebooks: int = 9,
    clip_dim: int = 512,
    energy_map_dim: int = 49,
    direction: str = "vector",
    rotation_yaws: Sequence[int] = (),
    clip_dtype: str = "float16",
):
    """`datasets.Features` of a feature dataset (see the module docstring).

    Args:
        num_channels, num_codebooks: code streams per frame = channels × codebooks (FOA 4 × 9; mono 1 × 9, which
            has no energy map or direction).
        direction: ``"vector"`` (a ``direction`` column) or ``"indices"`` (YT-Ambigen indices).
        rotation_yaws: yaws whose rotated codes are stored.
        clip_dtype: storage dtype of the CLIP features (the original stores fp16).
    """
    from datasets import Array2D, Features, List, Value

    if direction not in ("vector", "indices"):
        raise ValueError(f"direction must be 'vector' or 'indices', got {direction!r}")
    num_streams = num_channels * num_codebooks
    columns: dict[str, Any] = {
        CLIP_ID: Value("string"),
        CLIP_FEATURES: Array2D((None, clip_dim), clip_dtype),
        CODES: Array2D((None, num_streams), "int16"),
    }
    if num_channels > 1:
        columns[ENERGY_MAP] = Array2D((None, energy_map_dim), "float32")
        if direction == "vector":
            columns[DIRECTION] = List(Value("float32"), length=3)
        else:
            columns[ELEVATION_INDEX] = Value("int16")
            columns[AZIMUTH_INDEX] = Value("int16")
    for yaw in rotation_yaws:
        columns[rotated_codes_column(yaw)] = Array2D((None, num_streams), "int16")
    return Features(columns)


def check_feature_columns(column_names: Sequence[str], config: VisageConfig) -> list[str]:
    """The columns a `VisageForFOA` of ``config`` reads; ValueError naming what is missing otherwise."""
    names = set(column_names)
    required = [CLIP_ID, CLIP_FEATURES, CODES]
    if not config.is_mono:
        required.append(ENERGY_MAP)
        if DIRECTION in names:
            required.append(DIRECTION)
        elif {ELEVATION_INDEX, AZIMUTH_INDEX} <= names:
            required += [ELEVATION_INDEX, AZIMUTH_INDEX]
        else:
            required.append(f"{DIRECTION} (or {ELEVATION_INDEX} + {AZIMUTH_INDEX})")
    missing = [name for name in required if name not in names]
    if missing:
        raise ValueError(
            f"the feature dataset lacks column(s) {missing}; expected {required} "
            f"(+ optional codes_yaw<deg>), found {sorted(names)}"
        )
    return required + [rotated_codes_column(yaw) for yaw in rotation_yaws_in(column_names)]


def load_feature_dataset(
    name_or_path: str | None = None,
    split: str = "train",
    config_name: str | None = None,
    data_files: str | Sequence[str] | None = None,
    streaming: bool = False,
    revision: str | None = None,
):
    """Open a feature split: Parquet ``data_files`` (globs), a ``save_to_disk`` folder, a local folder with
    Parquet shards / a README ``configs:`` block, or a Hub dataset id. Returns a `datasets.Dataset`
    (or `IterableDataset` when ``streaming``)."""
    import datasets

    if data_files is not None:
        return _load_dataset("parquet", data_files={split: data_files}, split=split, streaming=streaming)
    if name_or_path is None:
        raise ValueError("pass a dataset name/path or data_files")
    path = Path(name_or_path)
    if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise ValueError(f"{path} has splits {list(loaded)}, not {split!r}")
            loaded = loaded[split]
        return loaded.to_iterable_dataset(num_shards=max(1, len(loaded.cache_files))) if streaming else loaded
    if not path.exists() and name_or_path.startswith((".", "/")):
        raise FileNotFoundError(f"dataset folder {name_or_path} does not exist")
    return _load_dataset(name_or_path, config_name, split=split, streaming=streaming, revision=revision)


def _load_dataset(*args, **kwargs):
    """`datasets.load_dataset`, with unreadable files (damaged Parquet, wrong types) as one ValueError."""
    import datasets

    try:
        return datasets.load_dataset(*args, **kwargs)
    except datasets.exceptions.DatasetGenerationError as error:
        raise ValueError(f"could not read the feature files: {error.__cause__ or error}") from None
