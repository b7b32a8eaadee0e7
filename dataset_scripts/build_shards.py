"""Write the `yt_ambigen` builder's configs as Parquet shards plus a dataset card: the Hub layout.

Output (``--output DIR``)::

    DIR/README.md                          the card (dataset_scripts/README.md) with a `configs:` block for
                                           the configs present
    DIR/metadata/train-00000-of-00001.parquet
    DIR/features/train-00000-of-00004.parquet ...
    DIR/media/...                          (local only: push_to_hub.py leaves it out unless asked)

The folder loads offline with ``datasets.load_dataset(DIR, "features")`` (or any config name), and
``visage_hf.data.schema.load_feature_dataset(DIR, split, config_name="features")``. `datasets`' features (Array2D
shapes, int16 codes) travel in the Parquet schema. Each config is written to a staging folder and swapped in
whole, so an interrupted build never leaves a mix of old and new shards; running it again rebuilds.

Example::

    python -m dataset_scripts.build_shards --output data/yt_ambigen --configs metadata,features \\
        --media-dir data/media --features-dir data/features
    python -m dataset_scripts.build_shards --output data/vggsound_features --configs features \\
        --features-dir data/vggsound_features_npz      # mono: the pretrain_vggsound.yaml input
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from dataset_scripts.clips import DEFAULT_DIRECTIONS_URL
from dataset_scripts.jobs import (
    UsageError,
    atomic_write_text,
    parse_list_argument,
    publish_directory,
    remove_stale_temporaries,
    run_cli,
    scratch_directory,
)

__all__ = ["CARD_TEMPLATE", "build_config", "main", "parse_size", "render_card", "write_card"]

CARD_TEMPLATE = Path(__file__).resolve().parent / "README.md"
CONFIG_ORDER = ("metadata", "features", "media")
# Rows per Parquet row group: small groups for heavy rows so readers (and the Hub viewer) can stream them.
ROW_GROUP_ROWS = {"metadata": 100_000, "features": 256, "media": 32}
_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n?", re.DOTALL)


def parse_size(text: str) -> int:
    """``"500MB"``, ``"1GB"``, ``"2000000"`` -> bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", str(text).upper())
    if not match:
        raise UsageError(f"expected a size like 500MB or 1GB, got {text!r}")
    return int(float(match[1]) * 1000 ** " KMGT".index(match[2] or " "))


def _shard_files(folder: Path, split: str) -> list[str]:
    return sorted(p.name for p in folder.glob(f"{split}-*.parquet"))


def build_config(
    config_name: str,
    output_dir: str | Path,
    builder_kwargs: dict,
    max_shard_bytes: int = 500_000_000,
    downloads_dir: str | Path | None = None,
) -> dict[str, list[str]]:
    """Run the builder for one config and write ``<output>/<config>/<split>-0000i-of-0000n.parquet``.

    Returns ``{split: [shard file names]}``. The builder's Arrow cache is temporary (inside ``output_dir``),
    so a rebuild always sees the current media/features; downloads (``ambi.json``) are cached in
    ``downloads_dir`` (default: the `datasets` cache).
    """
    import datasets

    from dataset_scripts.yt_ambigen import YtAmbigen

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(dir=output_dir, prefix=".build-") as cache:
        builder = YtAmbigen(config_name=config_name, cache_dir=cache, **builder_kwargs)
        downloads_dir = downloads_dir or datasets.config.DOWNLOADED_DATASETS_PATH
        builder.download_and_prepare(download_config=datasets.DownloadConfig(cache_dir=str(downloads_dir)))
        with scratch_directory(output_dir, config_name) as staging:
            for split in builder.info.splits:
                dataset = builder.as_dataset(split=split)
                shards = max(1, math.ceil(dataset.data.nbytes / max_shard_bytes))
                for index in range(shards):
                    target = staging / f"{split}-{index:05d}-of-{shards:05d}.parquet"
                    part = dataset.shard(num_shards=shards, index=index, contiguous=True)
                    part.to_parquet(str(target), batch_size=ROW_GROUP_ROWS.get(config_name, 1000))
                files[split] = _shard_files(staging, split)
            publish_directory(staging, output_dir / config_name, overwrite=True)
    return files


def _configs_present(output_dir: Path) -> dict[str, list[str]]:
    """``{config: [splits]}`` for every config folder with shards (in CONFIG_ORDER, then others)."""
    present = {}
    folders = [output_dir / name for name in CONFIG_ORDER] + sorted(
        p
        for p in output_dir.iterdir()
        if p.is_dir() and p.name not in CONFIG_ORDER and not p.name.startswith(".")
    )
    for folder in folders:
        splits = sorted({p.name.split("-")[0] for p in folder.glob("*.parquet")}) if folder.is_dir() else []
        if splits:
            order = ["train", "validation", "test"]
            present[folder.name] = [s for s in order if s in splits] + [s for s in splits if s not in order]
    return present


