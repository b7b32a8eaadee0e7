"""Tests for visage_hf.metrics.spatial: energy-map CC / AUC-Judd and direction errors.

References are independent of our code: hand-derived numbers, naive loop restatements of the original's
``utils/wild_360.py`` and of the MIT ``AUC_Judd.m`` (from docs/original-implementation.md §6 and
docs/original-implementation.md §E4.7), ``np.corrcoef``, and physics (a source encoded at a direction).
"""

import math

import numpy as np
import pytest

from visage_hf.audio.foa import encode
from visage_hf.metrics.spatial import (
    WINDOWS,
    auc_judd,
    correlation_coefficient,
    dominant_direction_error,
    fixation_mask,
    metric_maps,
    prepare_clip,
    spatial_scores,
)

RATE = 16_000
EQUAL_AREA_POINTS = 10_312  # docs/original-implementation.md §6.3 / §11


def _source_clip(azimuth, elevation, seed=0, seconds=5.0, noise=0.05):
    """A noise source at a direction plus weak independent noise on every channel (a diffuse floor)."""
    rng = np.random.default_rng(seed)
    samples = int(seconds * RATE)
    foa = encode(rng.standard_normal(samples), azimuth, elevation)
    return (foa + noise * rng.standard_normal(foa.shape)).astype(np.float32)


# ----------------------------------------------------------------------------- naive restatements


def _trapezoid_loop(y, x):
    return sum(0.5 * (x[k + 1] - x[k]) * (y[k + 1] + y[k]) for k in range(len(x) - 1))


def _auc_judd_original_loop(saliency, target, jitter):
    """utils/wild_360.AUC_Judd as described in docs/original-implementation.md §6.5, with explicit loops."""
    saliency = saliency + jitter
    saliency = (saliency - saliency.min()) / (saliency.max() - saliency.min())
    std = math.sqrt(sum((f - target.mean()) ** 2 for f in target) / len(target))
    fixated = [s for s, f in zip(saliency, target) if f > target.max() - std]
    count_fix, count_all = len(fixated), len(saliency)
    tp, fp = [0.0], [0.0]
    for i, threshold in enumerate(sorted(fixated, reverse=True)):
        above = sum(1 for s in saliency if s >= threshold)
        tp.append(i / count_fix)
        fp.append((above - i) / (count_all - count_fix))
    return _trapezoid_loop([*tp, 1.0], [*fp, 1.0])


def _auc_judd_mit_loop(saliency, target, jitter):
    """cvzoya/saliency AUC_Judd.m (1-based loop i = 1..Nfix), with ViSAGe's fixation rule and the jitter
    applied after min-max normalisation (our corrected mode)."""
    saliency = (saliency - saliency.min()) / (saliency.max() - saliency.min()) + jitter
    std = math.sqrt(sum((f - target.mean()) ** 2 for f in target) / len(target))
    fixated = [s for s, f in zip(saliency, target) if f > target.max() - std]
    count_fix, count_all = len(fixated), len(saliency)
    thresholds = sorted(fixated, reverse=True)
    tp, fp = [0.0], [0.0]
    for i in range(1, count_fix + 1):
        above = sum(1 for s in saliency if s >= thresholds[i - 1])
        tp.append(i / count_fix)
        fp.append((above - i) / (count_all - count_fix))
    return _trapezoid_loop([*tp, 1.0], [*fp, 1.0])


def _er_sphere_sample_loop(grid_map):
    """evaluate_spatial.er_sphere_sample restated from docs/original-implementation.md §6.3 (np.interp with period=360)."""
    height, width = grid_map.shape
    out = []
    for row in range(height):
        count = round(width * math.sin(math.pi * (row + 0.5) / height))
        positions = np.arange(count) * (width - 0.5 * (width / count)) / count
        out.extend(np.interp(positions, np.arange(width), grid_map[row], period=360))
    return np.array(out)


