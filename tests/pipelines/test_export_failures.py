"""Issue 13, weakness 4: an export that fails after some of its files are staged, or while they are being moved
into the output folder, leaves that folder exactly as it was (an earlier run's files intact, byte for byte, and no
new or temporary file), and no staging folder behind."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from visage_hf.pipelines import export
from visage_hf.pipelines.export import OUTPUT_FILES, export_generation

RATE = 16000


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    from visage_hf.data.synthetic import moving_object_video

    return moving_object_video(
        tmp_path_factory.mktemp("video") / "clip.mp4", 1.0, fps=10, width=96, height=72
    )


@pytest.fixture
def foa() -> np.ndarray:
    return np.random.default_rng(0).normal(0.0, 0.1, (4, RATE // 2)).astype(np.float32)


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) with its bytes."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()
    }


@pytest.fixture
def earlier_run(tmp_path) -> tuple[Path, dict[str, bytes]]:
    """An output folder holding an earlier run's files (distinct bytes per file) and one file of the user's."""
    folder = tmp_path / "out"
    folder.mkdir()
    for index, name in enumerate([*OUTPUT_FILES.values(), "notes.txt"]):
        (folder / name).write_bytes(f"earlier run, file {index}".encode())
    return folder, _snapshot(tmp_path)


class DiskFull(OSError):
    pass


def test_a_mux_failure_after_files_are_staged_leaves_the_earlier_run(earlier_run, foa, video, monkeypatch):
    folder, before = earlier_run
    staged_when_failing = []

    def failing_mux(path, *args, **kwargs):
        staged_when_failing.extend(sorted(entry.name for entry in Path(path).parent.iterdir()))
        raise DiskFull(28, "No space left on device")

    monkeypatch.setattr(export, "write_mp4", failing_mux)
    with pytest.raises(DiskFull):
        export_generation(folder, foa, RATE, 30.0, 0.0, video=video)
    # The failure came after the WAVs and the picture were complete in the staging folder ...
    assert staged_when_failing == sorted(
        [OUTPUT_FILES["binaural"], OUTPUT_FILES["energy_map"], OUTPUT_FILES["foa"]]
    )
    # ... and none of them reached the output folder, nothing was left beside it.
    assert _snapshot(folder.parent) == before


@pytest.mark.parametrize("failing_move", [1, 2, 4])
def test_a_failure_while_moving_the_files_in_restores_the_earlier_run(earlier_run, foa, video, monkeypatch, failing_move):  # fmt: skip
    """Moving five files in is five renames: a failure at the k-th one puts back the k - 1 already replaced."""
    folder, before = earlier_run
    real_replace = os.replace
    moves_in = []

    def replace(source, target):
        if Path(target).parent == folder and Path(source).parent != folder:
            moves_in.append(Path(target).name)
            if len(moves_in) == failing_move:
                raise DiskFull(28, "No space left on device")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(DiskFull):
        export_generation(folder, foa, RATE, 30.0, 0.0, video=video)
    assert _snapshot(folder.parent) == before


def test_an_export_into_a_new_folder_that_fails_leaves_no_folder(tmp_path, foa, video, monkeypatch):
    def failing_mux(*args, **kwargs):
        raise DiskFull(28, "No space left on device")

    monkeypatch.setattr(export, "write_mp4", failing_mux)
    with pytest.raises(DiskFull):
        export_generation(tmp_path / "new", foa, RATE, 30.0, 0.0, video=video)
    assert list(tmp_path.iterdir()) == []
