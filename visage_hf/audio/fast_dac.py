"""A faster inference path through transformers' ``DacModel``: the same graph, cheaper kernels.

:class:`~visage_hf.audio.codec.FOACodec` runs the DAC's encoder and decoder through these functions instead of
``DacModel.encode`` / ``decode``. They read the weights from the model's own modules (the decoder's re-laid-out
copies are checked against the parameters' storage and version on every call, so a model moved, reloaded or
edited later is still the one used) and change only how each layer is computed:

* **Snake** ``x + sin(αx)² / (α + 1e-9)`` runs as in-place passes over one buffer instead of four eager ops that
  each allocate a tensor as large as the activation (up to 85 MB per mono 5-s signal at 44.1 kHz on the full
  model). The operations and their order are the eager ones, so the result is bit-identical: encoder codes
  cannot change.
* **Residual units** add their skip connection in place into the last conv's output.
* **The decoder runs channels-last**: activations are ``(batch, C, 1, T)`` tensors in ``torch.channels_last``
  memory (time-major, channels innermost) through ``conv2d`` with a ``1 × k`` kernel. oneDNN's convolutions
  take that layout as is, where the ``(batch, C, T)`` layout makes every call reorder its input and output
  (measured layer by layer on a shared 2-core AVX2 EPYC: the 44.1 kHz decoder's large convolutions 1.1-1.5x
  faster). Same products, summed in another order: the audio moves by float rounding only
  (tests/audio/test_fast_dac.py bounds it). The encoder keeps the ``(batch, C, T)`` layout so that its latents,
  and so the codes, stay bit-identical.
* **Upsampling as ordinary convolutions**: each ``ConvTranspose1d`` (kernel ``2s``, stride ``s``) runs as a
  two-tap convolution with ``s·C_out`` outputs whose channels-last result is already the interleaved signal
  (:func:`_transposed_conv2d`); its weights are re-laid out once per module and cached (:func:`_prepared`).
* **Decoder Snake in one pass** (:mod:`visage_hf.audio.snake_kernels`, numba) where numba is installed: one read
  and one write per sample instead of five streaming kernels; torch's ops otherwise.
* **Time windows**: the blocks after the first run over windows of :data:`CHUNK_SAMPLES` output samples with
  :func:`receptive_radius` samples of overlap (:func:`_chunked_tail`), so their large buffers are recycled by
  the allocator instead of page-faulted afresh for every layer (2.2 GB of page faults per mono 5-s decode
  before); every kept sample sees the same inputs as in one pass.

* **Winograd for the residual units' kernel-7 convolutions** (:mod:`visage_hf.audio.winograd`): each unit's
  dilated ``conv1`` (dilation 1, 3, 9; 14·C²·T FLOPs, 7/8 of the decoder's convolution work with the 1×1
  ``conv2``) runs as ``F(6, 7)``: numba transforms and one batched product per window, 4·C²·T FLOPs. The tile
  size :data:`WINOGRAD_TILE` was chosen by decoding 2 s of audio with the full 44.1 kHz model, variants
  interleaved, best of 4, on the shared 2-core AVX2 EPYC at load 2.2-2.5: the four ``conv1`` layers' time
  (768/384/192/96 channels) direct 0.21/0.42/0.42/0.19 s, ``F(4, 7)`` 0.08/0.19/0.24/0.18 s, ``F(6, 7)``
  0.07/0.16/0.20/0.14 s; whole decode 1.81 / 1.31 / 1.15 s. Every width measured faster, so no width falls back;
  the direct convolution stays for other kernels, strides, groups, dtypes or devices, without numba, and with
  ``WINOGRAD_TILE = None``. The transforms' float32 rounding moves the audio by 3.9-4.3e-6 of its peak on the
  full model (direct: 2.8e-6; tests/audio/test_winograd.py bounds a layer, test_fast_dac.py the decoder).

Together (5 s x 4 channels, one process, old and new decoders interleaved, on the shared 2-core AVX2 EPYC at load
3.6-4.7): decode CPU time 48.7 -> 38.7 s (1.26x; page-fault system time 7.2 -> 1.3 s), wall 48.9 -> 41.7 s.
Winograd on top (benchmarks/codec.py, variants interleaved, one round each run, same machine): at load 0.8-1.9
(GEMM 125 GFLOP/s) decode ``DacModel.decode`` 55.2 s, fast path without Winograd 23.8 s (2.32x), with it 15.3 s
(3.62x); at load 2.7-3.0 (GEMM 67 GFLOP/s) 82.7 / 46.7 (1.77x) / 21.4 s (3.86x). Under heavier load it can lose
its edge (one run at load 3.4-3.5: 113 / 39.0 / 46.5 s): each window runs three parallel regions, and on a busy
2-core machine each waits for a descheduled thread.

Weight norm is left to the modules: transformers' ``DacModel`` stores plain (already folded) weights, and
:func:`visage_hf.audio.codec.convert_descript_weights` folds a descript checkpoint's ``weight_g`` / ``weight_v``
once at load, so no call recomputes normalised weights (folding it again measured no faster).

The functions are for inference (``FOACodec`` calls them under ``torch.inference_mode``): the in-place passes
are not meant for autograd. Shapes: encoder ``(batch, 1, samples)`` -> latents ``(batch, hidden, frames)``;
decoder the reverse, with ``samples = frames · hop``.
"""

