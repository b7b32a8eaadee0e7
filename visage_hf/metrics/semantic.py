"""Semantic metrics: FAD and KLD on the mono decoded toward the camera and on each FOA channel.

The paper (docs/original-implementation.md §6.7–6.8) scores what is heard, independently of where, by
comparing generated and ground-truth audio through pretrained audio models
(:mod:`visage_hf.metrics.embedders`) at 16 kHz, on five mono *views* of each FOA clip:

* ``dec``: the mono decoded toward the camera direction (FAD_dec, KLD_dec);
* ``w``, ``y``, ``z``, ``x``: each AmbiX channel on its own; FAD_avg / KLD_avg average the four.

**FAD** (Fréchet audio distance): fit a Gaussian ``N(μ, Σ)`` to all frame embeddings of a set (every frame
of every clip; ``Σ`` the unbiased covariance) and take the Fréchet distance
``‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½)`` between the generated and the ground-truth set.

**KLD**: per clip pair, the Kullback–Leibler divergence of the *generated* clip's class distribution from the
*ground truth*'s, ``KL(p_gt ‖ p_gen) = Σ_c p_gt,c (log p_gt,c − log p_gen,c)`` with ``p = softmax(logits)``,
then the mean over clips. This is ``audioldm_eval``'s ``kullback_leibler_divergence_softmax`` (branch
``passt_replace_panns``, ``metrics/kl.py``): ``kl_div(log(softmax(gen) + 1e−6), softmax(gt), "sum") / N``,
i.e. the same direction and averaging, with ``1e−6`` added to the generated probabilities inside the log.

Two modes:

* ``mode="original"`` reproduces the original: the ``1e−6`` inside the log, the ``scipy.linalg.sqrtm``
  route of the Fréchet distance (as ``audioldm_eval`` / pytorch-fid), and its two *different* mono decodes:
  the ground truth through ``prepare_test.ambi2mono`` ``W + cos θ cos φ·X + cos θ sin φ·Y + sin θ·Z`` and
  the generated audio through ``evaluate_semantic.ambi2mono``, whose operator typo makes it
  ``W + cos φ sin φ·X·Y + sin θ·Z`` (a sample-wise product of X and Y; §9 B3); both with the original's
  mirrored azimuth ``φ = 2a − 179``, i.e. ``φ = −azimuth`` for the true camera azimuth (§5.5, §9 B2).
* ``mode="corrected"`` (default): exact KL from log-softmax (no epsilon), the eigenvalue form of the
  Fréchet distance (symmetric, no complex round-off), and the same unit-gain cardioid toward the true camera
  direction on both sides (:func:`visage_hf.audio.foa.decode_mono`).

Directions are public degrees (true ambisonic azimuth; see :mod:`visage_hf.directions`) in both modes;
original mode mirrors them itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from ..audio.foa import decode_mono
from .spatial import CLIP_SECONDS, METRIC_SAMPLE_RATE, prepare_clip

if TYPE_CHECKING:  # the embedders module imports torch, which the metric maths does not need
    from .embedders import AudioClassifier, AudioEmbedder

__all__ = [
    "CHANNEL_VIEWS",
    "KL_EPSILON",
    "VIEWS",
    "camera_mono",
    "clip_kl",
    "clip_semantic_features",
    "frechet_audio_distance",
    "frechet_distance",
    "gaussian_statistics",
    "kl_divergence",
    "semantic_summary",
    "semantic_views",
]

VIEWS = ("dec", "w", "y", "z", "x")
CHANNEL_VIEWS = ("w", "y", "z", "x")  # AmbiX channel order: index i of the FOA is CHANNEL_VIEWS[i]
KL_EPSILON = 1e-6  # audioldm_eval's epsilon inside log(softmax(gen) + eps)
_MODES = ("corrected", "original")


def _check_mode(mode: str) -> str:
    if mode not in _MODES:
        raise ValueError(f"mode: expected one of {_MODES}, got {mode!r}")
    return mode


# ----------------------------------------------------------------------------- Fréchet distance


def gaussian_statistics(embeddings) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(dim,)`` and unbiased covariance ``(dim, dim)`` of embeddings ``(frames, dim)``."""
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or embeddings.shape[0] < 2:
        raise ValueError(f"expected embeddings of shape (frames >= 2, dim), got shape {embeddings.shape}")
    if not np.isfinite(embeddings).all():
        raise ValueError("expected finite embeddings, got NaN/inf")
    return embeddings.mean(axis=0), np.atleast_2d(np.cov(embeddings, rowvar=False))


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def _trace_sqrt_product_eigen(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    # tr((Σ1Σ2)^½) = tr((Σ1^½ Σ2 Σ1^½)^½): the inner matrix is symmetric PSD, so its square root is real.
    root = _psd_sqrt(sigma1)
    values = np.linalg.eigvalsh(root @ sigma2 @ root)
    return float(np.sqrt(np.clip(values, 0.0, None)).sum())


def _trace_sqrt_product_sqrtm(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> float:
    from scipy import linalg

    product_root = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(product_root).all():
        # Nearly singular product: regularise both covariances, as pytorch-fid / audioldm_eval do.
        offset = np.eye(sigma1.shape[0]) * eps
        product_root = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(product_root):
        imaginary = np.abs(np.diagonal(product_root).imag).max()
        if imaginary > 1e-3:
            raise ValueError(f"matrix square root has a large imaginary component ({imaginary:.3g})")
        product_root = product_root.real
    return float(np.trace(product_root))


def frechet_distance(mu1, sigma1, mu2, sigma2, method: str = "eigen", eps: float = 1e-6) -> float:
    """Fréchet distance between ``N(mu1, sigma1)`` and ``N(mu2, sigma2)``.

    ``‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁Σ₂)^½``. ``method="eigen"`` computes the last trace from the
    eigenvalues of the symmetric ``Σ₁^½ Σ₂ Σ₁^½``; ``method="sqrtm"`` uses ``scipy.linalg.sqrtm(Σ₁Σ₂)``
    (retrying with ``eps`` on the diagonal if it is not finite, dropping a negligible imaginary part), as
    ``audioldm_eval`` does.
    """
    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, dtype=np.float64)),
        np.atleast_1d(np.asarray(mu2, dtype=np.float64)),
    )
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    dim = mu1.shape[0]
    if mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise ValueError(
            f"expected means (d,) and covariances (d, d) of one size, got {mu1.shape}, {sigma1.shape}, "
            f"{mu2.shape}, {sigma2.shape}"
        )
    if method == "eigen":
        trace_root = _trace_sqrt_product_eigen(sigma1, sigma2)
    elif method == "sqrtm":
        trace_root = _trace_sqrt_product_sqrtm(sigma1, sigma2, eps)
    else:
        raise ValueError(f"method: expected 'eigen' or 'sqrtm', got {method!r}")
    difference = mu1 - mu2
    return float(difference @ difference + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_root)


