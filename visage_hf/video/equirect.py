"""Equirectangular (360°) frame geometry: where each pixel looks, and rectilinear field-of-view crops.

Layout (YouTube / AmbiX convention): the image centre is the front, image-left is +azimuth (counter-clockwise
seen from above), the top row is up. Pixel column ``j`` of a ``W``-wide frame is centred at azimuth
``180 - 360 (j + 0.5) / W`` and row ``i`` of an ``H``-high frame at elevation ``90 - 180 (i + 0.5) / H``.

Field of view (:func:`equirect_to_fov`, :func:`fov_crop`): the rectilinear crop ViSAGe trains on (90°,
224 x 224). A sampling grid is built once per view (cached) and applied to every frame with vectorised
bilinear sampling. ``mode="original"`` reproduces the original ``prepare_dataset.project``
(docs/original-implementation.md §5.6): rays through pixel corners, lookup-table trigonometry, a MATLAB-style
+1 pixel shift and clamping at the ±180° seam; near the view centre it samples about 0.86 px right of and
below the exact position for 896 x 448 -> 224 x 224. The corrected default uses pixel-centre rays, exact
angles and wraps around the seam.

The projection's own angles are ``yaw`` (toward the image right) and ``pitch`` (up); in the public
ambisonic convention the camera's azimuth is ``-yaw`` (docs/original-implementation.md §5.5), see :func:`direction_to_yaw_pitch`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ..audio.viewer import viewer_basis
from ..directions import direction_to_vector

__all__ = [
    "direction_to_yaw_pitch",
    "equirect_directions",
    "equirect_to_fov",
    "fov_crop",
    "fov_sampling_grid",
    "fov_to_equirect",
    "yaw_pitch_to_direction",
]


def equirect_directions(height: int, width: int) -> np.ndarray:
    """Unit vectors ``(H, W, 3)`` (x front, y left, z up) through the pixel centres of an equirect frame."""
    azimuth = 180.0 - 360.0 * (np.arange(width) + 0.5) / width
    elevation = 90.0 - 180.0 * (np.arange(height) + 0.5) / height
    return direction_to_vector(azimuth[None, :], elevation[:, None])


def direction_to_yaw_pitch(azimuth: float, elevation: float) -> tuple[float, float]:
    """Public ambisonic ``(azimuth, elevation)`` degrees -> the projection's ``(yaw, pitch)`` degrees.

    The projection's yaw is positive toward the image right, i.e. the listener's right, which is negative
    ambisonic azimuth: ``yaw = -azimuth``, ``pitch = elevation`` (docs/original-implementation.md §5.5).
    """
    return float(-azimuth), float(elevation)


def yaw_pitch_to_direction(yaw: float, pitch: float) -> tuple[float, float]:
    """Inverse of :func:`direction_to_yaw_pitch`: ``(azimuth, elevation) = (-yaw, pitch)``, azimuth in (-180, 180]."""
    azimuth = -float(yaw) % 360.0
    return (azimuth - 360.0 if azimuth > 180.0 else azimuth), float(pitch)


def _rotation(yaw_degrees: float, pitch_degrees: float) -> np.ndarray:
    """``R_y(yaw)·R_x(pitch)`` in the camera frame x = image-right, y = image-down, z = forward."""
    yaw, pitch = math.radians(yaw_degrees), math.radians(pitch_degrees)
    rot_y = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    rot_x = np.array(
        [[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]]
    )
    return rot_y @ rot_x


def _camera_rays(out_height: int, out_width: int, fov: float, pixel_centres: bool) -> np.ndarray:
    """Rays ``(3, out_height * out_width)`` through the image plane z = 1, row-major; ``fov`` is vertical."""
    half_height = math.tan(math.radians(fov) / 2)
    half_width = half_height * out_width / out_height
    offset = 0.5 if pixel_centres else 0.0
    xs = -half_width + 2 * half_width / out_width * (np.arange(out_width) + offset)
    ys = -half_height + 2 * half_height / out_height * (np.arange(out_height) + offset)
    grid_x, grid_y = np.meshgrid(xs, ys)
    return np.stack([grid_x.ravel(), grid_y.ravel(), np.ones(grid_x.size)])


def _original_angles(x, y, z, in_height: int, in_width: int) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude (radians, latitude positive down) exactly as the original computes them: by
    linear interpolation in lookup tables of ``-cos`` (2W + 1 entries) and ``tan`` (2H + 1 entries, ends pulled
    in by half a step and extrapolated linearly beyond them)."""
    acos_steps, atan_steps = 2 * in_width, 2 * in_height
    acos_step, atan_step = math.pi / acos_steps, math.pi / atan_steps
    acos_table = -np.cos(np.linspace(0, math.pi, acos_steps + 1))
    atan_table = np.tan(np.linspace(-math.pi / 2, math.pi / 2, atan_steps + 1))
    atan_table[0] = math.tan(atan_step / 2 - math.pi / 2)
    atan_table[-1] = math.tan(-atan_step / 2 + math.pi / 2)

    norm_xz = np.sqrt(x**2 + z**2)
    regular = norm_xz >= 10e-10
    latitude = np.where(y > 0, math.pi / 2, -math.pi / 2)
    longitude = np.zeros_like(x)

    ratio = y[regular] / norm_xz[regular]
    index = np.interp(ratio, atan_table, np.arange(atan_steps + 1.0))
    below, above = ratio < atan_table[0], ratio > atan_table[-1]  # scipy's interp1d "extrapolate"
    index[below] = (ratio[below] - atan_table[0]) / (atan_table[1] - atan_table[0])
    index[above] = atan_steps - 1 + (ratio[above] - atan_table[-2]) / (atan_table[-1] - atan_table[-2])
    latitude[regular] = index * atan_step - math.pi / 2

    cosine = np.clip(-z[regular] / norm_xz[regular], -1.0, 1.0)
    angle = np.interp(cosine, acos_table, np.arange(acos_steps + 1.0)) * acos_step
    longitude[regular] = np.where(x[regular] < 0, -angle, angle)
    return longitude, latitude


