"""Every direction convention in visage-hf, converted in one place.

**Public convention** (every public function of the package): angles in degrees in the ambisonic (AmbiX /
YouTube) frame. Azimuth is counter-clockwise seen from above, from the front (+x) toward the left (+y),
wrapped to ``(-180, 180]``; elevation is up from the horizon, in ``[-90, 90]``. Unit vectors are
``(x, y, z)`` = (front, left, up).

**YT-Ambigen indices.** The dataset stores a camera direction as ``(elevation_index e, azimuth_index a)``
with ``e`` in 0..89 and ``a`` in 0..179 (2° bins with a 1° half-bin offset). The original code derives two
angles from them (docs/original-implementation.md §5.5):

* ``θ = 89 − 2e``: elevation above the horizon;
* ``φ = 2a − 179``: the *yaw of its equirect -> field-of-view projection*, measured from the panorama centre
  and positive toward the **image right**.

Because image-right is the listener's right, i.e. *negative* ambisonic azimuth, the camera's true ambisonic
azimuth is ``179 − 2a`` (:func:`indices_to_direction`, default ``mode="corrected"``). The original's
evaluation and baseline scripts (``ambi2mono``, ``mono_to_ambi``) instead plug ``φ = 2a − 179`` directly in as
the ambisonic azimuth, which mirrors left and right (front/back and elevation are unaffected); that reading
is available as ``mode="original"`` for reproducing the published mono-decode numbers.

How we know which is right (``tests/test_directions.py::test_camera_azimuth_mirror``): the test rebuilds, from
the reference's facts alone, (1) the original's FoV-crop geometry — a ray ``(0, 0, 1)`` rotated by
``R_y(yaw)·R_x(pitch)`` with ``yaw = φ``, ``pitch = θ``, mapped to equirect longitude ``sign(x)·acos(z/√(x²+z²))``
(positive toward image-right) — together with the AmbiX equirect layout (image centre = front, image-left =
+y); and (2) the original's rotation augmentation, which swaps channels ``Y' = −X, X' = Y`` and pairs the
rotated audio with the azimuth index ``a' = a + 45``. A plane wave encoded at the camera's ambisonic
direction lands, after the channel swap, on the camera of index ``a'`` only under ``179 − 2a``; under
``2a − 179`` it lands 180° away. Both pieces of evidence agree with each other.

**Model vector.** The released checkpoint was trained on ``d = R_y(φ)·R_x(θ)·(0, 0, 1)
= (sin φ cos θ, −sin θ, cos φ cos θ)`` (float32) in the projection camera frame (x = image-right,
y = image-down, z = forward). :func:`model_direction_vector` reproduces it bit for bit from indices;
:func:`direction_to_model_vector` maps public degrees to it, so users never see the camera frame.

Scalars in give Python floats / ints out; arrays in give arrays out (broadcast).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "NUM_AZIMUTH_INDICES",
    "NUM_ELEVATION_INDICES",
    "angular_distance",
    "augment_azimuth_index",
    "check_elevation",
    "direction_to_indices",
    "direction_to_model_vector",
    "direction_to_vector",
    "indices_to_direction",
    "model_direction_vector",
    "model_vector_to_direction",
    "vector_to_direction",
    "wrap_azimuth",
]

NUM_ELEVATION_INDICES = 90  # e in 0..89, θ = 89 − 2e
NUM_AZIMUTH_INDICES = 180  # a in 0..179, φ = 2a − 179
AUGMENT_AZIMUTH_SHIFT = 45  # the original's rotation augmentation: a' = a + 45 (+90° of camera yaw)
_MODES = ("corrected", "original")


def _as_output(value: np.ndarray, *inputs):
    """Return a Python scalar when every input was a scalar, else the array."""
    scalar = all(np.ndim(item) == 0 for item in inputs) and np.ndim(value) == 0
    return value.item() if scalar else value


def _finite_degrees(value, name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: expected finite degrees, got {value!r}")
    return array


def _check_mode(mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"mode: expected one of {_MODES}, got {mode!r}")


def wrap_azimuth(azimuth):
    """Wrap azimuth degrees to ``(-180, 180]`` (so both 180 and −180 become 180)."""
    array = _finite_degrees(azimuth, "azimuth")
    return _as_output(180.0 - np.mod(180.0 - array, 360.0), azimuth)


def check_elevation(elevation, name: str = "elevation"):
    """Return elevation degrees unchanged if every value is in ``[-90, 90]``; else raise ``ValueError``."""
    array = _finite_degrees(elevation, name)
    if np.any(np.abs(array) > 90.0):
        bad = array[np.abs(array) > 90.0].ravel()[0]
        raise ValueError(f"{name}: expected degrees in [-90, 90], got {bad:g}")
    return _as_output(array, elevation)


def direction_to_vector(azimuth, elevation) -> np.ndarray:
    """Degrees -> unit vectors ``(..., 3)`` float64, (x front, y left, z up). Elevation is validated."""
    azimuth = np.deg2rad(_finite_degrees(azimuth, "azimuth"))
    elevation = np.deg2rad(np.asarray(check_elevation(elevation), dtype=np.float64))
    azimuth, elevation = np.broadcast_arrays(azimuth, elevation)
    cos_elevation = np.cos(elevation)
    return np.stack(
        [cos_elevation * np.cos(azimuth), cos_elevation * np.sin(azimuth), np.sin(elevation)], axis=-1
    )


def vector_to_direction(vector):
    """Vectors ``(..., 3)`` (any non-zero length) -> ``(azimuth, elevation)`` degrees.

    At the poles the azimuth is undefined and returned as 0 (``atan2(0, 0)``).
    """
    vector = np.asarray(vector, dtype=np.float64)
    if vector.shape[-1:] != (3,):
        raise ValueError(f"expected vectors of shape (..., 3), got shape {vector.shape}")
    if not np.isfinite(vector).all():
        raise ValueError("expected finite vectors, got NaN/inf")
    horizontal = np.hypot(vector[..., 0], vector[..., 1])
    if np.any((horizontal == 0) & (vector[..., 2] == 0)):
        raise ValueError("expected non-zero vectors, got a zero vector (no direction)")
    azimuth = wrap_azimuth(np.rad2deg(np.arctan2(vector[..., 1], vector[..., 0])))
    elevation = np.rad2deg(np.arctan2(vector[..., 2], horizontal))
    if vector.ndim == 1:
        return float(azimuth), float(elevation)
    return azimuth, elevation


def angular_distance(azimuth_a, elevation_a, azimuth_b, elevation_b):
    """Great-circle angle in degrees between two directions (accurate near 0° and 180°)."""
    a = direction_to_vector(azimuth_a, elevation_a)
    b = direction_to_vector(azimuth_b, elevation_b)
    a, b = np.broadcast_arrays(a, b)
    sine = np.linalg.norm(np.cross(a, b), axis=-1)
    cosine = np.sum(a * b, axis=-1)
    return _as_output(np.rad2deg(np.arctan2(sine, cosine)), azimuth_a, elevation_a, azimuth_b, elevation_b)


def _check_indices(elevation_index, azimuth_index) -> tuple[np.ndarray, np.ndarray]:
    e = np.asarray(elevation_index)
    a = np.asarray(azimuth_index)
    for name, array, count in (
        ("elevation_index", e, NUM_ELEVATION_INDICES),
        ("azimuth_index", a, NUM_AZIMUTH_INDICES),
    ):
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"{name}: expected integers, got dtype {array.dtype}")
        if np.any((array < 0) | (array >= count)):
            raise ValueError(
                f"{name}: expected integers in [0, {count - 1}], got {array.min()}..{array.max()}"
            )
    return e.astype(np.int64), a.astype(np.int64)


def indices_to_direction(elevation_index, azimuth_index, mode: str = "corrected"):
    """YT-Ambigen ``(elevation_index, azimuth_index)`` -> camera ``(azimuth, elevation)`` in degrees.

    ``mode="corrected"`` (default) gives the camera's true ambisonic azimuth ``179 − 2a``;
    ``mode="original"`` gives the original evaluation scripts' mirrored ``2a − 179`` (see the module docstring).
    Elevation is ``89 − 2e`` in both modes.
    """
    _check_mode(mode)
    e, a = _check_indices(elevation_index, azimuth_index)
    azimuth = (179 - 2 * a) if mode == "corrected" else (2 * a - 179)
    elevation = 89 - 2 * e
    azimuth, elevation = np.broadcast_arrays(azimuth.astype(np.float64), elevation.astype(np.float64))
    like = (elevation_index, azimuth_index)
    return _as_output(azimuth, *like), _as_output(elevation, *like)


def direction_to_indices(azimuth, elevation, mode: str = "corrected"):
    """Degrees -> the nearest YT-Ambigen ``(elevation_index, azimuth_index)`` (inverse of
    :func:`indices_to_direction` for the same ``mode``; the azimuth index is nearest around the circle)."""
    _check_mode(mode)
    azimuth = _finite_degrees(azimuth, "azimuth")
    elevation = np.asarray(check_elevation(elevation), dtype=np.float64)
    offset = (179.0 - azimuth) if mode == "corrected" else (azimuth + 179.0)
    azimuth_index = np.mod(np.floor(np.mod(offset / 2.0, NUM_AZIMUTH_INDICES) + 0.5), NUM_AZIMUTH_INDICES)
    elevation_index = np.clip(np.floor((89.0 - elevation) / 2.0 + 0.5), 0, NUM_ELEVATION_INDICES - 1)
    azimuth_index, elevation_index = np.broadcast_arrays(
        azimuth_index.astype(np.int64), elevation_index.astype(np.int64)
    )
    return _as_output(elevation_index, azimuth, elevation), _as_output(azimuth_index, azimuth, elevation)


def augment_azimuth_index(azimuth_index):
    """The original's augmentation index shift: ``a + 45``, minus 180 when it passes 179 (camera yaw +90°).

    It is paired with the sound-field rotation ``Y' = −X, X' = Y`` (yaw −90°, see ``foa.rotate``).
    """
    _, a = _check_indices(0, azimuth_index)
    shifted = a + AUGMENT_AZIMUTH_SHIFT
    return _as_output(
        np.where(shifted > NUM_AZIMUTH_INDICES - 1, shifted - NUM_AZIMUTH_INDICES, shifted), azimuth_index
    )


def model_direction_vector(elevation_index, azimuth_index, augment: bool = False) -> np.ndarray:
    """The original model's direction input, bit-exact: float32 ``(..., 3)``.

    ``d = R_y(φ)·R_x(θ)·(0, 0, 1) = (sin φ cos θ, −sin θ, cos φ cos θ)`` with ``φ = 2a − 179`` and
    ``θ = 89 − 2e`` in radians, computed in float64 and cast to float32 like ``PreprocessorAmbi.prepare_ambi``.
    ``augment=True`` applies the original's index shift first (:func:`augment_azimuth_index`).
    Anchor: ``(e, a) = (45, 90)`` -> ``(0.0174497, 0.0174524, 0.9996954)``.
    """
    e, a = _check_indices(elevation_index, azimuth_index)
    if augment:
        a = np.asarray(augment_azimuth_index(a))
    # Same operation order as the original so the float32 result matches bit for bit.
    phi = (2 * a - 179) * np.pi / 180
    theta = (89 - 2 * e) * np.pi / 180
    phi, theta = np.broadcast_arrays(phi, theta)
    vector = np.stack([np.sin(phi) * np.cos(theta), -np.sin(theta), np.cos(phi) * np.cos(theta)], axis=-1)
    return vector.astype(np.float32)


def direction_to_model_vector(azimuth, elevation) -> np.ndarray:
    """Public ``(azimuth, elevation)`` degrees -> the model's camera-frame vector, float32 ``(..., 3)``.

    The camera frame is (image-right, image-down, forward) = (−y, −z, x) of the ambisonic frame, so
    ``d = (−sin az cos el, −sin el, cos az cos el)``. For index directions it equals
    :func:`model_direction_vector` to float32 rounding.
    """
    x, y, z = np.moveaxis(direction_to_vector(azimuth, elevation), -1, 0)
    return np.stack([-y, -z, x], axis=-1).astype(np.float32)


def model_vector_to_direction(vector):
    """Inverse of :func:`direction_to_model_vector`: camera-frame ``(..., 3)`` -> ``(azimuth, elevation)``."""
    vector = np.asarray(vector, dtype=np.float64)
    if vector.shape[-1:] != (3,):
        raise ValueError(f"expected vectors of shape (..., 3), got shape {vector.shape}")
    right, down, forward = np.moveaxis(vector, -1, 0)
    return vector_to_direction(np.stack([forward, -right, -down], axis=-1))
