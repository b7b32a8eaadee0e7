"""What machine a benchmark ran on: CPU model, instruction sets, cores, load. Every script in benchmarks/ prints it
first, so no number is read without its CPU (speeds on an AVX2-only CPU without native bf16 say nothing about a
CPU with AVX-512/AMX, and a shared machine is slower than an idle one).

It also measures the machine in the same run as the benchmark, so that a speed can be given as a multiple of what
this machine allows: `read_bandwidth` (bytes/s a torch reduction streams from memory) and `gemm_flops` (fp32
floating-point operations per second of a square matrix product) -- the two floors of a decoding step (memory-bound
at batch 1) and of batched or training work (compute-bound).
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

# Instruction-set flags (Linux /proc/cpuinfo names) that change the speed of our kernels.
_ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "asimd",
    "sve",
)


def _cpuinfo() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), []
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "Hardware") and value.strip():
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            present = set(value.split())
            flags = [flag for flag in _ISA_FLAGS if flag in present]
    return model, flags


def describe_machine() -> str:
    """One line: ``machine: <CPU model>; ISA <flags>; torch kernels <capability>; numba kernels <CPU target>; <n>
    CPU(s); load <1-min avg>``."""
    model, flags = _cpuinfo()
    parts = [f"machine: {model}", f"ISA {' '.join(flags) if flags else 'unknown'}"]
    try:
        import torch

        capability = torch.backends.cpu.get_cpu_capability()
        parts.append(f"torch kernels {capability}, {torch.get_num_threads()} thread(s)")
        if hasattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported"):
            parts.append(f"native bf16 {'yes' if torch.ops.mkldnn._is_mkldnn_bf16_supported() else 'no'}")
    except ImportError:
        pass
    try:  # the generation kernels' target: the host's CPU unless NUMBA_CPU_NAME holds them to another
        import numba
        from llvmlite import binding

        parts.append(f"numba kernels {numba.config.CPU_NAME or binding.get_host_cpu_name()}")
    except ImportError:
        pass
    parts.append(f"{os.cpu_count()} CPU(s)")
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
        parts.append(f"load {load:.1f}" + (" (shared/busy: timings are pessimistic)" if load > 0.5 else ""))
    return "; ".join(parts)


def _fastest(function, repeats: int) -> float:
    """Seconds of the fastest of ``repeats`` calls, after one warm-up (the least disturbed by other processes)."""
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def read_bandwidth(megabytes: int = 512, repeats: int = 5, dtype: str = "float32") -> float:
    """Bytes per second read by a sum over a ``megabytes`` buffer (far larger than any CPU cache, so every
    byte comes from memory), fastest of ``repeats``: the rate a decoding step can stream its weights at best."""
    import torch

    element = torch.empty((), dtype=getattr(torch, dtype)).element_size()
    buffer = torch.ones(megabytes * 2**20 // element, dtype=getattr(torch, dtype))
    seconds = _fastest(buffer.sum, repeats)
    return buffer.numel() * element / seconds


def gemm_flops(size: int = 2048, repeats: int = 3) -> float:
    """Floating-point operations per second of a ``size``² fp32 matrix product (2·size³ per product), fastest
    of ``repeats``: the compute ceiling of the torch threads this process uses."""
    import torch

    generator = torch.Generator().manual_seed(0)
    left, right = (torch.randn(size, size, generator=generator) for _ in range(2))
    out = torch.empty(size, size)
    seconds = _fastest(lambda: torch.mm(left, right, out=out), repeats)
    return 2 * size**3 / seconds


def describe_capacity(bandwidth: float, flops: float) -> str:
    """One line with the measured floors, e.g. ``measured: memory read 14.1 GB/s; fp32 GEMM 145 GFLOP/s``."""
    return f"measured: memory read {bandwidth / 1e9:.1f} GB/s; fp32 GEMM {flops / 1e9:.0f} GFLOP/s"


if __name__ == "__main__":
    print(describe_machine())
    print(describe_capacity(read_bandwidth(), gemm_flops()))
