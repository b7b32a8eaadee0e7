"""Atomic files and folders: nothing is ever half-written under its final name.

Every writer of the package (audio, video, reports, checkpoints, the dataset scripts) goes through this module:

* **Files** (:func:`atomic_output_path`, :func:`atomic_write_bytes` / ``_text`` / ``_json``,
  :func:`atomic_save_npz`): written under a temporary sibling name, then ``os.replace``-d onto the final
  name. On any error the temporary is removed and an existing file is left as it was.
* **Folders** (:func:`staged_directory`, :func:`publish_directory`): several files are written into a staging
  folder in ``<parent>/.staging`` (same file system) and published with one rename.
* **Leftovers**: temporaries are named ``.<name>.tmp-<host>-<pid>-<random><suffix>`` (:func:`is_temporary`), so
  a later run can tell a dead process's leftovers from a live one's (:func:`remove_stale_temporaries`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "STAGING_DIR",
    "atomic_output_path",
    "atomic_save_npz",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "fsync_path",
    "is_temporary",
    "publish_directory",
    "remove_stale_temporaries",
    "scratch_directory",
    "staged_directory",
    "staged_files",
    "temporary_sibling",
]

STAGING_DIR = ".staging"
_TEMPORARY_TAG = ".tmp-"
# .<name>.tmp-<host>-<pid>-<random>[<suffix>]
_TEMPORARY_NAME = re.compile(r"\.tmp-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{8}(?:\.[^.]*)?$")
# Temporaries of another host (a shared file system) are only trusted to be stale after this long.
_FOREIGN_STALE_SECONDS = 24 * 3600


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", socket.gethostname()) or "host"


def _temporary_name(name: str, suffix: str = "") -> str:
    return f".{name}{_TEMPORARY_TAG}{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}"


def is_temporary(name: str) -> bool:
    """True for a name this module gives its temporaries (files and staging folders)."""
    return name.startswith(".") and _TEMPORARY_NAME.search(name) is not None


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file, or a folder's entries (after a rename inside it), to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# ------------------------------------------------------------------------------------------------ files
@contextlib.contextmanager
def atomic_output_path(path: str | os.PathLike, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path to write to; on success it is moved onto ``path`` with ``os.replace``.

    On any error the temporary file is removed and ``path`` is left untouched, so a crash never leaves a
    half-written file. The temporary name keeps the extension (libraries infer the format from it) and the
    file gets normal permissions (umask), unlike ``tempfile.mkstemp``. ``fsync``: flush the file to disk
    before the rename (for files that mark something complete).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(_temporary_name(path.name, path.suffix))
    try:
        yield temporary
        if fsync:
            fsync_path(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output_path`); returns ``path``."""
    with atomic_output_path(path, fsync=fsync) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, fsync: bool = False) -> Path:
    """Write ``text`` as UTF-8 to ``path`` atomically, newlines as given (no platform translation)."""
    return atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_json(
    path: str | os.PathLike, value: Any, sort_keys: bool = True, fsync: bool = False
) -> Path:
    """Write ``value`` as indented JSON (and a final newline) to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(value, indent=2, sort_keys=sort_keys) + "\n", fsync=fsync)


def atomic_save_npz(path: str | os.PathLike, arrays: Mapping[str, Any]) -> Path:
    """``numpy.savez`` of ``arrays`` to ``path`` atomically."""
    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def temporary_sibling(path: str | os.PathLike, suffix: str = "") -> Path:
    """A fresh, empty hidden sibling of ``path`` (created, umask permissions, unlike ``tempfile.mkstemp``), for a
    writer that produces ``path`` from an intermediate file; the caller removes it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(_temporary_name(path.name, suffix))
    temporary.touch(exist_ok=False)
    return temporary


# ------------------------------------------------------------------------------------------------ folders
@contextlib.contextmanager
def scratch_directory(parent: str | os.PathLike, name: str = "scratch") -> Iterator[Path]:
    """Yield a private empty folder in ``<parent>/.staging`` (same file system as ``parent``, so files can be
    ``os.replace``-d out of it atomically); it is removed on exit, whatever happens."""
    parent = Path(parent)
    scratch = parent / STAGING_DIR / _temporary_name(name)
    scratch.mkdir(parents=True)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        with contextlib.suppress(OSError):
            scratch.parent.rmdir()  # only when empty


