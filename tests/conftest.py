"""Shared fixtures: tiny random ViSAGe models (full 4 × 9 stream layout) and matching conditions.

Any test module may use `tiny_config`, `tiny_model`, `tiny_mono_model` and `make_conditions`; every test runs
with one torch thread (`single_torch_thread`).
"""

from __future__ import annotations

import pytest
import torch

from visage_hf.configuration_visage import VisageConfig
from visage_hf.modeling_visage import VisageForFOA


def _tiny_config(**overrides) -> VisageConfig:
    return VisageConfig.tiny(dropout=0.0, **overrides)


@pytest.fixture
def tiny_config() -> VisageConfig:
    """d_model 32, 1 encoder / 2 decoder layers, 36 streams of 1024 codes, 87 decoder positions."""
    return _tiny_config()


@pytest.fixture
def tiny_model(tiny_config) -> VisageForFOA:
    """A randomly initialised FOA model in eval mode (seeded, so every test sees the same weights)."""
    torch.manual_seed(1234)
    model = VisageForFOA(tiny_config).eval()
    _randomise_special_vectors(model)
    return model


@pytest.fixture
def tiny_mono_model() -> VisageForFOA:
    """The mono variant (9 streams, no energy map / direction)."""
    torch.manual_seed(4321)
    model = VisageForFOA(_tiny_config(num_channels=1)).eval()
    _randomise_special_vectors(model)
    return model


@torch.no_grad()
def _randomise_special_vectors(model: VisageForFOA) -> None:
    # bos/eos/nulls start at zero; random values make tests sensitive to where each one is used.
    for name, parameter in model.named_parameters():
        if name.endswith(("bos", "eos")) or name.startswith("null_"):
            parameter.normal_(0.0, 0.5)


@pytest.fixture
def make_conditions():
    """make_conditions(config, batch, frames, seed) -> (clip_features, energy_map, direction); the mono variant
    gets (clip_features, None, None)."""

    def make(config: VisageConfig, batch: int = 2, frames: int = 1, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        clip = torch.randn(batch, frames, config.clip_dim, generator=generator)
        if config.is_mono:
            return clip, None, None
        energy = torch.rand(batch, frames, config.energy_map_dim, generator=generator)
        energy = energy / energy.sum(-1, keepdim=True)
        direction = torch.nn.functional.normalize(
            torch.randn(batch, config.direction_dim, generator=generator), dim=-1
        )
        return clip, energy, direction

    return make


@pytest.fixture(autouse=True, scope="session")
def single_torch_thread():
    """The whole suite runs with one torch thread: tiny models gain nothing from a thread pool, and on a busy
    CPU every small parallel op can stall waiting for a descheduled worker thread (measured 5-30x)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
