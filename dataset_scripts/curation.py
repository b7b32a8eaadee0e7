"""Clip curation for FOA datasets: the YT-Ambigen paper's §4 filters as one reusable function.

The paper keeps a 5 s clip when its ambisonic channels all carry signal (**per-channel amplitude** check),
when enough of its seconds are loud enough (**per-second RMS** validity, the **3-of-5 s rule**), and chooses
the camera direction of the field-of-view crop at the **maximum of the audio energy map** (where the sound
comes from). The thresholds are not given in the material this project works from (the paper and the
original's code, docs/original-implementation.md), so every threshold is a parameter of :class:`CurationThresholds`
with a documented default chosen here:

* ``min_channel_peak = 1e-3`` (−60 dBFS): a channel whose peak stays below this is treated as dead (a fake
  or broken ambisonic track, e.g. stereo padded with silent channels);
* ``min_second_rms_db = −50`` dBFS on W: a second is valid when the omni channel's RMS reaches this;
* ``min_valid_fraction = 0.6``: at least 60 % of the clip's seconds must be valid, rounded up — 3 of 5 for
  YT-Ambigen's 5 s clips (the paper's rule), 2 of 2 for 2 s clips.

Use :func:`curate_clip` on ``(4, samples)`` AmbiX audio; `prepare.py --curate` applies it to your own videos.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from visage_hf.audio.foa import direction_from_energy_map, energy_map
from visage_hf.audio.io import check_foa, check_sample_rate
from visage_hf.directions import direction_to_indices

__all__ = [
    "CurationResult",
    "CurationThresholds",
    "channel_order_check",
    "channel_peaks",
    "crop_direction",
    "curate_clip",
    "per_second_rms_db",
    "required_valid_seconds",
]

_CHANNELS = ("W", "Y", "Z", "X")


@dataclass(frozen=True)
class CurationThresholds:
    """Thresholds of :func:`curate_clip` (defaults chosen by this project; the paper does not state them)."""

    min_channel_peak: float = 1e-3
    min_second_rms_db: float = -50.0
    min_valid_fraction: float = 0.6  # 3 of 5 seconds
    energy_map_resolution: float = 2.0
    energy_map_normalization: str = "sn3d"  # "original": the original code's energy map (√2 slip on Y, X)


@dataclass
class CurationResult:
    """What :func:`curate_clip` found. ``keep`` is False when any ``reasons`` were found."""

    keep: bool
    reasons: list[str]
    channel_peaks: list[float]
    second_rms_db: list[float]
    valid_seconds: int
    azimuth: float
    elevation: float
    elevation_index: int
    azimuth_index: int
    thresholds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def channel_peaks(foa: np.ndarray) -> np.ndarray:
    """Peak absolute amplitude of each channel, ``(4,)``."""
    return np.max(np.abs(np.asarray(foa, dtype=np.float64)), axis=-1)


def per_second_rms_db(signal: np.ndarray, sample_rate: int) -> np.ndarray:
    """RMS in dBFS of each whole second of a mono ``signal`` ``(samples,)`` (a trailing partial second counts
    as a second when it is at least half a second long); silence gives ``-inf``."""
    signal = np.asarray(signal, dtype=np.float64)
    sample_rate = check_sample_rate(sample_rate)
    count = signal.shape[-1] // sample_rate + (signal.shape[-1] % sample_rate >= sample_rate // 2)
    values = []
    for second in range(count):
        part = signal[second * sample_rate : (second + 1) * sample_rate]
        rms = math.sqrt(float(np.mean(part**2))) if part.size else 0.0
        values.append(20 * math.log10(rms) if rms > 0 else -math.inf)
    return np.asarray(values)


def required_valid_seconds(num_seconds: int, fraction: float = 0.6) -> int:
    """Valid seconds a clip of ``num_seconds`` needs: ``ceil(fraction · num_seconds)`` (3 for 5 s at 0.6)."""
    return max(1, math.ceil(fraction * num_seconds - 1e-9))


def crop_direction(
    foa: np.ndarray, resolution: float = 2.0, normalization: str = "sn3d"
) -> tuple[float, float]:
    """Direction ``(azimuth, elevation)`` degrees (public convention) of the clip's audio energy-map maximum:
    where the field-of-view crop should look. Grid of ``resolution`` degrees (2°, the original's).

    Raises:
        ValueError: the clip is silent (its energy map is flat: there is nowhere to look).
    """
    azimuth, elevation = direction_from_energy_map(
        energy_map(check_foa(foa), resolution=resolution, normalization=normalization)
    )
    if azimuth != azimuth:  # NaN: a flat map
        raise ValueError("the clip is silent (a flat energy map): no direction for the field-of-view crop")
    return azimuth, elevation


def curate_clip(
    foa: np.ndarray, sample_rate: int, thresholds: CurationThresholds | None = None
) -> CurationResult:
    """Apply the §4 filters to one clip and pick its crop direction.

    Args:
        foa: AmbiX ``(4, samples)`` (W, Y, Z, X; SN3D), float.
        sample_rate: Hz.
        thresholds: see :class:`CurationThresholds`.

    Returns:
        a :class:`CurationResult`; ``reasons`` name every failed check (empty when the clip is kept). The
        direction is computed even for rejected clips (NaN for a silent clip).
    """
    thresholds = thresholds or CurationThresholds()
    foa = check_foa(foa)
    sample_rate = check_sample_rate(sample_rate)
    reasons: list[str] = []

    peaks = channel_peaks(foa)
    dead = [name for name, peak in zip(_CHANNELS, peaks) if peak < thresholds.min_channel_peak]
    if dead:
        reasons.append(
            f"channel(s) {', '.join(dead)} peak below {thresholds.min_channel_peak:g} (dead or fake ambisonics)"
        )

    rms_db = per_second_rms_db(foa[0], sample_rate)
    valid = int(np.sum(rms_db >= thresholds.min_second_rms_db))
    needed = required_valid_seconds(len(rms_db), thresholds.min_valid_fraction)
    if valid < needed:
        reasons.append(
            f"{valid} of {len(rms_db)} seconds reach {thresholds.min_second_rms_db:g} dBFS RMS on W (need {needed})"
        )

    if np.any(peaks > 0):
        azimuth, elevation = crop_direction(
            foa, thresholds.energy_map_resolution, thresholds.energy_map_normalization
        )
        elevation_index, azimuth_index = direction_to_indices(azimuth, elevation)
    else:
        azimuth = elevation = math.nan
        elevation_index = azimuth_index = -1
    return CurationResult(
        keep=not reasons,
        reasons=reasons,
        channel_peaks=[float(p) for p in peaks],
        second_rms_db=[float(v) for v in rms_db],
        valid_seconds=valid,
        azimuth=float(azimuth),
        elevation=float(elevation),
        elevation_index=int(elevation_index),
        azimuth_index=int(azimuth_index),
        thresholds=asdict(thresholds),
    )


def channel_order_check(foa: np.ndarray) -> dict:
    """A plausibility check of AmbiX channel order and SN3D gains: in SN3D the omni channel W is at least as
    strong as each first-order channel for any sum of uncorrelated plane waves (``|u_y| <= 1``), so a track
    whose channel 0 is weaker than another channel is likely FuMa (W at −3 dB) or mis-ordered.

    Returns ``{"w_dominant": bool, "rms": [W, Y, Z, X]}``.
    """
    foa = np.asarray(check_foa(foa), dtype=np.float64)
    rms = np.sqrt(np.mean(foa**2, axis=-1))
    # 3 % slack for codec noise on a source exactly on an axis.
    return {"w_dominant": bool(rms[0] >= 0.97 * rms[1:].max()), "rms": [float(r) for r in rms]}
