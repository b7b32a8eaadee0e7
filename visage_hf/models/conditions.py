"""The conditions `VisageForFOA` takes (CLIP frames, energy map, direction), checked once for every entry point."""

from __future__ import annotations

import torch

from .configuration_visage import VisageConfig


def check_conditions(
    config: VisageConfig,
    clip_features: torch.Tensor,
    energy_map: torch.Tensor | None,
    direction: torch.Tensor | None,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Checked conditions in ``dtype``: ``clip_features`` ``(batch, frames, clip_dim)``, and for the FOA variant
    ``energy_map`` ``(batch, frames, energy_map_dim)`` and ``direction`` ``(batch, direction_dim)`` or per frame ``(batch, frames, direction_dim)`` (mono: None, None).

    Raises:
        ValueError: a missing, superfluous or misshapen condition, or more frames than the encoder has positions.
    """
    if not isinstance(clip_features, torch.Tensor) or clip_features.ndim != 3:
        shape = tuple(clip_features.shape) if isinstance(clip_features, torch.Tensor) else type(clip_features)
        raise ValueError(f"clip_features must be (batch, frames, {config.clip_dim}), got {shape}")
    batch, frames, width = clip_features.shape
    if width != config.clip_dim or frames < 1 or batch < 1:
        raise ValueError(
            f"clip_features must be (batch, frames, {config.clip_dim}), got {tuple(clip_features.shape)}"
        )
    if frames > config.max_source_positions:
        raise ValueError(
            f"clip_features has {frames} frames ({frames / config.video_fps:g} s at {config.video_fps} fps); "
            f"the encoder has positions for at most {config.max_source_positions} "
            f"({config.max_duration:g} s)"
        )
    if config.is_mono:
        if energy_map is not None or direction is not None:
            raise ValueError("the mono variant (num_channels=1) takes no energy_map or direction")
        return clip_features.to(dtype), None, None
    if energy_map is None or direction is None:
        raise ValueError("the FOA model needs energy_map (batch, frames, 49) and direction (batch, 3)")
    if tuple(energy_map.shape) != (batch, frames, config.energy_map_dim):
        raise ValueError(
            f"energy_map must be (batch, frames, {config.energy_map_dim}) = {(batch, frames, config.energy_map_dim)}, "
            f"got {tuple(energy_map.shape)}"
        )
    if tuple(direction.shape) not in (
        (batch, config.direction_dim),
        (batch, frames, config.direction_dim),
    ):
        raise ValueError(
            f"direction must be (batch, {config.direction_dim}) = {(batch, config.direction_dim)} or, for a "
            f"moving camera, (batch, frames, {config.direction_dim}) = {(batch, frames, config.direction_dim)}; "
            f"got {tuple(direction.shape)}"
        )
    return clip_features.to(dtype), energy_map.to(dtype), direction.to(dtype)


def check_null_flags(batch: int, **flags: torch.Tensor | None) -> None:
    """ValueError unless every given mask (``null_visual``, ``null_direction``) has shape ``(batch,)``."""
    for name, mask in flags.items():
        if mask is not None and tuple(mask.shape) != (batch,):
            raise ValueError(f"{name} must be a (batch,) bool mask, got shape {tuple(mask.shape)}")


def replace_with_nulls(
    conditions: tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None],
    nulls: list[torch.Tensor | None],
    null_visual: torch.Tensor | None = None,
    null_direction: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(clip_features, energy_map, direction)`` with the samples flagged in ``null_visual`` /
    ``null_direction`` (bool, ``(batch,)``) replaced by ``nulls`` (the learned null clip / energy / direction
    vectors). Visual = CLIP features and energy map, nulled together (original)."""
    clip_features, energy_map, direction = conditions
    null_clip, null_energy, null_dir = nulls
    if null_visual is not None:
        flags = null_visual.to(device=clip_features.device, dtype=torch.bool).view(-1, 1, 1)
        clip_features = torch.where(flags, null_clip.to(clip_features.dtype), clip_features)
        if energy_map is not None:
            energy_map = torch.where(flags, null_energy.to(energy_map.dtype), energy_map)
    if null_direction is not None and direction is not None:
        flags = null_direction.to(device=direction.device, dtype=torch.bool).view(
            -1, *[1] * (direction.ndim - 1)
        )
        direction = torch.where(flags, null_dir.to(direction.dtype), direction)
    return clip_features, energy_map, direction


def check_code_ids(config: VisageConfig, codes: torch.Tensor) -> None:
    """ValueError unless every decoder code lies in ``[0, code_embedding_rows)`` (the codebook plus pad)."""
    low, high = int(codes.min()), int(codes.max())
    if low < 0 or high >= config.code_embedding_rows:
        raise ValueError(
            f"decoder codes must lie in [0, {config.code_embedding_rows}) (pad {config.code_pad_id}), "
            f"got values in [{low}, {high}]"
        )


def branch_conditions(
    conditions: list[torch.Tensor | None], branches: tuple[tuple[bool, bool], ...], batch: int
) -> tuple[torch.Tensor | None, ...]:
    """The conditions of every guidance branch in one batch, branch-major rows (k·batch + b): ``(clip_features,
    energy_map, direction, null_visual, null_direction)`` for `VisageForFOA.encode`; ``branches`` holds each
    branch's ``(null_visual, null_direction)``."""
    device = conditions[0].device
    flags = torch.tensor(branches, dtype=torch.bool, device=device).repeat_interleave(batch, dim=0)
    repeated = [
        None if tensor is None else tensor.repeat(len(branches), *[1] * (tensor.ndim - 1))
        for tensor in conditions
    ]
    return (*repeated, flags[:, 0], flags[:, 1])


__all__ = [
    "branch_conditions",
    "check_code_ids",
    "check_conditions",
    "check_null_flags",
    "replace_with_nulls",
]
