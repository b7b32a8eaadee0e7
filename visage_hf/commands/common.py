"""What every `visage` command shares: the one-line error, the parser that raises it, argument types, FOA files."""

from __future__ import annotations

import argparse
import math

PROG = "visage"
FOA_DESCRIPTION = "4-channel AmbiX (ACN W, Y, Z, X; SN3D)"


class CommandError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors become one line instead of usage text plus exit."""

    def error(self, message: str):
        raise CommandError(f"{message} (see '{self.prog} --help')")


# ----------------------------------------------------------------------------- shared helpers


# Containers an FOA tool writes: float32 WAV-family files, or FLAC (16-bit, lossless). Lossy ones (Ogg Vorbis,
# Opus, MP3) change the inter-channel phase the direction lives in, so they are refused rather than written.
AUDIO_OUTPUT_HELP = "output audio file: .wav (float32; also .aiff, .caf, .w64, .rf64) or .flac (16-bit)"
_LOSSLESS_OUTPUTS = (".wav", ".aiff", ".aif", ".caf", ".w64", ".rf64", ".flac")
_VIDEO_INPUTS = (".mp4", ".mov", ".m4v", ".mkv", ".webm")


def check_audio_output(path: str) -> None:
    """Refuse an output name whose container is lossy or unknown (see ``AUDIO_OUTPUT_HELP``)."""
    from pathlib import Path

    suffix = Path(path).suffix.lower()
    if suffix not in _LOSSLESS_OUTPUTS:
        raise CommandError(
            f"-o {path}: expected a .wav or .flac file (lossy or unknown containers such as {suffix or 'none'} "
            "would alter the spatial information)"
        )


def _refuse_silence(audio, path: str) -> None:
    """Silence has no direction and nothing to encode/decode: a one-line error (exit 2), not a made-up result."""
    import numpy as np

    if audio.size and not np.any(audio):
        raise CommandError(f"{path} is silent (every sample is 0): there is no sound to work on")


def read_foa(path: str):
    """A 4-channel FOA file: an audio file, or the audio track of a video (e.g. `visage generate`'s
    spatial.mp4)."""
    from pathlib import Path

    from ..audio.io import check_foa, read_audio

    if Path(path).suffix.lower() in _VIDEO_INPUTS:
        from ..video.io import read_audio_track

        audio, sample_rate = read_audio_track(path)
    else:
        audio, sample_rate = read_audio(path)
    if audio.shape[0] != 4:
        raise CommandError(f"expected a {FOA_DESCRIPTION} file, got {audio.shape[0]} channel(s) in {path}")
    foa = check_foa(audio, name=str(path))
    _refuse_silence(foa, path)
    return foa, sample_rate


def read_mono(path: str):
    from ..audio.io import check_mono, read_audio

    audio, sample_rate = read_audio(path)
    if audio.shape[0] != 1:
        raise CommandError(f"expected a mono (1-channel) file, got {audio.shape[0]} channels in {path}")
    mono = check_mono(audio[0], name=str(path))
    _refuse_silence(mono, path)
    return mono, sample_rate


def add_direction_arguments(parser: argparse.ArgumentParser, what: str, azimuth: float = 0.0) -> None:
    parser.add_argument(
        "--azimuth",
        type=float,
        default=azimuth,
        help=f"{what} azimuth in degrees, counter-clockwise from the front toward the left; wraps (default {azimuth:g})",
    )
    parser.add_argument(
        "--elevation", type=float, default=0.0, help=f"{what} elevation in degrees, in [-90, 90] (default 0)"
    )


def describe_direction(azimuth: float, elevation: float) -> str:
    return f"azimuth {azimuth:+.1f}°, elevation {elevation:+.1f}°"


def _seconds(text: str, zero_allowed: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not (math.isfinite(value) and (value >= 0 if zero_allowed else value > 0)):
        raise argparse.ArgumentTypeError(f"expected seconds {'>=' if zero_allowed else '>'} 0, got {text}")
    return value


def positive_seconds(text: str) -> float:
    return _seconds(text, zero_allowed=False)


def start_seconds(text: str) -> float:
    return _seconds(text, zero_allowed=True)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__
