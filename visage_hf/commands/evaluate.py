"""`visage evaluate`: score generated FOA against ground truth (:mod:`visage_hf.evaluation.runner` does the work).

This module also answers to the 0.1.0 path ``visage_hf.evaluate``, so it re-exports the runner's public names.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..evaluation.runner import (
    DEFAULT_DURATION_SECONDS,
    METRIC_CHOICES,
    PER_CLIP_COLUMNS,
    EvaluationResult,
    evaluate_directories,
    parse_metrics,
)
from ..models.modes import MODES
from .batch import DIRECTIONS_FORMATS

__all__ = [
    "METRIC_CHOICES",
    "PER_CLIP_COLUMNS",
    "EvaluationResult",
    "add_evaluate_command",
    "add_evaluate_parser",
    "evaluate_directories",
    "main",
    "run_evaluate",
]


def add_evaluate_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``evaluate`` on an ``argparse`` sub-parser set. The handler, :func:`run_evaluate`, is set as
    both ``args.handler`` (the ``visage`` CLI's convention) and ``args.func``; it returns the exit code."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score generated FOA against ground truth (CC/AUC, FAD/KLD)",
        description="Score a folder of generated FOA against a folder of ground truth, like the ViSAGe paper.",
    )
    _add_evaluate_arguments(parser)
    parser.set_defaults(handler=run_evaluate, func=run_evaluate)
    return parser


add_evaluate_command = add_evaluate_parser  # the name the COMMANDS list uses for its entries


def _add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True, type=Path, help="folder of generated FOA audio files")
    parser.add_argument("--gt", required=True, type=Path, help="folder of ground-truth FOA audio files")
    parser.add_argument(
        "-o", "--output", required=True, type=Path, help="report folder (resumed if it exists)"
    )
    parser.add_argument(
        "--directions",
        type=Path,
        help=DIRECTIONS_FORMATS
        + "; needed for the decoded-mono scores (FAD_dec, KLD_dec) of --metrics semantic",
    )
    parser.add_argument(
        "--mode", choices=MODES, default="corrected", help="'original' reproduces the paper's numbers"
    )
    parser.add_argument(
        "--metrics",
        default="spatial",
        help="comma-separated: spatial, fad, kld, semantic (=fad,kld); default spatial",
    )
    parser.add_argument("--seed", type=int, default=0, help="base seed of the AUC tie-breaking jitter")
    parser.add_argument(
        "--duration",
        type=float,
        default=DEFAULT_DURATION_SECONDS,
        help="seconds to cut/pad every clip to (default 5)",
    )
    parser.add_argument("--name", help="method name in the table (default: the --pred folder name)")
    parser.add_argument(
        "--overwrite", action="store_true", help="discard an existing report instead of resuming"
    )
    parser.add_argument(
        "--vggish-weights", help="VGGish state dict (.pth/.safetensors); default: torchvggish release"
    )
    parser.add_argument("--device", default="cpu", help="torch device of the FAD/KLD models")
    parser.add_argument(
        "--workers", type=int, default=1, help="processes scoring clips in parallel (default 1)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``visage evaluate`` from parsed arguments; returns the exit code (2 on bad input, no traceback)."""
    try:
        metrics = parse_metrics(args.metrics)
        embedder = classifier = None
        if "fad" in metrics:
            from ..metrics.embedders import VGGishEmbedder

            embedder = VGGishEmbedder.from_pretrained(args.vggish_weights, device=args.device)
        if "kld" in metrics:
            from ..metrics.embedders import PasstClassifier

            classifier = PasstClassifier.from_hear21passt(device=args.device)
        result = evaluate_directories(
            args.pred,
            args.gt,
            args.output,
            directions=args.directions,
            mode=args.mode,
            metrics=metrics,
            embedder=embedder,
            classifier=classifier,
            seed=args.seed,
            duration_seconds=args.duration,
            name=args.name,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            workers=args.workers,
        )
    except (ValueError, FileNotFoundError, ImportError) as error:
        print(f"visage evaluate: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("visage evaluate: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    print(result.table, end="")
    notes = [
        (len(result.failed), "clip(s) failed, see failed.csv"),
        (
            len(result.unmatched_predictions) + len(result.unmatched_targets),
            "unpaired file(s), see unmatched.csv",
        ),
        (len(result.missing_directions), "clip(s) without a direction (no decoded-mono scores)"),
    ]
    for count, message in notes:
        if count:
            print(f"visage evaluate: {count} {message}", file=sys.stderr)
    print(f"report written to {result.output_dir}", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m visage_hf.commands.evaluate ...`` (the same options as ``visage evaluate``)."""
    parser = argparse.ArgumentParser(prog="visage evaluate", description=add_evaluate_parser.__doc__)
    _add_evaluate_arguments(parser)
    return run_evaluate(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
