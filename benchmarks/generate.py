"""Code generation speed: `VisageForFOA.generate` vs a straightforward loop like the original `generate_cfg`.

Same random weights (same seed) for every variant; joint guidance (s = 2.5), top-k 256 sampling, batch 1 by
default. Timings run in one process, round-robin over the variants (the fastest of ``--repeats`` rounds
counts), so that a shared machine's changing load affects all alike; peak memory is then measured by one fresh
process per variant:

* ``reference``: the original's structure — one decoder pass per guidance branch per step (conditional and
  unconditional, each with its own concatenating `DynamicCache`), all 36 heads per branch, the CFG formula on
  logits, top-k and one ``torch.multinomial`` per live head (fp32, as the released model runs);
* ``reference-live``: the same, computing only the live heads (what the original code actually does);
* ``ours`` / ``ours-bf16``: `VisageForFOA.generate` (one batched decoder pass for both branches, preallocated
  cache, live heads only, guidance combined before the heads; on CPU the decoder's step weights, the stacked live
  heads and the code tables are read through copies laid out for few-row products, made once per call -- see
  `visage_hf.models.encoder_decoder.PackedLinear`), fp32 / bf16 weights;
* ``ours-int8``: the same with ``dtype="int8"``: the decoder's step weights and heads in int8, one scale per output
  channel, through torch's ``_weight_int8pack_mm`` (`visage_hf.models.quantization`).

Prints ms per decoder step, generated codes per second, the speed-up over ``reference`` (fp32) measured in the
same run, peak RSS, and the distance from the memory-bandwidth floor (every step must read the decoder's
step weights once: self-attention 4·d², cross-attention q/o 2·d², FFN 2·d·ffn per layer, ≈176 M parameters at
full size; ~25.8 GB/s on the 2-core development machine).

Usage:
    python benchmarks/generate.py                 # small config, then full size (360 M) on 41 steps
    python benchmarks/generate.py --steps 101     # time more steps of the 5 s clip, extrapolate to 861
    python benchmarks/generate.py --full          # all 861 steps of a 5 s clip
    python benchmarks/generate.py --sizes full --variants reference ours-bf16 --device cuda --batch 8
"""

from __future__ import annotations

import argparse
import copy
import gc
import multiprocessing
import resource
import time

VARIANTS = ("reference", "reference-live", "ours", "ours-bf16", "ours-int8")
STEP_WEIGHT_BYTES = {"ours-bf16": 2, "ours-int8": 1}  # per step weight; fp32 otherwise
SIZES = {
    "small": {"d_model": 256, "encoder_layers": 2, "decoder_layers": 4, "encoder_attention_heads": 4,
              "decoder_attention_heads": 4, "encoder_ffn_dim": 1024, "decoder_ffn_dim": 1024},
    "full": {},
}  # fmt: skip
CLIP_FRAMES = 20  # 5 s at 4 fps -> 430 codec frames -> 861 decoder steps
CLIP_STEPS = 861
READ_BANDWIDTH = 25.8e9  # bytes/s, sequential read measured on the development machine


