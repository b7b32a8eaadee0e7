"""FOA (AmbiX) -> two-channel headphone audio through head-related impulse responses (HRIRs).

The render is the classic virtual-loudspeaker decode (reference/ecosystem.md §4.5): the FOA is decoded to a
fixed layout of virtual loudspeakers, every feed is convolved with the HRIR pair measured for its direction,
and the ears are summed. Because the layout is fixed, decoder and HRIRs collapse into four spherical-harmonic
filters per ear, ``ear(t) = Σ_c (h_ear,c * foa_c)(t)`` with ``h_ear,c = Σ_l D[l, c]·hrir_ear,l``, applied by
FFT convolution.

* **Layout and decoder.** Default: the cube of 8 virtual loudspeakers at azimuth ±45°/±135°, elevation
  ±35.26° (what YouTube's and Google's FOA renderers use), with the max-rE first-order decoder
  (mode-matching pseudo-inverse, first-order weight 1/√3: the largest root of P₂, Zotter & Frank). For a
  regular layout the "basic" decoder is the exact pseudo-inverse: re-encoding its feeds gives the input back.
* **HRIRs.** Any SOFA file (AES69, ``SimpleFreeFieldHRIR``/``GeneralFIR``; read with h5py, no netCDF
  library needed) via :func:`load_sofa`; for each virtual loudspeaker the nearest measured direction is used
  and the HRIRs are resampled (polyphase) to the audio rate. The default, which works offline on a plain
  ``pip install``, is a compact copy of the **MIT KEMAR** "normal pinna" set shipped as package data
  (``visage_hf/audio/assets/mit_kemar_hrirs.npz``, derived by ``dataset_scripts/make_binaural_filters.py`` from the
  ``MIT_KEMAR_normal_pinna.sofa`` that Debian's libmysofa ships). ``sofa="spherical-head"`` uses a physical
  spherical-head model instead (:func:`spherical_head_hrirs`, Brown & Duda 1998), which needs no data.
* **Level.** Filters are scaled so that a plane wave from straight ahead reaches each ear at the level of
  the source for white noise (0 dB broadband). Decoded sums can still peak above the input, so by default the
  output is attenuated when its peak exceeds ``peak_dbfs`` (−1 dBFS) and never amplified; the applied gain is
  returned by :class:`BinauralRenderer` and logged at INFO level by :func:`render_binaural`.
* **Head rotation.** ``yaw``/``pitch``/``roll`` rotate the sound scene before rendering with
  :func:`visage_hf.audio.foa.rotate`: positive yaw moves sources toward the left (equivalently, the listener turns
  right).

First-order ambisonics carries limited spatial detail: expect a wide, somewhat diffuse image and some
timbral colouration (no MagLS or shelf equalisation here); it is a preview, not a mastering renderer.

MIT KEMAR data: Bill Gardner and Keith Martin, "HRTF Measurements of a KEMAR Dummy-Head Microphone", MIT
Media Lab Perceptual Computing Technical Report #280, 1994. Copyright 1994 MIT Media Laboratory; "provided
free with no restrictions on use, provided the authors are cited when the data is used in any research or
commercial application".
"""

from __future__ import annotations

import logging
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
from .foa import rotate, sh_matrix
from .io import check_foa, check_sample_rate, resample

__all__ = [
    "BinauralOutput",
    "BinauralRenderer",
    "HRIRSet",
    "binaural_filters",
    "decoder_matrix",
    "default_hrirs",
    "load_sofa",
    "loudspeaker_layout",
    "render_binaural",
    "spherical_head_hrirs",
]

logger = logging.getLogger(__name__)

DEFAULT_HRIR_FILE = Path(__file__).parent / "assets" / "mit_kemar_hrirs.npz"
SPHERICAL_HEAD = "spherical-head"
# Warn when the nearest measured HRIR is further than this from a virtual loudspeaker.
MAX_NEAREST_ERROR_DEGREES = 10.0
_CUBE_ELEVATION = float(np.rad2deg(np.arctan(1 / np.sqrt(2))))  # 35.26°: the cube's corners
_GOLDEN = (1 + np.sqrt(5)) / 2


