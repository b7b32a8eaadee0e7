"""Feature datasets -> training batches: cropping, rotation augmentation, guidance dropout, the code pattern.

The stored columns are described in :mod:`visage_hf.data.schema`.

**Batches** (:class:`VisageCollator`) hold exactly the keyword arguments of `VisageForFOA.forward`:
``clip_features (B, Tv, 512)`` float32, ``energy_map (B, Tv, 49)``, ``direction (B, 3)``, ``null_visual`` /
``null_direction (B,)`` bool, ``decoder_input_ids`` and ``labels (B, steps, streams)`` int64. Every window
has the same length, so there is no attention mask: pattern cells without a code (and frames missing from
short audio) hold the pad id in the decoder inputs (a zero embedding) and -100 in the labels.

**Randomness** never comes from a global RNG. Every draw (crop start, rotation, guidance dropout) is keyed
by ``(seed, epoch, global sample position)`` — or ``(seed, epoch, global batch)`` for per-batch dropout — so a
run reproduces exactly whatever the number of processes or workers, and resumes mid-epoch by restarting the
:class:`EpochBatchSampler` at the consumed batch count.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import Any, NamedTuple

import numpy as np
import torch

from ..audio.foa import rotate_direction
from ..directions import (
    direction_to_model_vector,
    indices_to_direction,
    model_direction_vector,
    model_vector_to_direction,
)
from ..models.configuration_visage import VisageConfig
from ..models.modeling_visage import shift_codes_right
from ..models.modes import check_mode
from .schema import (
    AZIMUTH_INDEX,
    CLIP_FEATURES,
    CLIP_ID,
    CODES,
    DIRECTION,
    ELEVATION_INDEX,
    ENERGY_MAP,
    ORIGINAL_ROTATION_YAW,
    check_feature_columns,
    rotated_codes_column,
    rotation_yaws_in,
)

__all__ = ["EpochBatchSampler", "FeatureDataset", "SampleKey", "StreamingFeatureDataset", "VisageCollator"]

ROTATIONS = ("none", "original", "yaw")
DROPOUT_UNITS = ("sample", "batch")
# Draw streams: a per-sample key and a per-batch key never share random numbers.
_SAMPLE_STREAM, _BATCH_STREAM = 0, 1


class SampleKey(NamedTuple):
    """Where a sample sits in training: dataset row, epoch, global position in the epoch and global batch.

    Keys make every random draw a pure function of (seed, epoch, position), independent of rank and worker.
    """

    index: int
    epoch: int = 0
    position: int = 0
    batch: int = -1  # -1: unknown (plain indexing); per-batch draws then key on the first sample's position


def _row_to_example(row: dict, columns: Sequence[str], key: SampleKey) -> dict:
    """One stored row -> numpy arrays with checked dtypes (CLIP fp16 on disk becomes float32)."""
    example: dict[str, Any] = {"key": key, "clip_id": str(row[CLIP_ID]), "rotated_codes": {}}
    example["clip_features"] = _float_matrix(row[CLIP_FEATURES], CLIP_FEATURES, example["clip_id"])
    if ENERGY_MAP in columns:
        example["energy_map"] = _float_matrix(row[ENERGY_MAP], ENERGY_MAP, example["clip_id"])
    if DIRECTION in columns:
        example["direction"] = np.asarray(row[DIRECTION], dtype=np.float32).reshape(3)
    if ELEVATION_INDEX in columns:
        clip_id = example["clip_id"]
        example["indices"] = tuple(
            _whole(row[name], name, clip_id) for name in (ELEVATION_INDEX, AZIMUTH_INDEX)
        )
    example["codes"] = _code_matrix(row[CODES], CODES, example["clip_id"])
    for yaw in rotation_yaws_in(columns):
        column = rotated_codes_column(yaw)
        example["rotated_codes"][yaw] = _code_matrix(row[column], column, example["clip_id"])
    return example


def _whole(value, column: str, clip_id: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{column} of clip {clip_id!r} must be a whole number, got {value!r}") from None


def _float_matrix(value, column: str, clip_id: str) -> np.ndarray:
    return _matrix(value, column, clip_id, np.floating, "a 2-D float array").astype(np.float32, copy=False)


def _code_matrix(value, column: str, clip_id: str) -> np.ndarray:
    codes = _matrix(value, column, clip_id, np.integer, "2-D integer codes (frames, streams)")
    return codes.astype(np.int64, copy=False)


def _matrix(value, column: str, clip_id: str, kind: type, expected: str) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != 2 or not np.issubdtype(array.dtype, kind):
        raise ValueError(f"{column} of clip {clip_id!r} must be {expected}, got {array.dtype} {array.shape}")
    return array


def _check_first_example(example: dict, config: VisageConfig) -> None:
    """Widths of the stored arrays against the model (a mono dataset for an FOA model, a wrong CLIP...)."""
    expected = {"clip_features": config.clip_dim, "codes": config.num_streams}
    if not config.is_mono:
        expected["energy_map"] = config.energy_map_dim
    for name, width in expected.items():
        if example[name].shape[1] != width:
            raise ValueError(
                f"column {name} of clip {example['clip_id']!r} has rows of width {example[name].shape[1]}; the model "
                f"expects {width} (num_channels {config.num_channels} × {config.num_codebooks} codebooks, "
                f"clip_dim {config.clip_dim}, energy_map_dim {config.energy_map_dim})"
            )


class FeatureDataset(torch.utils.data.Dataset):
    """Map-style view of a feature split; ``dataset[i]`` or ``dataset[SampleKey]`` -> an example dict.

    Args:
        dataset: a `datasets.Dataset` with the schema of :func:`feature_schema`.
        config: the model config (columns and widths are checked against it, on construction).
    """

    def __init__(self, dataset, config: VisageConfig):
        self.columns = check_feature_columns(dataset.column_names, config)
        # Only the needed columns, as numpy: no stray binary column can hit datasets' trailing-NUL trap.
        self.rows = dataset.with_format("numpy", columns=self.columns)
        if len(self.rows) == 0:
            raise ValueError("the feature dataset is empty")
        _check_first_example(self[0], config)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: int | SampleKey) -> dict:
        if not isinstance(key, SampleKey):
            key = SampleKey(int(key), 0, int(key))
        return _row_to_example(self.rows[key.index], self.columns, key)


class StreamingFeatureDataset(torch.utils.data.IterableDataset):
    """Streaming view of a feature split (a `datasets.IterableDataset`), shuffled per epoch with a buffer.

    Positions are counted per worker and interleaved (``position·workers + worker``), which is the order in
    which a DataLoader returns them, so keys are global as long as the worker count is unchanged. Accelerate
    reads streaming batches on the main process and dispatches slices, so keys do not depend on the rank.
    """

    def __init__(
        self, dataset, config: VisageConfig, batch_size: int, seed: int = 0, shuffle_buffer_size: int = 0
    ):
        columns = dataset.column_names or list(dataset.features or [])
        self.columns = check_feature_columns(columns, config)
        dataset = dataset.select_columns(self.columns)
        if shuffle_buffer_size > 0:
            dataset = dataset.shuffle(seed=seed, buffer_size=shuffle_buffer_size)
        self.dataset = dataset.with_format("numpy")
        self.batch_size = batch_size
        self.epoch = 0
        self.config = config

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        for local, row in enumerate(self.dataset):
            key = SampleKey(
                -1, self.epoch, local * workers + worker, (local // self.batch_size) * workers + worker
            )
            example = _row_to_example(row, self.columns, key)
            if local == 0:
                _check_first_example(example, self.config)
            yield example


class EpochBatchSampler:
    """Global (all-process) micro-batches of a seeded per-epoch permutation, restartable mid-epoch.

    Yields lists of :class:`SampleKey`. Accelerate's ``split_batches`` gives each process its slice of every
    batch, so the global batch composition does not depend on the number of processes. Only whole optimizer
    steps are yielded (``batches_multiple_of`` = gradient accumulation steps; the rest of an epoch is dropped).
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        batches_multiple_of: int = 1,
    ):
        if batch_size < 1 or num_samples < 1:
            raise ValueError(f"need batch_size >= 1 and samples >= 1, got {batch_size} and {num_samples}")
        self.num_samples = num_samples
        self.batch_size = batch_size  # read by accelerate's split_batches check
        self.drop_last = True
        self.seed = seed
        self.shuffle = shuffle
        whole = num_samples // batch_size
        self.batches_per_epoch = whole - whole % batches_multiple_of
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"{num_samples} samples make no whole optimizer step of {batch_size * batches_multiple_of} samples"
            )
        self.epoch = 0
        self.start_batch = 0

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        """Iterate epoch ``epoch`` from its batch ``start_batch`` on (resume)."""
        self.epoch, self.start_batch = int(epoch), int(start_batch)

    def order(self, epoch: int) -> np.ndarray:
        """Row order of ``epoch``: a permutation seeded by (seed, epoch) (identity when not shuffling)."""
        if not self.shuffle:
            return np.arange(self.num_samples)
        return np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)

    def __len__(self) -> int:
        return max(0, self.batches_per_epoch - self.start_batch)

    def __iter__(self) -> Iterator[list[SampleKey]]:
        order = self.order(self.epoch)
        for batch in range(self.start_batch, self.batches_per_epoch):
            start = batch * self.batch_size
            yield [
                SampleKey(int(order[position]), self.epoch, position, batch)
                for position in range(start, start + self.batch_size)
            ]


