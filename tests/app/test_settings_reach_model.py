"""Issue 13, weakness 3 (app layer): the app's sampling widgets (guidance, its two scales, top-k, temperature)
reach `VisageForFOA` through ``check_request`` and ``run_generation`` (read back from the guidance plan and the
sampler by tests/pipelines/generation_spy.py). The app offers no greedy, dtype or equirect widget: cases that
need one are left to the CLI and pipeline tests."""

from __future__ import annotations

import pytest

from tests.pipelines.generation_spy import CASES, GenerationReached, spy_generation
from visage_hf.app import logic
from visage_hf.pipelines.pipeline_visage import VisagePipeline
from visage_hf.pipelines.tiny import tiny_random_components

APP_CASES = [name for name, (_, settings, _) in CASES.items() if "do_sample" not in settings]


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    from visage_hf.data.synthetic import moving_object_video

    return moving_object_video(
        tmp_path_factory.mktemp("video") / "clip.mp4", 1.0, fps=10, width=96, height=72
    )


@pytest.mark.parametrize("case", APP_CASES)
def test_app_settings_reach_the_model(video, tmp_path, monkeypatch, case):
    _, settings, expected = CASES[case]
    request, _ = logic.check_request(
        video, 0.0, 0.5, 30.0, 10.0, **settings, seed=1, random_seed=False, limits=logic.DemoLimits()
    )
    pipe = VisagePipeline(**tiny_random_components())
    with spy_generation(monkeypatch) as calls, pytest.raises(GenerationReached):
        logic.run_generation(pipe, request, tmp_path / "runs")
    assert calls[0].matches(expected) == {}
    assert list((tmp_path / "runs").iterdir()) == []  # the stopped run left no folder behind


def test_app_cases_cover_every_widget():
    widgets = set(logic.DEFAULT_SETTINGS)
    covered = {name for case in APP_CASES for name in CASES[case][1]}
    assert covered == widgets, widgets - covered
