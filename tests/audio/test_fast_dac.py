"""The fast DAC path (visage_hf.audio.fast_dac) against transformers' own ``DacModel`` on a small random DAC.

The reference is ``DacModel.encode`` / ``decode`` and ``Snake1d`` themselves (independent of our code): codes
must be identical, audio within 1e-4 of its peak. Snake's α and the biases are randomised so that a wrong
α, reciprocal or bias would show (transformers initialises α to 1 and biases to 0).
"""

import copy
import math

import numpy as np
import pytest
import torch
from transformers import DacModel
from transformers.models.dac.modeling_dac import Snake1d

from visage_hf.audio import fast_dac, snake_kernels, winograd
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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_foa_codec_fast_path_decodes_on_cuda(model, monkeypatch):
    # TF32 convolutions (cuDNN's default) round both paths at ~1e-3, each its own way: off, to compare the maths.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    cuda_model = copy.deepcopy(model).to("cuda")
    codes = torch.randint(0, 1024, (2, 4, 9, 23), generator=torch.Generator().manual_seed(6))
    decoded = FOACodec(cuda_model).decode(codes)
    expected = FOACodec(model, fast=False).decode(codes)
    assert decoded.device.type == "cuda" and decoded.shape == expected.shape == (2, 4, 23 * HOP)
    assert float((decoded.cpu() - expected).abs().max()) <= 1e-4 * float(expected.abs().max())


# ----------------------------------------------------------------------------- decoder kernels


def test_numba_snake_matches_transformers_snake(model):
    pytest.importorskip("numba")
    module = model.decoder.block[2].snake1
    channels = module.alpha.shape[1]
    hidden = 20 * torch.randn(2, channels, 301, generator=torch.Generator().manual_seed(6))  # |αx| up to ~200
    with torch.inference_mode():
        expected = module(hidden)
        hidden_2d = hidden.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        out = snake_kernels.snake_channels_last(hidden_2d, module.alpha)
        torch.testing.assert_close(out.squeeze(2), expected, rtol=1e-6, atol=2e-5)
        # A time slice of a batch (rows of each item contiguous, items apart), written in place.
        window = hidden_2d[..., 50:250]
        snake_kernels.snake_channels_last(window, module.alpha, out=window)
        torch.testing.assert_close(
            hidden_2d[..., 50:250].squeeze(2), expected[..., 50:250], rtol=1e-6, atol=2e-5
        )
        assert torch.equal(hidden_2d[..., :50].squeeze(2), hidden[..., :50])  # outside the window: untouched


def test_snake_kernel_sine_squared_is_float32_accurate():
    """With ``scale = 1`` and ``|x| <= 1`` the output is ``O(1)``, so the reduction modulo π (``|αx|`` up to
    5000 here) and the polynomial are checked to a few float32 ulps against float64's ``sin``."""
    pytest.importorskip("numba")
    generator = np.random.default_rng(11)
    x = generator.uniform(-1, 1, (513, 40)).astype(np.float32)
    alpha = np.geomspace(0.01, 5000, 40).astype(np.float32)
    out = np.empty_like(x)
    snake_kernels.snake_rows(x, alpha, np.ones(40, np.float32), out)
    angle = (alpha * x).astype(np.float64)  # αx rounded to float32 first, as torch computes it
    expected = x + np.sin(angle) ** 2
    assert np.abs(out - expected).max() <= 5e-7