def frechet_audio_distance(prediction_embeddings, target_embeddings, mode: str = "corrected") -> float:
    """FAD between two embedding sets ``(frames, dim)`` (frames of all clips stacked)."""
    method = "sqrtm" if _check_mode(mode) == "original" else "eigen"
    return frechet_distance(
        *gaussian_statistics(prediction_embeddings), *gaussian_statistics(target_embeddings), method=method
    )


# ----------------------------------------------------------------------------- KL divergence


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def kl_divergence(prediction, target, mode: str = "corrected", inputs: str = "logits") -> np.ndarray:
    """Per-clip ``KL(p_target ‖ p_prediction)`` in nats, float64 ``(clips,)``; the paper's KLD is its mean.

    Args:
        prediction, target: ``(clips, classes)`` (or ``(classes,)`` for one clip) classifier outputs,
            paired row by row.
        mode: ``"original"`` adds ``1e−6`` to the predicted probabilities inside the log (audioldm_eval);
            ``"corrected"`` is exact.
        inputs: ``"logits"`` (softmax applied here) or ``"probabilities"`` (rows summing to 1).
    """
    _check_mode(mode)
    prediction = np.atleast_2d(np.asarray(prediction, dtype=np.float64))
    target = np.atleast_2d(np.asarray(target, dtype=np.float64))
    if prediction.shape != target.shape:
        raise ValueError(f"expected paired outputs of one shape, got {prediction.shape} and {target.shape}")
    if not (np.isfinite(prediction).all() and np.isfinite(target).all()):
        raise ValueError("expected finite classifier outputs, got NaN/inf")
    if inputs == "logits":
        log_p, log_q = _log_softmax(target), _log_softmax(prediction)
        p, q = np.exp(log_p), np.exp(log_q)
    elif inputs == "probabilities":
        p, q = target, prediction
        if (
            np.any(p < 0)
            or np.any(q < 0)
            or not np.allclose(p.sum(-1), 1, atol=1e-6)
            or not np.allclose(q.sum(-1), 1, atol=1e-6)
        ):
            raise ValueError("inputs='probabilities': expected non-negative rows summing to 1")
        with np.errstate(divide="ignore"):
            log_p, log_q = np.log(p), np.log(q)
    else:
        raise ValueError(f"inputs: expected 'logits' or 'probabilities', got {inputs!r}")
    if mode == "original":
        log_q = np.log(q + KL_EPSILON)
    # 0·log 0 = 0 (as torch.kl_div); a target class with p > 0 where q = 0 gives +inf in corrected mode.
    with np.errstate(invalid="ignore", divide="ignore"):
        terms = np.where(p > 0, p * (log_p - log_q), 0.0)
    return terms.sum(axis=-1)


