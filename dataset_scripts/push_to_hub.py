"""Upload a `build_shards.py` folder (Parquet shards + dataset card) to a Hub dataset repository.

Only ``README.md`` and the ``<config>/*.parquet`` shards of the chosen configs are uploaded, in one commit
(``HfApi().upload_folder``). The ``media`` config holds YouTube video and sound, which may not be
redistributed: it is left out unless ``--include-media`` is given. When configs are left out, the uploaded card
lists only the uploaded ones. No ``.py`` file is ever uploaded (the Hub refuses dataset scripts).

``--dry-run`` lists what would be uploaded (path in the repository and size) and touches nothing.

Example::

    python -m dataset_scripts.push_to_hub --folder data/yt_ambigen --repo-id you/yt-ambigen --dry-run
    python -m dataset_scripts.push_to_hub --folder data/yt_ambigen --repo-id you/yt-ambigen --private
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dataset_scripts.build_shards import CONFIG_ORDER, render_card
from dataset_scripts.jobs import UsageError, parse_list_argument, run_cli, scratch_directory

__all__ = ["main", "plan_upload", "upload"]

CARD = "README.md"


def _configs_in(folder: Path) -> list[str]:
    names = [p.name for p in sorted(folder.iterdir()) if p.is_dir() and any(p.glob("*.parquet"))]
    return [n for n in CONFIG_ORDER if n in names] + [n for n in names if n not in CONFIG_ORDER]


def plan_upload(folder: str | os.PathLike, configs: Sequence[str] | None = None, include_media: bool = False):
    """What would be uploaded: ``(files, card_text)`` with ``files`` a list of ``(path in repo, local path)``.

    Raises:
        UsageError: no card, no shards, unknown configs, or ``media`` requested without ``include_media``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"--folder not found: {folder}")
    card_path = folder / CARD
    if not card_path.is_file():
        raise UsageError(f"{folder} has no {CARD}: build it with build_shards.py")
    present = _configs_in(folder)
    if not present:
        raise UsageError(f"{folder} has no <config>/*.parquet shards: build them with build_shards.py")
    if configs is None:
        chosen = [name for name in present if name != "media" or include_media]
    else:
        chosen = list(configs)
        missing = [name for name in chosen if name not in present]
        if missing:
            raise UsageError(f"configs {missing} have no shards in {folder} (present: {present})")
    if "media" in chosen and not include_media:
        raise UsageError(
            "the media config holds YouTube video and sound; pass --include-media to upload it anyway"
        )
    if not chosen:
        raise UsageError(f"nothing to upload from {folder} (present: {present})")
    files = []
    for name in chosen:
        for shard in sorted((folder / name).glob("*.parquet")):
            files.append((f"{name}/{shard.name}", shard))
    splits = {
        name: sorted({path.split("/")[1].split("-")[0] for path, _ in files if path.startswith(f"{name}/")})
        for name in chosen
    }
    order = ["train", "validation", "test"]
    splits = {
        name: [s for s in order if s in values] + [s for s in values if s not in order]
        for name, values in splits.items()
    }
    card = render_card(card_path.read_text(encoding="utf-8"), splits)
    return files, card


def upload(
    folder: str | os.PathLike,
    repo_id: str,
    configs: Sequence[str] | None = None,
    include_media: bool = False,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    commit_message: str = "Upload YT-Ambigen shards",
):
    """Create the dataset repo if needed and upload the planned files and card in one commit."""
    from huggingface_hub import HfApi

    files, card = plan_upload(folder, configs, include_media)
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    # The upload is a staging folder of hard links (copies where links are impossible) plus the rendered card:
    # upload_folder then sends exactly these files in one commit.
    with scratch_directory(folder, "upload") as staging:
        for path_in_repo, local in files:
            target = staging / path_in_repo
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(local, target)
            except OSError:
                shutil.copy2(local, target)
        (staging / CARD).write_text(card, encoding="utf-8")
        return api.upload_folder(
            folder_path=str(staging),
            repo_id=repo_id,
            repo_type="dataset",
            revision=revision,
            commit_message=commit_message,
        )


def _human(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dataset_scripts.push_to_hub",
        description="Upload Parquet shards and the dataset card of a build_shards.py folder to the Hub.",
    )
    parser.add_argument("--folder", required=True, help="build_shards.py output")
    parser.add_argument("--repo-id", required=True, help="Hub dataset repository, e.g. you/yt-ambigen")
    parser.add_argument("--configs", default=None, help="configs to upload (default: all present but media)")
    parser.add_argument("--include-media", action="store_true", help="also upload the media config")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--revision", default=None, help="branch to commit to")
    parser.add_argument("--token", default=None, help="Hub token (default: the logged-in one)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be uploaded, upload nothing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.repo_id.count("/") != 1:
        raise UsageError(f"--repo-id: expected 'owner/name', got {args.repo_id!r}")
    configs = parse_list_argument(args.configs) or None
    files, card = plan_upload(args.folder, configs, args.include_media)
    if args.dry_run:
        total = sum(local.stat().st_size for _, local in files) + len(card.encode("utf-8"))
        print(f"dry run: would upload {len(files) + 1} files ({_human(total)}) to dataset {args.repo_id}:")
        print(f"  {CARD}  ({_human(len(card.encode('utf-8')))})")
        for path_in_repo, local in files:
            print(f"  {path_in_repo}  ({_human(local.stat().st_size)})")
        return 0
    info = upload(
        args.folder, args.repo_id, configs, args.include_media, args.private, args.revision, args.token
    )
    print(f"uploaded {len(files) + 1} files to {args.repo_id}: {getattr(info, 'commit_url', info)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
