"""How a generation step reads its heads (visage_hf.models.step_weights): each recurring list of live heads as
one stacked product, against the heads called one by one; on an accelerator the heads alone are stacked."""

from __future__ import annotations

import torch

from visage_hf.models.generation import build_code_canvas, stream_schedule
from visage_hf.models.step_weights import stacked_heads, step_weights


def test_stacked_heads_equal_the_heads_one_by_one(tiny_model):
    heads = [tiny_model.heads[stream] for stream in (3, 0, 17)]
    states = torch.randn(2, 1, tiny_model.config.d_model, generator=torch.Generator().manual_seed(0))
    expected = torch.cat([head(states) for head in heads], dim=-1)
    torch.testing.assert_close(stacked_heads(heads)(states), expected, rtol=1e-6, atol=1e-6)


def test_each_recurring_list_of_live_heads_is_stacked_off_cpu(tiny_model):
    config = tiny_model.config
    schedule = stream_schedule(build_code_canvas(config.code_pattern, 1, 12, config.code_pad_id))
    recurring = {tuple(live) for live in schedule if live and schedule.count(live) > 1}
    model = tiny_model.to("meta")  # any device but the CPU: shapes only
    with step_weights(model, schedule, rows=2):
        assert set(model._packed_heads) == recurring
        for live, product in model._packed_heads.items():
            logits = product(torch.empty(2, 1, config.d_model, device="meta"))
            assert logits.shape == (2, 1, len(live) * config.codebook_size)
        assert not model.model.decoder.layers[0].packed_linears  # the decoder's weights stay as they are
    assert model._packed_heads is None