# ------------------------------------------------------------------------------------------------ collator
class _Draws(NamedTuple):
    crop: float
    rotate: float
    rotation_choice: float
    null_visual: float
    null_direction: float


def _draws(seed: int, stream: int, epoch: int, position: int) -> _Draws:
    # Always five numbers in a fixed order, so enabling one augmentation never shifts another's draws.
    values = np.random.default_rng([seed, stream, epoch, position]).random(5)
    return _Draws(*map(float, values))


class VisageCollator:
    """Examples -> a `VisageForFOA.forward` batch: crop, rotation augmentation, guidance dropout, pattern.

    Args:
        config: the model config (pattern, pad id, frame arithmetic, default dropout probabilities).
        train: training batches (random crop, augmentation, dropout) or evaluation batches (window at 0 s,
            nothing random).
        window_seconds: window length (default: the encoder's ``max_duration``, 5 s); ``window_seconds·fps``
            CLIP frames and ``config.frames_for_video_frames`` codec frames (430 for 5 s).
        mode: ``"corrected"`` (default) or ``"original"`` frame offsets (see :meth:`window`).
        seed: seed of every random draw (keyed by sample position, see the module docstring).
        rotation: ``"none"``; ``"original"`` (the precomputed -90° codes with azimuth index ``a + 45``,
            visual features unchanged); ``"yaw"`` (any precomputed yaw, direction rotated with ``foa``).
        rotation_probability: chance that a training sample is rotated (original 0.5).
        rotation_yaws: restrict ``"yaw"`` to these yaws (default: every rotated column present).
        visual_dropout_prob, direction_dropout_prob: guidance dropout (default: the config's, 0.1 each).
        dropout_unit: ``"sample"`` (each sample draws; default) or ``"batch"`` (the original: one draw nulls
            the whole global batch).
        tie_dropout: null visual and direction together (one draw) instead of independently.
        eval_dropout: apply guidance dropout to evaluation batches too — the original's quirk, allowed only in
            ``mode="original"``.
    """

    def __init__(
        self,
        config: VisageConfig,
        train: bool = True,
        window_seconds: float | None = None,
        mode: str | None = None,
        seed: int = 0,
        rotation: str = "none",
        rotation_probability: float = 0.5,
        rotation_yaws: Sequence[int] | None = None,
        visual_dropout_prob: float | None = None,
        direction_dropout_prob: float | None = None,
        dropout_unit: str = "sample",
        tie_dropout: bool = False,
        eval_dropout: bool = False,
    ):
        self.config = config
        self.mode = config.mode if mode is None else mode
        check_mode(self.mode)
        self.train = train
        self.seed = int(seed)
        if rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}, got {rotation!r}")
        if dropout_unit not in DROPOUT_UNITS:
            raise ValueError(f"dropout_unit must be one of {DROPOUT_UNITS}, got {dropout_unit!r}")
        if eval_dropout and self.mode != "original":
            raise ValueError(
                "eval_dropout (guidance dropout in evaluation) is the original's quirk: mode='original' only"
            )
        if not 0.0 <= rotation_probability <= 1.0:
            raise ValueError(f"rotation_probability must be in [0, 1], got {rotation_probability}")
        self.rotation = "none" if config.is_mono else rotation
        self.rotation_probability = rotation_probability
        self.rotation_yaws = None if rotation_yaws is None else [int(yaw) for yaw in rotation_yaws]
        self.visual_dropout_prob = _probability(visual_dropout_prob, config.visual_dropout_prob, "visual")
        self.direction_dropout_prob = _probability(
            direction_dropout_prob, config.direction_dropout_prob, "direction"
        )
        self.dropout_unit = dropout_unit
        self.tie_dropout = tie_dropout
        self.apply_dropout = train or eval_dropout

        window_seconds = config.max_duration if window_seconds is None else float(window_seconds)
        video_frames = window_seconds * config.video_fps
        if not (video_frames >= 1 and float(video_frames).is_integer()):
            raise ValueError(
                f"window_seconds ({window_seconds}) must be a whole number of video frames at {config.video_fps} fps"
            )
        self.window_seconds = window_seconds
        self.video_frames = int(video_frames)
        if self.video_frames > config.max_source_positions:
            raise ValueError(
                f"a {window_seconds:g} s window has {self.video_frames} video frames; the encoder has positions for "
                f"{config.max_source_positions} ({config.max_duration:g} s)"
            )
        self.frames = config.frames_for_video_frames(self.video_frames, self.mode)
        self.pattern = config.code_pattern
        if self.pattern.num_steps(self.frames) > config.max_target_positions:
            raise ValueError(
                f"a {window_seconds:g} s window ({self.frames} codec frames, {self.pattern.num_steps(self.frames)} "
                f"pattern steps) exceeds max_target_positions ({config.max_target_positions})"
            )

    # ---------------------------------------------------------------- pieces
    def window(self, num_video_frames: int, num_codec_frames: int, draw: float | None) -> tuple[int, int]:
        """(first video frame, first codec frame) of the window.

        Training draws a whole start second uniformly from those that keep the window inside both streams
        (the original: ``randint(0, min(T // 86, Tv // 4) − 5)``, used only when the audio has more than a
        window of whole seconds); evaluation (``draw=None``) starts at 0. The codec offset of second s is
        ``86·s`` in original mode and the nearest frame ``round(s·44100/512)`` in corrected mode.
        """
        if draw is None:
            return 0, 0
        rate = self.config.frame_rate(self.mode)
        available = min(
            Fraction(num_codec_frames) / rate, Fraction(num_video_frames, 1) / self.config.video_fps
        )
        last_start = math.floor(available - Fraction(self.window_seconds).limit_denominator(10**6))
        if last_start <= 0:
            return 0, 0
        second = min(int(draw * (last_start + 1)), last_start)
        return round(second * self.config.video_fps), round(second * rate)

    def _crop(self, example: dict, codes: np.ndarray, draw: float | None):
        clip_id = example["clip_id"]
        video = example["clip_features"]
        if video.shape[0] < self.video_frames:
            raise ValueError(
                f"clip {clip_id!r} has {video.shape[0]} CLIP frames; a {self.window_seconds:g} s window needs "
                f"{self.video_frames} (the encoder has no padding mask: filter such clips out)"
            )
        video_start, codec_start = self.window(video.shape[0], codes.shape[0], draw)
        video_slice = slice(video_start, video_start + self.video_frames)
        window = np.full((self.frames, codes.shape[1]), self.config.code_pad_id, dtype=np.int64)
        kept = codes[codec_start : codec_start + self.frames]
        window[: kept.shape[0]] = kept  # short audio: the tail stays pad and is ignored by the loss
        energy = example.get("energy_map")
        return video[video_slice], None if energy is None else energy[video_slice], window

    def _rotation(self, example: dict, draws: _Draws) -> int | None:
        """The yaw whose codes this sample uses (None: the original codes)."""
        if not self.train or self.rotation == "none" or draws.rotate >= self.rotation_probability:
            return None
        available = sorted(example["rotated_codes"])
        if self.rotation == "original":
            if ORIGINAL_ROTATION_YAW not in available:
                raise ValueError(
                    f"rotation='original' needs the column {rotated_codes_column(ORIGINAL_ROTATION_YAW)}; "
                    f"clip {example['clip_id']!r} has rotations {available}"
                )
            return ORIGINAL_ROTATION_YAW
        if self.rotation_yaws is not None:
            missing = sorted(set(self.rotation_yaws) - set(available))
            if missing:
                raise ValueError(f"rotation_yaws {missing} have no precomputed codes; present: {available}")
            available = self.rotation_yaws
        if not available:
            return None
        return available[min(int(draws.rotation_choice * len(available)), len(available) - 1)]

    def direction_vector(self, example: dict, yaw: int | None) -> np.ndarray:
        """The model's direction input (float32 (3,)) for the example, after a sound-field rotation by ``yaw``.

        Rotating the sound by ``yaw`` moves the source that sat at the camera to ``azimuth + yaw``, so the
        camera turns with it (``foa.rotate_direction``). The original's pairing (yaw -90 with azimuth index
        ``a + 45``) is reproduced bit for bit in original mode; the two agree to float32 rounding.
        """
        if "indices" in example:
            elevation_index, azimuth_index = example["indices"]
            if yaw is None:
                return model_direction_vector(elevation_index, azimuth_index)
            if self.rotation == "original":
                return model_direction_vector(elevation_index, azimuth_index, augment=True)
            azimuth, elevation = indices_to_direction(elevation_index, azimuth_index)
        else:
            if yaw is None:
                return example["direction"]
            azimuth, elevation = model_vector_to_direction(example["direction"])
        azimuth, elevation = rotate_direction(azimuth, elevation, yaw=float(yaw))
        return direction_to_model_vector(azimuth, elevation)

    def _null_flags(self, draws: list[_Draws], batch_draws: _Draws) -> tuple[torch.Tensor, torch.Tensor]:
        size = len(draws)
        if not self.apply_dropout:
            return torch.zeros(size, dtype=torch.bool), torch.zeros(size, dtype=torch.bool)
        units = [batch_draws] * size if self.dropout_unit == "batch" else draws
        visual = torch.tensor([d.null_visual < self.visual_dropout_prob for d in units])
        if self.tie_dropout:
            return visual, visual.clone()
        direction = torch.tensor([d.null_direction < self.direction_dropout_prob for d in units])
        return visual, direction

    def labels_from_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, streams)`` codes -> ``(batch, steps, streams)`` pattern labels, pads -> -100."""
        steps = self.pattern.build(codes.transpose(1, 2), self.config.code_pad_id)
        return steps.masked_fill(steps == self.config.code_pad_id, -100)

    # ---------------------------------------------------------------- batch
    def __call__(self, examples: Sequence[dict]) -> dict[str, torch.Tensor]:
        if len(examples) == 0:
            raise ValueError("cannot collate an empty batch")
        keys = [example.get("key") or SampleKey(i, 0, i) for i, example in enumerate(examples)]
        draws = [_draws(self.seed, _SAMPLE_STREAM, key.epoch, key.position) for key in keys]
        batch_key = keys[0].batch if keys[0].batch >= 0 else keys[0].position
        batch_draws = _draws(self.seed, _BATCH_STREAM, keys[0].epoch, batch_key)
        clips, energies, directions, windows = [], [], [], []
        for example, draw in zip(examples, draws):
            yaw = self._rotation(example, draw)
            codes = example["codes"] if yaw is None else example["rotated_codes"][yaw]
            clip, energy, window = self._crop(example, codes, draw.crop if self.train else None)
            clips.append(clip)
            windows.append(window)
            if not self.config.is_mono:
                energies.append(energy)
                directions.append(self.direction_vector(example, yaw))
        codes = torch.from_numpy(np.stack(windows))
        _check_code_values(codes, self.config, [example["clip_id"] for example in examples])
        labels = self.labels_from_codes(codes)
        null_visual, null_direction = self._null_flags(draws, batch_draws)
        batch = {"clip_features": torch.from_numpy(np.stack(clips)).float()}
        if not self.config.is_mono:
            batch["energy_map"] = torch.from_numpy(np.stack(energies)).float()
            batch["direction"] = torch.from_numpy(np.stack(directions)).float()
            batch["null_direction"] = null_direction
        batch["null_visual"] = null_visual
        batch["decoder_input_ids"] = shift_codes_right(labels, self.config.code_pad_id)
        batch["labels"] = labels
        return batch


def _probability(value: float | None, default: float, name: str) -> float:
    value = default if value is None else float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} dropout probability must be in [0, 1], got {value}")
    return value


def _check_code_values(codes: torch.Tensor, config: VisageConfig, clip_ids: list[str]) -> None:
    invalid = (codes < 0) | ((codes >= config.codebook_size) & (codes != config.code_pad_id))
    if bool(invalid.any()):
        sample = int(invalid.flatten(1).any(1).nonzero()[0])
        raise ValueError(
            f"clip {clip_ids[sample]!r} has codes outside [0, {config.codebook_size}) that are not the pad id "
            f"{config.code_pad_id}: values {codes[sample][invalid[sample]].unique()[:5].tolist()}"
        )
