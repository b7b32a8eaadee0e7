"""Training-step speed and memory: one optimizer step (forward + backward + clip + AdamW) of `visage_hf.training.train`.

Every variant runs the real training step (`visage_hf.training.train.train_step` under an `Accelerator`, AdamW groups
and scheduler from `build_optimizer_and_scheduler`) on real collated batches (the synthetic task's 5 s clips
through `VisageCollator`: 20 CLIP frames, 430 codec frames, 861 pattern steps), each in a fresh process so its
peak memory is its own. The reference is the plain fp32 eager step; the variants are the two knobs a user
turns to train faster or bigger:

* ``fp32``: reference (full precision, every activation kept for backward);
* ``bf16``: accelerate's bf16 autocast (the recipes' setting; fp32 master weights and optimizer states);
* ``fp32-ckpt``: gradient checkpointing (``--gradient_checkpointing``): less activation memory, one more
  forward per layer.

Printed per variant: wall and CPU seconds per step (the fastest of ``--steps`` timed steps after a warm-up),
samples/s, code tokens/s (the 36·430 = 15,480 real label tokens of a 5 s
sample), peak RSS, the step-transient memory (highest RSS during a step above the RSS before it: activations
and gradients; the AdamW moments already exist), and the speed ratio to ``fp32`` measured in the same run —
on CPU from the process's CPU time, because other jobs on a shared machine stretch wall time (not CPU time)
by a different amount for each variant; on CUDA from wall time. ``--device cuda``: bf16 and fp32 on the GPU, tokens/s per GPU and peak CUDA
memory.

Usage:
    python benchmarks/train_step.py                       # full size (360 M), batch 1, CPU
    python benchmarks/train_step.py --size small --batch 2
    python benchmarks/train_step.py --device cuda --batch 16 --steps 5
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import threading
import time

VARIANTS = {
    "fp32": {"mixed_precision": "no", "checkpointing": False},
    "bf16": {"mixed_precision": "bf16", "checkpointing": False},
    "fp32-ckpt": {"mixed_precision": "no", "checkpointing": True},
}
SIZES = {
    "small": {"d_model": 256, "encoder_layers": 2, "decoder_layers": 4, "encoder_attention_heads": 4,
              "decoder_attention_heads": 4, "encoder_ffn_dim": 1024, "decoder_ffn_dim": 1024},
    "full": {},
}  # fmt: skip


def _rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


class RSSPeak:
    """Highest RSS while the block runs, sampled every 2 ms by a thread (ru_maxrss only knows the lifetime)."""

    def __enter__(self):
        self.start = self.peak = _rss_mib()
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while self._running:
            self.peak = max(self.peak, _rss_mib())
            time.sleep(0.002)

    def __exit__(self, *exc) -> None:
        self._running = False
        self._thread.join()
        self.peak = max(self.peak, _rss_mib())


def make_batch(config, batch_size: int):
    """A collated training batch of the synthetic task's 5 s clips (the real data path)."""
    import datasets

    from visage_hf.data.collator import FeatureDataset, VisageCollator
    from visage_hf.data.schema import feature_schema
    from visage_hf.data.synthetic_task import synthetic_examples

    rows = list(synthetic_examples(config, batch_size, seconds=5.0, rotation_yaws=(-90,)))
    features = feature_schema(direction="indices", rotation_yaws=(-90,))
    dataset = FeatureDataset(datasets.Dataset.from_list(rows, features=features), config)
    collator = VisageCollator(config, train=True, rotation="original")
    return collator([dataset[i] for i in range(batch_size)])


