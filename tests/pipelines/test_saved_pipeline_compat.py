"""A pipeline saved by visage-hf 0.1.0 (tests/fixtures/pipeline_v0_1_0, see its README) loads with today's code and
generates the codes 0.1.0 generated from it with the same seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from visage_hf import VisagePipeline

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "pipeline_v0_1_0"


def test_fixture_names_the_old_module_path():
    index = json.loads((FIXTURE / "model_index.json").read_text())
    assert index["foa_model"] == ["visage_hf.modeling_visage", "VisageForFOA"]


def test_pipeline_saved_by_0_1_0_generates_the_same_codes():
    pipe = VisagePipeline.from_pretrained(FIXTURE)
    frames = np.random.default_rng(0).integers(0, 256, size=(8, 64, 96, 3), dtype=np.uint8)
    out = pipe(frames, azimuth=30, elevation=10, seed=7, progress=False)
    expected = torch.from_numpy(np.load(FIXTURE / "expected_codes.npy").astype(np.int64))
    assert out.codes.shape == expected.shape == (1, 4, 9, 173)
    assert torch.equal(out.codes, expected)
