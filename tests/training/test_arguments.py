"""Tests of visage_hf.training.arguments: YAML recipes, flag overrides and argument checks before anything runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from visage_hf.training.arguments import load_recipe, parse_arguments

REPO = Path(__file__).resolve().parents[2]
TRAIN_SCRIPT = REPO / "visage_hf" / "train.py"
TINY = REPO / "visage_hf" / "training" / "configs" / "tiny.yaml"
RECIPES = sorted((REPO / "visage_hf" / "training" / "configs").glob("*.yaml"))


def write_recipe(tmp_path: Path, extra: str) -> Path:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(TINY.read_text() + extra)
    return recipe


def test_unknown_recipe_key_is_rejected_with_a_suggestion(tmp_path):
    recipe = write_recipe(tmp_path, "learning_rat: 0.1\n")
    with pytest.raises(
        ValueError, match=r"unknown key\(s\) 'learning_rat' \(did you mean 'learning_rate'\?\)"
    ):
        parse_arguments(["--config", str(recipe)])


def test_cli_reports_bad_input_in_one_line_with_exit_code_2(tmp_path):
    recipe = write_recipe(tmp_path, "learning_rat: 0.1\n")
    completed = subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), "--config", str(recipe), "--output_dir", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().startswith("visage train: error: recipe")
    assert "Traceback" not in completed.stderr and len(completed.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_flags_override_the_recipe():
    model_args, data_args, args = parse_arguments(
        [
            "--config",
            str(TINY),
            "--learning_rate",
            "1e-4",
            "--rotation",
            "none",
            "--config_overrides",
            '{"d_model": 64}',
        ]
    )
    assert args.learning_rate == 1e-4  # the recipe says 3e-3
    assert data_args.rotation == "none"
    assert json.loads(model_args.config_overrides) == {"d_model": 64}
    assert load_recipe(TINY)["learning_rate"] == 3e-3


@pytest.mark.parametrize(
    "extra, message",
    [
        ("global_batch_size: [8]\n", "global_batch_size must be int"),
        ("mode: faithful\n", "mode must be one of"),
        ("gradient_accumulation_steps: 3\n", "multiple of gradient_accumulation_steps"),
        ("init_from: mono\n", "needs model_name_or_path"),
        ("streaming: true\nmax_steps: -1\n", "set max_steps"),
        ("config_overrides: {d_modle: 64}\n", r"unknown VisageConfig field\(s\) \['d_modle'\]"),
        ("guidance_dropout: per_step\n", "guidance_dropout must be one of"),
    ],
)
def test_inconsistent_arguments_are_rejected(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        parse_arguments(["--config", str(write_recipe(tmp_path, extra))])


def test_missing_recipe_file():
    with pytest.raises(FileNotFoundError, match="does not exist"):
        parse_arguments(["--config", "no/such/recipe.yaml"])


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.stem)
def test_shipped_recipes_parse(recipe):
    model_args, _, args = parse_arguments(["--config", str(recipe)])
    assert args.global_batch_size % args.gradient_accumulation_steps == 0
    # docs/original-implementation.md §4.1: stage 1 from scratch with 4,000 warm-up steps; stage 2 from the mono model at a constant
    # 1e-4; both at a global batch of 64, AdamW weight decay 0.01, clipping 1.0, seed 1115.
    if recipe.stem == "pretrain_vggsound":
        assert model_args.config_overrides == {"num_channels": 1}
        assert (args.lr_scheduler_type, args.warmup_steps, args.num_train_epochs) == (
            "constant_with_warmup",
            4000,
            50,
        )
    if recipe.stem == "finetune_ytambigen":
        assert model_args.init_from == "mono"
        assert (args.lr_scheduler_type, args.warmup_steps, args.num_train_epochs) == ("constant", 0, 80)
    if recipe.stem != "tiny":
        assert (args.global_batch_size, args.learning_rate, args.weight_decay) == (64, 1e-4, 0.01)
        assert (args.max_grad_norm, args.seed) == (1.0, 1115)
