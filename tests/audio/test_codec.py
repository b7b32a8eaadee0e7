"""FOACodec: shapes, channel folding, batching/chunking, resampling, descript weight conversion, bad input.

Every check compares against something independent of FOACodec: direct per-channel `DacModel` calls,
scipy's `resample_poly`, an FFT peak, or a descript-style state dict built here by an inverse key map.
"""

import math
import re

import numpy as np
import pytest
import torch
from scipy.signal import resample_poly
from transformers import DacConfig, DacModel

from visage_hf.audio.codec import DAC_44KHZ_REVISION, FOACodec, convert_descript_weights, descript_config

SR = 44100
HOP = 512


def tiny_dac_config() -> DacConfig:
    return DacConfig(
        encoder_hidden_size=8,
        decoder_hidden_size=32,
        downsampling_ratios=[2, 4, 8, 8],
        n_codebooks=9,
        codebook_size=1024,
        codebook_dim=8,
        sampling_rate=SR,
    )


@pytest.fixture(scope="module")
def saved_dac(tmp_path_factory):
    torch.manual_seed(0)
    model = DacModel(tiny_dac_config()).eval()
    directory = tmp_path_factory.mktemp("dac")
    model.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def codec(saved_dac):
    return FOACodec.from_pretrained(saved_dac)


@pytest.fixture(scope="module")
def reference_model(saved_dac):
    return DacModel.from_pretrained(saved_dac).eval()


def noise(*shape, seed=0) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def assert_close_to_peak(actual: torch.Tensor, expected: torch.Tensor, rel: float = 1e-3) -> None:
    """Audio equal to within ``rel`` of the reference's peak: a tolerance that scales with the signal, so a 10 %
    error fails on quiet audio too (the tiny DAC decodes to a peak of ~0.013, where an absolute 1e-5 was
    0.08 % of the peak; on a 5e-5 peak it lets a 10 % error through)."""
    peak = float(expected.abs().max())
    assert peak > 0, "the reference is silent: nothing to compare"
    error = float((actual - expected).abs().max())
    assert error <= rel * peak, (
        f"max error {error:.3g} is {error / peak:.3%} of the peak {peak:.3g} (allowed {rel:.3%})"
    )


def test_the_audio_tolerance_is_relative_to_the_peak():
    quiet = torch.sin(torch.linspace(0, 60, 4000)) * 5e-5
    assert_close_to_peak(quiet * (1 + 1e-4), quiet)
    with pytest.raises(AssertionError):
        assert_close_to_peak(quiet * 1.1, quiet)  # 10 % too loud
    torch.testing.assert_close(
        quiet * 1.1, quiet, rtol=0, atol=1e-5
    )  # what the absolute tolerance let through


def test_five_seconds_give_431_frames_of_9_codebooks(codec):
    codes = codec.encode(noise(4, 5 * SR), SR)
    assert codes.shape == (4, 9, 431) and codes.dtype == torch.int64
    assert int(codes.min()) >= 0 and int(codes.max()) < 1024
    # The original's frame count for a 5 s clip (docs/original-implementation.md §2.3).
    assert codec.num_frames(5 * SR) == 431 == math.ceil(5 * SR / HOP)


def test_encode_and_decode_equal_per_channel_dac_calls(codec, reference_model):
    audio = noise(4, 9000, seed=1)
    codes = codec.encode(audio, SR)
    decoded = codec.decode(codes)

    frames = math.ceil(9000 / HOP)
    with torch.inference_mode():
        for channel in range(4):
            mono = torch.zeros(1, 1, frames * HOP)
            mono[0, 0, :9000] = torch.from_numpy(audio[channel])
            expected = reference_model.encode(mono).audio_codes[0]
            assert torch.equal(codes[channel], expected)
            expected_audio = reference_model.decode(audio_codes=expected[None]).audio_values[0]
            assert_close_to_peak(decoded[channel], expected_audio)
    assert decoded.shape == (4, frames * HOP) and decoded.dtype == torch.float32


