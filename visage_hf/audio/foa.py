"""First-order ambisonics (FOA) core: conventions, encoding, rotation, virtual microphones, energy maps.

Internally FOA is **AmbiX**: ACN channel order ``(W, Y, Z, X)`` with SN3D normalisation, shape
``(4, samples)`` (channel-first). A plane wave of signal ``s`` from unit direction ``u = (x front, y left,
z up)`` is ``W = s, Y = s·u_y, Z = s·u_z, X = s·u_x``. FuMa and N3D exist only as converters.

Angles are public-convention degrees (see :mod:`visage_hf.directions`): azimuth counter-clockwise from the
front toward the left, elevation up. Functions accept float32 or float64 and compute in float64. Functions
returning audio return float32; analysis results (spherical harmonics, energy maps, intensity, directions)
are float64.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..directions import check_elevation, direction_to_vector, vector_to_direction
from .io import check_foa, check_mono, check_sample_rate

__all__ = [
    "PATTERNS",
    "active_intensity",
    "ambix_to_fuma",
    "decode_mono",
    "decode_stereo",
    "direction_from_energy_map",
    "direction_from_intensity",
    "encode",
    "energy_map",
    "equal_area_resample",
    "fuma_to_ambix",
    "grid_sh_matrix",
    "interpolate_directions",
    "n3d_to_sn3d",
    "rotate",
    "rotate_direction",
    "rotation_matrix",
    "sh_matrix",
    "sn3d_to_n3d",
    "spherical_grid",
    "virtual_microphone",
]

SQRT2 = np.sqrt(2.0)
SQRT3 = np.sqrt(3.0)
# ACN index of each Cartesian first-order component: X is channel 3, Y channel 1, Z channel 2.
XYZ_CHANNELS = [3, 1, 2]

# First-order pattern p: gain (1 − p) + p·cos(angle). Values for the named hyper/super-cardioids are the
# textbook maximum-directivity / maximum front-to-back choices.
PATTERNS = {
    "omni": 0.0,
    "subcardioid": 0.3,
    "cardioid": 0.5,
    "supercardioid": 0.634,
    "hypercardioid": 0.75,
    "figure8": 1.0,
    "figure-8": 1.0,
}
_SH_NORMALIZATIONS = ("sn3d", "n3d", "original")
_CHUNK_SAMPLES = 1 << 20  # samples converted to float64 at a time by the energy map / intensity


def _foa64(foa, allow_batch: bool = False) -> np.ndarray:
    return check_foa(foa, allow_batch=allow_batch).astype(np.float64, copy=False)


# ----------------------------------------------------------------------------- channel conventions


def ambix_to_fuma(foa) -> np.ndarray:
    """AmbiX ``(W, Y, Z, X)`` SN3D -> FuMa ``(W/√2, X, Y, Z)``. Shape ``(..., 4, samples)``, float32."""
    foa = _foa64(foa, allow_batch=True)
    w, y, z, x = np.moveaxis(foa, -2, 0)
    return np.stack([w / SQRT2, x, y, z], axis=-2).astype(np.float32)


def fuma_to_ambix(fuma) -> np.ndarray:
    """FuMa ``(W, X, Y, Z)`` with W at −3 dB -> AmbiX ``(√2·W, Y, Z, X)``. Shape ``(..., 4, samples)``, float32."""
    fuma = check_foa(fuma, name="fuma", allow_batch=True).astype(np.float64, copy=False)
    w, x, y, z = np.moveaxis(fuma, -2, 0)
    return np.stack([w * SQRT2, y, z, x], axis=-2).astype(np.float32)


def sn3d_to_n3d(foa) -> np.ndarray:
    """SN3D -> N3D (first-order channels ×√3; W unchanged), ACN order kept. ``(..., 4, samples)``, float32."""
    gains = np.array([1.0, SQRT3, SQRT3, SQRT3])[:, None]
    return (_foa64(foa, allow_batch=True) * gains).astype(np.float32)


def n3d_to_sn3d(foa) -> np.ndarray:
    """N3D -> SN3D (first-order channels ÷√3; W unchanged), ACN order kept. ``(..., 4, samples)``, float32."""
    gains = np.array([1.0, 1 / SQRT3, 1 / SQRT3, 1 / SQRT3])[:, None]
    return (_foa64(foa, allow_batch=True) * gains).astype(np.float32)


# ----------------------------------------------------------------------------- encoding


def _slerp(start: np.ndarray, end: np.ndarray, fraction: np.ndarray) -> np.ndarray:
    """Spherical linear interpolation between unit vectors ``(m, 3)`` at fractions ``(m,)``."""
    cosine = np.clip(np.sum(start * end, axis=-1), -1.0, 1.0)
    angle = np.arccos(cosine)
    sine = np.sin(angle)
    nearly_equal = sine < 1e-9
    safe_sine = np.where(nearly_equal, 1.0, sine)
    weight_start = np.where(nearly_equal, 1.0 - fraction, np.sin((1.0 - fraction) * angle) / safe_sine)
    weight_end = np.where(nearly_equal, fraction, np.sin(fraction * angle) / safe_sine)
    out = weight_start[:, None] * start + weight_end[:, None] * end
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def interpolate_directions(azimuth, elevation, times, query_times) -> np.ndarray:
    """Unit vectors ``(m, 3)`` of a direction trajectory at ``query_times`` ``(m,)`` seconds.

    The trajectory is ``(azimuth[k], elevation[k])`` at ``times[k]`` (strictly increasing). Between key
    frames the direction moves along the great circle at constant angular speed (slerp), so the path crosses
    the ±180° seam and passes over the poles the short way; before the first / after the last key frame it
    holds. Consecutive key frames must not be exactly opposite (the great circle would be undefined).
    """
    times = np.atleast_1d(np.asarray(times, dtype=np.float64))
    azimuth, elevation = np.broadcast_arrays(np.atleast_1d(azimuth), np.atleast_1d(elevation))
    if azimuth.shape == (1,) and times.ndim == 1:  # a fixed direction given with several times
        azimuth, elevation = np.broadcast_to(azimuth, times.shape), np.broadcast_to(elevation, times.shape)
    if times.ndim != 1 or azimuth.shape != times.shape:
        raise ValueError(
            f"expected one time per trajectory direction, got {azimuth.shape[0]} direction(s) and times of shape {times.shape}"
        )
    if not np.isfinite(times).all() or np.any(np.diff(times) <= 0):
        raise ValueError("times: expected finite, strictly increasing seconds")
    keys = direction_to_vector(azimuth, elevation)
    query_times = np.asarray(query_times, dtype=np.float64)
    if len(times) == 1:
        return np.broadcast_to(keys[0], (*query_times.shape, 3)).copy()
    if np.any(np.sum(keys[:-1] * keys[1:], axis=-1) < -1.0 + 1e-12):
        raise ValueError("consecutive trajectory directions are opposite; add an intermediate key frame")
    segment = np.clip(np.searchsorted(times, query_times, side="right") - 1, 0, len(times) - 2)
    fraction = (query_times - times[segment]) / (times[segment + 1] - times[segment])
    return _slerp(keys[segment], keys[segment + 1], np.clip(fraction, 0.0, 1.0))


def encode(mono, azimuth, elevation, sample_rate: int | None = None, times=None) -> np.ndarray:
    """Encode a mono signal as a plane wave into AmbiX FOA ``(4, samples)`` float32.

    Args:
        mono: ``(samples,)`` float signal.
        azimuth, elevation: degrees. Scalars give a fixed direction. Arrays ``(frames,)`` together with
            ``times`` ``(frames,)`` (seconds, strictly increasing) and ``sample_rate`` give a moving source:
            the direction at each sample is interpolated on the sphere (see :func:`interpolate_directions`).
        sample_rate: Hz, needed for a trajectory.
        times: key-frame times in seconds for a trajectory.
    """
    mono = check_mono(mono).astype(np.float64, copy=False)
    moving = times is not None or np.ndim(azimuth) > 0 or np.ndim(elevation) > 0
    if not moving:
        gains = np.concatenate([[1.0], direction_to_vector(azimuth, elevation)])
        return (gains[[0, 2, 3, 1]][:, None] * mono).astype(np.float32)
    if times is None or sample_rate is None:
        raise ValueError("a trajectory (array azimuth/elevation) needs times= (seconds) and sample_rate=")
    sample_rate = check_sample_rate(sample_rate)
    vectors = interpolate_directions(azimuth, elevation, times, np.arange(mono.shape[0]) / sample_rate)
    x, y, z = vectors.T
    return np.stack([mono, y * mono, z * mono, x * mono]).astype(np.float32)


# ----------------------------------------------------------------------------- rotation


def _rotation_about_z(degrees: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _rotation_about_y(degrees: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rotation_about_x(degrees: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_matrix(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Sound-field rotation ``(3, 3)`` acting on (x, y, z) direction vectors: ``R = Rx(roll)·Ry(pitch)·Rz(yaw)``.

    Right-hand rotations in degrees (docs/original-implementation.md §E4.4): positive yaw (about z) moves sources
    toward the left; positive pitch (about y = left) tips the front down; positive roll (about x = front)
    lifts the left side up. Yaw is applied first. To make a camera direction ``(az, el)`` the new front,
    use ``yaw=-az, pitch=el``.
    """
    for name, value in (("yaw", yaw), ("pitch", pitch), ("roll", roll)):
        if not np.isfinite(value) or np.ndim(value) != 0:
            raise ValueError(f"{name}: expected a finite number of degrees, got {value!r}")
    return _rotation_about_x(roll) @ _rotation_about_y(pitch) @ _rotation_about_z(yaw)


