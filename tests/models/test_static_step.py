"""The fixed-shape generation step (visage_hf.models.static_step) against the layer-by-layer step: step after step
over several attention spans, in generation (greedy and seeded sampling), the steps it must leave to the layers (a
failed graph capture among them), and -- where CUDA is present -- the same through CUDA graph replays."""

from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from visage_hf.models import static_step
from visage_hf.models.generation import build_code_canvas
from visage_hf.models.kv_cache import make_generation_cache
from visage_hf.models.static_step import StaticDecoderStep

from .step_checks import assert_steps_match

STREAMS_LIVE = list(range(36))


def _run_steps(model, encoder_states, codes, branches: int, step: StaticDecoderStep | None):
    """Decode ``codes`` ``(batch, steps, streams)`` one position at a time -> (each step's states, cache, steps
    the static step ran)."""
    steps = codes.shape[1]
    cache = make_generation_cache(model.config, capacity=steps)
    ran = []

    def counted(*args):
        result = step(*args)
        ran.append(result is not None)
        return result

    outputs = [
        model._decode(codes[:, i : i + 1], encoder_states, branches, cache, STREAMS_LIVE, step and counted)
        for i in range(steps)
    ]
    return outputs, cache, sum(ran)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("batch, branches", [(1, 1), (1, 2), (2, 3)])
def test_static_step_equals_the_layer_by_layer_step(tiny_model, monkeypatch, dtype, batch, branches):
    # 11 positions: spans of 4, 8 and the whole 11-position buffer
    monkeypatch.setattr(static_step, "SPAN", 4)
    model = tiny_model.to(dtype)
    config = model.config
    generator = torch.Generator().manual_seed(batch * 10 + branches)
    encoder_states = torch.randn(branches * batch, 3, config.d_model, generator=generator).to(dtype)
    codes = torch.randint(0, config.codebook_size + 1, (batch, 11, config.num_streams), generator=generator)
    with torch.inference_mode():
        step = StaticDecoderStep(model.model.decoder, branches, capture=False)
        ours, our_cache, static_steps = _run_steps(model, encoder_states, codes, branches, step)
        # The reference sums the 36 code embeddings in one lookup, rounding once as this step does (the packed
        # CPU path's `embedding_bag`): the eager sum rounds a bf16 model after each of its 35 additions, a
        # difference (up to 0.05 here) larger than a lost key would make.
        decoder = model.model.decoder
        monkeypatch.setattr(decoder, "_stacked_code_tables", decoder.stacked_code_tables())
        reference, reference_cache, _ = _run_steps(model, encoder_states, codes, branches, None)
    assert static_steps == 10  # every step after the first, which projects the cross-attention states
    # fp32: masked keys add exact zeros, and a few ulps of states of size ~1 remain from sums in another order.
    # bf16: measured ≤ 0.0078 (a bf16 ulp at 1-2); attending to one key too few moved states by 0.023-0.047.
    tolerance = 2e-5 if dtype == torch.float32 else 0.01
    shape = (branches * batch, 1, config.d_model)
    assert_steps_match(ours, reference, our_cache, reference_cache, shape, tolerance)


def test_steps_it_cannot_take_run_layer_by_layer(tiny_model):
    config = tiny_model.config
    decoder = tiny_model.model.decoder
    codes = torch.randint(0, config.codebook_size, (1, 1, config.num_streams))
    step = StaticDecoderStep(decoder, 1, capture=False)
    with torch.inference_mode():
        assert step(codes, None, 1) is None
        assert step(codes, EncoderDecoderCache(DynamicCache(), DynamicCache()), 1) is None  # not preallocated
        assert step(codes, make_generation_cache(config, capacity=4), 0) is None  # nothing projected yet
        decoder.train()
        cache = make_generation_cache(config, capacity=4)
        tiny_model._decode(codes, torch.randn(1, 3, config.d_model), 1, cache, STREAMS_LIVE)
        assert step(codes, cache, 1) is None  # dropout is not part of the fixed-shape step
        decoder.eval()
        assert step(codes, cache, 1) is not None


