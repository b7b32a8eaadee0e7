"""Winograd minimal filtering ``F(m, r)`` for the DAC decoder's wide dilated convolutions, on channels-last activations.

A convolution of kernel ``r`` computes each output ``y[t] = Σ_k W[k]·x[t + k·d]`` (``W[k]``: ``C_out x C_in``,
``d``: dilation, ``x`` zero-padded) with ``r`` channel-mixing products per sample. Winograd's algorithm computes
a tile of ``m`` outputs spaced ``d`` apart from its ``n = m + r - 1`` inputs with ``n`` products instead of
``m·r``::

    V_p = Σ_j Bᵀ[p, j]·x[j]    (input transform, per channel)
    M_p = U_p·V_p              (n matrix products, U_p = Σ_k G[p, k]·W[k] precomputed once per module)
    y[i] = Σ_p Aᵀ[i, p]·M_p    (output transform)

so the channel-mixing FLOPs drop from ``2·r·C²`` to ``2·(n/m)·C²`` per sample (kernel 7: ``F(2, 7)`` 8, ``F(4, 7)``
5, ``F(6, 7)`` 4 instead of 14 ``C²``). The matrices come from the Toom-Cook construction
(:func:`winograd_matrices`): ``G`` evaluates the kernel polynomial at ``n - 1`` finite points and ∞, ``Bᵀ`` is the
transposed interpolation (inverse Vandermonde) matrix, ``Aᵀ`` the transposed evaluation of the output tile's
polynomial. Built in exact rational arithmetic, applied in float32; the points (:data:`POINT_SEQUENCE`) are small and symmetric
(0, ±1, ±2, ±1/2, ±3/4, ...) because the transforms' float32 rounding grows with the points' spread (measured
on random kernels in float32 against float64: relative RMS error ``F(2, 7)`` 1.5e-6, ``F(4, 7)`` 4.6e-6,
``F(6, 7)`` 1.1e-5, where a direct float32 convolution is ~1e-7).

Dilation: a dilated convolution is ``d`` undilated ones over the interleaved phases ``t ≡ ρ (mod d)``. Channels
last, the ``d`` consecutive samples ``(b·m + j)·d + ρ``, ``ρ = 0..d-1``, of every tile input are one contiguous run
of ``d·C`` floats, so the tiles of all phases are rows of one ``(tiles·d, C)`` matrix per transform point: one
batched product (``torch.bmm``) per window. The transforms are numba kernels that read each input run once and
write each output row once (zero padding handled at the edges, no padded copy); the work runs over windows of
:data:`WINDOW_BYTES` of transformed input. Tiles of 12 points (``F(6, 7)``, the decoder's) inside the signal sum
their 12 terms spelled out in registers (`_twelve_term_row`), in the general loops' order, so bit for bit alike:
the DAC decoder's transforms 1.6 -> 1.0 s and its whole decode 10.4-10.6 -> 9.5-9.8 s for a 5-s FOA clip (2-core
Zen 4 EPYC, old and new code interleaved).

The inputs of neighbouring outputs share a tile, so an input sample moves the float rounding of every output of
its tiles: outside a convolution's reach outputs may change by rounding (a direct convolution leaves them
bit-identical), within it the result is the convolution's up to float32 rounding.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

try:
    import numba
except ImportError:  # pragma: no cover - exercised by monkeypatching NUMBA_AVAILABLE in the tests
    numba = None

NUMBA_AVAILABLE = numba is not None

__all__ = [
    "NUMBA_AVAILABLE",
    "POINT_SEQUENCE",
    "interpolation_points",
    "winograd_conv",
    "winograd_matrices",
    "winograd_weight",
]

# Finite interpolation points, in the order they are taken: F(m, r) uses the first m + r - 2 (the last point is
# ∞). Small and symmetric, the float32 rounding of the transforms grows with their spread: F(4, 7) takes ±3/4
# before ±3/2 (relative RMS error 4.6e-6 against 5.7e-6 with ±3/2, 9e-6 with ±3).
POINT_SEQUENCE = (
    0,
    1,
    -1,
    2,
    -2,
    Fraction(1, 2),
    Fraction(-1, 2),
    Fraction(3, 4),
    Fraction(-3, 4),
    Fraction(3, 2),
    Fraction(-3, 2),
)


def interpolation_points(m: int, r: int) -> tuple:
    """The ``m + r - 2`` finite points of ``F(m, r)`` (``m + r <= 13``)."""
    if m < 1 or r < 1 or m + r - 2 > len(POINT_SEQUENCE):
        raise ValueError(f"F({m}, {r}): tiles need m, r >= 1 and m + r <= {len(POINT_SEQUENCE) + 2}")
    return POINT_SEQUENCE[: m + r - 2]


# Bytes of transformed input per window (one input transform, one bmm, one output transform). 24 MB keeps each
# buffer under glibc's largest mmap threshold (32 MB), so it is recycled instead of page-faulted afresh, and the
# windows few: each runs three parallel regions, and on a shared 2-core machine every region waits for a
# descheduled thread (measured at load 2.5 on the 96/192-channel layers: 2 MB windows 2-6x slower than 32 MB ones;
# on a quiet machine 1-16 MB measured alike).
WINDOW_BYTES = 24 << 20


def _poly_from_roots(roots) -> list[Fraction]:
    """Coefficients (constant first) of ``Π (x - a)`` over ``roots``, exactly."""
    coefficients = [Fraction(1)]
    for root in roots:
        shifted = [Fraction(0), *coefficients]  # x·p(x)
        coefficients = [high - root * low for high, low in zip(shifted, [*coefficients, Fraction(0)])]
    return coefficients


def winograd_matrices(m: int, r: int, points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(Aᵀ (m, n), G (n, r), Bᵀ (n, n))`` float64 for ``F(m, r)``, ``n = m + r - 1``, from ``n - 1`` finite points and ∞.

    Then ``y = Aᵀ·((G·g) ⊙ (Bᵀ·x))`` is the correlation ``y[i] = Σ_k g[k]·x[i + k]`` of an ``n``-sample input.
    Toom-Cook, transposed: the linear convolution ``s = h * g`` (``h``: ``m`` taps) is ``s = C·((E_r·g) ⊙ (E_m·h))``
    with ``E_k`` evaluating a ``k``-coefficient polynomial at the points (∞: its leading coefficient) and ``C``
    interpolating the degree ``n - 1`` product: Lagrange over the finite points plus ``s_∞·Π(x - a)``. The
    correlation is that map's transpose, so ``Aᵀ = E_mᵀ``, ``G = E_r``, ``Bᵀ = Cᵀ``. Exact rational arithmetic,
    rounded to float64 once.
    """
    points = [Fraction(point) for point in points]
    n = m + r - 1
    if len(points) != n - 1 or len(set(points)) != n - 1:
        raise ValueError(f"F({m}, {r}) needs {n - 1} distinct finite points, got {len(points)}")

    def evaluation(columns: int) -> list[list[Fraction]]:
        rows = [[point**k for k in range(columns)] for point in points]
        return [*rows, [Fraction(int(k == columns - 1)) for k in range(columns)]]

    interpolation_rows = []  # rows of Bᵀ: coefficients of each Lagrange basis polynomial, then of Π(x - a)
    for index, point in enumerate(points):
        others = points[:index] + points[index + 1 :]
        denominator = np.prod([point - other for other in others])
        interpolation_rows.append([c / denominator for c in _poly_from_roots(others)] + [Fraction(0)])
    interpolation_rows.append(_poly_from_roots(points))
    to_float = lambda rows: np.array([[float(value) for value in row] for row in rows])  # noqa: E731
    return to_float(evaluation(m)).T.copy(), to_float(evaluation(r)), to_float(interpolation_rows)


