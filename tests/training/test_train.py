"""Tests of visage_hf.training.train: real runs of the entry point on the synthetic task, crash safety, bad input.

Two real processes (gloo) train the tiny recipe and must (1) learn the direction -> spatial-code link of the
synthetic task, beyond what any direction-blind model can reach, and (2) reproduce the loss curve of a
one-process run with the same global batch. A run killed with SIGKILL right after a checkpoint must, once
resumed, continue that same curve.

`accelerate launch --cpu --num_processes 2` starts a single process in accelerate 1.15 (its simple launcher;
several CPU processes need mpirun), so the test launches with ``--multi_gpu`` (torchrun) on a machine without
GPUs and ``ACCELERATE_USE_CPU=1``, which gives accelerate's MULTI_CPU mode with the gloo backend.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from visage_hf.data.collator import FeatureDataset, VisageCollator
from visage_hf.data.schema import load_feature_dataset
from visage_hf.data.synthetic_task import spatial_codes, write_synthetic_dataset
from visage_hf.directions import indices_to_direction
from visage_hf.models.configuration_visage import VisageConfig
from visage_hf.models.modeling_visage import VisageForFOA
from visage_hf.training.arguments import load_recipe
from visage_hf.training.checkpointing import COMPLETE_MARKER, find_latest_checkpoint
from visage_hf.training.train import parameter_groups, setup, stream_groups

REPO = Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = REPO / "visage_hf" / "train.py"
TINY = REPO / "visage_hf" / "training" / "configs" / "tiny.yaml"
STEPS = 40  # the reference curve
LEARNING_STEPS = 400  # the two-process run: enough to learn the direction link (measured: ~0.9 accuracy)


def tiny_config() -> VisageConfig:
    return VisageConfig.tiny(**load_recipe(TINY)["config_overrides"])


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    # In-process `setup` calls build Accelerators; leave no process-wide state to other tests.
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> dict[str, list[str]]:
    return write_synthetic_dataset(
        tmp_path_factory.mktemp("synthetic"), tiny_config(), {"train": 256, "validation": 32}
    )


def run_arguments(task, output_dir, max_steps, save_steps, eval_steps=STEPS, extra=()) -> list[str]:
    return [
        "--config", str(TINY), "--use_cpu", "--synthetic_task", "false",
        "--train_files", *task["train"], "--eval_files", *task["validation"],
        "--window_seconds", "0.25", "--global_batch_size", "16", "--eval_batch_size", "16",
        "--logging_steps", "1", "--output_dir", str(output_dir), "--max_steps", str(max_steps),
        "--save_steps", str(save_steps), "--eval_steps", str(eval_steps), *extra,
    ]  # fmt: skip


def subprocess_env() -> dict[str, str]:
    # One thread per process: two processes share this machine's two cores, and equal thread counts keep
    # float reductions comparable between runs.
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def run(command: list[str], log: Path, timeout: float = 400, **env: str) -> None:
    with open(log, "w") as handle:
        completed = subprocess.run(
            command, stdout=handle, stderr=subprocess.STDOUT, env={**subprocess_env(), **env}, timeout=timeout
        )
    assert completed.returncode == 0, log.read_text()[-3000:]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read_log(output_dir: Path) -> tuple[dict[int, float], dict[int, float], list[int]]:
    train, evaluation, steps = {}, {}, []
    for line in (output_dir / "train_log.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "train/loss" in record:
            train[record["step"]] = record["train/loss"]
            steps.append(record["step"])
        if "eval/loss" in record:
            evaluation[record["step"]] = record["eval/loss"]
    return train, evaluation, steps


@pytest.fixture(scope="module")
def reference_run(task, tmp_path_factory) -> Path:
    """One process, 40 steps, checkpoints every 16 (and at the end), keeping the last 2."""
    output = tmp_path_factory.mktemp("reference")
    run([sys.executable, str(TRAIN_SCRIPT), *run_arguments(task, output, STEPS, 16)], output / "stdout.txt")
    return output


@pytest.fixture(scope="module")
def two_process_run(task, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("two_processes")
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()),
    ]  # fmt: skip
    command = [*launch, str(TRAIN_SCRIPT), *run_arguments(task, output, LEARNING_STEPS, 200)]
    run(command, output / "stdout.txt", timeout=500, ACCELERATE_USE_CPU="1")
    return output


def direction_blind_bound(config: VisageConfig, labels: torch.Tensor) -> float:
    """The lowest validation loss a model that ignores the direction can reach: each spatial stream's first
    frame is a coin flip to it, so it pays at least the labels' empirical entropy at that one of the window's
    frames (the loss of a stream is its mean over the window's frames)."""
    frames = config.code_pattern.frames_for_steps(labels.shape[1])
    bound = 0.0
    for stream in range(config.num_codebooks, config.num_streams):
        row = 1 if stream % config.num_codebooks == 0 else 2  # frame 0 of spatial coarse / fine streams
        _, counts = torch.unique(labels[:, row, stream], return_counts=True)
        p = counts.double() / counts.sum()
        bound += float(-(p * p.log()).sum()) / frames
    return bound


def validation_batch(task, config):
    dataset = FeatureDataset(load_feature_dataset(data_files=task["validation"], split="validation"), config)
    examples = [dataset[i] for i in range(len(dataset))]
    return examples, VisageCollator(config, train=False, window_seconds=0.25)(examples)


# ------------------------------------------------------------------------------------------------ real runs
def test_two_processes_learn_the_direction_and_match_one_process(two_process_run, reference_run, task):
    state = json.loads(
        (find_latest_checkpoint(two_process_run / "checkpoints") / "trainer_state.json").read_text()
    )
    assert state["num_processes"] == 2 and state["global_step"] == LEARNING_STEPS

    train, evaluation, _ = read_log(two_process_run)
    first, last = train[1], np.mean([train[s] for s in range(LEARNING_STEPS - 9, LEARNING_STEPS + 1)])
    assert first == pytest.approx(36 * math.log(64), rel=0.02)  # untrained: 36 streams × ln(codebook)
    assert last < 0.02 * first  # stated margin: the training loss falls by more than 98 %

    config = tiny_config()
    examples, batch = validation_batch(task, config)
    bound = direction_blind_bound(config, batch["labels"])
    assert evaluation[LEARNING_STEPS] < 0.5 * bound, (evaluation[LEARNING_STEPS], bound)

    # Same global batch on one process: the same curve (float reduction order only).
    reference_train, reference_eval, _ = read_log(reference_run)
    for step in range(1, STEPS + 1):
        assert train[step] == pytest.approx(reference_train[step], rel=1e-4), step
    assert evaluation[STEPS] == pytest.approx(reference_eval[STEPS], rel=1e-4)

    # The saved model reloads and, generating greedily, puts the sound where the direction says.
    model = VisageForFOA.from_pretrained(two_process_run / "model").eval()
    inputs = (batch["clip_features"], batch["energy_map"])
    codes = model.generate(*inputs, batch["direction"], guidance="none", do_sample=False)
    assert codes.shape == (32, 4, 9, 21)
    mirrored = batch["direction"] * torch.tensor(
        [-1.0, 1.0, 1.0]
    )  # camera frame x = image right: left <-> right
    mirrored_codes = model.generate(*inputs, mirrored, guidance="none", do_sample=False)
    accuracy, mirrored_y = [], []
    for i, example in enumerate(examples):
        azimuth, elevation = indices_to_direction(*example["indices"])
        expected = spatial_codes(azimuth, elevation, 9, config.codebook_size)[:, 0]  # Y, Z, X level 0
        accuracy.append((codes[i, 1:, 0, :] == torch.from_numpy(expected)[:, None]).float().mean(1))
        flipped = spatial_codes(-azimuth, elevation, 9, config.codebook_size)[0, 0]
        mirrored_y.append(float((mirrored_codes[i, 1, 0, :] == int(flipped)).float().mean()))
    accuracy = torch.stack(accuracy).mean(0)  # per channel Y, Z, X; chance is 0.5
    assert accuracy.mean() > 0.8 and accuracy.min() > 0.7, accuracy
    assert np.mean(mirrored_y) > 0.7


# The real recipes train with dropout 0.1: the resume test uses it, so a resume that did not restore torch's
# random state (the dropout masks) would leave the reference curve.
DROPOUT = ("--config_overrides", json.dumps(dict(load_recipe(TINY)["config_overrides"], dropout=0.1)))


@pytest.fixture(scope="module")
def dropout_reference_run(task, tmp_path_factory) -> Path:
    """The reference run with dropout 0.1: one process, 40 steps, checkpoints every 16."""
    output = tmp_path_factory.mktemp("reference_dropout")
    arguments = run_arguments(task, output, STEPS, 16, extra=DROPOUT)
    run([sys.executable, str(TRAIN_SCRIPT), *arguments], output / "stdout.txt")
    return output


def test_sigkill_after_a_checkpoint_then_resume_continues_the_curve(
    dropout_reference_run, reference_run, task, tmp_path
):
    reference_run_without_dropout, reference_run = reference_run, dropout_reference_run
    output = tmp_path / "killed"
    # Far more steps than the reference: it must still be running when killed (the constant schedule makes
    # the learning rate independent of max_steps).
    command = [sys.executable, str(TRAIN_SCRIPT), *run_arguments(task, output, 10_000, 16, extra=DROPOUT)]
    with open(tmp_path / "killed.txt", "w") as handle:
        process = subprocess.Popen(
            command, stdout=handle, stderr=subprocess.STDOUT, env=subprocess_env(), start_new_session=True
        )
        deadline = time.monotonic() + 300
        while find_latest_checkpoint(output / "checkpoints") is None:
            assert process.poll() is None, (tmp_path / "killed.txt").read_text()[-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)
        assert process.wait() == -signal.SIGKILL
    survived = find_latest_checkpoint(output / "checkpoints")
    resumed_from = int(survived.name.split("-")[1])
    assert resumed_from in (16, 32)
    killed_train, _, _ = read_log(output)
    assert max(killed_train) < 10_000  # it was interrupted mid-training

    # A folder that looks like a newer checkpoint but has no completion marker (a kill during a save).
    fake = output / "checkpoints" / "checkpoint-9000"
    shutil.copytree(survived, fake)
    (fake / COMPLETE_MARKER).unlink()
    assert find_latest_checkpoint(output / "checkpoints") == survived

    resume = [
        *command[:2],
        *run_arguments(task, output, STEPS, 16, extra=(*DROPOUT, "--resume_from_checkpoint", "latest")),
    ]
    run(resume, tmp_path / "resumed.txt")
    assert f"resumed from {survived}" in (tmp_path / "resumed.txt").read_text()
    assert not fake.exists()  # incomplete checkpoints are cleaned up

    train, evaluation, steps = read_log(output)
    reference_train, reference_eval, _ = read_log(reference_run)
    without_dropout, _, _ = read_log(reference_run_without_dropout)
    # Dropout is live: its curve is not the dropout-free one (so the random state matters).
    assert any(
        abs(reference_train[s] - without_dropout[s]) > 1e-3 * without_dropout[s] for s in range(2, STEPS)
    )
    assert steps == list(range(1, STEPS + 1))  # records after the checkpoint were replaced, not duplicated
    for step in range(1, STEPS + 1):
        assert train[step] == pytest.approx(reference_train[step], rel=1e-5), step
    assert evaluation[STEPS] == pytest.approx(reference_eval[STEPS], rel=1e-5)
    resumed = VisageForFOA.from_pretrained(output / "model").state_dict()
    uninterrupted = VisageForFOA.from_pretrained(reference_run / "model").state_dict()
    for name, tensor in uninterrupted.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-4, atol=1e-6)