def _naive_original_energy_map(foa):
    """Decode every sample on the 2° grid with the original's SH weights (docs/original-implementation.md §6.2), then RMS."""
    azimuths = np.deg2rad(np.arange(178.0, -181.0, -2.0))  # 178 ... -180, left to right
    elevations = np.deg2rad(np.arange(88.0, -91.0, -2.0))  # +88 ... -90, top to bottom (after flipud)
    w, y, z, x = foa.astype(np.float64)
    grid = np.empty((90, 180))
    for row, nu in enumerate(elevations):
        weights_y = math.sqrt(2) * np.cos(nu) * np.sin(azimuths)
        weights_x = math.sqrt(2) * np.cos(nu) * np.cos(azimuths)
        decoded = w[:, None] + y[:, None] * weights_y + z[:, None] * np.sin(nu) + x[:, None] * weights_x
        grid[row] = np.sqrt(np.mean(decoded**2, axis=0))
    return grid


# ----------------------------------------------------------------------------- hand-derived values

# A 4-point example worked by hand (values chosen so every step is exact):
#   F = [0, 1, 3, 3]: mean 1.75, population std sqrt(1.6875) = 1.299 -> fixations where F > 1.701: points 2, 3.
#   S = [0, 0.5, 1, 0.25] (already min-max normalised); fixation saliencies sorted: 1.0, 0.25; N_f = 2, N_p = 4.
#   original: thr 1.0: #{S>=1}=1 -> (FPR, TPR) = ((1-0)/2, 0/2) = (0.5, 0);
#             thr 0.25: #{S>=0.25}=3 -> ((3-1)/2, 1/2) = (1.0, 0.5)
#             curve (0,0) (0.5,0) (1,0.5) (1,1): area = 0.5 * (0 + 0.5) / 2 = 0.125
#   MIT:      thr 1.0 -> ((1-1)/2, 1/2) = (0, 0.5); thr 0.25 -> ((3-2)/2, 2/2) = (0.5, 1)
#             curve (0,0) (0,0.5) (0.5,1) (1,1): area = 0.5 * (0.5 + 1) / 2 + 0.5 * 1 = 0.875
#   CC: deviations dS = [-.4375, .0625, .5625, -.1875], dF = [-1.75, -.75, 1.25, 1.25];
#       ΣdSdF = 1.1875, ΣdS² = 0.546875, ΣdF² = 6.75.
HAND_S = np.array([0.0, 0.5, 1.0, 0.25])
HAND_F = np.array([0.0, 1.0, 3.0, 3.0])


def test_hand_example_fixations_auc_and_cc():
    assert fixation_mask(HAND_F).tolist() == [False, False, True, True]
    # The 1e-7 jitter moves normalised values by ~1e-7, far below the gaps between them.
    assert auc_judd(HAND_S, HAND_F, mode="original") == pytest.approx(0.125, abs=1e-5)
    assert auc_judd(HAND_S, HAND_F, mode="corrected") == pytest.approx(0.875, abs=1e-5)
    expected_cc = 1.1875 / math.sqrt(0.546875 * 6.75)
    for mode in ("original", "corrected"):
        assert correlation_coefficient(HAND_S, HAND_F, mode) == pytest.approx(expected_cc, rel=1e-12)


# ----------------------------------------------------------------------------- original mode vs loops


@pytest.mark.parametrize("seed", [0, 1])
def test_original_auc_matches_loop_restatement(seed):
    rng = np.random.default_rng(seed)
    saliency = rng.random(600) ** 3
    target = np.round(rng.random(600) * 8)  # quantised: ties in the fixation rule and the counts
    jitter = np.random.default_rng(seed + 10).standard_normal(600) / 1e7
    expected = _auc_judd_original_loop(saliency, target, jitter)
    got = auc_judd(saliency, target, mode="original", rng=np.random.default_rng(seed + 10))
    assert got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_corrected_auc_matches_mit_loop(seed):
    rng = np.random.default_rng(seed)
    saliency = rng.random(600) ** 2
    target = rng.random(600) + 2 * saliency  # correlated with the prediction
    jitter = np.random.default_rng(seed + 20).standard_normal(600) * 1e-7
    expected = _auc_judd_mit_loop(saliency, target, jitter)
    got = auc_judd(saliency, target, mode="corrected", rng=np.random.default_rng(seed + 20))
    assert got == pytest.approx(expected, abs=1e-12)


def test_cc_matches_numpy_corrcoef():
    rng = np.random.default_rng(3)
    a, b = (
        rng.random(EQUAL_AREA_POINTS),
        rng.random(EQUAL_AREA_POINTS) + 0.3 * np.arange(EQUAL_AREA_POINTS) / 1e4,
    )
    for mode in ("original", "corrected"):
        assert correlation_coefficient(a, b, mode) == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-12)


