"""A tiny random `VisagePipeline`, built offline in about a second: for checking the plumbing, never for sound.

Every component has the real interfaces and layouts, only small and randomly initialised:

* CLIP vision tower with projection: 1 layer, hidden 32, 56 px images in 8 px patches, so the patch grid is the
  real 7 × 7 (energy map of 49) and the projection the real 512;
* `VisageForFOA`: d_model 32, 1 + 2 layers, the full 4 × 9 code streams of 1024 codes and the real window
  (20 video frames at 4 fps, 861 decoder positions = 430 codec frames of 44100 / 512);
* DAC: 44.1 kHz, hop 512 (strides 2·4·8·8), 9 codebooks of 1024, tiny hidden sizes.

Its output is noise: different in each of the four channels, about -20 dBFS RMS, no DC offset (the codec is
re-drawn so that its output follows the codes). `visage generate --model tiny-random` (or ``VISAGE_MODEL=tiny-random``) uses it.
"""

from __future__ import annotations

import importlib

import torch
from torch import nn
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    DacConfig,
    DacModel,
)

from ..models.configuration_visage import VisageConfig
from ..models.modeling_visage import VisageForFOA

__all__ = ["TINY_RANDOM", "TINY_RANDOM_WARNING", "build_tiny_random_pipeline", "tiny_random_components"]  # noqa: F822 (served by __getattr__)

TINY_RANDOM = "tiny-random"
TINY_RANDOM_WARNING = (
    "'tiny-random' is a tiny pipeline with RANDOM weights: its audio is noise. It only checks the plumbing; "
    "use the released model (the default) or a trained checkpoint for real sound."
)
_IMAGE_SIZE = 56  # 56 / 8 = 7 patches a side: the real 7 × 7 energy-map grid


# Output gain of the tiny codec's last convolution (see _make_audible).
_TINY_CODEC_GAIN = 0.9


def tiny_random_components(
    seed: int = 0, window_video_frames: int = 20, mode: str = "corrected"
) -> dict[str, object]:
    """The four pipeline components (``image_encoder``, ``image_processor``, ``foa_model``, ``codec``), seeded.

    ``window_video_frames`` shrinks the model's window (decoder positions follow: ``2·frames + 1`` for the
    frames of that video span), e.g. 4 = 1 s windows to exercise windowed generation cheaply.
    """
    torch.manual_seed(seed)
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=_IMAGE_SIZE,
            patch_size=8,
            projection_dim=512,
        )
    ).eval()
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": _IMAGE_SIZE}, crop_size={"height": _IMAGE_SIZE, "width": _IMAGE_SIZE}
    )
    probe = VisageConfig.tiny()
    frames = probe.frames_for_video_frames(window_video_frames)
    config = VisageConfig.tiny(
        dropout=0.0,
        max_source_positions=window_video_frames,
        max_target_positions=probe.pattern_steps(frames),
        mode=mode,
    )
    foa_model = VisageForFOA(config).eval()
    with torch.no_grad():  # bos/eos/nulls start at zero; random values make guidance branches differ
        for name, parameter in foa_model.named_parameters():
            if name.endswith(("bos", "eos")) or name.startswith("null_"):
                parameter.normal_(0.0, 0.5)
    codec = DacModel(
        DacConfig(
            encoder_hidden_size=8,
            decoder_hidden_size=16,  # the last decoder stage has decoder_hidden_size / 16 channels: 16 is the least
            downsampling_ratios=[2, 4, 8, 8],
            upsampling_ratios=[8, 8, 4, 2],
            n_codebooks=9,
            codebook_size=1024,
            codebook_dim=8,
            hidden_size=64,
            sampling_rate=44100,
        )
    ).eval()
    _make_audible(codec)
    return {
        "image_encoder": image_encoder,
        "image_processor": image_processor,
        "foa_model": foa_model,
        "codec": codec,
    }


def _make_audible(codec) -> None:
    """Re-draw the tiny codec's weights so its output is audible noise that follows the codes.

    transformers' default init leaves this tiny decoder at a near-constant (a DC offset of -0.013 with a 0.0007
    swing, the same in every channel whatever the codes). Unit-variance convolutions (``N(0, 1/fan_in)``, zero
    biases) keep the signal alive through the layers; the last 1 x 7 convolution gets zero-sum taps (no DC) and
    a gain that puts the noise at about -20 dBFS RMS."""
    import math

    with torch.no_grad():
        for module in codec.modules():
            if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d)):
                fan_in = (
                    module.weight[0].numel() if isinstance(module, nn.Conv1d) else module.weight[:, 0].numel()
                )
                module.weight.normal_(0.0, 1.0 / math.sqrt(fan_in))
                if module.bias is not None:
                    module.bias.zero_()
        last = codec.decoder.conv2.weight
        last -= last.mean(dim=-1, keepdim=True)
        last *= _TINY_CODEC_GAIN / last.norm()


def __getattr__(name: str):
    # `build_tiny_random_pipeline` lives beside `VisagePipeline` (which builds "tiny-random" by name), so this
    # module, which the pipeline imports, does not import the pipeline back; its old path still works.
    if name == "build_tiny_random_pipeline":
        return getattr(importlib.import_module(f"{__package__}.pipeline_visage"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
