"""Tests of visage_hf.utils.files: a failure mid-write leaves the old file (or folder) exactly as it was, and no
temporary behind; leftovers of dead processes are recognised and removed, those of live ones kept."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from visage_hf.utils import files


class Crash(RuntimeError):
    pass


def _visible_and_hidden(folder):
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*"))


def test_a_crash_inside_the_context_keeps_the_old_file(tmp_path):
    target = tmp_path / "report.csv"
    target.write_text("old\n")
    with pytest.raises(Crash), files.atomic_output_path(target) as temporary:
        temporary.write_text("half of the new cont")
        raise Crash
    assert target.read_text() == "old\n"
    assert _visible_and_hidden(tmp_path) == ["report.csv"]


@pytest.mark.parametrize("fsync", [False, True])
def test_writers_replace_the_file_whole(tmp_path, fsync):
    target = tmp_path / "sub" / "a.json"
    files.atomic_write_json(target, {"b": 1, "a": [1, 2]}, fsync=fsync)
    assert json.loads(target.read_text()) == {"a": [1, 2], "b": 1}
    files.atomic_write_text(target, "line\r\nnext\n")
    assert target.read_bytes() == b"line\r\nnext\n"  # newlines as given, no platform translation
    arrays = {"x": np.arange(6).reshape(2, 3), "y": np.float32([0.5])}
    files.atomic_save_npz(tmp_path / "c.npz", arrays)
    with np.load(tmp_path / "c.npz") as loaded:
        assert {name: loaded[name].tolist() for name in loaded} == {k: v.tolist() for k, v in arrays.items()}
    assert _visible_and_hidden(tmp_path) == ["c.npz", "sub", "sub/a.json"]


def test_the_temporary_keeps_the_extension_and_is_recognised(tmp_path):
    with files.atomic_output_path(tmp_path / "clip.wav") as temporary:
        assert temporary.parent == tmp_path and temporary.suffix == ".wav" and temporary.name.startswith(".")
        assert files.is_temporary(temporary.name)
        temporary.write_bytes(b"x")
    assert not files.is_temporary("clip.wav") and not files.is_temporary(".hidden.wav")


def test_a_crash_while_staging_a_folder_keeps_the_old_folder(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("old")
    with pytest.raises(Crash), files.staged_directory(target, overwrite=True) as staging:
        (staging / "weights").write_text("new")
        raise Crash
    assert (target / "weights").read_text() == "old"
    assert _visible_and_hidden(tmp_path) == ["model", "model/weights"]
    with files.staged_directory(target, overwrite=True) as staging:
        (staging / "weights").write_text("new")
    assert _visible_and_hidden(tmp_path) == ["model", "model/weights"]
    assert (target / "weights").read_text() == "new"
    with pytest.raises(FileExistsError), files.staged_directory(target) as staging:
        pass


def test_staged_files_move_in_only_on_success(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "kept.txt").write_text("other file")
    with pytest.raises(Crash), files.staged_files(folder) as staging:
        (staging / "a.wav").write_text("a")
        raise Crash
    assert _visible_and_hidden(tmp_path) == ["out", "out/kept.txt"]
    with files.staged_files(folder) as staging:
        (staging / "a.wav").write_text("a")
    assert _visible_and_hidden(tmp_path) == ["out", "out/a.wav", "out/kept.txt"]


def test_only_leftovers_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    live = files._temporary_name("a.wav", ".wav")  # this process: alive
    stale = live.replace(f"-{os.getpid()}-", f"-{dead_pid}-")
    for name in (live, stale, "a.wav"):
        (tmp_path / name).write_bytes(b"")
    assert files.remove_stale_temporaries(tmp_path) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([live, "a.wav"])
