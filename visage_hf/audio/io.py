"""Audio file I/O, input validation and resampling: the one place every module reads, writes and checks audio.

Arrays are channel-first everywhere in visage-hf: mono is ``(samples,)``, multichannel is
``(channels, samples)``, first-order ambisonics (FOA) is ``(4, samples)`` in AmbiX order (W, Y, Z, X; SN3D).
Validation raises ``ValueError`` naming what was expected and what came, so the CLI can print it as one line.
"""

from __future__ import annotations

import os
from math import gcd
from pathlib import Path

import numpy as np

from ..utils.files import atomic_output_path  # the package's one atomic-write family; public here since 0.1.0
from ..utils.limits import check_audio_header, check_finite_samples, check_riff_sizes

__all__ = [
    "atomic_output_path",
    "check_foa",
    "check_mono",
    "check_sample_rate",
    "read_audio",
    "resample",
    "write_audio",
]

# soundfile writes float samples in these containers; other containers get their own default subtype.
_FLOAT_CONTAINERS = {"WAV", "WAVEX", "AIFF", "CAF", "W64", "RF64"}
# File extensions that are not libsndfile container names.
_EXTENSION_ALIASES = {"AIF": "AIFF", "OPUS": "OGG", "OGA": "OGG"}
# More channels than this in the first axis almost always means the caller passed (samples, channels).
_MAX_PLAUSIBLE_CHANNELS = 64


def _check_float_finite_nonempty(x: np.ndarray, name: str) -> None:
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(
            f"{name}: expected floating-point samples (float32 or float64), got dtype {x.dtype}; "
            "convert integer PCM with x.astype(np.float32) / 32768 or similar"
        )
    if x.size == 0 or x.shape[-1] == 0:
        raise ValueError(
            f"{name}: expected at least one sample, got an empty array of shape {tuple(x.shape)}"
        )
    if not np.isfinite(x).all():
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"{name}: expected finite samples, got {bad} NaN/inf value(s)")


def check_foa(x, name: str = "foa", allow_batch: bool = False) -> np.ndarray:
    """Validate first-order ambisonics and return it as a numpy array (dtype unchanged).

    Args:
        x: array-like of shape ``(4, samples)``, or ``(batch, 4, samples)`` when ``allow_batch``.
        name: what to call the input in error messages.
        allow_batch: accept a leading batch axis.

    Raises:
        ValueError: not floating point, wrong shape / channel count, no samples, or NaN/inf.
    """
    x = np.asarray(x)
    expected = "(4, samples)" + (" or (batch, 4, samples)" if allow_batch else "")
    ndims = (2, 3) if allow_batch else (2,)
    if x.ndim not in ndims or x.shape[-2] != 4:
        got = f"shape {tuple(x.shape)}"
        if x.ndim == 2 and x.shape[1] == 4 and x.shape[0] != 4:
            got += " (looks like (samples, 4): transpose it)"
        raise ValueError(f"{name}: expected 4-channel FOA of shape {expected} (W, Y, Z, X), got {got}")
    _check_float_finite_nonempty(x, name)
    return x


def check_mono(x, name: str = "mono") -> np.ndarray:
    """Validate a mono signal and return it as a 1-D numpy array ``(samples,)`` (dtype unchanged).

    A ``(1, samples)`` array is accepted and squeezed.

    Raises:
        ValueError: not floating point, more than one channel, no samples, or NaN/inf.
    """
    x = np.asarray(x)
    if x.ndim == 2 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != 1:
        raise ValueError(
            f"{name}: expected a mono signal of shape (samples,) or (1, samples), got shape {x.shape}"
        )
    _check_float_finite_nonempty(x, name)
    return x


