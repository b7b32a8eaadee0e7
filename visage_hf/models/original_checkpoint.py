"""Read checkpoints of the original ViSAGe implementation (github.com/jaeyeonkim99/visage) into our classes.

The original saves a BART-derived model: ``config.json`` with ``model_type`` "bart" plus ViSAGe fields
(``num_rvq``, ``dac_vocab_size``, ...), and weights in ``pytorch_model.bin`` (accelerate's ``save_state``,
with a ``module.`` prefix after DDP training) or ``model.safetensors``. This module maps both to
`VisageConfig` / `VisageForFOA`:

- `convert_state_dict` renames tensors (the layers keep BART's names; see ``_RENAMED_PREFIXES``);
- `convert_config` maps the config fields and sets ``mode="original"`` (the original's frame arithmetic,
  last-frame padding, logit-space guidance and per-stream sampling order);
- `find_original_source` / `load_converted` find an original checkpoint (local folder or Hub repo) and build
  a model class from it. The class is a parameter, so that `VisageForFOA.from_pretrained` can use this module
  without an import circle; :mod:`visage_hf.models.convert_original` binds it to `VisageForFOA`.

Where the checkpoint sits inside a folder or Hub repo is not assumed: the folder holding ``config.json`` and
the weights is searched for (the root, or a single sub-folder such as ``checkpoints/epoch_79``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import posixpath
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from .configuration_visage import VisageConfig

logger = logging.getLogger(__name__)

# Config fields only the original ViSAGe config has (on top of BartConfig).
ORIGINAL_CONFIG_FIELDS = ("d_clip", "num_rvq", "dac_vocab_size", "dac_pad_token_id", "max_target_length")

# Defaults of the original `VisageConfig` and of `BartConfig` (transformers 4.40), used for fields a
# config.json leaves out, exactly as the original's `from_pretrained` would.
_ORIGINAL_DEFAULTS: dict[str, Any] = {
    "d_clip": 512,
    "num_rvq": 9,
    "dac_vocab_size": 1024,
    "dac_pad_token_id": 1024,
    "dac_sample_rate": 44100,
    "max_source_length": 80,
    "max_target_length": 861,
    "clip_frame_rate": 4,
    "classifier_free_guidance": True,
    "cfg_dropout_prob": 0.1,
    "cfg_guidance_scale": 3.0,
    "cfg_spatial_guidance_scale": 3.0,
    "label_smoothing": 0.0,
    "d_model": 1024,
    "encoder_layers": 12,
    "decoder_layers": 12,
    "encoder_attention_heads": 16,
    "decoder_attention_heads": 16,
    "encoder_ffn_dim": 4096,
    "decoder_ffn_dim": 4096,
    "activation_function": "gelu",
    "dropout": 0.1,
    "attention_dropout": 0.0,
    "activation_dropout": 0.0,
    "init_std": 0.02,
    "scale_embedding": False,
}

# The released generation script (`generate_ambi.py`) samples with top-k 256 and joint guidance 2.5,
# passed explicitly rather than read from the config.
ORIGINAL_GENERATION_SETTINGS: dict[str, Any] = {
    "do_sample": True,
    "top_k": 256,
    "guidance_mode": "joint",
    "cfg_guidance_scale": 2.5,
}

_RENAMED_TOP_LEVEL = {
    "null_embedding": "null_clip_embedding",
    "energy_null_embedding": "null_energy_embedding",
    "dir_null_embedding": "null_direction_embedding",
}
_RENAMED_PREFIXES = (
    ("model.encoder.energy_map_projection.", "model.encoder.energy_projection."),
    ("model.encoder.direction_embedding.", "model.encoder.direction_projection."),
    ("model.decoder.embed_dac.", "model.decoder.embed_codes."),
    ("dac_heads.", "heads."),
)
_KEPT_PREFIXES = ("model.encoder.", "model.decoder.")
# Created by the original encoder but never used in its forward.
_DROPPED_KEYS = frozenset({"model.encoder.embed_spatial.weight"})

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_SEARCH_DEPTH = 4


# ---------------------------------------------------------------------------------------------- state dict
def normalize_original_key(key: str) -> str:
    """Strip DDP's ``module.`` prefix(es) and restore the ``model.`` base prefix when it was dropped."""
    while key.startswith("module."):
        key = key[len("module.") :]
    if key.startswith(("encoder.", "decoder.")):
        key = "model." + key
    return key