def test_batch_axis_matches_clip_by_clip(codec):
    clips = noise(3, 4, 6000, seed=2)
    batched = codec.encode(clips, SR)
    assert batched.shape == (3, 4, 9, math.ceil(6000 / HOP))
    for index in range(3):
        assert torch.equal(batched[index], codec.encode(clips[index], SR))
    decoded = codec.decode(batched)
    assert_close_to_peak(decoded[1], codec.decode(batched[1]))


def test_small_batches_and_time_chunks_give_identical_results(codec, saved_dac):
    audio = noise(2, 4, 60 * HOP - 100, seed=3)
    one_pass = FOACodec(codec.model, chunk_frames=None)
    chunked = FOACodec(codec.model, chunk_frames=7, context_frames=16, batch_size=3)
    codes = one_pass.encode(audio, SR)
    assert torch.equal(chunked.encode(audio, SR), codes)
    assert_close_to_peak(chunked.decode(codes), one_pass.decode(codes))


def test_too_little_context_changes_the_result(codec):
    # Guards the test above: without context the window edges differ, so equality there is not vacuous.
    audio = noise(4, 40 * HOP, seed=4)
    codes = FOACodec(codec.model, chunk_frames=None).encode(audio, SR)
    no_context = FOACodec(codec.model, chunk_frames=5, context_frames=0)
    full = FOACodec(codec.model, chunk_frames=None).decode(codes)
    assert not torch.allclose(no_context.decode(codes), full, atol=1e-4)


def test_fewer_codebooks_are_the_leading_codebooks(codec, reference_model):
    audio = noise(4, 4000, seed=5)
    all_codes = codec.encode(audio, SR)
    coarse = codec.encode(audio, SR, n_codebooks=3)
    assert torch.equal(coarse, all_codes[:, :3])
    with torch.inference_mode():
        expected = reference_model.decode(audio_codes=coarse).audio_values
    assert_close_to_peak(codec.decode(coarse), expected)


def test_48k_input_is_resampled_with_a_polyphase_filter(codec):
    audio48 = noise(4, 48000, seed=6)
    codes = codec.encode(audio48, 48000)
    # 1 s at 48 kHz -> 44100 samples -> ceil(44100 / 512) = 87 frames.
    assert codes.shape == (4, 9, 87)
    audio44 = resample_poly(audio48.astype(np.float64), 147, 160, axis=-1).astype(np.float32)
    assert audio44.shape[-1] == 44100
    assert torch.equal(codes, codec.encode(audio44, SR))


def test_decode_to_48k_and_16k_lengths(codec):
    codes = codec.encode(noise(4, 5 * SR, seed=7), SR)
    assert codec.decode(codes, sample_rate=48000).shape == (4, math.ceil(431 * HOP * 48000 / SR))
    # The original's evaluation length: 5 s at 16 kHz.
    assert codec.decode(codes, sample_rate=16000, num_samples=80000).shape == (4, 80000)


def test_resampling_keeps_a_sine_at_its_frequency(codec):
    from visage_hf.audio.codec import _resample_tensor

    seconds, frequency = 1.0, 1234.0
    time = np.arange(int(48000 * seconds)) / 48000
    sine = torch.from_numpy(np.sin(2 * np.pi * frequency * time).astype(np.float32))[None]
    out = _resample_tensor(sine, 48000, SR)[0].numpy()
    assert out.shape[-1] == 44100
    spectrum = np.abs(np.fft.rfft(out * np.hanning(out.size)))
    peak = np.argmax(spectrum) * SR / out.size
    assert abs(peak - frequency) <= SR / out.size


