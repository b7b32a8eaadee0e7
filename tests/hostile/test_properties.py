"""Property tests: every parser that reads a user file, fed random and damaged bytes, ends in success or one
clear error (``ValueError``; ``FileNotFoundError`` for a missing path) — never another exception type, never
a hang (each call bounded in time) and never an allocation anywhere near what a forged header declares.

Seeds are small valid files built here; :mod:`tests.hostile.mutations` damages them. Example counts are
bounded (``PROPERTY_SETTINGS``) so the module runs in well under a minute; ``fuzz/fuzz_parsers.py`` runs the
same targets for minutes with coverage guidance."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.hostile.builders import foa_mp4, timed_mp4, wav_bytes
from tests.hostile.guards import bounded
from tests.hostile.mutations import PROPERTY_SETTINGS, mutated
from visage_hf.audio.io import read_audio
from visage_hf.video.io import probe, read_frames
from visage_hf.video.sa3d import chunk_offsets, read_sa3d, read_spherical, walk_boxes

CLEAR_ERRORS = (ValueError, FileNotFoundError)


def _scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="visage-hostile-"))


SCRATCH = _scratch()


def _file(data: bytes, suffix: str) -> Path:
    path = SCRATCH / f"input{suffix}"
    path.write_bytes(data)
    return path


def _ends_clearly(call, *args, seconds: int = 10, **kwargs):
    """Run ``call``; return its result or the clear error it raised. Anything else fails the test."""
    with bounded(seconds):
        try:
            return call(*args, **kwargs)
        except CLEAR_ERRORS as error:
            assert str(error).strip(), f"{type(error).__name__} without a message"
            return error


# ---------------------------------------------------------------------------------------------- seeds


def _mp4_seeds() -> list[bytes]:
    folder = _scratch()
    return [
        foa_mp4(folder / "foa.mp4").read_bytes(),
        timed_mp4(folder / "video.mp4", [0.0, 0.25, 0.5, 0.75]).read_bytes(),
    ]


def _video_seeds() -> list[bytes]:
    folder = _scratch()
    return [
        timed_mp4(folder / "v.mp4", [0.0, 0.25, 0.5, 0.75]).read_bytes(),
        timed_mp4(folder / "v.webm", [0.0, 0.3, 0.9], container_format="matroska").read_bytes(),
    ]


def _audio_seeds() -> list[tuple[bytes, str]]:
    rng = np.random.default_rng(0)
    flac = io.BytesIO()
    sf.write(flac, rng.uniform(-0.5, 0.5, (400, 4)).astype(np.float32), 16000, format="FLAC")
    return [
        (wav_bytes(channels=2, frames=50), ".wav"),
        (wav_bytes(float_samples=rng.uniform(-1, 1, 64).astype(np.float32)), ".wav"),
        (flac.getvalue(), ".flac"),
    ]


MP4_SEEDS = _mp4_seeds()
VIDEO_SEEDS = _video_seeds()
AUDIO_SEEDS = _audio_seeds()


# ---------------------------------------------------------------------------------------------- MP4 boxes


def _read_boxes(path: Path) -> None:
    for reader in (walk_boxes, read_sa3d, read_spherical, chunk_offsets):
        _ends_clearly(reader, path)


@PROPERTY_SETTINGS
@given(st.binary(max_size=512))
def test_box_reader_on_random_bytes(data):
    _read_boxes(_file(data, ".mp4"))


@PROPERTY_SETTINGS
@given(mutated(MP4_SEEDS))
def test_box_reader_on_damaged_mp4(data):
    _read_boxes(_file(data, ".mp4"))


@PROPERTY_SETTINGS
@given(mutated(MP4_SEEDS[:1]))
def test_box_writer_on_damaged_mp4(data):
    from visage_hf.video.sa3d import inject_spatial_metadata

    source = _file(data, ".mp4")
    result = _ends_clearly(inject_spatial_metadata, source, SCRATCH / "injected.mp4")
    if not isinstance(result, Exception):  # what it wrote must read back with the box it wrote
        assert read_sa3d(result)["num_channels"] == 4


# ---------------------------------------------------------------------------------------------- video


@PROPERTY_SETTINGS
@given(mutated(VIDEO_SEEDS), st.sampled_from([".mp4", ".webm"]))
def test_video_reader_on_damaged_files(data, suffix):
    path = _file(data, suffix)
    info = _ends_clearly(probe, path)
    frames = _ends_clearly(read_frames, path, fps=4.0)
    if not isinstance(frames, Exception):
        images, times = frames
        assert images.dtype == np.uint8 and images.ndim == 4 and images.shape[-1] == 3
        assert len(images) == len(times) and np.all(np.diff(times) > 0)
    if not isinstance(info, Exception):
        assert info.width <= 8192 and info.height <= 8192


# ---------------------------------------------------------------------------------------------- audio


@PROPERTY_SETTINGS
@given(st.data())
def test_audio_reader_on_damaged_wav_and_flac(data):
    seed, suffix = data.draw(st.sampled_from(AUDIO_SEEDS))
    path = _file(data.draw(mutated([seed])), suffix)
    result = _ends_clearly(read_audio, path)
    if not isinstance(result, Exception):
        audio, rate = result
        assert audio.dtype == np.float32 and audio.ndim == 2 and 1 <= audio.shape[0] <= 16
        assert np.isfinite(audio).all() and rate > 0


@PROPERTY_SETTINGS
@given(st.binary(max_size=256))
def test_audio_reader_on_random_bytes(data):
    _ends_clearly(read_audio, _file(data, ".wav"))


# ---------------------------------------------------------------------------------------------- recipes

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _known_keys() -> list[str]:
    import dataclasses

    from visage_hf.training.arguments import ARGUMENT_CLASSES

    return sorted(f.name for cls in ARGUMENT_CLASSES for f in dataclasses.fields(cls))


@PROPERTY_SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(_known_keys()) | st.text(max_size=8) | st.integers() | st.none(), _VALUES, max_size=5
    )
)
def test_recipe_with_random_mappings(recipe):
    from visage_hf.training.arguments import load_recipe, parse_arguments

    path = _file(yaml.safe_dump(recipe, sort_keys=False).encode(), ".yaml")
    loaded = _ends_clearly(load_recipe, path)
    if isinstance(loaded, Exception):
        return
    assert set(loaded) <= set(_known_keys())
    try:
        _ends_clearly(parse_arguments, ["--config", str(path), "--output_dir", str(SCRATCH / "run")])
    except SystemExit as exit_:  # argparse's own one-line usage error
        assert exit_.code == 2


@PROPERTY_SETTINGS
@given(st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_recipe_with_random_text(text):
    from visage_hf.training.arguments import load_recipe

    _ends_clearly(load_recipe, _file(text.encode("utf-8", "surrogatepass"), ".yaml"))


# ---------------------------------------------------------------------------------------------- features


@pytest.fixture(scope="module")
def feature_config():
    from tests.conftest import _tiny_config

    return _tiny_config()


def _feature_rows(config, count: int = 2) -> list[dict]:
    rng = np.random.default_rng(1)
    return [
        {
            "clip_id": f"clip_{index}",
            "clip_features": rng.standard_normal((8, config.clip_dim)).astype(np.float16),
            "energy_map": rng.random((8, config.energy_map_dim)).astype(np.float32),
            "elevation_index": 10,
            "azimuth_index": 20,
            "codes": rng.integers(0, config.codebook_size, (86, config.num_streams)).astype(np.int16),
        }
        for index in range(count)
    ]


def _read_every_row(dataset, config) -> None:
    from visage_hf.data.features import FeatureDataset

    features = FeatureDataset(dataset, config)
    for index in range(len(features)):
        example = features[index]
        assert example["clip_features"].dtype == np.float32 and example["codes"].ndim == 2


@pytest.fixture(scope="module")
def parquet_seed(feature_config):
    import datasets

    from visage_hf.data.features import feature_schema

    config = feature_config
    schema = feature_schema(
        config.num_channels, config.num_codebooks, config.clip_dim, config.energy_map_dim, "indices", ()
    )
    path = _scratch() / "seed.parquet"
    datasets.Dataset.from_list(_feature_rows(config), features=schema).to_parquet(str(path))
    return path.read_bytes()


def test_feature_loader_on_damaged_parquet(parquet_seed, feature_config):
    from visage_hf.data.features import load_feature_dataset

    @PROPERTY_SETTINGS.__class__(PROPERTY_SETTINGS, max_examples=15)
    @given(mutated([parquet_seed]))
    def check(data):
        path = _file(data, ".parquet")
        loaded = _ends_clearly(load_feature_dataset, data_files=[str(path)], seconds=30)
        if not isinstance(loaded, Exception):
            _ends_clearly(_read_every_row, loaded, feature_config)

    check()


_COLUMN_VALUES = st.sampled_from(
    [
        "text",
        None,
        3,
        2.5,
        [1, 2, 3],
        [[1.0, 2.0], [3.0]],  # ragged
        [["a", "b"]],
        [[1, 2], [3, 4]],
        [[0.5, 0.25], [0.125, 1.0]],
        [[True, False]],
        [],
    ]
)


@PROPERTY_SETTINGS
@given(
    st.dictionaries(
        st.sampled_from(
            ["clip_features", "energy_map", "codes", "elevation_index", "azimuth_index", "clip_id"]
        ),
        _COLUMN_VALUES,
        min_size=1,
    )
)
def test_feature_rows_with_mistyped_columns(feature_config, overrides):
    import datasets

    rows = _feature_rows(feature_config, count=1)
    rows[0].update(overrides)
    try:
        dataset = datasets.Dataset.from_list(rows)
    except Exception:  # datasets cannot even hold these columns together: nothing for us to load
        return
    _ends_clearly(_read_every_row, dataset, feature_config)
