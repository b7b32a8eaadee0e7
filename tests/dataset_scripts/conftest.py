"""Fixtures of the dataset_scripts/ tests: synthetic sources "downloaded" by a fake yt-dlp, tiny models, and the
prepare -> extract_features -> build_shards run that several test modules read (built once per session)."""

from __future__ import annotations

import json

import datasets
import pytest

from dataset_scripts import build_shards, download, extract_features, prepare
from visage_hf.audio.codec import FOACodec
from visage_hf.data.synthetic import equirect_scene
from visage_hf.directions import direction_to_indices, indices_to_direction
from visage_hf.models.feature_extraction_visage import VisageFeatureExtractor
from visage_hf.pipelines.tiny import tiny_random_components

from .helpers import SOURCES, SPLIT_CLIPS, FakeYoutube, extract_args, prepare_args, write_split_lists


@pytest.fixture(scope="module", autouse=True)
def datasets_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf_datasets_cache"))
        datasets.disable_progress_bars()
        yield


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    """Synthetic sources downloaded by the fake yt-dlp, split lists and an ambi.json for them, tiny models."""
    root = tmp_path_factory.mktemp("yt_ambigen")
    sources, indices = {}, {}
    for video_id, (azimuth, elevation) in SOURCES.items():
        elevation_index, azimuth_index = direction_to_indices(azimuth, elevation)
        assert indices_to_direction(elevation_index, azimuth_index) == (azimuth, elevation)
        indices[video_id] = (elevation_index, azimuth_index)
        scene = equirect_scene(
            root / "sources" / f"{video_id}.mp4", seconds=6, object_azimuth=azimuth, object_elevation=elevation,
            height=128, sound="tone", frequency=660.0,
        )  # fmt: skip
        sources[video_id] = scene.path
    fake = FakeYoutube(sources)
    raw = root / "raw"
    code = download.main(["--output", str(raw), "--ids", ",".join(SOURCES), "--min-interval", "0", "--jitter", "0",
                          "--no-progress"], downloader=fake, sleep=lambda s: None)  # fmt: skip
    assert code == 0
    split_lists = write_split_lists(root / "splits", SPLIT_CLIPS)
    table = {clip_id: list(indices[clip_id[:11]]) for ids in SPLIT_CLIPS.values() for clip_id in ids}
    (root / "ambi.json").write_text(json.dumps(table))

    components = tiny_random_components(seed=0)
    VisageFeatureExtractor(components["image_encoder"], components["image_processor"]).save_pretrained(
        root / "clip"
    )
    FOACodec(components["codec"]).save_pretrained(root / "dac")
    return {"root": root, "raw": raw, "splits": split_lists, "directions": root / "ambi.json", "fake": fake}


@pytest.fixture(scope="session")
def pipeline(workspace):
    """prepare -> extract_features -> build_shards on the synthetic sources (each stage through its CLI)."""
    ws = workspace
    media, features, shards = ws["root"] / "media", ws["root"] / "features", ws["root"] / "dataset"
    assert prepare.main(prepare_args(ws, media)) == 0
    assert extract_features.main(extract_args(ws, media, features)) == 0
    assert build_shards.main(["--output", str(shards), "--configs", "metadata,media,features", "--media-dir",
                              str(media), "--features-dir", str(features), "--directions", str(ws["directions"]),
                              "--split-lists", str(ws["splits"])]) == 0  # fmt: skip
    return {**ws, "media": media, "features": features, "shards": shards}
