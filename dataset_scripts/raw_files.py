"""Where a downloaded video's files live in the raw folder (``download.py`` writes them, ``prepare.py`` and
``vggsound.py`` read them): ``<id>.json`` marks a complete download and names its video and audio files."""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["find_raw_files", "marker_path"]


def marker_path(raw_dir: Path, video_id: str) -> Path:
    return Path(raw_dir) / f"{video_id}.json"


def find_raw_files(raw_dir: str | os.PathLike, video_id: str) -> tuple[Path, Path] | None:
    """``(video, audio)`` files of a downloaded video, or None if it is not (completely) downloaded.

    Reads this script's marker ``<id>.json``; also accepts the original ``prepare_dataset.py`` layout
    (``<id>.mp4`` + ``<id>.webm``) so existing downloads can be reused.
    """
    raw_dir = Path(raw_dir)
    marker = marker_path(raw_dir, video_id)
    if marker.is_file():
        try:
            record = json.loads(marker.read_text())
            video, audio = raw_dir / record["video_file"], raw_dir / record["audio_file"]
        except (ValueError, KeyError, TypeError):
            return None
        return (video, audio) if video.is_file() and audio.is_file() else None
    video, audio = raw_dir / f"{video_id}.mp4", raw_dir / f"{video_id}.webm"
    return (video, audio) if video.is_file() and audio.is_file() else None
