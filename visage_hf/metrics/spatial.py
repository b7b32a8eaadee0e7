"""Spatial metrics: energy-map CC and AUC-Judd (the paper's "All / 1 fps / 5 fps"), and direction errors.

ViSAGe scores where the sound comes from by comparing *audio energy maps* of the generated and the
ground-truth FOA (docs/original-implementation.md §6): the RMS of the FOA decoded on a 2° sphere grid
(:func:`visage_hf.audio.foa.energy_map`), resampled to an approximately equal-area sampling of 10,312 points
(:func:`visage_hf.audio.foa.equal_area_resample`), then scored with two saliency metrics (Bylinskii et al., TPAMI
2019): Pearson's correlation coefficient (CC) and AUC-Judd, with the ground-truth map's "fixations" taken as
the points where ``F > max(F) − std(F)``. Scores are computed for the whole clip ("all"), per 1 s window
("1fps": 5 windows on a 5 s clip) and per 200 ms window ("5fps": 25 windows); a clip's windowed score is
the mean over its windows.

Two modes (``mode=``):

``"original"`` reproduces the formulas of ``evaluate_spatial.py`` / ``utils/wild_360.py`` exactly (the
original computes maps in float32 and resamples 48 kHz ground truth with torchaudio's sinc filter; here
maps are float64 and resampling is polyphase, so scores can differ in the last digits):

* energy-map weights with the original's SH normalisation slip (√2 on X and Y, 1 on Z; §9 B4);
* audio at 16 kHz, cut or zero-padded to 5 s = 80,000 samples;
* AUC-Judd with the original's indexing: for the ``i``-th (0-based) fixation threshold ``thr_i`` (fixation
  saliencies sorted descending) ``TPR_i = i/N_f`` and ``FPR_i = (#{S ≥ thr_i} − i)/(N_p − N_f)``, plus the
  points (0, 0) and (1, 1), integrated with the trapezoid rule. Perfect agreement scores
  ``(1 − 1/(N_p − N_f))·(1 − 1/(2 N_f))`` (≈ 0.9997), not 1;
* Gaussian jitter ``N(0, 1)·1e−7`` added to the *unnormalised* prediction before min-max normalisation. The
  original draws it from the unseeded global ``np.random``; here it comes from the ``Generator`` you pass
  (or one seeded with ``seed``), so runs repeat exactly but cannot repeat the original's own random draws;
  the jitter only breaks ties and reorders values closer than ~1e−7 (absolute, so more of them in a very
  quiet clip);
* CC gets no jitter, so a constant map (e.g. a silent window) gives NaN; a constant ground truth gives no
  fixations and AUC 0.5;
* windowed scores skip windows where CC or AUC is NaN (a window is dropped from both), but the whole-clip
  score is kept as is, so one NaN clip makes a dataset's "all" mean NaN, as in the original. (A clip whose
  windows are all NaN crashes the original with ZeroDivisionError; here it gets NaN.)

``"corrected"`` (default):

* SN3D weights (each grid point is a ``1 + cos α`` beam, the same for every axis);
* the standard AUC-Judd of the MIT saliency benchmark (``cvzoya/saliency`` ``AUC_Judd.m``, whose 1-based
  loop gives ``TPR_i = (i+1)/N_f``, ``FPR_i = (#{S ≥ thr_i} − (i+1))/(N_p − N_f)`` 0-based): perfect
  agreement scores exactly 1;
* seeded jitter ``1e−7`` *relative to the map's range* (added after min-max normalisation), so the score
  does not depend on how loud a clip is — with the original's absolute 1e−7, a quiet clip's map is
  drowned in noise;
* degenerate maps handled explicitly: a constant ground truth (silent window: no fixations defined) gives
  NaN for both metrics; a constant prediction (silence, or a perfectly diffuse field) against a non-constant
  ground truth gives CC 0 and AUC 0.5 (chance), instead of NaN / a noise-driven value;
* the clip length is a parameter (default 5 s like the paper); windowed means skip NaN windows.

Direction errors (:func:`dominant_direction_error`, reported in both modes, always with SN3D maths since the
original has no such metric): the great-circle angle in degrees between the dominant directions of
prediction and ground truth, from the whole-clip energy-map maximum (2° grid) or from the time-averaged
active intensity vector (the metric OmniAudio/AudioSpace report).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..audio.foa import direction_from_energy_map, direction_from_intensity, energy_map, equal_area_resample
from ..audio.io import check_foa, check_sample_rate, resample
from ..directions import angular_distance

__all__ = [
    "CLIP_SECONDS",
    "FIXATION_RULE",
    "METRIC_SAMPLE_RATE",
    "SPATIAL_COLUMNS",
    "WINDOWS",
    "SpatialScores",
    "auc_judd",
    "correlation_coefficient",
    "dominant_direction_error",
    "fixation_mask",
    "metric_maps",
    "prepare_clip",
    "spatial_scores",
    "spatial_scores_from_maps",
]

METRIC_SAMPLE_RATE = 16_000  # the paper scores 16 kHz audio
CLIP_SECONDS = 5.0  # YT-Ambigen clips; the original cuts or pads every file to exactly this
# Window name -> window length in seconds (None = the whole clip), as in evaluate_spatial.py.
WINDOWS: dict[str, float | None] = {"all": None, "1fps": 1.0, "5fps": 0.2}
FIXATION_RULE = "F > max(F) - std(F)"
JITTER_SCALE = 1e-7
SPATIAL_COLUMNS = ("cc_all", "cc_1fps", "cc_5fps", "auc_all", "auc_1fps", "auc_5fps")
DIRECTION_COLUMNS = ("angular_error_energy", "angular_error_intensity")
_MODES = ("corrected", "original")
# A map whose range is below this fraction of its magnitude is treated as constant (corrected mode).
_CONSTANT_RELATIVE_RANGE = 1e-12


def _check_mode(mode: str) -> str:
    if mode not in _MODES:
        raise ValueError(f"mode: expected one of {_MODES}, got {mode!r}")
    return mode


def _flat_finite(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size < 2:
        raise ValueError(f"{name}: expected a map with at least 2 points, got {array.size}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: expected finite map values, got NaN/inf")
    return array


def _is_constant(values: np.ndarray) -> bool:
    scale = float(np.max(np.abs(values)))
    return float(np.ptp(values)) <= _CONSTANT_RELATIVE_RANGE * scale


# ----------------------------------------------------------------------------- saliency metrics


def fixation_mask(target) -> np.ndarray:
    """ViSAGe's "fixations" of a ground-truth energy map: ``F > max(F) − std(F)`` (population std).

    Shape as ``target``, boolean. A constant map has none.
    """
    target = np.asarray(target, dtype=np.float64)
    return target > np.max(target) - np.std(target)


def correlation_coefficient(prediction, target, mode: str = "corrected") -> float:
    """Pearson correlation between two maps of the same shape (any shape; flattened).

    ``mode="original"``: the original's ``CorrCoeff`` (z-score both, then Pearson; a constant map gives NaN).
    ``mode="corrected"``: NaN if ``target`` is constant (undefined), 0.0 if only ``prediction`` is constant.
    """
    _check_mode(mode)
    prediction = _flat_finite(prediction, "prediction")
    target = _flat_finite(target, "target")
    if prediction.shape != target.shape:
        raise ValueError(f"expected maps of the same size, got {prediction.size} and {target.size} points")
    if mode == "corrected":
        if _is_constant(target):
            return float("nan")
        if _is_constant(prediction):
            return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        prediction = (prediction - prediction.mean()) / prediction.std()
        target = (target - target.mean()) / target.std()
        prediction = prediction - prediction.mean()
        target = target - target.mean()
        return float(np.sum(prediction * target) / np.sqrt(np.sum(prediction**2) * np.sum(target**2)))


def auc_judd(saliency, target, mode: str = "corrected", rng: np.random.Generator | None = None) -> float:
    """AUC-Judd of a predicted energy map (``saliency``) against a ground-truth map (``target``).

    Fixations are :func:`fixation_mask` of ``target``; see the module docstring for the two modes' ROC
    indexing, jitter and degenerate cases.

    Args:
        saliency, target: maps of the same size (any shape; flattened), e.g. ``(10312,)``.
        mode: ``"corrected"`` (MIT reference AUC-Judd) or ``"original"`` (ViSAGe's off-by-one).
        rng: source of the tie-breaking jitter; ``None`` uses ``np.random.default_rng(0)``.
    """
    _check_mode(mode)
    saliency = _flat_finite(saliency, "saliency")
    target = _flat_finite(target, "target")
    if saliency.shape != target.shape:
        raise ValueError(f"expected maps of the same size, got {saliency.size} and {target.size} points")
    rng = np.random.default_rng(0) if rng is None else rng
    if mode == "original":
        saliency = saliency + rng.standard_normal(saliency.size) * JITTER_SCALE
        saliency = (saliency - saliency.min()) / (saliency.max() - saliency.min())
        first_rank = 0
    else:
        if _is_constant(target):
            return float("nan")
        if _is_constant(saliency):
            return 0.5
        saliency = (saliency - saliency.min()) / np.ptp(saliency)
        saliency = saliency + rng.standard_normal(saliency.size) * JITTER_SCALE
        first_rank = 1
    fixated = fixation_mask(target)
    num_fixations, num_points = int(fixated.sum()), saliency.size
    thresholds = np.sort(saliency[fixated])[::-1]
    # #{S >= thr} for every threshold at once, counted among the values at or above the lowest threshold
    # only (sorting that subset is cheaper than sorting the whole map): its size minus those strictly below.
    candidates = np.sort(saliency[saliency >= thresholds[-1]]) if num_fixations else np.empty(0)
    above = candidates.size - np.searchsorted(candidates, thresholds, side="left")
    rank = np.arange(num_fixations) + first_rank
    true_positive = rank / num_fixations if num_fixations else rank.astype(np.float64)
    false_positive = (above - rank) / (num_points - num_fixations)
    true_positive = np.concatenate([[0.0], true_positive, [1.0]])
    false_positive = np.concatenate([[0.0], false_positive, [1.0]])
    return float(np.trapezoid(true_positive, false_positive))


# ----------------------------------------------------------------------------- maps from audio


def prepare_clip(
    foa,
    sample_rate: int,
    duration_seconds: float | None = CLIP_SECONDS,
    target_rate: int = METRIC_SAMPLE_RATE,
) -> np.ndarray:
    """Resample FOA to the metric rate and cut or zero-pad it to ``duration_seconds``, float64 ``(4, n)``.

    ``duration_seconds=None`` keeps the length. The original cuts/pads to 5 s at 16 kHz (80,000 samples).
    """
    foa = check_foa(foa)
    sample_rate = check_sample_rate(sample_rate)
    foa = resample(foa, sample_rate, target_rate).astype(np.float64)
    if duration_seconds is None:
        return foa
    if not (np.isfinite(duration_seconds) and duration_seconds > 0):
        raise ValueError(f"duration_seconds: expected a positive number or None, got {duration_seconds!r}")
    length = round(duration_seconds * target_rate)
    if foa.shape[-1] >= length:
        return foa[:, :length]
    return np.pad(foa, ((0, 0), (0, length - foa.shape[-1])))


def metric_maps(foa, sample_rate: int = METRIC_SAMPLE_RATE, mode: str = "corrected") -> dict[str, np.ndarray]:
    """Equal-area energy maps of a prepared clip for every window size: ``{"all": (1, 10312), "1fps":
    (n_1s, 10312), "5fps": (n_200ms, 10312)}`` (5 and 25 windows on a 5 s clip; a trailing partial window is
    dropped; a window longer than the clip gives ``(0, 10312)``). ``mode`` selects the SH normalisation
    (``"original"`` slip or SN3D)."""
    normalization = "original" if _check_mode(mode) == "original" else "sn3d"
    maps = {}
    for name, seconds in WINDOWS.items():
        if seconds is not None and round(seconds * sample_rate) > np.shape(foa)[-1]:
            maps[name] = np.zeros((0, maps["all"].shape[-1]))
            continue
        grid_maps = energy_map(
            foa, sample_rate=sample_rate, window_seconds=seconds, normalization=normalization
        )
        maps[name] = equal_area_resample(grid_maps.reshape(-1, *grid_maps.shape[-2:]))
    return maps


# ----------------------------------------------------------------------------- per-clip scores


@dataclass(frozen=True)
class SpatialScores:
    """One clip's spatial scores; NaN where undefined (see the module docstring)."""

    cc_all: float
    cc_1fps: float
    cc_5fps: float
    auc_all: float
    auc_1fps: float
    auc_5fps: float
    angular_error_energy: float = float("nan")
    angular_error_intensity: float = float("nan")

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _window_means(cc: np.ndarray, auc: np.ndarray) -> tuple[float, float]:
    """Mean over windows, dropping a window from both metrics when either is NaN (as the original does)."""
    valid = ~(np.isnan(cc) | np.isnan(auc))
    if not valid.any():
        return float("nan"), float("nan")
    return float(cc[valid].mean()), float(auc[valid].mean())


def spatial_scores_from_maps(
    prediction_maps: dict[str, np.ndarray],
    target_maps: dict[str, np.ndarray],
    mode: str = "corrected",
    rng: np.random.Generator | None = None,
) -> dict[str, float]:
    """CC and AUC for each window size from precomputed maps (as :func:`metric_maps` returns them).

    Also accepts the original's ground-truth ``.npz`` layout (``map`` ``(P,)``, ``map_1fps``, ``map_5fps``)
    once renamed to ``all`` / ``1fps`` / ``5fps``. Returns ``{"cc_all": ..., "auc_5fps": ...}``.
    """
    _check_mode(mode)
    rng = np.random.default_rng(0) if rng is None else rng
    scores = {}
    for name in WINDOWS:
        predicted = np.atleast_2d(np.asarray(prediction_maps[name], dtype=np.float64))
        target = np.atleast_2d(np.asarray(target_maps[name], dtype=np.float64))
        if predicted.shape != target.shape:
            raise ValueError(
                f"{name}: expected prediction and ground-truth maps of the same shape, "
                f"got {predicted.shape} and {target.shape} (different clip lengths?)"
            )
        cc = np.array([correlation_coefficient(p, t, mode) for p, t in zip(predicted, target)])
        auc = np.array([auc_judd(p, t, mode, rng) for p, t in zip(predicted, target)])
        if name == "all":
            scores["cc_all"], scores["auc_all"] = float(cc[0]), float(auc[0])
        else:
            scores[f"cc_{name}"], scores[f"auc_{name}"] = _window_means(cc, auc)
    return scores


def dominant_direction_error(
    prediction, target, sample_rate: int = METRIC_SAMPLE_RATE, method: str = "energy"
) -> float:
    """Great-circle angle in degrees between the dominant directions of two prepared FOA clips.

    ``method="energy"``: the maximum of the whole-clip SN3D energy map (2° grid);
    ``method="intensity"``: the time-averaged active intensity vector ``mean(W·(X, Y, Z))``.
    NaN when either clip has no dominant direction (silence, a constant map, zero intensity).
    """
    if method == "energy":
        maps = [energy_map(clip, normalization="sn3d") for clip in (prediction, target)]
        if any(_is_constant(m.ravel()) for m in maps):
            return float("nan")
        directions = [direction_from_energy_map(m) for m in maps]
    elif method == "intensity":
        try:
            directions = [direction_from_intensity(clip, sample_rate) for clip in (prediction, target)]
        except ValueError:
            return float("nan")
    else:
        raise ValueError(f"method: expected 'energy' or 'intensity', got {method!r}")
    (azimuth_a, elevation_a), (azimuth_b, elevation_b) = directions
    return float(angular_distance(azimuth_a, elevation_a, azimuth_b, elevation_b))


def spatial_scores(
    prediction,
    target,
    sample_rate: int,
    target_sample_rate: int | None = None,
    mode: str = "corrected",
    rng: np.random.Generator | None = None,
    seed: int = 0,
    duration_seconds: float | None = CLIP_SECONDS,
) -> SpatialScores:
    """All spatial scores of one generated FOA clip against its ground truth.

    Both clips are resampled to 16 kHz and cut/padded to ``duration_seconds`` (forced to 5 s in
    ``mode="original"``). With ``duration_seconds=None`` (corrected mode only) both keep their length, which
    must then agree within 10 ms; the longer one is trimmed.

    Args:
        prediction, target: AmbiX FOA ``(4, samples)``.
        sample_rate: Hz of ``prediction``; ``target_sample_rate`` of ``target`` (default: the same).
        mode: ``"corrected"`` or ``"original"`` (module docstring).
        rng: jitter source; if ``None``, ``np.random.default_rng(seed)``.

    Raises:
        ValueError: bad FOA, or (``duration_seconds=None``) lengths that differ by more than 10 ms.
    """
    _check_mode(mode)
    target_sample_rate = sample_rate if target_sample_rate is None else target_sample_rate
    if mode == "original":
        duration_seconds = CLIP_SECONDS
    prediction = prepare_clip(prediction, sample_rate, duration_seconds)
    target = prepare_clip(target, target_sample_rate, duration_seconds)
    if prediction.shape[-1] != target.shape[-1]:
        difference = abs(prediction.shape[-1] - target.shape[-1])
        if difference > METRIC_SAMPLE_RATE // 100:
            raise ValueError(
                f"expected prediction and ground truth of the same duration, got "
                f"{prediction.shape[-1] / METRIC_SAMPLE_RATE:.3f} s and {target.shape[-1] / METRIC_SAMPLE_RATE:.3f} s "
                "(pass duration_seconds= to cut/pad both)"
            )
        length = min(prediction.shape[-1], target.shape[-1])
        prediction, target = prediction[:, :length], target[:, :length]
    if prediction.shape[-1] < METRIC_SAMPLE_RATE:
        raise ValueError(
            f"expected at least 1 s of audio for the 1 fps windows, got {prediction.shape[-1] / METRIC_SAMPLE_RATE:.3f} s"
        )
    rng = np.random.default_rng(seed) if rng is None else rng
    scores = spatial_scores_from_maps(
        metric_maps(prediction, mode=mode), metric_maps(target, mode=mode), mode, rng
    )
    return SpatialScores(
        **scores,
        angular_error_energy=dominant_direction_error(prediction, target, method="energy"),
        angular_error_intensity=dominant_direction_error(prediction, target, method="intensity"),
    )
