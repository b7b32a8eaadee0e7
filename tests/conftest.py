"""Shared fixtures: tiny random ViSAGe models (full 4 × 9 stream layout) and matching conditions.

Any test module may use `tiny_config`, `tiny_model`, `tiny_mono_model`, `make_conditions` and `serve_app`
(`python app.py` on a free localhost port); every test runs with one torch thread (`single_torch_thread`), after the fp32 generation kernels are
compiled (`compiled_step_kernels`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from visage_hf.models.configuration_visage import VisageConfig
from visage_hf.models.modeling_visage import VisageForFOA


def _tiny_config(**overrides) -> VisageConfig:
    return VisageConfig.tiny(dropout=0.0, **overrides)


@pytest.fixture
def tiny_config() -> VisageConfig:
    """d_model 32, 1 encoder / 2 decoder layers, 36 streams of 1024 codes, 87 decoder positions."""
    return _tiny_config()


@pytest.fixture
def tiny_model(tiny_config) -> VisageForFOA:
    """A randomly initialised FOA model in eval mode (seeded, so every test sees the same weights)."""
    torch.manual_seed(1234)
    model = VisageForFOA(tiny_config).eval()
    _randomise_special_vectors(model)
    return model


@pytest.fixture
def tiny_mono_model() -> VisageForFOA:
    """The mono variant (9 streams, no energy map / direction)."""
    torch.manual_seed(4321)
    model = VisageForFOA(_tiny_config(num_channels=1)).eval()
    _randomise_special_vectors(model)
    return model


@torch.no_grad()
def _randomise_special_vectors(model: VisageForFOA) -> None:
    # bos/eos/nulls start at zero; random values make tests sensitive to where each one is used.
    for name, parameter in model.named_parameters():
        if name.endswith(("bos", "eos")) or name.startswith("null_"):
            parameter.normal_(0.0, 0.5)


@pytest.fixture
def make_conditions():
    """make_conditions(config, batch, frames, seed) -> (clip_features, energy_map, direction); the mono variant
    gets (clip_features, None, None)."""

    def make(config: VisageConfig, batch: int = 2, frames: int = 1, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        clip = torch.randn(batch, frames, config.clip_dim, generator=generator)
        if config.is_mono:
            return clip, None, None
        energy = torch.rand(batch, frames, config.energy_map_dim, generator=generator)
        energy = energy / energy.sum(-1, keepdim=True)
        direction = torch.nn.functional.normalize(
            torch.randn(batch, config.direction_dim, generator=generator), dim=-1
        )
        return clip, energy, direction

    return make


@pytest.fixture(autouse=True, scope="session")
def single_torch_thread():
    """The whole suite runs with one torch thread: tiny models gain nothing from a thread pool, and on a busy
    CPU every small parallel op can stall waiting for a descheduled worker thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="session")
def compiled_step_kernels():
    """numba compiles the CPU generation kernels at their first use (then caches them on disk): done once here,
    so that no test's time limit (a Space served in a subprocess, a browser's wait) includes the compile."""
    from visage_hf.models.row_kernels import compile_kernels

    compile_kernels(torch.float32)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def _served_app(folder: Path, extra_env: dict[str, str], timeout: float = 90.0) -> Iterator[str]:
    port, log = free_port(), folder / "app.log"
    env = {
        **os.environ,
        "VISAGE_MODEL": "tiny-random",
        "GRADIO_TEMP_DIR": str(folder / "gradio"),
        "TMPDIR": str(folder),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        **extra_env,
    }
    app = Path(__file__).resolve().parents[1] / "app.py"
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, str(app), "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_serving(url, process, log, timeout)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_serving(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"app.py exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"app.py did not serve {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def serve_app():
    """``with serve_app(folder, {"VISAGE_MAX_CLIP_SECONDS": "3"}) as url:`` runs ``python app.py`` with the tiny
    random pipeline (offline) on a free localhost port, logs to ``folder/app.log``, and stops it afterwards."""
    return _served_app
