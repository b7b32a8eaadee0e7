"""Head-related impulse responses (HRIRs): a measured set, SOFA files, the shipped MIT KEMAR set, a spherical head.

* :class:`HRIRSet`: impulse responses ``(M, 2 ears, taps)`` measured at ``M`` directions, with nearest-direction
  lookup and polyphase resampling.
* :func:`load_sofa`: any SOFA file (AES69, ``SimpleFreeFieldHRIR``/``GeneralFIR``), read with h5py (no netCDF
  library needed).
* :func:`default_hrirs`: the default, which works offline on a plain ``pip install``: a compact copy of the
  **MIT KEMAR** "normal pinna" set shipped as package data (``visage_hf/audio/assets/mit_kemar_hrirs.npz``,
  derived by ``dataset_scripts/make_binaural_filters.py`` from the ``MIT_KEMAR_normal_pinna.sofa`` that Debian's
  libmysofa ships).
* :func:`spherical_head_hrirs`: a physical spherical-head model (Brown & Duda 1998), which needs no data.

The binaural renderer that uses them is :mod:`visage_hf.audio.binaural`.

MIT KEMAR data: Bill Gardner and Keith Martin, "HRTF Measurements of a KEMAR Dummy-Head Microphone", MIT
Media Lab Perceptual Computing Technical Report #280, 1994. Copyright 1994 MIT Media Laboratory; "provided
free with no restrictions on use, provided the authors are cited when the data is used in any research or
commercial application".
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..directions import (
    angular_distance,
    check_elevation,
    direction_to_vector,
    vector_to_direction,
    wrap_azimuth,
)
from .io import check_sample_rate, resample

__all__ = ["DEFAULT_HRIR_FILE", "HRIRSet", "default_hrirs", "load_sofa", "spherical_head_hrirs"]

DEFAULT_HRIR_FILE = Path(__file__).parent / "assets" / "mit_kemar_hrirs.npz"


@dataclass(frozen=True)
class HRIRSet:
    """Head-related impulse responses measured at ``M`` directions.

    Attributes:
        hrirs: float32 ``(M, 2, taps)``, ears in the order (left, right).
        azimuth: degrees ``(M,)`` in the public convention (counter-clockwise from the front, left positive).
        elevation: degrees ``(M,)``, up positive.
        sample_rate: Hz.
        name: where the set came from.
    """

    hrirs: np.ndarray
    azimuth: np.ndarray
    elevation: np.ndarray
    sample_rate: int
    name: str = ""

    def __post_init__(self):
        hrirs = np.asarray(self.hrirs)
        if hrirs.ndim != 3 or hrirs.shape[1] != 2 or hrirs.shape[0] == 0 or hrirs.shape[2] == 0:
            raise ValueError(f"hrirs: expected shape (directions, 2 ears, taps), got {hrirs.shape}")
        if not np.issubdtype(hrirs.dtype, np.floating) or not np.isfinite(hrirs).all():
            raise ValueError("hrirs: expected finite floating-point impulse responses")
        azimuth = wrap_azimuth(np.asarray(self.azimuth, dtype=np.float64).reshape(-1))
        elevation = np.asarray(check_elevation(np.asarray(self.elevation, dtype=np.float64).reshape(-1)))
        if azimuth.shape != (hrirs.shape[0],) or elevation.shape != (hrirs.shape[0],):
            raise ValueError(
                f"expected one azimuth and elevation per HRIR ({hrirs.shape[0]}), "
                f"got {azimuth.shape[0]} azimuths and {elevation.shape[0]} elevations"
            )
        object.__setattr__(self, "hrirs", hrirs.astype(np.float32, copy=False))
        object.__setattr__(self, "azimuth", azimuth)
        object.__setattr__(self, "elevation", elevation)
        object.__setattr__(self, "sample_rate", check_sample_rate(self.sample_rate))

    def __len__(self) -> int:
        return self.hrirs.shape[0]

    def nearest(self, azimuth, elevation) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the measured directions nearest to each query ``(n,)`` and their angular errors (degrees)."""
        queries = direction_to_vector(np.atleast_1d(azimuth), np.atleast_1d(elevation))
        measured = direction_to_vector(self.azimuth, self.elevation)
        index = np.argmax(queries @ measured.T, axis=-1)
        errors = angular_distance(
            np.atleast_1d(azimuth), np.atleast_1d(elevation), self.azimuth[index], self.elevation[index]
        )
        return index, np.atleast_1d(errors)

    def select(self, index) -> HRIRSet:
        """The subset at ``index`` (an index array)."""
        return HRIRSet(
            self.hrirs[index], self.azimuth[index], self.elevation[index], self.sample_rate, self.name
        )

    def resampled(self, sample_rate: int) -> HRIRSet:
        """The same set at another sample rate (polyphase resampling of every impulse response)."""
        sample_rate = check_sample_rate(sample_rate)
        if sample_rate == self.sample_rate:
            return self
        hrirs = resample(self.hrirs, self.sample_rate, sample_rate)
        return HRIRSet(hrirs, self.azimuth, self.elevation, sample_rate, self.name)


