"""The fast DAC path (visage_hf.audio.fast_dac) against transformers' own ``DacModel`` on a small random DAC.

The reference is ``DacModel.encode`` / ``decode`` and ``Snake1d`` themselves (independent of our code): codes
must be identical, audio within 1e-4 of its peak. Snake's α and the biases are randomised so that a wrong
α, reciprocal or bias would show (transformers initialises α to 1 and biases to 0).
"""

import numpy as np
import pytest
import torch
from transformers import DacModel
from transformers.models.dac.modeling_dac import Snake1d

from visage_hf.audio import fast_dac
from visage_hf.audio.codec import FOACodec

from .test_codec import tiny_dac_config

SR = 44100
HOP = 512


@pytest.fixture(scope="module")
def model() -> DacModel:
    torch.manual_seed(0)
    model = DacModel(tiny_dac_config()).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, Snake1d):
                module.alpha.copy_(0.2 + 2 * torch.rand(module.alpha.shape, generator=generator))
            elif isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)) and module.bias is not None:
                module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
    return model


def test_snake_is_bit_identical_to_transformers_snake(model):
    module = model.decoder.block[1].snake1
    hidden = 3 * torch.randn(2, module.alpha.shape[1], 777, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = module(hidden)
        assert torch.equal(fast_dac.snake(hidden, module), expected)
        # The channels-last 4-D form the decoder uses gives the same values.
        hidden_2d = hidden.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        assert torch.equal(fast_dac.snake(hidden_2d, module).squeeze(2), expected)
    assert not torch.equal(expected, hidden)  # the activation did something


def test_encoder_latents_and_codes_are_identical(model):
    audio = 0.3 * torch.randn(3, 1, 20 * HOP, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        assert torch.equal(fast_dac.encoder_forward(model.encoder, audio), model.encoder(audio))
        expected = model.encode(audio, n_quantizers=6).audio_codes
        assert torch.equal(fast_dac.encode_codes(model, audio, 6), expected)


def test_decoded_audio_is_within_1e_4_of_peak(model):
    codes = torch.randint(0, 1024, (3, 9, 23), generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        expected = model.decode(audio_codes=codes).audio_values
        audio = fast_dac.decode_codes(model, codes)
    assert audio.shape == expected.shape == (3, 23 * HOP)
    assert audio.is_contiguous()
    peak = float(expected.abs().max())
    assert peak > 0.01
    assert float((audio - expected).abs().max()) <= 1e-4 * peak


def test_foa_codec_fast_and_plain_paths_agree(model):
    audio = (0.3 * np.random.default_rng(5).standard_normal((2, 4, 7000))).astype(np.float32)
    fast, plain = FOACodec(model, batch_size=3), FOACodec(model, batch_size=3, fast=False)
    assert fast.fast and not plain.fast
    codes = fast.encode(audio, SR)
    assert torch.equal(codes, plain.encode(audio, SR))
    expected = plain.decode(codes)
    decoded = fast.decode(codes)
    assert decoded.shape == expected.shape == (2, 4, 14 * HOP)
    assert float((decoded - expected).abs().max()) <= 1e-4 * float(expected.abs().max())
