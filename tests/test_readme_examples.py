"""Every code block of README.md runs as written: Python blocks are exec'd in order in one namespace, bash blocks
are run by bash, all in one scratch folder.

**Stand-ins (the documented fixture).** Nothing may be downloaded in tests, so before a block runs:

* the Hub id ``jaeyeonkim99/visage`` (the released model) is replaced by the folder of a tiny random pipeline
  saved with ``VisagePipeline.save_pretrained`` (``VisagePipeline.from_pretrained("tiny-random")``);
* ``clip.mp4`` is a 5 s synthetic video (``visage_hf.data.synthetic.moving_object_video``) in the scratch folder.

**Steps not run here, each for a stated reason** (:data:`NOT_RUN_HERE`): making a virtual environment and
``pip install`` (``.ci/run`` runs the quick start on a clean machine exactly as written), ``pytest`` (this is it),
``python app.py`` (a server that does not end; the app tests start it), and the two full training recipes (they
need the VGGSound / YT-Ambigen features). The tiny recipe runs, cut to two steps with the command-line overrides
the README documents (:data:`TRAINING_SHORTENED`).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
HUB_MODEL = "jaeyeonkim99/visage"

NOT_RUN_HERE = {
    "python3 -m venv": "environment set-up; .ci/run runs it on a clean machine",
    ". .venv/bin/activate": "environment set-up; .ci/run runs it on a clean machine",
    "pip install": "installation; .ci/run runs it on a clean machine",
    "pytest": "the test suite itself",
    "python app.py": "a server that runs until stopped; tests/app starts it",
    "VISAGE_MODEL=tiny-random python app.py": "a server that runs until stopped; tests/app starts it",
    "VISAGE_SCREENSHOT=": "the browser test itself (tests/app)",
    "accelerate launch visage_hf/train.py --config visage_hf/training/configs/pretrain_vggsound.yaml": (
        "needs the VGGSound features"
    ),
    "accelerate launch visage_hf/train.py --config visage_hf/training/configs/finetune_ytambigen.yaml": (
        "needs the YT-Ambigen features and a stage-1 model"
    ),
}
TRAINING_SHORTENED = "--max_steps 2 --eval_steps 2 --save_steps 2 --logging_steps 1"


def code_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block, in order."""
    return [(match[1], match[2]) for match in re.finditer(r"```(\w*)\n(.*?)```", text, flags=re.S)]


def bash_steps(code: str) -> list[str]:
    """The commands of a bash block: one per line (comments dropped), ``&&`` chains split into steps."""
    steps = []
    for line in code.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if line and not line.startswith("#"):
            steps += [step.strip() for step in line.split("&&")]
    return steps


def skipped_reason(step: str) -> str | None:
    return next((reason for prefix, reason in NOT_RUN_HERE.items() if step.startswith(prefix)), None)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """The folder the README's examples run in, with the stand-ins (see the module docstring)."""
    import torch

    from visage_hf import VisagePipeline
    from visage_hf.data.synthetic import moving_object_video

    folder = tmp_path_factory.mktemp("readme")
    torch.manual_seed(0)
    VisagePipeline.from_pretrained("tiny-random").save_pretrained(folder / "hub-stand-in")
    moving_object_video(folder / "clip.mp4", seconds=5.0, fps=10, width=96, height=72)
    return folder


def _with_stand_ins(code: str, folder: Path) -> str:
    return code.replace(HUB_MODEL, str(folder / "hub-stand-in"))


def test_readme_has_the_blocks_this_module_runs():
    languages = [language for language, _ in code_blocks(README.read_text())]
    assert languages.count("python") >= 2 and languages.count("bash") >= 4


def test_python_blocks_run_as_written(scratch, monkeypatch):
    monkeypatch.chdir(scratch)
    namespace: dict = {"__name__": "__readme__"}
    blocks = [code for language, code in code_blocks(README.read_text()) if language == "python"]
    for index, code in enumerate(blocks):
        try:
            exec(
                compile(_with_stand_ins(code, scratch), f"README.md python block {index + 1}", "exec"),
                namespace,
            )
        except Exception as error:  # name the block: the traceback points into README text
            raise AssertionError(f"README python block {index + 1} failed: {error!r}\n{code}") from error
    # What the blocks promise: FOA for 5 s at 44.1 kHz, codes of 4 channels × 9 codebooks, a reloadable pipeline.
    assert namespace["out"].audio.shape == (1, 4, 5 * 44100)
    assert tuple(namespace["codes"].shape[:3]) == (1, 4, 9)
    assert (scratch / "my-pipeline" / "model_index.json").is_file()


def test_bash_blocks_run_as_written(scratch):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
        "HF_HUB_OFFLINE": "1",
    }
    ran, skipped = [], []
    for language, code in code_blocks(README.read_text()):
        if language != "bash":
            continue
        for step in bash_steps(_with_stand_ins(code, scratch)):
            if reason := skipped_reason(step):
                skipped.append((step, reason))
                continue
            if "visage_hf/train.py" in step:  # the tiny recipe, shortened (see TRAINING_SHORTENED)
                step = step.replace("visage_hf/", f"{REPO}/visage_hf/", 2)
                step += f" {TRAINING_SHORTENED} --output_dir {scratch / 'runs' / 'tiny'}"
            result = subprocess.run(
                ["bash", "-c", step], cwd=scratch, env=env, capture_output=True, text=True, timeout=600
            )
            assert result.returncode == 0, (
                f"README step failed: {step}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
            )
            ran.append(step)
    assert any(step.startswith("visage generate") for step in ran), ran
    for name in (
        "foa_ambix.wav",
        "binaural.wav",
        "spatial.mp4",
        "spatial_360.mp4",
        "energy_map.png",
        "map_from_mp4.png",
    ):
        assert (scratch / "out" / name).is_file(), name
    assert (scratch / "runs" / "tiny" / "model" / "config.json").is_file()
    assert all(shlex.split(step) for step, _ in skipped)
