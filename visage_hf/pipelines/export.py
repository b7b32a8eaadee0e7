"""Write what a generation delivers into a folder, all at once: AmbiX WAV, binaural preview, spatial MP4, energy map.

Files are written into a temporary folder beside the output folder and moved in only when all of them are
complete, so an error (bad input, full disk, interrupt) never leaves half a result in the output folder.

Frames of reference. The model generates the sound field in the world frame of its training data: the
camera looks at ``(azimuth, elevation)``. A person watching a flat (field-of-view) clip faces the camera
direction, so the headphone preview — and, for field-of-view input, the MP4's spatial track — are rotated so
that the camera direction is the front ("viewer-aligned", reference/ecosystem.md §4.4). For 360° input the MP4
keeps the world frame and gets spherical-video metadata: YouTube and 360° players then turn the field with
the viewer's head. ``foa_ambix.wav`` is always the world frame, exactly as generated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.binaural import render_binaural
from ..audio.foa import energy_map, rotate
from ..audio.io import resample, write_audio
from ..utils.files import staged_files
from ..video.io import write_mp4
from ..video.plotting import plot_energy_map

__all__ = ["OUTPUT_FILES", "ExportedFiles", "export_generation", "viewer_aligned"]

OUTPUT_FILES = {
    "foa": "foa_ambix.wav",
    "binaural": "binaural.wav",
    "video": "spatial.mp4",
    "energy_map": "energy_map.png",
}


@dataclass(frozen=True)
class ExportedFiles:
    """Paths written by :func:`export_generation` (``video`` is None without a source video) and the
    sample rate of the WAV files."""

    foa: Path
    binaural: Path
    video: Path | None
    energy_map: Path
    sample_rate: int

    def paths(self) -> list[Path]:
        return [path for path in (self.foa, self.binaural, self.video, self.energy_map) if path is not None]


def viewer_aligned(foa: np.ndarray, azimuth: float, elevation: float) -> np.ndarray:
    """Rotate an AmbiX field ``(..., 4, samples)`` so that the camera direction ``(azimuth, elevation)`` becomes
    the front (+x): yaw by ``-azimuth``, then pitch by ``elevation``."""
    return rotate(foa, yaw=-azimuth, pitch=elevation)


def _check_output_folder(output_dir: Path) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"expected an output folder, got an existing file: {output_dir}")


def export_generation(
    output_dir: str | os.PathLike,
    foa: np.ndarray,
    sample_rate: int,
    azimuth: float,
    elevation: float,
    *,
    video: str | os.PathLike | None = None,
    video_start: float = 0.0,
    equirect: bool = False,
    output_sample_rate: int | None = None,
    sofa=None,
    title: str | None = None,
) -> ExportedFiles:
    """Write ``foa_ambix.wav``, ``binaural.wav``, ``spatial.mp4`` (with ``video``) and ``energy_map.png``.

    Args:
        output_dir: the folder to fill (created if missing; files of the same names are replaced).
        foa: AmbiX ``(4, samples)`` float (W, Y, Z, X; SN3D) in the world frame, at ``sample_rate``.
        azimuth, elevation: the camera direction in degrees (see the module docstring).
        video, video_start: the source video and where the clip starts in it (seconds); the MP4 holds the
            segment ``[video_start, video_start + audio duration)``, re-encoded (H.264), with one 4-channel AAC
            track at 48 kHz and the ``SA3D`` box.
        equirect: the source is 360° equirectangular (world-frame track + spherical-video metadata).
        output_sample_rate: rate of the WAV files (default ``sample_rate``); polyphase resampling, and the
            length is kept to the same duration.
        sofa: HRIR set of the binaural preview (see :func:`visage_hf.audio.binaural.render_binaural`).
        title: energy-map title.

    Returns:
        the :class:`ExportedFiles`.
    """
    output_dir = Path(output_dir)
    _check_output_folder(output_dir)
    foa = np.asarray(foa, dtype=np.float32)
    if foa.ndim != 2 or foa.shape[0] != 4:
        raise ValueError(f"foa: expected AmbiX (4, samples), got shape {foa.shape}")
    rate = sample_rate if output_sample_rate is None else int(output_sample_rate)
    wav_foa = foa
    if rate != sample_rate:
        target = round(foa.shape[-1] * rate / sample_rate)
        wav_foa = resample(foa, sample_rate, rate)[..., :target]
        wav_foa = np.pad(wav_foa, ((0, 0), (0, target - wav_foa.shape[-1])))
    viewer_foa = viewer_aligned(wav_foa, azimuth, elevation)

    with staged_files(output_dir) as staging:  # every file appears complete, or none does
        written = {
            "foa": write_audio(staging / OUTPUT_FILES["foa"], wav_foa, rate),
            "binaural": write_audio(
                staging / OUTPUT_FILES["binaural"], render_binaural(viewer_foa, rate, sofa=sofa), rate
            ),
            "energy_map": plot_energy_map(energy_map(foa), staging / OUTPUT_FILES["energy_map"], title=title),
        }
        if video is not None:
            track = foa if equirect else viewer_aligned(foa, azimuth, elevation)
            written["video"] = write_mp4(
                staging / OUTPUT_FILES["video"],
                track,
                sample_rate,
                video=video,
                video_start=float(video_start),
                spherical=equirect,
            )
    final = {name: output_dir / path.name for name, path in written.items()}
    return ExportedFiles(
        foa=final["foa"],
        binaural=final["binaural"],
        video=final.get("video"),
        energy_map=final["energy_map"],
        sample_rate=rate,
    )
