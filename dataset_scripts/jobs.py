"""What makes every dataset script resumable and safe to interrupt: atomic outputs, stale-file cleanup, a
failure log with a summary, and the command-line conventions.

* **Atomic files and clip folders**: the package's own family (:mod:`visage_hf.utils.files`, re-exported
  here; ``atomic_file`` is its ``atomic_output_path``): a file is written under a temporary name tagged with
  host and process id, then ``os.replace``-d; a clip's several files go into a staging folder published with
  one rename. A crash leaves only tagged temporaries, which the next run removes
  (:func:`remove_stale_temporaries`) once their process is gone.
* **Failures** (:class:`FailureLog`) are collected per item, never fatal for the run, written as a CSV and
  summarised by reason at the end.
* **CLI** (:func:`run_cli`): usage errors print one line on stderr and exit 2; everything else exits 0 and
  the failures are in the summary.
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from visage_hf.utils.files import (
    STAGING_DIR,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    publish_directory,
    remove_stale_temporaries,
    scratch_directory,
    staged_directory,
)
from visage_hf.utils.files import atomic_output_path as atomic_file

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


class UsageError(ValueError):
    """A bad command line or configuration: reported in one line, exit code 2."""


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
