"""Benchmark: what a clip costs in `VisagePipeline`, part by part, with random weights of the real configs.

1. Components, by running the component benchmarks (not copies of them): ``benchmarks/codec.py`` (full 44.1 kHz
   DAC encode + decode of one clip: naive per-channel calls vs ``FOACodec``) and ``benchmarks/features.py``
   (full CLIP ViT-B/32 features + energy map for the clip's 4-fps frames).
2. The decode path the pipeline really uses: ``VisagePipeline.decode`` (per generation window, only over the
   samples each window contributes, crossfaded) against one ``FOACodec.decode`` pass over all codes, on the
   full DAC: time ratio and the largest difference. A clip of exactly 5 s is two windows (430 + a 1-frame
   continuation), 12 s three.
3. ``--whole`` (default with ``--device cuda``): the whole pipeline at full size (CLIP, the 358.6 M-parameter
   `VisageForFOA`, DAC) on a synthetic clip: wall time per stage and the real-time factor (seconds of compute
   per second of audio). On a CPU this takes minutes per 5 s clip (docs/original-implementation.md §3.7).

Usage: ``python benchmarks/pipeline.py [--seconds 5] [--device cpu|cuda] [--repeats 1] [--whole] [--skip-components]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
SAMPLE_RATE = 44100


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def best_time(function, device: str, repeats: int) -> tuple[float, object]:
    """Best wall time of ``repeats`` calls and the last result."""
    times, result = [], None
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        result = function()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times), result


def run_component_benchmarks(seconds: float, device: str, repeats: int) -> None:
    variants = ["reference", "codec"] if device.startswith("cuda") else ["reference", "codec-b1"]
    commands = [
        [sys.executable, str(HERE / "codec.py"), "--seconds", f"{seconds:g}", "--device", device, "--variants", *variants],
        [sys.executable, str(HERE / "features.py"), "--frames", str(round(seconds * 4)), "--device", device,
         "--repeats", str(repeats)],
    ]  # fmt: skip
    for command in commands:
        print(
            f"\n$ {' '.join(Path(part).name if part.endswith('.py') else part for part in command[1:])}",
            flush=True,
        )
        subprocess.run(command, check=True)


def full_size_pipeline(device: str, dtype: torch.dtype, whole: bool):
    """A pipeline with the full DAC (and, if ``whole``, full CLIP and model; else the tiny ones)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, DacConfig, DacModel

    from visage_hf.models.configuration_visage import VisageConfig
    from visage_hf.models.modeling_visage import VisageForFOA
    from visage_hf.pipelines.pipeline_visage import VisagePipeline
    from visage_hf.pipelines.tiny import tiny_random_components

    torch.manual_seed(0)
    parts = tiny_random_components()
    parts["codec"] = DacModel(DacConfig(sampling_rate=SAMPLE_RATE)).eval()
    if whole:
        parts["image_encoder"] = CLIPVisionModelWithProjection(CLIPVisionConfig(projection_dim=512)).eval()
        parts["image_processor"] = type(parts["image_processor"])()  # CLIP's defaults: 224 px
        parts["foa_model"] = VisageForFOA(VisageConfig(dropout=0.0)).eval()
    return VisagePipeline(**parts).to(device=device, dtype=dtype)


def benchmark_decode_path(pipe, seconds: float, device: str, repeats: int) -> None:
    from visage_hf.audio.codec import FOACodec

    plan = pipe.plan_windows(round(seconds * SAMPLE_RATE))
    generator = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 1024, (1, 4, 9, plan.num_code_frames), generator=generator)
    crossfade = round(0.05 * SAMPLE_RATE)
    pipeline_time, stitched = best_time(
        lambda: pipe.decode(codes, plan, crossfade, progress=False), device, repeats
    )
    codec = FOACodec(pipe.codec)
    one_pass_time, reference = best_time(
        lambda: codec.decode(codes)[..., : plan.num_samples], device, repeats
    )
    reference = reference.float().cpu().numpy()
    difference = float(np.abs(stitched - reference).max() / max(np.abs(reference).max(), 1e-12))
    windows = ", ".join(f"[{w.code_start}, {w.code_stop})" for w in plan)
    print(f"\ndecode path, full DAC, {seconds:g} s clip = {len(plan)} window(s) of codec frames {windows}:")
    print(f"  VisagePipeline.decode (per window + crossfade): {pipeline_time:7.2f} s")
    print(f"  one FOACodec.decode pass over all codes        : {one_pass_time:7.2f} s")
    print(
        f"  ratio pipeline / one pass: {pipeline_time / one_pass_time:.2f}x; max |difference| / peak {difference:.1e}"
    )
    print(f"  decode real-time factor: {pipeline_time / seconds:.3f} s per s of audio")


def benchmark_whole(pipe, seconds: float, device: str) -> None:
    from visage_hf.data.synthetic import moving_object_video

    with tempfile.TemporaryDirectory() as folder:
        video = moving_object_video(Path(folder) / "clip.mp4", seconds=seconds, fps=25, width=320, height=240)
        stages: dict[str, float] = {}
        for name in ("generate_codes", "decode"):  # generate_codes = CLIP features + code generation
            method = getattr(pipe, name)

            def timed(*args, _method=method, _name=name, **kwargs):
                _sync(device)
                start = time.perf_counter()
                result = _method(*args, **kwargs)
                _sync(device)
                stages[_name] = time.perf_counter() - start
                return result

            setattr(pipe, name, timed)
        _sync(device)
        start = time.perf_counter()
        out = pipe(video, 30.0, 0.0, seed=0, progress=False)
        _sync(device)
        total = time.perf_counter() - start
    audio_seconds = out.audio.shape[-1] / out.sample_rate
    print(
        f"\nwhole pipeline, full size, {audio_seconds:g} s clip, {len(out.windows)} window(s), device {device}:"
    )
    for name, value in stages.items():
        print(f"  {name:<24}: {value:8.2f} s")
    print(f"  other (reading video)   : {total - sum(stages.values()):8.2f} s")
    print(
        f"  total {total:.2f} s -> real-time factor {total / audio_seconds:.3f} (< 1 is faster than real time)"
    )
    if device.startswith("cuda"):
        print(f"  peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--whole", action="store_true", help="time the whole full-size pipeline (default on cuda)"
    )
    parser.add_argument(
        "--skip-components", action="store_true", help="skip benchmarks/codec.py and features.py"
    )
    args = parser.parse_args()
    whole = args.whole or args.device.startswith("cuda")

    print(
        f"device {args.device}, dtype {args.dtype}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    if not args.skip_components:
        run_component_benchmarks(args.seconds, args.device, args.repeats)
    pipe = full_size_pipeline(args.device, getattr(torch, args.dtype), whole)
    pipe.set_progress_bar_config(disable=True)
    benchmark_decode_path(pipe, args.seconds, args.device, args.repeats)
    if whole:
        benchmark_whole(pipe, args.seconds, args.device)


if __name__ == "__main__":
    from machine import describe_machine  # benchmarks/machine.py: the CPU every number here is measured on

    print(describe_machine())
    main()