def fov_sampling_grid(
    in_height: int,
    in_width: int,
    yaw: float,
    pitch: float,
    fov: float = 90.0,
    size: int | tuple[int, int] = 224,
    mode: str = "corrected",
) -> tuple[np.ndarray, np.ndarray]:
    """Source pixel coordinates of every output pixel of a field-of-view crop (cached per view).

    Returns:
        ``(source_x, source_y)``: read-only float64 ``(out_height, out_width)`` 0-based column / row in the
        equirect frame, for bilinear sampling. ``mode="original"`` gives the original's coordinates (rays
        through pixel corners, lookup-table trigonometry, the MATLAB-style +1 and clamping to
        ``[1, W - 1] x [1, H - 1]``; the original hard-codes W x H = 896 x 448, the size it always resized to,
        where we use the frame's own size); ``mode="corrected"`` rays through pixel centres and exact
        pixel-centre mapping, with columns to be wrapped around the ±180° seam.
    """
    if mode not in ("corrected", "original"):
        raise ValueError(f"mode: expected 'corrected' or 'original', got {mode!r}")
    if isinstance(size, (int, np.integer)):
        out_height = out_width = int(size)
    elif len(size) == 2:
        out_height, out_width = int(size[0]), int(size[1])
    else:
        raise ValueError(f"size: expected an int or (height, width), got {size}")
    if min(out_height, out_width) < 1:
        raise ValueError(f"size: expected a positive int or (height, width), got {size}")
    if not 0 < fov < 180:
        raise ValueError(f"fov: expected degrees in (0, 180), got {fov}")
    if not (math.isfinite(yaw) and math.isfinite(pitch)):
        raise ValueError(f"yaw/pitch: expected finite degrees, got yaw={yaw}, pitch={pitch}")
    return _cached_grid(
        int(in_height), int(in_width), float(yaw), float(pitch), float(fov), out_height, out_width, mode
    )


@lru_cache(maxsize=64)
def _cached_grid(
    in_height: int,
    in_width: int,
    yaw: float,
    pitch: float,
    fov: float,
    out_height: int,
    out_width: int,
    mode: str,
) -> tuple[np.ndarray, np.ndarray]:
    rays = _rotation(yaw, pitch) @ _camera_rays(out_height, out_width, fov, pixel_centres=mode == "corrected")
    x, y, z = rays
    if mode == "original":
        longitude, latitude = _original_angles(x, y, z, in_height, in_width)
        source_x = longitude / math.pi * (in_width / 2) + in_width / 2 + 1
        source_y = latitude / (math.pi / 2) * (in_height / 2) + in_height / 2 + 1
        source_x = np.clip(source_x, 1, in_width - 1)
        source_y = np.clip(source_y, 1, in_height - 1)
    else:
        longitude = np.arctan2(x, z)
        latitude = np.arctan2(y, np.sqrt(x**2 + z**2))
        source_x = (longitude + math.pi) / (2 * math.pi) * in_width - 0.5
        source_y = (latitude + math.pi / 2) / math.pi * in_height - 0.5
    source_x = source_x.reshape(out_height, out_width)
    source_y = source_y.reshape(out_height, out_width)
    source_x.flags.writeable = False
    source_y.flags.writeable = False
    return source_x, source_y


