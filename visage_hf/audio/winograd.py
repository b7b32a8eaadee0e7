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
:data:`WINDOW_BYTES` of transformed input.

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


def _input_transform(x, bt, m, dilation, padding, first_tile, v):  # pragma: no cover - compiled by numba
    """``v[p, b, e] = Σ_j Bᵀ[p, j]·x[((first_tile + b)·m + j)·d·C - padding·C + e]`` (zero outside ``x``).

    ``x``: one item's ``(T·C,)`` channels-last samples; ``v``: ``(n, tiles, d·C)``, row ``(b, e)`` holding the
    tile's ``d`` phases side by side. Sums run in a local row (a separate array, so LLVM vectorises the loops).
    """
    n, tiles, run = v.shape
    size = x.shape[0]
    channels = run // dilation
    for b in numba.prange(tiles):
        start = ((first_tile + b) * m * dilation - padding) * channels
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


def _output_transform(mv, at, bias_run, first_tile, y):  # pragma: no cover - compiled by numba
    """``y[((first_tile + b)·m + i)·d·C + e] = bias_run[e] + Σ_p Aᵀ[i, p]·mv[p, b, e]`` (inside ``y`` only).

    ``bias_run``: the bias repeated for the ``d`` phases of a row.
    """
    n, tiles, run = mv.shape
    m = at.shape[0]
    size = y.shape[0]
    for b in numba.prange(tiles):
        total = np.empty(run, y.dtype)
        for i in range(m):
            offset = ((first_tile + b) * m + i) * run
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
            forward(x, bt, m, dilation, padding, first, v.view(n, count, -1).numpy())
            torch.bmm(v, u, out=mv)
            backward(mv.view(n, count, -1).numpy(), at, bias_run, first, y)
    return out
