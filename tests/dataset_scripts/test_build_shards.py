"""dataset_scripts/build_shards.py and push_to_hub.py: the shards load with datasets and make a training batch; the
media config round-trips the clip files; the Hub upload's dry run."""

from __future__ import annotations

import datasets
import numpy as np
import pytest

from dataset_scripts import extract_features, media_io, push_to_hub
from dataset_scripts.jobs import run_cli
from dataset_scripts.yt_ambigen import decode_foa, decode_video
from visage_hf.audio.io import read_audio
from visage_hf.data.features import FeatureDataset, VisageCollator, load_feature_dataset
from visage_hf.models.configuration_visage import VisageConfig

from .helpers import CLIP_SECONDS, FOV_SIZE, SPLIT_CLIPS


def test_shards_load_and_make_a_training_batch(pipeline, tmp_path):
    shards = pipeline["shards"]
    assert not list(shards.rglob("*.py"))  # a .py in a dataset folder breaks load_dataset
    assert datasets.get_dataset_config_names(str(shards)) == ["metadata", "features", "media"]
    features = datasets.load_dataset(str(shards), "features", cache_dir=str(tmp_path))
    assert {split: features[split].num_rows for split in features} == {"train": 3, "validation": 1}
    train = features["train"]
    assert train.features["codes"] == datasets.Array2D((None, 36), "int16")
    assert {"elevation_index", "azimuth_index", "codes_yaw-90"} <= set(train.column_names)

    config = VisageConfig.tiny()
    dataset = FeatureDataset(train, config)
    collator = VisageCollator(
        config, train=True, rotation="original", rotation_probability=0.0, window_seconds=0.5
    )
    batch = collator([dataset[i] for i in range(len(dataset))])
    assert batch["clip_features"].shape == (3, 2, 512) and batch["energy_map"].shape == (3, 2, 49)
    assert batch["labels"].shape == (3, config.pattern_steps(43), 36)
    # The direction the model sees is the original's vector d = (sin φ cos θ, -sin θ, cos φ cos θ) with
    # φ = 2a - 179, θ = 89 - 2e (docs/original-implementation.md §5.5), from the clip's indices.
    rows = train.to_list()
    for row, direction in zip(rows, batch["direction"]):
        phi, theta = np.deg2rad(2 * row["azimuth_index"] - 179), np.deg2rad(89 - 2 * row["elevation_index"])
        expected = [np.sin(phi) * np.cos(theta), -np.sin(theta), np.cos(phi) * np.cos(theta)]
        np.testing.assert_allclose(direction.numpy(), expected, atol=1e-6)
    npz, _ = extract_features.load_features(pipeline["features"] / f"{rows[0]['clip_id']}.npz")
    np.testing.assert_array_equal(np.asarray(rows[0]["codes"], dtype=np.int16), npz["codes"])

    # The training loader reads the same folder by config name.
    loaded = load_feature_dataset(str(shards), "validation", config_name="features")
    assert list(loaded["clip_id"]) == SPLIT_CLIPS["validation"]


def test_media_config_round_trips_the_clip_files(pipeline, tmp_path):
    media = datasets.load_dataset(str(pipeline["shards"]), "media", cache_dir=str(tmp_path))
    row = next(r for r in media["train"] if r["clip_id"] == "AAAAAAAAAA1_3")
    assert row["video_id"] == "AAAAAAAAAA1" and row["start_second"] == 3.0 and row["azimuth"] == 59.0
    foa, sample_rate = decode_foa(row["foa"])
    expected, expected_rate = read_audio(pipeline["media"] / "AAAAAAAAAA1_3" / "foa.flac")
    np.testing.assert_array_equal(foa, expected)
    assert sample_rate == expected_rate == row["sample_rate"]
    frames = decode_video(row["video"])
    assert frames.shape == (CLIP_SECONDS * 4, FOV_SIZE, FOV_SIZE, 3)
    with pytest.raises(ValueError, match="expected 1-channel"):
        decode_foa(row["foa"], expected_channels=1)
    with pytest.raises(ValueError, match="trailing NUL"):
        media_io.decode_flac(b"\x00" * 64)


def test_push_to_hub_dry_run_lists_shards_and_card(pipeline, capsys, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", None)  # any Hub call would fail loudly
    argv = ["--folder", str(pipeline["shards"]), "--repo-id", "someone/yt-ambigen", "--dry-run"]
    assert push_to_hub.main(argv) == 0
    listed = capsys.readouterr().out
    assert "README.md" in listed and "features/train-00000-of-00001.parquet" in listed
    assert "metadata/validation-00000-of-00001.parquet" in listed and "media/" not in listed
    files, card = push_to_hub.plan_upload(pipeline["shards"])
    assert "config_name: media" not in card and "config_name: features" in card
    assert run_cli(push_to_hub.main, [*argv, "--configs", "media"]) == 2  # media needs --include-media
    files, card = push_to_hub.plan_upload(pipeline["shards"], ["media"], include_media=True)
    assert [p for p, _ in files] == [
        "media/train-00000-of-00001.parquet",
        "media/validation-00000-of-00001.parquet",
    ]
