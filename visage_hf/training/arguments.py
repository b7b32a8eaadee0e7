"""Training arguments of `visage_hf/train.py`: three `HfArgumentParser` dataclasses and YAML recipes.

Recipe keys (``visage_hf/training/configs/*.yaml``) are the fields of :class:`ModelArguments`, :class:`DataArguments`
and :class:`VisageTrainingArguments`; command-line flags override them (``--learning_rate 3e-4``). An unknown key,
a value of the wrong type or an inconsistent combination is a ValueError before anything runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..models.configuration_visage import VisageConfig

__all__ = [
    "ARGUMENT_CLASSES",
    "INIT_CHOICES",
    "DataArguments",
    "ModelArguments",
    "TrainingArguments",
    "VisageTrainingArguments",
    "check_arguments",
    "config_overrides",
    "load_recipe",
    "parse_arguments",
]

INIT_CHOICES = ("scratch", "pretrained", "mono", "original")


@dataclass
class ModelArguments:
    init_from: str = field(
        default="scratch",
        metadata={
            "help": "scratch | pretrained (our format) | mono (FOA from a mono checkpoint: init_spatial_from_mono) | "
            "original (a checkpoint of the original implementation, converted on load)"
        },
    )
    model_name_or_path: str | None = field(default=None, metadata={"help": "checkpoint folder or Hub id"})
    model_revision: str | None = field(default=None, metadata={"help": "Hub revision of model_name_or_path"})
    config_preset: str = field(default="full", metadata={"help": "scratch config: full (the paper's) | tiny"})
    config_overrides: dict | str | None = field(
        default=None, metadata={"help": "VisageConfig fields to change: a YAML mapping or a JSON string"}
    )
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute layers in backward"})


@dataclass
class DataArguments:
    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub id, local Parquet folder or save_to_disk folder of features"}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "dataset config, e.g. features"})
    dataset_revision: str | None = field(default=None, metadata={"help": "Hub revision of the dataset"})
    train_files: list[str] | None = field(
        default=None, metadata={"help": "Parquet files/globs (train split)"}
    )
    eval_files: list[str] | None = field(default=None, metadata={"help": "Parquet files/globs (eval split)"})
    train_split: str = field(default="train", metadata={"help": "training split name"})
    eval_split: str | None = field(default="validation", metadata={"help": "evaluation split ('' = none)"})
    synthetic_task: bool = field(
        default=False,
        metadata={"help": "train on visage_hf.data.synthetic_task, written to output_dir/synthetic_data"},
    )
    streaming: bool = field(default=False, metadata={"help": "stream the training split (needs max_steps)"})
    shuffle_buffer_size: int = field(default=10_000, metadata={"help": "streaming shuffle buffer"})
    window_seconds: float | None = field(default=None, metadata={"help": "window length (default 5 s)"})
    max_train_samples: int | None = field(default=None, metadata={"help": "use only the first N clips"})
    max_eval_samples: int | None = field(default=None, metadata={"help": "evaluate on the first N clips"})
    rotation: str | None = field(
        default=None,
        metadata={
            "help": "none | original (-90° codes + azimuth index a+45) | yaw (any precomputed yaw); "
            "default: original in original mode, yaw otherwise, none without rotated codes"
        },
    )
    rotation_probability: float = field(default=0.5, metadata={"help": "chance a sample is rotated"})
    rotation_yaws: list[int] | None = field(default=None, metadata={"help": "restrict yaw rotation to these"})
    guidance_dropout: str | None = field(
        default=None, metadata={"help": "sample | batch (default: batch in original mode, else sample)"}
    )
    tie_guidance_dropout: bool = field(default=False, metadata={"help": "null visual and direction together"})
    visual_dropout_prob: float | None = field(default=None, metadata={"help": "default: the model config's"})
    direction_dropout_prob: float | None = field(
        default=None, metadata={"help": "default: the model config's"}
    )
    dataloader_num_workers: int = field(default=0, metadata={"help": "DataLoader workers per process"})


@dataclass
class VisageTrainingArguments:
    output_dir: str = field(default="runs/visage", metadata={"help": "where checkpoints, logs and model go"})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "discard earlier checkpoints/logs"})
    mode: str = field(
        default="corrected",
        metadata={
            "help": "corrected | original: the original's per-batch dropout also in validation, weight-decay "
            "rule, integer frame-rate crop offsets and fixed -90° rotation"
        },
    )
    seed: int = field(default=1115, metadata={"help": "seed of initialisation, data order and augmentation"})
    global_batch_size: int = field(default=64, metadata={"help": "samples per optimizer step, all processes"})
    eval_batch_size: int | None = field(default=None, metadata={"help": "global; default global_batch_size"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per step"})
    learning_rate: float = field(default=1e-4, metadata={"help": "peak learning rate"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    weight_decay_rule: str | None = field(
        default=None,
        metadata={
            "help": "corrected (decay only Linear weights) | original (names without bias/LayerNorm.weight/"
            "layer_norm.weight); default by mode"
        },
    )
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping (0 = off)"})
    lr_scheduler_type: str = field(
        default="constant_with_warmup", metadata={"help": "transformers scheduler"}
    )
    warmup_steps: int = field(default=0, metadata={"help": "linear warm-up steps"})
    num_train_epochs: int = field(default=1, metadata={"help": "epochs (ignored when max_steps > 0)"})
    max_steps: int = field(default=-1, metadata={"help": "optimizer steps; > 0 overrides num_train_epochs"})
    mixed_precision: str | None = field(
        default=None, metadata={"help": "no | fp16 | bf16 (default: accelerate's)"}
    )
    use_cpu: bool = field(default=False, metadata={"help": "train on CPU (multi-process: gloo)"})
    torch_compile: bool = field(default=False, metadata={"help": "torch.compile the model (inductor)"})
    logging_steps: int = field(default=10, metadata={"help": "log every N steps"})
    eval_steps: int = field(default=0, metadata={"help": "evaluate every N steps (0: every epoch)"})
    save_steps: int = field(default=0, metadata={"help": "checkpoint every N steps (0: every epoch)"})
    save_total_limit: int | None = field(default=3, metadata={"help": "keep the last K checkpoints"})
    resume_from_checkpoint: str | None = field(
        default=None, metadata={"help": "latest | a checkpoint folder"}
    )
    report_to: str = field(
        default="tensorboard", metadata={"help": "accelerate trackers: name[,name] | all | none"}
    )
    project_name: str = field(default="visage", metadata={"help": "tracker project name"})
    ddp_find_unused_parameters: bool = field(default=False, metadata={"help": "DDP find_unused_parameters"})


# The 0.1.0 name, kept for old imports; it shadowed `transformers.TrainingArguments` (a different class).
TrainingArguments = VisageTrainingArguments

ARGUMENT_CLASSES = (ModelArguments, DataArguments, VisageTrainingArguments)


def load_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """A YAML recipe as a flat mapping; ValueError naming any key no argument class has."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe {path} does not exist")
    try:
        recipe = yaml.safe_load(path.read_text()) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"recipe {path} is not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(recipe, dict):
        raise ValueError(
            f"recipe {path} must be a mapping of argument names to values, got {type(recipe).__name__}"
        )
    if not all(isinstance(key, str) for key in recipe):
        raise ValueError(
            f"recipe {path}: keys must be argument names, got {[k for k in recipe if not isinstance(k, str)]}"
        )
    known = {f.name for cls in ARGUMENT_CLASSES for f in dataclasses.fields(cls)}
    unknown = sorted(set(recipe) - known)
    if unknown:
        hints = {key: difflib.get_close_matches(key, known, n=1) for key in unknown}
        detail = ", ".join(
            f"{key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "") for key, hint in hints.items()
        )
        raise ValueError(f"recipe {path} has unknown key(s) {detail}; see `visage_hf/train.py --help`")
    return recipe


