"""Spatial metrics per clip: ours (4×4 covariance energy maps) against the original's way (decode every sample).

The original ``evaluate_spatial.py`` builds each energy map by decoding every sample of the 16 kHz clip at every
one of the 90 × 180 grid points (an einsum into a (80,000 × 16,200) float32 array, ~5 GB per map; ~10 GB
per 5 s clip), for the whole clip, the 5 one-second windows and the 25 200-ms windows,
then resamples each map to the equal-area sphere and scores CC and AUC-Judd. The reference below does the same
arithmetic in chunks of samples (bounded memory, same result) and, by default, times the decode on a fraction
of the clip and extrapolates linearly (its cost is exactly linear in samples). Scoring (CC/AUC on the resampled
maps) is shared by both, so the ratio is the honest end-to-end one.

    python benchmarks/spatial_metrics.py [--clips 8] [--naive-fraction 0.1] [--split-size 11166] [--workers 2]

Our time per clip is the steady state (the first call builds cached grids and is not counted), and the split
projection is given for one process and for ``--workers`` processes (what ``visage evaluate --workers`` runs).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import time
import tracemalloc

import numpy as np

from visage_hf.audio.foa import encode, equal_area_resample, grid_sh_matrix
from visage_hf.evaluation.scoring import single_threaded_children
from visage_hf.metrics.spatial import WINDOWS, metric_maps, spatial_scores, spatial_scores_from_maps

SAMPLE_RATE = 16_000
SECONDS = 5.0
CHUNK = 1_000  # samples per naive decode chunk: 16,200 × 1,000 float32 ≈ 65 MB


def clip_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A ground-truth noise plane wave plus diffuse noise, and a 'generated' one 20° away. (4, 80,000) float32."""
    rng = np.random.default_rng(seed)
    count = round(SECONDS * SAMPLE_RATE)
    azimuth, elevation = rng.uniform(-180, 180), np.rad2deg(np.arcsin(rng.uniform(-0.9, 0.9)))
    clips = []
    for offset in (0.0, 20.0):
        foa = encode(rng.standard_normal(count).astype(np.float32), azimuth + offset, elevation)
        clips.append(foa + 0.1 * rng.standard_normal((4, count)).astype(np.float32))
    return clips[0], clips[1]


def naive_metric_maps(foa: np.ndarray, fraction: float) -> tuple[dict[str, np.ndarray], float]:
    """The original's maps: decode every sample on the grid, RMS per window, equal-area resample.

    Decodes ``fraction`` of each window's samples and returns the maps of that part plus the seconds the whole
    job would take: the decode time scaled to every sample (it is linear in samples), the rest as measured.
    """
    decoder = np.asarray(grid_sh_matrix(normalization="sn3d"), dtype=np.float32)
    height, width, _ = decoder.shape
    weights = decoder.reshape(-1, 4)
    maps, decode_seconds, other_seconds = {}, 0.0, 0.0
    for name, seconds in WINDOWS.items():
        window = foa.shape[1] if seconds is None else round(seconds * SAMPLE_RATE)
        used = max(CHUNK, round(window * fraction))
        grid_maps = []
        for start in range(0, foa.shape[1] - window + 1, window):
            tic = time.perf_counter()
            power = np.zeros(height * width)
            for chunk in range(start, start + used, CHUNK):
                decoded = weights @ foa[:, chunk : min(chunk + CHUNK, start + used)]
                power += np.einsum("gt,gt->g", decoded, decoded, dtype=np.float64)
            decode_seconds += (time.perf_counter() - tic) * window / used
            grid_maps.append(np.sqrt(power / used).reshape(height, width))
        tic = time.perf_counter()
        maps[name] = equal_area_resample(np.stack(grid_maps))
        other_seconds += time.perf_counter() - tic
    return maps, decode_seconds + other_seconds


def _score_pair(seed: int) -> None:
    spatial_scores(*clip_pair(seed), SAMPLE_RATE)


def throughput(workers: int, clips: int) -> float:
    """Seconds per clip when ``workers`` processes score ``clips`` clip pairs (pairs made in the workers)."""
    with (
        single_threaded_children(),
        multiprocessing.get_context("spawn").Pool(workers, initializer=_score_pair, initargs=(0,)) as pool,
    ):
        pool.map(_score_pair, range(workers))  # warm every worker's caches
        tic = time.perf_counter()
        pool.map(_score_pair, range(clips), chunksize=1)
        return (time.perf_counter() - tic) / clips


def peak_mib(function) -> float:
    tracemalloc.start()
    function()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8, help="clip pairs timed for our metrics")
    parser.add_argument(
        "--naive-fraction", type=float, default=0.1, help="share of samples the naive decode runs on"
    )
    parser.add_argument(
        "--split-size", type=int, default=11_166, help="clips in the test split, for the projection"
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="processes for the projection"
    )
    args = parser.parse_args()

    print("# spatial metrics per 5 s clip: ours vs the original's per-sample decode")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), numpy {np.__version__}"
    )
    pairs = [clip_pair(seed) for seed in range(args.clips)]

    spatial_scores(*pairs[0], SAMPLE_RATE)  # warm-up: builds the cached grids once per process
    tic = time.perf_counter()
    for prediction, target in pairs:
        spatial_scores(prediction, target, SAMPLE_RATE)
    ours = (time.perf_counter() - tic) / args.clips
    ours_peak = peak_mib(lambda: spatial_scores(*pairs[0], SAMPLE_RATE))

    prediction, target = pairs[0]
    naive_prediction, seconds_prediction = naive_metric_maps(prediction, args.naive_fraction)
    naive_target, seconds_target = naive_metric_maps(target, args.naive_fraction)
    tic = time.perf_counter()
    naive_scores = spatial_scores_from_maps(naive_prediction, naive_target)
    naive = seconds_prediction + seconds_target + time.perf_counter() - tic
    full_map_gib = 4 * 16_200 * SECONDS * SAMPLE_RATE / 2**30

    # Sanity: with --naive-fraction 1 the naive maps equal ours; on a fraction the scores are close.
    ours_scores = spatial_scores_from_maps(metric_maps(prediction), metric_maps(target))
    print(f"scores, ours  : {', '.join(f'{k} {v:.3f}' for k, v in ours_scores.items())}")
    print(
        f"scores, naive : {', '.join(f'{k} {v:.3f}' for k, v in naive_scores.items())}"
        f" (decode on {100 * args.naive_fraction:g}% of each window)"
    )
    print()
    print(f"{'':<34}{'ours':>12}{'naive':>12}{'ratio':>10}")
    print(
        f"{'time per clip (all+1fps+5fps)':<34}{ours * 1e3:>9.1f} ms{naive:>10.1f} s{naive / ours:>9.0f}x"
        "   (target >= 100x)"
    )
    print(
        f"{'peak memory (tracemalloc)':<34}{ours_peak:>9.1f} MiB"
        f"   (target < 200 MB; the original's einsum holds {full_map_gib:.1f} GiB per map)"
    )
    print(f"projected test split ({args.split_size:,} clips), target < 10 min:")
    print(f"  one process: {ours * args.split_size / 60:.1f} min")
    if args.workers > 1:
        parallel = throughput(args.workers, 4 * args.clips)
        print(
            f"  {args.workers} processes (visage evaluate --workers {args.workers}): "
            f"{parallel * args.split_size / 60:.1f} min"
        )


if __name__ == "__main__":
    from machine import describe_machine  # benchmarks/machine.py: the CPU every number here is measured on

    print(describe_machine())
    main()