from __future__ import annotations

import math
import weakref

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

from . import snake_kernels, winograd

# Output samples per window of the decoder's high-rate blocks: 65536 (1.5 s at 44.1 kHz) keeps a 96-channel
# activation at 25 MB, under glibc's largest mmap threshold (32 MB), so freed buffers are reused instead of
# mapping (and page-faulting) fresh memory for every layer; the windows' overlap (receptive_radius) costs ~2 %
# more convolution work. Smaller windows measured slower (more, smaller kernel calls).
CHUNK_SAMPLES = 65536

# Winograd tile size m of F(m, 7) for the residual units' kernel-7 convolutions (visage_hf.audio.winograd; 2, 4
# or 6, measured in the module docstring); None = the direct convolution.
WINOGRAD_TILE = 6

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


_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _prepared(conv: torch.nn.Module, build, *args) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``build(conv, *args)``: its (weight, bias) re-laid out for the decoder, kept until the module's weights change.

    Keyed on the module (weakly) and ``(build, args)``, and checked against the parameters' storage and version,
    so a model moved, reloaded or edited in place is seen. Costs one copy of the decoder's weights per layout.
    """
    params = (conv.weight, conv.bias)
    version = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in params if p is not None)
    layouts = _PREPARED.setdefault(conv, {})
    entry = layouts.get((build, args))
    if entry is None or entry[0] != version:
        with torch.no_grad():
            entry = (version, build(conv, *args))
        layouts[build, args] = entry
    return entry[1]


def _channels_last_weight(conv: torch.nn.Conv1d) -> tuple[torch.Tensor, torch.Tensor | None]:
    weight = conv.weight.unsqueeze(2)
    # A 1-wide kernel is channels-last already; restriding it would send torch to its slow conv path.
    if conv.kernel_size[0] == 1:
        return weight, conv.bias
    return weight.contiguous(memory_format=torch.channels_last), conv.bias


def _conv2d(hidden: torch.Tensor, conv: torch.nn.Conv1d) -> torch.Tensor:
    """A ``Conv1d`` on ``(batch, C, 1, T)`` channels-last activations."""
    weight, bias = _prepared(conv, _channels_last_weight)
    return F.conv2d(
        hidden,
        weight,
        bias,
        (1, conv.stride[0]),
        (0, conv.padding[0]),
        (1, conv.dilation[0]),
        conv.groups,
    )


def _winograd_tile(hidden: torch.Tensor, conv: torch.nn.Conv1d) -> int | None:
    """The Winograd tile size ``m`` for ``conv`` on ``hidden``, or None where the direct convolution runs."""
    applies = (
        WINOGRAD_TILE is not None
        and winograd.NUMBA_AVAILABLE
        and conv.kernel_size[0] == 7
        and conv.stride[0] == 1
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and isinstance(conv.padding[0], int)
        and hidden.device.type == "cpu"
        and hidden.dtype == conv.weight.dtype == torch.float32
    )
    return WINOGRAD_TILE if applies else None


def _winograd_weight(conv: torch.nn.Conv1d, m: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    return winograd.winograd_weight(conv.weight, m), conv.bias


def _kernel7_conv2d(hidden: torch.Tensor, conv: torch.nn.Conv1d) -> torch.Tensor:
    """A residual unit's kernel-7 dilated conv: Winograd ``F(m, 7)`` (:mod:`~visage_hf.audio.winograd`) where it
    applies, else :func:`_conv2d`."""
    m = _winograd_tile(hidden, conv)
    if m is None:
        return _conv2d(hidden, conv)
    u, bias = _prepared(conv, _winograd_weight, m)
    return winograd.winograd_conv(hidden, u, bias, m, conv.dilation[0], conv.padding[0])


def _phase_weight(conv: torch.nn.ConvTranspose1d) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The ``(stride·C_out, C_in, 1, 2)`` two-tap convolution equal to ``conv`` (see :func:`_transposed_conv2d`)."""
    weight, stride = conv.weight, conv.stride[0]  # weight: (C_in, C_out, 2·stride)
    taps = torch.stack([weight[..., stride:], weight[..., :stride]], dim=-1)  # (C_in, C_out, stride, 2)
    phases = taps.permute(2, 1, 0, 3).reshape(stride * weight.shape[1], weight.shape[0], 1, 2)
    bias = None if conv.bias is None else conv.bias.repeat(stride)
    return phases.contiguous(memory_format=torch.channels_last), bias