def _reset_peak_rss() -> None:
    """Start a new peak-RSS window (Linux: writing 5 to clear_refs resets VmHWM), so that building the fp32
    model before a bf16 cast does not count as the variant's peak."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def _peak_rss_mib() -> float:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def step_weight_count(config) -> int:
    """Parameters one decoder step must read (cross-attention k/v are computed once and cached)."""
    d, ffn = config.d_model, config.decoder_ffn_dim
    return config.decoder_layers * (6 * d * d + 2 * d * ffn)


def build(size: str):
    import torch

    from visage_hf.models.configuration_visage import VisageConfig
    from visage_hf.models.modeling_visage import VisageForFOA

    torch.manual_seed(0)
    model = VisageForFOA(VisageConfig(dropout=0.0, **SIZES[size])).eval()
    generator = torch.Generator().manual_seed(1)
    clip = torch.randn(1, CLIP_FRAMES, 512, generator=generator)
    energy = torch.rand(1, CLIP_FRAMES, 49, generator=generator)
    direction = torch.nn.functional.normalize(torch.randn(1, 3, generator=generator), dim=-1)
    return model, clip, energy, direction


def live_heads(step: int, num_frames: int) -> list[int]:
    """The original's head lists: step 0 [0]; odd steps W fine + Y/Z/X coarse; even steps the rest; last step
    without W coarse."""
    odd = [j for j in range(1, 36) if j < 9 or j % 9 == 0]
    even = [0] + [j for j in range(1, 36) if not (j < 9 or j % 9 == 0)]
    if step == 0:
        return [0]
    if step == 2 * num_frames:
        return even[1:]
    return odd if step % 2 else even


def reference_generate(model, clip, energy, direction, num_frames, all_heads, scale=2.5, top_k=256):
    """One decoder call per branch per step, separate caches, per-head CFG and multinomial (original style)."""
    import torch
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    batch = clip.shape[0]
    encoder, decoder = model.model.encoder, model.model.decoder
    conditional = encoder(clip, energy, direction)
    null = model.apply_null_conditions(
        clip, energy, direction, torch.ones(batch, dtype=bool), torch.ones(batch, dtype=bool)
    )
    unconditional = encoder(*null)
    caches = [EncoderDecoderCache(DynamicCache(), DynamicCache()) for _ in range(2)]
    row = torch.full((batch, 1, 36), 1024, device=clip.device)
    rows = []
    for step in range(2 * num_frames + 1):
        hidden = [
            decoder(decoder.embed(row, step), states, cache=cache, past_length=step)[:, -1]
            for states, cache in zip((conditional, unconditional), caches)
        ]
        heads = live_heads(step, num_frames)
        computed = range(36) if all_heads else heads
        logits = {j: (model.heads[j](hidden[0]), model.heads[j](hidden[1])) for j in computed}
        row = torch.full((batch, 1, 36), 1024, device=clip.device)
        for j in heads:
            cond, uncond = logits[j]
            logit = cond + (cond - uncond) * scale
            logit = logit.masked_fill(logit < torch.topk(logit, top_k)[0][..., -1, None], float("-inf"))
            row[:, 0, j] = torch.multinomial(logit.softmax(-1), 1)[:, 0]
        rows.append(row)
    return torch.cat(rows, dim=1)


class Runner:
    """One variant ready to run: the model in the variant's dtype, on the device, with its conditions."""

    def __init__(self, variant: str, model, conditions, device: str):
        import torch

        self.variant = variant
        if variant == "ours-bf16":
            model = model.to(torch.bfloat16)
        elif variant == "ours-int8":
            from visage_hf.models.quantization import quantize_decoder

            model = quantize_decoder(model)
        self.model = model.to(device)
        self.conditions = [tensor.to(device) for tensor in conditions]
        self.device = device

    def __call__(self, num_frames: int) -> float:
        """Seconds to generate ``num_frames`` frames (2·frames + 1 decoder steps)."""
        import torch

        self._synchronize()
        start = time.perf_counter()
        with torch.inference_mode():
            if self.variant.startswith("reference"):
                reference_generate(
                    self.model, *self.conditions, num_frames, all_heads=self.variant == "reference"
                )
            else:
                self.model.generate(*self.conditions, num_frames=num_frames, seed=0)
        self._synchronize()
        return time.perf_counter() - start

    def _synchronize(self) -> None:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()


def prepare(size: str, batch: int, threads: int):
    import torch

    if threads:
        torch.set_num_threads(threads)
    model, *conditions = build(size)
    return model, [tensor.expand(batch, *tensor.shape[1:]).contiguous() for tensor in conditions]


