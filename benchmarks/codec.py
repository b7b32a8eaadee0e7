"""Full-size 44.1 kHz DAC on one FOA clip: FOACodec (channels folded into the DAC batch) vs per-channel calls.

Random weights with the real ``descript/dac_44khz`` architecture (76.6 M parameters; the speed does not depend on
the weight values, and no download is needed). Each variant runs in its own fresh process so that its peak
memory is its own:

* ``reference``: the naive way: four unbatched ``DacModel.encode`` / ``decode`` calls, one per channel;
* ``codec``: ``FOACodec.encode`` / ``decode`` with the 4 channels folded into one DAC call (``batch_size=4``,
  the default on an accelerator);
* ``codec-b1``: ``FOACodec`` with ``batch_size=1`` (the default on a CPU: lowest memory).

Prints seconds for encode and decode, compute seconds per second of audio, peak memory above the loaded model
(CPU: peak resident set size; CUDA: peak allocated), and the ratio of each variant to the reference measured in
the same run, and checks that all variants give identical codes.

Usage: python benchmarks/codec.py [--seconds 5] [--device cpu|cuda] [--variants reference codec codec-b1]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import time

VARIANTS = ("reference", "codec", "codec-b1")
SAMPLE_RATE = 44100


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_variant(variant: str, seconds: float, device: str, queue) -> None:
    """Child process: build the model, time one encode + decode, report through ``queue``."""
    import torch
    from transformers import DacConfig, DacModel

    from visage_hf.audio.codec import FOACodec

    torch.manual_seed(0)
    model = DacModel(DacConfig(sampling_rate=SAMPLE_RATE)).eval().to(device)
    generator = torch.Generator().manual_seed(1)
    audio = 0.1 * torch.randn(4, int(seconds * SAMPLE_RATE), generator=generator)
    hop = 512
    frames = -(-audio.shape[-1] // hop)

    def synchronize():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    if variant == "reference":

        @torch.inference_mode()
        def encode():
            padded = torch.nn.functional.pad(audio, (0, frames * hop - audio.shape[-1])).to(device)
            return torch.stack([model.encode(padded[c][None, None]).audio_codes[0] for c in range(4)])

        @torch.inference_mode()
        def decode(codes):
            return torch.stack([model.decode(audio_codes=codes[c][None]).audio_values[0] for c in range(4)])

    else:
        codec = FOACodec(model, batch_size=1 if variant == "codec-b1" else 4)

        def encode():
            return codec.encode(audio, SAMPLE_RATE)

        def decode(codes):
            return codec.decode(codes)

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated() / 2**20
    else:
        baseline = _peak_rss_mib()
    start = time.perf_counter()
    codes = encode()
    synchronize()
    encoded = time.perf_counter()
    decoded_audio = decode(codes)
    synchronize()
    done = time.perf_counter()
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20 - baseline
    else:
        peak = _peak_rss_mib() - baseline
    queue.put(
        {
            "variant": variant,
            "encode_s": encoded - start,
            "decode_s": done - encoded,
            "peak_mib": peak,
            # numpy, not tensors: torch shares tensors between processes through handles that die with the child
            "codes": codes.cpu().numpy(),
            "audio": decoded_audio.float().cpu().numpy(),
            "threads": torch.get_num_threads(),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = parser.parse_args()
    if "reference" not in args.variants:
        parser.error("the reference variant is needed for the ratios")

    context = multiprocessing.get_context("spawn")
    results = {}
    for variant in args.variants:
        queue = context.Queue()
        process = context.Process(target=run_variant, args=(variant, args.seconds, args.device, queue))
        process.start()
        results[variant] = queue.get()
        process.join()

    reference = results["reference"]
    print(
        f"DAC 44.1 kHz, random weights, {args.seconds:g} s x 4 channels, device {args.device}, "
        f"{reference['threads']} torch threads, load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{'variant':<10} {'encode s':>9} {'decode s':>9} {'total s':>8} {'s/s audio':>10} {'peak MiB':>9} {'time ratio':>11}"
    )
    for variant, result in results.items():
        total = result["encode_s"] + result["decode_s"]
        ratio = total / (reference["encode_s"] + reference["decode_s"])
        print(
            f"{variant:<10} {result['encode_s']:>9.2f} {result['decode_s']:>9.2f} {total:>8.2f} "
            f"{total / args.seconds:>10.2f} {result['peak_mib']:>9.0f} {ratio:>11.2f}"
        )
    for variant, result in results.items():
        same_codes = bool((result["codes"] == reference["codes"]).all())
        difference = float(abs(result["audio"] - reference["audio"]).max())
        print(
            f"{variant}: codes {tuple(result['codes'].shape)} identical to reference: {same_codes}; max |audio diff| {difference:.1e}"
        )


if __name__ == "__main__":
    from machine import describe_machine  # benchmarks/machine.py: the CPU every number here is measured on

    print(describe_machine())
    main()
