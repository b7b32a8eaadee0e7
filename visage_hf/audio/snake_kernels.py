"""A one-pass Snake activation for the DAC decoder, compiled with numba: ``x + sin(αx)² / (α + 1e-9)``.

torch computes Snake as several elementwise kernels, each streaming the whole activation through memory (up to
85 MB per mono 5-s signal at 44.1 kHz). This kernel reads each sample once and writes it once. numba has no
vectorised ``sin`` here (no SVML), so ``sin²`` is evaluated from its period: ``sin²(y) = sin²(y - kπ)`` with
``k = round(y/π)``, ``π`` split in three float32 parts (Cody-Waite: ``k·π_A`` and ``k·π_B`` are exact for
``|k| < 2¹³``, so the reduced ``r`` is good to float32 rounding for ``|αx|`` up to ~2·10⁵, far beyond what a DAC's
activations reach), then an odd polynomial for ``sin`` on ``[-π/2, π/2]`` (Taylor terms to ``r¹¹``: error below
6e-8 there). All of it is float32 arithmetic that LLVM vectorises over the channels, 8 lanes per AVX2 register
(a float64 version measured 2.2x slower). The result differs from torch's ``sin`` by float32 rounding only, so
it is used in the decoder (audio within float rounding), never in the encoder, whose codes must stay
bit-identical.

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

__all__ = ["NUMBA_AVAILABLE", "snake_channels_last", "snake_rows"]

# Taylor coefficients of sin(r) = r·(1 + r²·(S3 + r²·(S5 + ...))) on [-π/2, π/2], and π in three parts.
_S3, _S5, _S7, _S9, _S11 = (np.float32((-1.0) ** n / math.factorial(2 * n + 1)) for n in range(1, 6))
_PI_A, _PI_B, _PI_C = (
    np.float32(3.140625),
    np.float32(9.67502593994140625e-4),
    np.float32(1.509957990978376e-7),
)
_INV_PI, _HALF, _ONE = np.float32(1 / math.pi), np.float32(0.5), np.float32(1.0)


def _snake_rows(x, alpha, scale, out):  # pragma: no cover - compiled by numba; the tests run it compiled
    """``out[t, c] = x[t, c] + scale[c]·sin²(alpha[c]·x[t, c])`` for ``(rows, channels)`` float32 arrays."""
    rows, channels = x.shape
    block = 64
    for first in numba.prange((rows + block - 1) // block):
        for row in range(first * block, min(first * block + block, rows)):
            for c in range(channels):
                value = x[row, c]
                y = alpha[c] * value  # float32, as torch computes αx
                k = np.floor(y * _INV_PI + _HALF)
                r = ((y - k * _PI_A) - k * _PI_B) - k * _PI_C
                r2 = r * r
                sine = r * (_ONE + r2 * (_S3 + r2 * (_S5 + r2 * (_S7 + r2 * (_S9 + r2 * _S11)))))
                out[row, c] = value + scale[c] * (sine * sine)


_kernel = None


def _compiled():
    global _kernel
    if _kernel is None:
        _kernel = numba.njit(parallel=True, fastmath={"contract"}, cache=True, nogil=True)(_snake_rows)
    return _kernel


def snake_rows(x: np.ndarray, alpha: np.ndarray, scale: np.ndarray, out: np.ndarray) -> None:
    """``out[t, c] = x[t, c] + scale[c]·sin²(alpha[c]·x[t, c])``: ``(rows, channels)`` float32 arrays (C order),
    ``(channels,)`` ``alpha`` and ``scale``. ``out`` may be ``x``."""
    _compiled()(x, alpha, scale, out)


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
    # Each item's (time, channels) rows are contiguous, even in a time slice of a batch.
    for item in range(hidden.shape[0]):
        rows_in = hidden[item].permute(1, 2, 0).reshape(-1, channels).numpy()
        rows_out = out[item].permute(1, 2, 0).view(-1, channels).numpy()
        snake_rows(rows_in, alpha32.numpy(), scale, rows_out)
    return out