def _is_phase_decomposable(conv: torch.nn.ConvTranspose1d) -> bool:
    stride = conv.stride[0]
    return (
        conv.kernel_size[0] == 2 * stride
        and conv.padding[0] <= stride
        and conv.output_padding[0] == 0
        and conv.dilation[0] == 1
        and conv.groups == 1
    )


def _transposed_conv2d(hidden: torch.Tensor, conv: torch.nn.ConvTranspose1d) -> torch.Tensor:
    """A ``ConvTranspose1d`` on ``(batch, C, 1, T)`` channels-last activations, as an ordinary convolution.

    With kernel ``2s`` and stride ``s`` (the DAC's upsampling), output sample ``q·s + j - padding`` is
    ``W[j]ᵀ·x[q] + W[s + j]ᵀ·x[q - 1]``: a two-tap convolution with ``s·C_out`` output channels (one group per
    phase ``j``), zero-padded by one frame each side. Channels-last, its ``(T + 1, s·C_out)`` output *is* the
    ``((T + 1)·s, C_out)`` interleaved signal, so the phases need no shuffling: a view, trimmed by ``padding``.
    oneDNN's ordinary convolutions run faster than its transposed ones on this layout.
    """
    if not _is_phase_decomposable(conv):
        return F.conv_transpose2d(
            hidden,
            conv.weight.unsqueeze(2),
            conv.bias,
            (1, conv.stride[0]),
            (0, conv.padding[0]),
            (0, conv.output_padding[0]),
            conv.groups,
            (1, conv.dilation[0]),
        )
    weight, bias = _prepared(conv, _phase_weight)
    stride, padding = conv.stride[0], conv.padding[0]
    batch, _, _, length = hidden.shape
    phases = F.conv2d(hidden, weight, bias, 1, (0, 1))  # (batch, s·C_out, 1, T + 1), channels-last
    channels = weight.shape[0] // stride
    samples = phases.permute(0, 2, 3, 1).reshape(batch, 1, (length + 1) * stride, channels)
    return samples[:, :, padding : padding + length * stride].permute(0, 3, 1, 2)


def _snake_2d(hidden: torch.Tensor, module: Snake1d, in_place: bool) -> torch.Tensor:
    """Snake on channels-last activations: numba's one-pass kernel for float32 CPU tensors where numba is
    installed, else :func:`snake`."""
    if snake_kernels.NUMBA_AVAILABLE and hidden.device.type == "cpu" and hidden.dtype == torch.float32:
        return snake_kernels.snake_channels_last(hidden, module.alpha, hidden if in_place else None)
    return snake(hidden, module)


def _residual_unit_2d(hidden: torch.Tensor, unit: DacResidualUnit) -> torch.Tensor:
    out = _kernel7_conv2d(_snake_2d(hidden, unit.snake1, in_place=False), unit.conv1)
    out = _conv2d(_snake_2d(out, unit.snake2, in_place=True), unit.conv2)
    trim = (hidden.shape[-1] - out.shape[-1]) // 2
    if trim > 0:
        hidden = hidden[..., trim:-trim]
    return out.add_(hidden)


def _decoder_block(hidden: torch.Tensor, block: DacDecoderBlock, in_place: bool = True) -> torch.Tensor:
    hidden = _transposed_conv2d(_snake_2d(hidden, block.snake1, in_place), block.conv_t1)
    for unit in (block.res_unit1, block.res_unit2, block.res_unit3):
        hidden = _residual_unit_2d(hidden, unit)
    return hidden


def _decoder_tail(hidden: torch.Tensor, decoder: DacDecoder, first_block: int) -> torch.Tensor:
    """``decoder.block[first_block:]``, Snake, ``conv2`` and tanh; leaves ``hidden`` (maybe a view) unchanged."""
    for index, block in enumerate(decoder.block[first_block:]):
        hidden = _decoder_block(hidden, block, in_place=index > 0)
    return _conv2d(_snake_2d(hidden, decoder.snake1, in_place=True), decoder.conv2).tanh_()


