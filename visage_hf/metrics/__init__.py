"""Evaluation metrics of the ViSAGe paper: spatial (energy-map CC / AUC-Judd, direction errors) and semantic
(FAD / KLD with pluggable audio models), plus Table 3 formatting.

The model wrappers (:mod:`visage_hf.metrics.embedders`: VGGish, PaSST) import torch, so they load on first
use; the metric maths needs only numpy and scipy.
"""

from __future__ import annotations

import importlib

from .semantic import (
    VIEWS,
    camera_mono,
    clip_kl,
    clip_semantic_features,
    frechet_audio_distance,
    frechet_distance,
    gaussian_statistics,
    kl_divergence,
    semantic_summary,
    semantic_views,
)
from .spatial import (
    WINDOWS,
    SpatialScores,
    auc_judd,
    correlation_coefficient,
    dominant_direction_error,
    fixation_mask,
    metric_maps,
    prepare_clip,
    spatial_scores,
    spatial_scores_from_maps,
)
from .table import format_extra_table, format_table, summarize_clips

_LAZY = {
    "AudioClassifier": "embedders",
    "AudioEmbedder": "embedders",
    "PasstClassifier": "embedders",
    "VGGish": "embedders",
    "VGGishConfig": "embedders",
    "VGGishEmbedder": "embedders",
}

__all__ = [
    "VIEWS",
    "WINDOWS",
    "AudioClassifier",
    "AudioEmbedder",
    "PasstClassifier",
    "SpatialScores",
    "VGGish",
    "VGGishConfig",
    "VGGishEmbedder",
    "auc_judd",
    "camera_mono",
    "clip_kl",
    "clip_semantic_features",
    "correlation_coefficient",
    "dominant_direction_error",
    "fixation_mask",
    "format_extra_table",
    "format_table",
    "frechet_audio_distance",
    "frechet_distance",
    "gaussian_statistics",
    "kl_divergence",
    "metric_maps",
    "prepare_clip",
    "semantic_summary",
    "semantic_views",
    "spatial_scores",
    "spatial_scores_from_maps",
    "summarize_clips",
]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