def check_sample_rate(sample_rate, name: str = "sample_rate") -> int:
    """Return ``sample_rate`` as a positive int, or raise ``ValueError``."""
    try:
        valid = not isinstance(sample_rate, bool) and float(sample_rate).is_integer() and sample_rate > 0
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise ValueError(f"{name}: expected a positive integer number of Hz, got {sample_rate!r}")
    return int(sample_rate)


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read an audio file (anything libsndfile reads: WAV, FLAC, OGG/Opus, AIFF, ...).

    Returns:
        ``(audio, sample_rate)`` with ``audio`` float32 of shape ``(channels, samples)``.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file exists but is not readable audio, or holds no samples.
    """
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"audio file not found: {path}")
    if path.is_dir():
        raise ValueError(f"expected an audio file, got a directory: {path}")
    check_riff_sizes(path)
    try:
        info = sf.info(str(path))
        check_audio_header(info.channels, info.frames, info.samplerate, path)
        data, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as error:
        raise ValueError(f"could not read audio from {path}: {error}") from None
    if data.shape[0] == 0:
        raise ValueError(f"expected at least one sample in {path}, got an empty file")
    check_finite_samples(data, path)
    return np.ascontiguousarray(data.T), int(sample_rate)


def write_audio(path: str | os.PathLike, audio, sample_rate: int, subtype: str | None = "FLOAT") -> Path:
    """Write ``audio`` ``(channels, samples)`` (or ``(samples,)`` for mono) atomically.

    The file is written next to ``path`` under a temporary name and moved into place with ``os.replace``,
    so an interrupted write never leaves a truncated file at ``path``. The container follows the file
    extension. ``subtype="FLOAT"`` (default) keeps 32-bit float samples (no clipping) in containers that
    support it (WAV, AIFF, CAF, W64, RF64); other containers (FLAC, OGG) get libsndfile's default subtype.
    Pass e.g. ``"PCM_16"`` to force a subtype. A ``.wav`` of more than two channels (FOA) is written as
    ``WAVE_FORMAT_EXTENSIBLE``.

    Returns:
        the written path.
    """
    import soundfile as sf

    path = Path(path)
    audio = np.asarray(audio)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise ValueError(f"expected audio of shape (channels, samples), got shape {audio.shape}")
    if audio.shape[0] > _MAX_PLAUSIBLE_CHANNELS:
        raise ValueError(
            f"expected audio of shape (channels, samples), got shape {audio.shape}: "
            "more than 64 channels (did you pass (samples, channels)? transpose it)"
        )
    _check_float_finite_nonempty(audio, "audio")
    sample_rate = check_sample_rate(sample_rate)

    extension = path.suffix.lstrip(".").upper()
    container = _EXTENSION_ALIASES.get(extension, extension)
    if container not in sf.available_formats():
        raise ValueError(
            f"expected an audio file extension libsndfile can write (.wav, .flac, ...), got {path.name!r}"
        )
    if subtype == "FLOAT" and container not in _FLOAT_CONTAINERS:
        subtype = "OPUS" if extension == "OPUS" else None
    if container == "WAV" and audio.shape[0] > 2:
        # More than two channels need WAVE_FORMAT_EXTENSIBLE (Microsoft's rule; sox and others warn without it).
        container = "WAVEX"

    with atomic_output_path(path) as temporary:
        sf.write(str(temporary), audio.T, sample_rate, subtype=subtype, format=container)
    return path


def resample(x, orig_sr: int, target_sr: int) -> np.ndarray:
    """Polyphase resampling along the last axis (``scipy.signal.resample_poly`` with the reduced ratio).

    Works on ``(samples,)``, ``(channels, samples)`` or ``(batch, channels, samples)``; keeps float32 as
    float32. Returns the input unchanged (a copy) when the rates are equal.
    """
    from scipy.signal import resample_poly

    orig_sr = check_sample_rate(orig_sr, "orig_sr")
    target_sr = check_sample_rate(target_sr, "target_sr")
    x = np.asarray(x)
    _check_float_finite_nonempty(x, "audio")
    if orig_sr == target_sr:
        return x.copy()
    divisor = gcd(orig_sr, target_sr)
    out = resample_poly(x, target_sr // divisor, orig_sr // divisor, axis=-1)
    return out.astype(x.dtype, copy=False)
