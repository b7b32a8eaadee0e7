"""Code generation speed: `VisageForFOA.generate` against the original's `generate_cfg` loop and against this
machine's memory floor, measured in the same run.

Same random weights (same seed) for every variant; joint guidance (s = 2.5), top-k 256 sampling, batch 1 by
default. All variants run in one process, round-robin (A B C A B C ...), so that a shared machine's changing load
affects them alike; each step is timed on its own (a timestamp per step), and the memory read bandwidth is
measured between the rounds (`machine.read_bandwidth`) and, on CPU, between steps (`moment_probe`, every 20
steps, its own time left out of the steps):

* ``reference``: the original's `generate_cfg` written over our modules: one decoder pass per guidance branch per
  step (conditional, then unconditional, each with its own concatenating `DynamicCache`), the live heads of the
  step computed one by one for each branch, the CFG formula on logits, top-k and one ``torch.multinomial`` per
  live head, a pad column made per idle stream and the 36 stacked (fp32, as the released model runs);
* ``ours`` / ``ours-bf16``: `VisageForFOA.generate` in fp32 / bf16 (one batched decoder pass for both branches,
  preallocated cache, guidance combined before the live heads, packed step weights on CPU);
* ``ours-int8``: the same with ``dtype="int8"`` (the decoder's step weights and heads int8, one scale per output
  channel, torch's ``_weight_int8pack_mm``; `visage_hf.models.quantization`).

On CPU, ``ours*`` multiply each step's few rows by the numba kernels of `visage_hf.models.row_kernels`, all the
decoder's layers of a step in one compiled call (`visage_hf.models.fused_step`); ``ours-torch``,
``ours-bf16-torch`` and ``ours-int8-torch`` (not run by default) time the same without numba (torch's oneDNN /
plain / int8 products, as where numba is not installed), ``ours-layers`` and ``ours-int8-layers`` with the kernels
but the layers one by one.

A variant is one `Variant` line in `VARIANTS` (its weight preparation and the bytes it reads per step weight).

Per variant it prints ms per decoder step (median, and the fastest decile: the steps least disturbed by other
processes), the per-call fixed cost, seconds for a 5-s clip (fixed + 861 median steps), the speed-up over
``reference``, and the distance from this machine's floor: every step must read the decoder's step weights once
(self-attention 4·d², cross-attention q/o 2·d², FFN 2·d·ffn per layer) and the live heads (on average 18 of 36
heads of d × 1024 per step), and the attention's keys and values (cross-attention's fp32; self-attention's fp32,
or bf16 where the fused step keeps them so, and growing by a row a step, so a 5-s clip's later steps read more
than the 61 timed by default: ``--full`` times them all), at the measured read bandwidth. ``s/clip`` extrapolates
the median step, so it leaves that growth out unless ``--full``.

Usage:
    python benchmarks/generate.py                         # the 78 M and the full (360 M) model, 61 steps
    python benchmarks/generate.py --sizes full --steps 101 --repeats 3
    python benchmarks/generate.py --full                  # all 861 steps of a 5 s clip
    python benchmarks/generate.py --sizes full --variants reference ours-bf16 --device cuda --batch 8
"""

from __future__ import annotations

import argparse
import copy
import gc
import inspect
import multiprocessing
import resource
import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

SIZES = {
    "small": {"d_model": 256, "encoder_layers": 2, "decoder_layers": 4, "encoder_attention_heads": 4,
              "decoder_attention_heads": 4, "encoder_ffn_dim": 1024, "decoder_ffn_dim": 1024},
    "78m": {"d_model": 512, "encoder_layers": 4, "decoder_layers": 6, "encoder_attention_heads": 8,
            "decoder_attention_heads": 8, "encoder_ffn_dim": 2048, "decoder_ffn_dim": 2048},
    "full": {},
}  # fmt: skip
CLIP_FRAMES = 20  # 5 s at 4 fps -> 430 codec frames -> 861 decoder steps
CLIP_STEPS = 861
CLIP_CODEC_FRAMES = 430


def _to_dtype(name: str) -> Callable:
    def prepare(model):
        import torch

        return model.to(getattr(torch, name))

    return prepare


def _int8(model):
    from visage_hf.models.quantization import quantize_decoder

    return quantize_decoder(model)


