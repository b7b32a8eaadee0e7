"""Your own recordings in YT-Ambigen's format: 360° videos with ambisonic sound, or field-of-view clips with FOA.

Two folder layouts are accepted by ``prepare.py``:

* ``--own-videos DIR``: 360° equirectangular videos (``.mp4 .mov .mkv .webm .m4v``) whose audio track is
  4-channel ambisonics, or that have a sidecar file with the same stem (``.wav .flac .ogg .opus``). Each video
  is cut into consecutive ``--clip-seconds`` clips (every ``--hop-seconds``); the camera direction is
  ``--direction auto`` (the audio energy-map maximum of each clip, `curation.crop_direction`) or fixed
  ``--direction AZ,EL`` (degrees, public convention: azimuth counter-clockwise from the front, elevation up).
* ``--own-fov DIR``: clips that are already field-of-view videos, each with its FOA (the video's own 4-channel
  track or a sidecar audio file) and a ``directions.csv`` (``name,azimuth,elevation[,split]``, ``name`` the
  file stem) saying where the camera looked.

Channel order: AmbiX (ACN/SN3D, YouTube's) is assumed; ``--channel-order fuma`` converts FuMa (W, X, Y, Z,
W at −3 dB). Splits: ``--split NAME`` for everything, or ``--validation-fraction F`` / ``--test-fraction F`` of
the source videos (stable hash of the file name).
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from .clip_jobs import ClipJob, hash_split, sanitize_id
from .media_io import audio_stream_info

__all__ = [
    "AUDIO_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "clip_starts",
    "find_audio_source",
    "own_fov_jobs",
    "own_video_jobs",
    "parse_direction",
    "read_directions_csv",
    "split_fractions_from",
]

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".m4v")
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus")


def parse_direction(text: str) -> str | tuple[float, float]:
    """``"auto"`` or ``"AZ,EL"`` (degrees) -> ``"auto"`` or ``(azimuth, elevation)``; ValueError otherwise."""
    if text.strip().lower() == "auto":
        return "auto"
    parts = [p.strip() for p in text.split(",")]
    try:
        azimuth, elevation = (float(p) for p in parts)
    except ValueError:
        raise ValueError(
            f"--direction: expected 'auto' or 'AZ,EL' in degrees (e.g. 30,0), got {text!r}"
        ) from None
    if not (math.isfinite(azimuth) and math.isfinite(elevation) and abs(elevation) <= 90):
        raise ValueError(f"--direction: expected finite degrees with |elevation| <= 90, got {text!r}")
    return azimuth, elevation


def find_audio_source(video: Path) -> Path:
    """The FOA of ``video``: a sidecar ``<stem>.<audio ext>`` if present, else the video's own audio track."""
    for extension in AUDIO_EXTENSIONS:
        sidecar = video.with_suffix(extension)
        if sidecar.is_file():
            return sidecar
    return video


def _media_seconds(path: Path) -> float:
    """Duration of a media file's audio (or, failing that, video) in seconds (0 when unknown)."""
    try:
        duration = audio_stream_info(path).get("duration")
    except ValueError:
        duration = None
    if duration is None:
        from visage_hf.video.io import probe

        duration = probe(path).duration
    return float(duration or 0.0)


def clip_starts(duration: float, clip_seconds: float, hop_seconds: float | None = None) -> list[float]:
    """Starts of the whole clips of ``clip_seconds`` every ``hop_seconds`` (default: back to back) in ``duration``."""
    hop = clip_seconds if hop_seconds is None else hop_seconds
    if clip_seconds <= 0 or hop <= 0:
        raise ValueError(f"clip and hop seconds must be positive, got {clip_seconds}, {hop}")
    count = math.floor((duration - clip_seconds) / hop + 1e-9) + 1 if duration >= clip_seconds else 0
    return [round(k * hop, 6) for k in range(count)]


def _start_label(start: float) -> str:
    return f"{start:g}".replace(".", "p")


def _split_for(name: str, split: str, fractions: dict[str, float]) -> str:
    return hash_split(name, fractions, default=split) if fractions else split