# ----------------------------------------------------------------------------- HRIR sets


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
        missing = [name for name in ("Data.IR", "Data.SamplingRate", "SourcePosition") if name not in sofa]
        if missing:
            raise ValueError(
                f"SOFA file {path.name}: expected variables Data.IR, Data.SamplingRate and SourcePosition, "
                f"missing {', '.join(missing)} (is it an HRIR/FIR file? SOFA conventions: "
                f"{_read_text_attribute(sofa, 'SOFAConventions') or 'unknown'})"
            )
        ir = np.asarray(sofa["Data.IR"][()], dtype=np.float64)
        if ir.ndim != 3 or ir.shape[1] != 2:
            raise ValueError(
                f"SOFA Data.IR: expected shape (measurements, 2 receivers, taps), got {ir.shape}"
            )
        rates = np.unique(np.asarray(sofa["Data.SamplingRate"][()], dtype=np.float64).ravel())
        if rates.size != 1:
            raise ValueError(f"SOFA Data.SamplingRate: expected one sample rate, got {rates.tolist()}")
        sample_rate = check_sample_rate(round(float(rates[0])), "SOFA Data.SamplingRate")

        positions = np.asarray(sofa["SourcePosition"][()], dtype=np.float64)
        if positions.shape != (ir.shape[0], 3):
            raise ValueError(
                f"SOFA SourcePosition: expected shape ({ir.shape[0]}, 3) to match Data.IR, got {positions.shape}"
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
        vectors = vectors @ _listener_axes(sofa).T

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
        parts = [
            _read_text_attribute(sofa, key, lower=False) for key in ("DatabaseName", "ListenerShortName")
        ]
        name = " ".join(part for part in parts if part) or path.stem

    if np.any(np.linalg.norm(vectors, axis=-1) == 0):
        raise ValueError("SOFA SourcePosition: a source sits at the listener position (no direction)")
    azimuth, elevation = vector_to_direction(vectors)
    return HRIRSet(ir.astype(np.float32), np.atleast_1d(azimuth), np.atleast_1d(elevation), sample_rate, name)


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


# ----------------------------------------------------------------------------- layouts and decoders


def loudspeaker_layout(name: str = "cube") -> tuple[np.ndarray, np.ndarray]:
    """Virtual loudspeaker directions ``(azimuth (L,), elevation (L,))`` in degrees.

    ``"cube"`` (8, default): azimuth ±45°/±135°, elevation ±35.26°. ``"octahedron"`` (6): front, back, left,
    right, up, down. ``"icosahedron"`` (12) and ``"dodecahedron"`` (20): denser regular layouts (note that
    the default MIT KEMAR set has no measurements below −40°, so their lowest speakers use −40° HRIRs).
    """
    if name == "cube":
        azimuth = np.array([45.0, 135.0, -135.0, -45.0] * 2)
        elevation = np.repeat([_CUBE_ELEVATION, -_CUBE_ELEVATION], 4)
        return azimuth, elevation
    if name == "octahedron":
        vectors = np.concatenate([np.eye(3), -np.eye(3)])
    elif name == "icosahedron":
        vectors = np.array(
            [(0, s1, s2 * _GOLDEN) for s1 in (-1, 1) for s2 in (-1, 1)]
            + [(s1, s2 * _GOLDEN, 0) for s1 in (-1, 1) for s2 in (-1, 1)]
            + [(s2 * _GOLDEN, 0, s1) for s1 in (-1, 1) for s2 in (-1, 1)],
            dtype=np.float64,
        )
    elif name == "dodecahedron":
        corners = [(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
        inverse = 1 / _GOLDEN
        ring = [(0, s1 * inverse, s2 * _GOLDEN) for s1 in (-1, 1) for s2 in (-1, 1)]
        ring += [(s1 * inverse, s2 * _GOLDEN, 0) for s1 in (-1, 1) for s2 in (-1, 1)]
        ring += [(s2 * _GOLDEN, 0, s1 * inverse) for s1 in (-1, 1) for s2 in (-1, 1)]
        vectors = np.array(corners + ring, dtype=np.float64)
    else:
        raise ValueError(
            f"layout: expected 'cube', 'octahedron', 'icosahedron', 'dodecahedron' or (azimuths, elevations), got {name!r}"
        )
    azimuth, elevation = vector_to_direction(vectors)
    return np.asarray(azimuth), np.asarray(elevation)


def decoder_matrix(azimuth, elevation, weighting: str = "max_re") -> np.ndarray:
    """First-order AmbiX decoder ``(L, 4)``: loudspeaker feeds = ``D @ (W, Y, Z, X)``.

    Mode matching (pseudo-inverse of the SN3D re-encoding matrix), optionally with max-rE order weights.
    On a regular layout a plane wave at angle γ from loudspeaker ``l`` feeds it ``∝ 1 + 3·w·cos γ``: the
    "basic" decoder (w = 1) has a large out-of-phase rear lobe (−2 at 180°); max-rE (w = 1/√3) is silent at
    γ = 125° and only −0.73 behind, so a source at ±90° leaves the cube's far-side speakers silent.
    ``weighting``: ``"max_re"`` (default) or ``"basic"``.
    """
    encoding = sh_matrix(np.atleast_1d(azimuth), np.atleast_1d(elevation))  # (L, 4)
    if encoding.shape[0] < 4 or np.linalg.matrix_rank(encoding) < 4:
        raise ValueError(
            f"layout: expected at least 4 loudspeakers spanning 3-D space, got {encoding.shape[0]}"
        )
    weights = {"basic": 1.0, "max_re": 1 / np.sqrt(3.0)}
    if weighting not in weights:
        raise ValueError(f"decoder: expected 'max_re' or 'basic', got {weighting!r}")
    order_weights = np.array([1.0] + [weights[weighting]] * 3)
    return np.linalg.pinv(encoding.T) * order_weights


def _resolve_layout(layout) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(layout, str):
        return loudspeaker_layout(layout)
    try:
        azimuth, elevation = (np.atleast_1d(np.asarray(part, dtype=np.float64)) for part in layout)
    except (TypeError, ValueError):
        raise ValueError(
            f"layout: expected a layout name or (azimuths, elevations), got {layout!r}"
        ) from None
    return np.broadcast_arrays(azimuth, elevation)


def _resolve_hrirs(sofa) -> HRIRSet | str:
    if sofa is None:
        return default_hrirs()
    if isinstance(sofa, HRIRSet):
        return sofa
    if isinstance(sofa, str) and sofa == SPHERICAL_HEAD:
        return SPHERICAL_HEAD
    if isinstance(sofa, (str, os.PathLike)):
        return load_sofa(sofa)
    raise ValueError(
        f"sofa: expected None (default MIT KEMAR), a .sofa path, an HRIRSet or {SPHERICAL_HEAD!r}, got {type(sofa).__name__}"
    )


def binaural_filters(
    sofa=None, sample_rate: int = 44100, layout="cube", decoder: str = "max_re"
) -> np.ndarray:
    """The spherical-harmonic-domain binaural filters ``(2 ears, 4 channels, taps)`` float64 at ``sample_rate``.

    ``ear = Σ_c filters[ear, c] * foa[c]``. Scaled so that a plane wave from the front renders at 0 dB
    broadband (white-noise) gain per ear on average. ``sofa``: ``None`` (MIT KEMAR), a path, an
    :class:`HRIRSet`, or ``"spherical-head"``.
    """
    sample_rate = check_sample_rate(sample_rate)
    azimuth, elevation = _resolve_layout(layout)
    decode = decoder_matrix(azimuth, elevation, decoder)  # (L, 4)
    hrirs = _resolve_hrirs(sofa)
    if isinstance(hrirs, str):
        speakers = spherical_head_hrirs(azimuth, elevation, sample_rate)
    else:
        index, errors = hrirs.nearest(azimuth, elevation)
        if errors.max() > MAX_NEAREST_ERROR_DEGREES:
            worst = int(np.argmax(errors))
            logger.warning(
                "HRIR set %r has no measurement within %.0f° of virtual loudspeaker (%.1f°, %.1f°): nearest is "
                "%.1f° away; the render may be less accurate there",
                hrirs.name,
                MAX_NEAREST_ERROR_DEGREES,
                azimuth[worst],
                elevation[worst],
                errors[worst],
            )
        speakers = hrirs.select(index).resampled(sample_rate)
    filters = np.einsum("lc,len->ecn", decode, speakers.hrirs.astype(np.float64))

    front = filters[:, 0] + filters[:, 3]  # plane wave from the front: W = X = s, Y = Z = 0
    front_energy = np.mean(np.sum(front**2, axis=-1))
    if front_energy <= 0:
        raise ValueError("the HRIR set renders a frontal source as silence; check the SOFA file")
    return filters / np.sqrt(front_energy)


# ----------------------------------------------------------------------------- rendering


@dataclass
class BinauralOutput:
    """A binaural render: ``audio`` float32 ``(2, samples)`` or ``(batch, 2, samples)`` (left, right).

    ``gain_db``: gain applied for the peak limit (0 when none; per clip for a batch). ``peak_dbfs``: the
    output's peak after that gain.
    """

    audio: np.ndarray
    sample_rate: int
    gain_db: float | np.ndarray
    peak_dbfs: float | np.ndarray


class BinauralRenderer:
    """Reusable FOA -> binaural renderer (the filters are built once per sample rate).

    Args:
        sofa: ``None`` (default MIT KEMAR package data), a ``.sofa`` path, an :class:`HRIRSet`, or
            ``"spherical-head"`` (:func:`spherical_head_hrirs`).
        layout: virtual loudspeakers: a name (see :func:`loudspeaker_layout`) or ``(azimuths, elevations)``.
        decoder: ``"max_re"`` (default) or ``"basic"``.
        peak: ``"limit"`` (default): scale down only when the peak exceeds ``peak_dbfs``; ``"normalize"``:
            scale every clip to peak exactly at ``peak_dbfs``; ``"none"``: leave the level alone (may clip
            when written to integer PCM).
        peak_dbfs: the peak target in dB relative to full scale (default −1).
    """

    def __init__(
        self, sofa=None, layout="cube", decoder: str = "max_re", peak: str = "limit", peak_dbfs: float = -1.0
    ):
        if peak not in ("limit", "normalize", "none"):
            raise ValueError(f"peak: expected 'limit', 'normalize' or 'none', got {peak!r}")
        if not np.isfinite(peak_dbfs):
            raise ValueError(f"peak_dbfs: expected a finite number of dB, got {peak_dbfs!r}")
        self.hrirs = _resolve_hrirs(sofa)
        self.layout = _resolve_layout(layout)
        self.decoder = decoder
        decoder_matrix(*self.layout, decoder)  # validate now rather than at the first render
        self.peak = peak
        self.peak_dbfs = float(peak_dbfs)
        self._filters: dict[int, np.ndarray] = {}

    def filters(self, sample_rate: int) -> np.ndarray:
        """``(2, 4, taps)`` filters at ``sample_rate`` (see :func:`binaural_filters`)."""
        sample_rate = check_sample_rate(sample_rate)
        if sample_rate not in self._filters:
            self._filters[sample_rate] = binaural_filters(self.hrirs, sample_rate, self.layout, self.decoder)
        return self._filters[sample_rate]

    def __call__(
        self, foa, sample_rate: int, yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0
    ) -> BinauralOutput:
        """Render ``foa`` ``(4, samples)`` or ``(batch, 4, samples)`` AmbiX at ``sample_rate``.

        The output has as many samples as the input (the HRIR tail after the last input sample is cut).
        """
        from scipy.signal import oaconvolve

        # A torch tensor, possibly on an accelerator (e.g. straight from the codec's decode).
        if hasattr(foa, "detach"):
            foa = foa.detach().cpu().numpy()
        foa = check_foa(foa, allow_batch=True)
        filters = self.filters(sample_rate)
        if yaw or pitch or roll:
            foa = rotate(foa, yaw=yaw, pitch=pitch, roll=roll)
        foa = foa.astype(np.float64, copy=False)
        num_samples = foa.shape[-1]
        ears = np.zeros((*foa.shape[:-2], 2, num_samples))
        for ear, channel in np.ndindex(2, 4):
            kernel = filters[ear, channel]
            ears[..., ear, :] += oaconvolve(foa[..., channel, :], kernel[(None,) * (foa.ndim - 2)], axes=-1)[
                ..., :num_samples
            ]
        return self._limit(ears, check_sample_rate(sample_rate))

    def _limit(self, ears: np.ndarray, sample_rate: int) -> BinauralOutput:
        peaks = np.max(np.abs(ears), axis=(-2, -1))
        target = 10 ** (self.peak_dbfs / 20)
        gains = np.ones_like(peaks)
        nonzero = peaks > 0
        if self.peak == "limit":
            gains = np.where(peaks > target, target / np.where(nonzero, peaks, 1.0), 1.0)
        elif self.peak == "normalize":
            gains = np.where(nonzero, target / np.where(nonzero, peaks, 1.0), 1.0)
        audio = (ears * gains[..., None, None]).astype(np.float32)
        gain_db = 20 * np.log10(gains)
        with np.errstate(divide="ignore"):
            peak_dbfs = 20 * np.log10(peaks * gains)
        if np.ndim(gain_db) == 0:
            gain_db, peak_dbfs = float(gain_db), float(peak_dbfs)
        return BinauralOutput(audio, sample_rate, gain_db, peak_dbfs)


def render_binaural(
    foa,
    sample_rate: int,
    sofa=None,
    yaw: float = 0.0,
    pitch: float = 0.0,
    roll: float = 0.0,
    layout="cube",
    decoder: str = "max_re",
    peak: str = "limit",
    peak_dbfs: float = -1.0,
) -> np.ndarray:
    """Render AmbiX FOA to headphone stereo: float32 ``(2, samples)`` or ``(batch, 2, samples)`` = (left, right).

    Args:
        foa: ``(4, samples)`` or ``(batch, 4, samples)`` AmbiX (W, Y, Z, X; SN3D) float.
        sample_rate: Hz of ``foa`` (and of the output; HRIRs are resampled to it).
        sofa: ``None`` (MIT KEMAR, shipped), a ``.sofa`` file path, an :class:`HRIRSet`, or ``"spherical-head"``.
        yaw, pitch, roll: rotate the scene first (degrees; positive yaw moves sources to the left).
        layout, decoder, peak, peak_dbfs: see :class:`BinauralRenderer`.

    The gain applied by the peak limit is logged at INFO level; use :class:`BinauralRenderer` to get it back.
    """
    renderer = BinauralRenderer(sofa, layout=layout, decoder=decoder, peak=peak, peak_dbfs=peak_dbfs)
    output = renderer(foa, sample_rate, yaw=yaw, pitch=pitch, roll=roll)
    if np.any(np.asarray(output.gain_db) < 0):
        logger.info(
            "binaural render attenuated by %s dB to keep its peak at %.1f dBFS", output.gain_db, peak_dbfs
        )
    return output.audio
