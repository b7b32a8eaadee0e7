"""Leaving ``accelerate launch`` after a one-line input error, without the launcher's traceback.

``accelerate launch visage_hf/train.py ...`` runs the script in a child process. When the child exits non-zero,
accelerate 1.x's launcher raises ``subprocess.CalledProcessError`` (one process) or re-raises torchrun's
``ChildFailedError`` (several), and Python prints a 15-line traceback under our one-line message — unless the
user passed ``accelerate launch --quiet``. Both launchers exit without a traceback on SIGTERM (the single-process
launcher turns it into ``sys.exit(143)``, torchrun's agent into ``SignalException`` -> ``sys.exit(143)``), so a
child that has printed its error and is about to exit stops its launcher that way. The single-process launcher
pipes the child's stderr and copies it to its own; a chunk it has read when the signal lands is never written,
so the message goes straight to the launcher's stderr (``/proc/<ppid>/fd/2`` on Linux) instead of through the
pipe. Nothing happens when the parent is anything else (``python -m visage_hf.train``, a shell, a test, a
launcher already ``--quiet``).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import NoReturn

__all__ = ["exit_after_printed_error", "exit_with_input_error", "parent_is_accelerate_launch"]


def _is_accelerate_launch(command: list[str]) -> bool:
    """``accelerate launch ...`` or ``python -m accelerate.commands.launch ...`` (not ``--quiet``)."""
    names = [Path(part).name for part in command]
    launcher = ("accelerate" in names and "launch" in names) or "accelerate.commands.launch" in command
    return launcher and not ({"--quiet", "-q"} & set(command))


def parent_is_accelerate_launch() -> bool:
    """Whether this process was started by an ``accelerate launch`` that would print a traceback for it."""
    try:
        import psutil  # accelerate's own dependency
    except ImportError:
        return False
    try:
        return _is_accelerate_launch(psutil.Process(os.getppid()).cmdline())
    except (psutil.Error, OSError):
        return False


def exit_with_input_error(message: str, program: str = "visage train", show: bool = True) -> NoReturn:
    """Print ``<program>: error: <message>`` (when ``show``; other ranks of a multi-process run stay quiet) and
    exit with status 2 — after asking an ``accelerate launch`` parent to stop without its traceback (then the
    launcher's own exit status is 143)."""
    line = f"{program}: error: {' '.join(message.split())}\n"
    if not parent_is_accelerate_launch():
        if show:
            sys.stderr.write(line)
        sys.exit(2)
    if show:
        _write_to_launcher_stderr(line)
    os.kill(os.getppid(), signal.SIGTERM)
    sys.exit(2)


def exit_after_printed_error(code: int | str | None) -> NoReturn:
    """``sys.exit(code)`` for an error already printed to our stderr (argparse's usage error); an ``accelerate
    launch`` parent is given a moment to copy it through its pipe, then stopped without its traceback."""
    status = code if isinstance(code, int) else (0 if code is None else 1)
    if status != 0 and parent_is_accelerate_launch():
        sys.stderr.flush()
        time.sleep(1.0)
        os.kill(os.getppid(), signal.SIGTERM)
    sys.exit(status)


def _write_to_launcher_stderr(line: str) -> None:
    """Write ``line`` to the parent's stderr directly; through our own (its pipe) where that cannot be opened."""
    sys.stderr.flush()
    try:
        with open(f"/proc/{os.getppid()}/fd/2", "a") as launcher_stderr:  # "w" would truncate a log file
            launcher_stderr.write(line)
        return
    except OSError:  # not Linux, or a socket
        pass
    sys.stderr.write(line)
    sys.stderr.flush()
    time.sleep(1.0)  # let the launcher copy it before it stops