def winograd_weight(weight: torch.Tensor, m: int) -> torch.Tensor:
    """``U (n, C_in, C_out)``: ``U[p] = (Σ_k G[p, k]·W[:, :, k])ᵀ`` for a ``(C_out, C_in, r)`` kernel, summed in
    float64 and rounded once to the kernel's dtype."""
    r = weight.shape[-1]
    _, g, _ = winograd_matrices(m, r, interpolation_points(m, r))
    u = torch.einsum("pk,oik->pio", torch.from_numpy(g), weight.detach().double().cpu())
    return u.to(weight.dtype).contiguous().to(weight.device)


def _twelve_term_row(c, rows, initial, out):  # pragma: no cover - compiled by numba
    """``out[e] = initial[e] + Σ_j c[j]·rows[j][e]`` over a tuple of 12 rows, summed in ``j`` order.

    Spelled out term by term so that the loop over ``e`` is the only loop, and LLVM vectorises it with every
    term in registers: no partial sum stored and reloaded per term, as the general loops' local row does
    (measured 1.3-2x slower per transform on a Zen 4 EPYC). A tuple of 1-D rows, not a 2-D view: rows taken
    across tiles have run-time strides, which the loop would not vectorise over.
    """
    r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11 = rows
    c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11 = (c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11])  # fmt: skip
    for e in range(out.shape[0]):
        out[e] = (
            initial[e] + c0 * r0[e] + c1 * r1[e] + c2 * r2[e] + c3 * r3[e] + c4 * r4[e] + c5 * r5[e]
            + c6 * r6[e] + c7 * r7[e] + c8 * r8[e] + c9 * r9[e] + c10 * r10[e] + c11 * r11[e]
        )  # fmt: skip


