"""The ``visage`` command line.

Each subcommand is one ``add_<name>_command(subparsers)`` function that adds its parser and sets
``handler=run_<name>``; :data:`COMMANDS` lists them in ``--help`` order, so a new subcommand is one new pair of
functions plus one entry. Handlers import heavy modules (matplotlib, torch, ...) lazily so ``visage --help``
stays fast. Bad input ends with one line ``visage: error: ...`` on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .batch import add_generate_batch_command
from .common import PROG, CommandError, Parser, one_line
from .convert import add_convert_original_command
from .evaluate import add_evaluate_command
from .generate import add_generate_command
from .spatial import (
    add_decode_command,
    add_demo_spatial_command,
    add_encode_command,
    add_energy_map_command,
    add_rotate_command,
)

__all__ = ["COMMANDS", "CommandError", "build_parser", "main"]

# ----------------------------------------------------------------------------- entry point

COMMANDS: list[Callable] = [
    add_encode_command,
    add_rotate_command,
    add_decode_command,
    add_energy_map_command,
    add_demo_spatial_command,
    add_evaluate_command,
    add_generate_command,
    add_convert_original_command,
    add_generate_batch_command,
]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = Parser(
        prog=PROG,
        description="visage-hf: video to first-order ambisonics (ViSAGe), and FOA tools. Angles are degrees: "
        "azimuth counter-clockwise from the front toward the left, elevation up.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input or usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not hasattr(args, "handler"):
            parser.print_help(sys.stderr)
            return 2
        return int(args.handler(args) or 0)
    except SystemExit as exit_:  # --help / --version
        return exit_.code if isinstance(exit_.code, int) else 0
    except (CommandError, ValueError, OSError) as error:
        print(f"{PROG}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