def _read_text_attribute(node, name: str, lower: bool = True) -> str:
    value = node.attrs.get(name, b"")
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else b""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):  # h5py's Empty for blank netCDF attributes
        return ""
    return value.strip().lower() if lower else value.strip()


def _positions_to_vectors(values: np.ndarray, kind: str, units: str, variable: str) -> np.ndarray:
    """SOFA position rows ``(n, 3)`` -> cartesian ``(n, 3)``: spherical (degrees, degrees, metres) or cartesian."""
    if kind in ("", "spherical"):
        # SOFA prescribes degrees; a few hand-made files say radians in Units, which we honour.
        angle_unit = units.split(",")[0].strip() if units else "degree"
        azimuth, elevation = values[:, 0], values[:, 1]
        if angle_unit.startswith("rad"):
            azimuth, elevation = np.rad2deg(azimuth), np.rad2deg(elevation)
        radius = values[:, 2] if values.shape[1] > 2 else np.ones(len(values))
        return direction_to_vector(azimuth, elevation) * radius[:, None]
    if kind == "cartesian":
        return values.astype(np.float64)
    raise ValueError(f"SOFA {variable}: expected Type 'spherical' or 'cartesian', got {kind!r}")


def _listener_axes(sofa) -> np.ndarray:
    """Rows: the listener's front, left and up axes in the file's coordinates (identity for the usual file)."""

    def vector(name: str, default):
        if name not in sofa:
            return np.asarray(default, dtype=np.float64)
        values = np.asarray(sofa[name][()], dtype=np.float64).reshape(-1, 3)[0:1]
        kind = _read_text_attribute(sofa[name], "Type") or "cartesian"
        return _positions_to_vectors(values, kind, _read_text_attribute(sofa[name], "Units"), name)[0]

    front = vector("ListenerView", (1.0, 0.0, 0.0))
    up = vector("ListenerUp", (0.0, 0.0, 1.0))
    front = front / np.linalg.norm(front)
    up = up - (up @ front) * front
    if np.linalg.norm(up) < 1e-9:
        raise ValueError("SOFA ListenerUp is parallel to ListenerView: the listener orientation is undefined")
    up = up / np.linalg.norm(up)
    return np.stack([front, np.cross(up, front), up])