def test_checkpoints_are_complete_and_only_the_last_ones_kept(reference_run):
    folders = sorted(p.name for p in (reference_run / "checkpoints").iterdir())
    assert folders == ["checkpoint-32", "checkpoint-40"]  # save_total_limit 2 of 16, 32, 40
    latest = reference_run / "checkpoints" / "checkpoint-40"
    state = json.loads((latest / "trainer_state.json").read_text())
    assert state == {
        "global_step": 40,
        "epoch": 2,
        "batches_in_epoch": 8,
        "global_batch_size": 16,
        "gradient_accumulation_steps": 1,
        "seed": 1115,
        "num_processes": 1,
    }  # fmt: skip  (256 clips / 16 = 16 steps per epoch)
    for name in ("model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl", "config.json"):
        assert (latest / name).is_file()
    assert (reference_run / "logs").is_dir()  # TensorBoard


# ------------------------------------------------------------------------------------------------ bad input
def test_dataset_missing_a_column_fails_before_training(task, tmp_path):
    import datasets

    table = datasets.load_dataset("parquet", data_files=task["validation"], split="train").remove_columns(
        "energy_map"
    )
    table.to_parquet(str(tmp_path / "broken.parquet"))
    broken = {"train": [str(tmp_path / "broken.parquet")], "validation": task["validation"]}
    arguments = run_arguments(broken, tmp_path / "out", 4, 2, extra=("--report_to", "none"))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['energy_map'\]"):
        setup(arguments)
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_checkpoint_of_another_config_or_batch_fails_before_training(reference_run, task, tmp_path):
    checkpoint = str(reference_run / "checkpoints" / "checkpoint-40")
    overrides = dict(load_recipe(TINY)["config_overrides"], decoder_layers=1)
    arguments = run_arguments(task, tmp_path / "out", 48, 8, extra=("--report_to", "none"))
    with pytest.raises(ValueError, match="decoder_layers: checkpoint 2 vs now 1"):
        setup(
            [*arguments, "--resume_from_checkpoint", checkpoint, "--config_overrides", json.dumps(overrides)]
        )
    with pytest.raises(ValueError, match="global_batch_size=16, this run has 32"):
        setup([*arguments, "--resume_from_checkpoint", checkpoint, "--global_batch_size", "32"])
    incomplete = tmp_path / "checkpoint-3"
    incomplete.mkdir()
    with pytest.raises(ValueError, match="incomplete"):
        setup([*arguments, "--resume_from_checkpoint", str(incomplete)])
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_existing_checkpoints_need_resume_or_overwrite(reference_run, task):
    arguments = run_arguments(task, reference_run, 48, 8, extra=("--report_to", "none"))
    with pytest.raises(ValueError, match="already holds checkpoints"):
        setup(arguments)