def _generate_both_ways(model, conditions, monkeypatch) -> tuple[list[torch.Tensor], list[torch.Tensor], int]:
    ran = []
    original_call = StaticDecoderStep.__call__

    def counted(self, *args):
        result = original_call(self, *args)
        ran.append(result is not None)
        return result

    def generate_all(static_steps: bool) -> list[torch.Tensor]:
        return [
            model.generate(*conditions, do_sample=False, num_frames=12, static_steps=static_steps),
            model.generate(*conditions, seed=3, num_frames=12, static_steps=static_steps),
            model.generate(*conditions, seed=4, num_frames=12, guidance="dual", static_steps=static_steps),
        ]

    monkeypatch.setattr(StaticDecoderStep, "__call__", counted)
    static = generate_all(True)
    monkeypatch.setattr(StaticDecoderStep, "__call__", original_call)
    return static, generate_all(False), sum(ran)


def _pattern_steps(config) -> int:
    """Decoder steps of a 12-frame generation (the code pattern's length)."""
    return build_code_canvas(config.code_pattern, 1, 12, config.code_pad_id).shape[1]


def test_generation_with_static_steps_gives_the_layer_by_layer_codes(
    tiny_model, make_conditions, monkeypatch
):
    monkeypatch.setattr(static_step, "SPAN", 8)
    conditions = make_conditions(tiny_model.config, batch=2, frames=2, seed=5)
    static, eager, static_steps = _generate_both_ways(tiny_model, conditions, monkeypatch)
    assert static_steps == 3 * (_pattern_steps(tiny_model.config) - 1)  # the first step runs layer by layer
    for ours, reference in zip(static, eager):
        assert torch.equal(ours, reference)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_cuda_graph_replays_give_the_layer_by_layer_codes(tiny_model, make_conditions, monkeypatch):
    monkeypatch.setattr(static_step, "SPAN", 8)
    model = tiny_model.to("cuda")
    conditions = [tensor.to("cuda") for tensor in make_conditions(model.config, batch=2, frames=2, seed=5)]
    captures = []
    original_capture = StaticDecoderStep._capture
    monkeypatch.setattr(
        StaticDecoderStep, "_capture", lambda self, *args: captures.append(1) or original_capture(self, *args)
    )
    static, eager, static_steps = _generate_both_ways(model, conditions, monkeypatch)
    steps = _pattern_steps(model.config)
    assert static_steps == 3 * (steps - 1)
    assert len(captures) == 3 * -(-steps // 8)  # a graph per 8-position span, in each generation
    for ours, reference in zip(static, eager):
        assert torch.equal(ours, reference)


def test_mono_generation_with_static_steps_gives_the_layer_by_layer_codes(
    tiny_mono_model, make_conditions, monkeypatch
):
    conditions = make_conditions(tiny_mono_model.config, batch=1, frames=2, seed=6)
    ran = []
    original_call = StaticDecoderStep.__call__

    def counted(self, *args):
        result = original_call(self, *args)
        ran.extend([] if result is None else [1])
        return result

    monkeypatch.setattr(StaticDecoderStep, "__call__", counted)
    for settings in (dict(do_sample=False), dict(seed=5)):
        static = tiny_mono_model.generate(*conditions, num_frames=10, static_steps=True, **settings)
        assert len(ran) > 10
        ran.clear()
        assert torch.equal(static, tiny_mono_model.generate(*conditions, num_frames=10, **settings))
        assert not ran  # on CPU the default runs layer by layer


def test_a_failed_capture_warns_and_leaves_the_steps_to_the_layers(tiny_model, make_conditions, monkeypatch):
    conditions = make_conditions(tiny_model.config, batch=1, frames=2, seed=7)
    expected = tiny_model.generate(*conditions, do_sample=False, num_frames=6)

    def fail(self, *args):
        raise RuntimeError("operation not permitted when stream is capturing")

    original_init = StaticDecoderStep.__init__
    steps = []

    def capturing(self, decoder, num_branches, capture):
        original_init(self, decoder, num_branches, capture=True)  # as on CUDA, with a capture that fails
        steps.append(self)

    monkeypatch.setattr(StaticDecoderStep, "_capture", fail)
    monkeypatch.setattr(StaticDecoderStep, "__init__", capturing)
    with pytest.warns(UserWarning, match="CUDA graph capture failed.*op by op"):
        codes = tiny_model.generate(*conditions, do_sample=False, num_frames=6, static_steps=True)
    assert torch.equal(codes, expected)
    assert [step.failed for step in steps] == [True]
