"""Pluggable audio models for the semantic metrics: embedders (FAD) and classifiers (KLD).

Any object with the right method plugs in:

* an **embedder** has ``embed(audio (samples,), sample_rate) -> (frames, dim)`` — one embedding per frame;
  FAD fits a Gaussian to all frames of a set;
* a **classifier** has ``logits(audio (samples,), sample_rate) -> (num_classes,)`` — unnormalised scores;
  KLD compares their softmax distributions clip by clip (a classifier whose outputs are already
  probabilities sets the attribute ``returns_probabilities = True``).

The paper's choices (docs/original-implementation.md §6.8, through ``audioldm_eval`` branch
``passt_replace_panns``) are provided:

* :class:`VGGishEmbedder`: VGGish (Hershey et al. 2017) on 16 kHz audio, 0.96 s frames, 128-d embeddings
  taken *before* the last ReLU and without the PCA/quantisation post-processing, exactly how
  ``audioldm_eval`` configures the ``harritaylor/torchvggish`` port. The network and the log-mel frontend are
  written here from the published VGGish recipe (25 ms periodic-Hann STFT every 10 ms, 512-point FFT, 64 HTK
  mel bands 125–7500 Hz, ``log(mel + 0.01)``, 96-frame examples) and load the torchvggish weights
  ``vggish-10086976.pth`` unchanged (same state-dict keys).
* :class:`PasstClassifier`: PaSST (``hear21passt``, AudioSet logits, 527 classes) on 32 kHz audio padded or
  cut to 10 s, as ``audioldm_eval`` runs it. ``hear21passt`` is an optional dependency: it requires
  ``torchaudio``, which does not load beside CPU-only torch 2.13, so
  :meth:`PasstClassifier.from_hear21passt` raises a clear ``ImportError`` where it is missing. Any callable
  ``(batch, samples) -> (batch, classes)`` can be wrapped instead.

Both wrappers copy ``audioldm_eval``'s input handling: the mean (DC) is removed, audio is resampled to the
model's rate (here with polyphase filtering; ``audioldm_eval`` uses resampy / torchaudio's sinc), VGGish
inputs shorter than 2 s are zero-padded to 2 s.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from ..audio.io import check_mono, check_sample_rate, resample

__all__ = [
    "VGGISH_WEIGHTS_URL",
    "AudioClassifier",
    "AudioEmbedder",
    "PasstClassifier",
    "VGGish",
    "VGGishConfig",
    "VGGishEmbedder",
    "vggish_examples",
    "vggish_log_mel",
    "vggish_mel_matrix",
]

# The torchvggish port's published weights (harritaylor/torchvggish release v0.1); the 8 hex digits are
# the start of the file's SHA-256, which torch.hub checks.
VGGISH_WEIGHTS_URL = "https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth"
VGGISH_SAMPLE_RATE = 16_000
PASST_SAMPLE_RATE = 32_000


@runtime_checkable
class AudioEmbedder(Protocol):
    """Maps mono audio to frame embeddings for FAD."""

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """``(samples,)`` at ``sample_rate`` -> ``(frames, dim)`` float array."""
        ...


@runtime_checkable
class AudioClassifier(Protocol):
    """Maps mono audio to class scores for KLD."""

    def logits(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """``(samples,)`` at ``sample_rate`` -> ``(num_classes,)`` logits (or probabilities, see module doc)."""
        ...


def _prepare_mono(audio, sample_rate: int, target_rate: int) -> np.ndarray:
    """DC removal then resampling, as ``audioldm_eval``'s ``WaveDataset`` does, float32 ``(samples,)``."""
    audio = check_mono(audio, "audio").astype(np.float32, copy=False)
    sample_rate = check_sample_rate(sample_rate)
    audio = audio - audio.mean(dtype=np.float64).astype(np.float32)
    return resample(audio, sample_rate, target_rate)


# ----------------------------------------------------------------------------- VGGish log-mel frontend

_STFT_WINDOW_SECONDS = 0.025
_STFT_HOP_SECONDS = 0.010
_NUM_MEL_BANDS = 64
_MEL_MIN_HZ, _MEL_MAX_HZ = 125.0, 7500.0
_LOG_OFFSET = 0.01
_EXAMPLE_FRAMES = 96  # 0.96 s of 10 ms frames per example, examples do not overlap
_MIN_SAMPLES = 2 * VGGISH_SAMPLE_RATE  # audioldm_eval pads shorter clips to 2 s


def _hertz_to_mel(hertz):
    """HTK mel scale."""
    return 1127.0 * np.log1p(np.asarray(hertz, dtype=np.float64) / 700.0)