# ------------------------------------------------------------------------------------------------ units
def test_weight_decay_groups_original_and_corrected():
    model = VisageForFOA(VisageConfig.tiny())
    names = {id(p): n for n, p in model.named_parameters()}

    def no_decay(rule):
        groups = parameter_groups(model, 0.01, rule)
        assert groups[1]["weight_decay"] == 0.0
        assert len(groups[0]["params"]) + len(groups[1]["params"]) == len(names)
        return {names[id(p)] for p in groups[1]["params"]}

    original = no_decay("original")
    # The original's rule on our names: biases and every *_layer_norm are exempt; layernorm_embedding,
    # embeddings and the bos/eos/null vectors are decayed (as in the original, docs/original-implementation.md §4.1).
    assert "model.decoder.layers.0.self_attn_layer_norm.weight" in original
    assert "model.encoder.layers.0.final_layer_norm.weight" in original
    assert "heads.3.bias" in original
    for decayed in (
        "model.encoder.layernorm_embedding.weight",
        "model.decoder.embed_codes.0.weight",
        "null_clip_embedding",
        "model.encoder.bos",
    ):
        assert decayed not in original
    corrected = no_decay("corrected")
    decayed = set(names.values()) - corrected
    assert decayed == {
        n
        for n, p in model.named_parameters()
        if n.endswith("weight") and p.ndim == 2 and "embed" not in n and "layernorm" not in n
    }
    assert {
        "model.encoder.layernorm_embedding.weight",
        "null_clip_embedding",
        "model.decoder.bos",
    } <= corrected


