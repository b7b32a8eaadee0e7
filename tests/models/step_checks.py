"""The check shared by the tests of a fast generation step (fused on CPU, fixed-shape for CUDA graphs): its states
and the cache it wrote against the layer-by-layer step's, step after step."""

from __future__ import annotations

import torch


def assert_steps_match(
    states, reference_states, cache, reference_cache, shape: tuple, tolerance: float
) -> None:
    """Each step's output (all of ``shape``, the reference's dtype) and every layer's cached keys and values
    within ``tolerance`` of the layer-by-layer run; both caches hold the same number of positions."""
    assert len(states) == len(reference_states)
    for step, (ours, reference) in enumerate(zip(states, reference_states)):
        assert ours.dtype == reference.dtype and ours.shape == reference.shape == shape
        torch.testing.assert_close(ours, reference, rtol=0, atol=tolerance, msg=f"step {step}")
    for ours, reference in zip(
        cache.self_attention_cache.layers, reference_cache.self_attention_cache.layers
    ):
        assert ours.get_seq_length() == reference.get_seq_length() == len(states)
        torch.testing.assert_close(ours.keys, reference.keys, rtol=0, atol=tolerance)
        torch.testing.assert_close(ours.values, reference.values, rtol=0, atol=tolerance)
