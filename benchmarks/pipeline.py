"""Benchmark: what a clip costs in `VisagePipeline`, part by part, with random weights of the real configs.

1. Components, by running the component benchmarks (not copies of them): ``benchmarks/codec.py`` (full 44.1 kHz
   DAC encode + decode of one clip: today's ``FOACodec`` path against the fast path) and
   ``benchmarks/features.py`` (full CLIP ViT-B/32 features + energy map for the clip's 4-fps frames).
2. The decode path the pipeline really uses: ``VisagePipeline.decode`` (per generation window, only over the
   samples each window contributes, crossfaded) against one ``FOACodec.decode`` pass over all codes, on the
   full DAC: time ratio and the largest difference. A clip of exactly 5 s is one window (430 generated frames
   and the 431st, which ends past the video, repeated), 12 s three.
3. ``--whole`` (default with ``--device cuda``): a synthetic clip end to end at full size (CLIP, the
   358.6 M-parameter `VisageForFOA` in ``--dtype``, the DAC in float32 through the fast path), from the video
   file to the exported files, as ``visage generate`` runs it. Prints the wall time of each stage (self time:
   a stage's inner stages are not counted twice): frame decode, CLIP + energy map, generation, DAC decode, and
   the export's FOA WAV, binaural render, energy-map picture and MP4 muxing; then the total and the real-time
   factor. ``--dtype`` is the generator's precision (``float32``, ``bfloat16``, ``float16``, or ``int8``: float32
   with the decoder's step weights in int8): CLIP and the DAC stay float32, the fastest on a CPU without native
   bf16.

Usage: ``python benchmarks/pipeline.py [--seconds 5] [--device cpu|cuda] [--dtype bfloat16] [--repeats 1]
[--whole] [--skip-components]``
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
    variants = ["codec", "fast", "fast-b4"] if device.startswith("cuda") else ["codec", "fast"]
    commands = [
        [sys.executable, str(HERE / "codec.py"), "--seconds", f"{seconds:g}", "--device", device, "--repeats",
         str(repeats), "--variants", *variants],
        [sys.executable, str(HERE / "features.py"), "--frames", str(round(seconds * 4)), "--device", device,
         "--repeats", str(repeats)],
    ]  # fmt: skip
    for command in commands:
        print(
            f"\n$ {' '.join(Path(part).name if part.endswith('.py') else part for part in command[1:])}",
            flush=True,
        )
        subprocess.run(command, check=True)


def full_size_pipeline(device: str, dtype: str, whole: bool):
    """A pipeline with the full DAC (and, if ``whole``, full CLIP and model; else the tiny ones).

    The generator runs in ``dtype``; CLIP and the DAC stay float32 (``float16`` on CUDA)."""
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
    pipe = VisagePipeline(**parts).to(device=device)
    if device.startswith("cuda"):
        pipe.image_encoder.half()
    apply_generator_dtype(pipe, dtype)
    return pipe


def apply_generator_dtype(pipe, dtype: str) -> None:
    """Put the generator (``pipe.foa_model``) in ``dtype``: a torch float type, or ``int8`` (float32 with the
    decoder's step weights in int8, as ``load_pipeline(..., dtype="int8")`` does)."""
    if dtype != "int8":
        pipe.foa_model.to(getattr(torch, dtype))
        return
    from visage_hf.models.quantization import quantize_decoder

    quantize_decoder(pipe)


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


class StageTimer:
    """Wall time per stage, each stage's own: time spent in a nested stage is counted there, not twice.

    ``patch(owner, name, stage)`` replaces ``owner.name`` (a module function or an instance's method) by a timed
    wrapper until :meth:`restore`."""

    def __init__(self, device: str):
        self.device = device
        self.seconds: dict[str, float] = {}
        self._stack: list[float] = []  # time already given to inner stages, per open stage
        self._patched: list[tuple[object, str, object]] = []

    def patch(self, owner, name: str, stage: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            _sync(self.device)
            start = time.perf_counter()
            self._stack.append(0.0)
            try:
                return original(*args, **kwargs)
            finally:
                _sync(self.device)
                elapsed = time.perf_counter() - start
                inner = self._stack.pop()
                self.seconds[stage] = self.seconds.get(stage, 0.0) + elapsed - inner
                if self._stack:
                    self._stack[-1] += elapsed

        self._patched.append((owner, name, owner.__dict__.get(name) if hasattr(owner, "__dict__") else None))
        setattr(owner, name, timed)

    def restore(self) -> None:
        for owner, name, before in reversed(self._patched):
            if before is None:
                delattr(owner, name)  # an instance attribute over the class's method
            else:
                setattr(owner, name, before)
        self._patched.clear()


def benchmark_whole(pipe, seconds: float, device: str, dtype: str) -> None:
    """One clip end to end as ``visage generate`` runs it: video file -> exported files, with stage times."""
    from visage_hf.data.synthetic import moving_object_video
    from visage_hf.pipelines import export, pipeline_visage

    timer = StageTimer(device)
    timer.patch(pipe, "load_frames", "frame decode (video -> 4-fps frames)")
    timer.patch(pipeline_visage, "_window_inputs", "CLIP + energy map")
    timer.patch(pipe, "generate_codes", "generation (VisageForFOA)")
    timer.patch(pipe, "decode", "DAC decode (fast path)")
    timer.patch(export, "write_audio", "export: FOA + binaural WAV files")
    timer.patch(export, "render_binaural", "export: binaural render")
    timer.patch(export, "plot_energy_map", "export: energy-map picture")
    timer.patch(export, "write_mp4", "export: MP4 mux (spatial, spatial_360)")
    timer.patch(export, "export_generation", "export: rest (rotation, staging)")
    with tempfile.TemporaryDirectory() as folder:
        video = moving_object_video(Path(folder) / "clip.mp4", seconds=seconds, fps=25, width=320, height=240)
        try:
            _sync(device)
            start = time.perf_counter()
            out = pipe(video, 30.0, 0.0, seed=0, progress=False)
            export.export_generation(
                Path(folder) / "out", out.audio[0], out.sample_rate, 30.0, 0.0, video=video
            )
            _sync(device)
            total = time.perf_counter() - start
        finally:
            timer.restore()
    audio_seconds = out.audio.shape[-1] / out.sample_rate
    print(
        f"\nwhole pipeline, full size, generator {dtype}, CLIP + DAC float32, {audio_seconds:g} s clip, "
        f"{len(out.windows)} window(s), device {device}, load average {os.getloadavg()[0]:.2f}:"
    )
    for name, value in timer.seconds.items():
        print(f"  {name:<42}: {value:8.2f} s")
    print(f"  {'other (pipeline glue)':<42}: {total - sum(timer.seconds.values()):8.2f} s")
    print(
        f"  total {total:.2f} s -> real-time factor {total / audio_seconds:.3f} (goal on a 2-core AVX2 CPU: <= 30 s)"
    )
    if device.startswith("cuda"):
        print(f"  peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--dtype",
        default="bfloat16",
        choices=["float32", "float16", "bfloat16", "int8"],
        help="the generator's precision (CLIP and the DAC stay float32)",
    )
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
    pipe = full_size_pipeline(args.device, args.dtype, whole)
    pipe.set_progress_bar_config(disable=True)
    benchmark_decode_path(pipe, args.seconds, args.device, args.repeats)
    if whole:
        benchmark_whole(pipe, args.seconds, args.device, args.dtype)


if __name__ == "__main__":
    from machine import describe_machine  # benchmarks/machine.py: the CPU every number here is measured on

    print(describe_machine())
    main()