def parse_arguments(
    argv: Sequence[str] | None = None,
) -> tuple[ModelArguments, DataArguments, VisageTrainingArguments]:
    """``--config recipe.yaml`` supplies defaults; other flags override them."""
    from transformers import HfArgumentParser

    argv = list(sys.argv[1:] if argv is None else argv)
    config_parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    config_parser.add_argument("--config")
    known, remaining = config_parser.parse_known_args(argv)
    # No abbreviations: `--max_step 5` must be refused like an unknown recipe key, not read as --max_steps.
    parser = HfArgumentParser(ARGUMENT_CLASSES, allow_abbrev=False)
    parser.add_argument("--config", help="YAML recipe (visage_hf/training/configs/*.yaml)")
    if known.config:
        parser.set_defaults(**load_recipe(known.config))
    # The extra namespace holding --config comes back last.
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=remaining)[:3]
    for arguments in (model_args, data_args, training_args):
        _check_types(arguments)
    check_arguments(model_args, data_args, training_args)
    return model_args, data_args, training_args


def _check_types(arguments) -> None:
    # Recipe values bypass argparse's conversion unless they are strings: check the scalar fields here.
    hints = typing.get_type_hints(type(arguments))
    for item in dataclasses.fields(arguments):
        value, hint = getattr(arguments, item.name), hints[item.name]
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        scalars = [option for option in options if option is not type(None)]
        if value is None or not all(option in (int, float, str, bool) for option in scalars):
            continue
        accepted = (*scalars, int) if float in scalars else tuple(scalars)
        if (isinstance(value, bool) and bool not in scalars) or not isinstance(value, accepted):
            expected = " or ".join(option.__name__ for option in scalars)
            raise ValueError(f"argument {item.name} must be {expected}, got {value!r}")