if NUMBA_AVAILABLE:
    _twelve_term_row = numba.njit(fastmath={"contract"}, cache=True, nogil=True, inline="always")(
        _twelve_term_row
    )


def _input_transform(x, bt, m, dilation, padding, first_tile, v, zeros, unrolled):  # pragma: no cover - numba
    """``v[p, b, e] = Σ_j Bᵀ[p, j]·x[((first_tile + b)·m + j)·d·C - padding·C + e]`` (zero outside ``x``).

    ``x``: one item's ``(T·C,)`` channels-last samples; ``v``: ``(n, tiles, d·C)``, row ``(b, e)`` holding the
    tile's ``d`` phases side by side; ``zeros``: ``(d·C,)`` zeros. Tiles of 12 points inside ``x`` take
    `_twelve_term_row` where ``unrolled``; the others sum in a local row, skipping zero coefficients (the same
    sums in the same order: the results are equal bit for bit).
    """
    n, tiles, run = v.shape
    size = x.shape[0]
    channels = run // dilation
    for b in numba.prange(tiles):
        start = ((first_tile + b) * m * dilation - padding) * channels
        if unrolled and n == 12 and start >= 0 and start + n * run <= size:
            tile = x[start : start + n * run].reshape((n, run))
            rows = (tile[0], tile[1], tile[2], tile[3], tile[4], tile[5], tile[6], tile[7], tile[8], tile[9], tile[10], tile[11])  # fmt: skip
            for p in range(n):
                _twelve_term_row(bt[p], rows, zeros, v[p, b])
            continue
        total = np.empty(run, v.dtype)
        for p in range(n):
            total[:] = 0.0
            for j in range(n):
                coefficient = bt[p, j]
                if coefficient == 0.0:
                    continue
                offset = start + j * run
                if offset >= 0 and offset + run <= size:
                    source = x[offset : offset + run]
                    for e in range(run):
                        total[e] += coefficient * source[e]
                else:  # the signal's edges: zero padding
                    for e in range(max(0, -offset), min(run, size - offset)):
                        total[e] += coefficient * x[offset + e]
            v[p, b, :] = total


def _output_transform(mv, at, bias_run, first_tile, y, unrolled):  # pragma: no cover - compiled by numba
    """``y[((first_tile + b)·m + i)·d·C + e] = bias_run[e] + Σ_p Aᵀ[i, p]·mv[p, b, e]`` (inside ``y`` only).

    ``bias_run``: the bias repeated for the ``d`` phases of a row. Whole tiles of 12 points take
    `_twelve_term_row` where ``unrolled`` (the same sums in the same order as the loop below).
    """
    n, tiles, run = mv.shape
    m = at.shape[0]
    size = y.shape[0]
    for b in numba.prange(tiles):
        first = (first_tile + b) * m * run
        if unrolled and n == 12 and first + m * run <= size:
            rows = (mv[0, b], mv[1, b], mv[2, b], mv[3, b], mv[4, b], mv[5, b], mv[6, b], mv[7, b], mv[8, b], mv[9, b], mv[10, b], mv[11, b])  # fmt: skip
            for i in range(m):
                _twelve_term_row(at[i], rows, bias_run, y[first + i * run : first + (i + 1) * run])
        else:
            total = np.empty(run, y.dtype)
            for i in range(m):
                offset = first + i * run
                high = min(run, size - offset)
                if high <= 0:
                    continue
                total[:] = bias_run
                for p in range(n):
                    coefficient = at[i, p]
                    if coefficient == 0.0:
                        continue
                    row = mv[p, b]
                    for e in range(run):
                        total[e] += coefficient * row[e]
                y[offset : offset + high] = total[:high]


