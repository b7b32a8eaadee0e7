"""Aggregate per-clip scores and lay results out like the paper's Table 3 (markdown).

Table 3 of ViSAGe compares methods on the YT-Ambigen test split by semantic quality (FAD and KLD of the mono
decoded toward the camera, FAD averaged over the four channels) and by spatial accuracy (energy-map CC and
AUC for the whole clip, per 1 s and per 200 ms). :func:`format_table` prints one row per method in that
order; :func:`format_extra_table` prints what the paper does not report (per-channel scores, KLD_avg,
direction errors).

Dataset means (:func:`summarize_clips`): ``mode="original"`` takes the plain mean over clips, so one NaN
clip makes that column NaN, as ``evaluate_spatial.py`` does for its whole-clip scores; ``mode="corrected"``
skips NaN clips (clips with a silent ground truth) and reports how many were skipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ..models.modes import check_mode

__all__ = [
    "EXTRA_COLUMNS",
    "TABLE3_COLUMNS",
    "format_extra_table",
    "format_table",
    "summarize_clips",
]

# (summary key, header, decimals)
TABLE3_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("fad_dec", "FAD<sub>dec</sub> ↓", 2),
    ("kld_dec", "KLD<sub>dec</sub> ↓", 2),
    ("fad_avg", "FAD<sub>avg</sub> ↓", 2),
    ("cc_all", "CC All ↑", 4),
    ("cc_1fps", "CC 1 fps ↑", 4),
    ("cc_5fps", "CC 5 fps ↑", 4),
    ("auc_all", "AUC All ↑", 4),
    ("auc_1fps", "AUC 1 fps ↑", 4),
    ("auc_5fps", "AUC 5 fps ↑", 4),
)
EXTRA_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("kld_avg", "KLD<sub>avg</sub> ↓", 2),
    *((f"fad_{view}", f"FAD {view.upper()} ↓", 2) for view in "wyzx"),
    *((f"kld_{view}", f"KLD {view.upper()} ↓", 2) for view in "wyzx"),
    ("angular_error_energy", "Δ∠ energy (°) ↓", 1),
    ("angular_error_intensity", "Δ∠ intensity (°) ↓", 1),
)


def summarize_clips(
    rows: Iterable[Mapping[str, object]], columns: Sequence[str], mode: str = "corrected"
) -> dict:
    """Mean of each column over clips.

    Args:
        rows: per-clip records (e.g. the per-clip CSV's rows); values may be floats, numeric strings, or
            empty/None for "not computed".
        columns: the columns to average.
        mode: ``"original"`` (plain mean: NaN propagates) or ``"corrected"`` (NaN clips skipped).

    Returns:
        ``{"scores": {column: mean}, "nan_clips": {column: count}, "num_clips": n}``; a column computed for no
        clip is left out of ``scores``.
    """
    check_mode(mode)
    rows = list(rows)
    scores, nan_clips = {}, {}
    for column in columns:
        values = [_as_float(row.get(column)) for row in rows]
        values = np.array([value for value in values if value is not None], dtype=np.float64)
        if values.size == 0:
            continue
        nan_count = int(np.isnan(values).sum())
        nan_clips[column] = nan_count
        if mode == "original" or nan_count == values.size:
            scores[column] = float(values.mean())
        else:
            scores[column] = float(values[~np.isnan(values)].mean())
    return {"scores": scores, "nan_clips": nan_clips, "num_clips": len(rows)}


def _as_float(value) -> float | None:
    if value is None or value == "":
        return None
    return float(value)


def _format_value(value, decimals: int) -> str:
    if value is None:
        return "–"
    value = float(value)
    return "NaN" if math.isnan(value) else f"{value:.{decimals}f}"


def format_table(
    results: Mapping[str, Mapping[str, float]], columns: Sequence[tuple[str, str, int]] = TABLE3_COLUMNS
) -> str:
    """Markdown table, one row per method: ``results`` maps a method name to its scores (``{"cc_all": ...}``).

    Scores a method lacks are shown as "–" (e.g. semantic columns of a spatial-only run).
    """
    header = "| Method | " + " | ".join(title for _, title, _ in columns) + " |"
    rule = "|---|" + "|".join("---:" for _ in columns) + "|"
    lines = [header, rule]
    for method, scores in results.items():
        cells = [_format_value(scores.get(key), decimals) for key, _, decimals in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def format_extra_table(results: Mapping[str, Mapping[str, float]]) -> str:
    """:func:`format_table` of :data:`EXTRA_COLUMNS`, keeping only columns some method has."""
    present = [column for column in EXTRA_COLUMNS if any(column[0] in scores for scores in results.values())]
    return format_table(results, present) if present else ""