def load_sofa(path: str | os.PathLike) -> HRIRSet:
    """Read HRIRs from a SOFA file (AES69; HDF5/netCDF-4 read with h5py).

    Uses ``Data.IR`` ``(M, R, N)`` (R = 2 receivers), ``Data.SamplingRate`` (Hz), ``SourcePosition``
    ``(M, 3)`` (``Type`` spherical: azimuth/elevation degrees and metres, or cartesian metres), and where
    present ``Data.Delay`` (samples, prepended), ``ListenerView``/``ListenerUp`` (directions are expressed
    relative to the listener) and ``ReceiverPosition`` (the receiver on the +y side is the left ear).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not an HDF5 file, missing variables, or shapes that do not fit together.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SOFA file not found: {path}")
    try:
        sofa = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"could not read {path} as a SOFA (HDF5 / netCDF-4) file: {error}") from None
    with sofa:
        _check_sofa_variables(sofa, path)
        ir, sample_rate = _sofa_impulse_responses(sofa)
        vectors = _sofa_source_vectors(sofa, ir.shape[0])
        parts = [
            _read_text_attribute(sofa, key, lower=False) for key in ("DatabaseName", "ListenerShortName")
        ]
        name = " ".join(part for part in parts if part) or path.stem

    if np.any(np.linalg.norm(vectors, axis=-1) == 0):
        raise ValueError("SOFA SourcePosition: a source sits at the listener position (no direction)")
    azimuth, elevation = vector_to_direction(vectors)
    return HRIRSet(ir.astype(np.float32), np.atleast_1d(azimuth), np.atleast_1d(elevation), sample_rate, name)


def _check_sofa_variables(sofa, path: Path) -> None:
    missing = [name for name in ("Data.IR", "Data.SamplingRate", "SourcePosition") if name not in sofa]
    if missing:
        raise ValueError(
            f"SOFA file {path.name}: expected variables Data.IR, Data.SamplingRate and SourcePosition, "
            f"missing {', '.join(missing)} (is it an HRIR/FIR file? SOFA conventions: "
            f"{_read_text_attribute(sofa, 'SOFAConventions') or 'unknown'})"
        )


def _sofa_impulse_responses(sofa) -> tuple[np.ndarray, int]:
    """``Data.IR`` as float64 ``(M, 2, taps)`` in (left, right) order with ``Data.Delay`` applied, and its rate."""
    ir = np.asarray(sofa["Data.IR"][()], dtype=np.float64)
    if ir.ndim != 3 or ir.shape[1] != 2:
        raise ValueError(f"SOFA Data.IR: expected shape (measurements, 2 receivers, taps), got {ir.shape}")
    rates = np.unique(np.asarray(sofa["Data.SamplingRate"][()], dtype=np.float64).ravel())
    if rates.size != 1:
        raise ValueError(f"SOFA Data.SamplingRate: expected one sample rate, got {rates.tolist()}")
    sample_rate = check_sample_rate(round(float(rates[0])), "SOFA Data.SamplingRate")
    if "Data.Delay" in sofa:
        delays = np.rint(np.asarray(sofa["Data.Delay"][()], dtype=np.float64)).astype(np.int64)
        ir = _apply_delays(ir, np.broadcast_to(delays.reshape(-1, 2), (ir.shape[0], 2)))
    if "ReceiverPosition" in sofa:
        node = sofa["ReceiverPosition"]
        receivers = np.asarray(node[()], dtype=np.float64).reshape(2, 3, -1)[:, :, 0]
        kind = _read_text_attribute(node, "Type") or "cartesian"
        receivers = _positions_to_vectors(
            receivers, kind, _read_text_attribute(node, "Units"), "ReceiverPosition"
        )
        if receivers[0, 1] < receivers[1, 1]:
            ir = ir[:, ::-1]  # the first receiver is on the right (-y): swap to (left, right)
    return ir, sample_rate


def _sofa_source_vectors(sofa, count: int) -> np.ndarray:
    """``SourcePosition`` as cartesian ``(count, 3)`` relative to the listener's position and axes."""
    positions = np.asarray(sofa["SourcePosition"][()], dtype=np.float64)
    if positions.shape != (count, 3):
        raise ValueError(
            f"SOFA SourcePosition: expected shape ({count}, 3) to match Data.IR, got {positions.shape}"
        )
    source = sofa["SourcePosition"]
    vectors = _positions_to_vectors(
        positions,
        _read_text_attribute(source, "Type"),
        _read_text_attribute(source, "Units"),
        "SourcePosition",
    )
    if "ListenerPosition" in sofa:
        listener = np.asarray(sofa["ListenerPosition"][()], dtype=np.float64).reshape(-1, 3)[0]
        if _read_text_attribute(sofa["ListenerPosition"], "Type") in ("", "cartesian"):
            vectors = vectors - listener
    return vectors @ _listener_axes(sofa).T


def _apply_delays(ir: np.ndarray, delays: np.ndarray) -> np.ndarray:
    """Prepend ``delays`` ``(M, 2)`` zero samples to each impulse response (SOFA's ``Data.Delay``)."""
    if np.all(delays == 0):
        return ir
    if np.any(delays < 0):
        raise ValueError("SOFA Data.Delay: expected non-negative delays in samples")
    out = np.zeros((*ir.shape[:2], ir.shape[2] + int(delays.max())))
    for measurement, ear in np.ndindex(*ir.shape[:2]):
        start = delays[measurement, ear]
        out[measurement, ear, start : start + ir.shape[2]] = ir[measurement, ear]
    return out


