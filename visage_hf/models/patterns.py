"""Code interleaving patterns: how codec codes `(streams, frames)` become decoder steps `(steps, streams)`.

A ViSAGe decoder step predicts one token per code stream (stream `j = 9·c + q`: ambisonic channel `c` in
W, Y, Z, X order, RVQ level `q`). A pattern says at which step each (stream, frame) cell is predicted; every
other cell of the step grid holds the pad id. All patterns here are *sub-step delay* patterns: stream `s`
emits frame `t` at step ``substeps_per_frame · t + delays[s]``. That one rule expresses

- ``visage``: the original two-sub-step layout (W coarse code first, then W fine codes together with the
  Y/Z/X coarse codes, then the Y/Z/X fine codes), 2T+1 steps for T frames (2T for the mono variant);
- ``delay``: MusicGen's delay per RVQ level, channels in parallel (T+8 steps);
- ``parallel``: every stream of a frame at once (T steps);
- ``flatten``: one stream per step (36·T steps);
- ``custom``: any delays and period given explicitly.

Patterns are pure values: torch only, no model imports, validated at construction, with cached index tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

PATTERN_NAMES = ("visage", "delay", "parallel", "flatten", "custom")


@lru_cache(maxsize=64)
def _step_index(delays: tuple[int, ...], substeps_per_frame: int, num_frames: int) -> torch.Tensor:
    frames = torch.arange(num_frames)
    return substeps_per_frame * frames[None, :] + torch.tensor(delays)[:, None]


@lru_cache(maxsize=64)
def _live_mask(
    delays: tuple[int, ...], substeps_per_frame: int, num_frames: int, num_steps: int
) -> torch.Tensor:
    mask = torch.zeros(num_steps, len(delays), dtype=torch.bool)
    index = _step_index(delays, substeps_per_frame, num_frames)
    mask[index, torch.arange(len(delays))[:, None]] = True
    return mask


@dataclass(frozen=True)
class CodePattern:
    """Sub-step delay pattern: stream ``s`` predicts frame ``t`` at step ``substeps_per_frame * t + delays[s]``.

    Args:
        delays: one delay per stream, in sub-steps; the smallest must be 0 (no empty leading step).
        substeps_per_frame: decoder steps between consecutive frames of one stream.
        name: a label for messages and configs.
    """

    delays: tuple[int, ...]
    substeps_per_frame: int = 1
    name: str = "custom"

    def __post_init__(self) -> None:
        delays = tuple(self.delays)
        object.__setattr__(self, "delays", delays)
        if len(delays) == 0:
            raise ValueError("a code pattern needs at least one stream delay, got an empty list")
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in delays):
            raise ValueError(f"pattern delays must be non-negative integers, got {list(delays)}")
        if min(delays) != 0:
            raise ValueError(
                f"the smallest pattern delay must be 0 (no empty leading step), got {min(delays)}"
            )
        if not isinstance(self.substeps_per_frame, int) or self.substeps_per_frame < 1:
            raise ValueError(f"substeps_per_frame must be an integer >= 1, got {self.substeps_per_frame!r}")

    @property
    def num_streams(self) -> int:
        return len(self.delays)

    @property
    def max_delay(self) -> int:
        return max(self.delays)

    def num_steps(self, num_frames: int) -> int:
        """Decoder steps needed for ``num_frames`` frames (frames >= 1)."""
        _check_count(num_frames, "num_frames")
        return self.substeps_per_frame * (num_frames - 1) + self.max_delay + 1

    def max_frames(self, num_steps: int) -> int:
        """The most frames whose pattern fits in ``num_steps`` decoder steps (0 if not even one frame fits)."""
        if num_steps < self.max_delay + 1:
            return 0
        return (num_steps - self.max_delay - 1) // self.substeps_per_frame + 1

    def frames_for_steps(self, num_steps: int) -> int:
        """The frame count whose pattern has exactly ``num_steps`` steps; ValueError if there is none."""
        frames = self.max_frames(num_steps)
        if frames == 0 or self.num_steps(frames) != num_steps:
            raise ValueError(
                f"{num_steps} steps is not a whole number of frames for the {self.name!r} pattern "
                f"(steps = {self.substeps_per_frame}·(frames-1) + {self.max_delay + 1})"
            )
        return frames

    def step_index(self, num_frames: int) -> torch.Tensor:
        """``(streams, frames)`` LongTensor: the step at which each cell is predicted."""
        _check_count(num_frames, "num_frames")
        return _step_index(self.delays, self.substeps_per_frame, num_frames).clone()

    def live_mask(self, num_frames: int) -> torch.Tensor:
        """``(steps, streams)`` BoolTensor: True where the step predicts a real code, False where it holds pad."""
        steps = self.num_steps(num_frames)
        return _live_mask(self.delays, self.substeps_per_frame, num_frames, steps).clone()

    def build(self, codes: torch.Tensor, pad_id: int) -> torch.Tensor:
        """Lay codes out as steps.

        Args:
            codes: ``(batch, streams, frames)`` integer codes (any values, e.g. -1 for "unknown", are carried).
            pad_id: value of every cell the pattern leaves empty.

        Returns:
            ``(batch, steps, streams)`` with ``steps = num_steps(frames)``.
        """
        self._check_grid(codes, "codes", "(batch, streams, frames)")
        batch, streams, frames = codes.shape
        index = _step_index(self.delays, self.substeps_per_frame, frames).to(codes.device)
        sequence = codes.new_full((batch, self.num_steps(frames), streams), pad_id)
        sequence[:, index, torch.arange(streams, device=codes.device)[:, None]] = codes
        return sequence

    def revert(self, sequence: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`build`: ``(batch, steps, streams)`` -> ``(batch, streams, frames)``."""
        self._check_grid(sequence, "sequence", "(batch, steps, streams)")
        frames = self.frames_for_steps(sequence.shape[1])
        index = _step_index(self.delays, self.substeps_per_frame, frames).to(sequence.device)
        return sequence[:, index, torch.arange(sequence.shape[2], device=sequence.device)[:, None]]

    def _check_grid(self, tensor: torch.Tensor, name: str, layout: str) -> None:
        if tensor.ndim != 3:
            raise ValueError(f"{name} must be 3-D {layout}, got shape {tuple(tensor.shape)}")
        stream_axis = 1 if name == "codes" else 2
        if tensor.shape[stream_axis] != self.num_streams:
            raise ValueError(
                f"{name} has {tensor.shape[stream_axis]} streams, the {self.name!r} pattern has {self.num_streams}"
            )
        if name == "codes" and tensor.shape[2] < 1:
            raise ValueError("codes must hold at least one frame")


