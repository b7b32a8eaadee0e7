"""Train ViSAGe with accelerate: ``accelerate launch visage_hf/train.py --config visage_hf/training/configs/<recipe>.yaml``.

One GPU to many (DDP; DeepSpeed / FSDP through ``accelerate config``), CPU for debugging
(``accelerate launch --multi_gpu --num_processes 2 visage_hf/train.py ... --use_cpu`` runs two gloo processes).
Recipes and flags: `visage_hf.training.arguments` (an unknown key stops before anything runs). Checkpoints:
`visage_hf.training.checkpointing`.

**Global batch.** ``global_batch_size`` samples make one optimizer step, over all processes and gradient
accumulation steps (the original: 64 with ``split_batches``). The data loader yields global micro-batches of
``global_batch_size / gradient_accumulation_steps`` samples and accelerate's ``split_batches`` hands each
process its slice, so the data of a step never depends on the number of processes. The loss of a micro-batch
is the sum over streams of each stream's mean cross-entropy (the original's); processes and accumulation
steps are averaged.

**Crash safety.** ``save_state`` goes to ``checkpoints/checkpoint-N.tmp``; once every file is written and
fsynced, ``checkpoint_complete.json`` is written last and the folder is renamed to ``checkpoint-N``. Only
folders with the marker count, so a kill during a save leaves nothing that looks complete.
``--resume_from_checkpoint latest`` restores model, optimizer, scheduler, RNG states and the data position
(epoch + consumed batches: the seeded sampler restarts there), so a killed run loses only the steps since
its last checkpoint. The last ``save_total_limit`` checkpoints are kept.

Outputs under ``output_dir``: ``model/`` (``save_pretrained``; load with ``VisageForFOA.from_pretrained``),
``checkpoints/``, ``logs/`` (TensorBoard and other trackers), ``train_log.jsonl``, ``training_args.yaml``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

if __package__ in (None, ""):  # run as a file (accelerate launch visage_hf/train.py) from a source checkout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from visage_hf.data.collator import EpochBatchSampler, FeatureDataset, StreamingFeatureDataset, VisageCollator
from visage_hf.data.schema import load_feature_dataset, rotated_codes_column, rotation_yaws_in
from visage_hf.models.configuration_visage import VisageConfig
from visage_hf.models.modeling_visage import VisageForFOA
from visage_hf.training.arguments import (
    DataArguments,
    ModelArguments,
    VisageTrainingArguments,
    choice,
    config_overrides,
    parse_arguments,
)
from visage_hf.training.checkpointing import (
    TrainerState,
    check_checkpoint_config,
    complete_checkpoints,
    load_checkpoint,
    remove_partial_checkpoints,
    resolve_resume_checkpoint,
    save_checkpoint,
    write_json_atomic,
)
from visage_hf.training.launcher import exit_after_printed_error, exit_with_input_error
from visage_hf.training.metrics_log import MetricsLog, evaluate, stream_groups  # noqa: F401 (old path of stream_groups)
from visage_hf.utils.files import atomic_write_text, staged_directory

logger = logging.getLogger("visage_hf.training.train")

ORIGINAL_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight")


# ------------------------------------------------------------------------------------------------ building
def build_accelerator(args: VisageTrainingArguments):
    """An `Accelerator` with split global batches, trackers under ``output_dir/logs`` and our DDP settings."""
    from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
    from accelerate.utils import ProjectConfiguration

    trackers = [name.strip() for name in args.report_to.split(",") if name.strip() not in ("", "none")]
    return Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        cpu=args.use_cpu,
        log_with=(trackers if trackers != ["all"] else "all") or None,
        project_config=ProjectConfiguration(
            project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, "logs")
        ),
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        kwargs_handlers=[
            DistributedDataParallelKwargs(find_unused_parameters=args.ddp_find_unused_parameters)
        ],
        dynamo_backend="inductor" if args.torch_compile else None,
    )


def build_model(model_args: ModelArguments) -> VisageForFOA:
    """From scratch (a preset + overrides), our checkpoint, a mono checkpoint (Y/Z/X copied from W, as the
    original's stage 2), or the original implementation's checkpoint."""
    overrides = config_overrides(model_args)
    source = model_args.model_name_or_path
    if model_args.init_from == "scratch":
        config = (
            VisageConfig.tiny(**overrides)
            if model_args.config_preset == "tiny"
            else VisageConfig(**overrides)
        )
        model = VisageForFOA(config)
    elif model_args.init_from == "pretrained":
        model = VisageForFOA.from_pretrained(source, revision=model_args.model_revision, **overrides)
    elif model_args.init_from == "mono":
        mono = VisageForFOA.from_pretrained(source, revision=model_args.model_revision)
        model = VisageForFOA.from_mono_pretrained(mono, **overrides)
    else:
        from visage_hf.models.convert_original import resolve_and_load

        if overrides:
            raise ValueError(
                "config_overrides cannot change a converted original checkpoint; convert it first"
            )
        model = resolve_and_load(source, revision=model_args.model_revision)
    if model_args.gradient_checkpointing:
        enable_activation_checkpointing(model)
    return model.float().train()


def enable_activation_checkpointing(model: VisageForFOA) -> None:
    """Recompute layer activations in backward (transformers 5 renamed gradient checkpointing)."""
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()


def build_datasets(
    accelerator, data_args: DataArguments, args: VisageTrainingArguments, config: VisageConfig
):
    """(train, eval or None) feature datasets; columns and widths are checked here, before training."""
    if data_args.synthetic_task:
        files = _synthetic_files(accelerator, Path(args.output_dir) / "synthetic_data", config)
        train_files, eval_files = files["train"], files["validation"]
    else:
        train_files, eval_files = data_args.train_files, data_args.eval_files
    common = {"config_name": data_args.dataset_config_name, "revision": data_args.dataset_revision}
    with accelerator.main_process_first():  # one process builds the datasets cache, the others reuse it
        train_raw = load_feature_dataset(
            data_args.dataset_name,
            data_args.train_split,
            data_files=train_files,
            streaming=data_args.streaming,
            **common,
        )
        eval_raw = None
        if data_args.eval_split and (eval_files or data_args.dataset_name):
            eval_raw = load_feature_dataset(
                data_args.dataset_name, data_args.eval_split, data_files=eval_files, **common
            )
    if data_args.max_train_samples is not None:
        train_raw = (
            train_raw.take(data_args.max_train_samples)
            if data_args.streaming
            else train_raw.select(range(min(data_args.max_train_samples, len(train_raw))))
        )
    if eval_raw is not None and data_args.max_eval_samples is not None:
        eval_raw = eval_raw.select(range(min(data_args.max_eval_samples, len(eval_raw))))
    micro_batch = args.global_batch_size // args.gradient_accumulation_steps
    if data_args.streaming:
        train = StreamingFeatureDataset(
            train_raw, config, micro_batch, args.seed, data_args.shuffle_buffer_size
        )
    else:
        train = FeatureDataset(train_raw, config)
    return train, None if eval_raw is None else FeatureDataset(eval_raw, config)


def _synthetic_files(accelerator, folder: Path, config: VisageConfig) -> dict[str, list[str]]:
    """The synthetic task's shards for this model layout, written once (main process) under ``folder``."""
    from visage_hf.data.synthetic_task import write_synthetic_dataset

    layout = {
        name: getattr(config, name) for name in ("num_channels", "num_codebooks", "codebook_size", "clip_dim")
    }
    layout["energy_map_dim"] = config.energy_map_dim
    done = folder / "done.json"
    if accelerator.is_main_process and (
        not done.is_file() or json.loads(done.read_text())["layout"] != layout
    ):
        files = write_synthetic_dataset(folder, config, {"train": 256, "validation": 32})
        write_json_atomic(done, {"layout": layout, "files": files})
    accelerator.wait_for_everyone()
    return json.loads(done.read_text())["files"]


def resolve_rotation(data_args: DataArguments, args: VisageTrainingArguments, train_dataset) -> str:
    """The rotation augmentation in force (see `DataArguments.rotation`), checked against the columns."""
    yaws = rotation_yaws_in(train_dataset.columns)
    rotation = data_args.rotation
    if rotation is None:
        rotation = "none" if not yaws else ("original" if args.mode == "original" else "yaw")
    if rotation == "original" and -90 not in yaws:
        raise ValueError(
            f"rotation='original' needs the column {rotated_codes_column(-90)}; rotated yaws: {yaws}"
        )
    if rotation == "yaw" and not yaws:
        raise ValueError("rotation='yaw' needs rotated-code columns codes_yaw<deg>; the dataset has none")
    return rotation


def build_collators(
    data_args: DataArguments, args: VisageTrainingArguments, config: VisageConfig, train_dataset
):
    """(train collator, eval collator). Original mode: per-batch dropout, also during validation."""
    original = args.mode == "original"
    common = {"window_seconds": data_args.window_seconds, "mode": args.mode, "seed": args.seed}
    dropout = {
        "visual_dropout_prob": data_args.visual_dropout_prob,
        "direction_dropout_prob": data_args.direction_dropout_prob,
        "dropout_unit": data_args.guidance_dropout or ("batch" if original else "sample"),
        "tie_dropout": data_args.tie_guidance_dropout,
    }
    train = VisageCollator(
        config,
        train=True,
        rotation=resolve_rotation(data_args, args, train_dataset),
        rotation_probability=data_args.rotation_probability,
        rotation_yaws=data_args.rotation_yaws,
        **common,
        **dropout,
    )
    evaluation = VisageCollator(config, train=False, eval_dropout=original, **common, **dropout)
    return train, evaluation


def build_dataloaders(
    accelerator, data_args: DataArguments, args: VisageTrainingArguments, config, train, evaluation
):
    """(train loader, eval loader or None, train sampler or None for streaming); global micro-batches."""
    from torch.utils.data import DataLoader

    micro_batch = args.global_batch_size // args.gradient_accumulation_steps
    eval_batch = args.eval_batch_size or args.global_batch_size
    for name, size in (("global micro-batch", micro_batch), ("eval_batch_size", eval_batch)):
        if size % accelerator.num_processes:
            raise ValueError(
                f"{name} ({size}) must be a multiple of the number of processes ({accelerator.num_processes})"
            )
    train_collator, eval_collator = build_collators(data_args, args, config, train)
    # The DataLoader draws its worker base seed from this generator, not from the global RNG that a resumed
    # run restores: model dropout then continues exactly as in an uninterrupted run.
    loader_options = {
        "num_workers": data_args.dataloader_num_workers,
        "generator": torch.Generator().manual_seed(args.seed),
    }
    sampler = None
    if isinstance(train, StreamingFeatureDataset):
        train_loader = DataLoader(
            train, batch_size=micro_batch, drop_last=True, collate_fn=train_collator, **loader_options
        )
    else:
        sampler = EpochBatchSampler(
            len(train), micro_batch, args.seed, batches_multiple_of=args.gradient_accumulation_steps
        )
        train_loader = DataLoader(train, batch_sampler=sampler, collate_fn=train_collator, **loader_options)
    eval_loader = None
    if evaluation is not None:
        eval_loader = DataLoader(
            evaluation, batch_size=eval_batch, shuffle=False, collate_fn=eval_collator, **loader_options
        )
    return train_loader, eval_loader, sampler


def parameter_groups(model: nn.Module, weight_decay: float, rule: str = "corrected") -> list[dict]:
    """AdamW groups: ``[{params with decay}, {params without}]``.

    ``original``: no decay for names containing "bias", "LayerNorm.weight" or "layer_norm.weight" (ours:
    biases and every ``*_layer_norm``; ``layernorm_embedding``, the embeddings and the bos/eos/null vectors get
    decay, as in the original). ``corrected``: only Linear weights decay (no norm, bias, embedding, bos/eos/null).
    """
    choice("weight_decay_rule", rule, ("corrected", "original"))
    decay, no_decay = [], []
    for module_name, module in model.named_modules():
        for name, parameter in module.named_parameters(recurse=False):
            if not parameter.requires_grad:
                continue
            full_name = f"{module_name}.{name}" if module_name else name
            if rule == "original":
                decays = not any(pattern in full_name for pattern in ORIGINAL_NO_DECAY)
            else:
                decays = isinstance(module, nn.Linear) and name == "weight"
            (decay if decays else no_decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer_and_scheduler(model: nn.Module, args: VisageTrainingArguments, total_steps: int):
    """AdamW (decay rule by mode) and a transformers schedule (warm-up + constant / cosine / ...)."""
    from transformers import get_scheduler

    rule = args.weight_decay_rule or ("original" if args.mode == "original" else "corrected")
    optimizer = torch.optim.AdamW(
        parameter_groups(model, args.weight_decay, rule),
        lr=args.learning_rate,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
    )
    scheduler = get_scheduler(
        args.lr_scheduler_type, optimizer, num_warmup_steps=args.warmup_steps, num_training_steps=total_steps
    )
    return optimizer, scheduler


# ------------------------------------------------------------------------------------------------ steps
def train_step(accelerator, model, optimizer, scheduler, batch: dict, max_grad_norm: float):
    """Forward, backward and (at the end of an accumulation) clip, optimizer and scheduler step.

    Returns (loss, per-stream losses, gradient norm or None), detached.
    """
    with accelerator.accumulate(model):
        outputs = model(**batch)
        accelerator.backward(outputs.loss)
        grad_norm = None
        if accelerator.sync_gradients and max_grad_norm > 0:
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    return outputs.loss.detach(), outputs.stream_losses.detach(), grad_norm


# ------------------------------------------------------------------------------------------------ run
@dataclass
class TrainingRun:
    """Everything a prepared run needs."""

    accelerator: Any
    model: Any
    optimizer: Any
    scheduler: Any
    train_loader: Any
    eval_loader: Any
    sampler: EpochBatchSampler | None
    config: VisageConfig
    args: VisageTrainingArguments
    state: TrainerState
    total_steps: int
    steps_per_epoch: int | None
    metrics: MetricsLog
    last_eval_step: int | None = None


def setup(argv: Sequence[str] | None = None) -> TrainingRun:
    """Parse, build and prepare everything; every input error is raised here, before training starts."""
    from accelerate.utils import set_seed

    model_args, data_args, args = parse_arguments(argv)
    output_dir = Path(args.output_dir)
    accelerator = build_accelerator(args)
    checkpoint = resolve_resume_checkpoint(args)
    if (
        checkpoint is None
        and complete_checkpoints(output_dir / "checkpoints")
        and not args.overwrite_output_dir
    ):
        raise ValueError(
            f"{output_dir} already holds checkpoints: pass --resume_from_checkpoint latest to continue, "
            "--overwrite_output_dir to start over, or another output_dir"
        )
    set_seed(args.seed)
    model = build_model(model_args)
    config = model.config
    if checkpoint is not None:
        check_checkpoint_config(checkpoint, config)
    train_data, eval_data = build_datasets(accelerator, data_args, args, config)
    train_loader, eval_loader, sampler = build_dataloaders(
        accelerator, data_args, args, config, train_data, eval_data
    )
    steps_per_epoch = (
        None if sampler is None else sampler.batches_per_epoch // args.gradient_accumulation_steps
    )
    total_steps = args.max_steps if args.max_steps > 0 else args.num_train_epochs * steps_per_epoch
    optimizer, scheduler = build_optimizer_and_scheduler(model, args, total_steps)
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    if eval_loader is not None:
        eval_loader = accelerator.prepare(eval_loader)

    state = TrainerState(
        global_batch_size=args.global_batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        seed=args.seed,
        num_processes=accelerator.num_processes,
    )
    if checkpoint is not None:
        state = load_checkpoint(accelerator, checkpoint, args)
        state.num_processes = accelerator.num_processes
        logger.info(
            "resumed from %s at step %d (epoch %d, batch %d)",
            checkpoint,
            state.global_step,
            state.epoch,
            state.batches_in_epoch,
        )
    elif accelerator.is_main_process and args.overwrite_output_dir:
        for stale in (output_dir / "checkpoints", output_dir / "train_log.jsonl"):
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    metrics = MetricsLog(accelerator, output_dir, config)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        remove_partial_checkpoints(output_dir / "checkpoints")
        metrics.truncate(state.global_step)
        recipe = {
            f.name: getattr(a, f.name) for a in (model_args, data_args, args) for f in dataclasses.fields(a)
        }
        atomic_write_text(output_dir / "training_args.yaml", yaml.safe_dump(recipe, sort_keys=False))
    init_kwargs = {"tensorboard": {"purge_step": state.global_step + 1}} if state.global_step else {}
    accelerator.init_trackers(
        args.project_name, config=_tracker_config(model_args, data_args, args), init_kwargs=init_kwargs
    )
    accelerator.wait_for_everyone()
    return TrainingRun(
        accelerator, model, optimizer, scheduler, train_loader, eval_loader, sampler, config, args, state,
        total_steps, steps_per_epoch, metrics,
    )  # fmt: skip


def _tracker_config(*arguments) -> dict[str, Any]:
    # Trackers accept scalars only.
    flat = {}
    for group in arguments:
        for item in dataclasses.fields(group):
            value = getattr(group, item.name)
            flat[item.name] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def epoch_batches(run: TrainingRun) -> Iterator[dict]:
    """The batches of the current epoch from the saved position on (the seeded sampler restarts there)."""
    state, loader = run.state, run.train_loader
    loader.set_epoch(state.epoch)
    if run.sampler is not None:
        run.sampler.set_position(state.epoch, state.batches_in_epoch)
    elif state.batches_in_epoch:
        loader = run.accelerator.skip_first_batches(loader, state.batches_in_epoch)
    yield from loader


def _due(step: int, every: int, epoch_ended: bool) -> bool:
    return (every > 0 and step % every == 0) or (every <= 0 and epoch_ended)


def train(run: TrainingRun) -> None:
    """The loop: steps until ``total_steps``, logging, evaluating and checkpointing on schedule."""
    from tqdm.auto import tqdm

    accelerator, args, state = run.accelerator, run.args, run.state
    progress = tqdm(
        total=run.total_steps,
        initial=state.global_step,
        desc="training",
        disable=not accelerator.is_local_main_process,
    )
    saved_step = state.global_step if state.global_step else None
    while state.global_step < run.total_steps:
        produced = False
        for batch in epoch_batches(run):
            produced = True
            loss, stream_losses, grad_norm = train_step(
                accelerator, run.model, run.optimizer, run.scheduler, batch, args.max_grad_norm
            )
            state.batches_in_epoch += 1
            run.metrics.add(loss, stream_losses, grad_norm)
            if not accelerator.sync_gradients:
                continue
            state.global_step += 1
            progress.update(1)
            epoch_ended = run.sampler is not None and state.batches_in_epoch >= run.sampler.batches_per_epoch
            if state.global_step % args.logging_steps == 0:
                epoch = state.epoch + (
                    state.batches_in_epoch / run.sampler.batches_per_epoch if run.sampler else 0.0
                )
                record = run.metrics.flush(state.global_step, epoch, run.scheduler.get_last_lr()[0])
                progress.set_postfix(loss=f"{record['train/loss']:.3f}")
            if run.eval_loader is not None and _due(state.global_step, args.eval_steps, epoch_ended):
                run.metrics.write(
                    state.global_step, evaluate(accelerator, run.model, run.eval_loader, run.config)
                )
                run.last_eval_step = state.global_step
            if _due(state.global_step, args.save_steps, epoch_ended):
                save_checkpoint(accelerator, run.model, state, Path(args.output_dir), args.save_total_limit)
                saved_step = state.global_step
            if state.global_step >= run.total_steps:
                break
        else:
            if not produced and state.batches_in_epoch == 0:
                raise ValueError("the training data produced no batch in a whole epoch")
            state.epoch += 1
            state.batches_in_epoch = 0
    progress.close()
    if saved_step != state.global_step:
        save_checkpoint(accelerator, run.model, state, Path(args.output_dir), args.save_total_limit)


def save_final_model(run: TrainingRun) -> Path:
    """``save_pretrained`` of the unwrapped model (main process) into ``output_dir/model``, atomically."""
    accelerator = run.accelerator
    target = Path(run.args.output_dir) / "model"
    accelerator.wait_for_everyone()
    state_dict = accelerator.get_state_dict(run.model)  # every rank takes part (DeepSpeed / FSDP gather)
    if accelerator.is_main_process:
        # torch.compile wraps the module: its state-dict keys carry an `_orig_mod.` prefix.
        state_dict = {key.removeprefix("_orig_mod."): value for key, value in state_dict.items()}
        model = accelerator.unwrap_model(run.model, keep_torch_compile=False)
        with staged_directory(target, overwrite=True) as staging:
            model.save_pretrained(staging, state_dict=state_dict, save_function=accelerator.save)
    accelerator.wait_for_everyone()
    return target


def finish(run: TrainingRun) -> Path:
    """Evaluate at the last step (if not done yet), save the final model, close the trackers."""
    if run.eval_loader is not None and run.last_eval_step != run.state.global_step:
        run.metrics.write(
            run.state.global_step, evaluate(run.accelerator, run.model, run.eval_loader, run.config)
        )
    target = save_final_model(run)
    run.accelerator.end_training()
    return target


def main(argv: Sequence[str] | None = None) -> Path:
    """Train as the command line says; returns the saved model folder."""
    run = setup(argv)
    train(run)
    return finish(run)


def _cli() -> None:
    main_process = os.environ.get("RANK", "0") == "0"  # set by the launcher before any process group exists
    logging.basicConfig(
        level=logging.INFO if main_process else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        run = setup()
    except (ValueError, FileNotFoundError) as error:  # bad input: one line, exit code 2, no traceback
        exit_with_input_error(str(error), show=main_process)  # also stops an accelerate launcher quietly
    except SystemExit as stop:  # argparse printed a usage error (or --help)
        exit_after_printed_error(stop.code)
    train(run)
    target = finish(run)
    if main_process:
        print(
            f"visage train: model saved to {target} (VisageForFOA.from_pretrained, or visage generate --model)"
        )


if __name__ == "__main__":
    _cli()