def _bilinear(frames: np.ndarray, source_x: np.ndarray, source_y: np.ndarray, wrap: bool) -> np.ndarray:
    """Sample ``frames`` ``(T, H, W, C)`` at float pixel coordinates; float32 ``(T, h, w, C)``.

    ``wrap``: columns wrap around (equirect seam) and rows clamp to the edge. Otherwise neighbours outside the
    frame count as black, like ``cv2.remap``'s default constant border.
    """
    _, height, width, _ = frames.shape
    return _apply_taps(frames, *_bilinear_taps(height, width, source_x, source_y, wrap))


def _bilinear_taps(
    height: int, width: int, source_x: np.ndarray, source_y: np.ndarray, wrap: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear sampling of a ``(height, width)`` image at float pixel coordinates ``(...)`` as four taps: flat pixel
    indices ``(4, ...)`` and float32 weights ``(4, ..., 1)`` (0 for a neighbour outside the frame without ``wrap``).
    A fixed view samples every frame alike, so the taps can be computed once (`fov_to_equirect`)."""
    x0 = np.floor(source_x).astype(np.int64)
    y0 = np.floor(source_y).astype(np.int64)
    fx = (source_x - x0).astype(np.float32)[..., None]
    fy = (source_y - y0).astype(np.float32)[..., None]
    indices, weights = [], []
    for dy, weight_y in ((0, 1 - fy), (1, fy)):
        for dx, weight_x in ((0, 1 - fx), (1, fx)):
            xs, ys = x0 + dx, y0 + dy
            if wrap:
                xs, ys, inside = np.mod(xs, width), np.clip(ys, 0, height - 1), None
            else:
                inside = (xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)
                xs, ys = np.clip(xs, 0, width - 1), np.clip(ys, 0, height - 1)
            weight = weight_x * weight_y
            if inside is not None:
                weight = weight * inside[..., None]
            indices.append(ys * width + xs)
            weights.append(weight)
    return np.stack(indices), np.stack(weights)


def _apply_taps(frames: np.ndarray, indices: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``frames`` ``(T, H, W, C)`` sampled with `_bilinear_taps` -> float32 ``(T, ..., C)``."""
    flat = frames.reshape(frames.shape[0], -1, frames.shape[-1])
    result = np.zeros((frames.shape[0], *indices.shape[1:], frames.shape[-1]), dtype=np.float32)
    for tap, weight in zip(indices, weights):
        result += np.take(flat, tap, axis=1) * weight
    return result


def equirect_to_fov(
    frames: np.ndarray,
    yaw: float,
    pitch: float,
    fov: float = 90.0,
    size: int | tuple[int, int] = 224,
    mode: str = "corrected",
) -> np.ndarray:
    """Rectilinear (gnomonic) field-of-view crop of equirectangular frames, in the projection's own angles.

    The view looks at equirect longitude ``yaw`` (degrees from the panorama centre, positive toward the image
    right) and latitude ``pitch`` (degrees up). For ambisonic directions use :func:`fov_crop`
    (``yaw = -azimuth``).

    Args:
        frames: ``(H, W, C)`` or ``(T, H, W, C)`` equirectangular frames (2:1), uint8 or float.
        fov: vertical field of view in degrees; the horizontal one follows from the output aspect ratio.
        size: output ``int`` (square) or ``(height, width)``.
        mode: ``"corrected"`` (default): rays through pixel centres, exact angles, wrap at the ±180° seam.
            ``"original"``: the original ``project()`` (rays through pixel corners, lookup-table angles,
            1-px MATLAB shift, clamping instead of wrapping; bilinear weights are exact where ``cv2.remap``
            rounds them to 1/32 px).

    Returns:
        the crops, ``(h, w, C)`` or ``(T, h, w, C)``; uint8 input gives rounded uint8, float input float32.
    """
    frames = np.asarray(frames)
    single = frames.ndim == 3
    if single:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] < 1 or 0 in frames.shape:
        raise ValueError(f"frames: expected (H, W, C) or (T, H, W, C), got shape {frames.shape}")
    height, width = frames.shape[1:3]
    if abs(width - 2 * height) > 0.01 * width:
        raise ValueError(f"frames: expected equirectangular 2:1 frames (W = 2H), got H={height}, W={width}")
    source_x, source_y = fov_sampling_grid(height, width, yaw, pitch, fov, size, mode)
    crops = _bilinear(frames, source_x, source_y, wrap=mode == "corrected")
    if frames.dtype == np.uint8:
        crops = np.clip(np.rint(crops), 0, 255).astype(np.uint8)
    return crops[0] if single else crops