def _videos_in(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise FileNotFoundError(f"folder not found: {directory}")
    return sorted(p for p in directory.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())


def own_video_jobs(
    directory: str | os.PathLike,
    clip_seconds: float = 5.0,
    hop_seconds: float | None = None,
    direction: str | tuple[float, float] = "auto",
    split: str = "train",
    split_fractions: dict[str, float] | None = None,
) -> tuple[list[ClipJob], list[tuple[str, str]]]:
    """Clip jobs for a folder of 360° videos; returns ``(jobs, [(file, problem)])`` for files that cannot be used."""
    jobs, problems = [], []
    for video in _videos_in(Path(directory)):
        audio = find_audio_source(video)
        try:
            info = audio_stream_info(audio)
            if info["channels"] != 4:
                problems.append(
                    (video.name, f"expected 4-channel ambisonic audio, found {info['channels']} channels")
                )
                continue
            duration = min(_media_seconds(audio), _media_seconds(video))
        except (ValueError, FileNotFoundError) as error:
            problems.append((video.name, str(error)))
            continue
        starts = clip_starts(duration, clip_seconds, hop_seconds)
        if not starts:
            problems.append((video.name, f"shorter ({duration:.2f} s) than one {clip_seconds:g} s clip"))
        stem = sanitize_id(video.stem)
        for start in starts:
            job = ClipJob(
                clip_id=f"{stem}_{_start_label(start)}",
                video_id=stem,
                start=start,
                seconds=clip_seconds,
                split=_split_for(video.name, split, split_fractions or {}),
                video_path=video,
                audio_path=audio,
                kind="equirect",
                auto_direction=direction == "auto",
            )
            if direction != "auto":
                job.azimuth, job.elevation = direction
            jobs.append(job)
    return jobs, problems


def read_directions_csv(path: str | os.PathLike) -> dict[str, dict]:
    """``directions.csv`` (``name,azimuth,elevation[,split]``) -> ``{name: {"azimuth", "elevation", "split"}}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"directions file not found: {path}")
    table = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        required = {"name", "azimuth", "elevation"}
        if not required <= set(reader.fieldnames or []):
            raise ValueError(
                f"{path}: expected columns name,azimuth,elevation[,split], got {reader.fieldnames}"
            )
        for row in reader:
            azimuth, elevation = parse_direction(f"{row['azimuth']},{row['elevation']}")
            table[row["name"].strip()] = {
                "azimuth": azimuth,
                "elevation": elevation,
                "split": (row.get("split") or "").strip() or None,
            }
    return table


def own_fov_jobs(
    directory: str | os.PathLike,
    directions_csv: str | os.PathLike | None = None,
    clip_seconds: float = 5.0,
    hop_seconds: float | None = None,
    split: str = "train",
    split_fractions: dict[str, float] | None = None,
) -> tuple[list[ClipJob], list[tuple[str, str]]]:
    """Clip jobs for a folder of field-of-view clips with FOA and ``directions.csv`` (default ``DIR/directions.csv``)."""
    directory = Path(directory)
    table = read_directions_csv(directions_csv or directory / "directions.csv")
    jobs, problems = [], []
    for video in _videos_in(directory):
        entry = table.get(video.stem)
        if entry is None:
            problems.append((video.name, "no row in directions.csv"))
            continue
        audio = find_audio_source(video)
        try:
            channels = audio_stream_info(audio)["channels"]
            duration = min(_media_seconds(audio), _media_seconds(video))
        except (ValueError, FileNotFoundError) as error:
            problems.append((video.name, str(error)))
            continue
        if channels != 4:
            problems.append((video.name, f"expected 4-channel ambisonic audio, found {channels} channels"))
            continue
        stem = sanitize_id(video.stem)
        for start in clip_starts(duration, clip_seconds, hop_seconds):
            jobs.append(
                ClipJob(
                    clip_id=f"{stem}_{_start_label(start)}",
                    video_id=stem,
                    start=start,
                    seconds=clip_seconds,
                    split=entry["split"] or _split_for(video.name, split, split_fractions or {}),
                    video_path=video,
                    audio_path=audio,
                    kind="fov",
                    azimuth=entry["azimuth"],
                    elevation=entry["elevation"],
                )
            )
    return jobs, problems


def split_fractions_from(validation: float = 0.0, test: float = 0.0) -> dict[str, float]:
    """``--validation-fraction`` / ``--test-fraction`` -> the ``fractions`` of `clip_jobs.hash_split` (ValueError
    when they are not in ``[0, 1)`` or sum to 1 or more)."""
    fractions = {name: value for name, value in (("validation", validation), ("test", test)) if value > 0}
    if any(not 0 <= value < 1 for value in fractions.values()) or sum(fractions.values()) >= 1:
        raise ValueError(f"split fractions must be in [0, 1) and sum below 1, got {fractions}")
    return fractions
