"""The GPU check of the speed issue, as one prepared script: a 5-s clip's real-time factor and batch throughput.

Random weights with the real sizes (VisageForFOA at full size, the 44.1 kHz DAC: 76.6 M parameters; speed does
not depend on weight values, and nothing is downloaded). Two measurements:

* **single clip**: one 5-s clip (20 video frames -> 430 codec frames -> 861 decoder steps), default sampling
  (joint guidance, top-k 256), batch 1: generation seconds + DAC decode seconds; the real-time factor is their
  sum over 5 s (goal on an H100/H200: < 0.05). Twice: decoder steps replayed as CUDA graphs (`static_steps`, the
  default on CUDA) and launched op by op (``static_steps=False``), and the greedy codes of both compared;
* **batch**: ``generate-batch``'s work for ``--batches`` clips at once (one generator per clip, as
  ``visage generate-batch`` draws), generation + DAC decode of every clip: clips per second and the projected
  time for the 11,166-clip YT-Ambigen test split (goal: < 15 minutes).

Every variant runs ``--repeats`` times after one warm-up call (CUDA graphs, compiled kernels and cuDNN's
algorithm search are paid in the warm-up, as in a long run); the fastest counts. Without CUDA the script
says so and stops, unless ``--device cpu`` is given (a smoke run: use ``--size smoke --seconds 1``).

Usage:
    python benchmarks/gpu.py                                   # H100/H200: single clip + batches 64, 256
    python benchmarks/gpu.py --dtype float32 --batches 64
    python benchmarks/gpu.py --graphs-only --no-compare --batches 64 --profile profile.txt --profile-batch 64
    python benchmarks/gpu.py --device cpu --size smoke --seconds 1 --batches 2 --repeats 1   # smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

TEST_SPLIT_CLIPS = 11_166  # YT-Ambigen test split
VIDEO_FPS = 4
SMOKE = {
    "d_model": 32,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
}  # fmt: skip: a model only big enough to run every code path


def build_models(size: str, device: str, dtype: torch.dtype):
    """Random-weight VisageForFOA and the 44.1 kHz DAC inside FOACodec: real sizes, or tiny ones for a smoke run."""
    from transformers import DacConfig, DacModel

    from visage_hf.audio.codec import FOACodec
    from visage_hf.models.configuration_visage import VisageConfig
    from visage_hf.models.modeling_visage import VisageForFOA

    torch.manual_seed(0)
    config = VisageConfig(dropout=0.0, **(SMOKE if size == "smoke" else {}))
    model = VisageForFOA(config).eval().to(device=device, dtype=dtype)
    dac_sizes = {"encoder_hidden_size": 8, "decoder_hidden_size": 32} if size == "smoke" else {}
    codec = FOACodec(DacModel(DacConfig(sampling_rate=44100, **dac_sizes)).eval(), batch_size=4).to(device)
    return model, codec


def random_conditions(batch: int, frames: int, device: str, dtype: torch.dtype, seed: int = 1):
    """``clip_features (batch, frames, 512)``, ``energy_map (batch, frames, 49)`` (softmax rows), unit
    ``direction (batch, 3)``."""
    generator = torch.Generator().manual_seed(seed)
    clip = torch.randn(batch, frames, 512, generator=generator)
    energy = torch.softmax(torch.randn(batch, frames, 49, generator=generator), dim=-1)
    direction = torch.nn.functional.normalize(torch.randn(batch, 3, generator=generator), dim=-1)
    return [tensor.to(device=device, dtype=dtype) for tensor in (clip, energy, direction)]


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_generation_and_decode(model, codec, batch: int, frames: int, device: str, repeats: int, extra: dict):
    """Best (generation s, decode s) over ``repeats`` runs after one warm-up, for ``batch`` clips."""
    conditions = random_conditions(batch, frames, device, model.dtype)
    generators = [torch.Generator(device=device).manual_seed(index) for index in range(batch)]
    best = (float("inf"), float("inf"))
    for run in range(repeats + 1):
        synchronize(device)
        start = time.perf_counter()
        with torch.inference_mode():
            codes = model.generate(*conditions, generator=generators if batch > 1 else generators[0], **extra)
        synchronize(device)
        generated = time.perf_counter()
        with torch.inference_mode():
            for clip_codes in codes:
                codec.decode(clip_codes)
        synchronize(device)
        decoded = time.perf_counter()
        if run > 0:  # run 0 is the warm-up
            best = min(best, (generated - start, decoded - generated), key=sum)
    return best


def profile_generation(model, device: str, path: str, batch: int = 1) -> None:
    """torch.profiler's operator table (by self CPU time, then by device time) for the generation of ``batch``
    1-s clips (one generator each, as ``generate-batch`` draws)."""
    from torch.profiler import ProfilerActivity, profile

    conditions = random_conditions(batch, VIDEO_FPS, device, model.dtype, seed=3)
    generators = [torch.Generator(device=device).manual_seed(index) for index in range(batch)]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with torch.inference_mode(), profile(activities=activities) as profiler:
        model.generate(*conditions, generator=generators if batch > 1 else generators[0])
        synchronize(device)
    averages = profiler.key_averages()
    tables = [
        averages.table(sort_by=key, row_limit=30) for key in ("self_cpu_time_total", "self_device_time_total")
    ]
    with open(path, "w") as file:
        file.write("\n\n".join(tables))
    print(f"profile of the generation of {batch} 1-s clip(s): {path}")


def compare_greedy_codes(model, frames: int, device: str) -> str:
    """Greedy codes of one clip with static (graphed) and op-by-op steps: the share of codes that agree. Once a code
    differs the two continue from different codes, so the first differing frame says more than the share."""
    conditions = random_conditions(1, frames, device, model.dtype, seed=2)
    with torch.inference_mode():
        graphed, eager = (
            model.generate(*conditions, do_sample=False, static_steps=static_steps)
            for static_steps in (True, False)
        )
    same = (graphed == eager).float().mean().item()
    first = (graphed != eager).flatten(0, 2).any(0).nonzero()
    where = f"first differing frame {first[0].item()}" if len(first) else "identical"
    return f"greedy codes, static vs op-by-op steps: {100 * same:.2f} % agree ({where}; {model.dtype})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", help="float32, bfloat16 (or any dtype generate takes)")
    parser.add_argument("--size", choices=("full", "smoke"), default="full")
    parser.add_argument("--seconds", type=float, default=5.0, help="clip length (5 s = the released window)")
    parser.add_argument("--batches", type=int, nargs="*", default=[64, 256], help="batch sizes to time")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--generate-kwargs",
        default="{}",
        help="JSON of extra VisageForFOA.generate options, e.g. '{\"top_k\": 250}'",
    )
    parser.add_argument(
        "--profile", help="write torch.profiler's table of a 1-s clip's generation to this file"
    )
    parser.add_argument("--profile-batch", type=int, default=1, help="clips in the profiled generation")
    parser.add_argument("--graphs-only", action="store_true", help="skip the op-by-op single clip")
    parser.add_argument("--no-compare", action="store_true", help="skip the greedy-code comparison")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "no CUDA device here: this is the GPU check (use --device cpu for a smoke run)", file=sys.stderr
        )
        return 2
    dtype = getattr(torch, args.dtype)
    extra = json.loads(args.generate_kwargs)
    frames = round(args.seconds * VIDEO_FPS)
    model, codec = build_models(args.size, args.device, dtype)
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    print(f"device {name}; model {args.size} {args.dtype}; clip {args.seconds:g} s ({frames} video frames)")

    steps = model.config.code_pattern.num_steps(model.config.frames_for_video_frames(frames))
    graphs = "graphs" if args.device.startswith("cuda") else "static steps"
    variants = ((graphs, True),) if args.graphs_only else ((graphs, True), ("op by op", False))
    for variant, static_steps in variants:
        options = {"static_steps": static_steps, **extra}
        generation_s, decode_s = time_generation_and_decode(
            model, codec, 1, frames, args.device, args.repeats, options
        )
        factor = (generation_s + decode_s) / args.seconds
        print(
            f"single clip, {variant}: generation {generation_s:.3f} s ({1000 * generation_s / steps:.2f} ms a step) "
            f"+ DAC decode {decode_s:.3f} s -> real-time factor {factor:.3f} (goal < 0.05 on an H100/H200)"
        )
    if args.profile:
        profile_generation(model, args.device, args.profile, args.profile_batch)
    for batch in args.batches:
        generation_s, decode_s = time_generation_and_decode(
            model, codec, batch, frames, args.device, args.repeats, extra
        )
        per_second = batch / (generation_s + decode_s)
        minutes = TEST_SPLIT_CLIPS / per_second / 60
        print(
            f"batch {batch}: generation {generation_s:.3f} s + decode {decode_s:.3f} s -> {per_second:.2f} clips/s; "
            f"{TEST_SPLIT_CLIPS} clips in {minutes:.1f} min (goal < 15)"
        )
    if not args.no_compare:
        print(compare_greedy_codes(model, frames, args.device))
        # bf16 codes part at the first near-tie of random weights; fp32 shows whether the steps are exact.
        if model.dtype != torch.float32:
            print(compare_greedy_codes(model.float(), frames, args.device))
    return 0


if __name__ == "__main__":
    # benchmarks/machine.py: the machine every number here is measured on
    from machine import describe_machine

    print(describe_machine())
    sys.exit(main())