@pytest.mark.parametrize("stride", [2, 4, 8])
def test_transposed_convolution_as_phase_convolution(stride):
    generator = torch.Generator().manual_seed(stride)
    conv = torch.nn.ConvTranspose1d(6, 5, 2 * stride, stride, padding=(stride + 1) // 2).eval()
    with torch.no_grad():
        conv.bias.copy_(torch.randn(5, generator=generator))
    hidden = torch.randn(2, 6, 19, generator=generator)
    with torch.inference_mode():
        expected = conv(hidden)
        hidden_2d = hidden.unsqueeze(2).contiguous(memory_format=torch.channels_last)
        out = fast_dac._transposed_conv2d(hidden_2d, conv)
    assert out.shape == (2, 5, 1, 19 * stride)
    assert out[0].permute(1, 2, 0).is_contiguous()  # each item time-major, channels innermost (no copy made)
    torch.testing.assert_close(out.squeeze(2), expected, rtol=1e-5, atol=1e-6)


def test_receptive_radius_bounds_what_an_input_sample_reaches(model, monkeypatch):
    """Perturb one input sample of the decoder's tail: the output may change only within the claimed radius.

    Direct convolutions: a Winograd tile mixes its inputs' rounding into all of its outputs, so there the
    samples just outside the radius move by float rounding (the windows stay exact up to rounding).
    """
    monkeypatch.setattr(fast_dac, "WINOGRAD_TILE", None)
    decoder, first_block = model.decoder, 1
    rate = math.prod(block.conv_t1.stride[0] for block in decoder.block[first_block:])
    radius = fast_dac.receptive_radius(decoder, first_block)
    channels = decoder.block[first_block].conv_t1.in_channels
    hidden = torch.randn(1, channels, 1, 60, generator=torch.Generator().manual_seed(7))
    hidden = hidden.contiguous(memory_format=torch.channels_last)
    bumped = hidden.clone()
    bumped[..., 30] += 5.0
    with torch.inference_mode():
        change = (
            fast_dac._decoder_tail(bumped, decoder, 1) - fast_dac._decoder_tail(hidden, decoder, 1)
        ).abs()
    reached = torch.nonzero(change.flatten()).flatten()  # outside the receptive field: bit-identical
    first, last = int(reached.min()) / rate, int(reached.max()) / rate
    assert 30 - radius <= first and last < 31 + radius
    assert first < 30 - (radius - 4) and last >= 30 + (radius - 4)  # and the radius is not far too generous


@pytest.mark.parametrize("chunk_samples", [1024, 3000])
def test_decoding_in_time_windows_matches_one_pass(model, chunk_samples):
    codes = torch.randint(0, 1024, (2, 9, 37), generator=torch.Generator().manual_seed(8))
    with torch.inference_mode():
        expected = model.decode(audio_codes=codes).audio_values
        whole = fast_dac.decode_codes(model, codes, chunk_samples=None)
        windowed = fast_dac.decode_codes(model, codes, chunk_samples=chunk_samples)
    peak = float(expected.abs().max())
    assert windowed.shape == expected.shape == (2, 37 * HOP)
    assert float((windowed - whole).abs().max()) <= 1e-6 * peak  # float rounding only
    assert float((windowed - expected).abs().max()) <= 1e-4 * peak


def test_decoder_falls_back_to_torch_without_numba(model, monkeypatch):
    def unavailable(*args, **kwargs):
        raise AssertionError("the numba kernel ran although numba is marked unavailable")

    monkeypatch.setattr(snake_kernels, "NUMBA_AVAILABLE", False)
    monkeypatch.setattr(snake_kernels, "snake_channels_last", unavailable)
    monkeypatch.setattr(winograd, "NUMBA_AVAILABLE", False)  # Winograd's transforms are numba kernels too
    monkeypatch.setattr(winograd, "winograd_conv", unavailable)
    codes = torch.randint(0, 1024, (1, 9, 37), generator=torch.Generator().manual_seed(9))
    with torch.inference_mode():
        expected = model.decode(audio_codes=codes).audio_values
        audio = fast_dac.decode_codes(model, codes, chunk_samples=2048)
    assert float((audio - expected).abs().max()) <= 1e-4 * float(expected.abs().max())


def test_prepared_weights_follow_in_place_edits(model):
    """The re-laid-out weights are cached per module; editing the model's weights must not leave them stale."""
    copy = DacModel(model.config).eval()
    copy.load_state_dict(model.state_dict())
    codes = torch.randint(0, 1024, (1, 9, 11), generator=torch.Generator().manual_seed(10))
    with torch.inference_mode():
        fast_dac.decode_codes(copy, codes)  # fills the cache
    with torch.no_grad():
        copy.decoder.block[1].conv_t1.weight.mul_(-1.5)
        copy.decoder.block[2].res_unit1.conv1.weight.mul_(0.5)
        copy.decoder.conv1.bias.add_(0.3)
    with torch.inference_mode():
        expected = copy.decode(audio_codes=codes).audio_values
        audio = fast_dac.decode_codes(copy, codes)
    assert float((audio - expected).abs().max()) <= 1e-4 * float(expected.abs().max())
