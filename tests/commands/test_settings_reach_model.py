"""Issue 13, weakness 3 (CLI layer): every non-default option of `visage generate` and `visage generate-batch`
(--guidance, --guidance-scale, --direction-guidance-scale, --top-k, --temperature, --greedy, --dtype, --equirect)
reaches `VisageForFOA`, read back from the guidance plan, the sampler and the model's weights
(tests/pipelines/generation_spy.py). The spy stops each run at the model's first step, so nothing is written."""

from __future__ import annotations

import pytest

from tests.pipelines.generation_spy import CASES, DTYPES, GenerationReached, spy_generation
from tests.pipelines.test_settings_reach_model import (
    AZIMUTH,
    ELEVATION,
    SECONDS,
    assert_features,
    write_videos,
)
from visage_hf.commands.main import main
from visage_hf.pipelines.pipeline_visage import VisagePipeline
from visage_hf.pipelines.tiny import tiny_random_components


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict:
    return write_videos(tmp_path_factory.mktemp("videos"))


def _generate(video, out, *options) -> list:
    arguments = ["generate", str(video), "--azimuth", str(AZIMUTH), "--elevation", str(ELEVATION)]
    arguments += ["--duration", str(SECONDS), "--model", "tiny-random", "--device", "cpu", "--quiet"]
    return _first_call([*arguments, "-o", str(out), *options])


def _generate_batch(video, out, *options):
    table = out.parent / f"{out.name}.csv"
    table.write_text(
        f"id,video,azimuth,elevation,start,duration\nc,{video},{AZIMUTH},{ELEVATION},0,{SECONDS}\n"
    )
    arguments = ["generate-batch", "--videos", str(table), "--model", "tiny-random", "--device", "cpu"]
    return _first_call([*arguments, "--quiet", "-o", str(out), *options])


def _first_call(arguments):
    with (
        pytest.MonkeyPatch.context() as patch,
        spy_generation(patch) as calls,
        pytest.raises(GenerationReached),
    ):
        main(arguments)
    assert len(calls) == 1
    return calls[0]


COMMANDS = {"generate": _generate, "generate-batch": _generate_batch}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("case", list(CASES))
def test_sampling_options_reach_the_model(videos, tmp_path, command, case):
    options, _, expected = CASES[case]
    got = COMMANDS[command](videos["flat"], tmp_path / "out", *options)
    assert got.matches(expected) == {}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("name", list(DTYPES))
def test_dtype_reaches_the_model(videos, tmp_path, command, name):
    got = COMMANDS[command](videos["flat"], tmp_path / "out", "--dtype", name)
    assert got.dtype == DTYPES[name]


@pytest.mark.parametrize("command", list(COMMANDS))
def test_equirect_reaches_the_model(videos, tmp_path, command):
    pipe = VisagePipeline(**tiny_random_components())  # what --model tiny-random loads
    for options, equirect in ((["--equirect"], True), ([], False)):
        got = COMMANDS[command](videos["wide"], tmp_path / f"out{equirect}", *options)
        assert_features(got.clip_features, pipe, videos["wide"], equirect)
