"""The CPU decoding fast path: `PackedLinear` against `F.linear`, and generation with and without it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from visage_hf.models.encoder_decoder import PackedLinear

requires_packing = pytest.mark.skipif(
    not PackedLinear.supports(torch.zeros(1)), reason="this torch build has no oneDNN linear ops"
)


def _linears(count: int, in_features: int, out_features: int, dtype: torch.dtype) -> list[torch.nn.Linear]:
    torch.manual_seed(0)
    return [torch.nn.Linear(in_features, out_features).to(dtype) for _ in range(count)]


@requires_packing
@pytest.mark.parametrize("rows", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("activation", [None, "gelu"])
def test_packed_linear_equals_stacked_f_linear(rows, activation):
    linears = _linears(3, 48, 40, torch.float32)
    packed = PackedLinear(linears, activation=activation)
    states = torch.randn(rows, 1, 48)
    weight = torch.cat([linear.weight for linear in linears])
    bias = torch.cat([linear.bias for linear in linears])
    expected = F.linear(states, weight, bias)
    if activation == "gelu":
        expected = F.gelu(expected)
    with torch.no_grad():
        result = packed(states)
    assert result.shape == (rows, 1, 120)
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-6)


@requires_packing
def test_packed_linear_takes_any_leading_shape_and_bfloat16(tiny_model, make_conditions, monkeypatch):
    if not PackedLinear.supports(torch.zeros(1, dtype=torch.bfloat16)):
        # No native bf16 (e.g. AVX2-only CPUs): bf16 generation must take the plain stacked layout, never
        # oneDNN's. (Its numerics against fp32: test_generation.py::test_bfloat16_logits_match_float32.)
        built = []
        original_init = PackedLinear.__init__

        def record(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            built.append(self.onednn)

        monkeypatch.setattr(PackedLinear, "__init__", record)
        clip, energy, direction = make_conditions(tiny_model.config, batch=1, frames=1)
        codes = tiny_model.to(torch.bfloat16).generate(clip, energy, direction, do_sample=False, num_frames=2)
        assert codes.shape[-1] == 2
        assert built and not any(built)
        return
    (linear,) = _linears(1, 32, 16, torch.bfloat16)
    states = torch.randn(2, 5, 32, dtype=torch.bfloat16)
    with torch.no_grad():
        result = PackedLinear([linear])(states)
        expected = F.linear(states.float(), linear.weight.float(), linear.bias.float())
    assert result.shape == (2, 5, 16) and result.dtype == torch.bfloat16
    torch.testing.assert_close(result.float(), expected, rtol=1e-2, atol=1e-2)  # bf16 output rounding


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("activation", [None, "gelu"])
def test_plain_layout_is_one_product_over_the_stacked_weight(monkeypatch, dtype, activation):
    """Where oneDNN has no kernel (bf16 on AVX2-only CPUs), the stacked layers are one `F.linear` over their
    weights concatenated in order (then the activation): the same numbers as the layers one by one."""
    monkeypatch.setattr(PackedLinear, "supports", staticmethod(lambda weight: False))
    linears = _linears(3, 48, 40, dtype)
    packed = PackedLinear(linears, activation=activation)
    assert not packed.onednn
    states = torch.randn(2, 1, 48, dtype=dtype)
    with torch.no_grad():
        expected = torch.cat([linear(states) for linear in linears], dim=-1)
        expected = expected if activation is None else F.gelu(expected)
        result = packed(states)
    assert result.dtype == dtype
    torch.testing.assert_close(result, expected, rtol=1e-6, atol=1e-6)
    single = PackedLinear(linears[:1])
    assert single.weight.data_ptr() == linears[0].weight.data_ptr()  # one layer: read in place, no copy


def test_packed_linear_refuses_mixed_bias_and_unknown_activation():
    with_bias, without_bias = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4, bias=False)
    if PackedLinear.supports(with_bias.weight):
        with pytest.raises(ValueError, match="bias"):
            PackedLinear([with_bias, without_bias])
    with pytest.raises(ValueError, match="activation"):
        PackedLinear([with_bias], activation="relu6")


@requires_packing
@pytest.mark.parametrize("guidance", ["joint", "dual", "none"])
def test_generation_is_the_same_with_and_without_packed_weights(
    tiny_model, make_conditions, monkeypatch, guidance
):
    clip, energy, direction = make_conditions(tiny_model.config, batch=2, frames=1, seed=3)
    settings = dict(guidance=guidance, num_frames=5)
    greedy = tiny_model.generate(clip, energy, direction, do_sample=False, **settings)
    sampled = tiny_model.generate(clip, energy, direction, seed=11, **settings)
    monkeypatch.setattr(PackedLinear, "supports", staticmethod(lambda weight: False))
    assert torch.equal(tiny_model.generate(clip, energy, direction, do_sample=False, **settings), greedy)
    assert torch.equal(tiny_model.generate(clip, energy, direction, seed=11, **settings), sampled)


def test_generation_leaves_no_packed_state_behind(tiny_model, make_conditions):
    clip, energy, direction = make_conditions(tiny_model.config, batch=1, frames=1)
    tiny_model.generate(clip, energy, direction, seed=0, num_frames=3)
    decoder = tiny_model.model.decoder
    assert decoder._stacked_code_tables is None
    for layer in decoder.layers:
        assert not layer.packed_linears
        assert not layer.self_attn.packed_linears and not layer.encoder_attn.packed_linears
    assert tiny_model._packed_heads is None
