"""Energy map: the 4×4 covariance form (``visage_hf.audio.foa.energy_map``) against the naive per-sample decode.

The naive form is what the original ``AmbiDecomposition.get_energy_map`` does: decode every sample at every one
of the 90 × 180 grid points (``einsum("btc,ch->bth")``), square, average over the window, square-root. Done at
once for 5 s at 48 kHz that is a (240,000 × 16,200) float32 array, about 15.6 GB, so here it is decoded in
chunks of samples (same arithmetic, bounded memory), and by default timed on a fraction of the clip and
extrapolated linearly (its cost is exactly linear in the number of samples). ``--naive-fraction 1`` times it on
the whole clip.

    python benchmarks/energy_map.py [--seconds 5] [--sample-rate 48000] [--naive-fraction 0.1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import tracemalloc

import numpy as np

from visage_hf.audio.foa import encode, energy_map, grid_sh_matrix

CHUNK = 1200  # samples per naive decode chunk: 16,200 × 1,200 float32 ≈ 78 MB


def random_direction_foa(
    seconds: float, sample_rate: int, seed: int = 0
) -> tuple[np.ndarray, tuple[float, float]]:
    """A noise plane wave from a random direction plus a weaker diffuse background, float32 (4, n)."""
    rng = np.random.default_rng(seed)
    count = round(seconds * sample_rate)
    azimuth, elevation = rng.uniform(-180, 180), np.rad2deg(np.arcsin(rng.uniform(-1, 1)))
    foa = encode(rng.standard_normal(count).astype(np.float32), azimuth, elevation)
    foa += 0.1 * rng.standard_normal((4, count)).astype(np.float32)
    return foa, (azimuth, elevation)


def naive_energy_maps(foa: np.ndarray, window: int, decoder: np.ndarray) -> np.ndarray:
    """Decode every sample on the grid (float32, like the original's torch einsum), RMS per window."""
    height, width, _ = decoder.shape
    weights = decoder.reshape(-1, 4).astype(np.float32)
    maps = []
    for start in range(0, foa.shape[1] - window + 1, window):
        power = np.zeros(height * width, dtype=np.float64)
        for chunk_start in range(start, start + window, CHUNK):
            decoded = weights @ foa[:, chunk_start : min(chunk_start + CHUNK, start + window)]
            power += np.einsum("gt,gt->g", decoded, decoded, dtype=np.float64)
        maps.append(np.sqrt(power / window).reshape(height, width))
    return np.stack(maps)


def best_time(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_memory_mib(function) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    function()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sample-rate", type=int, default=48000)
    parser.add_argument("--window", type=float, default=0.2, help="window seconds for the windowed case")
    parser.add_argument(
        "--naive-fraction", type=float, default=0.1, help="share of the clip the naive form is timed on"
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    foa, (azimuth, elevation) = random_direction_foa(args.seconds, args.sample_rate)
    window = round(args.window * args.sample_rate)
    windows_total = foa.shape[1] // window
    decoder = np.asarray(grid_sh_matrix())
    grid_points = decoder.shape[0] * decoder.shape[1]

    print("# energy map: covariance form vs naive per-sample decode")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), numpy {np.__version__}"
    )
    print(
        f"input: {args.seconds:g} s of FOA at {args.sample_rate} Hz = {foa.shape[1]:,} samples x 4 ch float32, "
        f"noise plane wave at azimuth {azimuth:.1f}°, elevation {elevation:.1f}° + diffuse noise; "
        f"grid {decoder.shape[0]} x {decoder.shape[1]} = {grid_points:,} points"
    )

    # Fast form, full clip, best of --repeats.
    fast_whole = best_time(lambda: energy_map(foa), args.repeats)
    fast_windows = best_time(lambda: energy_map(foa, args.sample_rate, args.window), args.repeats)
    peak_whole = peak_memory_mib(lambda: energy_map(foa))
    peak_windows = peak_memory_mib(lambda: energy_map(foa, args.sample_rate, args.window))

    # Naive form on a whole number of windows covering --naive-fraction of the clip, extrapolated linearly.
    naive_windows_count = max(1, round(args.naive_fraction * windows_total))
    part = foa[:, : naive_windows_count * window]
    scale = foa.shape[1] / part.shape[1]
    start = time.perf_counter()
    naive_part_whole = naive_energy_maps(part, part.shape[1], decoder)[0]
    naive_whole = (time.perf_counter() - start) * scale
    start = time.perf_counter()
    naive_part_windows = naive_energy_maps(part, window, decoder)
    naive_windows = (time.perf_counter() - start) * scale

    # The two forms agree (checked on the part the naive form ran on).
    error_whole = np.max(np.abs(energy_map(part) - naive_part_whole) / naive_part_whole.max())
    error_windows = np.max(np.abs(energy_map(part, args.sample_rate, args.window) - naive_part_windows))
    error_windows /= naive_part_windows.max()

    extrapolated = (
        ""
        if scale == 1
        else f" (timed on {part.shape[1]:,} samples = {100 / scale:.1f}% of the clip, x{scale:.1f} linearly)"
    )
    print(
        f"naive decode: the whole clip decoded at once would be {4 * grid_points * foa.shape[1] / 2**30:.1f} GiB "
        f"(float32); here it runs in chunks of {CHUNK} samples{extrapolated}"
    )
    print()
    print(f"{'case':<28}{'covariance':>14}{'naive':>14}{'speed-up':>12}")
    for case, fast, naive in (
        ("whole clip", fast_whole, naive_whole),
        (f"{args.window:g} s windows ({windows_total})", fast_windows, naive_windows),
    ):
        print(f"{case:<28}{fast * 1e3:>11.1f} ms{naive * 1e3:>11.0f} ms{naive / fast:>11.0f}x")
    print()
    print(
        f"peak memory of the covariance form (tracemalloc): whole clip {peak_whole:.1f} MiB, windows {peak_windows:.1f} MiB"
    )
    print(
        f"input itself: {foa.nbytes / 2**20:.1f} MiB float32 (converted to float64 inside, at most 2^20 samples at a time)"
    )
    print(
        f"max relative difference covariance vs naive: whole {error_whole:.1e}, windows {error_windows:.1e}"
    )
    slowest = min(naive_whole / fast_whole, naive_windows / fast_windows)
    print(f"target >= 50x: {'met' if slowest >= 50 else 'NOT met'} (smallest speed-up {slowest:.0f}x)")


if __name__ == "__main__":
    from machine import describe_machine  # benchmarks/machine.py: the CPU every number here is measured on

    print(describe_machine())
    main()