def rename_original_key(key: str) -> str | None:
    """Our name for one (normalized) original key; None for a tensor the conversion drops.

    Raises:
        ValueError: the key belongs to no part of the original model.
    """
    if key in _DROPPED_KEYS:
        return None
    if key in _RENAMED_TOP_LEVEL:
        return _RENAMED_TOP_LEVEL[key]
    for old, new in _RENAMED_PREFIXES:
        if key.startswith(old):
            return new + key[len(old) :]
    if key.startswith(_KEPT_PREFIXES):
        return key
    raise ValueError(f"unmapped key {key!r}")


def convert_state_dict(
    original_state_dict: Mapping[str, torch.Tensor], expected_keys: Iterable[str] | None = None
) -> dict[str, torch.Tensor]:
    """Map an original ViSAGe state dict to `VisageForFOA` names.

    Args:
        original_state_dict: tensors under the original names (``dac_heads.j.*``, ``model.decoder.embed_dac.j.*``,
            ...), optionally prefixed by ``module.`` and with or without the ``model.`` base prefix.
        expected_keys: our model's state-dict keys; when given, missing and unexpected keys raise.

    Returns:
        A new dict with our names (the unused ``embed_spatial`` dropped); tensors are not copied.

    Raises:
        ValueError: listing every key that maps nowhere, every duplicate, and (with ``expected_keys``) every
            key our model has that the checkpoint lacks, or the other way round.
    """
    converted: dict[str, torch.Tensor] = {}
    unmapped, duplicates = [], []
    for key, tensor in original_state_dict.items():
        try:
            new_key = rename_original_key(normalize_original_key(key))
        except ValueError:
            unmapped.append(key)
            continue
        if new_key is None:
            continue
        if new_key in converted:
            duplicates.append(key)
        converted[new_key] = tensor
    problems = []
    if unmapped:
        problems.append(f"keys that are not part of an original ViSAGe model: {sorted(unmapped)}")
    if duplicates:
        problems.append(f"keys present twice (with and without a prefix): {sorted(duplicates)}")
    if expected_keys is not None:
        expected = set(expected_keys)
        missing = sorted(expected - converted.keys())
        unexpected = sorted(converted.keys() - expected)
        if missing:
            problems.append(f"tensors the model needs but the checkpoint lacks: {missing}")
        if unexpected:
            problems.append(f"converted tensors the model has no place for: {unexpected}")
    if problems:
        raise ValueError("cannot convert the original ViSAGe state dict; " + "; ".join(problems))
    return converted


def count_original_heads(original_state_dict: Mapping[str, torch.Tensor]) -> int:
    """Number of output heads (code streams) in an original state dict: 36 for FOA, 9 for mono."""
    heads = set()
    for key in original_state_dict:
        key = normalize_original_key(key)
        if key.startswith("dac_heads.") and key.endswith(".weight"):
            heads.add(key.split(".")[1])
    return len(heads)


def looks_like_original_state_dict(keys: Iterable[str]) -> bool:
    """True when the keys use the original's names (``dac_heads.*`` or ``*.embed_dac.*``)."""
    for key in keys:
        key = normalize_original_key(key)
        if key.startswith("dac_heads.") or ".embed_dac." in key or key in _RENAMED_TOP_LEVEL:
            return True
    return False


# ------------------------------------------------------------------------------------------------- config
def is_original_config(config: Mapping[str, Any]) -> bool:
    """True for an original ViSAGe config: BART ``model_type`` (or none, as in the repo's
    ``cfg/config.json``) and the ViSAGe-only fields."""
    return config.get("model_type", "bart") == "bart" and any(f in config for f in ORIGINAL_CONFIG_FIELDS)


