"""What machine a benchmark ran on: CPU model, instruction sets, cores, load. Every script in benchmarks/ prints it
first, so no number is read without its CPU (speeds on an AVX2-only CPU without native bf16 say nothing about a
CPU with AVX-512/AMX, and a shared machine is slower than an idle one)."""

from __future__ import annotations

import os
import platform
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
    """One line: ``machine: <CPU model>; ISA <flags>; torch kernels <capability>; <n> CPU(s); load <1-min avg>``."""
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
    parts.append(f"{os.cpu_count()} CPU(s)")
    if hasattr(os, "getloadavg"):
        load = os.getloadavg()[0]
        parts.append(f"load {load:.1f}" + (" (shared/busy: timings are pessimistic)" if load > 0.5 else ""))
    return "; ".join(parts)


if __name__ == "__main__":
    print(describe_machine())
