"""A faster inference path through transformers' ``DacModel``: the same graph, cheaper kernels.

:class:`~visage_hf.audio.codec.FOACodec` runs the DAC's encoder and decoder through these functions instead of
``DacModel.encode`` / ``decode``. They read the weights from the model's own modules (nothing is copied, so a
model moved or reloaded later is still the one used) and change only how each layer is computed:

* **Snake** ``x + sin(αx)² / (α + 1e-9)`` runs as in-place passes over one buffer instead of four eager ops that
  each allocate a tensor as large as the activation (up to 85 MB per mono 5-s signal at 44.1 kHz on the full
  model). The operations and their order are the eager ones, so the result is bit-identical: encoder codes
  cannot change.
* **Residual units** add their skip connection in place into the last conv's output.
* **The decoder runs channels-last**: activations are ``(batch, C, 1, T)`` tensors in ``torch.channels_last``
  memory (time-major, channels innermost) through ``conv2d`` / ``conv_transpose2d`` with a ``1 × k`` kernel.
  oneDNN's convolutions take that layout as is, where the ``(batch, C, T)`` layout makes every call reorder its
  input and output (measured layer by layer on a shared 2-core AVX2 EPYC: the 44.1 kHz decoder's large convolutions
  1.1-1.5x and its upsampling transposed convolutions up to 2.4x faster). Same products, summed in another order: the audio
  moves by float rounding only (tests/audio/test_fast_dac.py bounds it). The encoder keeps the ``(batch, C, T)``
  layout so that its latents, and so the codes, stay bit-identical.

Weight norm is left to the modules: transformers' ``DacModel`` stores plain (already folded) weights, and
:func:`visage_hf.audio.codec.convert_descript_weights` folds a descript checkpoint's ``weight_g`` / ``weight_v``
once at load, so no call recomputes normalised weights.

The functions are for inference (``FOACodec`` calls them under ``torch.inference_mode``): the in-place passes
are not meant for autograd. Shapes: encoder ``(batch, 1, samples)`` -> latents ``(batch, hidden, frames)``;
decoder the reverse, with ``samples = frames · hop``.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F
from transformers.models.dac.modeling_dac import (
    DacDecoder,
    DacDecoderBlock,
    DacEncoder,
    DacEncoderBlock,
    DacResidualUnit,
    Snake1d,
)

__all__ = ["decode_codes", "decoder_forward", "encode_codes", "encoder_forward", "snake"]


def snake(hidden: torch.Tensor, module: Snake1d) -> torch.Tensor:
    """``x + sin(αx)² · 1/(α + 1e-9)``, bit-identical to ``Snake1d``'s eager ops.

    ``hidden``: ``(batch, channels, time)`` or ``(batch, channels, 1, time)`` (any memory format, kept). One new
    buffer instead of four: ``αx`` is written once, then squared, scaled and added to in place.
    """
    alpha = module.alpha.reshape(1, -1, *([1] * (hidden.ndim - 2)))
    out = torch.mul(hidden, alpha)
    out.sin_()
    out.square_()
    out.mul_((alpha + 1e-9).reciprocal())
    return out.add_(hidden)


def _conv(hidden: torch.Tensor, conv: torch.nn.Conv1d) -> torch.Tensor:
    return F.conv1d(hidden, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _residual_unit(hidden: torch.Tensor, unit: DacResidualUnit) -> torch.Tensor:
    out = _conv(snake(hidden, unit.snake1), unit.conv1)
    out = _conv(snake(out, unit.snake2), unit.conv2)
    trim = (hidden.shape[-1] - out.shape[-1]) // 2  # 0 for the DAC's length-preserving convs
    if trim > 0:
        hidden = hidden[..., trim:-trim]
    return out.add_(hidden)


def _encoder_block(hidden: torch.Tensor, block: DacEncoderBlock) -> torch.Tensor:
    for unit in (block.res_unit1, block.res_unit2, block.res_unit3):
        hidden = _residual_unit(hidden, unit)
    return _conv(snake(hidden, block.snake1), block.conv1)


def _conv2d(hidden: torch.Tensor, conv: torch.nn.Conv1d) -> torch.Tensor:
    """A ``Conv1d`` on ``(batch, C, 1, T)`` channels-last activations."""
    weight = conv.weight.unsqueeze(2)
    return F.conv2d(
        hidden,
        weight,
        conv.bias,
        (1, conv.stride[0]),
        (0, conv.padding[0]),
        (1, conv.dilation[0]),
        conv.groups,
    )


def _transposed_conv2d(hidden: torch.Tensor, conv: torch.nn.ConvTranspose1d) -> torch.Tensor:
    """A ``ConvTranspose1d`` on ``(batch, C, 1, T)`` channels-last activations."""
    weight = conv.weight.unsqueeze(2)
    return F.conv_transpose2d(
        hidden,
        weight,
        conv.bias,
        (1, conv.stride[0]),
        (0, conv.padding[0]),
        (0, conv.output_padding[0]),
        conv.groups,
        (1, conv.dilation[0]),
    )


def _residual_unit_2d(hidden: torch.Tensor, unit: DacResidualUnit) -> torch.Tensor:
    out = _conv2d(snake(hidden, unit.snake1), unit.conv1)
    out = _conv2d(snake(out, unit.snake2), unit.conv2)
    trim = (hidden.shape[-1] - out.shape[-1]) // 2
    if trim > 0:
        hidden = hidden[..., trim:-trim]
    return out.add_(hidden)


def _decoder_block(hidden: torch.Tensor, block: DacDecoderBlock) -> torch.Tensor:
    hidden = _transposed_conv2d(snake(hidden, block.snake1), block.conv_t1)
    for unit in (block.res_unit1, block.res_unit2, block.res_unit3):
        hidden = _residual_unit_2d(hidden, unit)
    return hidden


def encoder_forward(encoder: DacEncoder, audio: torch.Tensor) -> torch.Tensor:
    """``DacEncoder.forward``: ``(batch, 1, samples)`` -> ``(batch, hidden, samples / hop)``."""
    hidden = _conv(audio, encoder.conv1)
    for block in encoder.block:
        hidden = _encoder_block(hidden, block)
    return _conv(snake(hidden, encoder.snake1), encoder.conv2)


def decoder_forward(decoder: DacDecoder, latents: torch.Tensor) -> torch.Tensor:
    """``DacDecoder.forward``: ``(batch, hidden, frames)`` -> ``(batch, 1, frames · hop)``."""
    hidden = latents.unsqueeze(2).contiguous(memory_format=torch.channels_last)
    hidden = _conv2d(hidden, decoder.conv1)
    for block in decoder.block:
        hidden = _decoder_block(hidden, block)
    return _conv2d(snake(hidden, decoder.snake1), decoder.conv2).tanh_().squeeze(2)


def encode_codes(model, audio: torch.Tensor, n_codebooks: int) -> torch.Tensor:
    """``model.encode(audio, n_quantizers=n_codebooks).audio_codes``: ``(batch, 1, samples)`` -> ``(batch, n, frames)``."""
    latents = encoder_forward(model.encoder, audio)
    return model.quantizer(latents, n_codebooks)[1]


def decode_codes(model, codes: torch.Tensor) -> torch.Tensor:
    """``model.decode(audio_codes=codes).audio_values``: ``(batch, codebooks, frames)`` -> ``(batch, frames · hop)``."""
    latents = model.quantizer.from_codes(codes)[0]
    return decoder_forward(model.decoder, latents).squeeze(1)