# ----------------------------------------------------------------------------- mono views of FOA


def _original_generated_mono(foa: np.ndarray, azimuth: float, elevation: float) -> np.ndarray:
    """``evaluate_semantic.ambi2mono`` as written: ``w + cos(el)*cos(az)*x / +cos(el)*sin(az)*y + sin(el)*z``
    parses as ``W + cos φ sin φ·X·Y + sin θ·Z``."""
    phi, theta = np.deg2rad(azimuth), np.deg2rad(elevation)
    w, y, z, x = foa
    return w + np.cos(phi) * np.sin(phi) * x * y + np.sin(theta) * z


def camera_mono(
    foa, azimuth: float, elevation: float, mode: str = "corrected", side: str = "target"
) -> np.ndarray:
    """The mono decoded toward the camera, float64 ``(samples,)``.

    Args:
        foa: AmbiX ``(4, samples)``.
        azimuth, elevation: the camera direction in public degrees (true ambisonic azimuth).
        mode: ``"corrected"``: unit-gain cardioid toward ``(azimuth, elevation)`` for both sides.
            ``"original"``: the original's decodes with its mirrored azimuth ``−azimuth``: the correct
            first-order beam (gain 2 on axis) for ``side="target"``, the typo'd one for ``side="prediction"``.
        side: ``"prediction"`` or ``"target"`` (matters only in original mode).
    """
    _check_mode(mode)
    if side not in ("prediction", "target"):
        raise ValueError(f"side: expected 'prediction' or 'target', got {side!r}")
    foa = np.asarray(foa, dtype=np.float64)
    if mode == "corrected":
        return decode_mono(foa, azimuth, elevation, mode="corrected").astype(np.float64)
    mirrored_azimuth = -float(azimuth)
    if side == "prediction":
        return _original_generated_mono(foa, mirrored_azimuth, elevation)
    return decode_mono(foa, mirrored_azimuth, elevation, mode="original").astype(np.float64)


def semantic_views(
    foa,
    sample_rate: int,
    azimuth: float | None,
    elevation: float | None,
    mode: str = "corrected",
    side: str = "target",
    duration_seconds: float | None = CLIP_SECONDS,
) -> dict[str, np.ndarray]:
    """The five mono views ``{"dec", "w", "y", "z", "x"}`` of an FOA clip at 16 kHz, cut/padded to
    ``duration_seconds`` (forced to 5 s in original mode, like the original). Without a direction
    (``azimuth is None``) the ``dec`` view is left out."""
    if _check_mode(mode) == "original":
        duration_seconds = CLIP_SECONDS
    foa = prepare_clip(foa, sample_rate, duration_seconds)
    views = dict(zip(CHANNEL_VIEWS, foa))
    if azimuth is not None and elevation is not None:
        views = {"dec": camera_mono(foa, azimuth, elevation, mode, side), **views}
    return views


