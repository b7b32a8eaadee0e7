"""FOA <-> DAC codes: the 44.1 kHz Descript Audio Codec over four ambisonic channels.

ViSAGe models first-order ambisonics (AmbiX W, Y, Z, X) as four independent mono DAC streams: every channel
is encoded by the same 44.1 kHz DAC (hop 512 samples, 9 codebooks of 1024 entries) and decoded back the same
way (docs/original-implementation.md §3.6, §5.8). :class:`FOACodec` does this with transformers' ``DacModel``,
folding the channels (and any batch) into the DAC batch:

    audio (4, n) or (batch, 4, n) float  --encode-->  codes (4, 9, T) or (batch, 4, 9, T) int64
    codes                               --decode-->  audio (..., 4, T·512) float32 at 44.1 kHz

with ``T = ceil(n_44k / 512)``: the input is zero-padded at the end to whole frames, as descript-audio-codec's
``preprocess`` does. ``codes.reshape(36, T)`` is the original's channel-major ``(36, T)`` layout.

Long inputs are cut into windows of ``chunk_frames`` frames that overlap by ``context_frames`` frames on each
side; the overlap is discarded. The DAC is convolutional with a finite receptive field (measured on the full
44.1 kHz model: an input sample influences encoder frames within ±8 frames, a latent frame influences decoder
output within ±9.3 frames), so with the default 16-frame context a chunked run computes the same values as one
pass over the whole clip while memory stays bounded by the window size.

Weights from descript-audio-codec ``.pth`` files load through :func:`convert_descript_weights` /
:meth:`FOACodec.from_descript_checkpoint`; the ``dac`` package itself is never imported.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from transformers import DacConfig, DacModel

from . import fast_dac
from .io import check_sample_rate, resample

__all__ = [
    "DAC_44KHZ_REPO",
    "DAC_44KHZ_REVISION",
    "DAC_SAMPLE_RATE",
    "FOACodec",
    "convert_descript_weights",
    "descript_config",
]

DAC_44KHZ_REPO = "descript/dac_44khz"
# Commit of the Hub repo `descript/dac_44khz` this package is tested against. The same sha is pinned for this
# repo by several unrelated public projects (found through code search; the Hub itself was not reachable from
# the machine that wrote this). Pass `revision="main"` to follow the repo instead.
DAC_44KHZ_REVISION = "c1bc521685adf9cfe247bc39a5ca58917eda1ac4"
DAC_SAMPLE_RATE = 44100
NUM_FOA_CHANNELS = 4

# Receptive field of the 44.1 kHz DAC measured in frames (see module docstring) is below 10; 16 leaves margin.
DEFAULT_CONTEXT_FRAMES = 16
# 1024 frames = 11.9 s per window: a 5 s clip is always one pass, long clips stay bounded in memory.
DEFAULT_CHUNK_FRAMES = 1024
# Mono signals per DacModel call (4 = one FOA clip); bounds activation memory for large batches.
# Mono signals per DAC call. On a CPU, folding the 4 channels into one call bought no speed and cost 3.3x the
# memory (benchmarks/codec.py: ~2 GB vs 0.5 GB for a 5 s clip), so one signal at a time there; batched elsewhere.
DEFAULT_BATCH_SIZE = {"cpu": 1}
ACCELERATOR_BATCH_SIZE = 4


# ----------------------------------------------------------------------------- input checks


def _as_tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))  # from_numpy rejects negative strides
    raise ValueError(f"{name}: expected a torch.Tensor or numpy array, got {type(value).__name__}")


def _check_audio(audio) -> tuple[torch.Tensor, bool]:
    """Return FOA audio as a ``(batch, 4, samples)`` tensor and whether the input had a batch axis."""
    audio = _as_tensor(audio, "audio")
    if audio.ndim not in (2, 3) or audio.shape[-2] != NUM_FOA_CHANNELS:
        got = f"shape {tuple(audio.shape)}"
        if audio.ndim == 2 and audio.shape[1] == NUM_FOA_CHANNELS:
            got += " (looks like (samples, 4): transpose it)"
        raise ValueError(f"audio: expected FOA of shape (4, samples) or (batch, 4, samples), got {got}")
    if not audio.is_floating_point():
        raise ValueError(
            f"audio: expected floating-point samples in [-1, 1], got dtype {audio.dtype}; "
            "convert integer PCM first (e.g. x.astype(np.float32) / 32768)"
        )
    if audio.shape[-1] == 0 or audio.shape[0] == 0:
        raise ValueError(f"audio: expected at least one sample, got shape {tuple(audio.shape)}")
    if not bool(torch.isfinite(audio).all()):
        bad = int((~torch.isfinite(audio)).sum())
        raise ValueError(f"audio: expected finite samples, got {bad} NaN/inf value(s)")
    batched = audio.ndim == 3
    return (audio if batched else audio.unsqueeze(0)), batched


def _check_codes(codes, config: DacConfig) -> tuple[torch.Tensor, bool]:
    """Return codes as ``(batch, 4, codebooks, frames)`` int64 and whether the input had a batch axis."""
    codes = _as_tensor(codes, "codes")
    if codes.ndim not in (3, 4) or codes.shape[-3] != NUM_FOA_CHANNELS:
        raise ValueError(
            f"codes: expected shape (4, codebooks, frames) or (batch, 4, codebooks, frames), got {tuple(codes.shape)}"
        )
    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise ValueError(f"codes: expected integer codebook indices, got dtype {codes.dtype}")
    num_codebooks = codes.shape[-2]
    if not 1 <= num_codebooks <= config.n_codebooks:
        raise ValueError(f"codes: expected 1 to {config.n_codebooks} codebooks, got {num_codebooks}")
    if codes.shape[-1] == 0 or codes.shape[0] == 0:
        raise ValueError(f"codes: expected at least one frame, got shape {tuple(codes.shape)}")
    low, high = int(codes.min()), int(codes.max())
    if low < 0 or high >= config.codebook_size:
        raise ValueError(
            f"codes: expected indices in [0, {config.codebook_size - 1}], got values in [{low}, {high}] "
            "(special ids such as pad/bos must be removed before decoding)"
        )
    batched = codes.ndim == 4
    return (codes if batched else codes.unsqueeze(0)).long(), batched


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _resample_tensor(audio: torch.Tensor, orig_sr: int, target_sr: int) -> torch.Tensor:
    """Polyphase resampling (``visage_hf.audio.io.resample``) of a tensor along its last axis, on the CPU."""
    if orig_sr == target_sr:
        return audio
    array = audio.detach().to("cpu", torch.float32).numpy()
    return torch.from_numpy(np.ascontiguousarray(resample(array, orig_sr, target_sr))).to(audio.device)


# ----------------------------------------------------------------------------- time chunking


def _chunk_spans(num_frames: int, chunk_frames: int, context_frames: int):
    """Yield ``(start, stop, keep_start, keep_stop)`` frame spans: run on [start, stop), keep [keep_start, keep_stop)."""
    for keep_start in range(0, num_frames, chunk_frames):
        keep_stop = min(keep_start + chunk_frames, num_frames)
        yield (
            max(keep_start - context_frames, 0),
            min(keep_stop + context_frames, num_frames),
            keep_start,
            keep_stop,
        )


# ----------------------------------------------------------------------------- the codec


class FOACodec:
    """First-order ambisonics through a mono DAC: ``(…, 4, samples)`` audio <-> ``(…, 4, codebooks, frames)`` codes.

    Args:
        model: a transformers ``DacModel`` (the 44.1 kHz DAC for ViSAGe checkpoints).
        chunk_frames: frames per window for long inputs (see module docstring); ``None`` = one pass.
        context_frames: overlap on each side of a window, discarded after the pass.
        batch_size: mono signals per DAC call (4 = one FOA clip); ``None`` = 1 on a CPU (no faster batched
            there, and 3.3x the memory), 4 on an accelerator.
        fast: run the DAC through :mod:`visage_hf.audio.fast_dac` (in-place Snake, channels-last decoder):
            the same codes bit for bit, audio within float rounding (< 1e-4 of peak) of ``DacModel.decode``.
            ``False`` calls ``DacModel.encode`` / ``decode`` themselves.

    Example::

        codec = FOACodec.from_pretrained("descript/dac_44khz")  # pinned revision by default
        codes = codec.encode(foa, sample_rate=48000)            # (4, 9, T) int64
        audio = codec.decode(codes)                             # (4, T·512) float32 at 44.1 kHz
    """

    def __init__(
        self,
        model: DacModel,
        chunk_frames: int | None = DEFAULT_CHUNK_FRAMES,
        context_frames: int = DEFAULT_CONTEXT_FRAMES,
        batch_size: int | None = None,
        fast: bool = True,
    ):
        if not isinstance(model, DacModel):
            raise ValueError(f"model: expected a transformers DacModel, got {type(model).__name__}")
        self.model = model.eval()
        self.chunk_frames = (
            None if chunk_frames is None else _check_positive_int(chunk_frames, "chunk_frames")
        )
        if (
            isinstance(context_frames, bool)
            or not isinstance(context_frames, (int, np.integer))
            or context_frames < 0
        ):
            raise ValueError(f"context_frames: expected a non-negative integer, got {context_frames!r}")
        self.context_frames = int(context_frames)
        self.batch_size = None if batch_size is None else _check_positive_int(batch_size, "batch_size")
        self.fast = bool(fast)

    def _signals_per_call(self) -> int:
        if self.batch_size is not None:
            return self.batch_size
        return DEFAULT_BATCH_SIZE.get(self.device.type, ACCELERATOR_BATCH_SIZE)

    # -- loading and saving

    @classmethod
    def from_pretrained(
        cls,
        repo_or_dir: str | os.PathLike = DAC_44KHZ_REPO,
        revision: str | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        **kwargs,
    ) -> FOACodec:
        """Load a ``DacModel`` from the Hub or a local folder (``save_pretrained`` layout).

        ``revision`` defaults to :data:`DAC_44KHZ_REVISION` for the default repo and to the Hub default
        branch for any other repo. Extra keyword arguments go to ``DacModel.from_pretrained``
        (``cache_dir``, ``local_files_only``, ``token``, ...) except ``chunk_frames``, ``context_frames``,
        ``batch_size`` and ``fast``, which configure the codec.
        """
        codec_options = {
            key: kwargs.pop(key)
            for key in ("chunk_frames", "context_frames", "batch_size", "fast")
            if key in kwargs
        }
        if revision is None and str(repo_or_dir) == DAC_44KHZ_REPO:
            revision = DAC_44KHZ_REVISION
        if revision is not None:
            kwargs["revision"] = revision
        if dtype is not None:
            kwargs["dtype"] = dtype
        model = DacModel.from_pretrained(repo_or_dir, **kwargs)
        if device is not None:
            model = model.to(device)
        return cls(model, **codec_options)

    @classmethod
    def from_descript_checkpoint(cls, path: str | os.PathLike, **codec_options) -> FOACodec:
        """Load a descript-audio-codec weight file (``weights.pth`` from ``dac.utils.download``).

        The file holds ``{"state_dict": ..., "metadata": {"kwargs": {...}}}``; the kwargs give the
        architecture (:func:`descript_config`) and the weights go through :func:`convert_descript_weights`.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"descript-audio-codec checkpoint not found: {path}")
        try:
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises several types for non-checkpoint files
            raise ValueError(f"could not read a torch checkpoint from {path}: {error}") from None
        if not isinstance(checkpoint, Mapping):
            raise ValueError(f"expected a dict checkpoint in {path}, got {type(checkpoint).__name__}")
        metadata = checkpoint.get("metadata") or {}
        config = descript_config(metadata.get("kwargs", {}))
        model = DacModel(config)
        model.load_state_dict(convert_descript_weights(checkpoint), strict=True)
        return cls(model, **codec_options)

    def save_pretrained(self, directory: str | os.PathLike, **kwargs) -> None:
        """Save the underlying ``DacModel`` so that :meth:`from_pretrained` reloads it."""
        self.model.save_pretrained(directory, **kwargs)

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> FOACodec:
        """Move the model (in place) and return the codec."""
        self.model.to(device=device, dtype=dtype)
        return self

    # -- properties

    @property
    def config(self) -> DacConfig:
        return self.model.config

    @property
    def sample_rate(self) -> int:
        """The DAC's own rate (44100 for the ViSAGe codec)."""
        return int(self.config.sampling_rate)

    @property
    def hop_length(self) -> int:
        """Samples per code frame (512 for the 44.1 kHz DAC)."""
        return int(np.prod(self.config.downsampling_ratios))

    @property
    def num_codebooks(self) -> int:
        return int(self.config.n_codebooks)

    @property
    def frame_rate(self) -> float:
        """Code frames per second (44100 / 512 ≈ 86.13; the original rounds it to 86 in places)."""
        return self.sample_rate / self.hop_length

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def num_frames(self, num_samples: int, sample_rate: int | None = None) -> int:
        """Code frames for ``num_samples`` at ``sample_rate``: ``ceil(samples_at_dac_rate / hop)``."""
        sample_rate = self.sample_rate if sample_rate is None else check_sample_rate(sample_rate)
        resampled = math.ceil(num_samples * self.sample_rate / sample_rate)
        return math.ceil(resampled / self.hop_length)

    # -- encode / decode

    @torch.inference_mode()
    def encode(self, audio, sample_rate: int, n_codebooks: int | None = None) -> torch.Tensor:
        """Encode FOA audio to DAC codes.

        Args:
            audio: ``(4, samples)`` or ``(batch, 4, samples)`` float (torch or numpy), AmbiX W, Y, Z, X.
            sample_rate: rate of ``audio`` in Hz; other rates than the DAC's are resampled (polyphase).
            n_codebooks: keep only the first codebooks (default: all, 9 for the 44.1 kHz DAC).

        Returns:
            int64 codes ``(4, n_codebooks, T)`` or ``(batch, 4, n_codebooks, T)`` on the model's device, with
            ``T = ceil(samples_44k / 512)``.
        """
        audio, batched = _check_audio(audio)
        sample_rate = check_sample_rate(sample_rate)
        n_codebooks = self._check_n_codebooks(n_codebooks)
        audio = _resample_tensor(audio, sample_rate, self.sample_rate)

        batch, channels, num_samples = audio.shape
        num_frames = math.ceil(num_samples / self.hop_length)
        mono = audio.reshape(batch * channels, 1, num_samples).to(self.device, self.dtype)
        # Zero-pad the end to whole frames, like descript-audio-codec's `preprocess`.
        mono = torch.nn.functional.pad(mono, (0, num_frames * self.hop_length - num_samples))

        codes = torch.cat(
            [self._encode_mono(part, n_codebooks) for part in mono.split(self._signals_per_call())]
        )
        codes = codes.reshape(batch, channels, n_codebooks, num_frames)
        return codes if batched else codes[0]

    @torch.inference_mode()
    def decode(self, codes, sample_rate: int | None = None, num_samples: int | None = None) -> torch.Tensor:
        """Decode DAC codes to FOA audio.

        Args:
            codes: int ``(4, codebooks, T)`` or ``(batch, 4, codebooks, T)``; fewer codebooks than the model
                has decode the coarser approximation.
            sample_rate: output rate; default the DAC's (44100). Other rates are resampled (polyphase).
            num_samples: cut (or zero-pad) the output to exactly this many samples at the output rate,
                e.g. the input length before encoding.

        Returns:
            float32 ``(4, samples)`` or ``(batch, 4, samples)``; ``samples = T·512`` at 44.1 kHz by default.
        """
        codes, batched = _check_codes(codes, self.config)
        batch, channels, n_codebooks, num_frames = codes.shape
        mono_codes = codes.reshape(batch * channels, n_codebooks, num_frames).to(self.device)

        audio = torch.cat([self._decode_mono(part) for part in mono_codes.split(self._signals_per_call())])
        audio = audio.float().reshape(batch, channels, -1)

        if sample_rate is not None:
            audio = _resample_tensor(audio, self.sample_rate, check_sample_rate(sample_rate))
        if num_samples is not None:
            num_samples = _check_positive_int(num_samples, "num_samples")
            audio = torch.nn.functional.pad(
                audio[..., :num_samples], (0, max(num_samples - audio.shape[-1], 0))
            )
        return audio if batched else audio[0]

    def _check_n_codebooks(self, n_codebooks) -> int:
        if n_codebooks is None:
            return self.num_codebooks
        n_codebooks = _check_positive_int(n_codebooks, "n_codebooks")
        if n_codebooks > self.num_codebooks:
            raise ValueError(f"n_codebooks: expected at most {self.num_codebooks}, got {n_codebooks}")
        return n_codebooks

    def _spans(self, num_frames: int):
        chunk = num_frames if self.chunk_frames is None else self.chunk_frames
        return _chunk_spans(num_frames, chunk, self.context_frames)

    def _encode_mono(self, mono: torch.Tensor, n_codebooks: int) -> torch.Tensor:
        """``(b, 1, frames·hop)`` audio -> ``(b, n_codebooks, frames)`` codes, window by window."""
        hop, num_frames = self.hop_length, mono.shape[-1] // self.hop_length
        pieces = []
        for start, stop, keep_start, keep_stop in self._spans(num_frames):
            window = mono[..., start * hop : stop * hop]
            if self.fast:
                codes = fast_dac.encode_codes(self.model, window, n_codebooks)
            else:
                codes = self.model.encode(window, n_quantizers=n_codebooks, return_dict=True).audio_codes
            pieces.append(codes[..., keep_start - start : keep_stop - start])
        return torch.cat(pieces, dim=-1)

    def _decode_mono(self, codes: torch.Tensor) -> torch.Tensor:
        """``(b, codebooks, frames)`` codes -> ``(b, frames·hop)`` audio, window by window."""
        hop, num_frames = self.hop_length, codes.shape[-1]
        pieces = []
        for start, stop, keep_start, keep_stop in self._spans(num_frames):
            if self.fast:
                audio = fast_dac.decode_codes(self.model, codes[..., start:stop])
            else:
                audio = self.model.decode(audio_codes=codes[..., start:stop], return_dict=True).audio_values
            pieces.append(audio[..., (keep_start - start) * hop : (keep_stop - start) * hop])
        return torch.cat(pieces, dim=-1)


