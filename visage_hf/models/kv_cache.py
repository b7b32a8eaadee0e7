"""The KV cache `VisageForFOA.generate` decodes with: self-attention buffers sized for the whole generation, written
in place one step at a time (and by `FusedDecoderStep` directly), and the cross-attention states, projected once."""

from __future__ import annotations

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer, EncoderDecoderCache

from .configuration_visage import VisageConfig


class PreallocatedKVLayer(DynamicLayer):
    """A self-attention cache layer writing into a buffer sized for the whole generation.

    `DynamicLayer` concatenates every step, copying the whole cache each time (a 5 s clip with joint guidance
    at full size in fp32: ~170 MB read and written per step on average); here each step writes one slice into
    a buffer and returns a view of the filled part.

    Args:
        capacity: positions to allocate for at the first update (the buffer doubles beyond them).
        storage_dtype: the buffers' dtype where it differs from the states' (None: the states'). `FusedDecoderStep`
            writes and reads such buffers itself; `update` returns the filled part in the states' dtype (a copy).
    """

    def __init__(self, capacity: int = 0, storage_dtype: torch.dtype | None = None):
        super().__init__()
        self.capacity = capacity
        self.storage_dtype = storage_dtype
        self._key_buffer: torch.Tensor | None = None
        self._value_buffer: torch.Tensor | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        past = self.get_seq_length()
        total = past + key_states.shape[-2]
        if not self._buffer_fits(key_states, past, total):
            self._grow(key_states, past, total)
        self._key_buffer[..., past:total, :] = key_states
        self._value_buffer[..., past:total, :] = value_states
        self.filled_to(total)
        if self.keys.dtype != key_states.dtype:
            return self.keys.to(key_states.dtype), self.values.to(key_states.dtype)
        return self.keys, self.values

    def step_buffers(self, past: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The key and value buffers ``(batch, heads, capacity, head_dim)`` into which one more position after
        ``past`` may be written in place (then call `filled_to`), or None where `update` must run instead."""
        if not self.is_initialized or self._key_buffer is None or self.get_seq_length() != past:
            return None
        if self._key_buffer.shape[-2] <= past or self.keys.data_ptr() != self._key_buffer.data_ptr():
            return None
        return self._key_buffer, self._value_buffer

    def filled_to(self, total: int) -> None:
        """The cache holds the buffers' first ``total`` positions."""
        self.keys = self._key_buffer[..., :total, :]
        self.values = self._value_buffer[..., :total, :]

    def _buffer_fits(self, key_states: torch.Tensor, past: int, total: int) -> bool:
        buffer = self._key_buffer
        if buffer is None or buffer.shape[-2] < total or buffer.dtype != self._dtype_for(key_states):
            return False
        if buffer.shape[:2] != key_states.shape[:2] or buffer.shape[-1] != key_states.shape[-1]:
            return False
        # After a reorder/select the cache holds a new tensor; its contents must move into a buffer again.
        return past == 0 or self.keys.data_ptr() == buffer.data_ptr()

    def _grow(self, key_states: torch.Tensor, past: int, total: int) -> None:
        capacity = max(total, self.capacity, 2 * past)
        shape = (*key_states.shape[:2], capacity, key_states.shape[-1])
        key_buffer = key_states.new_empty(shape, dtype=self._dtype_for(key_states))
        value_buffer = key_states.new_empty(shape, dtype=self._dtype_for(key_states))
        if past:
            key_buffer[..., :past, :] = self.keys
            value_buffer[..., :past, :] = self.values
        self._key_buffer, self._value_buffer = key_buffer, value_buffer

    def _dtype_for(self, states: torch.Tensor) -> torch.dtype:
        return self.storage_dtype or states.dtype


class VisageKVCache(DynamicCache):
    """Decoder self-attention cache of `PreallocatedKVLayer`s (pair it with a `DynamicCache` for cross-attention)."""

    def __init__(self, num_layers: int, capacity: int = 0, storage_dtype: torch.dtype | None = None):
        layers = [PreallocatedKVLayer(capacity, storage_dtype) for _ in range(num_layers)]
        Cache.__init__(self, layers=layers)


def make_generation_cache(
    config: VisageConfig, capacity: int = 0, storage_dtype: torch.dtype | None = None
) -> EncoderDecoderCache:
    """The cache `generate` uses: preallocated self-attention buffers (in ``storage_dtype``, default the states'
    dtype) + once-filled cross-attention states."""
    return EncoderDecoderCache(VisageKVCache(config.decoder_layers, capacity, storage_dtype), DynamicCache())


__all__ = ["PreallocatedKVLayer", "VisageKVCache", "make_generation_cache"]
