"""`visage generate-batch`: a whole split, resumable, one WAV per clip, sharded with accelerate."""

from __future__ import annotations

import argparse
import os

from .common import (
    FOA_DESCRIPTION,
    CommandError,
    positive_int,
)
from .generate import (
    add_model_arguments,
    add_sampling_arguments,
    check_sampling_arguments,
    default_model,
    load_pipeline,
    shared_generation_settings,
)

# Shown in --help of generate-batch and evaluate (the formats `visage_hf.data.clip_files.load_directions` reads).
DIRECTIONS_FORMATS = (
    "clip id -> camera direction, one of: YT-Ambigen ambi.json, a JSON object "
    '{"CLIP": [elevation_index, azimuth_index]} (2° indices: elevation 89 - 2e, azimuth 179 - 2a); a JSON object '
    '{"CLIP": {"azimuth": DEG, "elevation": DEG}}; or a CSV with a header row, columns clip,azimuth,elevation '
    "(degrees) or clip,elevation_index,azimuth_index ('id' or 'file_path' may name the clip column; a file "
    "extension on the id is stripped)"
)


def add_generate_batch_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate-batch",
        help="generate FOA for a list of clips (e.g. a test split): one WAV per clip, resumable, sharded",
        description="Generate "
        + FOA_DESCRIPTION
        + " for many clips: OUT/<clip id>.wav (float32, --sample-rate), "
        "OUT/failed.csv (clips that failed and why; the run goes on) and OUT/run_config.json. Rerunning the "
        "same command generates only the missing clips. Clip c is sampled with its own seed, SHA-256 of "
        "'<seed>/<c>', so its audio does not depend on batching, processes or resuming. Run it on several "
        "GPUs with 'accelerate launch -m visage_hf.cli generate-batch ...': each process takes a share.",
    )
    inputs = parser.add_mutually_exclusive_group(required=True)
    inputs.add_argument(
        "--features",
        help="a folder of <clip id>.npz feature files (dataset_scripts/extract_features.py), or a feature "
        "dataset: Parquet file(s) / glob, a folder of Parquet shards or a save_to_disk folder",
    )
    inputs.add_argument(
        "--videos",
        help="a folder of <clip id>.mp4 videos (with --directions), or a CSV with columns "
        "video,azimuth,elevation[,start,duration] and optionally id",
    )
    parser.add_argument(
        "--directions", help=DIRECTIONS_FORMATS + "; overrides the directions stored with features"
    )
    parser.add_argument(
        "--clips", help="CSV of the clips to generate (an id, clip or file_path column, like test.csv)"
    )
    parser.add_argument("--split", default="test", help="split of a feature dataset (default test)")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    add_model_arguments(parser)
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="run seed; each clip's seed derives from it, so a fixed default (0) keeps resumed runs "
        "reproducible ('visage generate' draws a fresh seed unless given one)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=8, help="clips per generate call (default 8)"
    )
    parser.add_argument(
        "--sample-rate",
        type=int,
        default=16000,
        help="Hz of the WAV files (default 16000, the rate the paper scores at; 'visage generate' defaults to "
        "the model's 44100 for listening)",
    )
    add_sampling_arguments(parser)
    parser.add_argument("--device", default=None, help="default: each process's accelerate device")
    parser.add_argument(
        "--overwrite", action="store_true", help="regenerate every clip, even over outputs of other settings"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run_generate_batch)


def run_generate_batch(args: argparse.Namespace) -> int:
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    from ..pipelines.batch_generation import BatchSettings, open_source, read_clip_list, run_batch_generation

    if args.sample_rate < 8000:
        raise CommandError(f"--sample-rate: expected at least 8000 Hz, got {args.sample_rate}")
    check_sampling_arguments(args)
    # PartialState reads no ACCELERATE_USE_CPU itself; without cpu=True, CPU processes started by torchrun
    # would each run alone and all generate every clip.
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or args.device == "cpu")
    launched = int(os.environ.get("WORLD_SIZE") or 1)
    if launched > state.num_processes:
        raise CommandError(
            f"started as {launched} processes, but accelerate joined them into no group; on a machine "
            "without GPUs set ACCELERATE_USE_CPU=1 (or pass --device cpu)"
        )
    source = open_source(args.features, args.videos, args.directions, args.split)
    clip_ids = read_clip_list(args.clips) if args.clips else None
    model = args.model or default_model()
    settings = BatchSettings(
        model=model,
        seed=args.seed,
        sample_rate=args.sample_rate,
        dtype=args.dtype,
        **shared_generation_settings(args),
    )

    def load_for_device(device):
        quiet = args.quiet or not state.is_main_process
        return load_pipeline(model, args.device or str(device), args.dtype, quiet, args.clip, args.codec)

    report = run_batch_generation(
        source,
        args.output,
        load_for_device,
        settings,
        clip_ids=clip_ids,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
        state=state,
        progress=not args.quiet,
    )
    # Failed clips are listed in failed.csv and the run went on; a script must still see that it is incomplete.
    return 1 if report.failed else 0
