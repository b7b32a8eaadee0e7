"""Tests of dataset_scripts/: download -> prepare -> extract_features -> build_shards -> load_dataset -> a batch.

Everything is offline. Source videos are synthetic 360° scenes made here (`visage_hf.data.synthetic.equirect_scene`:
a red object and a tone encoded as a plane wave at the object's direction), "downloaded" by a fake yt-dlp;
CLIP and DAC are tiny random models saved by the test. References are independent of the code under test:
where the object was drawn (its colour centroid must sit at the centre of the field-of-view crop), where the
tone was encoded (the energy-map maximum of the prepared FOA), the original's published split sizes and
video counts (reference/original-visage.md §5.1), its direction formulas (§5.5) and the physics of a
rotation (W does not change).
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # dataset_scripts/ is a folder of scripts, not an installed package

import datasets  # noqa: E402

from dataset_scripts import (  # noqa: E402
    build_shards,
    clips,
    curation,
    download,
    extract_features,
    media_io,
    prepare,
    push_to_hub,
)
from dataset_scripts.jobs import run_cli  # noqa: E402
from dataset_scripts.yt_ambigen import YtAmbigen, decode_foa, decode_video  # noqa: E402
from visage_hf.audio.codec import FOACodec  # noqa: E402
from visage_hf.audio.foa import ambix_to_fuma, direction_from_energy_map, encode, energy_map, rotate  # noqa: E402
from visage_hf.audio.io import read_audio, write_audio  # noqa: E402
from visage_hf.data.collator import FeatureDataset, VisageCollator  # noqa: E402
from visage_hf.data.schema import load_feature_dataset  # noqa: E402
from visage_hf.data.synthetic import equirect_scene, moving_object_video  # noqa: E402
from visage_hf.directions import angular_distance, direction_to_indices, indices_to_direction  # noqa: E402
from visage_hf.models.configuration_visage import VisageConfig  # noqa: E402
from visage_hf.models.feature_extraction_visage import VisageFeatureExtractor  # noqa: E402
from visage_hf.pipelines.tiny import tiny_random_components  # noqa: E402
from visage_hf.video.io import read_audio_track, read_frames  # noqa: E402

CLIP_SECONDS = 2
FOV_SIZE = 64
EQUIRECT_WIDTH = 256
# Three source videos, each with a red object and a tone at one direction (public degrees), on the 2° index
# grid so that the YT-Ambigen table can hold them exactly.
SOURCES = {"AAAAAAAAAA1": (59.0, 9.0), "BBBBBBBBBB2": (-101.0, -21.0), "CCCC-CCCC_3": (169.0, 29.0)}
SPLIT_CLIPS = {
    "train": ["AAAAAAAAAA1_0", "AAAAAAAAAA1_3", "BBBBBBBBBB2_0"],
    "validation": ["CCCC-CCCC_3_1"],
    "test": [],
}


@pytest.fixture(scope="module", autouse=True)
def datasets_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf_datasets_cache"))
        datasets.disable_progress_bars()
        yield


# ------------------------------------------------------------------------------------------ fakes and helpers
class FakeYoutube:
    """Stands in for yt-dlp: formats like YouTube's, files copied from local synthetic sources.

    ``errors[video_id]`` is a list of exceptions raised by successive ``extract_info`` calls before success.
    """

    def __init__(self, sources: dict[str, Path], errors: dict | None = None, formats: dict | None = None):
        self.sources, self.errors, self.formats = sources, errors or {}, formats or {}
        self.info_calls: list[str] = []
        self.downloads: list[tuple[str, str]] = []

    def extract_info(self, url: str) -> dict:
        video_id = url.split("v=")[1]
        self.info_calls.append(video_id)
        pending = self.errors.get(video_id)
        if pending:
            raise pending.pop(0)
        return {"title": video_id, "duration": 6, "formats": self.formats.get(video_id, youtube_formats())}

    def download(self, url: str, format_id: str, output_template: str) -> None:
        video_id = url.split("v=")[1]
        self.downloads.append((video_id, format_id))
        extension = "webm" if format_id in ("338", "251") else "mp4"
        target = Path(output_template.replace("%(ext)s", extension))
        target.write_bytes(Path(self.sources[video_id]).read_bytes())


def youtube_formats() -> list[dict]:
    return [
        {
            "format_id": "251",
            "format_note": "medium",
            "vcodec": "none",
            "acodec": "opus",
            "audio_channels": 2,
            "abr": 160,
        },
        {
            "format_id": "328",
            "format_note": "ambisonic",
            "vcodec": "none",
            "acodec": "opus",
            "audio_channels": 4,
            "abr": 256,
        },
        {
            "format_id": "338",
            "format_note": "ambisonic",
            "vcodec": "none",
            "acodec": "opus",
            "audio_channels": 4,
            "abr": 512,
        },
        {"format_id": "18", "vcodec": "avc1.42001E", "acodec": "mp4a", "ext": "mp4", "height": 360},
        {"format_id": "134", "vcodec": "avc1.4d401e", "acodec": "none", "ext": "mp4", "height": 360},
        {
            "format_id": "135",
            "vcodec": "avc1.4d401f",
            "acodec": "none",
            "ext": "mp4",
            "height": 480,
            "tbr": 800,
        },
        {
            "format_id": "397",
            "vcodec": "av01.0.04M.08",
            "acodec": "none",
            "ext": "mp4",
            "height": 480,
            "tbr": 600,
        },
        {"format_id": "136", "vcodec": "avc1.4d401f", "acodec": "none", "ext": "mp4", "height": 720},
        {"format_id": "244", "vcodec": "vp9", "acodec": "none", "ext": "webm", "height": 480},
    ]


def red_centroid(frames: np.ndarray) -> tuple[float, float]:
    """Mean (x, y) pixel of the saturated red object over all frames."""
    f = frames.astype(int)
    mask = (f[..., 0] > 150) & (f[..., 1] < 100) & (f[..., 2] < 100)
    assert mask.sum() > 0, "the object is not in the frames"
    _, ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def write_split_lists(folder: Path, split_clips: dict[str, list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, name in (("train", "train.csv"), ("validation", "valid.csv"), ("test", "test.csv")):
        (folder / name).write_text("file_path\n" + "".join(f"{c}.npy\n" for c in split_clips[split]))
    return folder


def quiet(argv: list[str]) -> list[str]:
    return [*argv, "--no-progress"]


# ------------------------------------------------------------------------------------------ shared pipeline
@pytest.fixture(scope="module")
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


def prepare_args(ws, output: Path, *extra: str) -> list[str]:
    return quiet(["--raw-dir", str(ws["raw"]), "--output", str(output), "--directions", str(ws["directions"]),
                  "--split-lists", str(ws["splits"]), "--clip-seconds", str(CLIP_SECONDS), "--fov-size",
                  str(FOV_SIZE), "--equirect-width", str(EQUIRECT_WIDTH), *extra])  # fmt: skip


def extract_args(ws, media: Path, output: Path, *extra: str) -> list[str]:
    return quiet(["--media-dir", str(media), "--output", str(output), "--clip-model", str(ws["root"] / "clip"),
                  "--codec", str(ws["root"] / "dac"), "--batch-size", "2", *extra])  # fmt: skip


@pytest.fixture(scope="module")
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


def all_clip_ids() -> list[str]:
    return [clip_id for ids in SPLIT_CLIPS.values() for clip_id in ids]


def no_leftovers(folder: Path) -> list[str]:
    """Hidden files or folders (temporaries, staging) anywhere under ``folder``."""
    return [str(p.relative_to(folder)) for p in folder.rglob(".*")]


# ------------------------------------------------------------------------------------------ split lists
def test_metadata_config_reproduces_the_original_splits(tmp_path):
    # An independent reading of the shipped lists (gzip + csv), checked against the original's published
    # numbers, then the builder's metadata config (through build_shards and load_dataset, the Hub path).
    listed = {}
    for split, name in (("train", "train.csv.gz"), ("validation", "valid.csv.gz"), ("test", "test.csv.gz")):
        with gzip.open(clips.SPLIT_LIST_DIR / name, "rt") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == ["file_path"]
        listed[split] = [row[0].removesuffix(".npy") for row in rows[1:]]
    assert {s: len(v) for s, v in listed.items()} == {"train": 81_594, "validation": 9_604, "test": 11_166}
    videos = {split: {clip_id[:11] for clip_id in ids} for split, ids in listed.items()}
    assert {s: len(v) for s, v in videos.items()} == {"train": 2_518, "validation": 307, "test": 313}
    assert not (
        videos["train"] & videos["validation"]
        or videos["train"] & videos["test"]
        or videos["validation"] & videos["test"]
    )
    shared = Path("/work/shared/data/yt_ambigen")  # the originals, where this machine has them (not in CI)
    if shared.is_dir():
        for split, name in (("train", "train.csv"), ("validation", "valid.csv"), ("test", "test.csv")):
            original = (shared / name).read_text().split()[1:]
            assert [line.removesuffix(".npy") for line in original] == listed[split]
        all_clips = (shared / "all_clips.csv").read_text().split()[1:]
        assert sorted(all_clips) == sorted(c for ids in listed.values() for c in ids)

    # A synthetic direction table covering every clip (the real ambi.json is not available offline).
    rng = np.random.default_rng(0)
    table = {c: [int(rng.integers(90)), int(rng.integers(180))] for ids in listed.values() for c in ids}
    (tmp_path / "ambi.json").write_text(json.dumps(table))
    out = tmp_path / "dataset"
    assert build_shards.main(["--output", str(out), "--configs", "metadata", "--directions",
                              str(tmp_path / "ambi.json")]) == 0  # fmt: skip
    loaded = datasets.load_dataset(str(out), "metadata", cache_dir=str(tmp_path / "cache"))
    assert {split: loaded[split].num_rows for split in loaded} == {
        "train": 81_594,
        "validation": 9_604,
        "test": 11_166,
    }
    for split, ids in listed.items():
        table_split = loaded[split].to_pandas()
        assert table_split["clip_id"].tolist() == ids
        assert table_split["youtube_id"].tolist() == [c[:11] for c in ids]
        assert table_split["start_second"].tolist() == [int(c[12:]) for c in ids]
        assert set(table_split["split"]) == {split}
        e = np.array([table[c][0] for c in ids])
        a = np.array([table[c][1] for c in ids])
        np.testing.assert_array_equal(table_split["elevation_index"], e)
        np.testing.assert_array_equal(table_split["azimuth_index"], a)
        # reference §5.5: elevation 89 - 2e; the camera's ambisonic azimuth 179 - 2a (the original's yaw mirrored)
        np.testing.assert_array_equal(table_split["elevation"], 89 - 2 * e)
        np.testing.assert_array_equal(table_split["azimuth"], 179 - 2 * a)


def test_metadata_without_directions_and_with_a_bad_table(tmp_path):
    lists = write_split_lists(
        tmp_path / "splits", {"train": ["jrvzuQmr5to_5", "-a_b-c_d-e__10"], "validation": [], "test": []}
    )
    builder = YtAmbigen(
        config_name="metadata", directions="none", split_lists=str(lists), cache_dir=str(tmp_path / "c")
    )
    builder.download_and_prepare()
    rows = builder.as_dataset("train").to_list()
    assert [(r["youtube_id"], r["start_second"]) for r in rows] == [("jrvzuQmr5to", 5), ("-a_b-c_d-e_", 10)]
    assert all(r["azimuth"] is None and r["elevation_index"] is None for r in rows)
    assert list(builder.info.splits) == ["train"]  # an empty split is left out, not an error

    (tmp_path / "ambi.json").write_text(json.dumps({"jrvzuQmr5to_5": [3, 4]}))
    incomplete = YtAmbigen(config_name="metadata", directions=str(tmp_path / "ambi.json"), split_lists=str(lists),
                           cache_dir=str(tmp_path / "d"))  # fmt: skip
    with pytest.raises(ValueError, match="no entry for 1"):
        incomplete.download_and_prepare()


def test_direction_table_validation(tmp_path):
    good = {"jrvzuQmr5to_5.npy": [0, 179], "BI_heWaNfro_20": [89, 0]}
    path = tmp_path / "ambi.json.gz"
    path.write_bytes(gzip.compress(json.dumps(good).encode()))
    assert clips.load_direction_table(path) == {"jrvzuQmr5to_5": (0, 179), "BI_heWaNfro_20": (89, 0)}
    # The README's "0-90 / 0-180" would give elevation -91°: out-of-range entries are refused, all counted.
    with pytest.raises(ValueError, match="2 direction entries"):
        clips.load_direction_table({"a": [90, 0], "b": [0, 180], "c": [1, 2]})
    assert clips.parse_clip_id("-a_b-c_d-e__10") == ("-a_b-c_d-e_", 10)
    with pytest.raises(ValueError, match="11-character"):
        clips.parse_clip_id("short_5")


# ------------------------------------------------------------------------------------------ download
def test_download_picks_the_spatial_audio_and_survives_failures(tmp_path, workspace):
    formats = youtube_formats()
    assert download.select_ambisonic_audio(formats)["format_id"] == "338"  # 4 ch, 'ambi', highest rate
    assert download.select_video(formats, 480)["format_id"] == "135"  # smallest mp4 >= 480, H.264 first
    assert download.select_ambisonic_audio([f for f in formats if f["format_id"] == "251"]) is None
    source = workspace["raw"] / "AAAAAAAAAA1.mp4"
    fake = FakeYoutube(
        {"goodvideo01": source, "flakyvideo1": source, "stereoonly1": source, "privatevid1": source},
        errors={
            "flakyvideo1": [
                RuntimeError("HTTP Error 429: Too Many Requests"),
                RuntimeError("HTTP Error 429: Too Many Requests"),
            ],
            "privatevid1": [RuntimeError("ERROR: [youtube] privatevid1: Private video. Sign in")],
        },
        formats={"stereoonly1": [f for f in formats if f["format_id"] != "328" and f["format_id"] != "338"]},
    )
    sleeps: list[float] = []
    raw = tmp_path / "raw"
    argv = ["--output", str(raw), "--ids", "goodvideo01,flakyvideo1,stereoonly1,privatevid1", "--min-interval", "0",
            "--jitter", "0", "--retries", "3", "--backoff", "5", "--no-progress"]  # fmt: skip
    assert download.main(argv, downloader=fake, sleep=sleeps.append) == 0
    assert sleeps == [5.0, 10.0]  # the two 429s: exponential backoff; permanent errors are not retried
    assert fake.info_calls.count("privatevid1") == 1 and fake.info_calls.count("stereoonly1") == 1
    assert ("goodvideo01", "338") in fake.downloads and ("goodvideo01", "135") in fake.downloads
    for video_id in ("goodvideo01", "flakyvideo1"):
        video, audio = download.find_raw_files(raw, video_id)
        assert video.name == f"{video_id}.mp4" and audio.name == f"{video_id}.audio.webm"
        assert json.loads((raw / f"{video_id}.json").read_text())["audio_format"]["format_id"] == "338"
    with open(raw / download.FAILURES_FILE) as handle:
        failed = {row["item"]: row["reason"] for row in csv.DictReader(handle)}
    assert set(failed) == {"stereoonly1", "privatevid1"}
    assert "no ambisonic audio format" in failed["stereoonly1"] and "Private video" in failed["privatevid1"]
    assert no_leftovers(raw) == []

    # Resuming: finished videos are not asked for again.
    fake.info_calls.clear()
    assert download.main(argv, downloader=fake, sleep=sleeps.append) == 0
    assert sorted(fake.info_calls) == ["privatevid1", "stereoonly1"]


def test_rate_limiter_spaces_requests():
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds):
        waits.append(seconds)
        now[0] += seconds

    limiter = download.RateLimiter(2.0, sleep=sleep, clock=lambda: now[0])
    for elapsed in (0.0, 0.5, 3.0):
        now[0] += elapsed
        limiter.wait()
    assert waits == pytest.approx([1.5])  # 0.5 s after the first call: wait 1.5 s; 3 s later: no wait


def test_download_without_yt_dlp_is_a_one_line_usage_error(tmp_path, capsys):
    try:
        import yt_dlp  # noqa: F401

        pytest.skip("yt-dlp is installed")
    except ImportError:
        pass
    code = run_cli(download.main, ["--output", str(tmp_path), "--ids", "jrvzuQmr5to", "--no-progress"])
    assert code == 2
    assert capsys.readouterr().err.strip() == "error: download.py needs yt-dlp: pip install yt-dlp"


# ------------------------------------------------------------------------------------------ end to end
def test_prepared_clips_look_at_the_object_and_the_tone(pipeline):
    media = pipeline["media"]
    assert sorted(p.name for p in media.iterdir() if p.is_dir()) == sorted(all_clip_ids())
    for clip_id in all_clip_ids():
        meta = json.loads((media / clip_id / "meta.json").read_text())
        azimuth, elevation = SOURCES[clip_id[:11]]
        assert (meta["azimuth"], meta["elevation"]) == (azimuth, elevation)
        assert meta["split"] in SPLIT_CLIPS and clip_id in SPLIT_CLIPS[meta["split"]]
        frames, _ = read_frames(media / clip_id / "video.mp4", fps=None)
        assert frames.shape == (CLIP_SECONDS * 4, FOV_SIZE, FOV_SIZE, 3)
        x, y = red_centroid(frames)
        assert (
            abs(x - (FOV_SIZE - 1) / 2) < 1.5 and abs(y - (FOV_SIZE - 1) / 2) < 1.5
        )  # the crop is centred on it
        foa, sample_rate = read_audio(media / clip_id / "foa.flac")
        assert foa.shape == (4, CLIP_SECONDS * 48000) and sample_rate == 48000
        found = direction_from_energy_map(energy_map(foa))  # where the tone comes from, on the 2° grid
        assert angular_distance(*found, azimuth, elevation) <= 4.0
        assert meta["channel_order_check"]["w_dominant"]


def test_original_projection_mode_is_also_centred(workspace, tmp_path):
    media = tmp_path / "media_original"
    assert prepare.main(prepare_args(workspace, media, "--mode", "original", "--limit", "2")) == 0
    for clip_dir in sorted(p for p in media.iterdir() if p.is_dir()):
        assert json.loads((clip_dir / "meta.json").read_text())["projection_mode"] == "original"
        x, y = red_centroid(read_frames(clip_dir / "video.mp4", fps=None)[0])
        # the original samples ~1 px right of and below the view centre at 896 px; at 256 px that is ~3.5 px
        assert abs(x - (FOV_SIZE - 1) / 2) < 3.5 and abs(y - (FOV_SIZE - 1) / 2) < 3.5


def test_features_files(pipeline):
    for clip_id in all_clip_ids():
        arrays, meta = extract_features.load_features(pipeline["features"] / f"{clip_id}.npz")
        frames = CLIP_SECONDS * 4
        codec_frames = -(-CLIP_SECONDS * 44100 // 512)  # ceil(n_44k / hop), the original's count
        assert arrays["clip_features"].shape == (frames, 512) and arrays["clip_features"].dtype == np.float16
        assert arrays["energy_map"].shape == (frames, 49)
        np.testing.assert_allclose(arrays["energy_map"].sum(axis=1), 1.0, rtol=1e-5)
        assert arrays["codes"].shape == (codec_frames, 36) and arrays["codes"].dtype == np.int16
        rotated = arrays["codes_yaw-90"]
        # A rotation leaves W unchanged and moves energy between Y and X: W codes equal, the others do not.
        np.testing.assert_array_equal(rotated[:, :9], arrays["codes"][:, :9])
        assert not np.array_equal(rotated[:, 9:], arrays["codes"][:, 9:])
        assert meta["clip_id"] == clip_id and (meta["azimuth"], meta["elevation"]) == SOURCES[clip_id[:11]]


def test_codes_match_the_codec_on_the_prepared_foa(pipeline):
    # Batched extraction equals a direct FOACodec call on the prepared FLAC (channel-major -> time-major).
    codec = FOACodec.from_pretrained(pipeline["root"] / "dac")
    clip_id = "BBBBBBBBBB2_0"
    foa, sample_rate = read_audio(pipeline["media"] / clip_id / "foa.flac")
    arrays, _ = extract_features.load_features(pipeline["features"] / f"{clip_id}.npz")
    expected = codec.encode(foa, sample_rate).numpy()  # (4, 9, T)
    np.testing.assert_array_equal(arrays["codes"], expected.reshape(36, -1).T)
    expected_rotated = codec.encode(rotate(foa, yaw=-90), sample_rate).numpy()
    np.testing.assert_array_equal(arrays["codes_yaw-90"], expected_rotated.reshape(36, -1).T)


def test_shards_load_and_make_a_training_batch(pipeline, tmp_path):
    shards = pipeline["shards"]
    assert not list(shards.rglob("*.py"))  # a .py in a dataset folder breaks load_dataset
    assert datasets.get_dataset_config_names(str(shards)) == ["metadata", "features", "media"]
    features = datasets.load_dataset(str(shards), "features", cache_dir=str(tmp_path))
    assert {split: features[split].num_rows for split in features} == {"train": 3, "validation": 1}
    train = features["train"]
    assert train.features["codes"] == datasets.Array2D((None, 36), "int16")
    assert {"elevation_index", "azimuth_index", "codes_yaw-90"} <= set(train.column_names)

    config = VisageConfig.tiny()
    dataset = FeatureDataset(train, config)
    collator = VisageCollator(
        config, train=True, rotation="original", rotation_probability=0.0, window_seconds=0.5
    )
    batch = collator([dataset[i] for i in range(len(dataset))])
    assert batch["clip_features"].shape == (3, 2, 512) and batch["energy_map"].shape == (3, 2, 49)
    assert batch["labels"].shape == (3, config.pattern_steps(43), 36)
    # The direction the model sees is the original's vector d = (sin φ cos θ, -sin θ, cos φ cos θ) with
    # φ = 2a - 179, θ = 89 - 2e (reference §5.5), from the clip's indices.
    rows = train.to_list()
    for row, direction in zip(rows, batch["direction"]):
        phi, theta = np.deg2rad(2 * row["azimuth_index"] - 179), np.deg2rad(89 - 2 * row["elevation_index"])
        expected = [np.sin(phi) * np.cos(theta), -np.sin(theta), np.cos(phi) * np.cos(theta)]
        np.testing.assert_allclose(direction.numpy(), expected, atol=1e-6)
    npz, _ = extract_features.load_features(pipeline["features"] / f"{rows[0]['clip_id']}.npz")
    np.testing.assert_array_equal(np.asarray(rows[0]["codes"], dtype=np.int16), npz["codes"])

    # The training loader reads the same folder by config name.
    loaded = load_feature_dataset(str(shards), "validation", config_name="features")
    assert list(loaded["clip_id"]) == SPLIT_CLIPS["validation"]


def test_media_config_round_trips_the_clip_files(pipeline, tmp_path):
    media = datasets.load_dataset(str(pipeline["shards"]), "media", cache_dir=str(tmp_path))
    row = next(r for r in media["train"] if r["clip_id"] == "AAAAAAAAAA1_3")
    assert row["video_id"] == "AAAAAAAAAA1" and row["start_second"] == 3.0 and row["azimuth"] == 59.0
    foa, sample_rate = decode_foa(row["foa"])
    expected, expected_rate = read_audio(pipeline["media"] / "AAAAAAAAAA1_3" / "foa.flac")
    np.testing.assert_array_equal(foa, expected)
    assert sample_rate == expected_rate == row["sample_rate"]
    frames = decode_video(row["video"])
    assert frames.shape == (CLIP_SECONDS * 4, FOV_SIZE, FOV_SIZE, 3)
    with pytest.raises(ValueError, match="expected 1-channel"):
        decode_foa(row["foa"], expected_channels=1)
    with pytest.raises(ValueError, match="trailing NUL"):
        media_io.decode_flac(b"\x00" * 64)


def test_push_to_hub_dry_run_lists_shards_and_card(pipeline, capsys, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", None)  # any Hub call would fail loudly
    argv = ["--folder", str(pipeline["shards"]), "--repo-id", "someone/yt-ambigen", "--dry-run"]
    assert push_to_hub.main(argv) == 0
    listed = capsys.readouterr().out
    assert "README.md" in listed and "features/train-00000-of-00001.parquet" in listed
    assert "metadata/validation-00000-of-00001.parquet" in listed and "media/" not in listed
    files, card = push_to_hub.plan_upload(pipeline["shards"])
    assert "config_name: media" not in card and "config_name: features" in card
    assert run_cli(push_to_hub.main, [*argv, "--configs", "media"]) == 2  # media needs --include-media
    files, card = push_to_hub.plan_upload(pipeline["shards"], ["media"], include_media=True)
    assert [p for p, _ in files] == [
        "media/train-00000-of-00001.parquet",
        "media/validation-00000-of-00001.parquet",
    ]


# ------------------------------------------------------------------------------------------ interruption
def test_prepare_interrupted_then_resumed(workspace, pipeline, tmp_path, monkeypatch):
    media = tmp_path / "media"
    real_write_audio = prepare.write_audio
    calls = []

    def crash_on_third(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            Path(path).write_bytes(b"half a flac")  # a half-written file inside the clip's staging folder
            raise KeyboardInterrupt
        return real_write_audio(path, *args, **kwargs)

    monkeypatch.setattr(prepare, "write_audio", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        prepare.main(prepare_args(workspace, media))
    assert len([p for p in media.iterdir() if p.is_dir() and not p.name.startswith(".")]) == 2
    assert no_leftovers(media) == []
    monkeypatch.setattr(prepare, "write_audio", real_write_audio)
    assert prepare.main(prepare_args(workspace, media)) == 0
    assert sorted(p.name for p in media.iterdir()) == sorted(all_clip_ids())
    for clip_id in all_clip_ids():
        assert sorted(p.name for p in (media / clip_id).iterdir()) == ["foa.flac", "meta.json", "video.mp4"]
        np.testing.assert_array_equal(read_audio(media / clip_id / "foa.flac")[0],
                                      read_audio(pipeline["media"] / clip_id / "foa.flac")[0])  # fmt: skip


def test_prepare_killed_process_leaves_nothing_half_written(workspace, tmp_path):
    media = tmp_path / "media"
    driver = tmp_path / "driver.py"
    driver.write_text(
        textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from dataset_scripts import prepare
        real, calls = prepare.write_audio, []
        def write_then_die(path, *args, **kwargs):
            calls.append(path)
            if len(calls) == 2:
                Path(path).write_bytes(b"half")
                os.kill(os.getpid(), signal.SIGKILL)
            return real(path, *args, **kwargs)
        prepare.write_audio = write_then_die
        prepare.main(sys.argv[1:])
    """)
    )
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    killed = subprocess.run(
        [sys.executable, str(driver), *prepare_args(workspace, media)], env=env, capture_output=True
    )
    assert killed.returncode == -signal.SIGKILL
    complete = [p.name for p in media.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(complete) == 1 and no_leftovers(media) != []  # the dead process left its staging folder
    assert (
        prepare.main(prepare_args(workspace, media)) == 0
    )  # resumes and removes the dead process's leftovers
    assert no_leftovers(media) == []
    assert sorted(p.name for p in media.iterdir()) == sorted(all_clip_ids())
    for clip_id in all_clip_ids():
        foa, _ = read_audio(media / clip_id / "foa.flac")
        assert foa.shape == (4, CLIP_SECONDS * 48000)


def test_extract_features_interrupted_then_resumed(workspace, pipeline, tmp_path, monkeypatch):
    output = tmp_path / "features"
    real_savez = np.savez
    calls = []

    def crash_on_third(handle, **arrays):
        calls.append(1)
        if len(calls) == 3:
            handle.write(b"PK\x03\x04 half an npz")
            raise KeyboardInterrupt
        return real_savez(handle, **arrays)

    argv = extract_args(workspace, pipeline["media"], output, "--rotation-yaws=")  # no rotated codes: faster
    monkeypatch.setattr(np, "savez", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        extract_features.main(argv)
    # the two clips of the first batch are complete; the crashed write left no file, not even a temporary
    assert sorted(p.name for p in output.iterdir()) == sorted(f"{c}.npz" for c in all_clip_ids()[:2])
    monkeypatch.setattr(np, "savez", real_savez)
    assert extract_features.main(argv) == 0
    assert sorted(p.name for p in output.iterdir()) == sorted(f"{c}.npz" for c in all_clip_ids())
    for clip_id in all_clip_ids():
        resumed, _ = extract_features.load_features(output / f"{clip_id}.npz")
        reference, _ = extract_features.load_features(pipeline["features"] / f"{clip_id}.npz")
        assert set(resumed) == {"clip_features", "energy_map", "codes"}
        for key in resumed:
            np.testing.assert_array_equal(resumed[key], reference[key])


# ------------------------------------------------------------------------------------------ curation
def test_curation_filters_and_crop_direction():
    rate = 16000
    t = np.arange(5 * rate) / rate
    tone = (0.3 * np.sin(2 * np.pi * 500 * t)).astype(np.float32)
    foa = encode(tone, -75.0, 24.0)
    kept = curation.curate_clip(foa, rate)
    assert kept.keep and kept.reasons == [] and kept.valid_seconds == 5
    assert angular_distance(kept.azimuth, kept.elevation, -75.0, 24.0) <= 2.0
    # the per-second RMS of a sine of amplitude A is A/√2
    np.testing.assert_allclose(kept.second_rms_db, 20 * np.log10(0.3 / np.sqrt(2)), atol=1e-3)

    dead = foa.copy()
    dead[1] = 0.0  # no Y: a fake ambisonic track
    result = curation.curate_clip(dead, rate)
    assert not result.keep and "Y" in result.reasons[0]

    two_silent, three_silent = foa.copy(), foa.copy()
    two_silent[:, : 2 * rate] = 0.0
    three_silent[:, : 3 * rate] = 0.0
    assert curation.curate_clip(two_silent, rate).keep  # 3 of 5 seconds valid
    rejected = curation.curate_clip(three_silent, rate)
    assert not rejected.keep and rejected.valid_seconds == 2 and "need 3" in rejected.reasons[0]
    assert curation.required_valid_seconds(5) == 3  # the paper's 3-of-5 s rule; shorter clips scale with it
    assert curation.required_valid_seconds(2) == 2
    quieter = curation.curate_clip(foa, rate, curation.CurationThresholds(min_second_rms_db=-5.0))
    assert not quieter.keep  # -13 dBFS seconds fail a -5 dBFS threshold

    front = encode(tone, 0.0, 0.0)
    assert curation.channel_order_check(front)["w_dominant"]
    fuma_read_as_ambix = ambix_to_fuma(front)  # W/√2, X, Y, Z in the AmbiX slots
    assert not curation.channel_order_check(fuma_read_as_ambix)["w_dominant"]


# ------------------------------------------------------------------------------------------ own data, VGGSound
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


# ------------------------------------------------------------------------------------------ pieces and CLIs
def test_audio_windows_equal_slices_of_the_whole_track(workspace):
    path = workspace["raw"] / "CCCC-CCCC_3.mp4"
    whole, rate = read_audio_track(path)
    windows = [(2.5, 1.0), (0.0, 2.0), (1.0, 0.5), (5.5, 2.0)]
    decoded = {index: (audio, r) for index, audio, r in media_io.decode_audio_windows(path, windows)}
    for index, (start, seconds) in enumerate(windows):
        audio, r = decoded[index]
        expected = whole[:, round(start * rate) : round(start * rate) + round(seconds * rate)]
        assert r == rate
        np.testing.assert_array_equal(audio, expected)  # the last window runs past the end: cut short


def test_cli_help_and_usage_errors(tmp_path, capsys):
    for module in (download, prepare, extract_features, build_shards, push_to_hub):
        with pytest.raises(SystemExit) as exit_info:
            module.main(["--help"])
        assert exit_info.value.code == 0
        assert "usage:" in capsys.readouterr().out
    cases = [
        (prepare.main, ["--output", str(tmp_path)], "give --raw-dir"),
        (
            prepare.main,
            ["--own-videos", str(tmp_path), "--direction", "north", "--output", str(tmp_path)],
            "AZ,EL",
        ),
        (build_shards.main, ["--output", str(tmp_path), "--configs", "videos"], "--configs"),
        (
            extract_features.main,
            ["--media-dir", str(tmp_path / "none"), "--output", str(tmp_path)],
            "not found",
        ),
        (push_to_hub.main, ["--folder", str(tmp_path), "--repo-id", "no-owner", "--dry-run"], "owner/name"),
    ]
    for main, argv, message in cases:
        assert run_cli(main, argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and message in err and "\n" not in err
