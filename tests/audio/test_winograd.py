"""Winograd ``F(m, r)`` convolution (visage_hf.audio.winograd) against direct convolution.

References: the correlation ``Σ_k g[k]·x[i + k]`` written out in float64, and ``torch.nn.functional.conv1d``. In
float64 the tiled convolution must match ``conv1d`` to ~1e-12, so any slip in the tiling, dilation phases, zero
padding, windows or bias shows; in float32 the bound is the transforms' rounding (see
``test_float32_conv_error_is_bounded``).
"""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from visage_hf.audio import fast_dac, winograd

pytest.importorskip("numba")


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.unsqueeze(2).contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize(("m", "r"), [(2, 7), (4, 7), (6, 7), (2, 3)])
def test_matrices_compute_the_correlation_in_float64(m, r):
    at, g, bt = winograd.winograd_matrices(m, r, winograd.interpolation_points(m, r))
    n = m + r - 1
    assert at.shape == (m, n) and g.shape == (n, r) and bt.shape == (n, n)
    generator = np.random.default_rng(m * 10 + r)
    for _ in range(5):
        kernel, x = generator.standard_normal(r), generator.standard_normal(n)
        expected = [sum(kernel[k] * x[i + k] for k in range(r)) for i in range(m)]
        np.testing.assert_allclose(at @ ((g @ kernel) * (bt @ x)), expected, rtol=0, atol=1e-12)


def test_matrices_reject_a_wrong_number_of_points():
    with pytest.raises(ValueError, match="needs 9 distinct finite points"):
        winograd.winograd_matrices(4, 7, (0, 1, -1, 2, -2, 0.5, -0.5, 3, 3))
    with pytest.raises(ValueError, match=r"F\(8, 7\)"):
        winograd.interpolation_points(8, 7)


