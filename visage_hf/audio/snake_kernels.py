"""A one-pass Snake activation for the DAC decoder, compiled with numba: ``x + sin(αx)² / (α + 1e-9)``.

torch computes Snake as several elementwise kernels, each streaming the whole activation through memory (up to
85 MB per mono 5-s signal at 44.1 kHz). This kernel reads each sample once and writes it once. numba has no
vectorised ``sin`` here (no SVML), so ``sin²`` is evaluated from its period: ``sin²(y) = sin²(y - kπ)`` with
``k = round(y/π)``, the reduction in float64 (exact enough for any ``|y|`` a float32 activation reaches) and an
odd polynomial for ``sin`` on ``[-π/2, π/2]`` (Taylor terms to ``r¹³``: error below 1e-9 there), which LLVM
vectorises over the channels. The result differs from torch's ``sin`` by float32 rounding only, so it is used in
the decoder (audio within float rounding), never in the encoder, whose codes must stay bit-identical.

``NUMBA_AVAILABLE`` is False when numba cannot be imported; callers then keep torch's ops.
"""

from __future__ import annotations

import math

import numpy as np
import torch

try:
    import numba
except ImportError:  # pragma: no cover - exercised by monkeypatching NUMBA_AVAILABLE in the tests
    numba = None

NUMBA_AVAILABLE = numba is not None

__all__ = ["NUMBA_AVAILABLE", "snake_channels_last"]

# Taylor coefficients of sin(r) = r·(1 + r²·(S3 + r²·(S5 + ...))) on [-π/2, π/2].
_S = tuple((-1.0) ** n / math.factorial(2 * n + 1) for n in range(1, 7))


def _snake_rows(x, alpha, scale, out):  # pragma: no cover - compiled by numba; the tests run it compiled
    """``out[t, c] = x[t, c] + scale[c]·sin²(alpha[c]·x[t, c])`` for ``(rows, channels)`` float32 arrays."""
    rows, channels = x.shape
    block = 64
    inv_pi = 1.0 / math.pi
    for first in numba.prange((rows + block - 1) // block):
        for row in range(first * block, min(first * block + block, rows)):
            for c in range(channels):
                value = x[row, c]
                y = np.float64(np.float32(alpha[c] * value))  # αx rounded to float32, as torch computes it
                r = y - math.floor(y * inv_pi + 0.5) * math.pi
                r2 = r * r
                poly = _S[3] + r2 * (_S[4] + r2 * _S[5])
                s = r * (1.0 + r2 * (_S[0] + r2 * (_S[1] + r2 * (_S[2] + r2 * poly))))
                out[row, c] = value + scale[c] * np.float32(s * s)


_kernel = None


def _compiled():
    global _kernel
    if _kernel is None:
        _kernel = numba.njit(parallel=True, fastmath={"contract"}, cache=True, nogil=True)(_snake_rows)
    return _kernel


def snake_channels_last(
    hidden: torch.Tensor, alpha: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Snake on ``(batch, channels, 1, time)`` float32 channels-last activations, in one pass.

    ``alpha``: the module's ``(1, channels, 1)`` parameter. ``out`` may be ``hidden`` itself (in place) or
    another channels-last tensor of its shape; ``None`` allocates one.
    """
    channels = hidden.shape[1]
    if out is None:
        out = torch.empty_like(hidden, memory_format=torch.channels_last)
    alpha32 = alpha.detach().reshape(-1).float()
    scale = (alpha32 + 1e-9).reciprocal().numpy()  # the same float32 reciprocal torch's Snake multiplies by
    kernel = _compiled()
    # Each item's (time, channels) rows are contiguous, even in a time slice of a batch.
    for item in range(hidden.shape[0]):
        rows_in = hidden[item].permute(1, 2, 0).reshape(-1, channels).numpy()
        rows_out = out[item].permute(1, 2, 0).view(-1, channels).numpy()
        kernel(rows_in, alpha32.numpy(), scale, rows_out)
    return out
