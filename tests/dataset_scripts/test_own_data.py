"""dataset_scripts/own_data.py and the VGGSound path: own 360° videos, own field-of-view clips with given directions,
mono clips for the mono model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import datasets
import numpy as np
import pytest

from dataset_scripts import build_shards, download, extract_features, prepare
from visage_hf.audio.codec import FOACodec
from visage_hf.audio.foa import encode
from visage_hf.audio.io import read_audio, write_audio
from visage_hf.data.features import FeatureDataset, VisageCollator, load_feature_dataset
from visage_hf.data.synthetic import equirect_scene, moving_object_video
from visage_hf.directions import angular_distance
from visage_hf.models.configuration_visage import VisageConfig
from visage_hf.video.io import read_frames

from .helpers import EQUIRECT_WIDTH, FOV_SIZE, FakeYoutube, extract_args, quiet, red_centroid


def test_own_360_videos_with_auto_direction(tmp_path, workspace):
    own = tmp_path / "own"
    equirect_scene(own / "concert take 1.mp4", seconds=4.5, object_azimuth=-120.0, object_elevation=15.0,
                           height=128, sound="tone")  # fmt: skip
    write_audio(own / "stereo.wav", np.zeros((2, 48000), np.float32), 48000)
    moving_object_video(own / "stereo.mp4", seconds=1.0)  # its sidecar audio is stereo: refused, listed
    media = tmp_path / "media"
    argv = quiet(["--own-videos", str(own), "--direction", "auto", "--curate", "--clip-seconds", "2", "--output",
                  str(media), "--fov-size", str(FOV_SIZE), "--equirect-width", str(EQUIRECT_WIDTH)])  # fmt: skip
    assert prepare.main(argv) == 0
    assert sorted(p.name for p in media.iterdir() if p.is_dir()) == ["concert-take-1_0", "concert-take-1_2"]
    with open(media / prepare.FAILURES_FILE) as handle:
        assert (
            "expected 4-channel"
            in {row["item"]: row["reason"] for row in csv.DictReader(handle)}["stereo.mp4"]
        )
    for clip_dir in sorted(p for p in media.iterdir() if p.is_dir()):
        meta = json.loads((clip_dir / "meta.json").read_text())
        assert meta["direction_source"] == "auto" and meta["curation"]["keep"]
        assert angular_distance(meta["azimuth"], meta["elevation"], -120.0, 15.0) <= 2.0
        x, y = red_centroid(read_frames(clip_dir / "video.mp4", fps=None)[0])
        assert abs(x - (FOV_SIZE - 1) / 2) < 2.0 and abs(y - (FOV_SIZE - 1) / 2) < 2.0

    # Own data has no YT-Ambigen indices: the features config carries the model's direction vector.
    features, shards = tmp_path / "features", tmp_path / "dataset"
    assert extract_features.main(extract_args(workspace, media, features, "--rotation-yaws=")) == 0
    assert (
        build_shards.main(["--output", str(shards), "--configs", "features", "--features-dir", str(features)])
        == 0
    )
    train = datasets.load_dataset(
        str(shards), split="train", cache_dir=str(tmp_path / "cache")
    )  # default config
    assert "direction" in train.column_names and "elevation_index" not in train.column_names
    for row in train:
        meta = json.loads((media / row["clip_id"] / "meta.json").read_text())
        az, el = np.deg2rad(meta["azimuth"]), np.deg2rad(meta["elevation"])
        # camera frame (image-right, image-down, forward) = (-y, -z, x) of the ambisonic unit vector
        expected = [-np.sin(az) * np.cos(el), -np.sin(el), np.cos(az) * np.cos(el)]
        np.testing.assert_allclose(row["direction"], expected, atol=1e-6)


def test_own_field_of_view_clips_with_given_directions(tmp_path):
    own = tmp_path / "own_fov"
    moving_object_video(own / "shot 1.mp4", seconds=2.0)  # an ordinary (already cropped) clip, 160x120
    t = np.arange(3 * 48000) / 48000
    foa = encode((0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 30.0, 5.0)
    write_audio(own / "shot 1.flac", foa, 48000, subtype="PCM_24")  # the sidecar FOA (longer than the video)
    (own / "directions.csv").write_text("name,azimuth,elevation,split\nshot 1,30,5,validation\n")
    media = tmp_path / "media"
    assert prepare.main(quiet(["--own-fov", str(own), "--output", str(media), "--clip-seconds", "2"])) == 0
    clip_dir = media / "shot-1_0"
    meta = json.loads((clip_dir / "meta.json").read_text())
    assert (meta["kind"], meta["azimuth"], meta["elevation"], meta["split"]) == (
        "fov",
        30.0,
        5.0,
        "validation",
    )
    assert meta["direction_source"] == "given" and meta["elevation_index"] is None
    frames, _ = read_frames(clip_dir / "video.mp4", fps=None)
    assert frames.shape == (8, 120, 160, 3)  # 4 fps, the clip's own size (CLIP's processor crops later)
    prepared, _ = read_audio(clip_dir / "foa.flac")
    np.testing.assert_allclose(prepared, foa[:, : 2 * 48000], atol=1e-5)  # 24-bit FLAC of the same samples


def test_vggsound_mono_path_feeds_the_mono_model(tmp_path, workspace):
    sources = tmp_path / "sources"
    moving_object_video(sources / "video.mp4", seconds=3.0)
    t = np.arange(3 * 44100) / 44100
    stereo = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 440 * t)]).astype(np.float32) * 0.2
    write_audio(sources / "audio.flac", stereo, 44100, subtype="PCM_16")

    class FakeVGG(FakeYoutube):
        def download(self, url, format_id, output_template):
            source = sources / ("audio.flac" if format_id == "140" else "video.mp4")
            Path(output_template.replace("%(ext)s", source.suffix[1:])).write_bytes(source.read_bytes())

    formats = [
        {"format_id": "140", "vcodec": "none", "acodec": "mp4a", "audio_channels": 2, "abr": 128},
        {"format_id": "133", "vcodec": "avc1", "acodec": "none", "ext": "mp4", "height": 240},
    ]
    listing = tmp_path / "vggsound.csv"
    listing.write_text("vggvideo001,0,playing guitar,train\nvggvideo002,1,dog barking,test\n")
    fake = FakeVGG({}, formats={"vggvideo001": formats, "vggvideo002": formats})
    raw = tmp_path / "raw"
    assert download.main(quiet(["--output", str(raw), "--vggsound", str(listing), "--min-interval", "0", "--jitter",
                                "0"]), downloader=fake, sleep=lambda s: None) == 0  # fmt: skip
    media = tmp_path / "media"
    assert prepare.main(quiet(["--vggsound", str(listing), "--raw-dir", str(raw), "--output", str(media),
                               "--clip-seconds", "4", "--min-seconds", "1.5", "--short-side", "32"])) == 0  # fmt: skip
    meta = json.loads((media / "vggvideo002_1" / "meta.json").read_text())
    assert meta["num_channels"] == 1 and meta["label"] == "dog barking" and meta["split"] == "test"
    assert meta["seconds"] == pytest.approx(2.0)  # the 3 s source from second 1: kept at 2 s (>= 1.5)
    mono, _ = read_audio(media / "vggvideo002_1" / "audio.flac")
    assert mono.shape == (1, 2 * 44100)

    features = tmp_path / "features"
    assert extract_features.main(extract_args(workspace, media, features)) == 0
    arrays, _ = extract_features.load_features(features / "vggvideo001_0.npz")
    assert set(arrays) == {"clip_features", "codes"} and arrays["codes"].shape == (-(-3 * 44100 // 512), 9)
    # W-only codes equal the W channel of the FOA codec on (mono, 0, 0, 0): an independent code path.
    codec = FOACodec.from_pretrained(workspace["root"] / "dac")
    clip_mono, clip_rate = read_audio(media / "vggvideo001_0" / "audio.flac")
    padded = np.concatenate([clip_mono, np.zeros((3, clip_mono.shape[1]), np.float32)])
    np.testing.assert_array_equal(arrays["codes"], codec.encode(padded, clip_rate).numpy()[0].T)

    shards = tmp_path / "vggsound_features"
    assert (
        build_shards.main(["--output", str(shards), "--configs", "features", "--features-dir", str(features)])
        == 0
    )
    train = load_feature_dataset(str(shards), "train")  # how pretrain_vggsound.yaml opens dataset_name
    config = VisageConfig.tiny(num_channels=1)
    batch = VisageCollator(config, train=False, window_seconds=0.5)([FeatureDataset(train, config)[0]])
    assert batch["labels"].shape[-1] == 9 and "direction" not in batch
