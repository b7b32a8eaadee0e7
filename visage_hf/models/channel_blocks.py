"""bfloat16 and int8 step weights in blocks of output channels, and their few-row products (numba).

A generation step multiplies 1-4 rows by each weight once (`row_kernels`). With bfloat16 or int8 weights that loop
is bound by the core, not by memory: every weight is widened to float32 as it is read. In the row-major ``(out, in)``
layout each output channel is a dot product summed in vector lanes, which ends in a sum across the lanes and loads
the input rows again for every channel. Here a weight is copied once into blocks of `BLOCK_WIDTH` output channels,
``(blocks, in, BLOCK_WIDTH)``, and a block's channel sums are the vector lanes: each input element is broadcast into
all of them. No channel ends in a sum across lanes, and each input element is loaded once per block.

Measured on a 2-core AMD EPYC (Zen 4), one process, layouts interleaved, products of 1-4 M weights (the full-size
step's shapes), G weights/s, row-major -> blocks: int8, 2 rows 16.7-20.6 -> 23.8-28.9, 4 rows 7.3-10.9 ->
11-22; bf16, 2 rows 9.6-12.5 -> 12.3-15.7; with AVX2 code (``NUMBA_CPU_NAME=haswell``) int8 2 rows 13.9-19.4 ->
27.4-31.3. The 4-row int8 rate changes from process to process with the same code (11-20 G weights/s for 3072 x
1024), the 2-row one does not; the reason is not known yet (its sums, 4 x 128 floats, live in memory). Widths 64 and 128 measured alike for bf16, 128 up to 1.25x faster for int8; a width known when the loop
is compiled, not read from the array, is what lets it vectorise (a run-time width measured no faster than row-major).
float32 gained nothing measurable (its loop runs at the read bandwidth), so it keeps its layout and no copy.

The narrowest step layers (1024 outputs) have 8 blocks, so more than 8 threads leave cores idle on them. Sums run
in fp32 in input order (results agree with torch's to fp32 rounding, ~1e-6 relative).
"""

from __future__ import annotations

import numpy as np

from .kernel_scalars import FAST, as_float32, numba

if numba is not None:
    from numba import prange

BLOCK_WIDTH = 128
"""Output channels per block; a compile-time constant of the loops below."""


def kernel_weight(weight: np.ndarray) -> np.ndarray:
    """An ``(out, in)`` `kernel_array` weight in the layout the products read: float32 as it is; bfloat16 bits and
    int8 as a copy in blocks of `BLOCK_WIDTH` output channels, ``(ceil(out / BLOCK_WIDTH), in, BLOCK_WIDTH)``, zero
    past the last channel (see the module docstring)."""
    if weight.dtype == np.float32:
        return weight
    return _channel_blocks(np.ascontiguousarray(weight))


if numba is not None:

    @numba.njit(parallel=True, cache=True)
    def _channel_blocks(weight):  # pragma: no cover - compiled
        channels, inputs = weight.shape
        blocks = -(-channels // BLOCK_WIDTH)
        blocked = np.zeros((blocks, inputs, BLOCK_WIDTH), dtype=weight.dtype)
        for block in prange(blocks):
            start = block * BLOCK_WIDTH
            for lane in range(min(BLOCK_WIDTH, channels - start)):
                for k in range(inputs):
                    blocked[block, k, lane] = weight[start + lane, k]
        return blocked

    @numba.njit(parallel=True, fastmath=FAST, cache=True)
    def blocked_two_rows(weight, scale, bias, states, out):  # pragma: no cover - compiled
        # A block's BLOCK_WIDTH channel sums are the vector lanes (they stay in L1); each input element is broadcast
        # into all of them.
        rows, channels = states.shape[0], out.shape[1]
        for block in prange(weight.shape[0]):
            sums = np.zeros((2, BLOCK_WIDTH), dtype=np.float32)
            for k in range(weight.shape[1]):
                first, second = states[0, k], states[rows - 1, k]
                for lane in range(BLOCK_WIDTH):
                    value = as_float32(weight[block, k, lane])
                    sums[0, lane] += value * first
                    sums[1, lane] += value * second
            start = block * BLOCK_WIDTH
            for lane in range(min(BLOCK_WIDTH, channels - start)):
                channel = start + lane
                out[0, channel] = sums[0, lane] * scale[channel] + bias[channel]
                out[rows - 1, channel] = sums[1, lane] * scale[channel] + bias[channel]

    @numba.njit(parallel=True, fastmath=FAST, cache=True)
    def blocked_four_rows(weight, scale, bias, states, out):  # pragma: no cover - compiled
        # 3 rows: the third row is summed twice and written twice, alike.
        last, channels = states.shape[0] - 1, out.shape[1]
        for block in prange(weight.shape[0]):
            sums = np.zeros((4, BLOCK_WIDTH), dtype=np.float32)
            for k in range(weight.shape[1]):
                first, second, third, fourth = states[0, k], states[1, k], states[2, k], states[last, k]
                for lane in range(BLOCK_WIDTH):
                    value = as_float32(weight[block, k, lane])
                    sums[0, lane] += value * first
                    sums[1, lane] += value * second
                    sums[2, lane] += value * third
                    sums[3, lane] += value * fourth
            start = block * BLOCK_WIDTH
            for lane in range(min(BLOCK_WIDTH, channels - start)):
                channel = start + lane
                for row in range(3):
                    out[row, channel] = sums[row, lane] * scale[channel] + bias[channel]
                out[last, channel] = sums[3, lane] * scale[channel] + bias[channel]


__all__ = ["BLOCK_WIDTH", "blocked_four_rows", "blocked_two_rows", "kernel_weight"]
