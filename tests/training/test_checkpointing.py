"""Tests of visage_hf.training.checkpointing: atomic checkpoint folders, the latest complete one, pruning, checks."""

from __future__ import annotations

import json

import pytest
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState

from visage_hf.models.configuration_visage import VisageConfig
from visage_hf.models.modeling_visage import VisageForFOA
from visage_hf.training.arguments import VisageTrainingArguments
from visage_hf.training.checkpointing import (
    COMPLETE_MARKER,
    TrainerState,
    check_checkpoint_config,
    find_latest_checkpoint,
    remove_partial_checkpoints,
    save_checkpoint,
)


@pytest.fixture
def prepared():
    accelerator = Accelerator(cpu=True)
    model = VisageForFOA(VisageConfig.tiny())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, optimizer = accelerator.prepare(model, optimizer)
    yield accelerator, model
    AcceleratorState._reset_state(reset_partial_state=True)


def test_latest_checkpoint_ignores_folders_without_the_marker(tmp_path):
    for name, complete in (("checkpoint-5", True), ("checkpoint-12", False), ("checkpoint-7.tmp", True)):
        (tmp_path / name).mkdir()
        if complete:
            (tmp_path / name / COMPLETE_MARKER).write_text("{}")
    (tmp_path / "checkpoint-3").mkdir()
    (tmp_path / "checkpoint-3" / COMPLETE_MARKER).write_text("{}")
    assert find_latest_checkpoint(tmp_path) == tmp_path / "checkpoint-5"  # by step, not by name or time
    assert find_latest_checkpoint(tmp_path / "missing") is None
    remove_partial_checkpoints(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-3", "checkpoint-5"]


def test_save_writes_complete_folders_and_keeps_the_last_ones(prepared, tmp_path):
    accelerator, model = prepared
    for step in (2, 4, 6):
        state = TrainerState(global_step=step, epoch=0, batches_in_epoch=step, global_batch_size=8)
        final = save_checkpoint(accelerator, model, state, tmp_path, keep=2)
        assert final == tmp_path / "checkpoints" / f"checkpoint-{step}"
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["checkpoint-4", "checkpoint-6"]
    latest = find_latest_checkpoint(tmp_path / "checkpoints")
    assert json.loads((latest / "trainer_state.json").read_text())["batches_in_epoch"] == 6
    marker = json.loads((latest / COMPLETE_MARKER).read_text())
    assert marker["step"] == 6
    assert marker["files"]["model.safetensors"]["size"] == (latest / "model.safetensors").stat().st_size
    assert VisageConfig.from_json_file(latest / "config.json").d_model == 32
    assert (latest / "model.safetensors").is_file() and (latest / "optimizer.bin").is_file()


def test_a_crash_during_save_leaves_no_complete_looking_checkpoint(prepared, tmp_path, monkeypatch):
    accelerator, model = prepared
    save_checkpoint(accelerator, model, TrainerState(global_step=1), tmp_path, keep=None)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(accelerator, "save_state", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(accelerator, model, TrainerState(global_step=2), tmp_path, keep=None)
    assert (tmp_path / "checkpoints" / "checkpoint-2.tmp").is_dir()
    assert find_latest_checkpoint(tmp_path / "checkpoints").name == "checkpoint-1"


def test_checkpoint_of_another_architecture_is_rejected(tmp_path):
    VisageConfig.tiny().to_json_file(tmp_path / "config.json")
    check_checkpoint_config(tmp_path, VisageConfig.tiny(dropout=0.3))  # regularisation may change
    with pytest.raises(ValueError, match="d_model: checkpoint 32 vs now 64"):
        check_checkpoint_config(tmp_path, VisageConfig.tiny(d_model=64))
    with pytest.raises(ValueError, match="num_channels: checkpoint 4 vs now 1"):
        check_checkpoint_config(tmp_path, VisageConfig.tiny(num_channels=1))


def test_resume_needs_the_same_global_batch_and_seed(tmp_path):
    state = TrainerState(global_step=10, global_batch_size=64, gradient_accumulation_steps=1, seed=1115)
    state.check_compatible(VisageTrainingArguments(global_batch_size=64, seed=1115), tmp_path)
    with pytest.raises(ValueError, match="global_batch_size=64, this run has 32"):
        state.check_compatible(VisageTrainingArguments(global_batch_size=32, seed=1115), tmp_path)
    with pytest.raises(ValueError, match="seed=1115, this run has 1"):
        state.check_compatible(VisageTrainingArguments(global_batch_size=64, seed=1), tmp_path)