# ----------------------------------------------------------------------------- descript-audio-codec weights


def descript_config(kwargs: Mapping | None = None) -> DacConfig:
    """``DacConfig`` for the keyword arguments of ``dac.DAC(...)`` (a checkpoint's ``metadata["kwargs"]``).

    Missing arguments take descript's defaults, which are the 44.1 kHz model's (not transformers' 16 kHz).
    """
    kwargs = dict(kwargs or {})
    encoder_dim = int(kwargs.get("encoder_dim", 64))
    encoder_rates = [int(rate) for rate in kwargs.get("encoder_rates", [2, 4, 8, 8])]
    decoder_rates = [int(rate) for rate in kwargs.get("decoder_rates", [8, 8, 4, 2])]
    if decoder_rates != encoder_rates[::-1]:
        raise ValueError(
            f"descript checkpoint: transformers' DacModel needs decoder_rates = reversed encoder_rates, "
            f"got encoder_rates={encoder_rates}, decoder_rates={decoder_rates}"
        )
    latent_dim = kwargs.get("latent_dim")
    if latent_dim is not None and int(latent_dim) != encoder_dim * 2 ** len(encoder_rates):
        raise ValueError(
            f"descript checkpoint: transformers' DacModel needs latent_dim = encoder_dim·2^len(encoder_rates) = "
            f"{encoder_dim * 2 ** len(encoder_rates)}, got {latent_dim}"
        )
    return DacConfig(
        encoder_hidden_size=encoder_dim,
        downsampling_ratios=encoder_rates,
        decoder_hidden_size=int(kwargs.get("decoder_dim", 1536)),
        n_codebooks=int(kwargs.get("n_codebooks", 9)),
        codebook_size=int(kwargs.get("codebook_size", 1024)),
        codebook_dim=int(kwargs.get("codebook_dim", 8)),
        quantizer_dropout=float(kwargs.get("quantizer_dropout", 0.0)),
        sampling_rate=int(kwargs.get("sample_rate", DAC_SAMPLE_RATE)),
    )


