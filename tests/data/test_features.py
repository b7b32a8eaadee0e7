"""Tests of visage_hf.data.features: feature datasets, crop windows, rotation augmentation, guidance dropout, the pattern.

References are independent of the code under test: the original's pattern rows written as a loop
(docs/original-implementation.md §2.2), its crop rule (§4.2), its direction formula and a+45 wrap (§4.3, §5.5),
a plane wave encoded by hand, binomial statistics, and accelerate's own batch sharding.
"""

from __future__ import annotations

import math

import datasets
import numpy as np
import pytest
import torch
from accelerate.data_loader import BatchSamplerShard

from visage_hf.data.features import (
    EpochBatchSampler,
    FeatureDataset,
    SampleKey,
    StreamingFeatureDataset,
    VisageCollator,
    feature_schema,
    load_feature_dataset,
    rotated_codes_column,
)
from visage_hf.directions import model_direction_vector
from visage_hf.models.configuration_visage import VisageConfig

PAD = 1024


@pytest.fixture
def config() -> VisageConfig:
    """The original's 5 s layout (20 CLIP frames, 430 codec frames, 861 pattern steps) on a tiny model."""
    return VisageConfig.tiny(max_source_positions=20, max_target_positions=861)


def make_rows(config, seconds=(8.0,), yaws=(-90,), direction="indices", seed=0, codec_frames=None):
    """Rows whose CLIP frame t holds t and whose codec frame f holds f (offsets are readable from a batch)."""
    rng = np.random.default_rng(seed)
    rows = []
    for index, duration in enumerate(seconds):
        video = round(duration * config.video_fps)
        frames = codec_frames or math.ceil(duration * config.sample_rate / config.hop_length)
        clip = np.tile(np.arange(video, dtype=np.float32)[:, None], (1, config.clip_dim))
        codes = np.tile(np.arange(frames, dtype=np.int16)[:, None], (1, config.num_streams))
        row = {"clip_id": f"clip{index}", "clip_features": clip.astype(np.float16), "codes": codes}
        if not config.is_mono:
            row["energy_map"] = np.full((video, config.energy_map_dim), float(index), dtype=np.float32)
            if direction == "indices":
                row["elevation_index"] = int(rng.integers(90))
                row["azimuth_index"] = int(rng.integers(180))
            else:
                vector = rng.standard_normal(3)
                row["direction"] = (vector / np.linalg.norm(vector)).astype(np.float32)
            for yaw in yaws:
                row[rotated_codes_column(yaw)] = (codes + 100 + yaw % 360).astype(np.int16)
        rows.append(row)
    return rows


def make_dataset(config, rows, yaws=(-90,), direction="indices"):
    features = feature_schema(
        config.num_channels, config.num_codebooks, config.clip_dim, config.energy_map_dim, direction, yaws
    )
    return FeatureDataset(datasets.Dataset.from_list(rows, features=features), config)


def naive_pattern_labels(codes: np.ndarray) -> np.ndarray:
    """The original's `prepare_dac` as a loop: codes (s, 36) -> labels (2s+1, 36), pads -> -100."""
    frames = codes.shape[0]
    grid = np.full((2 * frames + 1, 36), -100, dtype=np.int64)
    for t in range(frames):
        for j in range(36):
            if j == 0:
                row = 2 * t
            elif j < 9 or j in (9, 18, 27):
                row = 2 * t + 1
            else:
                row = 2 * t + 2
            grid[row, j] = -100 if codes[t, j] == PAD else codes[t, j]
    return grid