def check_arguments(
    model_args: ModelArguments, data_args: DataArguments, args: VisageTrainingArguments
) -> None:
    """Everything that can be checked before any process group, model or dataset exists."""
    choice("init_from", model_args.init_from, INIT_CHOICES)
    choice("config_preset", model_args.config_preset, ("full", "tiny"))
    choice("mode", args.mode, ("corrected", "original"))
    if model_args.init_from != "scratch" and not model_args.model_name_or_path:
        raise ValueError(f"init_from={model_args.init_from!r} needs model_name_or_path")
    if data_args.rotation is not None:
        choice("rotation", data_args.rotation, ("none", "original", "yaw"))
    if data_args.guidance_dropout is not None:
        choice("guidance_dropout", data_args.guidance_dropout, ("sample", "batch"))
    if args.weight_decay_rule is not None:
        choice("weight_decay_rule", args.weight_decay_rule, ("corrected", "original"))
    if not (data_args.synthetic_task or data_args.dataset_name or data_args.train_files):
        raise ValueError("no training data: set dataset_name, train_files or synthetic_task")
    for name in ("global_batch_size", "gradient_accumulation_steps", "logging_steps"):
        if getattr(args, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(args, name)}")
    if args.global_batch_size % args.gradient_accumulation_steps:
        raise ValueError(
            f"global_batch_size ({args.global_batch_size}) must be a multiple of gradient_accumulation_steps "
            f"({args.gradient_accumulation_steps})"
        )
    if data_args.streaming and (args.max_steps <= 0 or args.save_steps <= 0 or args.eval_steps <= 0):
        raise ValueError("a streamed dataset has no known length: set max_steps, save_steps and eval_steps")
    config_overrides(model_args)  # parses


def choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def config_overrides(model_args: ModelArguments) -> dict[str, Any]:
    """The VisageConfig fields to change (a YAML mapping or a JSON string), checked against the config."""
    overrides = model_args.config_overrides
    if overrides is None:
        return {}
    if isinstance(overrides, str):
        try:
            overrides = json.loads(overrides)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"config_overrides must be a JSON object, got {model_args.config_overrides!r}"
            ) from error
    if not isinstance(overrides, dict):
        raise ValueError(f"config_overrides must be a mapping, got {overrides!r}")
    unknown = sorted(set(overrides) - set(VisageConfig.__annotations__))
    if unknown:
        raise ValueError(f"config_overrides has unknown VisageConfig field(s) {unknown}")
    return overrides