def original_setting(config: Mapping[str, Any], name: str) -> Any:
    """A field of an original config, or the original's default when the file leaves it out."""
    value = config.get(name)
    return _ORIGINAL_DEFAULTS[name] if value is None else value


def original_hop_length(sample_rate: int) -> int:
    # The original knows two codecs: DAC 44.1 kHz (hop 512) and, for any other rate, DAC 16 kHz (hop 320).
    return 512 if sample_rate == 44100 else 320


def convert_config(original_config: Mapping[str, Any], num_channels: int = 4) -> VisageConfig:
    """Map an original ViSAGe ``config.json`` (as a dict) to `VisageConfig` with ``mode="original"``.

    Args:
        original_config: the original config; fields it leaves out take the original's class defaults.
        num_channels: 4 (FOA, `VisageForAmbisonicsGeneration`) or 1 (mono, `VisageForConditionalGeneration`);
            the original config does not say which, its state dict does (see `count_original_heads`).

    Raises:
        ValueError: the config is not an original ViSAGe config, or asks for something our model cannot do.
    """
    if not is_original_config(original_config):
        raise ValueError(
            "expected an original ViSAGe config (model_type 'bart' with fields such as "
            f"{list(ORIGINAL_CONFIG_FIELDS)}), got model_type {original_config.get('model_type')!r} "
            f"and fields {sorted(original_config)[:12]}"
        )
    setting = lambda name: original_setting(original_config, name)  # noqa: E731
    if setting("scale_embedding"):
        raise ValueError("scale_embedding=True is not used by ViSAGe and is not supported")
    vocab = int(setting("dac_vocab_size"))
    sample_rate = int(setting("dac_sample_rate"))
    return VisageConfig(
        d_model=int(setting("d_model")),
        encoder_layers=int(setting("encoder_layers")),
        decoder_layers=int(setting("decoder_layers")),
        encoder_attention_heads=int(setting("encoder_attention_heads")),
        decoder_attention_heads=int(setting("decoder_attention_heads")),
        encoder_ffn_dim=int(setting("encoder_ffn_dim")),
        decoder_ffn_dim=int(setting("decoder_ffn_dim")),
        activation_function=setting("activation_function"),
        dropout=float(setting("dropout")),
        attention_dropout=float(setting("attention_dropout")),
        activation_dropout=float(setting("activation_dropout")),
        init_std=float(setting("init_std")),
        layer_norm_eps=1e-5,  # the original's nn.LayerNorm default
        clip_dim=int(setting("d_clip")),
        energy_map_dim=49,
        direction_dim=3,
        num_channels=num_channels,
        num_codebooks=int(setting("num_rvq")),
        codebook_size=vocab,
        code_pad_id=int(setting("dac_pad_token_id")),
        # The original rounds the table (vocabulary + pad) up to a multiple of 64 rows.
        code_embedding_rows=math.ceil((vocab + 1) / 64) * 64,
        max_source_positions=int(setting("max_source_length")),
        max_target_positions=int(setting("max_target_length")),
        sample_rate=sample_rate,
        hop_length=original_hop_length(sample_rate),
        video_fps=int(setting("clip_frame_rate")),
        pattern="visage",
        mode="original",
        visual_dropout_prob=float(setting("cfg_dropout_prob")),
        direction_dropout_prob=float(setting("cfg_dropout_prob")),
        label_smoothing=float(setting("label_smoothing")),
    )


def convert_generation_settings(original_config: Mapping[str, Any], num_channels: int = 4) -> dict[str, Any]:
    """Generation defaults that reproduce the released original generation (see `ORIGINAL_GENERATION_SETTINGS`).

    The direction scale of dual guidance comes from ``cfg_spatial_guidance_scale`` (the original's unused
    `generate_dual_cfg`); a model trained without guidance nulls generates unguided.
    """
    settings = dict(ORIGINAL_GENERATION_SETTINGS)
    if num_channels == 4:
        settings["cfg_direction_guidance_scale"] = float(
            original_setting(original_config, "cfg_spatial_guidance_scale")
        )
    if not original_setting(original_config, "classifier_free_guidance"):
        settings["guidance_mode"] = "none"
    return settings