@contextmanager
def _without_plain_stacking():
    """Generation as before the plain stacked layout: packed weights only where oneDNN has kernels."""
    from visage_hf.models.encoder_decoder import PackedLinear

    applies = PackedLinear.applies
    PackedLinear.applies = staticmethod(PackedLinear.supports)
    try:
        yield
    finally:
        PackedLinear.applies = staticmethod(applies)


@contextmanager
def _without_row_kernels():
    """Generation on torch's products only (oneDNN, torch's int8 kernel), as where numba is not installed."""
    import os

    before = os.environ.get("VISAGE_HF_NO_NUMBA")
    os.environ["VISAGE_HF_NO_NUMBA"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["VISAGE_HF_NO_NUMBA"]
        else:
            os.environ["VISAGE_HF_NO_NUMBA"] = before


@contextmanager
def _without_fused_step():
    """The numba products and attention, but the decoder's layers one by one (no `FusedDecoderStep`)."""
    from visage_hf.models.fused_step import FusedDecoderStep

    build = FusedDecoderStep.build
    FusedDecoderStep.build = classmethod(lambda cls, layers: None)
    try:
        yield
    finally:
        FusedDecoderStep.build = build


@dataclass(frozen=True)
class Variant:
    """One generation variant: how its model is prepared, and how many bytes it reads per step weight."""

    name: str
    reference: bool = False  # the original-style loop instead of `VisageForFOA.generate`
    prepare: Callable | None = None  # model -> model (a dtype cast, a quantization); None keeps fp32
    bytes_per_weight: float = 4.0
    cache_bytes: float = 4.0  # per self-attention key/value element (the fused step keeps bf16 for bf16/int8)
    generate_kwargs: dict = field(default_factory=dict)
    context: Callable | None = None  # () -> context manager around each call (to time a path switched off)


VARIANTS = {
    variant.name: variant
    for variant in (
        Variant("reference", reference=True),
        Variant("ours"),
        Variant("ours-bf16", prepare=_to_dtype("bfloat16"), bytes_per_weight=2.0, cache_bytes=2.0),
        # dtype="int8": visage_hf.models.quantization
        Variant("ours-int8", prepare=_int8, bytes_per_weight=1.0, cache_bytes=2.0),
        # Not run by default: torch's products instead of the numba kernels (visage_hf.models.row_kernels).
        Variant("ours-torch", context=_without_row_kernels),
        Variant(
            "ours-bf16-torch",
            prepare=_to_dtype("bfloat16"),
            bytes_per_weight=2.0,
            context=_without_row_kernels,
        ),
        Variant("ours-int8-torch", prepare=_int8, bytes_per_weight=1.0, context=_without_row_kernels),
        # Not run by default: the numba kernels, the layers one by one (visage_hf.models.fused_step off).
        Variant("ours-layers", context=_without_fused_step),
        Variant("ours-int8-layers", prepare=_int8, bytes_per_weight=1.0, context=_without_fused_step),
        # Not run by default: bf16 without the plain stacked layout (as on AVX2 CPUs before it existed).
        Variant(
            "ours-bf16-unstacked",
            prepare=_to_dtype("bfloat16"),
            bytes_per_weight=2.0,
            cache_bytes=2.0,
            context=_without_plain_stacking,
        ),
    )
}
DEFAULT_VARIANTS = ("reference", "ours", "ours-bf16", "ours-int8")


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


def step_weight_count(config) -> float:
    """Parameters one decoder step must read: the layers' step weights (cross-attention k/v are computed once
    and cached) and the live heads, averaged over the steps of a 5-s clip."""
    d, ffn = config.d_model, config.decoder_ffn_dim
    layers = config.decoder_layers * (6 * d * d + 2 * d * ffn)
    heads = sum(len(live_heads(step, CLIP_CODEC_FRAMES)) for step in range(CLIP_STEPS)) / CLIP_STEPS
    return layers + heads * d * config.codebook_size


def cache_bytes_per_step(
    config, rows: int, steps: int, self_bytes: float = 4.0, video_frames: int = CLIP_FRAMES
) -> float:
    """Bytes of attention keys and values one step reads, averaged over steps 1..steps-1 of a generation with
    ``rows`` rows (guidance branches × batch): every layer's self-attention cache (one row per past step,
    ``self_bytes`` per element) and cross-attention states (the video frames + 2, fp32)."""
    per_position = config.decoder_layers * 2 * rows * config.d_model
    mean_self = sum(range(2, steps + 1)) / max(steps - 1, 1)  # keys at step t: t + 1 (the start token's too)
    return per_position * (mean_self * self_bytes + (video_frames + 2) * 4)


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


def reference_generate(model, clip, energy, direction, num_frames, scale=2.5, top_k=256, on_step=None):
    """The original `generate_cfg` (do_sample) over our modules: a decoder call per branch per step with its
    own cache, the live heads one by one per branch, CFG per head, top-k and a multinomial per head."""
    import torch
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    batch, pad = clip.shape[0], model.config.code_pad_id
    encoder, decoder = model.model.encoder, model.model.decoder
    conditional = encoder(clip, energy, direction)
    null = model.apply_null_conditions(
        clip, energy, direction, torch.ones(batch, dtype=bool), torch.ones(batch, dtype=bool)
    )
    unconditional = encoder(*null)
    caches = [EncoderDecoderCache(DynamicCache(), DynamicCache()) for _ in range(2)]
    row = torch.full((batch, 1, 36), pad, device=clip.device)
    rows = []
    for step in range(2 * num_frames + 1):
        hidden = [
            decoder(decoder.embed(row, step), states, cache=cache, past_length=step)
            for states, cache in zip((conditional, unconditional), caches)
        ]
        heads = live_heads(step, num_frames)
        logits = {j: (model.heads[j](hidden[0]), model.heads[j](hidden[1])) for j in heads}
        columns = []
        for j in range(36):
            if j not in logits:
                columns.append(torch.full((batch, 1), pad).to(clip.device))
                continue
            cond, uncond = (logit[:, -1:] for logit in logits[j])
            logit = (cond + (cond - uncond) * scale).squeeze(1)
            logit = logit.masked_fill(logit < torch.topk(logit, top_k)[0][..., -1, None], float("-inf"))
            columns.append(torch.multinomial(logit.softmax(-1), num_samples=1))
        row = torch.stack(columns, dim=-1)
        rows.append(row)
        if on_step is not None:
            on_step()
    return torch.cat(rows, dim=1)


class StepClock:
    """Timestamps once per decoder step: called by the reference loop, or as the last logits processor.

    With ``probe`` (a callable returning the memory read bandwidth in bytes/s), every ``probe_every``-th step also
    measures the bandwidth there and then, and the probe's own seconds are left out of the steps' times: a shared
    machine's bandwidth changes within seconds, and a step is best compared with the floor of its own moment.
    """

    def __init__(self, probe: Callable[[], float] | None = None, probe_every: int = 20):
        self.stamps: list[float] = []
        self.probes: list[tuple[int, float]] = []  # (index of the stamp it followed, bytes/s)
        self._probe, self._probe_every = probe, probe_every
        self.probe_seconds = 0.0
        self.call_seconds: float | None = None  # the whole generate call, probes left out (set by `Runner`)

    def __call__(self, input_ids=None, scores=None):
        now = time.perf_counter()
        self.stamps.append(now - self.probe_seconds)
        if self._probe is not None and len(self.stamps) % self._probe_every == 0:
            self.probes.append((len(self.stamps) - 1, self._probe()))
            self.probe_seconds += time.perf_counter() - now
        return scores

    def step_seconds(self) -> list[float]:
        """Seconds per step, as the mean of each pair of consecutive steps (the pattern alternates between 11 and
        25 live heads); the first step (encoder, weight packing) is left out."""
        deltas = [later - earlier for earlier, later in zip(self.stamps[1:], self.stamps[2:])]
        return [(a + b) / 2 for a, b in zip(deltas[::2], deltas[1::2])]

    def step_bandwidths(self) -> list[float]:
        """For each pair of `step_seconds`, the bandwidth of the probe nearest to it (empty without probes)."""
        if not self.probes:
            return []
        middles = [2 + 2 * pair for pair in range(len(self.step_seconds()))]  # the stamp between the pair
        return [min(self.probes, key=lambda probe: abs(probe[0] - middle))[1] for middle in middles]


def moment_probe(megabytes: int = 256) -> Callable[[], float]:
    """`machine.read_bandwidth`'s measurement (the faster of two sums over a buffer far larger than the caches,
    on torch's threads) as a callable cheap enough to run between decoder steps."""
    import torch

    from visage_hf.models.row_kernels import torch_threads

    buffer = torch.ones(megabytes * 2**20 // 4)

    def probe() -> float:
        with torch_threads():  # inside generation torch runs single-threaded (row_kernels.kernel_threads)
            fastest = float("inf")
            for _ in range(2):
                start = time.perf_counter()
                buffer.sum()
                fastest = min(fastest, time.perf_counter() - start)
        return buffer.numel() * 4 / fastest

    return probe


# As on the library's processors (`visage_hf.models.generation.with_stored_signature`): generate inspects every
# processor's signature at every step, which would be counted in the steps of `ours*` only.
StepClock.__call__.__signature__ = inspect.signature(StepClock.__call__)


class Runner:
    """One variant ready to run: its prepared model on the device, with its conditions."""

    def __init__(self, variant: Variant, model, conditions, device: str):
        self.variant = variant
        if variant.prepare is not None:
            model = variant.prepare(model)
        self.model = model.to(device)
        self.conditions = [tensor.to(device) for tensor in conditions]
        self.device = device

    def __call__(self, num_frames: int, probe: Callable[[], float] | None = None) -> StepClock:
        """The `StepClock` of a generation of ``num_frames`` frames (2·frames + 1 steps), probing the bandwidth
        between steps with ``probe``; its ``call_seconds`` is the whole call's time, probes left out."""
        import torch
        from transformers import LogitsProcessorList

        clock = StepClock(probe)
        self._synchronize()
        start = time.perf_counter()
        context = self.variant.context() if self.variant.context else nullcontext()
        with torch.inference_mode(), context:
            if self.variant.reference:
                reference_generate(self.model, *self.conditions, num_frames, on_step=clock)
            else:
                self.model.generate(
                    *self.conditions,
                    num_frames=num_frames,
                    seed=0,
                    logits_processor=LogitsProcessorList([clock]),
                    **self.variant.generate_kwargs,
                )
        self._synchronize()
        clock.call_seconds = time.perf_counter() - start - clock.probe_seconds
        return clock

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


def _decile(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 10]


def time_variants(variants, size, steps, device, batch, threads, repeats) -> tuple[dict, float, float]:
    """Interleaved timing: ``repeats`` rounds over the variants, each round followed by a bandwidth probe.

    Returns (per-variant results, step weights in parameters, best measured read bandwidth in bytes/s)."""
    from machine import read_bandwidth

    model, conditions = prepare(size, batch, threads)
    runners = {}
    for name in variants:
        variant = VARIANTS[name]
        runners[name] = Runner(
            variant, copy.deepcopy(model) if variant.prepare else model, conditions, device
        )
    num_frames = (steps - 1) // 2
    for runner in runners.values():
        runner(1)  # warm-up
    calls = {name: [] for name in variants}
    per_step = {name: [] for name in variants}
    step_bandwidths = {name: [] for name in variants}
    probe = moment_probe() if device == "cpu" else None
    bandwidth = 0.0
    for _ in range(repeats):
        for name, runner in runners.items():
            clock = runner(num_frames, probe)
            calls[name].append(clock.call_seconds)
            per_step[name] += clock.step_seconds()
            step_bandwidths[name] += clock.step_bandwidths()
        bandwidth = max(bandwidth, read_bandwidth(repeats=3))
    weights = step_weight_count(model.config)
    results = {}
    for name in variants:
        cache = cache_bytes_per_step(model.config, 2 * batch, steps, VARIANTS[name].cache_bytes)
        median = statistics.median(per_step[name])
        step_bytes = weights * VARIANTS[name].bytes_per_weight + cache
        timed_steps = model.config.pattern_steps(num_frames)
        fixed = max(min(calls[name]) - timed_steps * median, 0.0)
        clip_seconds = fixed + CLIP_STEPS * median
        results[name] = {
            "ms_per_step": 1e3 * median,
            "fast_ms_per_step": 1e3 * _decile(per_step[name]),
            "fixed_s": fixed,
            "clip_s": clip_seconds,
            "codes_per_s": batch * 36 * CLIP_CODEC_FRAMES / clip_seconds,
            "floor_ms": 1e3 * step_bytes / bandwidth,
        }
        if step_bandwidths[name]:  # each step pair against the floor of the probe nearest to it
            results[name]["x_moment_floor"] = statistics.median(
                seconds * measured / step_bytes
                for seconds, measured in zip(per_step[name], step_bandwidths[name], strict=True)
            )
            results[name]["moment_bandwidth"] = statistics.median(step_bandwidths[name])
    return results, weights, bandwidth


def peak_memory(name, size, steps, device, batch, threads, queue) -> None:
    """Child process: build, run one generation of ``steps`` steps, report the peak memory."""
    import torch

    model, conditions = prepare(size, batch, threads)
    runner = Runner(VARIANTS[name], model, conditions, device)
    del model
    gc.collect()
    _reset_peak_rss()
    runner((steps - 1) // 2)
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    queue.put((_peak_rss_mib(), gpu))


def measure_memory(name, size, steps, device, batch, threads) -> tuple[float, float | None]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=peak_memory, args=(name, size, steps, device, batch, threads, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def print_table(size: str, results: dict, weights: float, bandwidth: float) -> None:
    import os

    reference = results.get("reference", next(iter(results.values())))
    load = f"; load {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(
        f"\n[{size}] step weights read per step: {weights / 1e6:.1f} M parameters; measured read bandwidth "
        f"{bandwidth / 1e9:.1f} GB/s{load}"
    )
    moments = [r["moment_bandwidth"] for r in results.values() if "moment_bandwidth" in r]
    if moments:
        print(
            f"bandwidth probed between steps, median per variant: {min(moments) / 1e9:.1f}-{max(moments) / 1e9:.1f} GB/s"
        )
    print(
        f"{'variant':20s} {'ms/step':>8s} {'fast ms':>8s} {'fixed s':>7s} {'s/clip':>7s} {'codes/s':>8s} "
        f"{'speed-up':>8s} {'floor ms':>8s} {'x floor':>7s} {'fast x':>6s} {'x moment':>8s} {'peak RSS':>9s}"
    )
    for name, r in results.items():
        moment = f"{r['x_moment_floor']:7.2f}x" if "x_moment_floor" in r else "       -"
        memory = f"{r['peak_rss_mib']:7.0f} MiB" if "peak_rss_mib" in r else "      -"
        if r.get("peak_gpu_mib") is not None:
            memory += f"  GPU peak {r['peak_gpu_mib']:.0f} MiB"
        print(
            f"{name:20s} {r['ms_per_step']:8.1f} {r['fast_ms_per_step']:8.1f} {r['fixed_s']:7.2f} "
            f"{r['clip_s']:7.1f} {r['codes_per_s']:8.0f} {reference['clip_s'] / r['clip_s']:7.2f}x "
            f"{r['floor_ms']:8.1f} {r['ms_per_step'] / r['floor_ms']:6.2f}x "
            f"{r['fast_ms_per_step'] / r['floor_ms']:5.2f}x {moment} {memory}"
        )


def main() -> None:
    from machine import describe_capacity, gemm_flops, read_bandwidth

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", default=["78m", "full"], choices=list(SIZES))
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=61, help="decoder steps to time (odd; 861 = a 5 s clip)")
    parser.add_argument("--full", action="store_true", help="time all 861 steps of a 5 s clip")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds over the variants")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-variant peak-memory runs")
    args = parser.parse_args()
    steps = CLIP_STEPS if args.full else max(5, args.steps | 1)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    print(describe_capacity(read_bandwidth(), gemm_flops()))
    print(
        f"joint guidance 2.5, top-k 256 sampling, batch {args.batch}, {steps} of {CLIP_STEPS} steps timed, "
        f"{args.device}, torch threads: {args.threads or 'default'}, {args.repeats} interleaved rounds"
    )
    for size in args.sizes:
        results, weights, bandwidth = time_variants(
            args.variants, size, steps, args.device, args.batch, args.threads, args.repeats
        )
        if not args.no_memory:
            for name in args.variants:
                memory = measure_memory(name, size, steps, args.device, args.batch, args.threads)
                results[name]["peak_rss_mib"], results[name]["peak_gpu_mib"] = memory
        print_table(size, results, weights, bandwidth)
    print(
        "\nms/step: median decoder step (pairs of steps, first left out); fast ms: fastest decile of steps;\n"
        "fixed s: per-call cost outside the steps; s/clip: fixed + 861 median steps = 5 s of audio;\n"
        "speed-up: reference s/clip over s/clip, same run; floor: (step weights x bytes per weight + attention\n"
        "keys/values) / measured read bandwidth (best probe of the run); x floor: ms/step / floor;\n"
        "fast x: fast ms / floor; x moment (CPU): median over step pairs of the pair's time over its floor at\n"
        "the bandwidth probed nearest to it (every 20 steps, between steps; median probe printed above).\n"
        "On a GPU, real-time factor = s/clip / 5 and clips/s = batch / s/clip."
    )


if __name__ == "__main__":
    from machine import describe_machine  # benchmarks/machine.py: the CPU every number here is measured on

    print(describe_machine())
    main()