def _check_count(value: int, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def visage_pattern(num_channels: int = 4, num_codebooks: int = 9) -> CodePattern:
    """The original ViSAGe layout (two sub-steps per frame).

    Frame t: W level 0 at step 2t; W levels 1.. and the level 0 of the other channels at 2t+1; the other
    channels' levels 1.. at 2t+2 (sharing that step with W level 0 of frame t+1). FOA: 2T+1 steps; mono: 2T.
    """
    delays = []
    for channel in range(num_channels):
        for level in range(num_codebooks):
            delays.append(int(channel > 0) + int(level > 0))
    return CodePattern(tuple(delays), substeps_per_frame=2, name="visage")


def delay_pattern(num_channels: int = 4, num_codebooks: int = 9) -> CodePattern:
    """MusicGen-style delay: RVQ level q of every channel one step after level q-1; channels in parallel."""
    delays = tuple(level for _ in range(num_channels) for level in range(num_codebooks))
    return CodePattern(delays, substeps_per_frame=1, name="delay")


def parallel_pattern(num_channels: int = 4, num_codebooks: int = 9) -> CodePattern:
    """Every stream of a frame in the same step."""
    return CodePattern((0,) * (num_channels * num_codebooks), substeps_per_frame=1, name="parallel")


def flatten_pattern(num_channels: int = 4, num_codebooks: int = 9) -> CodePattern:
    """One stream per step, in stream order (channel-major), a frame after the other."""
    streams = num_channels * num_codebooks
    return CodePattern(tuple(range(streams)), substeps_per_frame=streams, name="flatten")


_PATTERN_FACTORIES = {
    "visage": visage_pattern,
    "delay": delay_pattern,
    "parallel": parallel_pattern,
    "flatten": flatten_pattern,
}


def get_pattern(
    name: str,
    num_channels: int = 4,
    num_codebooks: int = 9,
    delays: list[int] | tuple[int, ...] | None = None,
    substeps_per_frame: int | None = None,
) -> CodePattern:
    """The named pattern for ``num_channels`` × ``num_codebooks`` streams (``custom`` takes explicit delays)."""
    if name == "custom":
        if delays is None or substeps_per_frame is None:
            raise ValueError("the 'custom' pattern needs pattern_delays and pattern_substeps")
        if len(delays) != num_channels * num_codebooks:
            raise ValueError(
                f"custom pattern has {len(delays)} delays, expected one per stream ({num_channels * num_codebooks})"
            )
        return CodePattern(tuple(delays), substeps_per_frame=substeps_per_frame, name="custom")
    if name not in _PATTERN_FACTORIES:
        raise ValueError(f"unknown code pattern {name!r}; expected one of {list(PATTERN_NAMES)}")
    return _PATTERN_FACTORIES[name](num_channels, num_codebooks)
