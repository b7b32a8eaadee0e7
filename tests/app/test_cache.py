"""The Space's cache sweep (visage_hf/app/cache.py): old files go, kept ones stay, and a request adding a file
while a sweep runs does not end the sweeping (Gradio's own delete_cache task dies on exactly that)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import SimpleNamespace

from visage_hf.app import cache


def _blocks(tmp_path: Path, count: int, kept: int = 0):
    """A stand-in for gr.Blocks: one set of cached file names, ``kept`` of them held by a component."""
    names = []
    for index in range(count):
        path = tmp_path / f"cached-{index}.wav"
        path.write_bytes(b"x")
        names.append(str(path))
    component = SimpleNamespace(keep_in_cache=set(names[:kept]))
    return SimpleNamespace(blocks={1: component}, temp_file_sets=[set(names)]), names


def test_old_files_go_new_and_kept_files_stay(tmp_path, monkeypatch):
    blocks, names = _blocks(tmp_path, 5, kept=1)
    assert cache.sweep_cached_files(blocks, max_age_s=3600) == 0  # all made just now
    assert all(os.path.exists(name) for name in names)
    now = cache.time.time()
    monkeypatch.setattr(cache.time, "time", lambda: now + 7200)  # two hours later
    assert cache.sweep_cached_files(blocks, max_age_s=3600) == 4
    assert [os.path.exists(name) for name in names] == [True, False, False, False, False]
    assert blocks.temp_file_sets[0] == {names[0]}


def test_a_file_added_during_the_sweep_does_not_stop_it(tmp_path, monkeypatch):
    """Each file looked at, a request thread caches one more (as Gradio's request threads do meanwhile)."""
    blocks, names = _blocks(tmp_path, 4)
    files = blocks.temp_file_sets[0]
    real_lstat = os.lstat
    added = []

    def lstat_while_a_request_adds(name, *args, **kwargs):
        new = tmp_path / f"added-{len(added)}.wav"
        new.write_bytes(b"y")
        added.append(str(new))
        files.add(str(new))
        return real_lstat(name, *args, **kwargs)

    monkeypatch.setattr(cache.os, "lstat", lstat_while_a_request_adds)
    now = cache.time.time()
    monkeypatch.setattr(cache.time, "time", lambda: now + 10)
    assert cache.sweep_cached_files(blocks, max_age_s=5) == 4
    assert not any(os.path.exists(name) for name in names)
    assert files == set(added)  # the newcomers wait for the next sweep


def test_the_sweeper_survives_a_failing_sweep_and_empties_the_cache_when_stopped(tmp_path, monkeypatch):
    blocks, names = _blocks(tmp_path, 3)
    real_sweep = cache.sweep_cached_files
    calls = []
    swept_twice = threading.Event()

    def flaky_sweep(blocks, max_age_s):
        calls.append(max_age_s)
        if len(calls) == 1:
            raise RuntimeError("Set changed size during iteration")
        if len(calls) >= 2:
            swept_twice.set()
        return real_sweep(blocks, max_age_s)

    monkeypatch.setattr(cache, "sweep_cached_files", flaky_sweep)
    sweeper = cache.CacheSweeper(blocks, every_s=0.01, max_age_s=3600).start()
    assert swept_twice.wait(10), "the sweeper stopped after its first failure"
    assert all(os.path.exists(name) for name in names)  # younger than an hour
    assert sweeper.stop() == 3
    assert not any(os.path.exists(name) for name in names)
    assert calls[-1] is None