def test_stream_groups_follow_the_channel_and_level_layout():
    groups = stream_groups(VisageConfig.tiny())
    assert groups["w_coarse"] == [0] and groups["w_fine"] == list(range(1, 9))
    assert groups["spatial_coarse"] == [9, 18, 27]
    assert sorted(stream for streams in groups.values() for stream in streams) == list(range(36))
    assert set(stream_groups(VisageConfig.tiny(num_channels=1))) == {"w_coarse", "w_fine"}


# ------------------------------------------------------------------------------------------------ initialisation
def test_init_from_mono_copies_w_into_the_spatial_channels(tmp_path):
    from visage_hf.training.arguments import ModelArguments
    from visage_hf.training.train import build_model

    torch.manual_seed(0)
    mono = VisageForFOA(VisageConfig.tiny(num_channels=1))
    mono.save_pretrained(tmp_path / "mono")
    model = build_model(ModelArguments(init_from="mono", model_name_or_path=str(tmp_path / "mono")))
    assert model.config.num_channels == 4
    # Y q0, Z q4, X q8 start as W q(stream mod 9): docs/original-implementation.md §1.6 step 3
    for stream in (9, 22, 35):
        torch.testing.assert_close(model.heads[stream].weight, mono.heads[stream % 9].weight)
        torch.testing.assert_close(
            model.model.decoder.embed_codes[stream].weight, mono.model.decoder.embed_codes[stream % 9].weight
        )
    torch.testing.assert_close(model.null_clip_embedding, mono.null_clip_embedding)  # inherited (§1.6 step 4)
    assert model.training