@pytest.mark.parametrize(("m", "r"), [(4, 3), (3, 5)])
def test_other_kernel_sizes(m, r):
    generator = torch.Generator().manual_seed(m * 10 + r)
    weight = torch.randn(3, 2, r, generator=generator, dtype=torch.float64)
    x = torch.randn(1, 2, 41, generator=generator, dtype=torch.float64)
    expected = F.conv1d(x, weight, None, padding=r // 2 * 2, dilation=2)
    out = winograd.winograd_conv(
        _channels_last(x), winograd.winograd_weight(weight, m), None, m, 2, r // 2 * 2
    )
    torch.testing.assert_close(out.squeeze(2), expected, rtol=0, atol=1e-11)


@pytest.mark.parametrize("m", [2, 4, 6])
@pytest.mark.parametrize("dilation", [1, 3, 9])
@pytest.mark.parametrize("length", [3, 11, 97])
def test_float64_conv_matches_conv1d(m, dilation, length):
    """Odd lengths, lengths shorter than one tile (and than the dilated kernel), batch of 2, "same" padding."""
    generator = torch.Generator().manual_seed(m * 1000 + dilation * 100 + length)
    weight = torch.randn(5, 4, 7, generator=generator, dtype=torch.float64)
    bias = torch.randn(5, generator=generator, dtype=torch.float64)
    x = torch.randn(2, 4, length, generator=generator, dtype=torch.float64)
    expected = F.conv1d(x, weight, bias, padding=3 * dilation, dilation=dilation)
    out = winograd.winograd_conv(
        _channels_last(x), winograd.winograd_weight(weight, m), bias, m, dilation, 3 * dilation
    )
    assert out.shape == (2, 5, 1, length)
    assert out[0].permute(1, 2, 0).is_contiguous()  # channels-last, like the decoder's other layers
    torch.testing.assert_close(out.squeeze(2), expected, rtol=0, atol=1e-11)


@pytest.mark.parametrize("padding", [0, 2, 13])
def test_other_paddings_windows_and_no_bias(padding, monkeypatch):
    """Output lengths that differ from the input's; several windows (a ragged last one); no bias."""
    monkeypatch.setattr(winograd, "WINDOW_BYTES", 8 * 4 * 10 * 3 * 3)  # 3 tiles per window
    generator = torch.Generator().manual_seed(padding)
    weight = torch.randn(6, 3, 7, generator=generator, dtype=torch.float64)
    x = torch.randn(2, 3, 151, generator=generator, dtype=torch.float64)
    expected = F.conv1d(x, weight, None, padding=padding, dilation=3)
    out = winograd.winograd_conv(_channels_last(x), winograd.winograd_weight(weight, 4), None, 4, 3, padding)
    torch.testing.assert_close(out.squeeze(2), expected, rtol=0, atol=1e-11)


def test_a_time_window_of_a_batch_is_read_in_place():
    """The decoder passes time slices of a batch (items apart in memory): each item's own samples are used."""
    generator = torch.Generator().manual_seed(3)
    weight = torch.randn(4, 4, 7, generator=generator, dtype=torch.float64)
    x = torch.randn(3, 4, 80, generator=generator, dtype=torch.float64)
    window = _channels_last(x)[..., 10:60]
    out = winograd.winograd_conv(window, winograd.winograd_weight(weight, 6), None, 6, 1, 3)
    torch.testing.assert_close(
        out.squeeze(2), F.conv1d(x[..., 10:60], weight, None, padding=3), rtol=0, atol=1e-11
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unrolled_transforms_equal_the_general_loops_bit_for_bit(dtype):
    """F(6, 7)'s 12-point tiles inside the signal take the spelled-out sums; they must give exactly the general
    loops' values (same terms, same order), while edge tiles and ragged ends take the general loops either way."""
    m, dilation, channels, length, padding = 6, 3, 5, 200, 9
    at, bt = winograd._transforms(m, 7, torch.float32 if dtype == np.float32 else torch.float64)
    forward, backward = winograd._compiled()
    generator = np.random.default_rng(7)
    x = generator.standard_normal(length * channels).astype(dtype)
    tiles, run = -(-length // (m * dilation)), dilation * channels
    zeros = np.zeros(run, dtype)
    transformed = {}
    for unrolled in (False, True):
        v = np.full((m + 6, tiles, run), np.nan, dtype)
        forward(x, bt, m, dilation, padding, 0, v, zeros, unrolled)
        transformed[unrolled] = v
    np.testing.assert_array_equal(transformed[True], transformed[False])
    assert not np.isnan(transformed[True]).any()

    bias_run = generator.standard_normal(run).astype(dtype)
    outputs = {}
    for unrolled in (False, True):
        y = np.full(length * channels - 7, np.nan, dtype)  # a ragged last tile
        backward(transformed[False], at, bias_run, 0, y, unrolled)
        outputs[unrolled] = y
    np.testing.assert_array_equal(outputs[True], outputs[False])
    assert not np.isnan(outputs[True]).any()


@pytest.mark.parametrize("m", [2, 4, 6])
def test_float32_conv_error_is_bounded(m):
    """float32 against float64 ``conv1d`` on a decoder-like 96-channel layer (fan-in-scaled weights, unit inputs).

    Bound: 2e-5 of the output's peak. The transforms' coefficients (|Bᵀ| up to ~22, |Aᵀ| up to 32 for F(6, 7))
    amplify float32 rounding (6e-8) by a few hundred at most: measured 1e-6 (F(2, 7)) to 7e-6 (F(6, 7)), where
    direct float32 convolution gives ~5e-7. A decoder's 12 such layers then stay well inside the 1e-4-of-peak
    audio tolerance (tests/audio/test_fast_dac.py).
    """
    generator = torch.Generator().manual_seed(m)
    weight = torch.randn(96, 96, 7, generator=generator, dtype=torch.float64) / (7 * 96) ** 0.5
    bias = torch.randn(96, generator=generator, dtype=torch.float64)
    x = torch.randn(1, 96, 500, generator=generator, dtype=torch.float64)
    expected = F.conv1d(x, weight, bias, padding=9, dilation=3)
    out = winograd.winograd_conv(
        _channels_last(x.float()), winograd.winograd_weight(weight.float(), m), bias.float(), m, 3, 9
    )
    error = float((out.squeeze(2).double() - expected).abs().max() / expected.abs().max())
    assert error <= 2e-5


def test_decoder_uses_winograd_for_the_kernel_7_convolutions(monkeypatch):
    """fast_dac routes each residual unit's kernel-7 conv (and only those) through winograd_conv."""
    calls = []
    original = winograd.winograd_conv

    def spy(hidden, u, bias, m, dilation, padding):
        calls.append((u.shape[0] - m + 1, dilation))
        return original(hidden, u, bias, m, dilation, padding)

    monkeypatch.setattr(winograd, "winograd_conv", spy)
    torch.manual_seed(5)
    conv, narrow = torch.nn.Conv1d(8, 8, 7, dilation=3, padding=9), torch.nn.Conv1d(8, 8, 3, padding=1)
    hidden = _channels_last(torch.randn(1, 8, 40, generator=torch.Generator().manual_seed(4)))
    with torch.inference_mode():
        out = fast_dac._kernel7_conv2d(hidden, conv)
        expected = conv(hidden.squeeze(2))
        direct = fast_dac._kernel7_conv2d(hidden, narrow)  # kernel 3: the direct convolution
        expected_direct = narrow(hidden.squeeze(2))
    assert calls == [(7, 3)]
    assert float((out.squeeze(2) - expected).abs().max()) <= 2e-5 * float(expected.abs().max())  # as above
    torch.testing.assert_close(direct.squeeze(2), expected_direct, rtol=1e-5, atol=1e-5)
