"""Write what a generation delivers into a folder, all at once: AmbiX WAV, binaural preview, spatial MP4s, energy map.

Files are written into a temporary folder beside the output folder and moved in only when all of them are
complete, so an error (bad input, full disk, interrupt) never leaves half a result in the output folder.

Frames of reference. The model generates the sound field in the world frame of its training data: the
camera looks at ``(azimuth, elevation)``. A person watching a flat (field-of-view) clip faces the camera
direction, so the headphone preview — and, for field-of-view input, the MP4's spatial track — are rotated so
that the camera direction is the front ("viewer-aligned", docs/original-implementation.md §E4.4). For 360° input the MP4
keeps the world frame and gets spherical-video metadata: YouTube and 360° players then turn the field with
the viewer's head. ``foa_ambix.wav`` is always the world frame, exactly as generated.

Silence. A generation whose FOA is all zero is still exported (silent files), but nothing points anywhere:
``energy_map.png`` says "silent: no loudest direction" instead of a cross, and ``ExportedFiles.silent`` is True
so callers can say so (``visage generate`` prints a note, the app a warning).

YouTube renders spatial audio only for 360° (and VR) videos, so a field-of-view clip also gets
``spatial_360.mp4``: an equirectangular video in which each frame is painted on the sphere where the camera
looked (:func:`visage_hf.video.equirect.fov_to_equirect`; the rest of the sphere dark), with the world-frame FOA
and spherical metadata. That is the file to upload to YouTube; ``spatial.mp4`` is for flat players.

A camera that moves (:class:`~visage_hf.video.camera_path.CameraPath`) is followed frame by frame: the
binaural preview and the flat MP4's track turn with it sample by sample (no clicks), and the 360° video paints
each frame at that frame's direction.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.binaural import render_binaural
from ..audio.foa import energy_map, rotate
from ..audio.io import resample, write_audio
from ..audio.viewer import to_viewer_frame
from ..utils.files import staged_files
from ..video.camera_path import CameraPath, resolve_camera_path
from ..video.equirect import fov_to_equirect
from ..video.io import probe
from ..video.mux import Reframe, write_mp4
from ..video.plotting import plot_energy_map

__all__ = [
    "OUTPUT_FILES",
    "ExportedFiles",
    "equirect_reframe",
    "export_generation",
    "viewer_aligned",
    "viewer_aligned_along",
]

OUTPUT_FILES = {
    "foa": "foa_ambix.wav",
    "binaural": "binaural.wav",
    "video": "spatial.mp4",
    "video_360": "spatial_360.mp4",
    "energy_map": "energy_map.png",
}
# Width of the 360° canvas: four field-of-view widths (a 90° view spans a quarter of it), within what 360°
# players and YouTube take; the height is half of it.
_EQUIRECT_MIN_WIDTH, _EQUIRECT_MAX_WIDTH = 1024, 3840


@dataclass(frozen=True)
class ExportedFiles:
    """Paths written by :func:`export_generation` (``video`` is None without a source video, ``video_360`` for
    360° input or without a video), the sample rate of the WAV files, and whether the FOA was silent (every
    sample zero: the files hold silence and ``energy_map.png`` marks no loudest direction)."""

    foa: Path
    binaural: Path
    video: Path | None
    energy_map: Path
    sample_rate: int
    video_360: Path | None = None
    silent: bool = False

    def paths(self) -> list[Path]:
        files = (self.foa, self.binaural, self.video, self.video_360, self.energy_map)
        return [path for path in files if path is not None]


def viewer_aligned(foa: np.ndarray, azimuth: float, elevation: float) -> np.ndarray:
    """Rotate an AmbiX field ``(..., 4, samples)`` so that the camera direction ``(azimuth, elevation)`` becomes
    the front (+x): yaw by ``-azimuth``, then pitch by ``elevation``."""
    return rotate(foa, yaw=-azimuth, pitch=elevation)


def viewer_aligned_along(foa: np.ndarray, sample_rate: int, path: CameraPath, start: float) -> np.ndarray:
    """:func:`viewer_aligned` for a camera path: ``(4, samples)`` starting at ``start`` seconds of the video; a
    constant path gives exactly :func:`viewer_aligned`."""
    if path.is_constant:
        return viewer_aligned(foa, float(path.azimuth[0]), float(path.elevation[0]))
    azimuth, elevation = path.directions_at(start + np.arange(foa.shape[-1]) / sample_rate)
    return to_viewer_frame(foa, azimuth, elevation)


def equirect_reframe(video: str | os.PathLike, path: CameraPath, start: float) -> Reframe:
    """The :class:`~visage_hf.video.mux.Reframe` that paints each field-of-view frame of ``video`` (a clip
    starting at ``start`` seconds) onto a 2:1 equirect canvas at its camera direction."""
    info = probe(video)
    width = int(np.clip(4 * info.width, _EQUIRECT_MIN_WIDTH, _EQUIRECT_MAX_WIDTH)) // 16 * 16
    height = width // 2

    def paint(image: np.ndarray, seconds: float) -> np.ndarray:
        azimuth, elevation = path.directions_at([start + seconds])
        return fov_to_equirect(image, float(azimuth[0]), float(elevation[0]), size=(height, width))

    return Reframe(height, width, paint)


def _check_output_folder(output_dir: Path) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"expected an output folder, got an existing file: {output_dir}")


def export_generation(
    output_dir: str | os.PathLike,
    foa: np.ndarray,
    sample_rate: int,
    azimuth: float | None = None,
    elevation: float | None = None,
    *,
    camera_path: CameraPath | None = None,
    video: str | os.PathLike | None = None,
    video_start: float = 0.0,
    equirect: bool = False,
    output_sample_rate: int | None = None,
    sofa=None,
    title: str | None = None,
) -> ExportedFiles:
    """Write ``foa_ambix.wav``, ``binaural.wav``, ``spatial.mp4`` and, for field-of-view video,
    ``spatial_360.mp4`` (with ``video``) and ``energy_map.png``.

    Args:
        output_dir: the folder to fill (created if missing; files of the same names are replaced).
        foa: AmbiX ``(4, samples)`` float (W, Y, Z, X; SN3D) in the world frame, at ``sample_rate``.
        azimuth, elevation: the camera direction in degrees (see the module docstring), or instead
        camera_path: a :class:`~visage_hf.video.camera_path.CameraPath` in the video's timeline.
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
    path = resolve_camera_path(azimuth, elevation, camera_path)
    foa = np.asarray(foa, dtype=np.float32)
    if foa.ndim != 2 or foa.shape[0] != 4:
        raise ValueError(f"foa: expected AmbiX (4, samples), got shape {foa.shape}")
    rate = sample_rate if output_sample_rate is None else int(output_sample_rate)
    wav_foa = foa
    if rate != sample_rate:
        target = round(foa.shape[-1] * rate / sample_rate)
        wav_foa = resample(foa, sample_rate, rate)[..., :target]
        wav_foa = np.pad(wav_foa, ((0, 0), (0, target - wav_foa.shape[-1])))
    viewer_foa = viewer_aligned_along(wav_foa, rate, path, float(video_start))

    with staged_files(output_dir) as staging:  # every file appears complete, or none does
        written = {
            "foa": write_audio(staging / OUTPUT_FILES["foa"], wav_foa, rate),
            "binaural": write_audio(
                staging / OUTPUT_FILES["binaural"], render_binaural(viewer_foa, rate, sofa=sofa), rate
            ),
            "energy_map": plot_energy_map(
                energy_map(foa),
                staging / OUTPUT_FILES["energy_map"],
                title=title,
                camera=_camera_marks(path, float(video_start), foa.shape[-1] / sample_rate),
            ),
        }
        if video is not None:
            written.update(
                _write_videos(staging, foa, sample_rate, video, float(video_start), equirect, path)
            )
    final = {name: output_dir / path.name for name, path in written.items()}
    return ExportedFiles(
        foa=final["foa"],
        binaural=final["binaural"],
        video=final.get("video"),
        energy_map=final["energy_map"],
        sample_rate=rate,
        video_360=final.get("video_360"),
        silent=not np.any(foa),
    )


