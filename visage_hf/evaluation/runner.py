"""``visage evaluate``: score a folder of generated FOA against a folder of ground truth.

::

    visage evaluate --pred generated/ --gt test_audio/ [--directions ambi.json] \
        [--mode original|corrected] [--metrics spatial,semantic] -o report/

Files are paired by their path relative to each folder without the extension (``a/b.wav`` ↔ ``a/b.flac``),
then, for what is left, by file stem when the stem is unique on both sides. The clip id is the prediction's
relative path without extension. Unpaired files on either side are listed in the report, never silently
dropped; a file that cannot be read or is not 4-channel FOA is reported as failed and the run goes on.

Metrics (``--metrics``, comma-separated):

* ``spatial`` (no model weights): energy-map CC / AUC-Judd at All / 1 fps / 5 fps and direction errors
  (:mod:`visage_hf.metrics.spatial`);
* ``fad``: FAD with VGGish (:class:`~visage_hf.metrics.embedders.VGGishEmbedder`, torchvggish weights);
* ``kld``: KLD with PaSST (:class:`~visage_hf.metrics.embedders.PasstClassifier`, optional ``hear21passt``);
* ``semantic`` = ``fad,kld``. The decoded-mono views (FAD_dec, KLD_dec) need ``--directions``.

Report folder:

* ``per_clip.csv``: one row per clip, columns ``clip, cc_all, cc_1fps, cc_5fps, auc_all, auc_1fps, auc_5fps``,
  then ``angular_error_energy, angular_error_intensity, kld_dec, kld_w, kld_y, kld_z, kld_x`` (empty where
  not computed). Each row is appended and flushed to disk as soon as its clip is scored.
* ``cache/``: per-clip embeddings and logits (``.npz``) for the dataset-level FAD.
* ``summary.json``: dataset means, NaN counts, failures, unpaired files, the run configuration.
* ``table.md``: the paper's Table 3 layout (plus a table of additional metrics).
* ``failed.csv`` / ``unmatched.csv``: the clips that failed (with the error) and the unpaired files.

**Resuming.** Rerunning the same command continues where an interrupted run stopped: clips already in
``per_clip.csv`` are skipped (a half-written last line is discarded), failed clips are retried, and the
final table is identical to an uninterrupted run's, because each clip's jitter is seeded from ``--seed`` and
the clip id alone, and dataset scores are computed from the saved rows in clip order. A report folder
written with another configuration is refused unless ``--overwrite`` is given.

**Directions file** (``--directions``) and file pairing: :mod:`visage_hf.data.clip_files`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from ..data.clip_files import AUDIO_EXTENSIONS, load_directions, match_files
from .scoring import ClipScorer, classifier_outputs, scored_in_order

# Only the standard library at import time: `visage --help` builds this parser, and numpy, tqdm and the
# metrics load when a run starts.
if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "METRIC_CHOICES",
    "PER_CLIP_COLUMNS",
    "EvaluationResult",
    "evaluate_directories",
]

# = ("clip", *metrics.spatial.SPATIAL_COLUMNS, *DIRECTION_COLUMNS, kld_ of each of metrics.semantic.VIEWS)
PER_CLIP_COLUMNS = (
    "clip",
    *("cc_all", "cc_1fps", "cc_5fps", "auc_all", "auc_1fps", "auc_5fps"),
    *("angular_error_energy", "angular_error_intensity"),
    *("kld_dec", "kld_w", "kld_y", "kld_z", "kld_x"),
)
DEFAULT_DURATION_SECONDS = 5.0  # = metrics.spatial.CLIP_SECONDS, the paper's clip length
METRIC_CHOICES = ("spatial", "fad", "kld", "semantic")
PER_CLIP_FILE, SUMMARY_FILE, TABLE_FILE = "per_clip.csv", "summary.json", "table.md"
FAILED_FILE, UNMATCHED_FILE, CONFIG_FILE, CACHE_DIR = (
    "failed.csv",
    "unmatched.csv",
    "run_config.json",
    "cache",
)
_MODES = ("corrected", "original")


# ----------------------------------------------------------------------------- inputs


def parse_metrics(metrics: str | Iterable[str]) -> tuple[str, ...]:
    """``"spatial,semantic"`` or an iterable -> the sorted set of ``spatial`` / ``fad`` / ``kld``."""
    names = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    names = [name.strip() for name in names if name.strip()]
    unknown = [name for name in names if name not in METRIC_CHOICES]
    if unknown or not names:
        raise ValueError(f"metrics: expected a comma-separated subset of {METRIC_CHOICES}, got {metrics!r}")
    chosen = set(names)
    if "semantic" in chosen:
        chosen = (chosen - {"semantic"}) | {"fad", "kld"}
    return tuple(name for name in ("spatial", "fad", "kld") if name in chosen)


# ----------------------------------------------------------------------------- resumable report files


def _atomic_write_text(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _atomic_save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    import numpy as np

    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _csv_text(rows: Iterable[Mapping[str, object]], columns: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _read_per_clip(path: Path) -> list[dict[str, str]]:
    """Rows already written; a half-written last line (crash mid-append) is dropped and the file repaired."""
    if not path.exists():
        _atomic_write_text(path, _csv_text([], PER_CLIP_COLUMNS))
        return []
    text = path.read_text()
    complete = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    reader = csv.reader(io.StringIO(complete))
    header = next(reader, None)
    if header is None:
        _atomic_write_text(path, _csv_text([], PER_CLIP_COLUMNS))
        return []
    if tuple(header) != PER_CLIP_COLUMNS:
        raise ValueError(f"{path}: expected the columns {','.join(PER_CLIP_COLUMNS)}, got {','.join(header)}")
    rows = [dict(zip(header, cells)) for cells in reader if len(cells) == len(header)]
    if complete != text or len(rows) != complete.count("\n") - 1:
        _atomic_write_text(path, _csv_text(rows, PER_CLIP_COLUMNS))
    return rows


def _drop_rows(path: Path, rows: list[dict[str, str]], clips: set[str]) -> list[dict[str, str]]:
    """Remove the rows of ``clips`` (to be recomputed) so that no clip is ever listed twice."""
    kept = [row for row in rows if row["clip"] not in clips]
    if len(kept) != len(rows):
        _atomic_write_text(path, _csv_text(kept, PER_CLIP_COLUMNS))
    return kept


def _append_row(path: Path, row: Mapping[str, object]) -> None:
    with path.open("a", newline="") as stream:
        csv.DictWriter(stream, fieldnames=list(PER_CLIP_COLUMNS), lineterminator="\n").writerow(row)
        stream.flush()
        os.fsync(stream.fileno())


def _without_nan(value):
    """NaN (an undefined score) as JSON null, so summary.json is strict JSON."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nan(item) for item in value]
    return value


