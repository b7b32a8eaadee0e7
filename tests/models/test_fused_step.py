"""The fused decoder step (visage_hf.models.fused_step): every layer of a generation step in one numba call,
against the same decoder run layer by layer (torch's LayerNorms, residual sums, views and cache updates, with the
products and attention that tests/models/test_row_kernels.py checks against float64), step after step, for fp32,
bf16 and int8 weights; the steps it must leave to the layers; and generation with it against generation without."""

from __future__ import annotations

import ast
import subprocess
import sys
import threading

import pytest
import torch
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from visage_hf.models import fused_step, row_kernels
from visage_hf.models.configuration_visage import VisageConfig
from visage_hf.models.kv_cache import make_generation_cache
from visage_hf.models.modeling_visage import VisageForFOA
from visage_hf.models.quantization import quantize_decoder

from .step_checks import assert_steps_match

pytestmark = pytest.mark.skipif(not row_kernels.available(), reason="numba is not installed")

DTYPES = ["float32", "bfloat16", "int8"]


def _model(tiny_model: VisageForFOA, kind: str) -> VisageForFOA:
    """The tiny model in ``kind``, its LayerNorms randomised (initialised to 1 and 0, a lost weight or bias would
    not show)."""
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for module in tiny_model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.copy_(1 + 0.2 * torch.randn(module.weight.shape, generator=generator))
                module.bias.copy_(0.2 * torch.randn(module.bias.shape, generator=generator))
    return quantize_decoder(tiny_model) if kind == "int8" else tiny_model.to(getattr(torch, kind))


def _run_steps(
    decoder, config, encoder_states, codes, fused: bool
) -> tuple[list[torch.Tensor], EncoderDecoderCache, int]:
    """Decode ``codes`` ``(rows, steps, streams)`` one step at a time -> (each step's output, cache, fused steps),
    both ways with the self-attention cache in the dtype the fused step keeps it in."""
    rows, steps, _ = codes.shape
    outputs, fused_steps = [], []
    with decoder.packed_weights(rows):
        step = decoder._fused_step
        assert step is not None
        cache = make_generation_cache(config, capacity=steps, storage_dtype=decoder.step_cache_dtype())

        def counted(*args):
            result = step(*args)
            fused_steps.append(result is not None)
            return result

        decoder._fused_step = counted if fused else None
        for position in range(steps):
            embeds = decoder.embed(codes[:, position : position + 1], position)
            outputs.append(decoder(embeds, encoder_states, cache=cache, past_length=position))
    return outputs, cache, sum(fused_steps)


@pytest.mark.parametrize("kind", DTYPES)
@pytest.mark.parametrize("rows", [1, 2, 4])
def test_fused_step_equals_the_layer_by_layer_step(tiny_model, kind, rows):
    model = _model(tiny_model, kind)
    decoder, config = model.model.decoder, model.config
    dtype = next(decoder.layers[0].self_attn_layer_norm.parameters()).dtype
    generator = torch.Generator().manual_seed(rows)
    encoder_states = torch.randn(rows, 3, config.d_model, generator=generator).to(dtype)
    codes = torch.randint(0, config.codebook_size, (rows, 7, config.num_streams), generator=generator)
    with torch.inference_mode():
        fused, fused_cache, fused_steps = _run_steps(decoder, config, encoder_states, codes, fused=True)
        eager, eager_cache, _ = _run_steps(decoder, config, encoder_states, codes, fused=False)
    assert fused_steps == 6  # every step after the first, which fills the cross-attention cache
    # bf16 and int8 steps keep the self-attention cache in bf16, the eager step here too (`update` rounds as the
    # kernel does, to nearest even). fp32/int8: the same products and attention, LayerNorm statistics summed in
    # another order (float64 here, torch's fp32 cascade there): outputs of size ~1 differ by a few fp32 ulps
    # (measured ≤ 7e-7). bf16 rounds at the same points as the eager step and those ulps vanish: identical.
    cache_dtype = torch.float32 if kind == "float32" else torch.bfloat16
    assert fused_cache.self_attention_cache.layers[0]._key_buffer.dtype == cache_dtype
    tolerance = 0.0 if kind == "bfloat16" else 5e-6
    assert_steps_match(fused, eager, fused_cache, eager_cache, (rows, 1, config.d_model), tolerance)


