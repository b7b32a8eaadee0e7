"""Benchmark: CLIP frame features + patch energy map for one 5 s clip (20 frames at 4 fps).

Full-size CLIP ViT-B/32 vision tower with projection, built from the default ``CLIPVisionConfig`` with random
weights (no download; timing does not depend on the weights). Reports, in the same run:

* batched (all frames in one forward) vs frame-by-frame (``batch_size=1``): wall time and the ratio;
* the split: PIL preprocessing, CLIP forward, energy map;
* peak memory above the loaded model: resident-set growth on CPU (sampled), ``max_memory_allocated`` on CUDA.

Usage: ``python benchmarks/features.py [--device cuda] [--dtype float16] [--height 360 --width 640]``
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np
import torch
from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModelWithProjection

from visage_hf.models.feature_extraction_visage import VisageFeatureExtractor, encode_frames, patch_energy_map


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak memory growth during a block: sampled RSS on CPU, the allocator's peak on CUDA."""

    def __init__(self, device: torch.device):
        self.device = device
        self.peak = 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.baseline = torch.cuda.memory_allocated()
            return self
        self.baseline = _rss_bytes()
        self.peak_rss = self.baseline
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while self._running:
            self.peak_rss = max(self.peak_rss, _rss_bytes())
            time.sleep(0.002)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.baseline
        else:
            self._running = False
            self._thread.join()
            self.peak = max(self.peak_rss, _rss_bytes()) - self.baseline


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_call(function, device, repeats: int) -> tuple[float, int]:
    """Best wall time of ``repeats`` runs, and the peak memory growth of the first."""
    times, peak = [], 0
    for index in range(repeats):
        with PeakMemory(device) as memory:
            _sync(device)
            start = time.perf_counter()
            function()
            _sync(device)
            times.append(time.perf_counter() - start)
        if index == 0:
            peak = memory.peak
    return min(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=20, help="frames per clip (5 s at 4 fps = 20)")
    parser.add_argument("--height", type=int, default=224)
    parser.add_argument("--width", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)

    torch.manual_seed(0)
    build_start = time.perf_counter()
    model = CLIPVisionModelWithProjection(CLIPVisionConfig()).eval().to(device=device, dtype=dtype)
    processor = CLIPImageProcessorPil()
    print(
        f"CLIP ViT-B/32 vision+projection, random weights: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M"
        f" params, built in {time.perf_counter() - build_start:.1f} s"
    )
    print(f"device {device}, dtype {args.dtype}, torch threads {torch.get_num_threads()}")
    frames = np.random.default_rng(0).integers(
        0, 256, (args.frames, args.height, args.width, 3), dtype=np.uint8
    )
    print(f"clip: {args.frames} frames of {args.height}×{args.width}, best of {args.repeats}")

    batched = VisageFeatureExtractor(model, processor, batch_size=args.frames)
    one_by_one = VisageFeatureExtractor(model, processor, batch_size=1)
    batched(frames[:2], 0.0, 0.0)  # warm-up (allocator, kernels)

    batched_time, batched_peak = time_call(lambda: batched(frames, 30.0, 0.0), device, args.repeats)
    single_time, single_peak = time_call(lambda: one_by_one(frames, 30.0, 0.0), device, args.repeats)
    preprocess_time, _ = time_call(
        lambda: processor(list(frames), return_tensors="pt", input_data_format="channels_last"),
        device,
        args.repeats,
    )
    _, tokens = encode_frames(model, processor, frames, batch_size=args.frames)
    energy_time, _ = time_call(lambda: patch_energy_map(tokens), device, args.repeats)

    mib = 1024**2
    print(f"batched (1 forward)        : {batched_time:7.3f} s   peak +{batched_peak / mib:7.1f} MiB")
    print(f"frame by frame (1 per fwd) : {single_time:7.3f} s   peak +{single_peak / mib:7.1f} MiB")
    print(f"ratio frame-by-frame / batched: {single_time / batched_time:.2f}x")
    print(f"  of which PIL preprocessing: {preprocess_time:7.3f} s")
    print(f"  of which energy map       : {energy_time * 1e3:7.2f} ms")
    print(
        f"real-time factor ({args.frames / 4:g} s of video at 4 fps): {batched_time / (args.frames / 4):.3f}"
    )


if __name__ == "__main__":
    from machine import describe_machine  # benchmarks/machine.py: the CPU every number here is measured on

    print(describe_machine())
    main()