def rotate(foa, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """Rotate an FOA sound field exactly: ``(X', Y', Z') = R·(X, Y, Z)``, W unchanged.

    Shape ``(4, samples)`` or ``(batch, 4, samples)``, float32. Consistent with :func:`rotate_direction`:
    ``rotate(encode(s, d)) == encode(s, R·d)``. The original's augmentation ``Y' = −X, X' = Y`` is ``yaw=-90``.
    """
    matrix = rotation_matrix(yaw, pitch, roll)
    foa = _foa64(foa, allow_batch=True)
    out = foa.copy()
    out[..., XYZ_CHANNELS, :] = np.einsum("ij,...jn->...in", matrix, foa[..., XYZ_CHANNELS, :])
    return out.astype(np.float32)


def rotate_direction(azimuth, elevation, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0):
    """Where a source at ``(azimuth, elevation)`` ends up after :func:`rotate` with the same angles."""
    vectors = direction_to_vector(azimuth, elevation) @ rotation_matrix(yaw, pitch, roll).T
    return vector_to_direction(vectors)


# ----------------------------------------------------------------------------- virtual microphones


def _pattern_value(pattern) -> float:
    if isinstance(pattern, str):
        if pattern not in PATTERNS:
            raise ValueError(
                f"pattern: expected a number in [0, 1] or one of {sorted(PATTERNS)}, got {pattern!r}"
            )
        return PATTERNS[pattern]
    if not np.isfinite(pattern) or not 0.0 <= float(pattern) <= 1.0:
        raise ValueError(
            f"pattern: expected a number in [0, 1] (0 omni, 0.5 cardioid, 1 figure-8), got {pattern!r}"
        )
    return float(pattern)


def _beam(foa, azimuth, elevation, omni_gain: float, dipole_gain: float) -> np.ndarray:
    """``omni_gain·W + dipole_gain·u·(X, Y, Z)`` toward each direction; float32 ``(..., mics..., samples)``."""
    foa = _foa64(foa, allow_batch=True)
    look = direction_to_vector(azimuth, elevation)  # (mics..., 3) as (x, y, z)
    weights = np.concatenate(
        [np.full((*look.shape[:-1], 1), omni_gain), dipole_gain * look[..., [1, 2, 0]]], axis=-1
    )  # ACN (W, Y, Z, X)
    out = np.einsum("mc,...cn->...mn", weights.reshape(-1, 4), foa)
    return out.reshape(*foa.shape[:-2], *weights.shape[:-1], foa.shape[-1]).astype(np.float32)


def virtual_microphone(foa, azimuth, elevation, pattern: float | str = "cardioid") -> np.ndarray:
    """Point a first-order virtual microphone at ``(azimuth, elevation)``.

    For a plane wave at angle α from the look direction the gain is ``(1 − p) + p·cos α``: ``p = 0`` omni,
    0.5 cardioid (unit gain on axis, 0 behind), 1 figure-8; ``pattern`` may also be a name in ``PATTERNS``.
    The output is ``(1 − p)·W + p·u·(X, Y, Z)`` (SN3D).

    Args:
        foa: ``(4, samples)`` or ``(batch, 4, samples)``.
        azimuth, elevation: degrees, scalars or arrays ``(mics,)``.

    Returns:
        float32 ``(samples,)`` for a scalar direction, ``(mics, samples)`` for arrays (``batch`` first if any).
    """
    p = _pattern_value(pattern)
    return _beam(foa, azimuth, elevation, 1.0 - p, p)


def decode_mono(foa, azimuth, elevation, mode: str = "corrected") -> np.ndarray:
    """The paper's "decoded mono": a cardioid toward the camera, float32 ``(samples,)``.

    ``mode="corrected"`` (default): unit-gain cardioid ``½·(W + u·(X, Y, Z))`` (a plane wave from the camera
    comes out at its own level). ``mode="original"``: exactly the original's ``prepare_test.ambi2mono``,
    ``W + cos el·cos az·X + cos el·sin az·Y + sin el·Z`` (on-axis gain 2). The original fed it the mirrored
    azimuth ``2a − 179``; to reproduce its numbers pass
    ``directions.indices_to_direction(e, a, mode="original")`` as ``(azimuth, elevation)``.
    """
    if mode == "corrected":
        return _beam(foa, azimuth, elevation, 0.5, 0.5)
    if mode == "original":
        return _beam(foa, azimuth, elevation, 1.0, 1.0)
    raise ValueError(f"mode: expected 'corrected' or 'original', got {mode!r}")


def decode_stereo(
    foa, azimuth: float = 0.0, elevation: float = 0.0, spread: float = 90.0, pattern: float | str = "cardioid"
) -> np.ndarray:
    """A stereo pair of virtual microphones, float32 ``(2, samples)`` = (left, right).

    The pair looks at ``(azimuth, elevation)``: the left mic is turned ``spread`` degrees to the listener's
    left of the look direction, the right mic ``spread`` to the right, both in the tilted horizontal plane
    (default: cardioids at ±90°, a classic coincident pair).
    """
    look = rotation_matrix(yaw=azimuth) @ rotation_matrix(pitch=-check_elevation(elevation))
    ears = direction_to_vector(np.array([spread, -spread], dtype=np.float64), 0.0) @ look.T
    mic_azimuth, mic_elevation = vector_to_direction(ears)
    return virtual_microphone(foa, mic_azimuth, mic_elevation, pattern)


# ----------------------------------------------------------------------------- spherical harmonics grid


def spherical_grid(resolution: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """The original's equirectangular grid: ``(azimuths (W,), elevations (H,))`` in degrees.

    Columns run left to right from ``180 − resolution`` down to ``−180`` (image-left = left, like an
    equirect video; the ``−180`` column is the back seam), rows top to bottom from ``90 − resolution`` down
    to ``−90``. At 2°: ``H, W = 90, 180``, column 89 = front, 44 = left (+90°), 134 = right; row 0 = +88°.
    """
    if not (np.isfinite(resolution) and resolution > 0 and float(180.0 / resolution).is_integer()):
        raise ValueError(f"resolution: expected degrees that divide 180 (e.g. 1, 2, 5), got {resolution!r}")
    rows = round(180.0 / resolution)
    azimuths = 180.0 - resolution * np.arange(1, 2 * rows + 1)
    elevations = 90.0 - resolution * np.arange(1, rows + 1)
    return azimuths, elevations


def sh_matrix(azimuth, elevation, normalization: str = "sn3d") -> np.ndarray:
    """Real first-order spherical harmonics in ACN order ``(..., 4)`` = (W, Y, Z, X), float64.

    ``normalization``: ``"sn3d"`` ``(1, cos el·sin az, sin el, cos el·cos az)``; ``"n3d"`` (first order ×√3);
    ``"original"`` reproduces the original energy map's normalisation slip (√2 on Y and X, 1 on Z:
    docs/original-implementation.md §6.2 and §9 B4).
    """
    if normalization not in _SH_NORMALIZATIONS:
        raise ValueError(f"normalization: expected one of {_SH_NORMALIZATIONS}, got {normalization!r}")
    x, y, z = np.moveaxis(direction_to_vector(azimuth, elevation), -1, 0)
    gains = {"sn3d": (1.0, 1.0, 1.0), "n3d": (SQRT3, SQRT3, SQRT3), "original": (SQRT2, 1.0, SQRT2)}
    gain_y, gain_z, gain_x = gains[normalization]
    return np.stack([np.ones_like(x), gain_y * y, gain_z * z, gain_x * x], axis=-1)


@lru_cache(maxsize=8)
def _cached_grid_sh_matrix(resolution: float, normalization: str) -> np.ndarray:
    azimuths, elevations = spherical_grid(resolution)
    matrix = sh_matrix(azimuths[None, :], elevations[:, None], normalization)
    matrix.setflags(write=False)
    return matrix


def grid_sh_matrix(resolution: float = 2.0, normalization: str = "sn3d") -> np.ndarray:
    """Spherical harmonics on :func:`spherical_grid`: read-only float64 ``(H, W, 4)``."""
    return _cached_grid_sh_matrix(float(resolution), normalization)


# ----------------------------------------------------------------------------- energy maps


def _window_length(sample_rate, window_seconds, total: int) -> int:
    if window_seconds is None:
        return total
    if sample_rate is None:
        raise ValueError("window_seconds needs sample_rate=")
    sample_rate = check_sample_rate(sample_rate)
    if not (np.isfinite(window_seconds) and window_seconds > 0):
        raise ValueError(f"window_seconds: expected a positive number, got {window_seconds!r}")
    length = round(sample_rate * window_seconds)
    if length < 1 or length > total:
        raise ValueError(
            f"window_seconds: expected a window between 1 sample and the clip length ({total} samples), "
            f"got {window_seconds} s = {length} samples"
        )
    return length


def _window_moments(foa: np.ndarray, length: int) -> np.ndarray:
    """Second-moment matrices ``(n_windows, 4, 4)`` of non-overlapping windows of ``length`` samples.

    A trailing partial window is dropped. The input is converted to float64 a chunk at a time, so memory
    stays bounded (about 32 MB) however long the recording is.
    """
    count = foa.shape[-1] // length
    moments = np.empty((count, 4, 4))
    if length >= _CHUNK_SAMPLES:  # long windows: accumulate each one over sample chunks
        for index in range(count):
            total = np.zeros((4, 4))
            for start in range(index * length, (index + 1) * length, _CHUNK_SAMPLES):
                part = foa[:, start : min(start + _CHUNK_SAMPLES, (index + 1) * length)].astype(np.float64)
                total += part @ part.T
            moments[index] = total / length
        return moments
    per_chunk = _CHUNK_SAMPLES // length  # short windows: many at once, one batched product
    for first in range(0, count, per_chunk):
        last = min(first + per_chunk, count)
        group = foa[:, first * length : last * length].astype(np.float64)
        group = group.reshape(4, last - first, length).transpose(1, 0, 2)
        moments[first:last] = group @ group.transpose(0, 2, 1) / length
    return moments


def _second_moments(foa, sample_rate, window_seconds) -> tuple[np.ndarray, bool]:
    foa = check_foa(foa)
    length = _window_length(sample_rate, window_seconds, foa.shape[-1])
    return _window_moments(foa, length), window_seconds is not None


def energy_map(
    foa,
    sample_rate: int | None = None,
    window_seconds: float | None = None,
    resolution: float = 2.0,
    normalization: str = "sn3d",
) -> np.ndarray:
    """Audio energy map: RMS over time of the grid decode ``g·foa(t)`` at every grid point, float64.

    Computed as ``sqrt(gᵀ C g)`` from the 4×4 second-moment matrix ``C`` of each window — identical to decoding
    every sample at every grid point (what the original does) at a tiny fraction of the time and memory. With
    ``normalization="sn3d"`` each grid point is a ``1 + cos α`` beam (a cardioid with on-axis gain 2, like
    the original's weights); ``"original"`` reproduces the original's √2 slip (needed for paper-comparable
    CC/AUC; it biases peaks toward the horizon). Grid: :func:`spherical_grid`.

    Args:
        foa: ``(4, samples)``.
        sample_rate, window_seconds: if given, maps per non-overlapping window (the paper uses 1 s and
            0.2 s, like the original's ``view(-1, sr * w, 4)``). A trailing partial window is dropped (the
            original instead requires clips padded to a whole number of windows).

    Returns:
        ``(H, W)`` for the whole clip, or ``(n_windows, H, W)`` with windows.
    """
    moments, windowed = _second_moments(foa, sample_rate, window_seconds)
    grid = grid_sh_matrix(resolution, normalization)
    # gᵀCg is linear in the 10 distinct entries of the symmetric C: one (windows, 10) x (10, points) product.
    first, second = np.triu_indices(4)
    multiplicity = np.where(first == second, 1.0, 2.0)
    pair_products = (grid[..., first] * grid[..., second]).reshape(-1, len(first))
    power = (moments[:, first, second] * multiplicity) @ pair_products.T
    maps = np.sqrt(np.maximum(power, 0.0)).reshape(-1, *grid.shape[:2])
    return maps if windowed else maps[0]


@lru_cache(maxsize=8)
def _equal_area_positions(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, positions = [], []
    for row in range(height):
        count = int(np.round(width * np.sin(np.pi * (row + 0.5) / height)))
        rows.append(np.full(count, row))
        positions.append(np.arange(count) * (width - 0.5 * (width / count)) / count)
    rows, positions = np.concatenate(rows), np.concatenate(positions)
    # Positions never reach the last column (max < width − 1), so the original's period=360 never wraps.
    left = np.minimum(np.floor(positions).astype(np.int64), width - 2)
    return rows, left, positions - left


def equal_area_resample(maps) -> np.ndarray:
    """The original's ``er_sphere_sample``: resample each grid row to equal-area density, float64.

    Row ``r`` of ``H`` keeps ``S_r = round(W·sin(π(r + 0.5)/H))`` points at column positions
    ``k·(W − W/(2 S_r))/S_r`` (linear interpolation along the row); rows are concatenated. For the 90×180 map
    that is 10,312 values (rows 3, 9, 16, 22, 28, 34, ...). Note the implied colatitude ``(r + 0.5)·180/H``
    is half a row off the grid's row latitudes — kept for comparability with the paper.

    Args:
        maps: ``(H, W)`` or ``(n, H, W)``.

    Returns:
        ``(points,)`` or ``(n, points)``.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim not in (2, 3) or maps.shape[-1] < 2:
        raise ValueError(f"expected an energy map of shape (H, W) or (n, H, W), got shape {maps.shape}")
    rows, left, fraction = _equal_area_positions(*maps.shape[-2:])
    return maps[..., rows, left] * (1.0 - fraction) + maps[..., rows, left + 1] * fraction


# ----------------------------------------------------------------------------- direction estimates


# A map whose range is below this share of its peak (or all zero) is flat: it points nowhere.
_FLAT_MAP_RANGE = 1e-9


def direction_from_energy_map(maps):
    """Grid direction ``(azimuth, elevation)`` degrees of each map's maximum (:func:`spherical_grid` layout).

    ``maps`` ``(H, W)`` gives floats; ``(n, H, W)`` gives arrays ``(n,)``. The resolution is inferred from ``H``.
    A flat map (silence: every cell equal) has no maximum: its direction is ``(nan, nan)``, never a grid cell.
    """
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim not in (2, 3) or maps.shape[-1] != 2 * maps.shape[-2]:
        raise ValueError(f"expected energy maps of shape (H, 2H) or (n, H, 2H), got shape {maps.shape}")
    azimuths, elevations = spherical_grid(180.0 / maps.shape[-2])
    cells = maps.reshape(-1, maps.shape[-2] * maps.shape[-1])
    row, column = np.unravel_index(cells.argmax(axis=-1), maps.shape[-2:])
    flat = np.ptp(cells, axis=-1) <= _FLAT_MAP_RANGE * np.max(np.abs(cells), axis=-1)
    found_azimuth = np.where(flat, np.nan, azimuths[column])
    found_elevation = np.where(flat, np.nan, elevations[row])
    if maps.ndim == 2:
        return float(found_azimuth[0]), float(found_elevation[0])
    return found_azimuth, found_elevation


def active_intensity(foa, sample_rate: int | None = None, window_seconds: float | None = None) -> np.ndarray:
    """Time-averaged active intensity ``mean_t W(t)·(X, Y, Z)(t)``, float64 ``(3,)`` or ``(n_windows, 3)``.

    It points toward the source of a plane wave. Windows as in :func:`energy_map`.
    """
    moments, windowed = _second_moments(foa, sample_rate, window_seconds)
    intensity = moments[:, 0, XYZ_CHANNELS]
    return intensity if windowed else intensity[0]


def direction_from_intensity(foa, sample_rate: int | None = None, window_seconds: float | None = None):
    """Direction ``(azimuth, elevation)`` degrees of the active intensity vector (per window if asked).

    Raises ``ValueError`` where the intensity is zero (silence, or a perfectly diffuse field).
    """
    intensity = active_intensity(foa, sample_rate, window_seconds)
    if np.any(np.all(intensity == 0.0, axis=-1)):
        raise ValueError("no net intensity (silent or diffuse sound field): the direction is undefined")
    return vector_to_direction(intensity)
