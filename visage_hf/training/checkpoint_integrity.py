"""Checkpoint integrity: the completion marker lists every file's size and SHA-256; resume checks them.

A marker proves a save finished, not that the files are still whole: a disk can be filled, a file truncated
or overwritten after the fact. :func:`newest_intact` walks the complete checkpoints newest first and returns
the first whose files all match the manifest, with one line for each checkpoint it skipped and why, so a
resumed run loses at most the steps since the last intact checkpoint. Markers written before manifests
existed (``{"step": N}`` only) are trusted as they are.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

__all__ = ["file_manifest", "manifest_problem", "newest_intact"]

_HASH_BLOCK = 1 << 22


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def file_manifest(folder: Path, exclude: tuple[str, ...] = ()) -> dict[str, dict]:
    """``{relative path: {"size", "sha256"}}`` of every file under ``folder`` except ``exclude`` names."""
    return {
        path.relative_to(folder).as_posix(): {"size": path.stat().st_size, "sha256": _sha256(path)}
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name not in exclude
    }


def manifest_problem(folder: Path, marker_name: str) -> str | None:
    """Why the checkpoint ``folder`` cannot be trusted, or None when its files match its marker."""
    try:
        marker = json.loads((folder / marker_name).read_text())
    except (OSError, ValueError) as error:
        return f"unreadable {marker_name} ({error})"
    if not isinstance(marker, dict):
        return f"{marker_name} is not a JSON object"
    files = marker.get("files")
    if files is None:  # a marker from before manifests: nothing to check against
        return None
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        size = path.stat().st_size
        if size != expected.get("size"):
            return f"{name} holds {size} bytes, {expected.get('size')} were saved"
        if _sha256(path) != expected.get("sha256"):
            return f"{name} differs from what was saved (SHA-256 mismatch)"
    return None


def newest_intact(candidates: list[Path], marker_name: str) -> tuple[Path | None, list[str]]:
    """The newest of ``candidates`` (oldest first, as listed) whose files match; and what was skipped."""
    skipped = []
    for folder in reversed(candidates):
        problem = manifest_problem(folder, marker_name)
        if problem is None:
            return folder, skipped
        skipped.append(f"{folder.name}: {problem}")
    return None, skipped
