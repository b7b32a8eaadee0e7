"""The unit of work of `prepare.py`: one clip to cut from one source, wherever the source comes from.

Every source (YT-Ambigen downloads, VGGSound downloads, your own 360° videos, your own field-of-view clips)
is turned into :class:`ClipJob` s; `prepare.py` processes them the same way. A prepared clip is a folder
``<output>/<clip_id>/`` holding ``video.mp4`` (4-fps field-of-view frames), ``foa.flac`` (AmbiX, 4 channels)
or ``audio.flac`` (mono) and ``meta.json`` (:data:`META_FILE`); the folder appears in one rename, so it is
either complete or absent.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "AUDIO_FILES",
    "KINDS",
    "META_FILE",
    "VIDEO_FILE",
    "ClipJob",
    "hash_split",
    "is_prepared",
    "prepared_clip_dirs",
    "sanitize_id",
]

META_FILE = "meta.json"
VIDEO_FILE = "video.mp4"
AUDIO_FILES = {4: "foa.flac", 1: "audio.flac"}
# equirect: a 360° video to crop; fov: an already-cropped clip; mono: an ordinary video with mono sound.
KINDS = ("equirect", "fov", "mono")


@dataclass
class ClipJob:
    """One clip: seconds ``[start, start + seconds)`` of ``video_path`` (frames) and ``audio_path`` (sound).

    The camera direction is given by YT-Ambigen indices, by degrees, or chosen from the audio
    (``auto_direction``: the energy-map maximum, see `curation.crop_direction`); mono clips have none.
    """

    clip_id: str
    video_id: str
    start: float
    seconds: float
    split: str
    video_path: Path
    audio_path: Path
    kind: str = "equirect"
    elevation_index: int | None = None
    azimuth_index: int | None = None
    azimuth: float | None = None
    elevation: float | None = None
    auto_direction: bool = False
    min_seconds: float | None = None  # shorter clips down to this length are kept (VGGSound: 5 of 10 s)
    extra: dict = field(default_factory=dict)  # copied into meta.json (e.g. the VGGSound label)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        self.video_path, self.audio_path = Path(self.video_path), Path(self.audio_path)

    @property
    def num_channels(self) -> int:
        return 1 if self.kind == "mono" else 4

    @property
    def source_key(self) -> tuple[str, str]:
        """Clips sharing a source are decoded together (one audio pass per source)."""
        return str(self.video_path), str(self.audio_path)


def is_prepared(output_dir: Path, clip_id: str) -> bool:
    return (Path(output_dir) / clip_id / META_FILE).is_file()


def prepared_clip_dirs(output_dir: str | Path) -> list[Path]:
    """Complete clip folders under ``output_dir`` (sorted by clip id); staging and hidden entries are ignored."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return []
    return sorted(
        entry
        for entry in output_dir.iterdir()
        if not entry.name.startswith(".") and (entry / META_FILE).is_file()
    )


def sanitize_id(text: str) -> str:
    """A file-name-safe id: characters other than letters, digits, ``-``, ``_`` and ``.`` become ``-``."""
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")
    if not cleaned:
        raise ValueError(f"cannot make a clip id from {text!r}")
    return cleaned


def hash_split(key: str, fractions: dict[str, float], default: str = "train") -> str:
    """A split drawn from a stable hash of ``key`` (e.g. a source video, so its clips never straddle splits):
    ``fractions={"validation": 0.05}`` puts about 5 % of keys in validation, the rest in ``default``."""
    value = int(hashlib.sha1(key.encode("utf-8")).hexdigest()[:12], 16) / float(16**12)
    cumulative = 0.0
    for split, fraction in fractions.items():
        cumulative += fraction
        if value < cumulative:
            return split
    return default
