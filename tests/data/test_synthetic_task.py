"""Tests of visage_hf.data.synthetic_task: its codes follow where a plane wave's energy actually is."""

from __future__ import annotations

import numpy as np
import pytest

from visage_hf.data.features import FeatureDataset, load_feature_dataset, rotated_codes_column
from visage_hf.data.synthetic_task import spatial_codes, synthetic_examples, write_synthetic_dataset
from visage_hf.models.configuration_visage import VisageConfig


@pytest.fixture
def config() -> VisageConfig:
    return VisageConfig.tiny(codebook_size=64, code_pad_id=64, code_embedding_rows=72)


def hand_encoded(azimuth_deg: float, elevation_deg: float, signal: np.ndarray) -> np.ndarray:
    """AmbiX (W, Y, Z, X) SN3D plane wave written out: W = s, Y = s·cos e·sin a, Z = s·sin e, X = s·cos e·cos a."""
    a, e = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    return np.stack(
        [signal, signal * np.cos(e) * np.sin(a), signal * np.sin(e), signal * np.cos(e) * np.cos(a)]
    )


@pytest.mark.parametrize("azimuth, elevation", [(30, 10), (-120, -40), (170, 5), (-10, 80), (95, -3)])
def test_spatial_codes_mark_the_channels_in_phase_with_w(config, azimuth, elevation):
    foa = hand_encoded(azimuth, elevation, np.random.default_rng(0).standard_normal(2000))
    in_phase = [np.mean(foa[0] * foa[channel]) > 0 for channel in (1, 2, 3)]  # Y, Z, X
    codes = spatial_codes(azimuth, elevation, config.num_codebooks, config.codebook_size)
    base = config.codebook_size // 2 + 2 * np.arange(config.num_codebooks)
    for row, positive in enumerate(in_phase):
        np.testing.assert_array_equal(codes[row], base + int(positive))


def test_rotated_codes_follow_a_yaw_rotation_of_the_direction(config):
    for row in synthetic_examples(config, 20, seconds=1.0, rotation_yaws=(-90, 90), seed=3):
        azimuth = 179 - 2 * row["azimuth_index"]  # docs/original-implementation.md §5.5 (ambisonic azimuth)
        elevation = 89 - 2 * row["elevation_index"]
        for yaw in (-90, 90):
            rotated = spatial_codes(azimuth + yaw, elevation, config.num_codebooks, config.codebook_size)
            stored = row[rotated_codes_column(yaw)][0, config.num_codebooks :].reshape(3, -1)
            np.testing.assert_array_equal(stored, rotated)
        # W does not depend on the direction, so rotations leave it alone.
        np.testing.assert_array_equal(row["codes"][:, :9], row[rotated_codes_column(90)][:, :9])


def test_written_shards_load_through_the_feature_dataset(tmp_path, config):
    files = write_synthetic_dataset(tmp_path, config, {"train": 6, "validation": 3}, seconds=2.0)
    assert sorted(p.name for p in tmp_path.glob("*.parquet")) == [
        "train-00000-of-00002.parquet",
        "train-00001-of-00002.parquet",
        "validation-00000-of-00002.parquet",
        "validation-00001-of-00002.parquet",
    ]
    raw = load_feature_dataset(data_files=files["train"])
    assert raw.features["clip_features"].dtype == "float16"
    dataset = FeatureDataset(raw, config)
    example = dataset[0]
    assert example["clip_features"].shape == (8, 512) and example["codes"].shape == (173, 36)
    assert example["codes"].max() < config.codebook_size
    assert sorted(example["rotated_codes"]) == [-90]
    # The visual class (which W codes encode) is readable from the CLIP features: same class, close features.
    rows = [dataset[i] for i in range(6)]
    for a in rows:
        for b in rows:
            same_class = np.array_equal(a["codes"][0, :9], b["codes"][0, :9])
            similarity = np.dot(a["clip_features"][0], b["clip_features"][0]) / (
                np.linalg.norm(a["clip_features"][0]) * np.linalg.norm(b["clip_features"][0])
            )
            assert (similarity > 0.5) == same_class
