"""Decoded video frames as arrays: the one check every consumer (clip loader, feature extractor) applies."""

from __future__ import annotations

import numpy as np

__all__ = ["validate_frames"]


def validate_frames(frames) -> np.ndarray:
    """Check and stack video frames into one ``(batch, T, H, W, 3)`` uint8 array.

    Accepts ``(T, H, W, 3)`` (one clip) or ``(batch, T, H, W, 3)`` uint8 numpy arrays or torch tensors, or a
    list of ``(T, H, W, 3)`` clips of equal shape.
    """
    if isinstance(frames, (list, tuple)):
        if not frames:
            raise ValueError("frames: expected at least one clip, got an empty list")
        clips = [validate_frames(clip) for clip in frames]
        shapes = {clip.shape[1:] for clip in clips}
        if len(shapes) != 1:
            raise ValueError(f"frames: expected clips of one shape (T, H, W, 3), got {sorted(shapes)}")
        return np.concatenate(clips, axis=0)
    if type(frames).__module__.startswith("torch"):  # a tensor; torch itself is not needed to read one
        import torch

        if frames.dtype != torch.uint8:
            raise ValueError(f"frames: expected uint8 RGB values 0..255, got dtype {frames.dtype}")
        frames = frames.detach().cpu().numpy()
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise ValueError(f"frames: expected uint8 RGB values 0..255, got dtype {frames.dtype}")
    if frames.ndim == 4:
        frames = frames[None]
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(f"frames: expected shape (T, H, W, 3) or (batch, T, H, W, 3), got {frames.shape}")
    if 0 in frames.shape:
        raise ValueError(f"frames: expected a non-empty clip, got shape {frames.shape}")
    return frames