def measure(variant: str, size: str, batch_size: int, steps: int, device: str, queue) -> None:
    import torch
    from accelerate import Accelerator

    from visage_hf.models.configuration_visage import VisageConfig
    from visage_hf.models.modeling_visage import VisageForFOA
    from visage_hf.training.train import (
        VisageTrainingArguments,
        build_optimizer_and_scheduler,
        enable_activation_checkpointing,
        train_step,
    )

    settings = VARIANTS[variant]
    torch.manual_seed(0)
    config = VisageConfig(**SIZES[size])
    model = VisageForFOA(config).train()
    if settings["checkpointing"]:
        enable_activation_checkpointing(model)
    args = VisageTrainingArguments(output_dir="unused", learning_rate=1e-4, lr_scheduler_type="constant")
    optimizer, scheduler = build_optimizer_and_scheduler(model, args, total_steps=steps + 1)
    accelerator = Accelerator(mixed_precision=settings["mixed_precision"], cpu=device == "cpu")
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    batch = {name: tensor.to(accelerator.device) for name, tensor in make_batch(config, batch_size).items()}
    tokens = int((batch["labels"] >= 0).sum())
    rss_before = _rss_mib()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()

    def step() -> tuple[float, float]:
        if device == "cuda":
            torch.cuda.synchronize()
        start, start_cpu = time.perf_counter(), time.process_time()
        loss, _, _ = train_step(accelerator, model, optimizer, scheduler, batch, args.max_grad_norm)
        float(loss)  # wait for the step
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start, time.process_time() - start_cpu

    step()  # warm-up: allocator, AdamW state creation, kernels
    times, transient = [], 0.0
    for _ in range(steps):
        with RSSPeak() as memory:
            times.append(step())
        transient = max(transient, memory.peak - memory.start)
    seconds, cpu_seconds = min(times)  # the least disturbed step: the development machine is shared
    # On a shared CPU, other jobs stretch wall time but not the process's own CPU time: compare on that.
    cost = seconds if device == "cuda" else cpu_seconds
    result = {
        "variant": variant,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "cost": cost,
        "samples_per_s": batch_size / seconds,
        "tokens_per_s": tokens / seconds,
        "peak_rss_mib": _peak_rss_mib(),
        "adam_state_mib": _rss_mib() - rss_before,
        "step_transient_mib": transient,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    if device == "cuda":
        result["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    queue.put(result)


def run_variant(variant: str, size: str, batch_size: int, steps: int, device: str) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=measure, args=(variant, size, batch_size, steps, device, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--batch", type=int, default=None, help="samples per step (default 1 CPU, 16 CUDA)")
    parser.add_argument(
        "--steps", type=int, default=2, help="timed steps after a warm-up (the fastest counts)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=None)
    options = parser.parse_args()
    batch_size = options.batch or (16 if options.device == "cuda" else 1)
    variants = options.variants or (["fp32", "bf16"] if options.device == "cuda" else list(VARIANTS))
    if "fp32" not in variants:
        variants = ["fp32", *variants]
    print(f"size {options.size}, batch {batch_size}, {options.steps} timed step(s), device {options.device}")
    results = {
        variant: run_variant(variant, options.size, batch_size, options.steps, options.device)
        for variant in variants
    }
    reference = results["fp32"]
    print(f"parameters: {reference['parameters'] / 1e6:.1f} M")
    header = (
        f"{'variant':<10} {'s/step':>8} {'CPU s':>8} {'samples/s':>10} {'tokens/s':>10} {'speed':>6} "
        f"{'peak RSS':>10} {'transient':>10}"
    )
    if options.device == "cuda":
        header += f" {'peak CUDA':>10}"
    print(header)
    for variant, result in results.items():
        line = (
            f"{variant:<10} {result['seconds']:>8.2f} {result['cpu_seconds']:>8.2f} {result['samples_per_s']:>10.3f} "
            f"{result['tokens_per_s']:>10.0f} {reference['cost'] / result['cost']:>5.2f}x {result['peak_rss_mib']:>7.0f} MiB "
            f"{result['step_transient_mib']:>6.0f} MiB"
        )
        if options.device == "cuda":
            line += f" {result['peak_cuda_mib']:>6.0f} MiB"
        print(line)
    for variant, result in results.items():
        if variant != "fp32":
            ratio = result["step_transient_mib"] / max(reference["step_transient_mib"], 1.0)
            speed = reference["cost"] / result["cost"]
            print(
                f"{variant}: {speed:.2f}x the fp32 speed, {ratio:.2f}x its step-transient memory (activations + grads)"
            )
    print(
        f"first-step growth (AdamW moments, 8 bytes/parameter = {8 * reference['parameters'] / 2**20:.0f} MiB): "
        f"{reference['adam_state_mib']:.0f} MiB"
    )
    if options.device == "cuda":
        print(f"bf16 code tokens/s per GPU: {results.get('bf16', reference)['tokens_per_s']:.0f}")


if __name__ == "__main__":
    from machine import describe_machine  # benchmarks/machine.py: the CPU every number here is measured on

    print(describe_machine())
    main()
