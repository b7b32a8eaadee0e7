"""The preallocated self-attention cache (visage_hf.models.kv_cache): its buffers in another storage dtype than the
states' (the fused step's bfloat16 cache), read back in the states' dtype."""

from __future__ import annotations

import torch

from visage_hf.models.kv_cache import PreallocatedKVLayer


def test_a_bfloat16_store_keeps_the_states_rounded_and_returns_them_in_fp32():
    layer = PreallocatedKVLayer(capacity=8, storage_dtype=torch.bfloat16)
    generator = torch.Generator().manual_seed(0)
    steps = [torch.randn(2, 3, 1, 4, generator=generator) for _ in range(2)]
    for step in steps:
        keys, values = layer.update(step, 2 * step)
    expected = torch.cat(steps, dim=-2)
    assert layer.step_buffers(2)[0].dtype == torch.bfloat16 and layer.step_buffers(2)[0].shape[-2] == 8
    assert keys.dtype == values.dtype == torch.float32
    assert torch.equal(keys, expected.bfloat16().float())
    assert torch.equal(values, (2 * expected).bfloat16().float())
    assert not torch.equal(keys, expected)  # rounded: random fp32 numbers are not bfloat16 ones


def test_by_default_the_buffers_hold_the_states_dtype():
    layer = PreallocatedKVLayer(capacity=4)
    states = torch.randn(1, 2, 1, 4)
    keys, _ = layer.update(states, states)
    assert layer.step_buffers(1)[0].dtype == torch.float32 and torch.equal(keys, states)
    assert keys.data_ptr() == layer.step_buffers(1)[0].data_ptr()  # a view of the buffer, not a copy