def test_numpy_and_torch_inputs_agree(codec):
    audio = noise(4, 3000, seed=8)
    assert torch.equal(codec.encode(audio, SR), codec.encode(torch.from_numpy(audio), SR))
    assert torch.equal(codec.encode(audio.astype(np.float64), SR), codec.encode(audio, SR))
    reversed_in_time = audio[:, ::-1]  # a negative-stride view
    assert torch.equal(codec.encode(reversed_in_time, SR), codec.encode(reversed_in_time.copy(), SR))


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.zeros((2, 1000), np.float32), "shape"),
        (np.zeros((1000, 4), np.float32), "transpose"),
        (np.zeros((4, 1000), np.int16), "floating-point"),
        (np.full((4, 1000), np.nan, np.float32), "NaN"),
        (np.zeros((4, 0), np.float32), "at least one sample"),
        ([[0.0] * 10] * 4, "numpy array"),
    ],
)
def test_bad_audio_is_rejected(codec, audio, message):
    with pytest.raises(ValueError, match=message):
        codec.encode(audio, SR)


def test_bad_arguments_are_rejected(codec):
    audio = noise(4, 1000)
    with pytest.raises(ValueError, match="sample_rate"):
        codec.encode(audio, 0)
    with pytest.raises(ValueError, match="at most 9"):
        codec.encode(audio, SR, n_codebooks=10)
    codes = torch.zeros(4, 9, 3, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\[0, 1023\]"):
        codec.decode(codes + 1024)
    with pytest.raises(ValueError, match="integer"):
        codec.decode(codes.float())
    with pytest.raises(ValueError, match="shape"):
        codec.decode(torch.zeros(36, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="codebooks"):
        codec.decode(torch.zeros(4, 10, 3, dtype=torch.long))


def test_default_repo_uses_the_pinned_revision(monkeypatch):
    seen = {}

    def fake_from_pretrained(repo, **kwargs):
        seen.update(kwargs, repo=repo)
        return DacModel(tiny_dac_config())

    monkeypatch.setattr(DacModel, "from_pretrained", staticmethod(fake_from_pretrained))
    FOACodec.from_pretrained()
    assert seen["repo"] == "descript/dac_44khz" and seen["revision"] == DAC_44KHZ_REVISION
    assert re.fullmatch(r"[0-9a-f]{40}", DAC_44KHZ_REVISION)


# ----------------------------------------------------------------------------- descript-audio-codec weights

# Inverse of the descript -> transformers key map, written from descript's module layout
# (dac/model/dac.py: ResidualUnit = Sequential(Snake, WNConv k7, Snake, WNConv k1); EncoderBlock =
# Sequential(Res, Res, Res, Snake, WNConv); DecoderBlock = Sequential(Snake, WNConvT, Res, Res, Res)).
_PARTS = {"snake1": 0, "conv1": 1, "snake2": 2, "conv2": 3}


def to_descript_name(name: str, num_blocks: int) -> str:
    rules = [
        (r"^encoder\.conv1\.", lambda m: "encoder.block.0."),
        (
            r"^encoder\.block\.(\d+)\.res_unit(\d)\.(\w+)\.",
            lambda m: f"encoder.block.{int(m[1]) + 1}.block.{int(m[2]) - 1}.block.{_PARTS[m[3]]}.",
        ),
        (r"^encoder\.block\.(\d+)\.snake1\.", lambda m: f"encoder.block.{int(m[1]) + 1}.block.3."),
        (r"^encoder\.block\.(\d+)\.conv1\.", lambda m: f"encoder.block.{int(m[1]) + 1}.block.4."),
        (r"^encoder\.snake1\.", lambda m: f"encoder.block.{num_blocks + 1}."),
        (r"^encoder\.conv2\.", lambda m: f"encoder.block.{num_blocks + 2}."),
        (r"^decoder\.conv1\.", lambda m: "decoder.model.0."),
        (r"^decoder\.block\.(\d+)\.snake1\.", lambda m: f"decoder.model.{int(m[1]) + 1}.block.0."),
        (r"^decoder\.block\.(\d+)\.conv_t1\.", lambda m: f"decoder.model.{int(m[1]) + 1}.block.1."),
        (
            r"^decoder\.block\.(\d+)\.res_unit(\d)\.(\w+)\.",
            lambda m: f"decoder.model.{int(m[1]) + 1}.block.{int(m[2]) + 1}.block.{_PARTS[m[3]]}.",
        ),
        (r"^decoder\.snake1\.", lambda m: f"decoder.model.{num_blocks + 1}."),
        (r"^decoder\.conv2\.", lambda m: f"decoder.model.{num_blocks + 2}."),
    ]
    for pattern, replacement in rules:
        renamed, count = re.subn(pattern, replacement, name)
        if count:
            return renamed
    assert name.startswith("quantizer."), name
    return name


def descript_state_dict(model: DacModel, style: str = "weight_g") -> dict:
    """A descript-style state dict of ``model``: weight norm split into g/v, v rescaled per row, descript names."""
    generator = torch.Generator().manual_seed(1)
    normed = DacModel(model.config)
    normed.load_state_dict(model.state_dict())
    normed.apply_weight_norm()
    out = {}
    for name, tensor in normed.state_dict().items():
        if name.endswith("parametrizations.weight.original1"):
            # Weight norm is invariant to a positive scale of v along the kept axis: a fold that ignored g or
            # normalised over the wrong axes would now give the wrong weight.
            scale = torch.rand(tensor.shape[0], *[1] * (tensor.ndim - 1), generator=generator) * 3 + 0.5
            tensor = tensor * scale
        if style == "weight_g":
            name = name.replace("parametrizations.weight.original0", "weight_g").replace(
                "parametrizations.weight.original1", "weight_v"
            )
        out[to_descript_name(name, len(model.config.downsampling_ratios))] = tensor.clone()
    return out


@pytest.mark.parametrize("style", ["weight_g", "parametrizations"])
def test_descript_weights_convert_to_identical_codes_and_audio(reference_model, style):
    descript = descript_state_dict(reference_model, style)
    assert "encoder.block.1.block.0.block.1.weight_v" in descript or style != "weight_g"
    assert "decoder.model.1.block.1.bias" in descript  # a transposed conv's bias under descript's name

    converted = DacModel(reference_model.config)
    converted.load_state_dict(convert_descript_weights(descript), strict=True)
    converted.eval()
    audio = torch.from_numpy(noise(4, 1, 20 * HOP, seed=9))
    with torch.inference_mode():
        expected = reference_model.encode(audio).audio_codes
        got = converted.encode(audio).audio_codes
        assert torch.equal(got, expected)
        assert_close_to_peak(
            converted.decode(audio_codes=got).audio_values,
            reference_model.decode(audio_codes=expected).audio_values,
        )


def test_descript_checkpoint_file_loads_through_the_codec(reference_model, codec, tmp_path):
    kwargs = {
        "encoder_dim": 8,
        "encoder_rates": [2, 4, 8, 8],
        "decoder_dim": 32,
        "decoder_rates": [8, 8, 4, 2],
        "n_codebooks": 9,
        "codebook_size": 1024,
        "codebook_dim": 8,
        "sample_rate": SR,
    }
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": descript_state_dict(reference_model), "metadata": {"kwargs": kwargs}}, path)
    loaded = FOACodec.from_descript_checkpoint(path)
    audio = noise(4, 5000, seed=10)
    assert torch.equal(loaded.encode(audio, SR), codec.encode(audio, SR))


def test_descript_converter_errors():
    with pytest.raises(ValueError, match="unexpected parameter"):
        convert_descript_weights(
            {"encoder.block.1.block.0.block.1.bias": torch.zeros(1), "mystery.weight": torch.zeros(1)}
        )
    with pytest.raises(ValueError, match="weight norm"):
        convert_descript_weights({"encoder.block.1.block.4.weight_g": torch.ones(2, 1, 1)})
    with pytest.raises(ValueError, match="decoder_rates"):
        descript_config({"encoder_rates": [2, 4, 8, 8], "decoder_rates": [8, 8, 2, 4]})
    assert descript_config({}).sampling_rate == 44100  # descript's defaults are the 44.1 kHz model
    with pytest.raises(FileNotFoundError):
        FOACodec.from_descript_checkpoint("/nonexistent/weights.pth")
