"""Guards for hostile-input tests: each call must finish in bounded time and memory."""

from __future__ import annotations

import resource
import signal
from contextlib import contextmanager


class Hang(Exception):
    """A call ran past its time bound (raised from SIGALRM, so it is not one of the parsers' errors)."""


@contextmanager
def bounded(seconds: int = 20, megabytes: int = 300):
    """Fail if the body runs longer than ``seconds`` or raises the process's peak RSS by ``megabytes``.

    The peak-RSS check can only see growth above the process's previous peak, so a bomb that allocated what
    it declares (hundreds of MB to GB here) shows; a small leak would not."""

    def on_alarm(signum, frame):
        raise Hang(f"call did not finish within {seconds} s")

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown < megabytes, f"peak memory grew by {grown:.0f} MB (bound {megabytes} MB)"
