"""FOA (AmbiX) -> two-channel headphone audio through head-related impulse responses (HRIRs).

The render is the classic virtual-loudspeaker decode (what YouTube's player does): the FOA is decoded to a fixed
layout of virtual loudspeakers, every feed is convolved with the HRIR pair measured for its direction, and the
ears are summed. Because the layout is fixed, decoder and HRIRs collapse into four spherical-harmonic
filters per ear, ``ear(t) = Σ_c (h_ear,c * foa_c)(t)`` with ``h_ear,c = Σ_l D[l, c]·hrir_ear,l``, applied by
FFT convolution.

* **Layout and decoder.** Default: the cube of 8 virtual loudspeakers at azimuth ±45°/±135°, elevation
  ±35.26° (what YouTube's and Google's FOA renderers use), with the max-rE first-order decoder
  (mode-matching pseudo-inverse, first-order weight 1/√3: the largest root of P₂, Zotter & Frank). For a
  regular layout the "basic" decoder is the exact pseudo-inverse: re-encoding its feeds gives the input back.
* **HRIRs** (:mod:`visage_hf.audio.hrirs`). Any SOFA file via :func:`load_sofa`; for each virtual loudspeaker
  the nearest measured direction is used and the HRIRs are resampled (polyphase) to the audio rate. The default
  is the MIT KEMAR "normal pinna" set shipped as package data; ``sofa="spherical-head"`` uses a physical
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
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from ..directions import vector_to_direction
from .foa import rotate, sh_matrix
from .hrirs import DEFAULT_HRIR_FILE, HRIRSet, default_hrirs, load_sofa, spherical_head_hrirs
from .io import check_foa, check_sample_rate

__all__ = [
    "DEFAULT_HRIR_FILE",
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

SPHERICAL_HEAD = "spherical-head"
# Warn when the nearest measured HRIR is further than this from a virtual loudspeaker.
MAX_NEAREST_ERROR_DEGREES = 10.0
_CUBE_ELEVATION = float(np.rad2deg(np.arctan(1 / np.sqrt(2))))  # 35.26°: the cube's corners
_GOLDEN = (1 + np.sqrt(5)) / 2


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