# descript Sequential indices -> transformers module names. Residual units in both encoder and decoder are
# `Sequential(Snake1d, WNConv1d k7, Snake1d, WNConv1d k1)`.
_RESIDUAL_PARTS = {"0": "snake1", "1": "conv1", "2": "snake2", "3": "conv2"}
# The layers of an encoder / decoder block outside its residual units.
_BLOCK_LAYERS = {
    "encoder_block_snake": "encoder.block.{block}.snake1.{parameter}",
    "encoder_block_conv": "encoder.block.{block}.conv1.{parameter}",
    "decoder_block_snake": "decoder.block.{block}.snake1.{parameter}",
    "decoder_block_conv": "decoder.block.{block}.conv_t1.{parameter}",
}


def _rename_descript_key(key: str, num_blocks: int) -> str:
    """One descript-audio-codec parameter name -> the transformers ``DacModel`` name (weight norm still split)."""
    if key.startswith("quantizer."):
        return key
    patterns = (
        # encoder: block.0 conv, block.1..n EncoderBlock(res0, res1, res2, snake, conv), then snake, conv.
        (r"encoder\.block\.(\d+)\.block\.([012])\.block\.([0-3])\.(.+)", "encoder_residual"),
        (r"encoder\.block\.(\d+)\.block\.3\.(.+)", "encoder_block_snake"),
        (r"encoder\.block\.(\d+)\.block\.4\.(.+)", "encoder_block_conv"),
        (r"encoder\.block\.(\d+)\.(.+)", "encoder_top"),
        # decoder: model.0 conv, model.1..n DecoderBlock(snake, conv_t, res0, res1, res2), snake, conv, tanh.
        (r"decoder\.model\.(\d+)\.block\.0\.(.+)", "decoder_block_snake"),
        (r"decoder\.model\.(\d+)\.block\.1\.(.+)", "decoder_block_conv"),
        (r"decoder\.model\.(\d+)\.block\.([234])\.block\.([0-3])\.(.+)", "decoder_residual"),
        (r"decoder\.model\.(\d+)\.(.+)", "decoder_top"),
    )
    for pattern, kind in patterns:
        match = re.fullmatch(pattern, key)
        if match is None:
            continue
        groups = match.groups()
        block = int(groups[0])
        if kind == "encoder_residual":
            return f"encoder.block.{block - 1}.res_unit{int(groups[1]) + 1}.{_RESIDUAL_PARTS[groups[2]]}.{groups[3]}"
        if kind in _BLOCK_LAYERS:
            return _BLOCK_LAYERS[kind].format(block=block - 1, parameter=groups[1])
        if kind == "decoder_residual":
            return f"decoder.block.{block - 1}.res_unit{int(groups[1]) - 1}.{_RESIDUAL_PARTS[groups[2]]}.{groups[3]}"
        # Top-level layers: index 0 is the first conv, n+1 the snake, n+2 the last conv.
        module = kind.split("_")[0]
        names = {0: "conv1", num_blocks + 1: "snake1", num_blocks + 2: "conv2"}
        if block in names:
            return f"{module}.{names[block]}.{groups[1]}"
        break
    raise ValueError(f"descript checkpoint: unexpected parameter {key!r} (not a 44.1 kHz-style DAC layout?)")


