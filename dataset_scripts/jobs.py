"""What makes every dataset script resumable and safe to interrupt: atomic outputs, stale-file cleanup, a
failure log with a summary, and the command-line conventions.

* **Atomic files** (:func:`atomic_file`): written under a temporary name tagged with host and process id,
  then ``os.replace``-d. A crash leaves only a tagged temporary, which the next run removes
  (:func:`remove_stale_temporaries`) once its process is gone.
* **Atomic clip folders** (:func:`staged_directory`): a clip's several files are written into a staging
  folder and published with one ``rename``, so a clip folder either exists complete or not at all.
* **Failures** (:class:`FailureLog`) are collected per item, never fatal for the run, written as a CSV and
  summarised by reason at the end.
* **CLI** (:func:`run_cli`): usage errors print one line on stderr and exit 2; everything else exits 0 and
  the failures are in the summary.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import socket
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "STAGING_DIR",
    "FailureLog",
    "UsageError",
    "atomic_file",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "describe_error",
    "parse_list_argument",
    "publish_directory",
    "remove_stale_temporaries",
    "run_cli",
    "scratch_directory",
    "staged_directory",
]

STAGING_DIR = ".staging"
_TEMPORARY_TAG = ".tmp-"
# <anything>.tmp-<host>-<pid>-<random>
_TEMPORARY_NAME = re.compile(r"\.tmp-(?P<host>.+)-(?P<pid>\d+)-[0-9a-f]{8}(?:\.[^.]*)?$")
# Temporaries of another host (a shared file system) are only trusted to be stale after this long.
_FOREIGN_STALE_SECONDS = 24 * 3600


class UsageError(ValueError):
    """A bad command line or configuration: reported in one line, exit code 2."""


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", socket.gethostname()) or "host"


def _temporary_name(name: str, suffix: str = "") -> str:
    return f".{name}{_TEMPORARY_TAG}{_host()}-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}"


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success it replaces ``path`` (``os.replace``), on error it is
    removed. The temporary keeps ``path``'s extension (for libraries that infer the format from it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(_temporary_name(path.name, path.suffix))
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_file(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, value) -> Path:
    return atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


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
    then deleted), else ``FileExistsError``."""
    if target.exists():
        if not overwrite:
            raise FileExistsError(f"{target} exists (another process finished it first?)")
        aside = target.parent / STAGING_DIR / _temporary_name(target.name + ".old")
        os.replace(target, aside)
        os.replace(staging, target)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(staging, target)


def describe_error(error: BaseException | str) -> str:
    """``"ValueError: first line of the message"`` (one line, for logs and CSVs)."""
    if isinstance(error, BaseException):
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return f"{type(error).__name__}: {text}" if text else type(error).__name__
    return str(error)


def _reason_group(reason: str) -> str:
    """Reasons without the item-specific details (numbers, paths), for counting."""
    reason = re.sub(r"/\S+", "<path>", reason)
    return re.sub(r"\d+(\.\d+)?", "N", reason)[:160]


@dataclass
class FailureLog:
    """Items that failed, with the stage and the reason; written as CSV, summarised by reason."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, item: str, stage: str, error: BaseException | str) -> None:
        self.rows.append((str(item), stage, describe_error(error)))

    def extend(self, rows: Sequence[Sequence[str]]) -> None:
        self.rows.extend((str(a), str(b), str(c)) for a, b, c in rows)

    def __len__(self) -> int:
        return len(self.rows)

    def write_csv(self, path: str | os.PathLike) -> Path | None:
        """Write ``item,stage,reason`` rows (atomically); an existing log is removed when nothing failed."""
        path = Path(path)
        if not self.rows:
            path.unlink(missing_ok=True)
            return None
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["item", "stage", "reason"])
        writer.writerows(sorted(self.rows))
        return atomic_write_text(path, buffer.getvalue())

    @staticmethod
    def read_csv(path: str | os.PathLike) -> list[tuple[str, str, str]]:
        path = Path(path)
        if not path.exists():
            return []
        with open(path, newline="") as handle:
            return [(row["item"], row["stage"], row["reason"]) for row in csv.DictReader(handle)]

    def summary(self, limit: int = 8) -> str:
        """``"3 failed: 2 x download: HTTPError: ...; 1 x ..."`` (most common reasons first)."""
        if not self.rows:
            return "0 failed"
        counts = Counter((stage, _reason_group(reason)) for _, stage, reason in self.rows)
        lines = [f"{len(self.rows)} failed:"]
        for (stage, reason), count in counts.most_common(limit):
            lines.append(f"  {count} x {stage}: {reason}")
        if len(counts) > limit:
            lines.append(f"  ... and {len(counts) - limit} other reasons")
        return "\n".join(lines)


def parse_list_argument(text: str | None, cast: Callable = str) -> list:
    """``"a,b, c"`` -> ``[a, b, c]`` (empty string or None -> ``[]``)."""
    if text is None:
        return []
    return [cast(part.strip()) for part in str(text).split(",") if part.strip()]


def run_cli(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a script's ``main``: errors that reach it are about its inputs (bad arguments, missing or invalid
    input files: per-item failures are logged inside the scripts), so they become one line on stderr and exit
    code 2, without a traceback. Ctrl-C exits 130 (finished items stay finished)."""
    try:
        return main(argv)
    except (ValueError, OSError) as error:  # UsageError is a ValueError, FileNotFoundError an OSError
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished items are kept; run the same command again to resume", file=sys.stderr)
        return 130