def test_steps_outside_generates_cache_run_layer_by_layer(tiny_model):
    decoder, config = tiny_model.model.decoder, tiny_model.config
    encoder_states = torch.randn(2, 3, config.d_model)
    codes = torch.randint(0, config.codebook_size, (2, 3, config.num_streams))
    calls = []
    with torch.inference_mode(), decoder.packed_weights(2):
        step = decoder._fused_step
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())  # concatenating, not preallocated
        for position in range(3):
            embeds = decoder.embed(codes[:, position : position + 1], position)
            calls.append(step(decoder.layernorm_embedding(embeds), cache, position))
            decoder(embeds, encoder_states, cache=cache, past_length=position)
        assert calls == [None, None, None]
        assert step(torch.zeros(2, 1, config.d_model), None, 0) is None


def test_not_built_for_more_rows_than_the_kernels_take_or_another_activation(make_conditions):
    torch.manual_seed(0)
    config = VisageConfig(d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                          encoder_attention_heads=2, decoder_attention_heads=2)  # fmt: skip
    decoder = VisageForFOA(config).eval().model.decoder
    with decoder.packed_weights(2):
        assert decoder._fused_step is not None
    with decoder.packed_weights(row_kernels.MAX_KERNEL_ROWS + 1):
        assert decoder._fused_step is None
    config.activation_function = "relu"
    relu_decoder = VisageForFOA(config).eval().model.decoder
    with relu_decoder.packed_weights(2):
        assert relu_decoder._fused_step is None


@pytest.mark.parametrize("kind", DTYPES)
def test_generation_is_the_same_with_and_without_the_fused_step(
    tiny_model, make_conditions, monkeypatch, kind
):
    model = _model(tiny_model, kind)
    clip, energy, direction = make_conditions(model.config, batch=1, frames=1, seed=5)
    fused_calls = []
    original_call = fused_step.FusedDecoderStep.__call__

    def count(self, *args):
        result = original_call(self, *args)
        fused_calls.append(result is not None)
        return result

    monkeypatch.setattr(fused_step.FusedDecoderStep, "__call__", count)
    greedy = model.generate(clip, energy, direction, do_sample=False, num_frames=5)
    sampled = model.generate(clip, energy, direction, seed=3, num_frames=5)
    assert sum(fused_calls) == 2 * 10  # 11 steps each, the first layer by layer
    monkeypatch.setattr(fused_step.FusedDecoderStep, "build", classmethod(lambda cls, layers: None))
    assert torch.equal(model.generate(clip, energy, direction, do_sample=False, num_frames=5), greedy)
    assert torch.equal(model.generate(clip, energy, direction, seed=3, num_frames=5), sampled)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.int8])
def test_compile_kernels_compiles_the_fused_step_for_a_weight_dtype(dtype):
    # A fresh process: this one has compiled every kind already.
    script = (
        "import torch; from visage_hf.models import row_kernels as kernels; "
        f"kernels.compile_kernels(torch.{str(dtype).split('.')[1]}); "
        "print([(str(signature[2]), str(signature[7])) for signature in kernels._decoder_layers.signatures])"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    element = {torch.bfloat16: "uint16", torch.int8: "int8"}[dtype]
    compiled = ast.literal_eval(result.stdout)  # (weights, self-attention keys) types per compiled signature
    weights = [keys for weight_type, keys in compiled if f"array({element}, 3d, C)" in weight_type]  # blocked
    # Every such signature takes the fused step's bfloat16 self-attention cache.
    assert weights and all("array(uint16, 4d, C)" in keys for keys in weights)


@pytest.mark.parametrize("kind", DTYPES)
def test_compile_step_kernels_compiles_for_the_models_step_weights(tiny_model, kind, monkeypatch):
    compiled = []
    monkeypatch.setattr(row_kernels, "compile_kernels", compiled.append)
    model = _model(tiny_model, kind)
    row_kernels.compile_step_kernels(model)
    assert compiled == [torch.int8 if kind == "int8" else getattr(torch, kind)]
    monkeypatch.setenv("VISAGE_HF_NO_NUMBA", "1")  # without the kernels there is nothing to compile
    row_kernels.compile_step_kernels(model)
    assert len(compiled) == 1


def test_generations_in_threads_sharing_the_model_get_their_own_codes(tiny_model, make_conditions):
    # As in the Space (two generations at a time, one model): each thread's steps must use its own cache, whatever
    # the other thread does to the decoder's step state meanwhile. Batch 1 and 2: steps of 2 and 4 rows.
    requests = [
        make_conditions(tiny_model.config, batch=batch, frames=1, seed=batch) for batch in (1, 2, 1, 2)
    ]
    settings = dict(do_sample=False, num_frames=12)
    expected = [tiny_model.generate(*conditions, **settings) for conditions in requests]
    results = [None] * len(requests)

    def run(index):
        results[index] = tiny_model.generate(*requests[index], **settings)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for ours, reference in zip(results, expected):
        assert torch.equal(ours, reference)