# -------------------------------------------------------------------------------------- locating checkpoints
def _has_weights(names: set[str]) -> bool:
    return any(name in names for name in _WEIGHT_FILES + _WEIGHT_INDEXES)


def find_checkpoint_folders(paths: Iterable[str]) -> list[str]:
    """Folders (relative, POSIX, ``""`` for the root) that hold a ``config.json`` and model weights.

    Args:
        paths: relative file paths, e.g. a local folder's walk or a Hub repo's file list.
    """
    files_by_folder: dict[str, set[str]] = {}
    for path in paths:
        folder, name = posixpath.split(path.replace(os.sep, "/"))
        files_by_folder.setdefault(folder, set()).add(name)
    found = [
        folder for folder, names in files_by_folder.items() if "config.json" in names and _has_weights(names)
    ]
    return sorted(found, key=lambda folder: (folder.count("/") + bool(folder), folder))


def choose_checkpoint_folder(paths: Iterable[str], subfolder: str | None = None, source: str = "") -> str:
    """The one checkpoint folder among ``paths``: ``subfolder`` if given, else the root, else the only one.

    Raises:
        FileNotFoundError: no folder holds config.json and weights (or not ``subfolder``).
        ValueError: several candidate folders and no ``subfolder`` to choose.
    """
    candidates = find_checkpoint_folders(paths)
    if subfolder:
        wanted = subfolder.strip("/")
        if wanted in candidates:
            return wanted
        raise FileNotFoundError(
            f"{source or 'the checkpoint'} has no config.json + weights in subfolder {wanted!r}; "
            f"folders that have them: {candidates}"
        )
    if not candidates:
        raise FileNotFoundError(
            f"{source or 'the checkpoint'} has no folder with config.json and "
            f"{' / '.join(_WEIGHT_FILES)} (or a sharded index)"
        )
    if "" in candidates or len(candidates) == 1:
        return candidates[0]
    raise ValueError(
        f"{source or 'the checkpoint'} holds several checkpoints {candidates}; pass subfolder= to choose one"
    )


def _local_relative_files(root: Path) -> list[str]:
    files = []
    for folder, dirs, names in os.walk(root):
        depth = len(Path(folder).relative_to(root).parts)
        if depth >= _SEARCH_DEPTH:
            dirs[:] = []
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = Path(folder).relative_to(root).as_posix()
        files.extend(name if rel == "." else f"{rel}/{name}" for name in names)
    return files


def find_original_checkpoint(folder: str | os.PathLike, subfolder: str | None = None) -> Path:
    """The folder under ``folder`` holding the checkpoint's ``config.json`` and weights."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"checkpoint folder {str(root)!r} does not exist")
    return root / choose_checkpoint_folder(_local_relative_files(root), subfolder, source=str(root))


def _read_json(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def is_original_checkpoint(folder_or_config: str | os.PathLike | Mapping[str, Any]) -> bool:
    """True when a config dict, or a folder (searched as in `find_original_checkpoint`), is in the original
    ViSAGe layout: a BART-type config with ViSAGe fields, or (without a config) original weight names."""
    if isinstance(folder_or_config, Mapping):
        return is_original_config(folder_or_config)
    root = Path(folder_or_config)
    if not root.is_dir():
        return False
    files = _local_relative_files(root)
    folders = find_checkpoint_folders(files)
    if folders:
        return any(is_original_config(_read_json(root / folder / "config.json")) for folder in folders)
    weights = [root / f for f in files if posixpath.basename(f) in _WEIGHT_FILES]
    return any(looks_like_original_state_dict(_weight_keys(path)) for path in weights)


# ---------------------------------------------------------------------------------------------- weights
def _weight_keys(path: Path) -> list[str]:
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(path, framework="pt") as handle:
            return list(handle.keys())
    return list(torch.load(path, map_location="cpu", weights_only=True, mmap=True).keys())


def _load_weight_file(path: Path) -> dict[str, torch.Tensor]:
    if path.name.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path, device="cpu")
    # weights_only: a checkpoint from the Hub must not be able to run code when unpickled.
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} does not hold a state dict (got {type(state).__name__})")
    return dict(state)


def load_original_state_dict(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read the weights of one checkpoint folder: safetensors preferred, then ``pytorch_model.bin``,
    single-file or sharded (``*.index.json``)."""
    folder = Path(folder)
    for name in _WEIGHT_FILES:
        if (folder / name).is_file():
            return _load_weight_file(folder / name)
    for name in _WEIGHT_INDEXES:
        if (folder / name).is_file():
            shards = sorted(set(_read_json(folder / name)["weight_map"].values()))
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(_load_weight_file(folder / shard))
            return state
    raise FileNotFoundError(f"{folder} has none of {list(_WEIGHT_FILES + _WEIGHT_INDEXES)}")