# ------------------------------------------------------------------------------------------------ pattern
def test_labels_match_original_pattern_loop_and_revert(config):
    rng = np.random.default_rng(1)
    rows = make_rows(config, seconds=(5.0, 5.0))
    for row in rows:
        row["codes"] = rng.integers(0, 1024, size=row["codes"].shape).astype(np.int16)
    dataset = make_dataset(config, rows)
    batch = VisageCollator(config, train=False)([dataset[0], dataset[1]])

    assert batch["labels"].shape == (2, 861, 36)
    assert batch["decoder_input_ids"].shape == (2, 861, 36)
    for sample in range(2):
        window = rows[sample]["codes"][:430].astype(np.int64)  # 431 DAC frames: the 431st is dropped
        np.testing.assert_array_equal(batch["labels"][sample].numpy(), naive_pattern_labels(window))
        # Revert (patterns.py) gives the window back.
        grid = batch["labels"][sample : sample + 1].masked_fill(batch["labels"][sample : sample + 1] < 0, PAD)
        reverted = config.code_pattern.revert(grid)[0].T.numpy()
        np.testing.assert_array_equal(reverted, window)
    # Decoder inputs: a placeholder row, then the labels shifted by one row, pads as the pad id.
    expected_inputs = torch.full_like(batch["labels"], PAD)
    expected_inputs[:, 1:] = batch["labels"][:, :-1].masked_fill(batch["labels"][:, :-1] < 0, PAD)
    assert torch.equal(batch["decoder_input_ids"], expected_inputs)
    # Real tokens per row as the reference tabulates: 1, then 11 (odd) / 25 (even), last row 24.
    real = (batch["labels"][0] >= 0).sum(1)
    assert real[0] == 1 and (real[1::2] == 11).all() and (real[2:-1:2] == 25).all() and real[-1] == 24
    assert int(real.sum()) == 36 * 430


def test_short_audio_is_padded_and_ignored(config):
    rows = make_rows(config, seconds=(5.0,), codec_frames=300)
    batch = VisageCollator(config, train=True)([make_dataset(config, rows)[0]])
    reverted = config.code_pattern.revert(batch["labels"].masked_fill(batch["labels"] < 0, PAD))[0]
    assert (reverted[:, :300] == torch.arange(300)).all()
    assert (reverted[:, 300:] == PAD).all()  # ignored by the loss (-100 in the labels)


