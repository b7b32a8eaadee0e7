"""What the numba kernels share: whether they can run here (`available`), and their scalar pieces -- weight and
cache elements widened to float32, float32 rounded to bfloat16.

numpy has no bfloat16, so bfloat16 tensors reach the kernels as their uint16 bits (`row_kernels.kernel_array`):
`as_float32` widens them (the high half of a float32) as it widens int8 weights and passes float32 through, and
`to_bfloat16` rounds a float32 to the nearest bfloat16 (ties to even, as torch rounds finite values).

Importable without numba (`numba` is then None and only the stubs exist).
"""

from __future__ import annotations

import os

import numpy as np

try:  # optional, as for every kernel
    import numba
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic, overload
except ImportError:  # pragma: no cover - exercised where numba is not installed
    numba = None

FAST = {"reassoc", "contract"}
"""The kernels' fast-math flags: reassociation lets sums run in vector lanes; no other liberty (inf/nan stay IEEE)."""


def available() -> bool:
    """Whether the numba kernels can run here (numba importable, not disabled by ``VISAGE_HF_NO_NUMBA=1``)."""
    return numba is not None and os.environ.get("VISAGE_HF_NO_NUMBA", "") in ("", "0")


def as_float32(value):  # numba only: a weight or cache element as float32 (see the overload below)
    raise NotImplementedError


if numba is not None:

    @intrinsic
    def bits_to_float32(typingctx, bits):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.FloatType())

        return types.float32(types.uint32), codegen

    @intrinsic
    def float32_to_bits(typingctx, value):
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir.IntType(32))

        return types.uint32(types.float32), codegen

    @overload(as_float32, inline="always")
    def _as_float32_overload(value):
        if value == types.uint16:  # bfloat16 bits: the high half of a float32
            return lambda value: bits_to_float32(np.uint32(value) << np.uint32(16))
        if value in (types.int8, types.float32):
            return lambda value: np.float32(value)
        return None

    @numba.njit(inline="always")
    def to_bfloat16(value):  # pragma: no cover - compiled
        # fp32 -> the nearest bfloat16 (ties to even), as torch rounds finite values; returned as fp32.
        bits = float32_to_bits(np.float32(value))
        bits = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) & np.uint32(0xFFFF0000)
        return bits_to_float32(bits)


__all__ = ["FAST", "as_float32", "available", "bits_to_float32", "float32_to_bits", "to_bfloat16"]