def _cache_path(output_dir: Path, clip: str) -> Path:
    return output_dir / CACHE_DIR / f"{quote(clip, safe='')}.npz"


# ----------------------------------------------------------------------------- the runner


@dataclass
class EvaluationResult:
    """What :func:`evaluate_directories` produced."""

    scores: dict[str, float]
    table: str
    output_dir: Path
    num_clips: int
    evaluated_now: int
    failed: dict[str, str] = field(default_factory=dict)
    unmatched_predictions: list[str] = field(default_factory=list)
    unmatched_targets: list[str] = field(default_factory=list)
    missing_directions: list[str] = field(default_factory=list)


def _run_config(prediction_dir, target_dir, directions, metrics, mode, seed, duration_seconds) -> dict:
    return {
        "pred": str(Path(prediction_dir).resolve()),
        "gt": str(Path(target_dir).resolve()),
        # Directions only feed the decoded-mono views, not a spatial-only run's results.
        "directions": (
            str(Path(directions).resolve())
            if isinstance(directions, (str, os.PathLike)) and ("fad" in metrics or "kld" in metrics)
            else None
        ),
        "metrics": list(metrics),
        "mode": mode,
        "seed": seed,
        "duration_seconds": duration_seconds,
    }


def _prepare_output_dir(output_dir: Path, config: dict, overwrite: bool) -> None:
    config_path = output_dir / CONFIG_FILE
    if overwrite and output_dir.exists():
        for name in (PER_CLIP_FILE, SUMMARY_FILE, TABLE_FILE, FAILED_FILE, UNMATCHED_FILE, CONFIG_FILE):
            (output_dir / name).unlink(missing_ok=True)
        shutil.rmtree(output_dir / CACHE_DIR, ignore_errors=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        if previous != config:
            changed = sorted(key for key in config if previous.get(key) != config[key])
            raise ValueError(
                f"{output_dir} holds a run with a different configuration ({', '.join(changed)}); "
                "use another output folder or --overwrite"
            )
    else:
        _atomic_write_text(config_path, json.dumps(config, indent=2) + "\n")
    (output_dir / CACHE_DIR).mkdir(exist_ok=True)


def evaluate_directories(
    prediction_dir: str | os.PathLike,
    target_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    directions: str | os.PathLike | Mapping[str, tuple[float, float]] | None = None,
    mode: str = "corrected",
    metrics: str | Iterable[str] = ("spatial",),
    embedder=None,
    classifier=None,
    seed: int = 0,
    duration_seconds: float | None = DEFAULT_DURATION_SECONDS,
    name: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    workers: int = 1,
    on_clip_done: Callable[[str], None] | None = None,
) -> EvaluationResult:
    """Score every paired clip of two folders and write the report (see the module docstring).

    Args:
        prediction_dir, target_dir: folders of generated and ground-truth FOA audio files (AmbiX).
        output_dir: the report folder (created; resumed if it holds a run with the same configuration).
        directions: a directions file or a mapping clip id -> ``(azimuth, elevation)`` degrees; needed for
            the decoded-mono views of ``fad`` / ``kld``.
        mode: ``"corrected"`` (default) or ``"original"`` (reproduce the paper's numbers).
        metrics: subset of ``spatial``, ``fad``, ``kld`` (``semantic`` = both).
        embedder: an :class:`~visage_hf.metrics.embedders.AudioEmbedder` for ``fad`` (e.g. VGGish).
        classifier: an :class:`~visage_hf.metrics.embedders.AudioClassifier` for ``kld`` (e.g. PaSST); give
            it an attribute ``returns_probabilities = True`` if it returns probabilities rather than logits.
        seed: base seed of the AUC jitter (per clip: seed and clip id).
        duration_seconds: cut/pad length (forced to 5 s in original mode); ``None`` keeps the clip lengths.
        name: the method name in the table (default: the prediction folder's name).
        overwrite: discard a previous report in ``output_dir`` instead of resuming it.
        workers: processes scoring clips in parallel (results are still written in clip order, so the report
            is the same for any value); the embedder and classifier are copied into each process once.
        on_clip_done: called with the clip id after each clip's row is on disk.

    Raises:
        FileNotFoundError: a folder or the directions file does not exist.
        ValueError: bad arguments, no pairs at all, or a report folder with another configuration.
    """
    metrics = _check_arguments(mode, metrics, workers, embedder, classifier)
    prediction_dir, target_dir, output_dir = Path(prediction_dir), Path(target_dir), Path(output_dir)
    for label, folder in (("prediction", prediction_dir), ("ground-truth", target_dir)):
        if not folder.is_dir():
            raise FileNotFoundError(f"{label} folder not found: {folder}")
    config = _run_config(prediction_dir, target_dir, directions, metrics, mode, seed, duration_seconds)
    direction_table = (
        load_directions(directions) if isinstance(directions, (str, os.PathLike)) else directions
    )
    pairs, unmatched_predictions, unmatched_targets = _pair_files(prediction_dir, target_dir, output_dir)
    _prepare_output_dir(output_dir, config, overwrite)
    semantic = "fad" in metrics or "kld" in metrics
    done = _clips_done(output_dir, semantic)
    pending = [pair for pair in pairs if pair[0] not in done]
    # Only the decoded-mono views need the camera direction; the channel views are scored regardless.
    missing_directions = _missing_directions(pairs, direction_table) if semantic else []
    jobs = [(*pair, _direction(direction_table, pair[0])) for pair in pending]
    scorer = ClipScorer(metrics, mode, seed, duration_seconds, embedder, classifier)
    failed = _score_and_record(jobs, scorer, workers, output_dir, semantic, progress, on_clip_done)
    return _write_report(
        output_dir,
        pairs,
        metrics,
        mode,
        name or prediction_dir.resolve().name,
        config,
        failed,
        unmatched_predictions,
        unmatched_targets,
        missing_directions,
        evaluated_now=len(pending) - len(failed),
        output_kind=classifier_outputs(classifier),
    )


def _direction(direction_table, clip: str) -> tuple[float, float] | None:
    return None if direction_table is None else direction_table.get(clip_key(clip))


def _missing_directions(pairs, direction_table) -> list[str]:
    return [clip for clip, _, _ in pairs if direction_table is None or clip_key(clip) not in direction_table]


def _check_arguments(mode: str, metrics, workers, embedder, classifier) -> tuple[str, ...]:
    """One-line errors for bad arguments; returns the parsed metric names."""
    if mode not in _MODES:
        raise ValueError(f"mode: expected one of {_MODES}, got {mode!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected a positive integer, got {workers!r}")
    metrics = parse_metrics(metrics)
    if "fad" in metrics and embedder is None:
        raise ValueError("metrics 'fad' needs an embedder (e.g. VGGishEmbedder.from_pretrained())")
    if "kld" in metrics and classifier is None:
        raise ValueError("metrics 'kld' needs a classifier (e.g. PasstClassifier.from_hear21passt())")
    return metrics


def _pair_files(prediction_dir: Path, target_dir: Path, output_dir: Path):
    """``(pairs, unmatched predictions, unmatched targets)``; an error when nothing pairs at all."""
    pairs, unmatched_predictions, unmatched_targets = match_files(
        prediction_dir, target_dir, exclude=output_dir
    )
    if not pairs:
        raise ValueError(
            f"no files to compare: {len(unmatched_predictions)} prediction and {len(unmatched_targets)} "
            f"ground-truth audio files, none with the same name ({', '.join(AUDIO_EXTENSIONS)})"
        )
    return pairs, unmatched_predictions, unmatched_targets


def _clips_done(output_dir: Path, semantic: bool) -> set[str]:
    """The clips an earlier run of this report already scored (resuming)."""
    per_clip_path = output_dir / PER_CLIP_FILE
    rows = _read_per_clip(per_clip_path)
    if semantic:  # a row without its cached features (deleted cache) is recomputed
        rows = _drop_rows(
            per_clip_path, rows, {r["clip"] for r in rows if not _cache_path(output_dir, r["clip"]).exists()}
        )
    return {row["clip"] for row in rows}


def _score_and_record(
    jobs: list,
    scorer: ClipScorer,
    workers: int,
    output_dir: Path,
    semantic: bool,
    progress: bool,
    on_clip_done: Callable[[str], None] | None,
) -> dict[str, str]:
    """Score the jobs, appending each row (and caching its features) as it comes; returns the failures."""
    from tqdm.auto import tqdm

    failed: dict[str, str] = {}
    scored = scored_in_order(jobs, scorer, workers)
    try:
        for clip, row, features, error in tqdm(
            scored, total=len(jobs), desc="evaluate", unit="clip", disable=not progress
        ):
            if error is not None:
                failed[clip] = error
                continue
            if semantic:
                _atomic_save_npz(_cache_path(output_dir, clip), features)
            _append_row(output_dir / PER_CLIP_FILE, row)
            if on_clip_done is not None:
                on_clip_done(clip)
    finally:
        scored.close()  # stops the worker processes now, also when interrupted
    return failed


def clip_key(clip: str) -> str:
    """The directions-table key of a clip id: its file stem (YT-Ambigen ids are flat names)."""
    return Path(clip).name


def _write_report(
    output_dir: Path,
    pairs,
    metrics,
    mode: str,
    name: str,
    config: dict,
    failed: dict[str, str],
    unmatched_predictions: list[Path],
    unmatched_targets: list[Path],
    missing_directions: list[str],
    evaluated_now: int,
    output_kind: str,
) -> EvaluationResult:
    rows = _read_per_clip(output_dir / PER_CLIP_FILE)
    paired = {clip for clip, _, _ in pairs}
    rows = sorted((row for row in rows if row["clip"] in paired), key=lambda row: row["clip"])
    scores, nan_clips = _dataset_scores(rows, output_dir, metrics, mode, output_kind)
    table = _format_tables(name, scores)
    summary = {
        "name": name,
        "mode": mode,
        "metrics": list(metrics),
        "num_clips": len(rows),
        "scores": scores,
        "nan_clips": nan_clips,
        "failed": dict(sorted(failed.items())),
        "unmatched_predictions": [str(path) for path in unmatched_predictions],
        "unmatched_targets": [str(path) for path in unmatched_targets],
        "missing_directions": missing_directions,
        "config": config,
    }
    _atomic_write_text(
        output_dir / SUMMARY_FILE, json.dumps(_without_nan(summary), indent=2, allow_nan=False) + "\n"
    )
    _atomic_write_text(output_dir / TABLE_FILE, table)
    _atomic_write_text(
        output_dir / FAILED_FILE,
        _csv_text(
            [{"clip": clip, "error": error} for clip, error in sorted(failed.items())], ("clip", "error")
        ),
    )
    unmatched = [{"side": "prediction", "path": str(path)} for path in unmatched_predictions]
    unmatched += [{"side": "ground_truth", "path": str(path)} for path in unmatched_targets]
    _atomic_write_text(output_dir / UNMATCHED_FILE, _csv_text(unmatched, ("side", "path")))
    return EvaluationResult(
        scores=scores,
        table=table,
        output_dir=output_dir,
        num_clips=len(rows),
        evaluated_now=evaluated_now,
        failed=dict(sorted(failed.items())),
        unmatched_predictions=[str(path) for path in unmatched_predictions],
        unmatched_targets=[str(path) for path in unmatched_targets],
        missing_directions=missing_directions,
    )


def _dataset_scores(rows: list[dict[str, str]], output_dir: Path, metrics, mode: str, output_kind: str):
    """``(scores, nan clip counts)`` of the saved rows; FAD from the cached features of every clip."""
    import numpy as np

    from ..metrics.semantic import semantic_summary
    from ..metrics.table import summarize_clips

    columns = [column for column in PER_CLIP_COLUMNS[1:] if any(row.get(column) for row in rows)]
    aggregate = summarize_clips(rows, columns, mode)
    scores = dict(aggregate["scores"])
    if "fad" in metrics or "kld" in metrics:
        cached = (dict(np.load(_cache_path(output_dir, row["clip"]))) for row in rows)
        # FAD pools the frames of every clip; KLD is already the mean of the per-clip columns above.
        semantic = semantic_summary(cached, mode, output_kind)
        scores.update({key: value for key, value in semantic.items() if key.startswith("fad_")})
    if "kld" in metrics:
        channel = [scores.get(f"kld_{view}") for view in "wyzx"]
        if all(value is not None for value in channel):
            scores["kld_avg"] = float(np.mean(channel))
    return scores, aggregate["nan_clips"]


def _format_tables(name: str, scores: dict[str, float]) -> str:
    """The paper's Table 3 layout, then the table of additional metrics when there are any."""
    from ..metrics.table import format_extra_table, format_table

    table = format_table({name: scores})
    extra = format_extra_table({name: scores})
    return table + "\n" + extra if extra else table
