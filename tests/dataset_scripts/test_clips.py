"""Split lists and direction tables (dataset_scripts/clips.py) and the YT-Ambigen metadata config they feed
(dataset_scripts/yt_ambigen.py), against the original's published split sizes and video counts."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import datasets
import numpy as np
import pytest

from dataset_scripts import build_shards, clips
from dataset_scripts.yt_ambigen import YtAmbigen

from .helpers import write_split_lists


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
        # docs/original-implementation.md §5.5: elevation 89 - 2e; the camera's ambisonic azimuth 179 - 2a (the original's yaw mirrored)
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