def fov_crop(
    frames: np.ndarray,
    azimuth: float,
    elevation: float,
    fov: float = 90.0,
    size: int | tuple[int, int] = 224,
    mode: str = "corrected",
) -> np.ndarray:
    """Field-of-view crop looking at an ambisonic direction (public convention: azimuth counter-clockwise
    from the front toward the left, elevation up; the equirect centre is the front and image-left is
    +azimuth). Same as :func:`equirect_to_fov` with ``yaw = -azimuth``, ``pitch = elevation``."""
    yaw, pitch = direction_to_yaw_pitch(azimuth, elevation)
    return equirect_to_fov(frames, yaw, pitch, fov=fov, size=size, mode=mode)


def fov_to_equirect(
    frame: np.ndarray,
    azimuth: float,
    elevation: float,
    fov: float = 90.0,
    size: tuple[int, int] = (960, 1920),
    background: np.ndarray | None = None,
) -> np.ndarray:
    """Paint a rectilinear field-of-view frame onto an equirect canvas where the camera looked.

    The inverse of :func:`fov_crop`'s pinhole model: every equirect pixel's direction is expressed in the
    camera's frame (front = ``(azimuth, elevation)``, left horizontal, no roll); those in front of the camera and
    inside its horizontal ``fov`` (degrees; the vertical one follows the frame's aspect) take the bilinear
    sample of ``frame`` there, the rest keep ``background`` (black by default).

    Args:
        frame: uint8 ``(h, w, 3)``.
        azimuth, elevation: the camera direction in degrees (public convention).
        size: ``(H, W)`` of the equirect canvas (2:1 for 360° players).
        background: uint8 ``(H, W, 3)`` to paint on, or None for black.

    Returns:
        uint8 ``(H, W, 3)``.
    """
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"frame: expected uint8 (h, w, 3), got {frame.dtype} {frame.shape}")
    height, width = size
    painted, indices, weights = _fov_paint_taps(
        frame.shape[0], frame.shape[1], float(azimuth), float(elevation), float(fov), (height, width)
    )
    canvas = np.zeros((height, width, 3), np.uint8) if background is None else np.array(background, np.uint8)
    if canvas.shape != (height, width, 3):
        raise ValueError(f"background: expected uint8 {(height, width, 3)}, got {canvas.shape}")
    sampled = _apply_taps(frame[None], indices, weights)[0]
    canvas.reshape(-1, 3)[painted] = np.clip(np.rint(sampled), 0, 255).astype(np.uint8)
    return canvas


@lru_cache(maxsize=2)
def _cached_equirect_directions(height: int, width: int) -> np.ndarray:
    rays = equirect_directions(height, width)
    rays.setflags(write=False)
    return rays


@lru_cache(maxsize=8)  # a fixed camera paints every frame alike; a moving one has a new view each frame
def _fov_paint_taps(
    frame_height: int, frame_width: int, azimuth: float, elevation: float, fov: float, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The flat canvas indices the frame covers and their `_bilinear_taps` into the frame."""
    source_x, source_y, visible = _fov_source_pixels(frame_height, frame_width, azimuth, elevation, fov, size)
    indices, weights = _bilinear_taps(
        frame_height, frame_width, source_x[visible], source_y[visible], wrap=False
    )
    return np.flatnonzero(visible), indices, weights


def _fov_source_pixels(
    frame_height: int, frame_width: int, azimuth: float, elevation: float, fov: float, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame pixel coordinates ``(H, W)`` seen by each equirect pixel, and where the frame covers it."""
    rays = _cached_equirect_directions(*size)
    front, left, up = viewer_basis(azimuth, elevation)  # the camera's frame: no roll, left kept horizontal
    depth, along_left, along_up = rays @ front, rays @ left, rays @ up
    focal = frame_width / 2 / math.tan(math.radians(fov) / 2)  # pixels; square pixels
    with np.errstate(divide="ignore", invalid="ignore"):
        source_x = frame_width / 2 - focal * along_left / depth - 0.5  # image-right is the viewer's right
        source_y = frame_height / 2 - focal * along_up / depth - 0.5
    visible = (
        (depth > 0)
        & (source_x >= -0.5)
        & (source_x <= frame_width - 0.5)
        & (source_y >= -0.5)
        & (source_y <= frame_height - 0.5)
    )
    for array in (source_x, source_y, visible):
        array.setflags(write=False)
    return source_x, source_y, visible