def publish_directory(staging: Path, target: Path, overwrite: bool = False) -> None:
    """Rename ``staging`` to ``target``. An existing ``target`` is replaced when ``overwrite`` (moved aside first,
    then deleted, so no interruption leaves it half-deleted under its name), else ``FileExistsError``."""
    if target.exists():
        if not overwrite:
            raise FileExistsError(f"{target} exists (another process finished it first?)")
        aside = target.parent / STAGING_DIR / _temporary_name(target.name + ".old")
        aside.parent.mkdir(parents=True, exist_ok=True)
        os.replace(target, aside)
        os.replace(staging, target)
        shutil.rmtree(aside, ignore_errors=True)
        with contextlib.suppress(OSError):
            aside.parent.rmdir()  # only when empty
    else:
        os.replace(staging, target)


@contextlib.contextmanager
def staged_directory(target: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder; on success it becomes ``target`` in one rename (see :func:`publish_directory`).

    The staging folder lives in ``<target's parent>/.staging`` (same file system, so the rename is atomic) and
    is removed on any error.
    """
    target = Path(target)
    with scratch_directory(target.parent, target.name) as staging:
        yield staging
        publish_directory(staging, target, overwrite=overwrite)


@contextlib.contextmanager
def staged_files(folder: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging folder; on success every file written there is moved into ``folder`` (created if
    needed, other files in it kept), each with one atomic rename. On error nothing is moved; an error while
    moving them in (a rename refused half-way) puts back the files already replaced, so the folder never holds
    some new files beside old ones of the same set."""
    folder = Path(folder)
    with scratch_directory(folder.parent, folder.name) as staging:
        yield staging
        created = not folder.is_dir()
        folder.mkdir(parents=True, exist_ok=True)
        with scratch_directory(folder.parent, folder.name + ".old") as aside:
            try:
                _move_in(staging, folder, aside)
            except BaseException:
                if created:
                    shutil.rmtree(folder, ignore_errors=True)
                raise


def _move_in(staging: Path, folder: Path, aside: Path) -> None:
    """Move every entry of ``staging`` into ``folder``; what it replaces waits in ``aside`` until all are in, and
    goes back on any error (the new entries moved so far are removed)."""
    moved, kept = [], []
    try:
        for entry in sorted(staging.iterdir()):
            target = folder / entry.name
            if target.exists() or target.is_symlink():
                os.replace(target, aside / entry.name)
                kept.append(entry.name)
            os.replace(entry, target)
            moved.append(entry.name)
    except BaseException:
        for name in moved:
            target = folder / name
            shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
        for name in kept:
            os.replace(aside / name, folder / name)
        raise


# ------------------------------------------------------------------------------------------------ leftovers
def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_stale(name: str, path: Path) -> bool:
    match = _TEMPORARY_NAME.search(name)
    if match is None:
        return False
    if match["host"] == _host():
        return not _process_alive(int(match["pid"]))
    try:
        return time.time() - path.stat().st_mtime > _FOREIGN_STALE_SECONDS
    except FileNotFoundError:
        return False


def remove_stale_temporaries(directory: str | os.PathLike) -> int:
    """Remove temporaries (files and staging folders) left in ``directory`` by processes that died.

    Looks at ``directory`` itself and its ``.staging`` folder; entries of live processes are kept, so several
    workers can share an output folder. Returns the number of entries removed.
    """
    directory = Path(directory)
    removed = 0
    for parent in (directory, directory / STAGING_DIR):
        if not parent.is_dir():
            continue
        for entry in parent.iterdir():
            if _TEMPORARY_TAG in entry.name and _is_stale(entry.name, entry):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
                removed += 1
    with contextlib.suppress(OSError):
        (directory / STAGING_DIR).rmdir()  # only when empty
    return removed
