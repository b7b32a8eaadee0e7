"""Baselines of the paper's Table 3: "Ambi Enc." and two-stage (mono video-to-audio, then spatialise) rows.

"Ambi Enc." places a mono clip as a plane wave at the camera direction. The original does it in
``data/mono_to_ambi.py`` (docs/original-implementation.md §9 B7, §5.5) with two departures from AmbiX:

* ``convention="original"``: ``W = s`` and ``(X, Y, Z) = √2·s·u`` in ACN order ``(W, Y, Z, X)`` — a FuMa-style
  directional gain of √2 inside AmbiX channel order — with ``u = (cos θ cos φ, cos θ sin φ, sin θ)`` and the
  original's mirrored azimuth ``φ = 2a − 179`` from YT-Ambigen indices, which is ``−azimuth`` of the true
  camera azimuth ``179 − 2a`` (left and right swapped). Multichannel input: the first channel, as the original
  reads ``audio[0]``.
* ``convention="sn3d"`` (default): correct AmbiX, ``W = s, (X, Y, Z) = s·u`` at the true camera direction
  (:func:`visage_hf.audio.foa.encode`). Multichannel input is averaged to mono.

Directions are public degrees (true ambisonic azimuth) everywhere; :func:`ambi_enc_from_indices` takes the
dataset's ``(elevation_index, azimuth_index)``.

:func:`spatialize_outputs` is the hook for two-stage baselines: it turns any mono video-to-audio output —
a folder of mono files or a callable ``clip_id -> (mono, sample_rate)`` — into FOA WAV files named
``<clip_id>.wav``, ready for ``visage evaluate``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..audio.foa import encode
from ..audio.io import check_mono, read_audio, write_audio
from ..data.clip_files import AUDIO_EXTENSIONS
from ..directions import direction_to_vector, indices_to_direction

__all__ = [
    "CONVENTIONS",
    "SpatializeReport",
    "ambi_enc",
    "ambi_enc_from_indices",
    "spatialize_outputs",
]

CONVENTIONS = ("sn3d", "original")
ORIGINAL_DIRECTIONAL_GAIN = np.sqrt(2.0)


def _check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise ValueError(f"convention: expected one of {CONVENTIONS}, got {convention!r}")
    return convention


def _to_mono(audio, convention: str) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim == 2 and audio.shape[0] > 1:
        audio = audio[0] if convention == "original" else audio.mean(axis=0)
    return check_mono(audio, "mono")


def ambi_enc(mono, azimuth: float, elevation: float, convention: str = "sn3d") -> np.ndarray:
    """Encode mono audio at the camera direction: AmbiX-ordered FOA ``(4, samples)`` float32.

    Args:
        mono: ``(samples,)`` (or ``(channels, samples)``, see the module docstring).
        azimuth, elevation: camera direction in public degrees (true ambisonic azimuth).
        convention: ``"sn3d"`` (correct AmbiX) or ``"original"`` (√2 gain, mirrored azimuth).
    """
    mono = _to_mono(mono, _check_convention(convention))
    if convention == "sn3d":
        return encode(mono, azimuth, elevation)
    x, y, z = direction_to_vector(-float(azimuth), elevation)
    gains = np.array(
        [1.0, ORIGINAL_DIRECTIONAL_GAIN * y, ORIGINAL_DIRECTIONAL_GAIN * z, ORIGINAL_DIRECTIONAL_GAIN * x]
    )
    return (gains[:, None] * mono.astype(np.float64)).astype(np.float32)


def ambi_enc_from_indices(
    mono, elevation_index: int, azimuth_index: int, convention: str = "sn3d"
) -> np.ndarray:
    """:func:`ambi_enc` at a YT-Ambigen direction ``(elevation_index, azimuth_index)``.

    ``"sn3d"`` uses the true camera direction ``(179 − 2a, 89 − 2e)``; ``"original"`` reproduces
    ``mono_to_ambi.py``, i.e. azimuth ``2a − 179``.
    """
    azimuth, elevation = indices_to_direction(elevation_index, azimuth_index, mode="corrected")
    return ambi_enc(mono, azimuth, elevation, convention)


@dataclass
class SpatializeReport:
    """What :func:`spatialize_outputs` did."""

    written: list[str] = field(default_factory=list)
    skipped_existing: list[str] = field(default_factory=list)
    missing_direction: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def _mono_files(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS:
            if path.stem in files:
                raise ValueError(
                    f"two mono outputs share the clip id {path.stem!r}: {files[path.stem]} and {path}"
                )
            files[path.stem] = path
    return files


def spatialize_outputs(
    source: str | os.PathLike | Callable[[str], tuple[np.ndarray, int]],
    directions: Mapping[str, tuple[float, float]],
    output_dir: str | os.PathLike,
    convention: str = "sn3d",
    clips: Iterable[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> SpatializeReport:
    """Spatialise mono video-to-audio outputs with :func:`ambi_enc` into ``output_dir/<clip>.wav`` (float WAV).

    Args:
        source: a folder of mono audio files (searched recursively; the file stem is the clip id), or a
            callable ``clip_id -> (mono (samples,), sample_rate)``, e.g. a wrapper around any V2A model.
        directions: clip id -> camera ``(azimuth, elevation)`` in public degrees
            (:func:`visage_hf.data.clip_files.load_directions` reads YT-Ambigen's ``ambi.json``).
        convention: ``"sn3d"`` or ``"original"``.
        clips: the clip ids to process (default: every file of the folder, or every key of ``directions``
            for a callable).
        overwrite: re-write existing outputs; by default they are kept, so an interrupted run resumes.

    Returns:
        a :class:`SpatializeReport`; clips without a direction are listed (the original skips them silently),
        clips whose source fails are listed with the error, neither stops the run.
    """
    _check_convention(convention)
    output_dir = Path(output_dir)
    if callable(source):
        clip_ids = list(directions) if clips is None else list(clips)

        def load(clip_id: str) -> tuple[np.ndarray, int]:
            return source(clip_id)
    else:
        folder = Path(source)
        if not folder.is_dir():
            raise FileNotFoundError(f"mono output folder not found: {folder}")
        files = _mono_files(folder)
        clip_ids = list(files) if clips is None else list(clips)

        def load(clip_id: str) -> tuple[np.ndarray, int]:
            if clip_id not in files:
                raise FileNotFoundError(f"no mono file for clip {clip_id!r} in {folder}")
            return read_audio(files[clip_id])

    report = SpatializeReport()
    for clip_id in tqdm(clip_ids, desc="spatialize", disable=not progress):
        target = output_dir / f"{clip_id}.wav"
        if clip_id not in directions:
            report.missing_direction.append(clip_id)
            continue
        if target.exists() and not overwrite:
            report.skipped_existing.append(clip_id)
            continue
        try:
            mono, sample_rate = load(clip_id)
            azimuth, elevation = directions[clip_id]
            write_audio(target, ambi_enc(mono, azimuth, elevation, convention), sample_rate)
        except (ValueError, FileNotFoundError, OSError) as error:
            report.failed[clip_id] = str(error)
            continue
        report.written.append(clip_id)
    return report
