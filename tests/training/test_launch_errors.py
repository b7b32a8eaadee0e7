"""An input error under a real `accelerate launch` is one line on stderr: no launcher traceback.

accelerate 1.x's launcher raises `CalledProcessError` (a 15-line traceback, and our line again inside it) when the
training script exits non-zero; `visage_hf.training.launcher` stops it with SIGTERM instead, which it turns into
a quiet exit. Started exactly as the README says (`accelerate launch visage_hf/train.py --config ... --use_cpu`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from visage_hf.training.launcher import _is_accelerate_launch

ROOT = Path(__file__).resolve().parents[2]


def _launch(tmp_path, *arguments: str) -> subprocess.CompletedProcess:
    """``accelerate launch visage_hf/train.py --config tiny.yaml --use_cpu <arguments>`` (one process)."""
    accelerate = shutil.which("accelerate") or str(Path(sys.executable).with_name("accelerate"))
    if not Path(accelerate).exists():
        pytest.skip("the accelerate command is not installed")
    command = [
        accelerate, "launch", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", str(ROOT / "visage_hf" / "train.py"),
        "--config", str(ROOT / "visage_hf" / "training" / "configs" / "tiny.yaml"), "--use_cpu", *arguments,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)


def test_reused_output_folder_under_accelerate_launch_prints_one_line(tmp_path):
    output = tmp_path / "out"
    (output / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    (output / "checkpoints" / "checkpoint-1" / "checkpoint_complete.json").write_text("{}")
    done = _launch(tmp_path, "--output_dir", str(output))

    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == [
        f"visage train: error: {output} already holds checkpoints: pass --resume_from_checkpoint latest to "
        "continue, --overwrite_output_dir to start over, or another output_dir"
    ], done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_malformed_option_under_accelerate_launch_prints_only_the_usage_error(tmp_path):
    # argparse prints its usage error and exits itself (SystemExit), unlike our ValueErrors above.
    done = _launch(tmp_path, "--output_dir", str(tmp_path / "out"), "--max_steps", "five")

    assert done.returncode != 0
    last = done.stderr.splitlines()[-1]
    assert last.startswith("train.py: error: argument --max_steps") and "invalid int value: 'five'" in last, (
        last
    )
    assert "Traceback" not in done.stdout + done.stderr and "CalledProcessError" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("command", "is_launcher"),
    [
        (["/venv/bin/python3", "/venv/bin/accelerate", "launch", "train.py"], True),
        (["accelerate", "launch", "--multi_gpu", "train.py"], True),
        (["python", "-m", "accelerate.commands.launch", "train.py"], True),
        (["accelerate", "launch", "--quiet", "train.py"], False),  # already quiet: leave it alone
        (["accelerate", "launch", "-q", "train.py"], False),
        (["/bin/bash"], False),
        (["python", "-m", "pytest", "tests/training"], False),
        (["accelerate", "env"], False),
    ],
)
def test_only_a_loud_accelerate_launcher_is_stopped(command, is_launcher):
    assert _is_accelerate_launch(command) is is_launcher
