"""Load and convert checkpoints of the original ViSAGe implementation (github.com/jaeyeonkim99/visage).

The reading and mapping live in :mod:`visage_hf.models.original_checkpoint` (a module the model itself uses
in `VisageForFOA.from_pretrained`); this module binds them to `VisageForFOA`:

- `load_original_checkpoint` / `resolve_and_load` / `maybe_load_original_checkpoint` load a folder or a Hub
  repo in the original layout as a `VisageForFOA` in ``mode="original"``;
- `convert_original` writes it in our format.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..utils.files import staged_directory
from .modeling_visage import VisageForFOA
from .original_checkpoint import (
    ORIGINAL_GENERATION_SETTINGS,
    choose_checkpoint_folder,
    convert_config,
    convert_generation_settings,
    convert_state_dict,
    convert_to_model,
    find_checkpoint_folders,
    find_original_checkpoint,
    find_original_source,
    is_original_checkpoint,
    is_original_config,
    load_converted,
    load_original_state_dict,
    resolve_original_folder,
)


def build_converted_model(
    original_config: Mapping[str, Any],
    original_state_dict: Mapping[str, torch.Tensor],
    dtype: torch.dtype | None = None,
) -> VisageForFOA:
    """A `VisageForFOA` holding the original weights (FOA or mono, decided by the number of heads).

    Raises:
        ValueError: unmapped, missing or unexpected keys, or tensors whose shapes disagree with the config.
    """
    return convert_to_model(VisageForFOA, original_config, original_state_dict, dtype=dtype)


def load_original_checkpoint(
    path: str | os.PathLike, subfolder: str | None = None, dtype: torch.dtype | None = None
) -> VisageForFOA:
    """Load an original ViSAGe checkpoint folder (``config.json`` + ``pytorch_model.bin`` or
    ``model.safetensors``, at ``path`` or in one sub-folder) as a `VisageForFOA` in ``mode="original"``."""
    return load_converted(VisageForFOA, find_original_checkpoint(path, subfolder), dtype=dtype)


def resolve_and_load(
    repo_id_or_path: str | os.PathLike,
    revision: str | None = None,
    subfolder: str | None = None,
    dtype: torch.dtype | None = None,
) -> VisageForFOA:
    """Load an original ViSAGe checkpoint from a local folder or a Hub repo id (e.g. ``jaeyeonkim99/visage``).

    For a Hub repo only the chosen checkpoint's ``config.json`` and weights are downloaded.
    """
    folder = resolve_original_folder(repo_id_or_path, revision=revision, subfolder=subfolder)
    return load_converted(VisageForFOA, folder, dtype=dtype)


def maybe_load_original_checkpoint(
    repo_id_or_path: str | os.PathLike,
    revision: str | None = None,
    subfolder: str | None = None,
    dtype: torch.dtype | None = None,
) -> VisageForFOA | None:
    """The converted model when ``repo_id_or_path`` is in the original layout, else None (our own format).

    See `find_original_source` for how a folder or Hub repo is recognised.
    """
    folder = find_original_source(repo_id_or_path, revision=revision, subfolder=subfolder)
    return None if folder is None else load_converted(VisageForFOA, folder, dtype=dtype)


# ------------------------------------------------------------------------------------------------ writing
def convert_original(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    revision: str | None = None,
    subfolder: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Convert an original ViSAGe checkpoint (folder or Hub id) and write it in our format with
    `save_pretrained` (safetensors + config.json + generation_config.json).

    The folder is written next to ``dst`` first and moved into place at the end, so a crash leaves no
    half-written checkpoint.

    Raises:
        FileExistsError: ``dst`` exists and is not empty, and ``overwrite`` is False.
    """
    dst = Path(dst)
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise FileExistsError(f"{dst} exists and is not empty; pass overwrite=True to replace it")
    model = resolve_and_load(src, revision=revision, subfolder=subfolder)
    with staged_directory(dst, overwrite=True) as staging:  # an empty or allowed dst is replaced
        model.save_pretrained(staging)
    return dst


__all__ = [
    "ORIGINAL_GENERATION_SETTINGS",
    "build_converted_model",
    "choose_checkpoint_folder",
    "convert_config",
    "convert_generation_settings",
    "convert_original",
    "convert_state_dict",
    "find_checkpoint_folders",
    "find_original_checkpoint",
    "is_original_checkpoint",
    "is_original_config",
    "load_original_checkpoint",
    "load_original_state_dict",
    "maybe_load_original_checkpoint",
    "resolve_and_load",
]