# ------------------------------------------------------------------------------------------------ crop
@pytest.mark.parametrize("mode", ["corrected", "original"])
def test_random_crop_windows_are_aligned(config, mode):
    rows = make_rows(config, seconds=(8.0,), yaws=())
    dataset = make_dataset(config, rows, yaws=())
    collator = VisageCollator(config, train=True, mode=mode, seed=3, visual_dropout_prob=0.0)
    codec_frames = rows[0]["codes"].shape[0]  # 690 for 8 s
    # The original: start second uniform in [0, min(T // 86, Tv // 4) − 5] (T // rate in corrected mode).
    rate = 86 if mode == "original" else 44100 / 512
    last = min(int(codec_frames // rate), 32 // 4) - 5
    seen = set()
    for position in range(60):
        example = dataset[SampleKey(0, 0, position, 0)]
        batch = collator([example])
        video_start = int(batch["clip_features"][0, 0, 0])
        assert video_start % 4 == 0
        second = video_start // 4
        seen.add(second)
        assert (batch["clip_features"][0, :, 0] == torch.arange(video_start, video_start + 20)).all()
        codec_start = 86 * second if mode == "original" else round(second * 44100 / 512)
        codes = config.code_pattern.revert(batch["labels"].masked_fill(batch["labels"] < 0, PAD))[0]
        assert (codes[:, 0] == codec_start).all()
        assert (codes[0] == torch.arange(codec_start, codec_start + 430)).all()
    assert seen == set(range(last + 1))


def test_eval_window_starts_at_zero_and_original_length_clip_is_not_cropped(config):
    # A YT-Ambigen clip: 20 CLIP frames, 431 DAC frames -> the original's else-branch (start 0, 430 frames).
    rows = make_rows(config, seconds=(5.0,))
    example = make_dataset(config, rows)[0]
    for train in (True, False):
        batch = VisageCollator(config, train=train, seed=5)([example])
        assert int(batch["clip_features"][0, 0, 0]) == 0
        assert int(batch["labels"][0, 0, 0]) == 0


def test_too_few_clip_frames_is_a_clear_error(config):
    rows = make_rows(config, seconds=(4.0,))
    with pytest.raises(ValueError, match="16 CLIP frames; a 5 s window needs 20"):
        VisageCollator(config, train=False)([make_dataset(config, rows)[0]])


def test_window_longer_than_the_encoder_is_rejected(config):
    with pytest.raises(ValueError, match="positions for 20"):
        VisageCollator(config, window_seconds=6.0)


# ------------------------------------------------------------------------------------------------ rotation
def reference_model_vector(elevation_index: int, azimuth_index: int) -> np.ndarray:
    """docs/original-implementation.md §5.5: (sin φ cos θ, −sin θ, cos φ cos θ), φ = 2a − 179, θ = 89 − 2e."""
    phi = np.deg2rad(2 * azimuth_index - 179)
    theta = np.deg2rad(89 - 2 * elevation_index)
    return np.array([np.sin(phi) * np.cos(theta), -np.sin(theta), np.cos(phi) * np.cos(theta)])


def test_original_rotation_uses_rotated_codes_and_shifted_azimuth_index(config):
    rows = make_rows(config, seconds=(5.0,) * 12, seed=7)
    rows[0]["azimuth_index"] = 170  # wraps: 170 + 45 - 180 = 35
    dataset = make_dataset(config, rows)
    examples = [dataset[SampleKey(i, 0, i, 0)] for i in range(12)]
    always = VisageCollator(
        config, train=True, rotation="original", rotation_probability=1.0, mode="original"
    )
    never = VisageCollator(config, train=True, rotation="original", rotation_probability=0.0, mode="original")
    rotated, plain = always(examples), never(examples)
    for i, row in enumerate(rows):
        e, a = row["elevation_index"], row["azimuth_index"]
        shifted = a + 45 if a + 45 <= 179 else a + 45 - 180
        np.testing.assert_allclose(
            rotated["direction"][i].numpy(), reference_model_vector(e, shifted), atol=1e-6
        )
        np.testing.assert_allclose(plain["direction"][i].numpy(), reference_model_vector(e, a), atol=1e-6)
        # Bit for bit what directions.py gives the original checkpoint.
        assert np.array_equal(rotated["direction"][i].numpy(), model_direction_vector(e, a, augment=True))
        assert np.array_equal(plain["direction"][i].numpy(), model_direction_vector(e, a))
    assert (always.config.code_pattern.revert(rotated["labels"].clamp(min=0))[:, :, 1] == 100 + 270 + 1).all()
    assert (never.config.code_pattern.revert(plain["labels"].clamp(min=0))[:, :, 1] == 1).all()
    # Visual features and the energy map are not rotated.
    assert torch.equal(rotated["clip_features"], plain["clip_features"])
    assert torch.equal(rotated["energy_map"], plain["energy_map"])


def plane_wave_direction(foa: np.ndarray) -> np.ndarray:
    """Unit (x, y, z) of a plane wave from AmbiX channels (W, Y, Z, X): the W-weighted dipole means."""
    w, y, z, x = foa
    vector = np.array([np.mean(w * x), np.mean(w * y), np.mean(w * z)])
    return vector / np.linalg.norm(vector)


@pytest.mark.parametrize("rotation", ["original", "yaw"])
def test_rotated_direction_follows_the_rotated_sound_field(config, rotation):
    """Physics: a source at the camera, after the original's channel swap Y' = −X, X' = Y (yaw −90°), must sit
    where the augmented direction vector points."""
    rows = make_rows(config, seconds=(5.0,) * 6, seed=11)
    dataset = make_dataset(config, rows)
    collator = VisageCollator(config, train=True, rotation=rotation, rotation_probability=1.0)
    batch = collator([dataset[SampleKey(i, 0, i, 0)] for i in range(6)])
    signal = np.random.default_rng(0).standard_normal(4000)
    for i, row in enumerate(rows):
        azimuth = np.deg2rad(179 - 2 * row["azimuth_index"])  # the camera's ambisonic azimuth (§5.5)
        elevation = np.deg2rad(89 - 2 * row["elevation_index"])
        source = np.array(
            [np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)]
        )
        w, y, z, x = signal, signal * source[1], signal * source[2], signal * source[0]
        rotated = np.stack([w, -x, z, y])  # the original's --rotate swap (§4.3)
        moved = plane_wave_direction(rotated)
        right, down, forward = batch["direction"][i].double().numpy()  # camera frame -> (x, y, z)
        np.testing.assert_allclose([forward, -right, -down], moved, atol=1e-5)


def test_yaw_rotation_chooses_among_precomputed_yaws_with_consistent_direction(config):
    yaws = (-90, 90, 180)
    rows = make_rows(config, seconds=(5.0,) * 40, yaws=yaws, direction="vector", seed=2)
    dataset = make_dataset(config, rows, yaws=yaws, direction="vector")
    collator = VisageCollator(config, train=True, rotation="yaw", rotation_probability=1.0, seed=9)
    batch = collator([dataset[SampleKey(i, 0, i, 0)] for i in range(40)])
    first_codes = config.code_pattern.revert(batch["labels"].clamp(min=0))[
        :, 1, 0
    ]  # codes + 100 + yaw mod 360
    used = {int(code) - 100 for code in first_codes}
    assert used == {270, 90, 180}
    for i, row in enumerate(rows):
        yaw = {270: -90, 90: 90, 180: 180}[int(first_codes[i]) - 100]
        right, down, forward = row["direction"]
        x, y, z = forward, -right, -down  # model camera frame -> ambisonic (x front, y left, z up)
        angle = np.deg2rad(yaw)  # a yaw rotation about z moves the source (and the camera with it)
        expected = np.array([x * np.cos(angle) - y * np.sin(angle), x * np.sin(angle) + y * np.cos(angle), z])
        got = batch["direction"][i].double().numpy()
        np.testing.assert_allclose([got[2], -got[0], -got[1]], expected, atol=1e-5)


def test_rotation_probability_is_respected(config):
    rows = make_rows(config, seconds=(5.0,), seed=4)
    example = make_dataset(config, rows)[0]
    collator = VisageCollator(config, train=True, rotation="original", rotation_probability=0.5, seed=1)
    draws = 400
    rotated = 0
    for position in range(draws):
        example = {**example, "key": SampleKey(0, 0, position, position)}
        labels = collator([example])["labels"]
        rotated += int(labels[0, 1, 9] != 0)  # the first Y code: 0 plain, 100 + 270 rotated
    assert abs(rotated - draws / 2) < 3 * math.sqrt(draws * 0.25)


def test_no_rotation_in_evaluation(config):
    rows = make_rows(config, seconds=(5.0,), seed=4)
    collator = VisageCollator(config, train=False, rotation="original", rotation_probability=1.0)
    batch = collator([make_dataset(config, rows)[0]])
    assert int(batch["labels"][0, 1, 9]) == 0


# ------------------------------------------------------------------------------------------------ dropout
@pytest.fixture
def small_config() -> VisageConfig:
    return VisageConfig.tiny()


def keyed_examples(config, count, per_batch):
    rows = make_rows(config, seconds=(0.25,), yaws=())
    example = make_dataset(config, rows, yaws=())[0]
    return [{**example, "key": SampleKey(0, 0, i, i // per_batch)} for i in range(count)]


def within_three_sigma(count: int, total: int, p: float) -> bool:
    return abs(count - total * p) <= 3 * math.sqrt(total * p * (1 - p))


def test_per_sample_dropout_rates_are_independent(small_config):
    examples = keyed_examples(small_config, 2000, 8)
    collator = VisageCollator(small_config, train=True, window_seconds=0.25, seed=0)
    visual, direction = [], []
    for start in range(0, 2000, 8):
        batch = collator(examples[start : start + 8])
        visual.append(batch["null_visual"])
        direction.append(batch["null_direction"])
    visual, direction = torch.cat(visual), torch.cat(direction)
    assert within_three_sigma(int(visual.sum()), 2000, 0.1)
    assert within_three_sigma(int(direction.sum()), 2000, 0.1)
    assert within_three_sigma(int((visual & direction).sum()), 2000, 0.01)  # independent draws
    # Some batches mix nulled and kept samples (per sample, not per batch).
    assert any(0 < int(v.sum()) < 8 for v in visual.view(-1, 8))


def test_tied_dropout_nulls_visual_and_direction_together(small_config):
    examples = keyed_examples(small_config, 400, 8)
    collator = VisageCollator(small_config, train=True, window_seconds=0.25, tie_dropout=True)
    for start in range(0, 400, 8):
        batch = collator(examples[start : start + 8])
        assert torch.equal(batch["null_visual"], batch["null_direction"])


def test_per_batch_dropout_nulls_whole_batches(small_config):
    examples = keyed_examples(small_config, 4000, 8)
    collator = VisageCollator(small_config, train=True, window_seconds=0.25, dropout_unit="batch", seed=2)
    nulled = 0
    for start in range(0, 4000, 8):
        flags = collator(examples[start : start + 8])["null_visual"]
        assert flags.all() or not flags.any()
        nulled += int(flags.all())
    assert within_three_sigma(nulled, 500, 0.1)


def test_no_guidance_dropout_in_evaluation_except_original_quirk(small_config):
    examples = keyed_examples(small_config, 400, 8)
    collator = VisageCollator(small_config, train=False, window_seconds=0.25, visual_dropout_prob=1.0)
    batch = collator(examples[:8])
    assert not batch["null_visual"].any() and not batch["null_direction"].any()
    with pytest.raises(ValueError, match="original"):
        VisageCollator(small_config, train=False, eval_dropout=True)
    quirk = VisageCollator(
        small_config,
        train=False,
        window_seconds=0.25,
        mode="original",
        eval_dropout=True,
        visual_dropout_prob=1.0,
    )
    assert quirk(examples[:8])["null_visual"].all()


def test_draws_do_not_depend_on_how_a_global_batch_is_split(small_config):
    """accelerate's split_batches hands each process a slice: the slices' draws equal the whole batch's."""
    examples = keyed_examples(small_config, 64, 16)
    sampler = EpochBatchSampler(64, 16, seed=5)
    collator = VisageCollator(small_config, train=True, window_seconds=0.25, visual_dropout_prob=0.5, seed=8)
    whole = [collator([examples[key.position] | {"key": key} for key in keys]) for keys in sampler]
    for rank in range(2):
        shard = BatchSamplerShard(sampler, num_processes=2, process_index=rank, split_batches=True)
        for batch_index, keys in enumerate(shard):
            part = collator([examples[key.position] | {"key": key} for key in keys])
            rows = slice(rank * 8, rank * 8 + 8)
            for name in ("null_visual", "null_direction", "direction", "labels"):
                assert torch.equal(part[name], whole[batch_index][name][rows])


# ------------------------------------------------------------------------------------------------ sampler
def test_sampler_is_seeded_resumable_and_drops_partial_steps():
    sampler = EpochBatchSampler(50, 4, seed=3, batches_multiple_of=3)
    assert sampler.batches_per_epoch == 12  # 12 whole batches, a multiple of 3 accumulation steps
    full = list(sampler)
    assert [key.batch for keys in full for key in keys][::4] == list(range(12))
    indices = [key.index for keys in full for key in keys]
    assert len(set(indices)) == 48  # a permutation: no sample twice
    assert indices == list(np.random.default_rng([3, 0]).permutation(50)[:48])
    sampler.set_position(0, 5)
    assert list(sampler) == full[5:] and len(sampler) == 7
    sampler.set_position(1, 0)
    assert [key.index for keys in sampler for key in keys] != indices
    with pytest.raises(ValueError, match="no whole optimizer step"):
        EpochBatchSampler(5, 4, batches_multiple_of=2)


# ------------------------------------------------------------------------------------------------ datasets
def test_parquet_round_trip_casts_fp16_features_and_keeps_codes(tmp_path, config):
    rows = make_rows(config, seconds=(5.0, 6.0))
    features = feature_schema(rotation_yaws=(-90,), direction="indices")
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(tmp_path / "train-0.parquet"))
    dataset = FeatureDataset(load_feature_dataset(data_files=[str(tmp_path / "train-0.parquet")]), config)
    example = dataset[1]
    assert example["clip_features"].dtype == np.float32 and example["clip_features"].shape == (24, 512)
    assert example["codes"].shape == (517, 36)
    np.testing.assert_array_equal(example["codes"], rows[1]["codes"])
    batch = VisageCollator(config, train=False)([dataset[0], dataset[1]])
    assert batch["clip_features"].dtype == torch.float32 and batch["labels"].dtype == torch.int64


def test_missing_column_is_a_clear_error(config):
    rows = make_rows(config, seconds=(5.0,))
    for row in rows:
        del row["energy_map"]
    table = datasets.Dataset.from_list(rows)
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['energy_map'\]"):
        FeatureDataset(table, config)


def test_mono_dataset_for_foa_model_is_a_clear_error(config):
    mono = VisageConfig.tiny(num_channels=1, max_source_positions=20, max_target_positions=861)
    rows = make_rows(mono, seconds=(5.0,))
    for row in rows:
        row["energy_map"] = np.zeros((20, 49), np.float32)
        row["direction"] = [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="width 9; the model expects 36"):
        FeatureDataset(datasets.Dataset.from_list(rows), config)


def test_mono_batches_have_visual_nulls_only():
    mono = VisageConfig.tiny(num_channels=1)
    rows = make_rows(mono, seconds=(2.0,))
    dataset = make_dataset(mono, rows, yaws=())
    batch = VisageCollator(mono, train=True, window_seconds=0.5)([dataset[0]])
    assert set(batch) == {"clip_features", "null_visual", "decoder_input_ids", "labels"}
    assert batch["labels"].shape == (1, 86, 9)  # mono pattern: 2T steps for T = 43


def test_streaming_view_yields_the_same_batches_as_map_style(tmp_path, config):
    rows = make_rows(config, seconds=(5.0, 5.0, 6.0, 5.0), seed=3)
    features = feature_schema(rotation_yaws=(-90,), direction="indices")
    files = []
    for shard in range(2):
        path = tmp_path / f"train-{shard}.parquet"
        datasets.Dataset.from_list(rows[2 * shard : 2 * shard + 2], features=features).to_parquet(str(path))
        files.append(str(path))
    stream = StreamingFeatureDataset(
        load_feature_dataset(data_files=files, streaming=True), config, batch_size=2
    )
    mapped = FeatureDataset(load_feature_dataset(data_files=files), config)
    streamed = list(stream)
    assert [example["clip_id"] for example in streamed] == [f"clip{i}" for i in range(4)]
    assert [example["key"].batch for example in streamed] == [0, 0, 1, 1]
    collator = VisageCollator(config, train=False)
    a, b = collator(streamed), collator([mapped[i] for i in range(4)])
    for name in a:
        assert torch.equal(a[name], b[name])


def test_codes_outside_the_codebook_are_rejected(small_config):
    rows = make_rows(small_config, seconds=(0.25,), yaws=())
    rows[0]["codes"][:, 5] = 2000
    with pytest.raises(ValueError, match="outside"):
        VisageCollator(small_config, window_seconds=0.25)([make_dataset(small_config, rows, yaws=())[0]])