def render_card(template: str, configs: dict[str, list[str]], default: str | None = None) -> str:
    """The card ``template`` with its YAML ``configs:`` replaced by ``configs`` (``{name: [splits]}``).

    ``default``: the default config (first of metadata / features / the rest when None).
    """
    match = _FRONT_MATTER.match(template)
    header = yaml.safe_load(match[1]) if match else {}
    body = template[match.end() :] if match else template
    default = default or next(iter(configs), None)
    header["configs"] = [
        {
            "config_name": name,
            **({"default": True} if name == default else {}),
            "data_files": [{"split": split, "path": f"{name}/{split}-*.parquet"} for split in splits],
        }
        for name, splits in configs.items()
    ]
    front = yaml.safe_dump(header, sort_keys=False, allow_unicode=True)
    return f"---\n{front}---\n{body}"


def write_card(output_dir: str | Path, template_path: str | Path = CARD_TEMPLATE) -> Path:
    """(Re)write ``<output>/README.md`` for the configs present in ``output_dir``."""
    output_dir = Path(output_dir)
    configs = _configs_present(output_dir)
    if not configs:
        raise UsageError(f"no Parquet shards in {output_dir}: nothing to describe")
    template = Path(template_path).read_text(encoding="utf-8")
    return atomic_write_text(output_dir / "README.md", render_card(template, configs))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dataset_scripts.build_shards",
        description="Write the metadata / media / features configs as Parquet shards with a dataset card.",
    )
    parser.add_argument("--output", required=True, help="dataset folder (Hub layout)")
    parser.add_argument(
        "--configs", default="metadata,features", help="comma-separated: metadata, media, features"
    )
    parser.add_argument("--data-dir", default=None, help="root holding media/ and features/")
    parser.add_argument("--media-dir", default=None, help="prepare.py output (media config)")
    parser.add_argument("--features-dir", default=None, help="extract_features.py output (features config)")
    parser.add_argument(
        "--directions", default=DEFAULT_DIRECTIONS_URL, help="ambi.json URL/path; 'none' to omit"
    )
    parser.add_argument("--split-lists", default=None, help="folder with other split lists")
    parser.add_argument(
        "--direction-columns",
        default="auto",
        choices=("auto", "indices", "vector"),
        help="features direction: YT-Ambigen indices or the model vector (auto: indices when every clip has them)",
    )
    parser.add_argument(
        "--rotation-yaws",
        default=None,
        help="rotated-codes columns (default: those every clip has; '' for none)",
    )
    parser.add_argument("--max-shard-size", default="500MB", help="target Parquet shard size (default 500MB)")
    parser.add_argument("--card", default=str(CARD_TEMPLATE), help="dataset card template")
    parser.add_argument("--downloads-dir", default=None, help="cache for downloaded ambi.json")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import datasets

    args = build_parser().parse_args(argv)
    configs = parse_list_argument(args.configs)
    unknown = [name for name in configs if name not in CONFIG_ORDER]
    if not configs or unknown:
        raise UsageError(f"--configs: expected some of {list(CONFIG_ORDER)}, got {args.configs!r}")
    if not Path(args.card).is_file():
        raise FileNotFoundError(f"--card not found: {args.card}")
    max_bytes = parse_size(args.max_shard_size)
    output_dir = Path(args.output)
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output_dir)
    for stale in output_dir.glob(".build-*"):  # Arrow caches of killed runs (one build per folder at a time)
        shutil.rmtree(stale, ignore_errors=True)
    datasets.disable_progress_bars()
    common = {key: value for key, value in (("data_dir", args.data_dir),) if value}
    for name in configs:
        kwargs = dict(common)
        if name == "metadata":
            kwargs["directions"] = args.directions  # "none": no direction columns
            if args.split_lists:
                kwargs["split_lists"] = args.split_lists
        if name == "media" and args.media_dir:
            kwargs["media_dir"] = args.media_dir
        if name == "features":
            if args.features_dir:
                kwargs["features_dir"] = args.features_dir
            if args.direction_columns != "auto":
                kwargs["direction_columns"] = args.direction_columns
            if args.rotation_yaws is not None:
                try:
                    kwargs["rotation_yaws"] = tuple(parse_list_argument(args.rotation_yaws, int))
                except ValueError as error:
                    raise UsageError(f"--rotation-yaws: {error}") from None
        files = build_config(name, output_dir, kwargs, max_bytes, args.downloads_dir)
        counts = ", ".join(f"{split} {len(shards)} shard(s)" for split, shards in files.items())
        print(f"{name}: {counts}")
    card = write_card(output_dir, args.card)
    print(f"wrote {card}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
