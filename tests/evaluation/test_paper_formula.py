"""Issue 13, weakness 8: `visage evaluate --mode original` scores equal the original's CC and AUC-Judd restated here
from its description (docs/original-implementation.md §6.2–6.6), with no package code between the WAV files and
the numbers: the 2° grid and its decoding weights (√2 on Y and X), RMS energy per window, the equal-area row
resampling, Pearson CC, AUC-Judd with its off-by-one, and the per-clip mean over 1 s and 0.2 s windows."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf

from visage_hf.evaluation.runner import evaluate_directories

RATE = 16_000
SECONDS = 5


def paper_energy_map(foa: np.ndarray) -> np.ndarray:
    """(90, 180) map of AmbiX ``(4, samples)`` (W, Y, Z, X): row 0 = +88°, rows down to −90°; columns ψ = 178° …
    −180°; value RMS_t(g·x(t)) with g = (1, √2 cos ν sin ψ, sin ν, √2 cos ν cos ψ)."""
    psi = np.radians(np.arange(178, -181, -2))
    nu = np.radians(np.arange(-90, 89, 2))[::-1]
    nu, psi = np.meshgrid(nu, psi, indexing="ij")
    weights = np.stack([np.ones_like(nu), np.sqrt(2) * np.cos(nu) * np.sin(psi), np.sin(nu),
                        np.sqrt(2) * np.cos(nu) * np.cos(psi)])  # fmt: skip
    # mean_t (g·x(t))² = gᵀ C g with C the 4 × 4 second moments (the full (90, 180, samples) product is ~10 GB)
    moments = foa @ foa.T / foa.shape[-1]
    return np.sqrt(np.einsum("crk,cd,drk->rk", weights, moments, weights))


def equal_area_vector(energy: np.ndarray) -> np.ndarray:
    """Row r resampled to round(180 sin(π(r + ½)/90)) points at column k(180 − 90/S)/S, rows concatenated."""
    rows = []
    for r in range(90):
        count = round(180 * np.sin(np.pi * (r + 0.5) / 90))
        positions = np.arange(count) * (180 - 90 / count) / count
        rows.append(np.interp(positions, np.arange(180), energy[r], period=360))
    return np.concatenate(rows)


def auc_judd_original(saliency: np.ndarray, fixation_map: np.ndarray) -> float:
    """AUC-Judd as the original computes it: fixations where F > max F − std F, TPR i/N_f (its off-by-one)."""
    saliency = (saliency - saliency.min()) / (saliency.max() - saliency.min())
    fixated = fixation_map > fixation_map.max() - fixation_map.std()
    thresholds = np.sort(saliency[fixated])[::-1]
    n_fix, n_points = len(thresholds), len(saliency)
    tpr = [0.0] + [i / n_fix for i in range(n_fix)] + [1.0]
    fpr = [0.0] + [(np.sum(saliency >= t) - i) / (n_points - n_fix) for i, t in enumerate(thresholds)] + [1.0]
    return float(np.trapezoid(tpr, fpr))


def paper_scores(prediction: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """CC and AUC over the whole clip, 1 s and 0.2 s windows (mean over windows) for 5-s 16 kHz clips."""
    scores = {}
    for name, window in (("all", SECONDS * RATE), ("1fps", RATE), ("5fps", RATE // 5)):
        cc, auc = [], []
        for start in range(0, SECONDS * RATE, window):
            piece = slice(start, start + window)
            p = equal_area_vector(paper_energy_map(prediction[:, piece]))
            t = equal_area_vector(paper_energy_map(target[:, piece]))
            cc.append(np.corrcoef(p, t)[0, 1])
            auc.append(auc_judd_original(p, t))
        scores[f"cc_{name}"], scores[f"auc_{name}"] = float(np.nanmean(cc)), float(np.nanmean(auc))
    return scores


def _plane_wave(rng, azimuth: float, elevation: float, samples: int) -> np.ndarray:
    a, e = np.radians(azimuth), np.radians(elevation)
    gains = np.array([1.0, np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)])
    return gains[:, None] * rng.standard_normal(samples)


def test_evaluate_original_mode_equals_the_paper_formula(tmp_path):
    rng = np.random.default_rng(3)
    samples = SECONDS * RATE
    # Ground truth: a source moving from the front to the left, plus a little diffuse noise; prediction: a fixed
    # source 30° off, so that CC and AUC are neither perfect nor chance, and differ between window sizes.
    half = samples // 2
    target = np.concatenate([_plane_wave(rng, 0, 0, half), _plane_wave(rng, 90, 20, samples - half)], axis=1)
    target += 0.05 * rng.standard_normal((4, samples))
    prediction = _plane_wave(rng, 30, 0, samples) * 0.5
    for folder, audio in (("gt", target), ("pred", prediction)):
        (tmp_path / folder).mkdir()
        sf.write(tmp_path / folder / "clip.wav", audio.T.astype(np.float32), RATE, subtype="FLOAT")
    evaluate_directories(
        tmp_path / "pred", tmp_path / "gt", tmp_path / "report", mode="original", progress=False
    )
    with open(tmp_path / "report" / "per_clip.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    # The scores of what the files hold (float32 samples).
    expected = paper_scores(*(audio.astype(np.float32).astype(np.float64) for audio in (prediction, target)))
    for name, value in expected.items():
        # CC has no jitter; AUC's 1e-7 tie-breaking jitter moves it by far less than 1e-4 on continuous maps.
        assert float(row[name]) == pytest.approx(value, abs=1e-9 if name.startswith("cc") else 1e-4), name
    assert 0.1 < expected["cc_all"] < 0.99 and expected["cc_5fps"] != pytest.approx(
        expected["cc_all"], abs=1e-3
    )
