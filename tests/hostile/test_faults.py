"""Faults while training and preparing data: a SIGKILL at the worst moment of a checkpoint save, a full disk
(ENOSPC) while saving, a checkpoint damaged after it was completed. Resume must pick the newest intact
checkpoint and say what it skipped; what is lost is at most the steps since that checkpoint. The dataset
scripts' atomic files and clip folders must survive the same."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run_until_killed(script: str, *args: str) -> None:
    """Run ``script`` in a fresh interpreter, which must die of SIGKILL (sent by itself at the fault point)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr[-2000:]


# ------------------------------------------------------------------------------------------ checkpoints

_SAVE_THEN_KILL = """
    import os, signal, sys
    from pathlib import Path
    import torch
    from accelerate import Accelerator
    from visage_hf.models.configuration_visage import VisageConfig
    from visage_hf.models.modeling_visage import VisageForFOA
    from visage_hf.training import checkpointing
    from visage_hf.training.checkpointing import TrainerState, save_checkpoint

    output, kill_point = Path(sys.argv[1]), sys.argv[2]
    accelerator = Accelerator(cpu=True)
    model = VisageForFOA(VisageConfig.tiny())
    model, _ = accelerator.prepare(model, torch.optim.AdamW(model.parameters(), lr=1e-3))
    for step in (1, 2):
        save_checkpoint(accelerator, model, TrainerState(global_step=step), output, keep=None)
    real_replace = os.replace

    def replace(source, destination):
        source, destination = Path(source), Path(destination)
        if kill_point == "before_rename" and source.name == "checkpoint-3.tmp":
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(source, destination)
        if kill_point == "old_moved_aside" and destination.name.endswith(".trash"):
            os.kill(os.getpid(), signal.SIGKILL)

    checkpointing.os.replace = replace
    # old_moved_aside: saving step 2 again (a resumed run reaching it) replaces the existing checkpoint-2.
    step = 3 if kill_point == "before_rename" else 2
    save_checkpoint(accelerator, model, TrainerState(global_step=step), output, keep=None)
    print("not killed")
"""


def _resume_latest(output_dir: Path):
    from visage_hf.training.arguments import TrainingArguments
    from visage_hf.training.checkpointing import resolve_resume_checkpoint

    return resolve_resume_checkpoint(
        TrainingArguments(output_dir=str(output_dir), resume_from_checkpoint="latest")
    )


@pytest.mark.parametrize(("kill_point", "resumes_at"), [("before_rename", 2), ("old_moved_aside", 1)])
def test_sigkill_during_a_checkpoint_rename(tmp_path, kill_point, resumes_at):
    from visage_hf.training.checkpointing import remove_partial_checkpoints

    _run_until_killed(_SAVE_THEN_KILL, str(tmp_path), kill_point)
    folder = tmp_path / "checkpoints"
    leftovers = {"before_rename": "checkpoint-3.tmp", "old_moved_aside": "checkpoint-2.trash"}[kill_point]
    assert (folder / leftovers).is_dir()  # the kill really hit the middle of the save
    assert _resume_latest(tmp_path) == folder / f"checkpoint-{resumes_at}"
    remove_partial_checkpoints(folder)
    assert sorted(p.name for p in folder.iterdir()) == [f"checkpoint-{s}" for s in range(1, resumes_at + 1)]