def test_init_from_an_original_checkpoint_converts_it():
    from visage_hf.training.arguments import ModelArguments
    from visage_hf.training.train import build_model

    folder = REPO / "tests" / "fixtures" / "original_tiny" / "foa"
    model = build_model(ModelArguments(init_from="original", model_name_or_path=str(folder)))
    assert model.config.mode == "original" and model.config.d_model == 16
    assert next(model.parameters()).dtype == torch.float32  # fp32 master weights for mixed precision


def test_original_mode_run_uses_the_originals_choices(tmp_path):
    from visage_hf.training.train import finish, train

    # The tiny recipe as shipped (it writes its synthetic task into the output folder), in original mode.
    arguments = [
        "--config",
        str(TINY),
        "--use_cpu",
        "--output_dir",
        str(tmp_path / "out"),
        "--max_steps",
        "3",
    ]
    arguments += ["--eval_steps", "3", "--save_steps", "3", "--report_to", "none", "--mode", "original"]
    run = setup(arguments)
    collate = run.train_loader.collate_fn
    assert collate.dropout_unit == "batch" and collate.rotation == "original"
    assert run.eval_loader.collate_fn.apply_dropout  # the original's validation quirk, original mode only
    no_decay = {id(p) for p in run.optimizer.param_groups[1]["params"]}
    layernorm_embedding = run.accelerator.unwrap_model(run.model).model.encoder.layernorm_embedding.weight
    assert id(layernorm_embedding) not in no_decay  # the original's name rule decays it
    train(run)
    finish(run)
    _, evaluation, steps = read_log(tmp_path / "out")
    assert steps == [1, 2, 3] and 3 in evaluation


def test_two_stage_recipe_mono_pretraining_then_foa_finetuning(tmp_path):
    """Stage 1 trains the mono variant on W-only codes; stage 2 starts the FOA model from its output."""
    from visage_hf.training.train import main

    overrides = dict(load_recipe(TINY)["config_overrides"], num_channels=1)
    common = [
        "--config",
        str(TINY),
        "--use_cpu",
        "--max_steps",
        "2",
        "--save_steps",
        "2",
        "--eval_steps",
        "2",
    ]
    common += ["--report_to", "none", "--window_seconds", "0.25"]
    mono = main(
        [*common, "--output_dir", str(tmp_path / "stage1"), "--config_overrides", json.dumps(overrides)]
    )
    assert VisageConfig.from_pretrained(mono).num_channels == 1
    foa = main(
        [
            *common,
            "--output_dir",
            str(tmp_path / "stage2"),
            "--init_from",
            "mono",
            "--model_name_or_path",
            str(mono),
        ]
    )
    model = VisageForFOA.from_pretrained(foa)
    assert model.config.num_channels == 4
    _, evaluation, steps = read_log(tmp_path / "stage2")
    assert steps == [1, 2] and 2 in evaluation
