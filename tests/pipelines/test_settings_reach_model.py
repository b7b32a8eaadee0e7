"""Issue 13, weakness 3 (pipeline layer): every non-default generation setting given to `VisagePipeline`,
`load_pipeline` and batch generation reaches `VisageForFOA` (read back from the guidance plan, the sampler and
the model's weights by tests/pipelines/generation_spy.py). The CLI and app layers: tests/commands and tests/app."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from visage_hf.models.feature_extraction_visage import VisageFeatureExtractor
from visage_hf.pipelines.loading import load_pipeline
from visage_hf.pipelines.pipeline_visage import VisagePipeline
from visage_hf.pipelines.tiny import tiny_random_components
from visage_hf.video.clip import load_video_clip

from .generation_spy import CASES, DTYPES, GenerationReached, spy_generation

SECONDS = 0.5
AZIMUTH, ELEVATION = 30.0, 10.0


@pytest.fixture(scope="module")
def pipe() -> VisagePipeline:
    return VisagePipeline(**tiny_random_components())


def write_videos(folder) -> dict:
    """A small field-of-view clip ("flat") and a 2:1 clip without spherical metadata ("wide": read as a flat video
    unless equirect is asked for)."""
    from visage_hf.data.synthetic import moving_object_video

    return {
        "flat": moving_object_video(folder / "flat.mp4", seconds=1.0, fps=10, width=96, height=72),
        "wide": moving_object_video(folder / "wide.mp4", seconds=1.0, fps=10, width=192, height=96),
    }


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict:
    return write_videos(tmp_path_factory.mktemp("videos"))


def first_call(monkeypatch, run):
    """What the model received on the first generate call of ``run()`` (which the spy then stops)."""
    with spy_generation(monkeypatch) as calls, pytest.raises(GenerationReached):
        run()
    return calls[0]


def expected_clip_features(pipe, video, equirect: bool) -> torch.Tensor:
    """CLIP features of the clip's frames read with ``equirect`` by the clip reader, without the pipeline."""
    config = pipe.foa_model.config
    clip = load_video_clip(
        video, AZIMUTH, ELEVATION, 0.0, SECONDS, fps=config.video_fps, equirect=equirect,
        short_side=pipe.image_processor.size["shortest_edge"],
        sampling=config.frame_sampling, mode=config.resolve_mode(None),
    )  # fmt: skip
    extractor = VisageFeatureExtractor(
        pipe.image_encoder, pipe.image_processor, mode=config.resolve_mode(None)
    )
    return extractor(clip.frames, AZIMUTH, ELEVATION)["clip_features"].float()


def assert_features(received: torch.Tensor, pipe, video, equirect: bool) -> None:
    """``received`` are the features of the clip read with ``equirect``, and not of the other reading."""
    torch.testing.assert_close(received, expected_clip_features(pipe, video, equirect), rtol=1e-5, atol=1e-5)
    other = expected_clip_features(pipe, video, not equirect)
    assert not torch.allclose(received, other, atol=1e-3), "the equirect setting made no difference"


@pytest.mark.parametrize("case", list(CASES))
def test_pipeline_settings_reach_the_model(pipe, videos, monkeypatch, case):
    _, settings, expected = CASES[case]
    got = first_call(
        monkeypatch,
        lambda: pipe(videos["flat"], AZIMUTH, ELEVATION, duration=SECONDS, progress=False, **settings),
    )
    assert got.matches(expected) == {}


@pytest.mark.parametrize("name", list(DTYPES))
def test_load_pipeline_dtype_reaches_the_model(videos, monkeypatch, name):
    pipe = load_pipeline("tiny-random", "cpu", name, quiet=True)
    got = first_call(
        monkeypatch, lambda: pipe(videos["flat"], AZIMUTH, ELEVATION, duration=SECONDS, progress=False)
    )
    assert got.dtype == DTYPES[name]


def test_pipeline_equirect_reaches_the_model(pipe, videos, monkeypatch):
    for equirect in (True, None):  # None: detected, and a 2:1 file without spherical metadata is flat
        run = partial(
            pipe, videos["wide"], AZIMUTH, ELEVATION, duration=SECONDS, equirect=equirect, progress=False
        )
        got = first_call(monkeypatch, run)
        assert_features(got.clip_features, pipe, videos["wide"], bool(equirect))
