"""A tiny synthetic feature/code task with a learnable link between the camera direction and the spatial codes.

Each clip has a visual class ``k`` (its CLIP tokens are a class prototype plus noise) and a camera direction
(YT-Ambigen indices, so the dataset exercises `visage_hf.directions`). Codes follow two rules:

* **W** (the omni channel), level ``q``: ``(3k + q) mod (V/2)`` — what the sound is, which the video tells;
* **Y / Z / X**, level ``q``: ``V/2 + 2q + s`` with ``s = 1`` when the camera's unit vector has a positive
  component on that axis (Y: left, Z: up, X: front) and ``s = 0`` otherwise — where the sound is, which only
  the direction input can tell.

A model that uses its direction input predicts every Y/Z/X code; one that ignores it is right half the time
(directions are uniform, and the indices' 1° half-bin offset keeps every component away from 0). Rotated codes
(``codes_yaw{yaw:+d}``) follow the same rules for the rotated direction (``foa.rotate_direction``), exactly what
rotating a real sound field does to where its energy is.

The task is written as Parquet shards through `datasets`, so tests exercise the real data path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..audio.foa import rotate_direction
from ..directions import NUM_AZIMUTH_INDICES, NUM_ELEVATION_INDICES, direction_to_vector, indices_to_direction
from ..models.configuration_visage import VisageConfig
from ..utils.files import atomic_output_path
from .schema import (
    AZIMUTH_INDEX,
    CLIP_FEATURES,
    CLIP_ID,
    CODES,
    ELEVATION_INDEX,
    ENERGY_MAP,
    feature_schema,
    rotated_codes_column,
)

__all__ = [
    "NUM_VISUAL_CLASSES",
    "spatial_codes",
    "synthetic_examples",
    "w_codes",
    "write_synthetic_dataset",
]

NUM_VISUAL_CLASSES = 4
_SPATIAL_AXES = (1, 2, 0)  # channel Y, Z, X <- component y (left), z (up), x (front) of (x, y, z)


def w_codes(visual_class: int, num_frames: int, num_codebooks: int, codebook_size: int) -> np.ndarray:
    """``(frames, codebooks)`` W-channel codes of a clip of class ``visual_class`` (the same every frame, so that
    a window cropped anywhere starts with codes the video alone determines)."""
    levels = np.arange(num_codebooks)
    return np.broadcast_to((3 * visual_class + levels) % (codebook_size // 2), (num_frames, num_codebooks))


def spatial_codes(azimuth: float, elevation: float, num_codebooks: int, codebook_size: int) -> np.ndarray:
    """``(3, codebooks)`` Y, Z, X codes for a source at ``(azimuth, elevation)`` degrees (public convention):
    level ``q`` of a channel is ``V/2 + 2q + s``, ``s = 1`` when the direction's component on that axis is positive."""
    vector = direction_to_vector(azimuth, elevation)
    positive = np.array([vector[axis] > 0 for axis in _SPATIAL_AXES], dtype=np.int64)[:, None]
    return codebook_size // 2 + 2 * np.arange(num_codebooks)[None, :] + positive


def _clip_codes(config: VisageConfig, visual_class: int, num_frames: int, azimuth: float, elevation: float):
    channels = [w_codes(visual_class, num_frames, config.num_codebooks, config.codebook_size)]
    if not config.is_mono:
        spatial = spatial_codes(azimuth, elevation, config.num_codebooks, config.codebook_size)
        channels += [np.broadcast_to(spatial[c], (num_frames, config.num_codebooks)) for c in range(3)]
    return np.concatenate(channels, axis=1).astype(np.int16)  # time-major (frames, streams)


