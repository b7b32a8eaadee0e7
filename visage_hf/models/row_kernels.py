"""Few-row products at memory speed on CPU: the generation step's weights streamed once by numba kernels.

A generation step multiplies a few rows (guidance branches × batch: 1 to 4) by every step weight once, so its
time is the time to read the weights. torch's CPU kernels for so few rows read them at well under the memory
bandwidth. Measured on a 2-core AMD EPYC (AVX2, no AVX-512, no native bf16), full-size step weights (~352 MB
fp32), 2 rows: `F.linear` 7.9 GB/s, oneDNN's packed inner product 11.2 GB/s, OpenBLAS 14.1 GB/s, torch's
int8 weight-only kernel (``_weight_int8pack_mm``) 10.1 GB/s; the loop below 18.8 GB/s in fp32 and 18.2 GB/s in
int8, against 22 GB/s for torch's plain sum over the same bytes.

Two loops, by the weight's dtype. Both read each weight once for all the rows (rows ≤ `MAX_KERNEL_ROWS`, so their
sums stay in registers or L1), convert it to fp32 as it is read (fp32 as is, bf16 by a 16-bit shift, int8 by
conversion and, after the sum, the channel's scale), then add the bias, and optionally an exact (erf) GELU in a pass
of its own. Inputs are read as fp32 and sums run in fp32, in another order than torch's (results agree to fp32
rounding, ~1e-6 relative).

- **fp32**, read in place as ``(out, in)``: each output channel is one thread's dot products of its weight row with
  the input rows, summed in vector lanes; rows of 2048 inputs or more (fc2) four output channels at a time, so that
  each input element is loaded once for four weight rows. These run at about the read bandwidth.
- **bf16 and int8**, copied when the product is made into blocks of output channels whose sums are the vector lanes
  (`visage_hf.models.channel_blocks`): widening narrow weights makes their loops bound by the core rather than by
  memory, and the blocks spend fewer instructions and loads per weight (int8 1.2-2x, bf16 1.3x faster, measured
  there).

A step's attention (one query row per head over the KV cache, which halfway through a 5-s clip at full size is
~7 MB a layer) also runs here while torch is single-threaded (`single_query_attention`): heads in parallel.

numba is optional: without it (or with ``VISAGE_HF_NO_NUMBA=1``) `available` is False and callers keep torch's
kernels. The first product of each weight dtype compiles the loop (~1-2 s), cached on disk after that.

Threads: numba's OpenMP runtime is a second one beside torch's, and each keeps its idle threads spinning for a
while after a parallel region; a step that alternates torch's small ops with ~80 kernels would have each pool's
spinning threads take the cores from the other's. Generation therefore runs its steps inside `kernel_threads`:
torch single-threaded (a step's other ops are small), the kernels on the threads torch had. Outside such a block
the kernels use numba's default (every core).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from .categorical import categorical_draws
from .channel_blocks import kernel_weight
from .kernel_scalars import FAST, as_float32, available, float32_to_bits, numba, to_bfloat16
from .top_k import keep_top_k

if numba is not None:  # optional: torch's kernels are the fallback
    from numba import prange
    from numba.core import types
    from numba.extending import overload

    from .channel_blocks import blocked_four_rows, blocked_two_rows

MAX_KERNEL_ROWS = 4
"""Rows a product streams its weight for once; more rows go to torch's kernels (which do well with many)."""

WEIGHT_DTYPES = (torch.float32, torch.bfloat16, torch.int8)

PRODUCTS_PER_LAYER = 6
"""A decoder layer's step products, in the order `decoder_layers_step` reads them: self-attention q/k/v stacked,
its output; cross-attention query, its output; fc1 (with GELU), fc2."""


def rows_fit_kernels(rows: int | None) -> bool:
    """Whether steps of ``rows`` rows (guidance branches × batch; None: unknown) are few enough for the kernels."""
    return rows is not None and 0 < rows <= MAX_KERNEL_ROWS


