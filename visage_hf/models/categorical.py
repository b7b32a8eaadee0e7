"""Categorical draws that are `torch.multinomial`'s, bit for bit, in one batched race per step.

torch draws one sample of a row ``p`` as ``argmax(p / q)`` with ``q ~ Exp(1)`` (an exponential race). On CPU it
fills ``q`` element by element: two 32-bit outputs of the generator's Mersenne Twister make a 64-bit integer
(``Generator.random64``), its low 53 bits a uniform ``u`` in [0, 1), and ``q = -log1p(-u)`` in float64, stored
as float32. The ``log1p`` sets the cost: a sampled step's 25 rows of 1,024 codes took 500 us (2-core AMD EPYC,
Zen 4), a tenth of a 78 M-parameter model's step.

After top-k most of a row's probabilities are 0, and ``0 / q`` is 0 whatever ``q`` is. On CPU the race here
takes the same 64-bit integers from the generator (``torch.Tensor.random_`` on int64 keeps the low 63 bits of
one ``random64`` per element: the generator ends where ``exponential_`` leaves it) and computes ``q`` only where
``p`` is not 0, in a compiled loop (numba): ``p / q`` in float32 and the first maximum, as torch's ``div`` and
``argmax``. Same rows, same machine, top-k 256: 500 -> ~200 us a step (``random_`` is most of it). Where ``u``
is 0 (one draw in 2**53) torch's ``0 / 0`` is NaN, which its ``argmax`` takes: so does the loop.

That torch still fills ``exponential_`` this way is checked once per process against ``torch.multinomial``
itself (`_race_matches_torch`); otherwise, and without numba, on GPUs and for other dtypes, ``q`` is torch's
own ``exponential_``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
import torch

from .kernel_scalars import available, numba

_UNIFORM_BITS = (1 << 53) - 1
"""The bits of ``random64`` that torch's float64 uniform keeps (its mantissa's width)."""

if numba is not None:
    from numba import prange

    @numba.njit(parallel=True, cache=True)
    def _race(probabilities, bits, codes):  # pragma: no cover - compiled
        # codes[row] = argmax(p / q) over the row (first maximum; first NaN), q from ``bits`` as torch makes it.
        for row in prange(probabilities.shape[0]):
            best = np.float32(-np.inf)
            best_column = 0
            for column in range(probabilities.shape[1]):
                p = probabilities[row, column]
                uniform_bits = bits[row, column] & _UNIFORM_BITS
                if p == 0 and uniform_bits != 0:
                    ratio = np.float32(0.0)  # 0 / q, q > 0: the exponential is not needed
                else:
                    exponential = np.float32(-math.log1p(-(uniform_bits * (1.0 / (1 << 53)))))
                    ratio = p / exponential
                if np.isnan(ratio):
                    best_column = column
                    break
                if ratio > best:
                    best = ratio
                    best_column = column
            codes[row] = best_column


def _race_applies(probabilities: torch.Tensor) -> bool:
    return (
        available()
        and probabilities.device.type == "cpu"
        and probabilities.dtype == torch.float32
        and probabilities.dim() == 2
    )


def _compiled_race(probabilities: torch.Tensor, generator: torch.Generator | None) -> torch.LongTensor:
    bits = torch.empty(probabilities.shape, dtype=torch.int64).random_(generator=generator)
    codes = np.empty(probabilities.shape[0], dtype=np.int64)
    _race(probabilities.contiguous().numpy(), bits.numpy(), codes)
    return torch.from_numpy(codes)


@functools.cache
def _race_matches_torch() -> bool:
    """Whether the compiled race draws `torch.multinomial`'s codes and leaves the generator where it does, on
    near-uniform rows (where a changed ``q`` changes the winner) with zeros among them (computed once)."""
    probabilities = torch.rand(64, 1024, generator=torch.Generator().manual_seed(0)) + 1.0
    probabilities[:, ::3] = 0.0
    probabilities /= probabilities.sum(dim=-1, keepdim=True)
    ours, theirs = (torch.Generator().manual_seed(1) for _ in range(2))
    expected = torch.multinomial(probabilities, 1, generator=theirs).flatten()
    return torch.equal(_compiled_race(probabilities, ours), expected) and torch.equal(
        ours.get_state(), theirs.get_state()
    )


def categorical_draws(
    probabilities: torch.Tensor, counts: Sequence[int], generators: Sequence[torch.Generator | None]
) -> torch.LongTensor:
    """One code per row of ``probabilities`` ``(rows, codebook)``, whose rows are consecutive blocks of ``counts``
    rows, block i drawn with ``generators[i]``: exactly ``torch.multinomial(block, 1, generator=generators[i])``
    for every block, in one race for all of them.

    Beyond the race (module docstring), torch's multinomial runs ~10 validity checks of ``p``: on a GPU each check
    is a kernel launch, ~190 us of host time per call (measured on an H200 host). The probabilities here come from
    a softmax, valid by construction.
    """
    if _race_applies(probabilities) and _race_matches_torch():
        blocks = probabilities.split(list(counts))
        codes = [
            _compiled_race(block, generator)
            for block, generator in zip(blocks, generators, strict=True)
            if len(block)
        ]
        return torch.cat(codes) if codes else torch.empty(0, dtype=torch.long)
    race = torch.empty_like(probabilities)
    for block, generator in zip(race.split(list(counts)), generators, strict=True):
        if len(block):
            block.exponential_(1, generator=generator)
    return probabilities.div(race).argmax(dim=-1)


__all__ = ["categorical_draws"]