# ------------------------------------------------------------------------------------------------ loading
def convert_to_model(
    model_class: type,
    original_config: Mapping[str, Any],
    original_state_dict: Mapping[str, torch.Tensor],
    dtype: torch.dtype | None = None,
):
    """A ``model_class`` (`VisageForFOA`) holding the original weights (FOA or mono, decided by the number of
    heads).

    Raises:
        ValueError: unmapped, missing or unexpected keys, or tensors whose shapes disagree with the config.
    """
    num_rvq = int(original_setting(original_config, "num_rvq"))
    heads = count_original_heads(original_state_dict)
    if heads not in (num_rvq, 4 * num_rvq):
        raise ValueError(
            f"the checkpoint has {heads} dac_heads; expected {4 * num_rvq} (FOA) or {num_rvq} (mono) "
            f"for num_rvq={num_rvq}"
        )
    num_channels = 4 if heads == 4 * num_rvq else 1
    config = convert_config(original_config, num_channels=num_channels)
    dtype = dtype or torch.get_default_dtype()
    # Built without allocating or initialising weights: every tensor is replaced by the checkpoint's.
    with torch.device("meta"):
        model = model_class(config)
    target = model.state_dict()
    state = {
        key: tensor.to(dtype) if tensor.is_floating_point() else tensor
        for key, tensor in convert_state_dict(original_state_dict).items()
    }
    if not original_setting(original_config, "classifier_free_guidance"):
        # Trained without guidance: the original never created the nulls; ours exist but stay unused
        # (generation defaults to guidance "none") at the original's initial value.
        for name in model_class.NULL_PARAMETERS:
            if name in target and name not in state:
                state[name] = torch.zeros(target[name].shape, dtype=dtype)
    _check_keys_and_shapes(state, target)
    if set(dict(model.named_buffers())) - target.keys():
        # Non-persistent buffers are not in a state dict: build the model for real and copy the weights in.
        model = model_class(config).to(dtype)
        model.load_state_dict(state, strict=True)
    else:
        model.load_state_dict(state, strict=True, assign=True)
    for key, value in convert_generation_settings(original_config, num_channels).items():
        setattr(model.generation_config, key, value)
    return model.eval()


def _check_keys_and_shapes(state: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]) -> None:
    problems = []
    missing = sorted(target.keys() - state.keys())
    unexpected = sorted(state.keys() - target.keys())
    if missing:
        problems.append(f"tensors the model needs but the checkpoint lacks: {missing}")
    if unexpected:
        problems.append(f"converted tensors the model has no place for: {unexpected}")
    mismatched = [
        f"{key}: checkpoint {tuple(state[key].shape)} vs model {tuple(target[key].shape)}"
        for key in sorted(state.keys() & target.keys())
        if state[key].shape != target[key].shape
    ]
    if mismatched:
        problems.append(f"shapes that disagree with config.json: {mismatched}")
    if problems:
        raise ValueError("cannot load the original ViSAGe checkpoint; " + "; ".join(problems))


