"""YT-Ambigen as a `datasets` builder (an ordinary importable module, not a loading script).

Three configs:

* ``metadata`` (default): one row per clip of the original splits — train 81,594 / validation 9,604 / test
  11,166 — with ``clip_id``, ``youtube_id``, ``start_second``, ``split``, the camera direction as YT-Ambigen
  indices (``elevation_index`` 0..89, ``azimuth_index`` 0..179, from the original's ``ambi.json``) and in
  degrees (``azimuth``, ``elevation``: public convention of `visage_hf.directions`, azimuth counter-clockwise
  from the front, elevation up);
* ``media``: the clips built locally by `prepare.py`: ``video`` (MP4 bytes of the 4-fps field-of-view frames)
  and ``foa`` (FLAC bytes, 4 channels AmbiX W, Y, Z, X; mono sets have ``audio``) plus the ids and direction;
* ``features``: what `visage_hf.data.schema` trains on (`extract_features.py` output), exactly
  ``visage_hf.data.schema.feature_schema``: ``clip_id``, ``clip_features (T, 512)``, ``energy_map (T, 49)``,
  ``codes (frames, 36)`` int16 time-major, the direction (indices, or the model's ``direction`` vector), and
  rotated codes ``codes_yaw-90``.

Usage::

    from dataset_scripts.yt_ambigen import YtAmbigen
    builder = YtAmbigen(config_name="features", features_dir="data/features")
    builder.download_and_prepare()
    train = builder.as_dataset("train")

`build_shards.py` writes these configs as Parquet shards with a README ``configs:`` block, which is what goes
to the Hub (the Hub never runs this file). Binary columns must be read in the default Python format (or with
``with_transform``): `datasets`' numpy/torch formats strip trailing NUL bytes of binary values. Decode them
with :func:`decode_foa` and :func:`decode_video`, never with `datasets`' ``Audio`` feature (it downmixes).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

from visage_hf.data.schema import feature_schema, rotated_codes_column, rotation_yaws_in
from visage_hf.directions import direction_to_model_vector, indices_to_direction

from .clip_jobs import META_FILE, prepared_clip_dirs
from .clips import (
    DEFAULT_DIRECTIONS_URL,
    SPLITS,
    direction_columns,
    load_direction_table,
    parse_clip_id,
    read_split_lists,
)
from .media_io import decode_flac

__all__ = [
    "CONFIG_NAMES",
    "METADATA_FEATURES",
    "YtAmbigen",
    "YtAmbigenConfig",
    "decode_foa",
    "decode_video",
    "media_features",
]

CONFIG_NAMES = ("metadata", "media", "features")
_NO_DIRECTIONS = ("none", "")
_CITATION = """\
@inproceedings{kimvisage,
  title={ViSAGe: Video-to-Spatial Audio Generation},
  author={Kim, Jaeyeon and Yun, Heeseung and Kim, Gunhee},
  booktitle={ICLR},
  year={2025}
}
"""
_DESCRIPTION = (
    "YT-Ambigen: 102K 5-second YouTube clips with first-order ambisonics (AmbiX) and a camera direction, from "
    "ViSAGe (ICLR 2025). Media are built locally from YouTube; the Hub holds metadata and features."
)
_HOMEPAGE = "https://github.com/jaeyeonkim99/visage"

METADATA_FEATURES = datasets.Features(
    {
        "clip_id": datasets.Value("string"),
        "youtube_id": datasets.Value("string"),
        "start_second": datasets.Value("int32"),
        "split": datasets.Value("string"),
        "elevation_index": datasets.Value("int16"),
        "azimuth_index": datasets.Value("int16"),
        "azimuth": datasets.Value("float32"),
        "elevation": datasets.Value("float32"),
    }
)


def media_features(num_channels: int = 4) -> datasets.Features:
    """Schema of the ``media`` config (``foa`` for 4-channel sets, ``audio`` for mono)."""
    audio_column = "foa" if num_channels == 4 else "audio"
    return datasets.Features(
        {
            "clip_id": datasets.Value("string"),
            "video_id": datasets.Value("string"),
            "start_second": datasets.Value("float32"),
            "split": datasets.Value("string"),
            "elevation_index": datasets.Value("int16"),
            "azimuth_index": datasets.Value("int16"),
            "azimuth": datasets.Value("float32"),
            "elevation": datasets.Value("float32"),
            "video": datasets.Value("binary"),
            "fps": datasets.Value("float32"),
            audio_column: datasets.Value("binary"),
            "sample_rate": datasets.Value("int32"),
        }
    )


def decode_foa(data: bytes, expected_channels: int = 4) -> tuple[np.ndarray, int]:
    """``media`` FLAC bytes -> ``(float32 (channels, samples), sample_rate)``, asserting the channel count."""
    return decode_flac(data, expected_channels)


def decode_video(data: bytes, fps: float | None = None) -> np.ndarray:
    """``media`` MP4 bytes -> uint8 frames ``(T, H, W, 3)`` (every frame, or sampled at ``fps``)."""
    from visage_hf.video.io import read_frames

    with tempfile.NamedTemporaryFile(suffix=".mp4") as handle:
        handle.write(bytes(data))
        handle.flush()
        frames, _ = read_frames(handle.name, fps=fps)
    return frames


@dataclass
class YtAmbigenConfig(datasets.BuilderConfig):
    """Where the builder reads from; ``None`` values of the ``features`` settings are inferred from the files.

    Attributes:
        directions: ``ambi.json`` (URL or path) for ``metadata``; ``"none"`` leaves the direction columns empty
            (a keyword argument of None cannot override a config default in `datasets`).
        split_lists: folder of other split lists (default: the original's, shipped in ``dataset_scripts/splits``).
        media_dir / features_dir: `prepare.py` / `extract_features.py` outputs (default ``<data_dir>/media`` and
            ``<data_dir>/features``).
        num_channels: 4 (FOA) or 1 (mono pre-training sets).
        rotation_yaws: rotated-codes columns of ``features``.
        direction_columns: ``"indices"`` (YT-Ambigen's; the original's rotation pairing is bit-exact) or
            ``"vector"`` (the model's direction vector; any direction, e.g. your own data).
        clip_dtype: storage dtype of the CLIP features (float16 like the original, or float32).
    """

    directions: str | None = DEFAULT_DIRECTIONS_URL
    split_lists: str | None = None
    media_dir: str | None = None
    features_dir: str | None = None
    num_channels: int | None = None
    rotation_yaws: tuple[int, ...] | None = None
    direction_columns: str | None = None
    clip_dtype: str | None = None


def _split_order(names) -> list[str]:
    return [s for s in SPLITS if s in names] + sorted(set(names) - set(SPLITS))


class YtAmbigen(datasets.GeneratorBasedBuilder):
    """YT-Ambigen: ``metadata`` (default), ``media`` and ``features`` configs (see the module docstring)."""

    VERSION = datasets.Version("1.0.0")
    BUILDER_CONFIG_CLASS = YtAmbigenConfig
    BUILDER_CONFIGS = [  # noqa: RUF012 - the datasets API reads this class attribute
        YtAmbigenConfig(name="metadata", description="Clip ids, splits and camera directions."),
        YtAmbigenConfig(
            name="media", description="Locally built field-of-view video (MP4) and FOA (FLAC) bytes."
        ),
        YtAmbigenConfig(name="features", description="CLIP features, energy maps, directions and DAC codes."),
    ]
    DEFAULT_CONFIG_NAME = "metadata"

    # ------------------------------------------------------------------ locations and inferred settings
    def _folder(self, kind: str) -> Path:
        explicit = getattr(self.config, f"{kind}_dir")
        if explicit is not None:
            path = Path(explicit)
        elif self.config.data_dir is not None:
            path = Path(self.config.data_dir) / kind
        else:
            raise ValueError(
                f"the {self.config.name!r} config needs {kind}_dir= (or data_dir= with a {kind}/ folder)"
            )
        if not path.is_dir():
            raise FileNotFoundError(f"{kind} folder not found: {path}")
        return path

    def _feature_files(self) -> list[tuple[Path, dict]]:
        """``(npz path, meta)`` of every features file, sorted by clip id (cached)."""
        if getattr(self, "_feature_files_cache", None) is None:
            entries = []
            for path in sorted(self._folder("features").glob("*.npz")):
                if path.name.startswith("."):
                    continue
                with np.load(path, allow_pickle=False) as data:
                    meta = json.loads(str(data["meta"]))
                    meta["_columns"] = [key for key in data.files if key != "meta"]
                    meta["_clip_dtype"] = str(data["clip_features"].dtype)
                entries.append((path, meta))
            if not entries:
                raise ValueError(
                    f"no features (*.npz) in {self._folder('features')}: run extract_features.py first"
                )
            self._feature_files_cache = entries
        return self._feature_files_cache

    def _media_clips(self) -> list[tuple[Path, dict]]:
        if getattr(self, "_media_cache", None) is None:
            folder = self._folder("media")
            entries = [(d, json.loads((d / META_FILE).read_text())) for d in prepared_clip_dirs(folder)]
            if not entries:
                raise ValueError(f"no prepared clips in {folder}: run prepare.py first")
            self._media_cache = entries
        return self._media_cache

    def _settings(self) -> dict:
        """The ``features``/``media`` settings, explicit or inferred from the files."""
        config = self.config
        entries = self._feature_files() if config.name == "features" else self._media_clips()
        channels = {meta["num_channels"] for _, meta in entries}
        if config.num_channels is None and len(channels) > 1:
            raise ValueError(f"clips mix channel counts {sorted(channels)}: build them separately")
        num_channels = config.num_channels or channels.pop()
        settings = {"num_channels": int(num_channels)}
        if config.name == "features":
            if config.rotation_yaws is not None:
                yaws = tuple(int(y) for y in config.rotation_yaws)
            else:  # the yaws every clip has
                common = set.intersection(*(set(rotation_yaws_in(meta["_columns"])) for _, meta in entries))
                yaws = tuple(sorted(common))
            has_indices = all(meta.get("elevation_index") is not None for _, meta in entries)
            settings.update(
                rotation_yaws=yaws if num_channels > 1 else (),
                direction_columns=config.direction_columns or ("indices" if has_indices else "vector"),
                clip_dtype=config.clip_dtype or entries[0][1]["_clip_dtype"],
            )
        return settings

    # ------------------------------------------------------------------ builder API
    def _info(self) -> datasets.DatasetInfo:
        if self.config.name == "metadata":
            features = METADATA_FEATURES
        elif self.config.name == "media":
            features = media_features(self._settings()["num_channels"])
        elif self.config.name == "features":
            settings = self._settings()
            features = feature_schema(
                num_channels=settings["num_channels"],
                direction=settings["direction_columns"],
                rotation_yaws=settings["rotation_yaws"],
                clip_dtype=settings["clip_dtype"],
            )
        else:
            raise ValueError(f"unknown config {self.config.name!r}: expected one of {CONFIG_NAMES}")
        return datasets.DatasetInfo(
            description=_DESCRIPTION, features=features, homepage=_HOMEPAGE, citation=_CITATION, license="mit"
        )

    def _split_generators(self, dl_manager):
        if self.config.name == "metadata":
            directions = self.config.directions
            if directions is None or str(directions).lower() in _NO_DIRECTIONS:
                directions = None
            elif str(directions).startswith(("http://", "https://")):
                directions = dl_manager.download(str(directions))
            lists = read_split_lists(directory=self.config.split_lists)
            if directions is not None:  # fail before writing anything if a clip has no direction
                table = self._direction_table(directions)
                missing = [clip_id for ids in lists.values() for clip_id in ids if clip_id not in table]
                if missing:
                    raise ValueError(
                        f"the direction table {self.config.directions} has no entry for {len(missing)} clips, "
                        f"e.g. {missing[:3]}"
                    )
            return [
                datasets.SplitGenerator(
                    name=split, gen_kwargs={"split": split, "clip_ids": ids, "directions": directions}
                )
                for split, ids in lists.items()
                if ids  # a split with no clips would be an error in datasets ("corresponds to no data")
            ]
        entries = self._feature_files() if self.config.name == "features" else self._media_clips()
        by_split: dict[str, list] = {}
        for entry in entries:
            by_split.setdefault(entry[1]["split"], []).append(entry)
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"split": split, "entries": by_split[split]})
            for split in _split_order(by_split)
        ]

    def _generate_examples(self, split: str, clip_ids=None, directions=None, entries=None):
        if self.config.name == "metadata":
            yield from self._metadata_examples(split, clip_ids, directions)
        elif self.config.name == "media":
            yield from self._media_examples(entries)
        else:
            yield from self._feature_examples(entries)

    # ------------------------------------------------------------------ rows
    def _direction_table(self, directions):
        if getattr(self, "_direction_table_cache", None) is None:
            self._direction_table_cache = load_direction_table(directions)
        return self._direction_table_cache

    def _metadata_examples(self, split: str, clip_ids: list[str], directions):
        count = len(clip_ids)
        elevation_index = azimuth_index = azimuth = elevation = [None] * count
        if directions is not None:
            try:
                e, a = direction_columns(self._direction_table(directions), clip_ids)
            except ValueError as error:
                raise ValueError(f"{split}: {error}") from None
            azimuth, elevation = (values.astype(np.float32).tolist() for values in indices_to_direction(e, a))
            elevation_index, azimuth_index = e.tolist(), a.tolist()
        for index, clip_id in enumerate(clip_ids):
            youtube_id, start = parse_clip_id(clip_id)
            yield (
                clip_id,
                {
                    "clip_id": clip_id,
                    "youtube_id": youtube_id,
                    "start_second": start,
                    "split": split,
                    "elevation_index": elevation_index[index],
                    "azimuth_index": azimuth_index[index],
                    "azimuth": azimuth[index],
                    "elevation": elevation[index],
                },
            )

    def _media_examples(self, entries):
        audio_column = "foa" if self._settings()["num_channels"] == 4 else "audio"
        for clip_dir, meta in entries:
            row = {key: meta.get(key) for key in media_features(4) if key not in ("video", "foa", "fps")}
            row.update(
                start_second=meta["start_second"],
                video=(clip_dir / meta["video_file"]).read_bytes(),
                fps=meta["fps"],
                **{audio_column: (clip_dir / meta["audio_file"]).read_bytes()},
            )
            yield meta["clip_id"], row

    def _feature_examples(self, entries):
        settings = self._settings()
        mono = settings["num_channels"] == 1
        for path, meta in entries:
            clip_id = meta["clip_id"]
            with np.load(path, allow_pickle=False) as data:
                row = {"clip_id": clip_id, "clip_features": data["clip_features"], "codes": data["codes"]}
                if not mono:
                    row["energy_map"] = data["energy_map"]
                    for yaw in settings["rotation_yaws"]:
                        column = rotated_codes_column(yaw)
                        if column not in data.files:
                            raise ValueError(
                                f"{path.name} has no {column}; pass rotation_yaws=() to leave it out"
                            )
                        row[column] = data[column]
            if not mono:
                row.update(_direction_columns(meta, settings["direction_columns"], path.name))
            yield clip_id, row


def _direction_columns(meta: dict, kind: str, name: str) -> dict:
    if kind == "indices":
        if meta.get("elevation_index") is None:
            raise ValueError(
                f"{name} has no YT-Ambigen direction indices (own data?): use direction_columns='vector'"
            )
        return {"elevation_index": meta["elevation_index"], "azimuth_index": meta["azimuth_index"]}
    if meta.get("azimuth") is None:
        raise ValueError(f"{name} has no camera direction")
    return {"direction": direction_to_model_vector(meta["azimuth"], meta["elevation"]).tolist()}