def synthetic_examples(
    config: VisageConfig,
    num_clips: int,
    seconds: float = 2.0,
    rotation_yaws: Sequence[int] = (-90,),
    seed: int = 0,
    clip_noise: float = 0.5,
):
    """Rows of the synthetic task (dicts in the :func:`visage_hf.data.schema.feature_schema` layout, with indices).

    Clips have ``seconds·fps`` CLIP frames and ``ceil(seconds·sample_rate / hop)`` codec frames (DAC's count).
    """
    if config.codebook_size < 2 * config.num_codebooks + 2 or config.codebook_size < 2 * NUM_VISUAL_CLASSES:
        raise ValueError(f"the synthetic task needs codebook_size >= {2 * config.num_codebooks + 2}")
    rng = np.random.default_rng(seed)
    # Prototypes come from a fixed stream (every split of one task shares them) and have about unit norm, like
    # normalised CLIP embeddings: features much larger than that drown the small-initialised direction MLP.
    scale = 1.0 / math.sqrt(config.clip_dim)
    prototypes = scale * np.random.default_rng(12345).standard_normal((NUM_VISUAL_CLASSES, config.clip_dim))
    video_frames = round(seconds * config.video_fps)
    codec_frames = math.ceil(seconds * config.sample_rate / config.hop_length)
    for index in range(num_clips):
        visual_class = int(rng.integers(NUM_VISUAL_CLASSES))
        elevation_index = int(rng.integers(NUM_ELEVATION_INDICES))
        azimuth_index = int(rng.integers(NUM_AZIMUTH_INDICES))
        azimuth, elevation = indices_to_direction(elevation_index, azimuth_index)
        noise = scale * rng.standard_normal((video_frames, config.clip_dim))
        row = {
            CLIP_ID: f"synthetic_{seed}_{index:06d}",
            CLIP_FEATURES: (prototypes[visual_class] + clip_noise * noise).astype(np.float16),
            CODES: _clip_codes(config, visual_class, codec_frames, azimuth, elevation),
        }
        if not config.is_mono:
            energy = rng.random((video_frames, config.energy_map_dim)).astype(np.float32)
            row[ENERGY_MAP] = energy / energy.sum(axis=1, keepdims=True)
            row[ELEVATION_INDEX] = elevation_index
            row[AZIMUTH_INDEX] = azimuth_index
            for yaw in rotation_yaws:
                rotated = rotate_direction(azimuth, elevation, yaw=float(yaw))
                row[rotated_codes_column(yaw)] = _clip_codes(config, visual_class, codec_frames, *rotated)
        yield row


def write_synthetic_dataset(
    path: str | Path,
    config: VisageConfig,
    splits: dict[str, int] | None = None,
    seconds: float = 2.0,
    rotation_yaws: Sequence[int] = (-90,),
    seed: int = 0,
    num_shards: int = 2,
) -> dict[str, list[str]]:
    """Write the task as Parquet shards ``path/<split>-0000i-of-0000n.parquet``; returns the files per split.

    Load them with ``visage_hf.data.schema.load_feature_dataset(data_files=...)`` or ``datasets.load_dataset("parquet")``.
    """
    import datasets

    splits = {"train": 256, "validation": 32} if splits is None else splits
    rotation_yaws = () if config.is_mono else tuple(rotation_yaws)
    features = feature_schema(
        config.num_channels,
        config.num_codebooks,
        config.clip_dim,
        config.energy_map_dim,
        direction="indices",
        rotation_yaws=rotation_yaws,
        clip_dtype="float16",
    )
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[str]] = {}
    for offset, (split, count) in enumerate(splits.items()):
        rows = list(synthetic_examples(config, count, seconds, rotation_yaws, seed + 1000 * offset))
        table = datasets.Dataset.from_list(rows, features=features)
        shards = max(1, min(num_shards, count))
        files[split] = []
        for shard in range(shards):
            target = path / f"{split}-{shard:05d}-of-{shards:05d}.parquet"
            with atomic_output_path(target) as partial:  # a crash never leaves a truncated shard
                table.shard(num_shards=shards, index=shard, contiguous=True).to_parquet(str(partial))
            files[split].append(str(target))
    return files
