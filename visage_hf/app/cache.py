"""Removing the files Gradio cached for the Space (uploads and served results) once they are old, and all of
them when the server stops.

Gradio's own ``delete_cache`` task walks its live sets of cached files in a worker thread while request threads
add to them; the first ``RuntimeError: Set changed size during iteration`` ends that task for good, silently, and
the cache grows from then on (seen after ~120 requests in ``benchmarks/space_load.py``). This sweep walks copies
of the sets instead (``list`` of a built-in set is taken under the GIL, so no request thread can change it midway).
"""

from __future__ import annotations

import logging
import os
import threading
import time

__all__ = ["CacheSweeper", "sweep_cached_files"]

logger = logging.getLogger(__name__)


def sweep_cached_files(blocks, max_age_s: float | None) -> int:
    """Delete the files ``blocks`` (a ``gr.Blocks``) cached more than ``max_age_s`` seconds ago (all of them for
    None), except those a component keeps for good (its examples); returns how many were deleted."""
    keep = set()
    for component in list(blocks.blocks.values()):
        keep.update(getattr(component, "keep_in_cache", ()))
    deleted = 0
    now = time.time()
    for files in list(blocks.temp_file_sets):
        for name in list(files):
            if name in keep:
                continue
            try:
                if max_age_s is not None and now - os.lstat(name).st_ctime <= max_age_s:
                    continue
                os.remove(name)
                deleted += 1
            except FileNotFoundError:
                pass
            except OSError as error:  # a folder or a busy file: leave it for the next sweep
                logger.warning("could not delete cached file %s: %s", name, error)
                continue
            files.discard(name)
    return deleted


class CacheSweeper:
    """A daemon thread running `sweep_cached_files` every ``every_s`` seconds until `stop`, which sweeps every
    cached file one last time. A failing sweep is logged and the next one still runs."""

    def __init__(self, blocks, every_s: float, max_age_s: float):
        self.blocks, self.every_s, self.max_age_s = blocks, every_s, max_age_s
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="visage-cache-sweeper", daemon=True)

    def start(self) -> CacheSweeper:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopped.wait(self.every_s):
            try:
                sweep_cached_files(self.blocks, self.max_age_s)
            except Exception:  # never let one bad sweep end the sweeping, as Gradio's task does
                logger.exception("sweeping Gradio's cache failed; trying again in %.0f s", self.every_s)

    def stop(self) -> int:
        """Stop the thread and delete every cached file; returns how many the last sweep deleted."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        return sweep_cached_files(self.blocks, None)
