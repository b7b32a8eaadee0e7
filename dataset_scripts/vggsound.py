"""VGGSound for the mono pre-training stage (`visage_hf/training/configs/pretrain_vggsound.yaml`).

VGGSound's public list ``vggsound.csv`` has one row per clip and no header: ``youtube_id, start_seconds, label,
split`` (``train`` / ``test``); a clip is the 10 s from ``start_seconds``. The original pre-trained on the clips
of at least 5 s (``train_above_5s.csv``), so clips whose source ends early are kept down to
:data:`MIN_SECONDS`. This path produces, per clip, 4-fps frames (short side 224) and the mono sound:

    download.py --vggsound vggsound.csv  ->  prepare.py --vggsound vggsound.csv  ->  extract_features.py
    (CLIP + W-only DAC codes (frames, 9))  ->  build_shards.py --configs features  ->  data/vggsound_features

Splits: VGGSound's ``test`` stays ``test``; ``validation`` is a stable hashed :data:`VALIDATION_FRACTION` of the
training *videos* (the original's validation list is not public), so no video straddles two splits.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from .clip_jobs import ClipJob, hash_split
from .raw_files import find_raw_files

__all__ = [
    "CLIP_SECONDS",
    "MIN_SECONDS",
    "VALIDATION_FRACTION",
    "VGGSoundRow",
    "read_vggsound_csv",
    "vggsound_clip_id",
    "vggsound_jobs",
]

CLIP_SECONDS = 10.0
MIN_SECONDS = 5.0
VALIDATION_FRACTION = 0.01


@dataclass(frozen=True)
class VGGSoundRow:
    youtube_id: str
    start_second: int
    label: str
    split: str


def vggsound_clip_id(youtube_id: str, start_second: int) -> str:
    return f"{youtube_id}_{int(start_second)}"


def read_vggsound_csv(path: str | os.PathLike) -> list[VGGSoundRow]:
    """Rows of VGGSound's ``vggsound.csv`` (``youtube_id,start_seconds,label,split``; a header row, if any,
    is skipped). Raises ValueError naming the first malformed line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"VGGSound list not found: {path}")
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 4:
                raise ValueError(f"{path}:{number}: expected youtube_id,start_seconds,label,split, got {row}")
            youtube_id, start, label, split = (item.strip() for item in row[:4])
            if number == 1 and not start.lstrip("-").isdigit():
                continue  # a header
            if not start.isdigit() or len(youtube_id) != 11:
                raise ValueError(f"{path}:{number}: expected an 11-character id and whole seconds, got {row}")
            rows.append(VGGSoundRow(youtube_id, int(start), label, split.lower()))
    return rows


def vggsound_split(row: VGGSoundRow, validation_fraction: float = VALIDATION_FRACTION) -> str:
    if row.split == "test":
        return "test"
    return hash_split(row.youtube_id, {"validation": validation_fraction}, default="train")


def vggsound_jobs(
    rows: list[VGGSoundRow],
    raw_dir: str | os.PathLike,
    clip_seconds: float = CLIP_SECONDS,
    min_seconds: float = MIN_SECONDS,
    validation_fraction: float = VALIDATION_FRACTION,
) -> tuple[list[ClipJob], list[str]]:
    """Clip jobs for the downloaded videos; returns ``(jobs, clip ids whose video is not downloaded)``."""
    jobs, missing = [], []
    for row in rows:
        clip_id = vggsound_clip_id(row.youtube_id, row.start_second)
        files = find_raw_files(raw_dir, row.youtube_id)
        if files is None:
            missing.append(clip_id)
            continue
        jobs.append(
            ClipJob(
                clip_id=clip_id,
                video_id=row.youtube_id,
                start=float(row.start_second),
                seconds=clip_seconds,
                split=vggsound_split(row, validation_fraction),
                video_path=files[0],
                audio_path=files[1],
                kind="mono",
                min_seconds=min_seconds,
                extra={"label": row.label, "youtube_id": row.youtube_id},
            )
        )
    return jobs, missing
