"""Full-size 44.1 kHz DAC on one FOA clip: the fast path against today's FOACodec path, interleaved in one process.

Random weights with the real ``descript/dac_44khz`` architecture (76.6 M parameters; the speed does not depend on
the weight values, and no download is needed). Variants, run in turn (A B C A B C ...) so that a shared machine's
load hits them alike:

* ``reference``: the naive way: four unbatched ``DacModel.encode`` / ``decode`` calls, one per channel;
* ``codec``: ``FOACodec(fast=False)``: ``DacModel.encode`` / ``decode`` one channel per call (the CPU default
  before the fast path; the baseline of the ratios);
* ``fast``: ``FOACodec`` (``fast=True``, the default; visage_hf/audio/fast_dac.py): in-place Snake in the encoder;
  in the decoder channels-last convolutions, one-pass numba Snake (visage_hf/audio/snake_kernels.py), transposed
  convolutions as phase convolutions and the high-rate blocks in time windows; one channel per call;
* ``fast-b4``: the fast path with the 4 channels folded into one call;
* ``fast-direct``: the fast path with the residual units' kernel-7 convolutions computed directly (oneDNN)
  instead of by Winograd ``F(6, 7)`` (visage_hf/audio/winograd.py): what Winograd adds, in the same run.

Prints, per variant, the best encode and decode seconds over ``--repeats`` rounds, their ratio to ``codec``
(> 1 = faster), whether the codes equal the reference's (``codec``'s when ``reference`` is not run), and the
largest audio difference relative to the reference's peak (every variant decodes the same codes). It also counts the convolutions' FLOPs from the config, measures this machine's fp32 GEMM rate
in the same run, and prints the compute floor (FLOPs / GEMM rate) next to each time.

Usage: python benchmarks/codec.py [--seconds 5] [--repeats 2] [--device cpu|cuda] [--variants ...]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

VARIANTS = ("reference", "codec", "fast", "fast-b4", "fast-direct")
BASELINE = "codec"
SAMPLE_RATE = 44100


def conv_flops(model, frames: int) -> tuple[float, float]:
    """Multiply-add FLOPs (2 per MAC) of the encoder's and decoder's convolutions for one mono signal of ``frames``."""
    totals = {"encoder": 0.0, "decoder": 0.0}
    hooks = []
    for part in totals:
        for module in getattr(model, part).modules():
            if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):

                def count(module, inputs, output, _part=part):
                    weight = module.weight
                    if isinstance(module, torch.nn.ConvTranspose1d):  # every input sample meets every tap
                        totals[_part] += 2 * weight.numel() * inputs[0].shape[-1]
                    else:
                        totals[_part] += 2 * weight.numel() * output.shape[-1]

                hooks.append(module.register_forward_hook(count))
    with torch.inference_mode():
        audio = torch.zeros(1, 1, frames * 512)
        model.decode(model.encode(audio).quantized_representation)
    for hook in hooks:
        hook.remove()
    return totals["encoder"], totals["decoder"]


def gemm_gflops(device: str, size: int = 2048, repeats: int = 5) -> float:
    """Best fp32 matrix-product rate of this machine now (GFLOP/s): the ceiling for convolutions."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def make_variants(model, audio: torch.Tensor, device: str) -> dict:
    """``{name: (encode(), decode(codes))}``."""
    from visage_hf.audio.codec import FOACodec

    hop = 512
    frames = -(-audio.shape[-1] // hop)

    @torch.inference_mode()
    def reference_encode():
        padded = torch.nn.functional.pad(audio, (0, frames * hop - audio.shape[-1])).to(device)
        return torch.stack([model.encode(padded[c][None, None]).audio_codes[0] for c in range(4)])

    @torch.inference_mode()
    def reference_decode(codes):
        return torch.stack([model.decode(audio_codes=codes[c][None]).audio_values[0] for c in range(4)])

    variants = {"reference": (reference_encode, reference_decode)}
    for name, options in (
        ("codec", {"fast": False, "batch_size": 1}),
        ("fast", {"fast": True, "batch_size": 1}),
        ("fast-b4", {"fast": True, "batch_size": 4}),
    ):
        codec = FOACodec(model, **options)
        variants[name] = (lambda codec=codec: codec.encode(audio, SAMPLE_RATE), codec.decode)
    variants["fast-direct"] = (variants["fast"][0], _without_winograd(variants["fast"][1]))
    return variants


def _without_winograd(decode):
    from visage_hf.audio import fast_dac

    def run(codes):
        tile, fast_dac.WINOGRAD_TILE = fast_dac.WINOGRAD_TILE, None
        try:
            return decode(codes)
        finally:
            fast_dac.WINOGRAD_TILE = tile

    return run


def timed(function, device: str, *args):
    _sync(device)
    start = time.perf_counter()
    result = function(*args)
    _sync(device)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the best time counts")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = parser.parse_args()
    names = list(dict.fromkeys([BASELINE, *args.variants]))
    reference = "reference" if "reference" in names else BASELINE  # codes and audio are compared to this one

    from transformers import DacConfig, DacModel

    torch.manual_seed(0)
    model = DacModel(DacConfig(sampling_rate=SAMPLE_RATE)).eval().to(args.device)
    audio = 0.1 * torch.randn(4, int(args.seconds * SAMPLE_RATE), generator=torch.Generator().manual_seed(1))
    frames = -(-audio.shape[-1] // 512)
    encoder_flops, decoder_flops = (4 * value for value in conv_flops(model.cpu(), frames))
    model.to(args.device)
    variants = make_variants(model, audio, args.device)
    for encode, decode in make_variants(
        model, audio[:, :4096], args.device
    ).values():  # warm-up: library setup
        decode(encode())

    times = {name: {"encode": float("inf"), "decode": float("inf")} for name in names}
    outputs = {}
    for _ in range(args.repeats):
        for name in names:
            encode, decode = variants[name]
            seconds, codes = timed(encode, args.device)
            times[name]["encode"] = min(times[name]["encode"], seconds)
            codes_for_decode = outputs.get(names[0], (codes,))[0]  # every variant decodes the same codes
            seconds, decoded = timed(decode, args.device, codes_for_decode)
            times[name]["decode"] = min(times[name]["decode"], seconds)
            outputs[name] = (codes.cpu(), decoded.float().cpu())
    gflops = gemm_gflops(args.device)

    print(
        f"DAC 44.1 kHz, random weights, {args.seconds:g} s x 4 channels, device {args.device}, "
        f"{torch.get_num_threads()} torch threads, best of {args.repeats} interleaved rounds, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    encode_floor, decode_floor = encoder_flops / gflops / 1e9, decoder_flops / gflops / 1e9
    print(
        f"conv FLOPs: encode {encoder_flops / 1e12:.2f} TFLOP, decode {decoder_flops / 1e12:.2f} TFLOP; fp32 GEMM "
        f"{gflops:.0f} GFLOP/s now -> floor encode {encode_floor:.1f} s, decode {decode_floor:.1f} s"
    )
    print(
        f"{'variant':<10} {'encode s':>9} {'x ' + BASELINE:>8} {'/floor':>7} {'decode s':>9} {'x ' + BASELINE:>8} "
        f"{'/floor':>7}  codes == {reference:<9}  max |audio diff| / peak"
    )
    ref_codes, ref_audio = outputs[reference]
    peak = float(ref_audio.abs().max())
    for name in names:
        encode_s, decode_s = times[name]["encode"], times[name]["decode"]
        codes, decoded = outputs[name]
        same = torch.equal(codes, ref_codes)
        difference = float((decoded - ref_audio).abs().max()) / peak
        print(
            f"{name:<10} {encode_s:>9.2f} {times[BASELINE]['encode'] / encode_s:>8.2f} {encode_s / encode_floor:>7.2f} "
            f"{decode_s:>9.2f} {times[BASELINE]['decode'] / decode_s:>8.2f} {decode_s / decode_floor:>7.2f}  "
            f"{same!s:<18} {difference:.1e}"
        )


if __name__ == "__main__":
    from machine import describe_machine  # benchmarks/machine.py: the CPU every number here is measured on

    print(describe_machine())
    main()
