"""``dtype="int8"`` through `VisagePipeline.from_pretrained` and `load_pipeline`: the decoder's step products are
int8 inside generation, everything else stays float, and the pipeline runs to audio."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from visage_hf.models.quantization import is_quantized
from visage_hf.pipelines.loading import PipelineLoadError, load_pipeline
from visage_hf.pipelines.pipeline_visage import VisagePipeline
from visage_hf.pipelines.tiny import tiny_random_components

from ..models.test_quantization import INT8_PRODUCTS, int8_generation_spy


def test_saved_pipeline_loads_int8_and_generates_with_int8_products(tmp_path, monkeypatch):
    VisagePipeline(**tiny_random_components(seed=0)).save_pretrained(tmp_path / "pipe")
    pipe = VisagePipeline.from_pretrained(tmp_path / "pipe", dtype="int8")
    pipe.set_progress_bar_config(disable=True)
    assert is_quantized(pipe.foa_model) and not is_quantized(pipe.image_encoder)
    assert pipe.image_encoder.dtype == torch.float32 and pipe.codec.dtype == torch.float32
    calls = int8_generation_spy(monkeypatch)
    frames = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    output = pipe(frames, 30.0, 0.0, duration=0.5, seed=0)
    assert calls and all(seen == INT8_PRODUCTS for seen in calls)
    assert output.audio.shape == (1, 4, round(0.5 * pipe.sample_rate)) and np.isfinite(output.audio).all()


def test_load_pipeline_int8_quantizes_after_moving_and_names_int8_in_errors():
    pipe = load_pipeline("tiny-random", "cpu", "int8", quiet=True)
    assert pipe.foa_model.model.decoder.layers[0].self_attn.q_proj.weight.dtype == torch.int8
    assert pipe.foa_model.model.encoder.layers[0].self_attn.q_proj.weight.dtype == torch.float32
    with pytest.raises(PipelineLoadError, match="int8"):
        load_pipeline("tiny-random", "cpu", "int4", quiet=True)