def _fold_weight_norm(magnitude: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """``weight = g · v / ‖v‖`` with the norm over every axis except the one ``g`` keeps (weight norm's ``dim``)."""
    if magnitude.numel() == 1:
        # weight_norm(dim=None), or a layer with a single row: one norm over the whole tensor either way.
        return magnitude.reshape(()) * direction / direction.norm()
    reduced = tuple(axis for axis in range(direction.ndim) if magnitude.shape[axis] == 1)
    return magnitude * direction / direction.norm(dim=reduced, keepdim=True)


def convert_descript_weights(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a descript-audio-codec ``dac.DAC`` state dict to transformers ``DacModel`` names.

    Accepts the raw state dict or the whole checkpoint (``{"state_dict": ..., "metadata": ...}``). Weight
    norm is folded: ``weight_g``/``weight_v`` (``torch.nn.utils.weight_norm``) or
    ``parametrizations.weight.original0/1`` (its parametrization form) become one ``weight``. The key map
    is the one transformers' own DAC conversion script uses. Load the result with
    ``DacModel(descript_config(kwargs)).load_state_dict(result, strict=True)``.
    """
    if "state_dict" in state_dict and isinstance(state_dict["state_dict"], Mapping):
        state_dict = state_dict["state_dict"]
    encoder_blocks = {
        int(m.group(1)) for key in state_dict if (m := re.match(r"encoder\.block\.(\d+)\.block\.", key))
    }
    num_blocks = len(encoder_blocks)
    if num_blocks == 0:
        raise ValueError(
            "descript checkpoint: no encoder blocks found (expected keys like 'encoder.block.1.block.0...')"
        )

    folded: dict[str, torch.Tensor] = {}
    pending: dict[str, dict[str, torch.Tensor]] = {}
    norm_suffixes = {
        ".weight_g": "g",
        ".weight_v": "v",
        ".parametrizations.weight.original0": "g",
        ".parametrizations.weight.original1": "v",
    }
    for key, tensor in state_dict.items():
        for suffix, part in norm_suffixes.items():
            if key.endswith(suffix):
                pending.setdefault(key[: -len(suffix)] + ".weight", {})[part] = tensor
                break
        else:
            folded[key] = tensor
    for key, parts in pending.items():
        if set(parts) != {"g", "v"}:
            raise ValueError(f"descript checkpoint: {key} has only {sorted(parts)} of weight norm's g and v")
        folded[key] = _fold_weight_norm(parts["g"], parts["v"])

    return {_rename_descript_key(key, num_blocks): tensor for key, tensor in folded.items()}
