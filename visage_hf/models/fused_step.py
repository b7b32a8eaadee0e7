"""A generation step's decoder layers in one compiled call (CPU, numba).

Why: at batch 1 a step of the full-size decoder is 12 layers of small operations -- six products, two one-query
attentions and three residual LayerNorms each, plus the views, casts and cache bookkeeping between them: about a
thousand torch calls whose fixed costs add up to several milliseconds a step beside the time to read the weights.
`FusedDecoderStep` runs all of it in `row_kernels.decoder_layers_step`, on the same product and attention kernels
the layer-by-layer path uses, so its result is that path's up to the LayerNorms' rounding (a bfloat16 model is
rounded where its eager step rounds).

It applies inside `VisageDecoder.packed_weights` where every step product is a `RowProduct` (numba installed, at most
`MAX_KERNEL_ROWS` rows), fc1's activation is GELU, and the cache is `generate`'s: preallocated self-attention buffers
(`PreallocatedKVLayer`) and the cross-attention states already projected. Any other step (the first, which fills the
cross-attention cache; a buffer about to grow; another cache) runs the layers one by one.

With bfloat16 or int8 step weights the self-attention cache is kept in bfloat16 (`cache_dtype`): late in a 5-s clip
the cache is read as much as the int8 weights are (at full size ~160 MB a step in fp32), and half the bytes read is
half the time. A bfloat16 model's keys and values are bfloat16 numbers already (its eager step rounds them), so
nothing changes there; an int8 model's are rounded once more (documented with the int8 option's error).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from transformers.cache_utils import Cache, EncoderDecoderCache

from .kv_cache import PreallocatedKVLayer
from .row_kernels import PRODUCTS_PER_LAYER, decoder_layers_step, kernel_array, typed_arrays

# The layers' step products in `row_kernels.decoder_layers_step`'s order: (sub-module, packed_linears key).
_PRODUCT_SLOTS = (
    ("self_attn", "qkv"),
    ("self_attn", "out_proj"),
    ("encoder_attn", "q_proj"),
    ("encoder_attn", "out_proj"),
    (None, "fc1"),
    (None, "fc2"),
)
_NORMS = ("self_attn_layer_norm", "encoder_attn_layer_norm", "final_layer_norm")
assert len(_PRODUCT_SLOTS) == PRODUCTS_PER_LAYER


class FusedDecoderStep:
    """``(rows, 1, d)`` states after the embeddings -> the last layer's ``(rows, 1, d)``, for one generation step.

    Build it with `build` after the decoder's step products are set (`VisageDecoder.packed_weights`); it reads
    their arrays in place. Calling it returns None where the step does not fit (see the module docstring).
    """

    def __init__(self, layers: nn.ModuleList, products: list):
        arrays = [product.arrays for product in products]
        self._products = tuple(typed_arrays([array[field] for array in arrays]) for field in range(3))
        self._norms = np.ascontiguousarray(
            torch.stack(
                [
                    torch.stack([getattr(layer, name).weight, getattr(layer, name).bias])
                    for layer in layers
                    for name in _NORMS
                ]
            )
            .detach()
            .float()
            .reshape(len(layers), len(_NORMS), 2, -1)
            .numpy()
        )
        self.cache_dtype = torch.float32 if arrays[0][0].dtype == np.float32 else torch.bfloat16
        """The self-attention cache's dtype this step reads and writes (see the module docstring)."""
        self._eps = float(layers[0].final_layer_norm.eps)
        self._heads = layers[0].self_attn.num_heads
        self._num_layers = len(layers)
        self._cache_entry: tuple = (None, None)

    @classmethod
    def build(cls, layers: nn.ModuleList) -> FusedDecoderStep | None:
        """The fused step over ``layers`` (`VisageDecoderLayer`s with their step products set), or None where one
        of them is not a `RowProduct`, fc1 has no GELU, or the weights or LayerNorms differ in kind."""
        products = []
        for layer in layers:
            for owner, name in _PRODUCT_SLOTS:
                packed = (layer if owner is None else getattr(layer, owner)).packed_linears.get(name)
                products.append(getattr(packed, "rows", None))
        if any(product is None for product in products):
            return None
        gelu = [product.arrays[3] for product in products]
        if gelu != [slot == "fc1" for _ in layers for _, slot in _PRODUCT_SLOTS]:
            return None
        if len({product.arrays[0].dtype for product in products}) != 1:
            return None
        norms = [getattr(layer, name) for layer in layers for name in _NORMS]
        if (
            any(norm.bias is None or norm.weight is None for norm in norms)
            or len({n.eps for n in norms}) != 1
        ):
            return None
        return cls(layers, products)

    def __call__(
        self, hidden_states: torch.Tensor, cache: Cache | None, past_length: int
    ) -> torch.Tensor | None:
        """Run every layer for the position ``past_length``; None (nothing done) where this step does not fit."""
        rows = hidden_states.shape[0]
        if hidden_states.shape[1] != 1 or hidden_states.dtype not in (torch.float32, torch.bfloat16):
            return None
        caches = self._caches(cache, past_length, rows)
        if caches is None:
            return None
        states = hidden_states.reshape(rows, -1).to(torch.float32, copy=True).numpy()
        bf16 = hidden_states.dtype == torch.bfloat16
        decoder_layers_step(
            states, past_length, self._products, self._norms, self._eps, caches, self._heads, bf16
        )
        for layer in cache.self_attention_cache.layers:
            layer.filled_to(past_length + 1)
        return torch.from_numpy(states).view(rows, 1, -1).to(hidden_states.dtype)

    def _caches(self, cache: Cache | None, past_length: int, rows: int) -> tuple | None:
        """The kernel's (keys, values, cross keys, cross values) lists for this step, or None."""
        if not isinstance(cache, EncoderDecoderCache):
            return None
        layers = cache.self_attention_cache.layers
        if len(layers) != self._num_layers or not all(
            isinstance(layer, PreallocatedKVLayer) for layer in layers
        ):
            return None
        buffers = [layer.step_buffers(past_length) for layer in layers]
        if any(pair is None for pair in buffers) or not all(
            cache.is_updated.get(index, False) for index in range(self._num_layers)
        ):
            return None
        cross = [(layer.keys, layer.values) for layer in cache.cross_attention_cache.layers]
        if any(tensor.dtype != self.cache_dtype for pair in buffers for tensor in pair) or any(
            tensor.dtype != torch.float32 for pair in cross for tensor in pair
        ):
            return None
        tensors = [tensor for pair in buffers + cross for tensor in pair]
        if any(tensor.shape[0] != rows for tensor in tensors):
            return None
        key = tuple((tensor.data_ptr(), tuple(tensor.shape)) for tensor in tensors)
        # One (key, arrays) pair, replaced whole: generations running in other threads through this step (they
        # share the decoder) each get the arrays of their own cache.
        known_key, arrays = self._cache_entry
        if known_key != key:
            # Cross-attention states never change during a generation: made C-ordered once, kept with the key.
            arrays = (
                typed_arrays([kernel_array(pair[0]) for pair in buffers]),
                typed_arrays([kernel_array(pair[1]) for pair in buffers]),
                typed_arrays([pair[0].contiguous().numpy() for pair in cross]),
                typed_arrays([pair[1].contiguous().numpy() for pair in cross]),
            )
            self._cache_entry = (key, arrays)
        return arrays


__all__ = ["FusedDecoderStep"]
