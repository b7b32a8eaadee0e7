"""`visage convert-original`: the original release's checkpoint -> a visage-hf model folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import (
    CommandError,
)

# ----------------------------------------------------------------------------- convert-original


def add_convert_original_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert-original",
        help="convert an original ViSAGe checkpoint to this package's format",
        description="Convert a checkpoint of the original ViSAGe code (a folder or a Hub id such as "
        "jaeyeonkim99/visage) into a VisageForFOA folder (config.json + model.safetensors), loadable with "
        "VisageForFOA.from_pretrained or 'visage generate --model DST'.",
    )
    parser.add_argument("src", help="original checkpoint folder or Hub repo id")
    parser.add_argument("dst", help="output folder")
    parser.add_argument("--revision", default=None, help="Hub revision of SRC")
    parser.add_argument("--subfolder", default=None, help="folder inside SRC holding the checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty DST")
    parser.set_defaults(handler=run_convert_original)


def run_convert_original(args: argparse.Namespace) -> int:
    from ..models.convert_original import convert_original
    from ..utils import hub

    source = args.src
    offline = f"could not download {source} (offline?): pass a local folder with the original checkpoint"
    if not Path(source).expanduser().exists():
        if source.startswith(("/", ".", "~")) or source.count("/") > 1:
            raise CommandError(
                f"checkpoint folder not found: {source} (expected a folder or a Hub id owner/name)"
            )
        if not hub.hub_reachable():
            raise CommandError(offline)
    try:
        path = convert_original(source, args.dst, args.revision, args.subfolder, args.overwrite)
    except Exception as error:
        if hub.is_network_error(error):
            raise CommandError(offline) from None
        raise
    print(
        f"wrote {path}: VisageForFOA converted from {args.src}; use it with 'visage generate --model {path}' "
        "(the folder holds the model only: CLIP and the DAC codec come from the Hub or its cache, or from "
        "folders given with --clip DIR --codec DIR)"
    )
    return 0
