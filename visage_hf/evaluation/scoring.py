"""Scoring the clips of ``visage evaluate``: one clip's metrics, in this process or in worker processes.

:class:`ClipScorer` turns one job ``(clip, prediction, target, direction)`` into its per-clip row and the features
cached for the dataset-level FAD; :func:`scored_in_order` runs the jobs here or in ``spawn``-ed processes and
yields the results in job order, so the report does not depend on the number of workers. Only the standard
library is imported at module load (numpy, torch and the metrics load when a clip is scored).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ClipScorer", "classifier_outputs", "scored_in_order", "single_threaded_children"]


def _clip_rng(seed: int, clip: str) -> np.random.Generator:
    """The jitter source of one clip: depends on the seed and the clip id only, not on the order of work."""
    import numpy as np

    return np.random.default_rng([seed, zlib.crc32(clip.encode("utf-8"))])


def _score_clip(
    clip: str,
    prediction_path: Path,
    target_path: Path,
    direction: tuple[float, float] | None,
    metrics: tuple[str, ...],
    mode: str,
    seed: int,
    duration_seconds: float | None,
    embedder,
    classifier,
) -> tuple[dict[str, object], dict[str, np.ndarray]]:
    from ..audio.io import check_foa, read_audio
    from ..metrics.semantic import clip_kl, clip_semantic_features
    from ..metrics.spatial import spatial_scores

    prediction, prediction_rate = read_audio(prediction_path)
    target, target_rate = read_audio(target_path)
    check_foa(prediction, name=f"prediction {prediction_path.name}")
    check_foa(target, name=f"ground truth {target_path.name}")
    row: dict[str, object] = {"clip": clip}
    if "spatial" in metrics:
        scores = spatial_scores(
            prediction,
            target,
            prediction_rate,
            target_rate,
            mode=mode,
            rng=_clip_rng(seed, clip),
            duration_seconds=duration_seconds,
        )
        row.update(scores.as_dict())
    features: dict[str, np.ndarray] = {}
    if "fad" in metrics or "kld" in metrics:
        azimuth, elevation = direction if direction is not None else (None, None)
        features = clip_semantic_features(
            prediction,
            target,
            prediction_rate,
            target_rate,
            azimuth,
            elevation,
            embedder=embedder if "fad" in metrics else None,
            classifier=classifier if "kld" in metrics else None,
            mode=mode,
            duration_seconds=duration_seconds,
        )
        row.update(clip_kl(features, mode, classifier_outputs(classifier)))
    return row, features


@dataclass
class ClipScorer:
    """Scores one job ``(clip, prediction, target, direction)`` -> ``(clip, row, features, error)``; a failure
    is returned as its message, never raised, so a bad file cannot stop the run (or a worker process)."""

    metrics: tuple[str, ...]
    mode: str
    seed: int
    duration_seconds: float | None
    embedder: object = None
    classifier: object = None

    def __call__(self, job):
        clip, prediction_path, target_path, direction = job
        try:
            row, features = _score_clip(
                clip,
                prediction_path,
                target_path,
                direction,
                self.metrics,
                self.mode,
                self.seed,
                self.duration_seconds,
                self.embedder,
                self.classifier,
            )
        except Exception as error:  # reported in failed.csv instead
            return clip, None, None, f"{type(error).__name__}: {error}"
        return clip, row, features, None


_WORKER_SCORER: ClipScorer | None = None


def _start_worker(scorer: ClipScorer) -> None:
    global _WORKER_SCORER
    _WORKER_SCORER = scorer
    try:  # each worker process is one core's worth of work: no nested thread pools
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


def _score_in_worker(job):
    return _WORKER_SCORER(job)


@contextmanager
def single_threaded_children() -> Iterator[None]:
    """Processes started inside the block run their BLAS / OpenMP pools with one thread.

    Each worker is one core's worth of work; pools sized for the whole machine in every worker oversubscribe
    it. The variables must be set before a child imports
    numpy, hence in the parent's environment while the children start.
    """
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(dict.fromkeys(names, "1"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def scored_in_order(jobs: list, scorer: ClipScorer, workers: int):
    """Yield each job's result in job order, computed here or in ``workers`` processes."""
    if workers <= 1:
        yield from map(scorer, jobs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # "spawn": forking a process that already runs torch / BLAS thread pools can deadlock.
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(scorer,),
    )
    try:
        with single_threaded_children():  # map submits every job now, which starts the workers
            results = executor.map(_score_in_worker, jobs)
        yield from results
    finally:  # on an interrupt, do not wait for the clips still queued
        executor.shutdown(wait=True, cancel_futures=True)


def classifier_outputs(classifier) -> str:
    return "probabilities" if getattr(classifier, "returns_probabilities", False) else "logits"