def test_original_mode_maps_match_naive_decode_and_er_sphere_sample():
    foa = _source_clip(40, 20, seconds=0.4)
    maps = metric_maps(foa, mode="original")
    expected = _er_sphere_sample_loop(_naive_original_energy_map(foa))
    assert expected.shape == (EQUAL_AREA_POINTS,)
    np.testing.assert_allclose(maps["all"][0], expected, rtol=1e-9)


# ----------------------------------------------------------------------------- identical / moved / random


def test_identical_maps_give_cc_one_and_auc_maximum():
    maps = metric_maps(prepare_clip(_source_clip(-60, 10), RATE))["all"][0]
    fixations = int(np.sum(maps > maps.max() - maps.std()))
    assert correlation_coefficient(maps, maps) == pytest.approx(1.0, abs=1e-12)
    assert auc_judd(maps, maps, mode="corrected") == pytest.approx(1.0, abs=1e-12)
    # Original, with S = F and no ties: #{S >= thr_i} = i + 1, so every inner ROC point is
    # (FPR, TPR) = (1/(N_p - N_f), i/N_f): a vertical run at FPR = ε up to TPR = (N_f - 1)/N_f, then one
    # trapezoid to (1, 1). Area = (1 - ε)·(1 - 1/(2 N_f)), ε = 1/(N_p - N_f): about 0.9997.
    original = auc_judd(maps, maps, mode="original")
    epsilon = 1.0 / (EQUAL_AREA_POINTS - fixations)
    assert original == pytest.approx((1.0 - epsilon) * (1.0 - 1.0 / (2 * fixations)), abs=1e-12)
    assert original == pytest.approx(0.9997, abs=2e-4)
    assert original < auc_judd(maps, maps, mode="corrected")


@pytest.mark.parametrize("mode", ["original", "corrected"])
def test_source_moved_by_90_degrees_drops_cc(mode):
    target = _source_clip(20, 0, seed=1)
    unmoved = spatial_scores(_source_clip(20, 0, seed=2), target, RATE, mode=mode)
    moved = spatial_scores(_source_clip(110, 0, seed=2), target, RATE, mode=mode)
    for window in ("all", "1fps", "5fps"):
        assert getattr(unmoved, f"cc_{window}") > 0.99
        assert getattr(moved, f"cc_{window}") < 0.3
        assert getattr(moved, f"auc_{window}") < getattr(unmoved, f"auc_{window}") - 0.3
    assert unmoved.angular_error_intensity < 2.0
    assert moved.angular_error_intensity == pytest.approx(90.0, abs=2.0)
    assert moved.angular_error_energy == pytest.approx(90.0, abs=2.0)


@pytest.mark.parametrize("mode", ["original", "corrected"])
def test_independent_random_maps_auc_near_half(mode):
    rng = np.random.default_rng(7)
    scores = [
        auc_judd(rng.random(EQUAL_AREA_POINTS), rng.random(EQUAL_AREA_POINTS), mode, rng) for _ in range(20)
    ]
    assert np.mean(scores) == pytest.approx(0.5, abs=0.02)


# ----------------------------------------------------------------------------- windows and degenerate maps


def test_window_counts_on_a_5_second_clip():
    assert WINDOWS == {"all": None, "1fps": 1.0, "5fps": 0.2}
    for mode in ("original", "corrected"):
        maps = metric_maps(prepare_clip(_source_clip(0, 0), RATE), mode=mode)
        assert {name: m.shape for name, m in maps.items()} == {
            "all": (1, EQUAL_AREA_POINTS),
            "1fps": (5, EQUAL_AREA_POINTS),
            "5fps": (25, EQUAL_AREA_POINTS),
        }


def test_prepare_clip_resamples_and_cuts_or_pads_to_80000():
    long_48k = np.random.default_rng(0).standard_normal((4, 48_000 * 6)).astype(np.float32)
    short_16k = np.ones((4, 16_000 * 3), dtype=np.float32)
    assert prepare_clip(long_48k, 48_000).shape == (4, 80_000)
    padded = prepare_clip(short_16k, RATE)
    assert padded.shape == (4, 80_000)
    assert np.all(padded[:, 48_000:] == 0) and np.all(padded[:, :48_000] == 1)


