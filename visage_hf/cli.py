"""``python -m visage_hf.cli`` (and ``accelerate launch -m visage_hf.cli generate-batch ...``): the `visage` CLI."""

import sys

from visage_hf.commands.main import COMMANDS, CommandError, build_parser, main

__all__ = ["COMMANDS", "CommandError", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