@pytest.fixture
def prepared():
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from visage_hf.models.configuration_visage import VisageConfig
    from visage_hf.models.modeling_visage import VisageForFOA

    accelerator = Accelerator(cpu=True)
    model = VisageForFOA(VisageConfig.tiny())
    model, _ = accelerator.prepare(model, torch.optim.AdamW(model.parameters(), lr=1e-3))
    yield accelerator, model
    AcceleratorState._reset_state(reset_partial_state=True)


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["save_state", "marker"])
def test_disk_full_while_saving_keeps_the_previous_checkpoint(prepared, tmp_path, monkeypatch, where):
    from visage_hf.training import checkpointing
    from visage_hf.training.checkpointing import TrainerState, remove_partial_checkpoints, save_checkpoint

    accelerator, model = prepared
    save_checkpoint(accelerator, model, TrainerState(global_step=1), tmp_path, keep=2)
    real_write = checkpointing.write_json_atomic

    def write_until_marker(path, payload):
        if path.name == checkpointing.COMPLETE_MARKER:
            path.with_name(path.name + ".tmp").write_text('{"step": 2, "fil')  # half-written, then full
            _disk_full()
        real_write(path, payload)

    with monkeypatch.context() as patch:
        if where == "save_state":
            patch.setattr(accelerator, "save_state", _disk_full)
        else:
            patch.setattr(checkpointing, "write_json_atomic", write_until_marker)
        with pytest.raises(OSError) as raised:
            save_checkpoint(accelerator, model, TrainerState(global_step=2), tmp_path, keep=2)
    assert raised.value.errno == errno.ENOSPC
    assert _resume_latest(tmp_path).name == "checkpoint-1"
    remove_partial_checkpoints(tmp_path / "checkpoints")
    # Space is back: the next save works and nothing of the failed one remains.
    save_checkpoint(accelerator, model, TrainerState(global_step=2), tmp_path, keep=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["checkpoint-1", "checkpoint-2"]
    assert _resume_latest(tmp_path).name == "checkpoint-2"


def test_damaged_checkpoints_are_skipped_and_named(prepared, tmp_path, caplog):
    from visage_hf.training.arguments import TrainingArguments
    from visage_hf.training.checkpointing import (
        TrainerState,
        load_checkpoint,
        resolve_resume_checkpoint,
        save_checkpoint,
    )

    accelerator, model = prepared
    args = TrainingArguments(global_batch_size=8)
    for step in (1, 2, 3):
        state = TrainerState(global_step=step, global_batch_size=8, seed=args.seed)
        save_checkpoint(accelerator, model, state, tmp_path, keep=None)
    folder = tmp_path / "checkpoints"
    weights = folder / "checkpoint-3" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated
    optimizer = folder / "checkpoint-2" / "optimizer.bin"
    data = bytearray(optimizer.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    optimizer.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING, logger="visage_hf.training.checkpointing"):
        found = _resume_latest(tmp_path)
    assert found == folder / "checkpoint-1"
    skipped = [record.getMessage() for record in caplog.records]
    assert len(skipped) == 2
    assert "checkpoint-3: model.safetensors holds" in skipped[0]
    assert "checkpoint-2: optimizer.bin differs" in skipped[1]
    assert load_checkpoint(accelerator, found, args).global_step == 1

    explicit = TrainingArguments(
        output_dir=str(tmp_path), resume_from_checkpoint=str(folder / "checkpoint-3")
    )
    with pytest.raises(ValueError, match=r"checkpoint-3 is damaged: model.safetensors holds"):
        resolve_resume_checkpoint(explicit)
    (folder / "checkpoint-1" / "trainer_state.json").write_text("{")
    with pytest.raises(
        ValueError, match=r"no intact checkpoint to resume from: checkpoint-3: .*checkpoint-1"
    ):
        _resume_latest(tmp_path)


# ------------------------------------------------------------------------------------------ dataset scripts

_PUBLISH_THEN_KILL = """
    import os, signal, sys
    from pathlib import Path
    from dataset_scripts import jobs

    root, kill_point = Path(sys.argv[1]), sys.argv[2]
    target = root / "clip_a"
    real_replace = os.replace
    calls = []

    def replace(source, destination):
        calls.append(destination)
        if kill_point == "old_moved_aside" and len(calls) == 3:  # old version aside, new one not yet in
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(source, destination)

    jobs.os.replace = replace
    with jobs.staged_directory(target) as staging:  # a complete first version
        (staging / "audio.flac").write_bytes(b"old" * 100)
        (staging / "video.mp4").write_bytes(b"old" * 100)
    with jobs.staged_directory(target, overwrite=True) as staging:
        (staging / "audio.flac").write_bytes(b"new" * 100)
        if kill_point == "half_written":
            os.kill(os.getpid(), signal.SIGKILL)
        (staging / "video.mp4").write_bytes(b"new" * 100)
    with jobs.atomic_file(root / "index.json") as temporary:
        temporary.write_text("{}")
    print("not killed")
"""


@pytest.mark.parametrize("kill_point", ["half_written", "old_moved_aside"])
def test_dataset_clip_folders_survive_sigkill(tmp_path, kill_point):
    from dataset_scripts.jobs import STAGING_DIR, remove_stale_temporaries

    _run_until_killed(_PUBLISH_THEN_KILL, str(tmp_path), kill_point)
    assert any((tmp_path / STAGING_DIR).iterdir())  # the dead process left its staging behind
    target = tmp_path / "clip_a"
    if kill_point == "half_written":  # the old version is still whole
        assert sorted(p.name for p in target.iterdir()) == ["audio.flac", "video.mp4"]
        assert all(p.read_bytes() == b"old" * 100 for p in target.iterdir())
    else:  # the old version was moved aside, the new one not yet in: the clip is simply missing (redone)
        assert not target.exists()
    assert remove_stale_temporaries(tmp_path) >= 1
    assert not (tmp_path / STAGING_DIR).exists()


def test_dataset_file_write_with_a_full_disk_leaves_the_old_file(tmp_path, monkeypatch):
    from dataset_scripts.jobs import atomic_write_bytes, atomic_write_json

    target = tmp_path / "metadata.json"
    atomic_write_json(target, {"clips": 3})
    before = target.read_bytes()
    real_write_bytes = Path.write_bytes

    def half_then_full(self, data):
        real_write_bytes(self, data[: len(data) // 2])
        _disk_full()

    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    with pytest.raises(OSError) as raised:
        atomic_write_bytes(target, b"x" * 4096)
    monkeypatch.undo()
    assert raised.value.errno == errno.ENOSPC
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metadata.json"]