@lru_cache(maxsize=1)
def default_hrirs() -> HRIRSet:
    """The MIT KEMAR (normal pinna) HRIRs shipped with the package: 710 directions, 44.1 kHz, 256 taps.

    Stored as the left ear only (float16); the set is left/right symmetric, so the right ear at azimuth
    ``a`` is the left ear at ``-a`` (``mirror_index``). Elevations cover −40° to 90°.
    """
    if not DEFAULT_HRIR_FILE.is_file():
        raise FileNotFoundError(
            f"the default HRIR data is missing from the installation ({DEFAULT_HRIR_FILE}); "
            "reinstall visage-hf or pass sofa=<path to a .sofa file>"
        )
    with np.load(DEFAULT_HRIR_FILE) as data:
        left = data["hrir_left"].astype(np.float32)
        mirror = data["mirror_index"]
        hrirs = np.stack([left, left[mirror]], axis=1)
        return HRIRSet(
            hrirs, data["azimuth"], data["elevation"], int(data["sample_rate"]), "MIT KEMAR normal pinna"
        )


# ----------------------------------------------------------------------------- spherical-head model


def spherical_head_hrirs(
    azimuth,
    elevation,
    sample_rate: int = 44100,
    num_taps: int = 256,
    head_radius: float = 0.0875,
    speed_of_sound: float = 343.0,
    ear_azimuth: float = 100.0,
) -> HRIRSet:
    """HRIRs of a rigid spherical head (Brown & Duda, "A structural model for binaural sound synthesis", 1998).

    Each ear sees the source at incidence angle ``θ`` (between the source and the ear's direction) through
    a one-pole/one-zero head-shadow filter ``H(ω) = (1 + jαω/2ω₀)/(1 + jω/2ω₀)`` with ``ω₀ = c/a`` and
    ``α(θ) = 1 + α_min/2 + (1 − α_min/2)·cos(θ/θ_min·180°)`` (``α_min = 0.1``, ``θ_min = 150°``: +6 dB at
    high frequencies facing the ear, down to about −11 dB behind it), delayed by the Woodworth path
    ``−(a/c)·cos θ`` for ``θ < 90°`` and ``(a/c)(θ − 90°)`` beyond. The ears sit at azimuth ``±ear_azimuth``
    (Brown & Duda set them 10° behind the interaural axis). There is no pinna or torso, so front and back
    differ only through the ears' setback. Impulse responses are band-limited (designed on the FFT grid).
    """
    sample_rate = check_sample_rate(sample_rate)
    azimuth = np.atleast_1d(np.asarray(azimuth, dtype=np.float64))
    elevation = np.atleast_1d(np.asarray(elevation, dtype=np.float64))
    azimuth, elevation = np.broadcast_arrays(azimuth, elevation)
    sources = direction_to_vector(azimuth, elevation)  # (M, 3)
    ears = direction_to_vector(np.array([ear_azimuth, -ear_azimuth]), np.zeros(2))  # (2, 3)
    incidence = np.arccos(np.clip(sources @ ears.T, -1.0, 1.0))  # (M, 2) radians

    alpha_min, theta_min = 0.1, np.deg2rad(150.0)
    alpha = 1 + alpha_min / 2 + (1 - alpha_min / 2) * np.cos(incidence / theta_min * np.pi)
    travel = head_radius / speed_of_sound
    delay = np.where(incidence < np.pi / 2, -travel * np.cos(incidence), travel * (incidence - np.pi / 2))
    # Shift so the earliest possible arrival (−a/c) lands a few samples into the response, leaving room for
    # the band-limited onset.
    delay = delay + travel + 8 / sample_rate

    omega = 2 * np.pi * np.fft.rfftfreq(num_taps, 1 / sample_rate)
    corner = speed_of_sound / head_radius
    shadow = (1 + 1j * alpha[..., None] * omega / (2 * corner)) / (1 + 1j * omega / (2 * corner))
    response = shadow * np.exp(-1j * omega * delay[..., None])
    hrirs = np.fft.irfft(response, n=num_taps, axis=-1)
    return HRIRSet(
        hrirs.astype(np.float32), azimuth, elevation, sample_rate, "spherical head (Brown & Duda 1998)"
    )