def time_variants(variants, size, steps, device, batch, threads, repeats) -> dict[str, dict]:
    """Interleaved timing (round-robin over variants, fastest of ``repeats`` rounds), so that a shared
    machine's changing load affects every variant alike."""
    model, conditions = prepare(size, batch, threads)
    runners = {
        v: Runner(v, copy.deepcopy(model) if v in STEP_WEIGHT_BYTES else model, conditions, device)
        for v in variants
    }
    num_frames = (steps - 1) // 2
    short_frames = 1  # 3 steps: mostly the fixed cost of a call
    for runner in runners.values():
        runner(short_frames)  # warm-up
    best = {v: {"short": float("inf"), "long": float("inf")} for v in variants}
    for _ in range(repeats):
        for variant, runner in runners.items():
            best[variant]["short"] = min(best[variant]["short"], runner(short_frames))
            best[variant]["long"] = min(best[variant]["long"], runner(num_frames))
    config = model.config
    long_steps, short_steps = config.pattern_steps(num_frames), config.pattern_steps(short_frames)
    results = {}
    for variant, times in best.items():
        per_step = max(times["long"] - times["short"], 1e-9) / (long_steps - short_steps)
        fixed = max(times["short"] - short_steps * per_step, 0.0)
        clip_seconds = fixed + CLIP_STEPS * per_step
        step_bytes = step_weight_count(config) * STEP_WEIGHT_BYTES.get(variant, 4)
        results[variant] = {
            "ms_per_step": 1e3 * per_step,
            "fixed_s": fixed,
            "clip_s": clip_seconds,
            "codes_per_s": batch * 36 * 430 / clip_seconds,
            "floor_ms": 1e3 * step_bytes / READ_BANDWIDTH,
        }
    return results, step_weight_count(config) / 1e6


def peak_memory(variant, size, steps, device, batch, threads, queue) -> None:
    """Child process: build, run one generation of ``steps`` steps, report the peak memory."""
    import torch

    model, conditions = prepare(size, batch, threads)
    runner = Runner(variant, model, conditions, device)
    del model
    gc.collect()
    _reset_peak_rss()
    runner((steps - 1) // 2)
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    queue.put((_peak_rss_mib(), gpu))


def measure_memory(variant, size, steps, device, batch, threads) -> tuple[float, float | None]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=peak_memory, args=(variant, size, steps, device, batch, threads, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", default=["small", "full"], choices=list(SIZES))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--steps", type=int, default=41, help="decoder steps to time (odd; 861 = a 5 s clip)")
    parser.add_argument("--full", action="store_true", help="time all 861 steps of a 5 s clip")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=2, help="timed rounds; each variant's fastest counts")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-variant peak-memory runs")
    args = parser.parse_args()
    steps = CLIP_STEPS if args.full else max(5, args.steps | 1)
    print(
        f"joint guidance 2.5, top-k 256 sampling, batch {args.batch}, {steps} of {CLIP_STEPS} steps timed, "
        f"{args.device}, torch threads: {args.threads or 'default'}"
    )
    for size in args.sizes:
        results, step_weights = time_variants(
            args.variants, size, steps, args.device, args.batch, args.threads, args.repeats
        )
        if not args.no_memory:
            for variant in args.variants:
                memory = measure_memory(variant, size, steps, args.device, args.batch, args.threads)
                results[variant]["peak_rss_mib"], results[variant]["peak_gpu_mib"] = memory
        reference = results.get("reference", next(iter(results.values())))
        print(f"\n[{size}] decoder step weights: {step_weights:.1f} M parameters")
        print(
            f"{'variant':16s} {'ms/step':>8s} {'fixed s':>7s} {'s/clip':>7s} {'codes/s':>8s} {'speed-up':>8s} "
            f"{'floor ms':>8s} {'x floor':>7s} {'peak RSS':>9s}"
        )
        for variant, r in results.items():
            memory = f"{r['peak_rss_mib']:7.0f} MiB" if "peak_rss_mib" in r else "      -"
            if r.get("peak_gpu_mib") is not None:
                memory += f"  GPU peak {r['peak_gpu_mib']:.0f} MiB"
            print(
                f"{variant:16s} {r['ms_per_step']:8.1f} {r['fixed_s']:7.2f} {r['clip_s']:7.1f} "
                f"{r['codes_per_s']:8.0f} {reference['clip_s'] / r['clip_s']:7.2f}x "
                f"{r['floor_ms']:8.1f} {r['ms_per_step'] / r['floor_ms']:6.1f}x {memory}"
            )
    print(
        "\nms/step: marginal cost of a decoder step (long run minus a 3-step run); fixed s: per-call cost;\n"
        "s/clip: fixed + 861 steps = 5 s of audio; speed-up: reference s/clip over s/clip, same run;\n"
        "floor: step weights / 25.8 GB/s (CPU); on a GPU, real-time factor = s/clip / 5 and clips/s = batch / s/clip."
    )


if __name__ == "__main__":
    from machine import describe_machine  # benchmarks/machine.py: the CPU every number here is measured on

    print(describe_machine())
    main()
