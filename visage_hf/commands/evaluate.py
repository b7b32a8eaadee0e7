"""`visage evaluate`: score generated FOA against ground truth (:mod:`visage_hf.evaluation.runner` does the work).

This module also answers to the 0.1.0 path ``visage_hf.evaluate``, so it re-exports the runner's public names.
"""

from __future__ import annotations

import argparse
import math
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
        help="seconds to cut/pad every clip to (default 5, YT-Ambigen's clips; shorter clips are zero-padded, "
        "with a warning)",
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
    """Run ``visage evaluate`` from parsed arguments; returns the exit code (2 on bad input, no traceback;
    1 when no clip could be scored)."""
    try:
        metrics = parse_metrics(args.metrics)
        if args.directions is not None and not {"fad", "kld"} & set(metrics):
            raise ValueError(
                "--directions is used only by the decoded-mono scores of --metrics fad/kld/semantic "
                f"(got --metrics {args.metrics}); leave it out or add those metrics"
            )
        _warn_about_padding(args.pred, args.gt, args.duration)
        embedder, classifier = _load_semantic_models(metrics, args)
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
    table = report_table(result, args.mode, metrics, args.pred)
    _write_text(Path(result.output_dir) / "table.md", table)
    print(table, end="")
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
    if not any(math.isfinite(value) for value in result.scores.values()):
        print(
            f"visage evaluate: error: no score could be computed on the {result.num_clips} clip(s) (every "
            "clip NaN: silent ground truth or prediction?); see per_clip.csv",
            file=sys.stderr,
        )
        return 1
    return 0


LEGEND = (
    "FAD<sub>dec</sub> / KLD<sub>dec</sub>: FAD (VGGish) / KLD (PaSST) of the mono decoded toward the camera "
    "direction (needs --directions); FAD<sub>avg</sub> / KLD<sub>avg</sub>: averaged over the four channels "
    "W, Y, Z, X; CC / AUC: correlation / AUC-Judd of the energy maps of prediction and ground truth over the "
    "whole clip (All), per 1 s (1 fps) and per 200 ms (5 fps); Δ∠ energy / Δ∠ intensity: angle between the "
    "loudest directions of the two energy maps / between their mean intensity vectors; –: not computed."
)


def report_table(result: EvaluationResult, mode: str, metrics: Sequence[str], prediction_dir) -> str:
    """The runner's table with what a reader needs beside it: how many clips it measured (and which were left
    out), in which mode, the paper's published row of the same guidance setting if known, and a legend."""
    from ..metrics.table import format_table
    from .published import published_row_for

    unpaired = len(result.unmatched_predictions) + len(result.unmatched_targets)
    header = (
        f"Measured on {result.num_clips} clip(s), mode {mode}, metrics {', '.join(metrics)}"
        + (f"; {len(result.failed)} clip(s) failed (failed.csv)" if result.failed else "")
        + (f"; {unpaired} file(s) without a partner not scored (unmatched.csv)" if unpaired else "")
        + ".\n\n"
    )
    published = published_row_for(prediction_dir)
    table = result.table
    if published is not None:
        label, scores = published
        table = format_table({"measured: " + _first_method(result.table): result.scores, label: scores})
        table += result.table.split("\n\n", 1)[1] if "\n\n" in result.table else ""
        note = (
            "published: the paper's numbers on the 11,166-clip test split, original scripts (--mode original)"
        )
        header += f"{note}; not measured here.\n\n"
    return header + table + "\n" + LEGEND + "\n"


def _first_method(table: str) -> str:
    """The method name of the first row of a markdown table."""
    return table.splitlines()[2].split("|")[1].strip()


def _write_text(path: Path, text: str) -> None:
    from ..audio.io import atomic_output_path

    with atomic_output_path(path) as temporary:
        temporary.write_text(text)


def _load_semantic_models(metrics, args):
    """The FAD embedder / KLD classifier; a download failure names the option that avoids the download."""
    from ..utils import hub

    embedder = classifier = None
    if "fad" in metrics:
        from ..metrics.embedders import VGGishEmbedder

        try:
            embedder = VGGishEmbedder.from_pretrained(args.vggish_weights, device=args.device)
        except Exception as error:
            if args.vggish_weights is None and (hub.is_network_error(error) or "urlopen" in str(error)):
                raise ValueError(
                    "could not download the VGGish weights (offline?): pass --vggish-weights FILE with the "
                    "torchvggish state dict (.pth / .safetensors)"
                ) from None
            raise
    if "kld" in metrics:
        from ..metrics.embedders import PasstClassifier

        try:
            classifier = PasstClassifier.from_hear21passt(device=args.device)
        except Exception as error:
            if hub.is_network_error(error) or "urlopen" in str(error):
                raise ValueError(
                    "could not download the PaSST weights for KLD (offline?): run once with network (they are "
                    "cached by torch hub), or leave kld out of --metrics"
                ) from None
            raise
    return embedder, classifier


def _warn_about_padding(prediction_dir: Path, target_dir: Path, seconds: float) -> None:
    """Say so when clips are shorter than --duration: they are zero-padded, which lowers every score."""
    import soundfile as sf

    from ..data.clip_files import match_files

    if not (Path(prediction_dir).is_dir() and Path(target_dir).is_dir()):
        return  # the runner names the missing folder
    pairs, _, _ = match_files(prediction_dir, target_dir)
    short = []
    for _, *files in pairs:
        for path in files:
            try:
                duration = sf.info(str(path)).duration
            except RuntimeError:
                continue  # unreadable: the runner reports it per clip
            if duration < seconds - 1e-3:
                short.append(duration)
    if short:
        print(
            f"visage evaluate: warning: {len(short)} file(s) are shorter than --duration {seconds:g} s (shortest "
            f"{min(short):.2f} s) and are zero-padded; pass --duration to match your clips",
            file=sys.stderr,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m visage_hf.commands.evaluate ...`` (the same options as ``visage evaluate``)."""
    parser = argparse.ArgumentParser(prog="visage evaluate", description=add_evaluate_parser.__doc__)
    _add_evaluate_arguments(parser)
    return run_evaluate(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