def clip_semantic_features(
    prediction,
    target,
    sample_rate: int,
    target_sample_rate: int | None = None,
    azimuth: float | None = None,
    elevation: float | None = None,
    embedder: AudioEmbedder | None = None,
    classifier: AudioClassifier | None = None,
    mode: str = "corrected",
    duration_seconds: float | None = CLIP_SECONDS,
) -> dict[str, np.ndarray]:
    """Embeddings and classifier outputs of every view of one clip pair, for caching and pooling.

    Returns a flat dict of arrays keyed ``"{kind}/{view}/{side}"`` with kind ``embedding`` ``(frames, dim)``
    or ``logits`` ``(classes,)``, view in :data:`VIEWS`, side ``prediction`` / ``target``.
    """
    target_sample_rate = sample_rate if target_sample_rate is None else target_sample_rate
    sides = {
        "prediction": semantic_views(
            prediction, sample_rate, azimuth, elevation, mode, "prediction", duration_seconds
        ),
        "target": semantic_views(
            target, target_sample_rate, azimuth, elevation, mode, "target", duration_seconds
        ),
    }
    features = {}
    for side, views in sides.items():
        for view, audio in views.items():
            if embedder is not None:
                features[f"embedding/{view}/{side}"] = np.asarray(embedder.embed(audio, METRIC_SAMPLE_RATE))
            if classifier is not None:
                features[f"logits/{view}/{side}"] = np.asarray(classifier.logits(audio, METRIC_SAMPLE_RATE))
    return features


def clip_kl(
    features: Mapping[str, np.ndarray], mode: str = "corrected", inputs: str = "logits"
) -> dict[str, float]:
    """Per-clip KLD of each view present in ``features`` (from :func:`clip_semantic_features`):
    ``{"kld_dec": ..., "kld_w": ...}``."""
    scores = {}
    for view in VIEWS:
        key = f"logits/{view}/prediction"
        if key in features:
            scores[f"kld_{view}"] = float(
                kl_divergence(features[key], features[f"logits/{view}/target"], mode, inputs)[0]
            )
    return scores


def semantic_summary(
    clips: Iterable[Mapping[str, np.ndarray]], mode: str = "corrected", inputs: str = "logits"
) -> dict[str, float]:
    """Dataset-level semantic scores from per-clip features (:func:`clip_semantic_features`).

    Returns whichever apply of ``fad_{view}``, ``kld_{view}`` for every view, plus ``fad_avg`` / ``kld_avg``
    (mean over W, Y, Z, X, as the original's ``fad_mean`` / ``kld_mean``). KLD is the mean of per-clip KL;
    FAD pools every frame of every clip.
    """
    _check_mode(mode)
    embeddings: dict[tuple[str, str], list[np.ndarray]] = {}
    logits: dict[tuple[str, str], list[np.ndarray]] = {}
    for clip in clips:
        for key, value in clip.items():
            kind, view, side = key.split("/")
            (embeddings if kind == "embedding" else logits).setdefault((view, side), []).append(
                np.asarray(value)
            )
    summary = {}
    for view in VIEWS:
        if (view, "prediction") in embeddings and (view, "target") in embeddings:
            summary[f"fad_{view}"] = frechet_audio_distance(
                np.concatenate(embeddings[view, "prediction"]),
                np.concatenate(embeddings[view, "target"]),
                mode,
            )
        if (view, "prediction") in logits and (view, "target") in logits:
            per_clip = kl_divergence(
                np.stack(logits[view, "prediction"]), np.stack(logits[view, "target"]), mode, inputs
            )
            summary[f"kld_{view}"] = float(per_clip.mean())
    for metric in ("fad", "kld"):
        channel_scores = [summary.get(f"{metric}_{view}") for view in CHANNEL_VIEWS]
        if all(score is not None for score in channel_scores):
            summary[f"{metric}_avg"] = float(np.mean(channel_scores))
    return summary