def vggish_mel_matrix(num_spectrogram_bins: int = 257, sample_rate: int = VGGISH_SAMPLE_RATE) -> np.ndarray:
    """Triangular HTK mel filters ``(num_spectrogram_bins, 64)`` from 125 to 7500 Hz (VGGish's frontend).

    Band edges are equally spaced in mel; each band rises linearly (in mel) from its lower edge to its
    centre and falls to its upper edge. The DC bin gets zero weight.
    """
    bin_mels = _hertz_to_mel(np.linspace(0.0, sample_rate / 2.0, num_spectrogram_bins))
    edges = np.linspace(_hertz_to_mel(_MEL_MIN_HZ), _hertz_to_mel(_MEL_MAX_HZ), _NUM_MEL_BANDS + 2)
    lower, centre, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mels[:, None] - lower) / (centre - lower)
    falling = (upper - bin_mels[:, None]) / (upper - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


def vggish_log_mel(audio, sample_rate: int = VGGISH_SAMPLE_RATE) -> np.ndarray:
    """VGGish log-mel spectrogram of 16 kHz mono audio, float64 ``(frames, 64)``.

    25 ms periodic-Hann windows every 10 ms (no padding: ``1 + (n − 400) // 160`` frames), 512-point FFT
    magnitudes, :func:`vggish_mel_matrix`, then ``log(mel + 0.01)``.
    """
    audio = check_mono(audio, "audio").astype(np.float64, copy=False)
    if check_sample_rate(sample_rate) != VGGISH_SAMPLE_RATE:
        raise ValueError(
            f"expected {VGGISH_SAMPLE_RATE} Hz audio for the VGGish frontend, got {sample_rate} Hz"
        )
    window_length = round(sample_rate * _STFT_WINDOW_SECONDS)
    hop_length = round(sample_rate * _STFT_HOP_SECONDS)
    fft_length = 2 ** int(np.ceil(np.log2(window_length)))
    num_frames = 1 + (audio.shape[0] - window_length) // hop_length
    if num_frames < 1:
        return np.zeros((0, _NUM_MEL_BANDS))
    frames = np.lib.stride_tricks.sliding_window_view(audio, window_length)[::hop_length][:num_frames]
    periodic_hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(window_length) / window_length)
    magnitudes = np.abs(np.fft.rfft(frames * periodic_hann, fft_length))
    return np.log(magnitudes @ vggish_mel_matrix(magnitudes.shape[1], sample_rate) + _LOG_OFFSET)


def vggish_examples(log_mel: np.ndarray) -> np.ndarray:
    """Cut a log-mel spectrogram into non-overlapping 0.96 s examples ``(examples, 96, 64)``; the
    incomplete tail is dropped (a 5 s clip gives 5 examples)."""
    count = log_mel.shape[0] // _EXAMPLE_FRAMES
    return log_mel[: count * _EXAMPLE_FRAMES].reshape(count, _EXAMPLE_FRAMES, log_mel.shape[1])


# ----------------------------------------------------------------------------- VGGish network


@dataclass(frozen=True)
class VGGishConfig:
    """VGGish sizes. The defaults are the published network; smaller values build test-sized models."""

    conv_channels: tuple[int, ...] = (64, 128, 256, 256, 512, 512)
    # Number of conv layers before each 2×2 max-pool (4 pools: 96×64 -> 6×4).
    convs_per_block: tuple[int, ...] = (1, 1, 2, 2)
    hidden_size: int = 4096
    embedding_size: int = 128


class VGGish(nn.Module):
    """The VGGish network: ``(batch, 1, 96, 64)`` log-mel examples -> ``(batch, embedding_size)``.

    Parameter names match the torchvggish port (``features.{0,3,6,8,11,13}``, ``embeddings.{0,2,4}``) so
    its published state dict loads unchanged. ``final_relu=False`` (what FAD uses, following
    ``audioldm_eval``) returns the last linear layer's output before its ReLU.
    """

    def __init__(self, config: VGGishConfig | None = None):
        super().__init__()
        self.config = config = config or VGGishConfig()
        if len(config.conv_channels) != sum(config.convs_per_block):
            raise ValueError(
                f"expected {sum(config.convs_per_block)} conv channel sizes, got {len(config.conv_channels)}"
            )
        layers: list[nn.Module] = []
        in_channels, channels = 1, iter(config.conv_channels)
        for block_size in config.convs_per_block:
            for _ in range(block_size):
                out_channels = next(channels)
                layers += [
                    nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
                    nn.ReLU(inplace=True),
                ]
                in_channels = out_channels
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        pooled = (_EXAMPLE_FRAMES >> len(config.convs_per_block)) * (
            _NUM_MEL_BANDS >> len(config.convs_per_block)
        )
        self.embeddings = nn.Sequential(
            nn.Linear(in_channels * pooled, config.hidden_size),
            nn.ReLU(True),
            nn.Linear(config.hidden_size, config.hidden_size),
            nn.ReLU(True),
            nn.Linear(config.hidden_size, config.embedding_size),
            nn.ReLU(True),
        )

    def forward(self, examples: torch.Tensor, final_relu: bool = True) -> torch.Tensor:
        features = self.features(examples)
        # Flatten as (height, width, channels) like the TensorFlow original the weights come from.
        features = features.permute(0, 2, 3, 1).flatten(1)
        head = self.embeddings if final_relu else self.embeddings[:-1]
        return head(features)

    @classmethod
    def from_pretrained(
        cls,
        weights: str | os.PathLike | None = None,
        config: VGGishConfig | None = None,
        progress: bool = True,
    ) -> VGGish:
        """Load VGGish weights: a local ``.pth`` / ``.pt`` / ``.safetensors`` state dict, a URL, or ``None``
        for the torchvggish release (:data:`VGGISH_WEIGHTS_URL`, downloaded once into the torch hub cache
        and hash-checked).

        Raises:
            FileNotFoundError: a local path that does not exist.
            ValueError: a state dict whose keys or shapes do not fit the network.
        """
        if weights is None or str(weights).startswith(("http://", "https://")):
            url = VGGISH_WEIGHTS_URL if weights is None else str(weights)
            state_dict = torch.hub.load_state_dict_from_url(
                url, map_location="cpu", progress=progress, check_hash=weights is None
            )
        else:
            path = Path(weights)
            if not path.is_file():
                raise FileNotFoundError(f"VGGish weights not found: {path}")
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state_dict = load_file(str(path))
            else:
                state_dict = torch.load(path, map_location="cpu", weights_only=True)
        model = cls(config)
        # Checkpoints saved with the PCA post-processor carry its two extra tensors; FAD does not use them.
        state_dict = {key: value for key, value in state_dict.items() if not key.startswith("pproc.")}
        try:
            model.load_state_dict(state_dict, strict=True)
        except RuntimeError as error:
            raise ValueError(f"VGGish weights do not fit the network: {error}") from None
        return model.eval()