def _camera_marks(path: CameraPath, start: float, seconds: float) -> tuple[float, float] | np.ndarray:
    """Where the energy-map picture marks the camera: its direction, or the path at 4 points a second."""
    if path.is_constant:
        return float(path.azimuth[0]), float(path.elevation[0])
    azimuth, elevation = path.directions_at(start + np.arange(0.0, seconds + 1e-9, 0.25))
    return np.stack([azimuth, elevation], axis=-1)


def _write_videos(
    staging: Path, foa: np.ndarray, sample_rate: int, video, start: float, equirect: bool, path: CameraPath
) -> dict[str, Path]:
    """``spatial.mp4`` (viewer-aligned track for field-of-view input, world frame + spherical metadata for 360°
    input) and, for field-of-view input, ``spatial_360.mp4``."""
    track = foa if equirect else viewer_aligned_along(foa, sample_rate, path, start)
    written = {
        "video": write_mp4(
            staging / OUTPUT_FILES["video"],
            track,
            sample_rate,
            video=video,
            video_start=start,
            spherical=equirect,
        )
    }
    if not equirect:
        written["video_360"] = write_mp4(
            staging / OUTPUT_FILES["video_360"],
            foa,
            sample_rate,
            video=video,
            video_start=start,
            spherical=True,
            reframe=equirect_reframe(video, path, start),
        )
    return written