def kernels_apply(weight: torch.Tensor) -> bool:
    """Whether `RowProduct` can hold ``weight``: a 2-D CPU tensor of one of `WEIGHT_DTYPES`, numba available."""
    return available() and weight.device.type == "cpu" and weight.ndim == 2 and weight.dtype in WEIGHT_DTYPES


class RowProduct:
    """``(..., in)`` -> ``(..., out)``: ``states @ (weight · scale[:, None]).T + bias``, then optionally GELU, for
    at most `MAX_KERNEL_ROWS` rows; the output has ``states``' dtype.

    Args:
        weight: ``(out, in)`` float32, bfloat16 or int8 (then with ``scale``), on CPU. float32 is read in place;
            bfloat16 and int8 are copied into channel blocks (`channel_blocks.kernel_weight`).
        bias: ``(out,)`` or None.
        scale: ``(out,)`` per-output-channel scale of an int8 weight, or None.
        activation: None or ``"gelu"`` (exact erf GELU, applied to the fp32 sum plus bias).
    """

    ACTIVATIONS = ("gelu",)

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None = None,
        scale: torch.Tensor | None = None,
        activation: str | None = None,
    ):
        if not kernels_apply(weight):
            raise ValueError(
                f"RowProduct needs numba and a 2-D CPU weight of {WEIGHT_DTYPES}, got {weight.dtype} "
                f"on {weight.device}"
            )
        if activation is not None and activation not in self.ACTIVATIONS:
            raise ValueError(f"activation must be one of {self.ACTIVATIONS} or None, got {activation!r}")
        if (scale is not None) != (weight.dtype == torch.int8):
            raise ValueError("an int8 weight needs its (out,) scales; a float weight takes none")
        self.out_features, self.in_features = weight.shape
        self._tensors = (weight.contiguous(), bias, scale)  # keep the memory the arrays below point into
        self._weight = kernel_weight(kernel_array(self._tensors[0]))
        self._scale = _float_vector(scale, self.out_features, 1.0)
        self._bias = _float_vector(bias, self.out_features, 0.0)
        self._gelu = activation == "gelu"

    @property
    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """``(weight, scale, bias, gelu)`` as the kernels read them (see `decoder_layers_step`)."""
        return self._weight, self._scale, self._bias, self._gelu

    def takes(self, states: torch.Tensor) -> bool:
        """Whether ``states`` ``(..., in)`` has few enough rows for this product (else use torch's)."""
        return rows_fit_kernels(states.numel() // self.in_features)

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        rows = states.numel() // self.in_features
        if not rows_fit_kernels(rows):
            raise ValueError(f"RowProduct multiplies 1 to {MAX_KERNEL_ROWS} rows, got {rows}")
        if states.dtype != torch.float32 or not states.is_contiguous():
            states_fp32 = states.float().contiguous()
        else:
            states_fp32 = states
        # numpy views on both sides: a few microseconds less per call than torch's reshape/view (~80 calls a step).
        inputs = states_fp32.numpy().reshape(rows, self.in_features)
        output = np.empty((rows, self.out_features), dtype=np.float32)
        _product(self._weight, self._scale, self._bias, inputs, output, self._gelu)
        output = torch.from_numpy(output.reshape(*states.shape[:-1], self.out_features))
        return output if states.dtype == torch.float32 else output.to(states.dtype)


def kernel_array(tensor: torch.Tensor) -> np.ndarray:
    """A CPU tensor as the array the kernels read (sharing its memory): numpy has no bfloat16, so its bits travel
    as uint16 and the kernels widen them."""
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(np.uint16)
    return tensor.numpy()


def _float_vector(values: torch.Tensor | None, length: int, fill: float) -> np.ndarray:
    if values is None:
        return np.full(length, fill, dtype=np.float32)
    return values.detach().float().contiguous().numpy()


_lock = threading.Lock()
_holders = 0  # blocks inside `kernel_threads`, over all Python threads
_threads = 1  # torch's thread count when the first of them entered


@contextmanager
def kernel_threads() -> Iterator[None]:
    """Within the block torch runs single-threaded and the kernels use the threads torch had (see the module
    docstring). Nested and concurrent blocks share one setting; the last to leave restores torch's."""
    global _holders, _threads
    with _lock:
        if _holders == 0:
            _threads = torch.get_num_threads()
            torch.set_num_threads(1)
        _holders += 1
        if numba is not None:  # numba's setting is per thread
            numba.set_num_threads(min(_threads, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                torch.set_num_threads(_threads)


@contextmanager
def torch_threads() -> Iterator[None]:
    """Inside `kernel_threads`: torch's threads back for a block of large products (a prefill); else nothing."""
    if _holders == 0:
        yield
        return
    torch.set_num_threads(_threads)
    try:
        yield
    finally:
        if _holders:
            torch.set_num_threads(1)


def attention_applies(query: torch.Tensor, key: torch.Tensor) -> bool:
    """Whether `single_query_attention` takes this attention: one query row, fp32 on CPU, inside `kernel_threads`
    (where torch's own attention would run on one thread)."""
    return (
        _holders > 0
        and query.shape[-2] == 1
        and query.dtype == key.dtype == torch.float32
        and query.device.type == "cpu"
        and available()
    )


def single_query_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``softmax(q·kᵀ/√d)·v`` for one query row per head: query ``(batch, heads, 1, d)``, key and value ``(batch,
    heads, keys, d)`` (views into a cache are read in place) -> ``(batch, heads, 1, d)``, no mask.

    A decoding step's attention reads the whole KV cache (at full size ~7 MB a layer halfway through a 5-s clip);
    heads run in parallel on the kernels' threads, each reading its keys and values once."""
    batch, heads, _, dim = query.shape
    output = np.empty((batch, heads, 1, dim), dtype=np.float32)
    keys = key.shape[2]
    query, key, value = (_whole_rows(tensor) for tensor in (query.contiguous(), key, value))
    _attention(query, key, value, keys, output, np.float32(dim**-0.5))
    return torch.from_numpy(output)


def _whole_rows(tensor: torch.Tensor) -> np.ndarray:
    """A ``(batch, heads, rows, d)`` view of the first rows of a contiguous buffer -> the whole buffer as a C-ordered
    array (the kernel reads only the first rows): numba vectorises the inner loops over C-ordered arrays only."""
    batch, heads, _, dim = tensor.shape
    stride = tensor.stride()
    capacity = stride[1] // dim if dim else 0
    if stride[3] == 1 and stride[2] == dim and stride[0] == heads * stride[1] and capacity >= tensor.shape[2]:
        return torch.as_strided(tensor, (batch, heads, capacity, dim), stride).numpy()
    return tensor.contiguous().numpy()


# ---------------------------------------------------------------------------------------------------- kernels
def _store(target, source):  # numba only: fp32 ``source`` into a cache row (see the overload below)
    raise NotImplementedError


def _multiply(weight, scale, bias, states, out):  # numba only: the product for the weight's layout (below)
    raise NotImplementedError


def _gelu(value: float) -> float:
    return 0.5 * value * (1.0 + math.erf(value * 0.7071067811865476))


if numba is not None:
    _LONG_ROW = 2048  # inputs from which two fp32 input rows (16 KB) crowd the weight stream out of L1

    _gelu_kernel = numba.njit(fastmath=FAST, cache=True)(_gelu)

    @numba.njit(cache=True)
    def _list_of(array):  # pragma: no cover - compiled
        items = numba.typed.List()
        items.append(array)
        return items

    @numba.njit(cache=True)
    def _append(items, array):  # pragma: no cover - compiled
        items.append(array)

    @numba.njit(parallel=True, fastmath=FAST, cache=True)
    def _apply_gelu(out):  # pragma: no cover - compiled
        # A pass of its own: an erf call in the products' channel loop, even one never taken, slows their
        # vectorised sums by 20-50 % (int8 and bf16 weights; measured on an AVX-512 EPYC).
        rows, channels = out.shape
        for channel in prange(channels):
            for row in range(rows):
                out[row, channel] = np.float32(_gelu_kernel(out[row, channel]))

    @numba.njit(parallel=True, fastmath=FAST, cache=True)
    def _two_rows(weight, scale, bias, states, out):  # pragma: no cover - compiled
        rows = states.shape[0]
        for channel in prange(weight.shape[0]):
            first = np.float32(0.0)
            second = np.float32(0.0)
            for k in range(weight.shape[1]):
                value = as_float32(weight[channel, k])
                first += value * states[0, k]
                second += value * states[rows - 1, k]
            out[0, channel] = first * scale[channel] + bias[channel]
            out[rows - 1, channel] = second * scale[channel] + bias[channel]

    @numba.njit(parallel=True, fastmath=FAST, cache=True)
    def _two_rows_four_channels(weight, scale, bias, states, out):  # pragma: no cover - compiled
        # `_two_rows` four output channels at a time, each input element read once for all four: for long fp32 rows
        # (fc2's 4096 inputs) the two input rows no longer fit in L1 beside the weight stream, and re-reading them
        # from L2 for every channel bounds the loop (fp32 fc2 measured 5.1 -> 7.3 G weights/s; slower for 1024
        # inputs). bf16 and int8 weights take `channel_blocks` instead.
        rows, channels = states.shape[0], weight.shape[0]
        for block in prange(channels // 4):
            c = 4 * block
            a0, a1, a2, a3 = np.float32(0.0), np.float32(0.0), np.float32(0.0), np.float32(0.0)
            b0, b1, b2, b3 = np.float32(0.0), np.float32(0.0), np.float32(0.0), np.float32(0.0)
            for k in range(weight.shape[1]):
                first, second = states[0, k], states[rows - 1, k]
                value = as_float32(weight[c, k])
                a0 += value * first
                b0 += value * second
                value = as_float32(weight[c + 1, k])
                a1 += value * first
                b1 += value * second
                value = as_float32(weight[c + 2, k])
                a2 += value * first
                b2 += value * second
                value = as_float32(weight[c + 3, k])
                a3 += value * first
                b3 += value * second
            for offset, first, second in ((0, a0, b0), (1, a1, b1), (2, a2, b2), (3, a3, b3)):
                out[0, c + offset] = first * scale[c + offset] + bias[c + offset]
                out[rows - 1, c + offset] = second * scale[c + offset] + bias[c + offset]
        tail = 4 * (channels // 4)  # the last 0-3 channels
        if tail < channels:
            _two_rows(weight[tail:], scale[tail:], bias[tail:], states, out[:, tail:])

    @numba.njit(parallel=True, fastmath=FAST, cache=True)
    def _four_rows(weight, scale, bias, states, out):  # pragma: no cover - compiled
        last = states.shape[0] - 1  # 3 rows: the third row is summed twice and written twice, alike
        for channel in prange(weight.shape[0]):
            first = np.float32(0.0)
            second = np.float32(0.0)
            third = np.float32(0.0)
            fourth = np.float32(0.0)
            for k in range(weight.shape[1]):
                value = as_float32(weight[channel, k])
                first += value * states[0, k]
                second += value * states[1, k]
                third += value * states[2, k]
                fourth += value * states[last, k]
            out[0, channel] = first * scale[channel] + bias[channel]
            out[1, channel] = second * scale[channel] + bias[channel]
            out[2, channel] = third * scale[channel] + bias[channel]
            out[last, channel] = fourth * scale[channel] + bias[channel]

    @overload(_multiply)
    def _multiply_overload(weight, scale, bias, states, out):
        if weight.ndim == 3:  # `kernel_weight`'s channel blocks

            def blocked(weight, scale, bias, states, out):
                if states.shape[0] <= 2:
                    blocked_two_rows(weight, scale, bias, states, out)
                else:
                    blocked_four_rows(weight, scale, bias, states, out)

            return blocked

        def row_major(weight, scale, bias, states, out):
            if states.shape[0] <= 2 and weight.shape[1] >= _LONG_ROW:
                _two_rows_four_channels(weight, scale, bias, states, out)
            elif states.shape[0] <= 2:
                _two_rows(weight, scale, bias, states, out)
            else:
                _four_rows(weight, scale, bias, states, out)

        return row_major

    @numba.njit(parallel=True, fastmath=FAST, cache=True)
    def _attention(query, key, value, keys, out, scale):  # pragma: no cover - compiled
        batch, heads, _, dim = key.shape
        for task in prange(batch * heads):
            row, head = task // heads, task % heads
            scores = np.empty(keys, dtype=np.float32)
            largest = -np.inf
            for j in range(keys):
                total = np.float32(0.0)
                for d in range(dim):
                    total += query[row, head, 0, d] * as_float32(key[row, head, j, d])
                scores[j] = total * scale
                largest = max(largest, scores[j])
            norm = np.float32(0.0)
            for j in range(keys):
                scores[j] = np.exp(scores[j] - largest)
                norm += scores[j]
            mixed = np.zeros(dim, dtype=np.float32)
            for j in range(keys):
                weight = scores[j] / norm
                for d in range(dim):
                    mixed[d] += weight * as_float32(value[row, head, j, d])
            out[row, head, 0, :] = mixed

    @numba.njit(fastmath=FAST, cache=True)
    def _product(weight, scale, bias, states, out, gelu):  # pragma: no cover - compiled
        _multiply(weight, scale, bias, states, out)
        if gelu:
            _apply_gelu(out)

    @overload(_store, inline="always")
    def _store_overload(target, source):
        if target.dtype == types.float32:

            def store(target, source):
                target[:] = source

            return store
        if target.dtype == types.uint16:  # a bfloat16 cache: the nearest bfloat16's bits

            def store_bfloat16(target, source):
                for index in range(source.shape[0]):
                    target[index] = np.uint16(float32_to_bits(to_bfloat16(source[index])) >> np.uint32(16))

            return store_bfloat16
        return None

    @numba.njit(cache=True)
    def _round_bfloat16(values):  # pragma: no cover - compiled
        for row in range(values.shape[0]):
            for k in range(values.shape[1]):
                values[row, k] = to_bfloat16(values[row, k])

    @numba.njit(fastmath=FAST, cache=True)
    def _add_norm(hidden, update, weight, bias, eps, bf16):  # pragma: no cover - compiled
        # hidden <- LayerNorm(hidden + update), row by row (statistics in float64, biased variance).
        rows, dim = hidden.shape
        for row in range(rows):
            total = 0.0
            for k in range(dim):
                value = hidden[row, k] + update[row, k]
                hidden[row, k] = to_bfloat16(value) if bf16 else value
                total += hidden[row, k]
            mean = total / dim
            spread = 0.0
            for k in range(dim):
                spread += (hidden[row, k] - mean) ** 2
            inverse = 1.0 / math.sqrt(spread / dim + eps)
            for k in range(dim):
                value = np.float32((hidden[row, k] - mean) * inverse) * weight[k] + bias[k]
                hidden[row, k] = to_bfloat16(value) if bf16 else value

    @numba.njit(fastmath=FAST, cache=True)
    def _project(weights, scales, biases, index, states, out, gelu, bf16):  # pragma: no cover - compiled
        _product(weights[index], scales[index], biases[index], states, out, gelu)
        if bf16:
            _round_bfloat16(out)

    @numba.njit(fastmath=FAST, cache=True)
    def _decoder_layers(
        hidden,
        position,
        weights,
        scales,
        biases,
        norms,
        eps,
        keys,
        values,
        cross_keys,
        cross_values,
        heads,
        bf16,
    ):  # pragma: no cover - compiled
        rows, dim = hidden.shape
        head_dim = dim // heads
        scale = np.float32(head_dim**-0.5)
        query = np.empty((rows, heads, 1, head_dim), dtype=np.float32)
        attended = np.empty((rows, heads, 1, head_dim), dtype=np.float32)
        query_rows, attended_rows = query.reshape(rows, dim), attended.reshape(rows, dim)
        update = np.empty((rows, dim), dtype=np.float32)
        qkv = np.empty((rows, 3 * dim), dtype=np.float32)
        # fc1's outputs: one bias per channel (a blocked weight's first dimension counts blocks).
        inner = np.empty((rows, biases[4].shape[0]), dtype=np.float32)
        for layer in range(len(keys)):
            slot = PRODUCTS_PER_LAYER * layer
            # Self-attention: this position's key and value go into the cache, then one query over all.
            _project(weights, scales, biases, slot, hidden, qkv, False, bf16)
            query_rows[:] = qkv[:, :dim]
            for row in range(rows):
                for head in range(heads):
                    start = head * head_dim
                    _store(keys[layer][row, head, position], qkv[row, dim + start : dim + start + head_dim])
                    _store(
                        values[layer][row, head, position],
                        qkv[row, 2 * dim + start : 2 * dim + start + head_dim],
                    )
            _attention(query, keys[layer], values[layer], position + 1, attended, scale)
            if bf16:
                _round_bfloat16(attended_rows)
            _project(weights, scales, biases, slot + 1, attended_rows, update, False, bf16)
            _add_norm(hidden, update, norms[layer, 0, 0], norms[layer, 0, 1], eps, bf16)
            # Cross-attention over the encoder states' cached keys and values.
            _project(weights, scales, biases, slot + 2, hidden, query_rows, False, bf16)
            cross = cross_keys[layer]
            _attention(query, cross, cross_values[layer], cross.shape[2], attended, scale)
            if bf16:
                _round_bfloat16(attended_rows)
            _project(weights, scales, biases, slot + 3, attended_rows, update, False, bf16)
            _add_norm(hidden, update, norms[layer, 1, 0], norms[layer, 1, 1], eps, bf16)
            # Feed-forward: fc1 with its GELU, fc2.
            _project(weights, scales, biases, slot + 4, hidden, inner, True, bf16)
            _project(weights, scales, biases, slot + 5, inner, update, False, bf16)
            _add_norm(hidden, update, norms[layer, 2, 0], norms[layer, 2, 1], eps, bf16)


def typed_arrays(arrays: list[np.ndarray]):
    """``arrays`` (one dtype and rank, C-ordered, at least one) as the list type the compiled kernels take.

    Built by two small kernels of this module, which numba caches on disk: a `numba.typed.List` filled from
    Python compiles its own methods again in every process (~0.25 s per element type, ~1 s for a generation's
    lists), which a command-line run would pay at every start."""
    typed = _list_of(arrays[0])
    for array in arrays[1:]:
        _append(typed, array)
    return typed


def compile_kernels(weight_dtype: torch.dtype = torch.float32) -> None:
    """Compile (or load from numba's disk cache) every kernel a generation step with ``weight_dtype`` step weights
    runs, on tiny arrays: the first generation in a fresh environment otherwise pays this (~10-20 s per weight
    dtype on a 2-core AVX2 EPYC), e.g. inside a web request. Does nothing where the kernels are unavailable."""
    if not available():
        return
    weight_type = {torch.float32: np.float32, torch.bfloat16: np.uint16, torch.int8: np.int8}[weight_dtype]
    dim, heads, rows = 4, 2, 2
    shapes = [(3 * dim, dim), (dim, dim), (dim, dim), (dim, dim), (2 * dim, dim), (dim, 2 * dim)]
    weights = [kernel_weight(np.zeros(shape, dtype=weight_type)) for shape in shapes]
    vectors = [np.ones(shape[0], dtype=np.float32) for shape in shapes]
    products = (typed_arrays(weights), typed_arrays(vectors), typed_arrays(vectors))
    cache_shape = (rows, heads, 3, dim // heads)
    float_caches = [typed_arrays([np.zeros(cache_shape, np.float32)]) for _ in range(4)]
    norms = np.ones((1, 3, 2, dim), dtype=np.float32)
    for count in (rows, MAX_KERNEL_ROWS):  # the layer-by-layer path's products and attention too
        states = np.ones((count, dim), dtype=np.float32)
        _product(weights[1], vectors[1], vectors[1], states, states.copy(), False)
    query = np.ones((rows, heads, 1, dim // heads), dtype=np.float32)
    _attention(query, float_caches[0][0], float_caches[1][0], 1, query.copy(), np.float32(1.0))
    # The fused step keeps a bf16 or int8 model's self-attention cache in bfloat16 (`FusedDecoderStep.cache_dtype`).
    self_type = np.float32 if weight_dtype == torch.float32 else np.uint16
    caches = [typed_arrays([np.zeros(cache_shape, self_type)]) for _ in range(2)] + float_caches[2:]
    decoder_layers_step(
        np.ones((rows, dim), np.float32), 0, products, norms, 1e-5, tuple(caches), heads, False
    )
    keep_top_k(torch.zeros(1, 2), 1, float("-inf"))  # the sampler's top-k
    categorical_draws(torch.full((1, 2), 0.5), [1], [torch.Generator()])  # and its draws


def compile_step_kernels(model: torch.nn.Module) -> None:
    """`compile_kernels` for the dtype of a `VisageForFOA`'s decoder step weights, where they are on CPU and the
    kernels take them; nothing otherwise."""
    weight = model.model.decoder.layers[0].fc2.weight
    if kernels_apply(weight):
        compile_kernels(weight.dtype)


def decoder_layers_step(
    hidden: np.ndarray,
    position: int,
    products: tuple,
    norms: np.ndarray,
    eps: float,
    caches: tuple,
    heads: int,
    bf16: bool,
) -> None:
    """Every post-LN decoder layer for one new position, in one compiled call; ``hidden`` is updated in place.

    Args:
        hidden: ``(rows, d)`` float32, the layers' input (rows ≤ `MAX_KERNEL_ROWS`).
        position: the new position's index in the self-attention caches (the positions before it are filled).
        products: ``(weights, scales, biases)`` typed lists (`typed_arrays`) of `RowProduct.arrays`,
            `PRODUCTS_PER_LAYER` per layer, layer by layer.
        norms: ``(layers, 3, 2, d)`` float32: each layer's self-attention, cross-attention and final LayerNorm
            weight and bias.
        caches: ``(keys, values, cross_keys, cross_values)`` typed lists, a C-ordered ``(rows, heads, positions,
            d / heads)`` array per layer (`kernel_array`s: float32, or for ``keys`` and ``values`` bfloat16 bits
            too); this position's key and value are written into ``keys`` and ``values`` (rounded to bfloat16
            there where they hold it).
        bf16: round to bfloat16 where a bfloat16 model's eager step does (each product's and attention's output,
            each residual sum and LayerNorm), so that the result is the eager bfloat16 one.
    """
    _decoder_layers(hidden, position, *products, norms, eps, *caches, heads, bf16)


__all__ = [
    "MAX_KERNEL_ROWS",
    "PRODUCTS_PER_LAYER",
    "WEIGHT_DTYPES",
    "RowProduct",
    "attention_applies",
    "available",
    "compile_kernels",
    "compile_step_kernels",
    "decoder_layers_step",
    "kernel_array",
    "kernel_threads",
    "kernels_apply",
    "rows_fit_kernels",
    "single_query_attention",
    "torch_threads",
    "typed_arrays",
]
