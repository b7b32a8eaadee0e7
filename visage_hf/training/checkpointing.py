"""Crash-safe training checkpoints: atomic `accelerator.save_state` folders, the latest complete one, pruning.

A checkpoint is written into ``checkpoints/checkpoint-N.tmp``; when every file is on disk (fsynced), the
marker ``checkpoint_complete.json`` is written last and the folder renamed to ``checkpoint-N``. Only folders
holding the marker count as checkpoints, so a kill at any moment of a save (or of a deletion: folders are
renamed away before they are removed) never leaves one that looks complete. Each checkpoint also holds the
model's ``config.json`` (a resumed run must match it) and ``trainer_state.json`` (step and data position).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..models.configuration_visage import VisageConfig
from ..utils.files import atomic_write_json, fsync_path
from .arguments import VisageTrainingArguments
from .checkpoint_integrity import file_manifest, manifest_problem, newest_intact

__all__ = [
    "COMPLETE_MARKER",
    "TRAINER_STATE",
    "TrainerState",
    "check_checkpoint_config",
    "complete_checkpoints",
    "discard_folder",
    "find_latest_checkpoint",
    "load_checkpoint",
    "remove_partial_checkpoints",
    "resolve_resume_checkpoint",
    "save_checkpoint",
    "write_json_atomic",
]

CHECKPOINT_PREFIX = "checkpoint-"
COMPLETE_MARKER = "checkpoint_complete.json"
TRAINER_STATE = "trainer_state.json"
# Config fields a resumed run may change: regularisation and caching, nothing that shapes weights or data.
RESUMABLE_CONFIG_CHANGES = frozenset(
    {"dropout", "attention_dropout", "activation_dropout", "visual_dropout_prob", "direction_dropout_prob"}
    | {"label_smoothing", "use_cache"}
)
logger = logging.getLogger(__name__)


@dataclass
class TrainerState:
    """Where training stands; saved in every checkpoint as ``trainer_state.json``."""

    global_step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0  # micro-batches of `epoch` already consumed
    global_batch_size: int = 0
    gradient_accumulation_steps: int = 1
    seed: int = 0
    num_processes: int = 1  # informational: a run may resume on another number of processes

    def check_compatible(self, args: VisageTrainingArguments, source: Path) -> None:
        for name in ("global_batch_size", "gradient_accumulation_steps", "seed"):
            if getattr(self, name) != getattr(args, name):
                raise ValueError(
                    f"checkpoint {source} was trained with {name}={getattr(self, name)}, this run has "
                    f"{getattr(args, name)}: the data position would not match; resume with the same value"
                )


def write_json_atomic(path: Path, payload: Any) -> None:
    """``payload`` as JSON at ``path``, atomically and fsynced (a marker must never be seen half-written)."""
    atomic_write_json(path, payload, sort_keys=False, fsync=True)


def _checkpoint_step(path: Path) -> int | None:
    suffix = path.name[len(CHECKPOINT_PREFIX) :]
    return int(suffix) if path.name.startswith(CHECKPOINT_PREFIX) and suffix.isdigit() else None


def complete_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Complete checkpoints under ``folder`` (those with the marker), oldest step first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [
        path
        for path in folder.iterdir()
        if path.is_dir() and _checkpoint_step(path) is not None and (path / COMPLETE_MARKER).is_file()
    ]
    return sorted(found, key=_checkpoint_step)


def find_latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The complete checkpoint with the highest step (folders without the marker are ignored)."""
    found = complete_checkpoints(folder)
    return found[-1] if found else None


def discard_folder(path: Path) -> None:
    """Delete a folder so that no interruption leaves it half-deleted under its name."""
    # Rename first: a kill during rmtree then never leaves a marker-bearing, half-deleted checkpoint.
    trash = path.with_name(path.name + ".trash")
    if trash.exists():
        shutil.rmtree(trash)
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


def save_checkpoint(accelerator, model, state: TrainerState, output_dir: Path, keep: int | None) -> Path:
    """``accelerator.save_state`` into ``checkpoint-N.tmp``, fsync, marker last, rename; keep the last ``keep``."""
    folder = output_dir / "checkpoints"
    final = folder / f"{CHECKPOINT_PREFIX}{state.global_step}"
    staging = folder / f"{final.name}.tmp"
    if accelerator.is_main_process:
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(staging / TRAINER_STATE, dataclasses.asdict(state))
        accelerator.unwrap_model(model, keep_torch_compile=False).config.to_json_file(staging / "config.json")
        for path in staging.rglob("*"):
            if path.is_file():
                fsync_path(path)
        manifest = file_manifest(staging, exclude=(COMPLETE_MARKER,))
        write_json_atomic(staging / COMPLETE_MARKER, {"step": state.global_step, "files": manifest})
        fsync_path(staging)
        if final.exists():
            discard_folder(final)
        os.replace(staging, final)
        fsync_path(folder)
        if keep is not None and keep > 0:
            for old in complete_checkpoints(folder)[:-keep]:
                discard_folder(old)
    accelerator.wait_for_everyone()
    return final


def resolve_resume_checkpoint(args: VisageTrainingArguments) -> Path | None:
    """The checkpoint to resume from: ``latest`` (None when there is none yet) or an explicit complete folder."""
    value = args.resume_from_checkpoint
    if not value:
        return None
    if value == "latest":
        candidates = complete_checkpoints(Path(args.output_dir) / "checkpoints")
        found, skipped = newest_intact(candidates, COMPLETE_MARKER)
        for line in skipped:
            logger.warning("skipping damaged checkpoint %s", line)
        if found is None and skipped:
            raise ValueError(f"no intact checkpoint to resume from: {'; '.join(skipped)}")
        return found
    path = Path(value)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if not (path / COMPLETE_MARKER).is_file():
        raise ValueError(
            f"checkpoint {path} is incomplete (no {COMPLETE_MARKER}): it was interrupted while saving"
        )
    problem = manifest_problem(path, COMPLETE_MARKER)
    if problem is not None:
        raise ValueError(f"checkpoint {path} is damaged: {problem}")
    return path


def check_checkpoint_config(checkpoint: Path, config: VisageConfig) -> None:
    """ValueError unless the checkpoint was made by a model of the same architecture and data layout."""
    saved = json.loads((checkpoint / "config.json").read_text())
    current = config.to_dict()
    fields = sorted(set(VisageConfig.__annotations__) - RESUMABLE_CONFIG_CHANGES)
    differences = {
        name: (saved.get(name), current.get(name)) for name in fields if saved.get(name) != current.get(name)
    }
    if differences:
        detail = ", ".join(
            f"{name}: checkpoint {old!r} vs now {new!r}" for name, (old, new) in differences.items()
        )
        raise ValueError(f"checkpoint {checkpoint} was made with a different model config ({detail})")


def load_checkpoint(accelerator, checkpoint: Path, args: VisageTrainingArguments) -> TrainerState:
    """Restore model, optimizer, scheduler and RNG states; return the saved trainer state."""
    state = TrainerState(**json.loads((checkpoint / TRAINER_STATE).read_text()))
    state.check_compatible(args, checkpoint)
    accelerator.load_state(str(checkpoint))
    return state


def remove_partial_checkpoints(folder: Path) -> None:
    """Delete leftovers of interrupted saves and deletions (main process, before training)."""
    if folder.is_dir():
        for path in folder.iterdir():
            if path.name.endswith((".tmp", ".trash")) or (
                path.is_dir() and not (path / COMPLETE_MARKER).is_file()
            ):
                shutil.rmtree(path, ignore_errors=True)
