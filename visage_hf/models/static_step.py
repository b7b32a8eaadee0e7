"""A generation step's decoder -- code embeddings to the last layer -- in fixed shapes, replayed as CUDA graphs.

Why: on a GPU at batch 1 a decoder step is about 300 small kernels (36 code embeddings, then per layer the
projections, two attentions, three residual LayerNorms), each launched from Python; the launches, not the
weights (~0.35 GB in bfloat16 at full size, ~0.1 ms of an H200's bandwidth), set the step time. A CUDA graph
launches them all at once, but replays fixed shapes at fixed addresses (measured on an H200, full size, bf16, a
5-s clip: 7.67 ms a generation step op by op, 2.68 ms with these graphs). `StaticDecoderStep` is the step written
for that:

- the step's codes and position live in device buffers the step reads (copied in before each replay);
- keys and values are written into `generate`'s preallocated cache buffers at that position (`index_copy_`);
- self-attention reads a fixed span of the cache, the first multiple of `SPAN` positions covering the step, with
  later positions masked: one graph per span, so early steps do not read the whole buffer;
- the 36 code embeddings are one gather from the stacked tables and one sum.

Its result is the layer-by-layer step's up to rounding (the embeddings add in another order; masked keys add
exact zeros to the attention). With ``capture=False`` the same code runs eagerly: how the tests check it on CPU.
Graphs are captured for each generation (its cache buffers are new) at the first step of each span.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import Cache, EncoderDecoderCache

from .encoder_decoder import VisageDecoder, _feed_forward, _linear, attention_dtype
from .kv_cache import PreallocatedKVLayer

SPAN = 128
"""Cache positions per attention span (a graph each): at most SPAN - 1 masked positions read per step."""


class StaticDecoderStep:
    """``(batch, 1, streams)`` codes at position ``past_length`` -> the last layer's ``(branches·batch, 1, d)``.

    Args:
        decoder: the model's `VisageDecoder` (in eval mode).
        num_branches: guidance branches; every branch is fed the same codes (see `VisageForFOA.generate`).
        capture: replay CUDA graphs (CUDA tensors only); False runs the same fixed-shape code eagerly.
    """

    def __init__(self, decoder: VisageDecoder, num_branches: int, capture: bool):
        self.decoder = decoder
        self.num_branches = num_branches
        self.capture = capture
        self._code_table, self._stream_offsets = decoder.stacked_code_tables()
        self._codes: torch.Tensor | None = None
        self._position: torch.Tensor | None = None
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self._buffers_in_use: tuple | None = None
        self.failed = False
        """Set when a graph capture failed: the step then declines every call (the layers run op by op)."""

    def __call__(self, codes: torch.Tensor, cache: Cache | None, past_length: int) -> torch.Tensor | None:
        """Run the step (writing its keys and values into ``cache``); None (nothing done) where it does not fit:
        a cache other than `generate`'s, one whose cross-attention states are not projected yet, or a full one."""
        buffers = None if self.failed else self._self_attention_buffers(cache, past_length)
        if buffers is None or codes.shape[1] != 1 or self.decoder.training:
            return None
        self._check_buffers(codes, cache, buffers, past_length)
        self._set_inputs(codes, past_length)
        capacity = buffers[0][0].shape[-2]
        span = min(capacity, SPAN * (past_length // SPAN + 1))
        if self.capture:
            if span not in self._graphs:
                try:
                    self._graphs[span] = self._capture(cache, buffers, span)
                except RuntimeError as error:  # an operation this GPU, driver or torch cannot capture
                    warnings.warn(
                        f"CUDA graph capture failed ({error}); decoding steps op by op", stacklevel=2
                    )
                    self.failed = True
                    return None
            graph, hidden_states = self._graphs[span]
            graph.replay()
        else:
            hidden_states = self._step(cache, buffers, span)
        for layer in cache.self_attention_cache.layers:
            layer.filled_to(past_length + 1)
        return hidden_states

    def _self_attention_buffers(self, cache: Cache | None, past_length: int) -> list | None:
        if not isinstance(cache, EncoderDecoderCache):
            return None
        layers = cache.self_attention_cache.layers
        if len(layers) != len(self.decoder.layers) or not all(
            isinstance(layer, PreallocatedKVLayer) and cache.is_updated.get(index, False)
            for index, layer in enumerate(layers)
        ):
            return None
        buffers = [layer.step_buffers(past_length) for layer in layers]
        return None if any(pair is None for pair in buffers) else buffers

    def _check_buffers(
        self, codes: torch.Tensor, cache: EncoderDecoderCache, buffers: list, past_length: int
    ):
        """On the first step over new cache buffers (a new generation): zero their unwritten positions (masked
        keys must be finite: 0·NaN is NaN) and drop the graphs captured on the old ones."""
        cross = [(layer.keys, layer.values) for layer in cache.cross_attention_cache.layers]
        buffers_in_use = (codes.shape, *(tensor.data_ptr() for pair in buffers + cross for tensor in pair))
        if buffers_in_use == self._buffers_in_use:
            return
        for pair in buffers:
            for buffer in pair:
                buffer[:, :, past_length:].zero_()
        self._graphs.clear()
        self._buffers_in_use = buffers_in_use
        self._codes = torch.empty_like(codes)
        self._position = torch.empty(1, dtype=torch.long, device=codes.device)

    def _set_inputs(self, codes: torch.Tensor, past_length: int) -> None:
        self._codes.copy_(codes)
        self._position.fill_(past_length)

    def _step(self, cache: EncoderDecoderCache, buffers: list, span: int) -> torch.Tensor:
        """The fixed-shape step over the first ``span`` cache positions (reads `_codes` and `_position`)."""
        decoder = self.decoder
        embeddings = self._code_table[self._codes + self._stream_offsets].sum(dim=-2)  # (batch, 1, d)
        positions = decoder.embed_positions(self._position + decoder.POSITION_OFFSET)  # (1, d)
        hidden_states = decoder.layernorm_embedding(embeddings.repeat(self.num_branches, 1, 1) + positions)
        visible = torch.arange(span, device=hidden_states.device) <= self._position  # (span,) keys seen
        for layer, (keys, values) in zip(decoder.layers, buffers, strict=True):
            attended = _self_attention(layer.self_attn, hidden_states, keys, values, self._position, visible)
            hidden_states = layer.self_attn_layer_norm(hidden_states + attended)
            attended = layer.encoder_attn(hidden_states, cache=cache)  # projected cross-attention states
            hidden_states = layer.encoder_attn_layer_norm(hidden_states + attended)
            hidden_states = _feed_forward(layer, hidden_states)
        return hidden_states

    def _capture(self, cache: EncoderDecoderCache, buffers: list, span: int):
        # A warm-up run on a side stream first (cuBLAS handles, lazy initialisation), as torch's graph docs ask;
        # it writes the same keys and values at the same position as the replay that follows.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            self._step(cache, buffers, span)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            hidden_states = self._step(cache, buffers, span)
        return graph, hidden_states


def _self_attention(
    attention: nn.Module,
    hidden_states: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    position: torch.Tensor,
    visible: torch.Tensor,
) -> torch.Tensor:
    """One query per row; its key and value are written at ``position`` of the ``(rows, heads, capacity, head_dim)``
    buffers, and it attends to their first ``len(visible)`` positions where ``visible``."""
    rows = hidden_states.shape[0]
    query, key, value = (
        attention._split_heads(projected).to(keys.dtype)
        for projected in attention._query_key_value(hidden_states, attention_dtype(hidden_states))
    )
    keys.index_copy_(2, position, key)
    values.index_copy_(2, position, value)
    span = len(visible)
    attended = F.scaled_dot_product_attention(
        query, keys[:, :, :span], values[:, :, :span], attn_mask=visible.view(1, 1, 1, span)
    )
    attended = attended.to(hidden_states.dtype).transpose(1, 2).reshape(rows, 1, -1)
    return _linear(attention, "out_proj", attended)


__all__ = ["SPAN", "StaticDecoderStep"]