class VGGishEmbedder:
    """FAD embedder as in the paper: VGGish 128-d pre-ReLU embeddings of 0.96 s frames of 16 kHz audio.

    ``embed(audio, sample_rate)`` removes the DC offset, resamples to 16 kHz, pads clips shorter than 2 s
    with zeros, and returns float64 ``(frames, 128)`` (5 frames for a 5 s clip).
    """

    sample_rate = VGGISH_SAMPLE_RATE

    def __init__(self, model: VGGish, device: str | torch.device = "cpu", final_relu: bool = False):
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.final_relu = final_relu

    @classmethod
    def from_pretrained(
        cls, weights: str | os.PathLike | None = None, device: str | torch.device = "cpu", **kwargs
    ) -> VGGishEmbedder:
        """:meth:`VGGish.from_pretrained` wrapped as an embedder (``kwargs`` go to it)."""
        return cls(VGGish.from_pretrained(weights, **kwargs), device=device)

    @torch.no_grad()
    def embed(self, audio, sample_rate: int) -> np.ndarray:
        audio = _prepare_mono(audio, sample_rate, self.sample_rate)
        if audio.shape[0] < _MIN_SAMPLES:
            audio = np.pad(audio, (0, _MIN_SAMPLES - audio.shape[0]))
        examples = vggish_examples(vggish_log_mel(audio, self.sample_rate))
        batch = torch.from_numpy(examples).float().unsqueeze(1).to(self.device)
        return self.model(batch, final_relu=self.final_relu).double().cpu().numpy()


# ----------------------------------------------------------------------------- PaSST


class PasstClassifier:
    """KLD classifier as in the paper: PaSST AudioSet logits of 32 kHz audio padded or cut to 10 s.

    Args:
        model: callable ``(batch, samples)`` float tensor at 32 kHz -> ``(batch, classes)`` logits, e.g.
            ``hear21passt.base.get_basic_model(mode="logits")`` (see :meth:`from_hear21passt`).
        clip_samples: the fixed input length (``audioldm_eval``: 320,000 = 10 s; a 5 s clip is zero-padded).
    """

    sample_rate = PASST_SAMPLE_RATE

    def __init__(
        self,
        model: Callable[[torch.Tensor], torch.Tensor],
        device: str | torch.device = "cpu",
        clip_samples: int = 10 * PASST_SAMPLE_RATE,
    ):
        self.model = model
        self.device = torch.device(device)
        self.clip_samples = int(clip_samples)

    @classmethod
    def from_hear21passt(cls, device: str | torch.device = "cpu", arch: str = "passt_s_swa_p16_128_ap476"):
        """PaSST from the ``hear21passt`` package (weights fetched by that package on first use).

        Raises:
            ImportError: ``hear21passt`` (or its ``torchaudio`` dependency) is not importable.
        """
        try:
            from hear21passt.base import get_basic_model
        except (ImportError, OSError) as error:
            raise ImportError(
                "KLD with PaSST needs the optional package 'hear21passt' (pip install hear21passt), which "
                f"also needs a torchaudio build that loads beside your torch; import failed: {error}. "
                "Pass your own classifier (an object with logits(audio, sample_rate)) instead."
            ) from None
        model = get_basic_model(mode="logits", arch=arch)
        model.eval().to(device)
        return cls(model, device=device)

    @torch.no_grad()
    def logits(self, audio, sample_rate: int) -> np.ndarray:
        audio = _prepare_mono(audio, sample_rate, self.sample_rate)[: self.clip_samples]
        audio = np.pad(audio, (0, self.clip_samples - audio.shape[0]))
        batch = torch.from_numpy(audio).float().unsqueeze(0).to(self.device)
        output = self.model(batch)
        if isinstance(output, tuple):
            output = output[0]
        return output[0].double().cpu().numpy()
