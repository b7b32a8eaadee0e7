"""The few-row numba kernels (visage_hf.models.row_kernels): products against a float64 reference for every
weight dtype and row count, the thread hand-over, and generation with and without them (greedy codes equal on
the tiny model; on the parity fixture, tests/models/test_convert_original.py runs through them)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from visage_hf.models import row_kernels
from visage_hf.models.encoder_decoder import PackedLinear
from visage_hf.models.quantization import (
    Int8WeightOnlyLinear,
    StackedInt8Linear,
    quantize_decoder,
    quantize_rows,
)

pytestmark = pytest.mark.skipif(not row_kernels.available(), reason="numba is not installed")


def _reference(states, weight, bias, activation):
    projected = F.linear(states.double(), weight.double(), None if bias is None else bias.double())
    return F.gelu(projected) if activation == "gelu" else projected


def _weights(dtype: torch.dtype, out_features: int, in_features: int, seed: int):
    """(weight the kernel holds, scale or None, the float64 weight it stands for)."""
    generator = torch.Generator().manual_seed(seed)
    weight = torch.randn(out_features, in_features, generator=generator)
    if dtype == torch.int8:
        quantized, scale = quantize_rows(weight)
        return quantized, scale, quantized.double() * scale.double()[:, None]
    weight = weight.to(dtype)
    return weight, None, weight.double()


@pytest.mark.parametrize("dtype", row_kernels.WEIGHT_DTYPES)
@pytest.mark.parametrize("rows", [1, 2, 3, 4])
@pytest.mark.parametrize(("with_bias", "activation"), [(True, None), (False, None), (True, "gelu")])
@pytest.mark.parametrize("in_features", [75, 2051])  # 2051: long rows (fp32: four channels at a time)
@pytest.mark.parametrize("out_features", [37, 300])  # bf16/int8 blocks: one partial; two whole and a partial
def test_product_equals_float64_reference(dtype, rows, with_bias, activation, in_features, out_features):
    # Odd sizes: no dimension is a multiple of the vector width (nor 37 channels of 4), so the tails are exercised.
    weight, scale, exact = _weights(dtype, out_features, in_features, seed=rows)
    generator = torch.Generator().manual_seed(100 + rows)
    bias = torch.randn(out_features, generator=generator) if with_bias else None
    states = torch.randn(rows, 1, in_features, generator=generator)
    product = row_kernels.RowProduct(weight, bias, scale, activation)(states)
    expected = _reference(states, exact, bias, activation)
    assert product.shape == (rows, 1, out_features) and product.dtype == torch.float32
    # fp32 sums of terms of size ~1: rounding ~1e-6 of the largest output.
    torch.testing.assert_close(product.double(), expected, rtol=0, atol=2e-5 * expected.abs().max().item())


def test_bfloat16_inputs_give_bfloat16_outputs_rounded_once():
    weight, _, exact = _weights(torch.bfloat16, 64, 96, seed=5)
    states = torch.randn(2, 96, generator=torch.Generator().manual_seed(6)).bfloat16()
    product = row_kernels.RowProduct(weight)(states)
    assert product.dtype == torch.bfloat16
    torch.testing.assert_close(product, _reference(states, exact, None, None).bfloat16(), rtol=0, atol=0.07)


def test_more_rows_than_the_kernel_takes_are_refused():
    with pytest.raises(ValueError, match="1 to 4 rows"):
        row_kernels.RowProduct(torch.randn(8, 8))(torch.randn(5, 8))
    with pytest.raises(ValueError, match="scales"):
        row_kernels.RowProduct(torch.zeros(8, 8, dtype=torch.int8))


@pytest.mark.parametrize("rows", [2, 9])
def test_few_row_products_use_the_kernel_and_more_rows_torch(rows, monkeypatch):
    linears = [nn.Linear(24, 40), nn.Linear(24, 8)]
    packed = PackedLinear(linears, activation="gelu", few_rows=True)
    assert packed.rows is not None and not packed.onednn
    calls = []
    kernel_call = row_kernels.RowProduct.__call__
    monkeypatch.setattr(
        row_kernels.RowProduct, "__call__", lambda self, x: calls.append(1) or kernel_call(self, x)
    )
    states = torch.randn(rows, 1, 24)
    weight = torch.cat([linear.weight for linear in linears])
    bias = torch.cat([linear.bias for linear in linears])
    result = packed(states)
    assert len(calls) == (rows <= row_kernels.MAX_KERNEL_ROWS)
    torch.testing.assert_close(result.double(), _reference(states, weight, bias, "gelu"), rtol=0, atol=1e-5)


def test_int8_stack_uses_the_kernel_for_few_rows_with_fp32_inputs():
    layers = [Int8WeightOnlyLinear.from_linear(nn.Linear(32, 16)) for _ in range(2)]
    stacked = StackedInt8Linear(layers, few_rows=True)
    assert stacked.rows is not None
    states = torch.randn(2, 32, generator=torch.Generator().manual_seed(2))
    exact = torch.cat([layer.dequantized_weight() for layer in layers])
    # The kernel reads fp32 inputs (torch's int8 kernel rounds them to bf16 first): float64 agreement to ~1e-6.
    torch.testing.assert_close(
        stacked(states).double(), _reference(states, exact, stacked.bias, None), rtol=0, atol=1e-5
    )


def test_without_numba_the_products_stay_torchs(monkeypatch):
    monkeypatch.setenv("VISAGE_HF_NO_NUMBA", "1")
    assert not row_kernels.available()
    packed = PackedLinear([nn.Linear(16, 16)], few_rows=True)
    assert packed.rows is None and packed.onednn == PackedLinear.supports(torch.zeros(1))


def test_kernel_threads_lend_torchs_threads_and_give_them_back():
    torch.set_num_threads(2)
    try:
        with row_kernels.kernel_threads():
            assert torch.get_num_threads() == 1
            row_kernels.RowProduct(torch.randn(8, 8))(torch.randn(2, 8))
            assert row_kernels.numba.get_num_threads() == min(2, row_kernels.numba.config.NUMBA_NUM_THREADS)
            with row_kernels.kernel_threads():  # nested: the outer block's setting holds
                assert torch.get_num_threads() == 1
            assert torch.get_num_threads() == 1
            with row_kernels.torch_threads():
                assert torch.get_num_threads() == 2
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), row_kernels.kernel_threads():
            raise RuntimeError
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_generation_steps_run_inside_kernel_threads(tiny_model, make_conditions, monkeypatch):
    torch.set_num_threads(2)
    seen = []
    kernel_call = row_kernels.RowProduct.__call__

    def record(self, states):
        seen.append(torch.get_num_threads())
        return kernel_call(self, states)

    monkeypatch.setattr(row_kernels.RowProduct, "__call__", record)
    try:
        clip, energy, direction = make_conditions(tiny_model.config, batch=1, frames=1)
        tiny_model.generate(clip, energy, direction, seed=0, num_frames=3)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


@pytest.mark.parametrize(("guidance", "batch"), [("joint", 2), ("dual", 1), ("none", 1), ("dual", 2)])
def test_generation_is_the_same_with_and_without_the_kernels(
    tiny_model, make_conditions, monkeypatch, guidance, batch
):
    # dual with batch 2: 8 rows per step, more than the kernel takes, so torch's products run inside the block.
    clip, energy, direction = make_conditions(tiny_model.config, batch=batch, frames=1, seed=3)
    settings = dict(guidance=guidance, num_frames=5)
    greedy = tiny_model.generate(clip, energy, direction, do_sample=False, **settings)
    sampled = tiny_model.generate(clip, energy, direction, seed=11, **settings)
    monkeypatch.setenv("VISAGE_HF_NO_NUMBA", "1")
    assert torch.equal(tiny_model.generate(clip, energy, direction, do_sample=False, **settings), greedy)
    assert torch.equal(tiny_model.generate(clip, energy, direction, seed=11, **settings), sampled)


def test_int8_generation_reads_int8_weights_through_the_kernel(tiny_model, make_conditions, monkeypatch):
    held = []
    original_init = row_kernels.RowProduct.__init__

    def record(self, weight, *args, **kwargs):
        held.append(weight.dtype)
        original_init(self, weight, *args, **kwargs)

    monkeypatch.setattr(row_kernels.RowProduct, "__init__", record)
    model = quantize_decoder(tiny_model)
    clip, energy, direction = make_conditions(model.config, batch=1, frames=1)
    model.generate(clip, energy, direction, seed=0, num_frames=3)
    assert held and set(held) == {torch.int8}


@pytest.mark.parametrize("keys", [1, 5, 37])
def test_single_query_attention_equals_float64_softmax_over_a_cache_view(keys):
    generator = torch.Generator().manual_seed(keys)
    query = torch.randn(2, 3, 1, 16, generator=generator)
    key_buffer, value_buffer = torch.randn(2, 2, 3, 50, 16, generator=generator)
    key, value = (
        key_buffer[:, :, :keys],
        value_buffer[:, :, :keys],
    )  # as the preallocated cache hands them out
    weights = (query.double() @ key.double().transpose(-1, -2) / 4.0).softmax(-1)
    expected = weights @ value.double()
    result = row_kernels.single_query_attention(query, key, value)
    torch.testing.assert_close(result.double(), expected, rtol=0, atol=1e-6)
    strided = row_kernels.single_query_attention(
        query, key.transpose(2, 3).contiguous().transpose(2, 3), value
    )
    torch.testing.assert_close(strided, result, rtol=0, atol=1e-6)


def test_kernel_attention_only_for_one_fp32_query_inside_kernel_threads():
    query, key = torch.zeros(1, 2, 1, 8), torch.zeros(1, 2, 4, 8)
    assert not row_kernels.attention_applies(query, key)
    with row_kernels.kernel_threads():
        assert row_kernels.attention_applies(query, key)
        assert not row_kernels.attention_applies(torch.zeros(1, 2, 3, 8), key)
        assert not row_kernels.attention_applies(query.bfloat16(), key.bfloat16())


def test_typed_arrays_compile_nothing_in_a_fresh_process():
    """The kernels' lists are built by kernels numba caches on disk: once one process has built a list of a type, a
    fresh process builds one without compiling (a `numba.typed.List` filled from Python compiles its methods in
    every process, ~1 s at a generation's start)."""
    script = (
        "import numpy as np; from numba.core import event; from visage_hf.models import row_kernels; "
        "arrays = [np.full((2, 3), value, np.float32) for value in (1, 2, 3)]; "
        "recording = event.install_recorder('numba:compile'); recorder = recording.__enter__(); "
        "typed = row_kernels.typed_arrays(arrays); recording.__exit__(None, None, None); "
        "print(len(recorder.buffer), [float(array[1, 2]) for array in typed])"
    )
    runs = [
        subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        for _ in "ab"
    ]
    compiles, values = runs[1].stdout.split(" ", 1)
    assert values.strip() == "[1.0, 2.0, 3.0]"
    assert compiles == "0", runs[1].stdout


def test_compile_kernels_compiles_the_samplers_kernels():
    """A fresh process (this one has compiled them already): after `compile_kernels` the top-k filter and the draws
    that a sampled step calls add no signature."""
    script = (
        "import torch; from visage_hf.models import categorical, row_kernels, top_k; "
        "row_kernels.compile_kernels(torch.float32); kernels = (top_k._keep_top_k, categorical._race); "
        "before = [len(kernel.signatures) for kernel in kernels]; "
        "probabilities = top_k.KthValueTopKLogitsWarper(256)(None, torch.randn(25, 1024)).softmax(-1); "
        "categorical.categorical_draws(probabilities, [25], [torch.Generator()]); "
        "print(*before, *[len(kernel.signatures) for kernel in kernels])"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["1", "1", "1", "1"]