def test_silent_tail_windows_are_skipped_in_windowed_means():
    # 3 s of sound padded to 5 s: 1 s windows 4 and 5 are silent in both clips (CC NaN, undefined).
    prediction, target = _source_clip(30, 0, seed=3, seconds=3.0), _source_clip(50, 0, seed=4, seconds=3.0)
    for mode in ("original", "corrected"):
        scores = spatial_scores(prediction, target, RATE, mode=mode)
        first_three = [
            np.corrcoef(p, t)[0, 1]
            for p, t in zip(
                metric_maps(prepare_clip(prediction, RATE), mode=mode)["1fps"][:3],
                metric_maps(prepare_clip(target, RATE), mode=mode)["1fps"][:3],
            )
        ]
        assert scores.cc_1fps == pytest.approx(np.mean(first_three), abs=1e-9)
        assert not math.isnan(scores.cc_all)


def test_silent_prediction_original_gives_nan_cc_corrected_gives_chance():
    target = _source_clip(0, 0)
    silent = np.zeros_like(target)
    original = spatial_scores(silent, target, RATE, mode="original")
    corrected = spatial_scores(silent, target, RATE, mode="corrected")
    # Original: CC of a constant map is NaN (kept in "all", the windows are all skipped); its AUC is
    # driven by the 1e-7 jitter alone.
    assert math.isnan(original.cc_all) and math.isnan(original.cc_1fps)
    assert 0.3 < original.auc_all < 0.7
    assert (corrected.cc_all, corrected.auc_all, corrected.cc_5fps, corrected.auc_5fps) == (
        0.0,
        0.5,
        0.0,
        0.5,
    )
    assert math.isnan(corrected.angular_error_energy) and math.isnan(corrected.angular_error_intensity)


def test_constant_ground_truth():
    prediction = np.random.default_rng(0).random(100)
    constant = np.full(100, 3.0)
    # No fixations: the original's ROC is just (0,0)-(1,1); the corrected metric is undefined.
    assert auc_judd(prediction, constant, mode="original") == pytest.approx(0.5)
    assert math.isnan(auc_judd(prediction, constant, mode="corrected"))
    assert math.isnan(correlation_coefficient(prediction, constant, mode="corrected"))
    with np.errstate(all="ignore"):
        assert math.isnan(correlation_coefficient(prediction, constant, mode="original"))


def test_corrected_auc_does_not_depend_on_loudness():
    target = metric_maps(prepare_clip(_source_clip(10, 0, seed=5), RATE))["all"][0]
    prediction = metric_maps(prepare_clip(_source_clip(60, 0, seed=6), RATE))["all"][0]
    loud = auc_judd(prediction, target, "corrected", np.random.default_rng(0))
    quiet = auc_judd(prediction * 1e-9, target, "corrected", np.random.default_rng(0))
    assert quiet == pytest.approx(loud, abs=1e-12)


def test_jitter_is_seeded():
    target, prediction = _source_clip(0, 0, seed=1), _source_clip(15, 5, seed=2)
    first = spatial_scores(prediction, target, RATE, mode="original", seed=3)
    second = spatial_scores(prediction, target, RATE, mode="original", seed=3)
    assert first == second


def test_dominant_direction_error_physics():
    target = prepare_clip(_source_clip(-30, 20), RATE)
    same = prepare_clip(_source_clip(-30, 20, seed=9), RATE)
    elsewhere = prepare_clip(_source_clip(150, -20, seed=9), RATE)  # the antipode
    assert dominant_direction_error(same, target, method="intensity") < 1.0
    assert dominant_direction_error(same, target, method="energy") <= 2.0
    assert dominant_direction_error(elsewhere, target, method="intensity") == pytest.approx(180.0, abs=1.0)
    with pytest.raises(ValueError, match="method"):
        dominant_direction_error(same, target, method="peak")


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="mode"):
        auc_judd(HAND_S, HAND_F, mode="paper")
    with pytest.raises(ValueError, match="same size"):
        correlation_coefficient(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="finite"):
        auc_judd(np.array([0.0, np.nan]), np.array([0.0, 1.0]))
    foa = _source_clip(0, 0, seconds=2.0)
    with pytest.raises(ValueError, match="same duration"):
        spatial_scores(foa, foa[:, :20_000], RATE, duration_seconds=None)
    with pytest.raises(ValueError, match="4-channel"):
        spatial_scores(foa[:2], foa, RATE)