def load_converted(model_class: type, folder: str | os.PathLike, dtype: torch.dtype | None = None):
    """A ``model_class`` in ``mode="original"`` from the checkpoint folder ``folder`` (as `find_original_checkpoint`
    returns it: ``config.json`` + ``pytorch_model.bin`` or ``model.safetensors``)."""
    folder = Path(folder)
    original_config = _read_json(folder / "config.json")
    if not is_original_config(original_config):
        raise ValueError(
            f"{folder / 'config.json'} is not an original ViSAGe config "
            f"(model_type {original_config.get('model_type')!r}); load it with VisageForFOA.from_pretrained"
        )
    logger.info("Converting the original ViSAGe checkpoint in %s", folder)
    return convert_to_model(model_class, original_config, load_original_state_dict(folder), dtype=dtype)


def _download_original_checkpoint(repo_id: str, revision: str | None, subfolder: str | None) -> Path:
    from huggingface_hub import list_repo_files, snapshot_download

    files = list_repo_files(repo_id, revision=revision)
    folder = choose_checkpoint_folder(files, subfolder, source=f"Hub repo {repo_id!r}")
    # Only the chosen checkpoint's config and weights: a training folder also holds optimizer states.
    names = ["config.json", *_WEIGHT_FILES, *_WEIGHT_INDEXES, "model-*.safetensors", "pytorch_model-*.bin"]
    patterns = [posixpath.join(folder, name) if folder else name for name in names]
    local = snapshot_download(repo_id, revision=revision, allow_patterns=patterns)
    return Path(local) / folder


def resolve_original_folder(
    repo_id_or_path: str | os.PathLike, revision: str | None = None, subfolder: str | None = None
) -> Path:
    """The local checkpoint folder of an original ViSAGe checkpoint in a folder or a Hub repo (e.g.
    ``jaeyeonkim99/visage``). For a Hub repo only the chosen checkpoint's ``config.json`` and weights are
    downloaded."""
    if Path(repo_id_or_path).exists():
        return find_original_checkpoint(repo_id_or_path, subfolder)
    return find_original_checkpoint(_download_original_checkpoint(str(repo_id_or_path), revision, subfolder))


def find_original_source(
    repo_id_or_path: str | os.PathLike, revision: str | None = None, subfolder: str | None = None
) -> Path | None:
    """The local checkpoint folder when ``repo_id_or_path`` is in the original layout, else None (our format).

    A local folder is inspected on disk; for a Hub repo the root (or ``subfolder``) ``config.json`` decides
    (``model_type`` "visage" -> None), and a repo without one has its file list searched for a checkpoint
    folder.
    """
    path = Path(repo_id_or_path)
    if path.exists():
        local = path / subfolder if subfolder else path
        if (local / "config.json").is_file() and not is_original_config(_read_json(local / "config.json")):
            return None
        if not is_original_checkpoint(local):
            return None
        return find_original_checkpoint(local)
    from huggingface_hub import hf_hub_download, list_repo_files
    from huggingface_hub.errors import RemoteEntryNotFoundError

    repo_id = str(repo_id_or_path)
    config_name = posixpath.join(subfolder, "config.json") if subfolder else "config.json"
    try:
        # Cached and offline-friendly: our own repos are recognised without listing files.
        config_path = hf_hub_download(repo_id, config_name, revision=revision)
    except RemoteEntryNotFoundError:
        config_path = None
    if config_path is not None:
        if not is_original_config(_read_json(Path(config_path))):
            return None
    elif not find_checkpoint_folders(list_repo_files(repo_id, revision=revision)):
        return None
    return resolve_original_folder(repo_id, revision=revision, subfolder=subfolder)


__all__ = [
    "ORIGINAL_CONFIG_FIELDS",
    "ORIGINAL_GENERATION_SETTINGS",
    "choose_checkpoint_folder",
    "convert_config",
    "convert_generation_settings",
    "convert_state_dict",
    "convert_to_model",
    "count_original_heads",
    "find_checkpoint_folders",
    "find_original_checkpoint",
    "find_original_source",
    "is_original_checkpoint",
    "is_original_config",
    "load_converted",
    "load_original_state_dict",
    "looks_like_original_state_dict",
    "normalize_original_key",
    "original_hop_length",
    "original_setting",
    "rename_original_key",
    "resolve_original_folder",
]