def receptive_radius(decoder: DacDecoder, first_block: int) -> int:
    """Input samples on each side that one output sample of :func:`_decoder_tail` depends on (rounded up).

    Each convolution reaches ``dilation·(kernel - 1)/2`` samples at its own rate; a transposed convolution
    spreads input sample ``m`` over outputs ``[m·s - padding, m·s + kernel - padding)``, so
    ``max(padding, kernel - padding)/s`` samples at its input's rate. Rates grow by each block's stride, so the
    deep layers add fractions of an input sample.
    """
    radius, rate = 0.0, 1
    for block in decoder.block[first_block:]:
        conv_t = block.conv_t1
        kernel, stride, padding = conv_t.kernel_size[0], conv_t.stride[0], conv_t.padding[0]
        radius += max(padding, kernel - padding) / stride / rate
        rate *= stride
        for unit in (block.res_unit1, block.res_unit2, block.res_unit3):
            for conv in (unit.conv1, unit.conv2):
                radius += conv.dilation[0] * (conv.kernel_size[0] - 1) / 2 / rate
    radius += decoder.conv2.dilation[0] * (decoder.conv2.kernel_size[0] - 1) / 2 / rate
    return math.ceil(radius)


def _chunked_tail(
    hidden: torch.Tensor, decoder: DacDecoder, first_block: int, chunk_samples: int
) -> torch.Tensor:
    """:func:`_decoder_tail` over time windows of about ``chunk_samples`` output samples, stitched.

    Each window carries :func:`receptive_radius` extra input samples on both sides (where the signal has them)
    and keeps only its middle, so every kept sample sees exactly the inputs it sees in one pass: the result
    differs by float rounding only. Small windows keep the high-rate activations in cache and let the
    allocator reuse their buffers instead of mapping fresh pages for every layer.
    """
    rate = math.prod(block.conv_t1.stride[0] for block in decoder.block[first_block:])
    length, halo = hidden.shape[-1], receptive_radius(decoder, first_block)
    chunk = max(chunk_samples // rate, 1)
    if length <= chunk + 2 * halo:
        return _decoder_tail(hidden, decoder, first_block)
    out = None
    for start in range(0, length, chunk):
        stop = min(start + chunk, length)
        low, high = max(start - halo, 0), min(stop + halo, length)
        piece = _decoder_tail(hidden[..., low:high], decoder, first_block)
        if out is None:
            out = piece.new_empty(piece.shape[0], piece.shape[1], 1, length * rate)
        out[..., start * rate : stop * rate] = piece[..., (start - low) * rate : (stop - low) * rate]
    return out


def encoder_forward(encoder: DacEncoder, audio: torch.Tensor) -> torch.Tensor:
    """``DacEncoder.forward``: ``(batch, 1, samples)`` -> ``(batch, hidden, samples / hop)``."""
    hidden = _conv(audio, encoder.conv1)
    for block in encoder.block:
        hidden = _encoder_block(hidden, block)
    return _conv(snake(hidden, encoder.snake1), encoder.conv2)


def decoder_forward(
    decoder: DacDecoder, latents: torch.Tensor, chunk_samples: int | None = CHUNK_SAMPLES
) -> torch.Tensor:
    """``DacDecoder.forward``: ``(batch, hidden, frames)`` -> ``(batch, 1, frames · hop)``.

    ``chunk_samples``: output samples per window of the blocks after the first (see :func:`_chunked_tail`);
    ``None`` = one pass.
    """
    hidden = latents.unsqueeze(2).contiguous(memory_format=torch.channels_last)
    hidden = _decoder_block(_conv2d(hidden, decoder.conv1), decoder.block[0])
    if chunk_samples is None:
        return _decoder_tail(hidden, decoder, 1).squeeze(2)
    return _chunked_tail(hidden, decoder, 1, chunk_samples).squeeze(2)


def encode_codes(model, audio: torch.Tensor, n_codebooks: int) -> torch.Tensor:
    """``model.encode(audio, n_quantizers=n_codebooks).audio_codes``: ``(batch, 1, samples)`` -> ``(batch, n, frames)``."""
    latents = encoder_forward(model.encoder, audio)
    return model.quantizer(latents, n_codebooks)[1]


def decode_codes(model, codes: torch.Tensor, chunk_samples: int | None = CHUNK_SAMPLES) -> torch.Tensor:
    """``model.decode(audio_codes=codes).audio_values``: ``(batch, codebooks, frames)`` -> ``(batch, frames · hop)``."""
    latents = model.quantizer.from_codes(codes)[0]
    return decoder_forward(model.decoder, latents, chunk_samples).squeeze(1)
