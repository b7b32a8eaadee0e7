"""A direction per video frame (a moving camera): a constant per-frame direction is the clip direction, each
frame's token sees its own direction, guidance nulls every frame's direction."""

from __future__ import annotations

import pytest
import torch


def _per_frame(direction: torch.Tensor, frames: int) -> torch.Tensor:
    return direction[:, None].expand(-1, frames, -1).contiguous()


def test_constant_per_frame_direction_equals_the_clip_direction(tiny_model, make_conditions):
    clip, energy, direction = make_conditions(tiny_model.config, batch=2, frames=4)
    with torch.no_grad():
        reference = tiny_model.encode(clip, energy, direction).last_hidden_state
        per_frame = tiny_model.encode(clip, energy, _per_frame(direction, 4)).last_hidden_state
    torch.testing.assert_close(per_frame, reference, rtol=0, atol=1e-6)
    greedy = dict(do_sample=False, guidance="joint", num_frames=6)
    assert torch.equal(
        tiny_model.generate(clip, energy, _per_frame(direction, 4), **greedy),
        tiny_model.generate(clip, energy, direction, **greedy),
    )


def test_each_frame_token_gets_its_own_direction(tiny_model, make_conditions):
    """Naive reference: the embedding input of frame k (before the encoder layers) is the clip-direction
    input computed with frame k's direction."""
    clip, energy, _ = make_conditions(tiny_model.config, batch=1, frames=3)
    directions = torch.nn.functional.normalize(
        torch.randn(1, 3, 3, generator=torch.Generator().manual_seed(3)), dim=-1
    )
    captured = {}
    hook = tiny_model.model.encoder.layernorm_embedding.register_forward_hook(
        lambda module, args, output: captured.setdefault(len(captured), args[0].detach().clone())
    )
    try:
        with torch.no_grad():
            tiny_model.encode(clip, energy, directions)
            for k in range(3):
                tiny_model.encode(clip, energy, directions[:, k])
    finally:
        hook.remove()
    moving = captured[0]
    for k in range(3):
        torch.testing.assert_close(moving[:, 1 + k], captured[1 + k][:, 1 + k], rtol=0, atol=1e-6)


def test_null_direction_replaces_every_frame(tiny_model, make_conditions):
    clip, energy, direction = make_conditions(tiny_model.config, batch=2, frames=4)
    moving = _per_frame(direction, 4) + 0.1 * torch.arange(4.0)[None, :, None]
    flags = torch.tensor([True, False])
    with torch.no_grad():
        nulled = tiny_model.encode(clip, energy, moving, null_direction=flags).last_hidden_state
        explicit = moving.clone()
        explicit[0] = tiny_model.null_direction_embedding
        reference = tiny_model.encode(clip, energy, explicit).last_hidden_state
    torch.testing.assert_close(nulled, reference, rtol=0, atol=1e-6)


def test_per_frame_direction_of_the_wrong_length_is_refused(tiny_model, make_conditions):
    clip, energy, direction = make_conditions(tiny_model.config, batch=1, frames=4)
    with pytest.raises(ValueError, match="moving camera"):
        tiny_model.encode(clip, energy, _per_frame(direction, 3))