_kernels = None


def _compiled():
    global _kernels
    if _kernels is None:
        jit = numba.njit(parallel=True, fastmath={"contract"}, cache=True, nogil=True)
        _kernels = (jit(_input_transform), jit(_output_transform))
    return _kernels


_MATRICES: dict = {}


def _transforms(m: int, r: int, dtype: torch.dtype) -> tuple[np.ndarray, np.ndarray]:
    """``(Aᵀ, Bᵀ)`` as numpy arrays of ``dtype``, built once."""
    key = (m, r, dtype)
    if key not in _MATRICES:
        at, _, bt = winograd_matrices(m, r, interpolation_points(m, r))
        np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
        _MATRICES[key] = (at.astype(np_dtype), bt.astype(np_dtype))
    return _MATRICES[key]


def winograd_conv(
    hidden: torch.Tensor,
    u: torch.Tensor,
    bias: torch.Tensor | None,
    m: int,
    dilation: int = 1,
    padding: int = 0,
) -> torch.Tensor:
    """A stride-1 ``Conv1d`` by ``F(m, r)`` on ``(batch, C_in, 1, T)`` channels-last CPU activations.

    ``u``: :func:`winograd_weight` of the ``(C_out, C_in, r)`` kernel; ``bias``: ``(C_out,)`` or None. Returns
    ``(batch, C_out, 1, T + 2·padding - d·(r - 1))`` channels-last, as ``conv1d(x, W, bias, 1, padding, d)``.
    float32 (the decoder) or float64 (to check the tiling exactly); ``hidden`` and ``u`` of one dtype.
    """
    n, channels, out_channels = u.shape
    r = n - m + 1
    batch, _, _, length = hidden.shape
    out_length = length + 2 * padding - dilation * (r - 1)
    if hidden.shape[1] != channels or out_length < 1 or hidden.dtype != u.dtype:
        raise ValueError(
            f"winograd_conv: {hidden.dtype} input {tuple(hidden.shape)} does not fit a {r}-tap {channels}-channel "
            f"{u.dtype} kernel"
        )
    at, bt = _transforms(m, r, u.dtype)
    forward, backward = _compiled()
    dtype = u.dtype
    bias_run = (
        (torch.zeros(out_channels) if bias is None else bias.detach()).to(dtype).repeat(dilation).numpy()
    )
    zeros = np.zeros(dilation * channels, dtype=bias_run.dtype)
    out = torch.empty(batch, out_channels, 1, out_length, dtype=dtype, memory_format=torch.channels_last)
    tiles = -(-out_length // (m * dilation))
    per_window = max(1, WINDOW_BYTES // (u.element_size() * n * dilation * channels))
    rows = min(per_window, tiles) * dilation
    v_buffer = torch.empty(n * rows * channels, dtype=dtype)
    mv_buffer = torch.empty(n * rows * out_channels, dtype=dtype)
    for item in range(batch):
        x = hidden[item].permute(1, 2, 0).reshape(-1).numpy()  # (T·C,) time-major; a view for channels-last
        y = out[item].permute(1, 2, 0).view(-1).numpy()
        for first in range(0, tiles, per_window):
            count = min(per_window, tiles - first)
            v = v_buffer[: n * count * dilation * channels].view(n, count * dilation, channels)
            mv = mv_buffer[: n * count * dilation * out_channels].view(n, count * dilation, out_channels)
            forward(x, bt, m, dilation, padding, first, v.view(n, count, -1).numpy(), zeros, True)
            torch.bmm(v, u, out=mv)
            backward(mv.view(n, count, -1).numpy(), at, bias_run, first, y, True)
    return out
