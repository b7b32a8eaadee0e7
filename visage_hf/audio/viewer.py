"""A world-frame FOA field as heard by a viewer who looks where the camera looks, also while it moves.

The generated FOA stays in the world frame (that is what a 360° player turns with the listener's head). A
headphone preview is instead *viewer-aligned*: the camera direction becomes the front. For a camera that moves,
the direction is given per sample, so the rotation changes continuously and the preview has no clicks at frame
boundaries (a rotation switched once per video frame would step the sound field 4 times a second).

The viewer frame has no roll: its front is the camera direction, its left stays horizontal, its up completes
the right-handed frame (x front, y left, z up), exactly as :func:`visage_hf.audio.foa.rotate` with
``yaw=-azimuth, pitch=elevation``.
"""

from __future__ import annotations

import numpy as np

from ..directions import direction_to_vector
from .foa import XYZ_CHANNELS
from .io import check_foa

__all__ = ["to_viewer_frame", "viewer_basis"]


def viewer_basis(azimuth, elevation) -> np.ndarray:
    """Rows (front, left, up) of the viewer frame: ``(..., 3, 3)`` for azimuth/elevation degrees ``(...)``."""
    azimuth = np.asarray(azimuth, dtype=np.float64)
    elevation = np.asarray(elevation, dtype=np.float64)
    front = direction_to_vector(azimuth, elevation)
    left = direction_to_vector(azimuth + 90.0, np.zeros_like(elevation))
    up = np.cross(front, left)
    return np.stack(np.broadcast_arrays(front, left, up), axis=-2)


def to_viewer_frame(foa, azimuth, elevation) -> np.ndarray:
    """Rotate AmbiX FOA ``(4, samples)`` into the frame of a viewer looking at ``(azimuth, elevation)``.

    ``azimuth``/``elevation`` are degrees: scalars (a fixed camera) or ``(samples,)`` arrays (a camera that moves,
    one direction per sample). W is unchanged; the velocity components are projected on the viewer's axes.
    Returns float32 ``(4, samples)``.
    """
    foa = np.asarray(check_foa(foa), dtype=np.float64)
    samples = foa.shape[-1]
    azimuth, elevation = np.broadcast_arrays(np.asarray(azimuth, float), np.asarray(elevation, float))
    if azimuth.ndim not in (0, 1) or (azimuth.ndim == 1 and azimuth.shape[0] != samples):
        raise ValueError(
            f"expected scalar directions or one per sample ({samples}), got shape {azimuth.shape}"
        )
    basis = viewer_basis(azimuth, elevation)
    velocity = foa[XYZ_CHANNELS]  # (3, samples) as (x, y, z)
    out = foa.copy()
    if basis.ndim == 2:
        out[XYZ_CHANNELS] = basis @ velocity
    else:
        out[XYZ_CHANNELS] = np.einsum("nij,jn->in", basis, velocity)
    return out.astype(np.float32)
