"""The ``visage`` command line.

Each subcommand is one ``add_<name>_command(subparsers)`` function that adds its parser and sets
``handler=run_<name>``; :data:`COMMANDS` lists them in ``--help`` order, so a new subcommand is one new pair of
functions plus one entry. Handlers import heavy modules (matplotlib, torch, ...) lazily so ``visage --help``
stays fast. Bad input ends with one line ``visage: error: ...`` on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .evaluate import add_evaluate_parser

__all__ = ["COMMANDS", "CommandError", "build_parser", "main"]

PROG = "visage"
FOA_DESCRIPTION = "4-channel AmbiX (ACN W, Y, Z, X; SN3D)"


class CommandError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors become one line instead of usage text plus exit."""

    def error(self, message: str):
        raise CommandError(f"{message} (see '{self.prog} --help')")


# ----------------------------------------------------------------------------- shared helpers


def _read_foa(path: str):
    from .audio import check_foa, read_audio

    audio, sample_rate = read_audio(path)
    if audio.shape[0] != 4:
        raise CommandError(f"expected a {FOA_DESCRIPTION} file, got {audio.shape[0]} channel(s) in {path}")
    return check_foa(audio, name=str(path)), sample_rate


def _read_mono(path: str):
    from .audio import check_mono, read_audio

    audio, sample_rate = read_audio(path)
    if audio.shape[0] != 1:
        raise CommandError(f"expected a mono (1-channel) file, got {audio.shape[0]} channels in {path}")
    return check_mono(audio[0], name=str(path)), sample_rate


def _pattern(text: str):
    """``--pattern``: a name (cardioid, figure8, ...) or a number in [0, 1]."""
    from .foa import PATTERNS

    if text in PATTERNS:
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number in [0, 1] or one of {', '.join(sorted(PATTERNS))}, got {text!r}"
        ) from None


def _add_direction_arguments(parser: argparse.ArgumentParser, what: str, azimuth: float = 0.0) -> None:
    parser.add_argument(
        "--azimuth",
        type=float,
        default=azimuth,
        help=f"{what} azimuth in degrees, counter-clockwise from the front toward the left; wraps (default {azimuth:g})",
    )
    parser.add_argument(
        "--elevation", type=float, default=0.0, help=f"{what} elevation in degrees, in [-90, 90] (default 0)"
    )


def _describe_direction(azimuth: float, elevation: float) -> str:
    return f"azimuth {azimuth:+.1f}°, elevation {elevation:+.1f}°"


# ----------------------------------------------------------------------------- encode


def add_encode_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "encode",
        help="encode a mono file as a plane wave into FOA",
        description="Encode a mono sound file at a direction into " + FOA_DESCRIPTION + ".",
    )
    parser.add_argument("input", help="mono audio file")
    _add_direction_arguments(parser, "source")
    parser.add_argument("-o", "--output", required=True, help="output FOA file (.wav, float32)")
    parser.set_defaults(handler=run_encode)


def run_encode(args: argparse.Namespace) -> int:
    from .audio import write_audio
    from .directions import wrap_azimuth
    from .foa import encode

    mono, sample_rate = _read_mono(args.input)
    foa = encode(mono, args.azimuth, args.elevation)
    path = write_audio(args.output, foa, sample_rate)
    print(
        f"wrote {path}: {FOA_DESCRIPTION}, {sample_rate} Hz, source at {_describe_direction(wrap_azimuth(args.azimuth), args.elevation)}"
    )
    return 0


# ----------------------------------------------------------------------------- rotate


def add_rotate_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "rotate",
        help="rotate an FOA sound field (yaw, pitch, roll)",
        description="Rotate an FOA sound field. Yaw (about up) > 0 moves sources to the left; pitch (about "
        "the left axis) > 0 tips the front down; roll (about the front axis) > 0 lifts the left side. "
        "Applied in the order yaw, pitch, roll.",
    )
    parser.add_argument("input", help=f"{FOA_DESCRIPTION} file")
    parser.add_argument("--yaw", type=float, default=0.0, help="degrees (default 0)")
    parser.add_argument("--pitch", type=float, default=0.0, help="degrees (default 0)")
    parser.add_argument("--roll", type=float, default=0.0, help="degrees (default 0)")
    parser.add_argument("-o", "--output", required=True, help="output FOA file")
    parser.set_defaults(handler=run_rotate)


def run_rotate(args: argparse.Namespace) -> int:
    from .audio import write_audio
    from .foa import rotate

    foa, sample_rate = _read_foa(args.input)
    path = write_audio(args.output, rotate(foa, args.yaw, args.pitch, args.roll), sample_rate)
    print(f"wrote {path}: rotated by yaw {args.yaw:g}°, pitch {args.pitch:g}°, roll {args.roll:g}°")
    return 0


# ----------------------------------------------------------------------------- decode


def add_decode_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "decode",
        help="decode FOA to stereo (or mono) with virtual microphones",
        description="Decode FOA with a coincident pair of first-order virtual microphones looking at "
        "--azimuth/--elevation: the left mic turned --spread degrees to the left of the look direction, the "
        "right mic --spread to the right (default: cardioids at ±90°). --mono writes one microphone aimed at "
        "the look direction instead.",
    )
    parser.add_argument("input", help=f"{FOA_DESCRIPTION} file")
    _add_direction_arguments(parser, "look")
    parser.add_argument(
        "--pattern",
        type=_pattern,
        default="cardioid",
        help="first-order pattern: 0 omni ... 0.5 cardioid ... 1 figure-8, or a name (default cardioid)",
    )
    parser.add_argument(
        "--spread", type=float, default=90.0, help="degrees each mic is turned off axis (default 90)"
    )
    parser.add_argument("--mono", action="store_true", help="write one microphone at the look direction")
    parser.add_argument("-o", "--output", required=True, help="output audio file")
    parser.set_defaults(handler=run_decode)


def run_decode(args: argparse.Namespace) -> int:
    from .audio import write_audio
    from .foa import decode_stereo, virtual_microphone

    foa, sample_rate = _read_foa(args.input)
    if args.mono:
        audio = virtual_microphone(foa, args.azimuth, args.elevation, args.pattern)
    else:
        audio = decode_stereo(foa, args.azimuth, args.elevation, args.spread, args.pattern)
    path = write_audio(args.output, audio, sample_rate)
    layout = "mono" if args.mono else "stereo (left, right)"
    print(
        f"wrote {path}: {layout}, {args.pattern} pattern looking at {_describe_direction(args.azimuth, args.elevation)}"
    )
    return 0


# ----------------------------------------------------------------------------- energy-map


def add_energy_map_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "energy-map",
        help="plot the FOA energy map (equirectangular heat map)",
        description="Plot where the sound comes from: RMS of a beam steered to every point of a 2° "
        "equirectangular grid, for the whole clip or per window (--window 1.0 or 0.2 like the paper; a "
        "trailing partial window is dropped). Prints the loudest direction.",
    )
    parser.add_argument("input", help=f"{FOA_DESCRIPTION} file")
    parser.add_argument("-o", "--output", required=True, help="output PNG")
    parser.add_argument(
        "--window", type=float, default=None, help="window length in seconds (default: whole clip)"
    )
    parser.add_argument("--resolution", type=float, default=2.0, help="grid step in degrees (default 2)")
    parser.add_argument(
        "--normalization",
        choices=["sn3d", "original"],
        default="sn3d",
        help="beam weights: sn3d (default) or the original ViSAGe code's (√2 on X and Y)",
    )
    parser.set_defaults(handler=run_energy_map)


def run_energy_map(args: argparse.Namespace) -> int:
    import numpy as np

    from .foa import direction_from_energy_map, energy_map
    from .plotting import plot_energy_map

    foa, sample_rate = _read_foa(args.input)
    maps = energy_map(foa, sample_rate, args.window, args.resolution, args.normalization)
    title = Path(args.input).name + ("" if args.window is None else f" ({args.window:g} s windows)")
    path = plot_energy_map(maps, args.output, title=title, window_seconds=args.window)
    azimuths, elevations = (np.atleast_1d(value) for value in direction_from_energy_map(maps))
    print(f"wrote {path}: {len(azimuths)} map(s)")
    for index, (azimuth, elevation) in enumerate(zip(azimuths, elevations)):
        label = "loudest direction" if args.window is None else f"window {index}"
        print(f"{label}: {_describe_direction(azimuth, elevation)}")
    return 0


# ----------------------------------------------------------------------------- demo-spatial


def add_demo_spatial_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo-spatial",
        help="make a tone, encode it at a direction, write FOA + energy map, find it again",
        description="Offline spatial-audio demo: synthesises a 1 kHz tone, encodes it at --azimuth/--elevation "
        "(default 60° to the left), writes OUT/foa.wav and OUT/energy_map.png, and prints the direction "
        "recovered from the energy map and from the intensity vector.",
    )
    parser.add_argument("-o", "--output", required=True, help="output folder")
    _add_direction_arguments(parser, "source", azimuth=60.0)
    parser.add_argument("--seconds", type=float, default=2.0, help="tone length (default 2)")
    parser.add_argument("--sample-rate", type=int, default=48000, help="Hz (default 48000)")
    parser.set_defaults(handler=run_demo_spatial)


def _tone(seconds: float, sample_rate: int, frequency: float = 1000.0):
    import numpy as np

    if not (np.isfinite(seconds) and seconds > 0):
        raise CommandError(f"--seconds: expected a positive number, got {seconds:g}")
    if sample_rate <= 2 * frequency:
        raise CommandError(
            f"--sample-rate: expected more than {2 * frequency:g} Hz for a {frequency:g} Hz tone, got {sample_rate}"
        )
    count = max(1, round(seconds * sample_rate))
    time = np.arange(count) / sample_rate
    fade = np.minimum(1.0, np.minimum(time, time[-1] - time) / 0.02)  # 20 ms fades: no clicks
    return (0.5 * fade * np.sin(2 * np.pi * frequency * time)).astype(np.float32)


def run_demo_spatial(args: argparse.Namespace) -> int:
    from .audio import write_audio
    from .directions import angular_distance, wrap_azimuth
    from .foa import direction_from_energy_map, direction_from_intensity, encode, energy_map
    from .plotting import plot_energy_map

    azimuth = wrap_azimuth(args.azimuth)
    foa = encode(_tone(args.seconds, args.sample_rate), azimuth, args.elevation)
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise CommandError(f"expected an output folder, got an existing file: {output}")
    foa_path = write_audio(output / "foa.wav", foa, args.sample_rate)
    maps = energy_map(foa)
    map_path = plot_energy_map(
        maps, output / "energy_map.png", title=f"1 kHz tone at {_describe_direction(azimuth, args.elevation)}"
    )
    found = direction_from_energy_map(maps)
    intensity = direction_from_intensity(foa)
    print(f"encoded a 1 kHz tone at {_describe_direction(azimuth, args.elevation)}")
    print(f"wrote {foa_path} ({FOA_DESCRIPTION}, {args.sample_rate} Hz) and {map_path}")
    for method, (az, el) in (("energy map", found), ("intensity vector", intensity)):
        error = angular_distance(az, el, azimuth, args.elevation)
        print(f"direction found by {method}: {_describe_direction(az, el)} (error {error:.2f}°)")
    return 0


# ----------------------------------------------------------------------------- generate

MODEL_ENV = "VISAGE_MODEL"


def _default_model() -> str:
    from .pipeline import DEFAULT_MODEL_REPO

    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL_REPO


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text}")
    return value


def _start_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text}")
    return value


# The model's guidance modes (configuration_visage.GUIDANCE_MODES), spelled out so that `visage --help` does not
# import transformers; tests check that the two agree.
GUIDANCE_CHOICES = ("joint", "dual", "visual", "direction", "none")


def add_generate_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate spatial audio (FOA) for a video seen from a camera direction",
        description="Generate first-order ambisonics for VIDEO seen from --azimuth/--elevation, any length "
        "(clips longer than the model's 5 s window are generated window by window). Writes into OUT: "
        "foa_ambix.wav (" + FOA_DESCRIPTION + ", float32, 44.1 kHz unless --sample-rate; world frame), "
        "binaural.wav (headphone preview, turned so the camera direction is in front), spatial.mp4 (the "
        "video segment with the FOA as a 4-channel AAC track + SA3D spatial-audio box; 360° input keeps the "
        "world frame and gets spherical metadata) and energy_map.png. Files appear only when all are written.",
    )
    parser.add_argument("video", help="video file (a field-of-view clip, or a 360° equirectangular video)")
    _add_direction_arguments(parser, "camera")
    parser.add_argument(
        "--start", type=_start_seconds, default=0.0, help="seconds into the video (default 0)"
    )
    parser.add_argument(
        "--duration", type=_positive_seconds, default=None, help="seconds (default: to the end of the video)"
    )
    parser.add_argument(
        "--model",
        default=None,
        help=f"saved pipeline or checkpoint folder, Hub id, or 'tiny-random' (noise, for checking the plumbing); "
        f"default ${MODEL_ENV} or the original release jaeyeonkim99/visage, converted on load",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (same seed, same audio)")
    parser.add_argument(
        "--guidance",
        choices=GUIDANCE_CHOICES,
        default=None,
        help="classifier-free guidance (default: the model's)",
    )
    parser.add_argument("--guidance-scale", type=float, default=None, help="s in l_c + s(l_c - l_u)")
    parser.add_argument(
        "--direction-guidance-scale", type=float, default=None, help="direction term of --guidance dual"
    )
    parser.add_argument("--top-k", type=int, default=None, help="sample from the k likeliest codes")
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature")
    parser.add_argument(
        "--equirect",
        action="store_true",
        help="VIDEO is 360° equirectangular: crop the field of view at the direction (auto-detected from "
        "2:1 frames with spherical metadata)",
    )
    parser.add_argument("--sample-rate", type=int, default=None, help="Hz of the WAV files (default 44100)")
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: cuda if available)"
    )
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.set_defaults(handler=run_generate)


def _offline_message(model: str) -> str:
    return (
        f"could not download {model} (offline?): pass --model tiny-random to check the plumbing, --model DIR "
        "with a downloaded or converted checkpoint (see 'visage convert-original'), or set HF_HUB_OFFLINE=1 "
        "to use a copy in the Hugging Face cache"
    )


def _load_pipeline(model: str, device: str | None, dtype_name: str, quiet: bool = False):
    import torch

    from .tiny import TINY_RANDOM, TINY_RANDOM_WARNING, tiny_random_components

    dtype = getattr(torch, dtype_name)
    if quiet:  # the libraries' own loading bars
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if model == TINY_RANDOM:
        from .pipeline import VisagePipeline

        print(f"{PROG}: warning: {TINY_RANDOM_WARNING}", file=sys.stderr)
        # Its layers are too small to gain from intra-op threads, and on a busy CPU extra threads make each of
        # its ~2000 decoder steps wait on the others (measured: 7 s -> 59 s for 12 s on 2 shared cores).
        torch.set_num_threads(1)
        pipe = VisagePipeline(**tiny_random_components())
    else:
        pipe = _load_named_pipeline(model, dtype)
    try:
        return pipe.to(device=device, dtype=dtype)
    except (AssertionError, RuntimeError) as error:  # e.g. "Torch not compiled with CUDA enabled"
        raise CommandError(f"--device {device}: {_one_line(error)}") from None


def _load_named_pipeline(model: str, dtype):
    from . import hub
    from .pipeline import VisagePipeline

    local = Path(model).expanduser()
    looks_local = model.startswith(("/", ".", "~")) or model.count("/") > 1 or local.exists()
    if looks_local and not local.is_dir():
        raise CommandError(
            f"model folder not found: {model} (expected a folder with a saved pipeline or checkpoint, a Hub "
            "id, or tiny-random)"
        )
    if not looks_local and not hub.hub_reachable():
        raise CommandError(_offline_message(model))
    try:
        return VisagePipeline.from_pretrained(str(local) if looks_local else model, dtype=dtype)
    except Exception as error:
        if hub.is_network_error(error):
            raise CommandError(_offline_message(model)) from None
        raise CommandError(f"could not load the model {model}: {_one_line(error)}") from None


def run_generate(args: argparse.Namespace) -> int:
    from .export import export_generation
    from .video_clip import probe_clip

    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise CommandError(f"expected an output folder, got an existing file: {output}")
    if args.sample_rate is not None and args.sample_rate < 8000:
        raise CommandError(f"--sample-rate: expected at least 8000 Hz, got {args.sample_rate}")
    # Bad input fails before a model is loaded (which may mean a download).
    probe_clip(args.video, args.start, args.duration)
    pipe = _load_pipeline(args.model or _default_model(), args.device, args.dtype, args.quiet)
    result = pipe(
        args.video,
        args.azimuth,
        args.elevation,
        args.start,
        args.duration,
        guidance=args.guidance,
        guidance_scale=args.guidance_scale,
        direction_guidance_scale=args.direction_guidance_scale,
        top_k=args.top_k,
        temperature=args.temperature,
        seed=args.seed,
        equirect=True if args.equirect else None,
        progress=not args.quiet,
    )
    foa = result.audio[0]
    seconds = foa.shape[-1] / result.sample_rate
    direction = _describe_direction(args.azimuth, args.elevation)
    files = export_generation(
        output,
        foa,
        result.sample_rate,
        args.azimuth,
        args.elevation,
        video=args.video,
        video_start=args.start,
        equirect=result.equirect,
        output_sample_rate=args.sample_rate,
        title=f"generated FOA, camera az {args.azimuth:+.0f}°, el {args.elevation:+.0f}°",
    )
    kind = "360° video, field of view cropped at the camera" if result.equirect else "field-of-view video"
    print(
        f"generated {seconds:.3f} s ({foa.shape[-1]} samples at {result.sample_rate} Hz) for {args.video} "
        f"[{kind}], camera at {direction}, in {len(result.windows)} window(s)"
    )
    print(f"wrote {files.foa}: {FOA_DESCRIPTION}, float32, {files.sample_rate} Hz, world frame")
    print(f"wrote {files.binaural}: binaural stereo, {files.sample_rate} Hz, camera direction in front")
    frame = "world frame, 360° spherical metadata" if result.equirect else "camera direction in front"
    print(f"wrote {files.video}: H.264 + 4-channel AAC 48 kHz with SA3D (AmbiX), {frame}")
    print(f"wrote {files.energy_map}: energy map of the generated FOA")
    return 0


# ----------------------------------------------------------------------------- generate-batch


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


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
        "--directions",
        help="clip id -> camera direction: YT-Ambigen ambi.json, JSON or CSV (see 'visage evaluate --help'); "
        "overrides the directions stored with features",
    )
    parser.add_argument(
        "--clips", help="CSV of the clips to generate (an id, clip or file_path column, like test.csv)"
    )
    parser.add_argument("--split", default="test", help="split of a feature dataset (default test)")
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.add_argument(
        "--model",
        default=None,
        help=f"saved pipeline or checkpoint folder, Hub id, or 'tiny-random'; default ${MODEL_ENV} or "
        "jaeyeonkim99/visage",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="run seed; each clip's seed derives from it (default 0)"
    )
    parser.add_argument(
        "--batch-size", type=_positive_int, default=8, help="clips per generate call (default 8)"
    )
    parser.add_argument(
        "--sample-rate",
        type=int,
        default=16000,
        help="Hz of the WAV files (default 16000, as the paper scores)",
    )
    parser.add_argument("--guidance", choices=GUIDANCE_CHOICES, default=None, help="default: the model's")
    parser.add_argument("--guidance-scale", type=float, default=None, help="s in l_c + s(l_c - l_u)")
    parser.add_argument(
        "--direction-guidance-scale", type=float, default=None, help="direction term of --guidance dual"
    )
    parser.add_argument("--top-k", type=int, default=None, help="sample from the k likeliest codes")
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature")
    parser.add_argument("--greedy", action="store_true", help="take the likeliest code instead of sampling")
    parser.add_argument(
        "--mode", choices=["corrected", "original"], default=None, help="default: the model's"
    )
    parser.add_argument(
        "--equirect", action="store_true", help="the videos are 360° equirectangular (crop at the direction)"
    )
    parser.add_argument("--device", default=None, help="default: each process's accelerate device")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    parser.add_argument(
        "--overwrite", action="store_true", help="regenerate every clip, even over outputs of other settings"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run_generate_batch)


def run_generate_batch(args: argparse.Namespace) -> int:
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    from .batch_generation import BatchSettings, open_source, read_clip_list, run_batch_generation

    if args.sample_rate < 8000:
        raise CommandError(f"--sample-rate: expected at least 8000 Hz, got {args.sample_rate}")
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
    model = args.model or _default_model()
    settings = BatchSettings(
        model=model,
        seed=args.seed,
        sample_rate=args.sample_rate,
        guidance=args.guidance,
        guidance_scale=args.guidance_scale,
        direction_guidance_scale=args.direction_guidance_scale,
        do_sample=False if args.greedy else None,
        top_k=args.top_k,
        temperature=args.temperature,
        mode=args.mode,
        dtype=args.dtype,
        equirect=True if args.equirect else None,
    )

    def load_pipeline(device):
        quiet = args.quiet or not state.is_main_process
        return _load_pipeline(model, args.device or str(device), args.dtype, quiet)

    run_batch_generation(
        source,
        args.output,
        load_pipeline,
        settings,
        clip_ids=clip_ids,
        batch_size=args.batch_size,
        overwrite=args.overwrite,
        state=state,
        progress=not args.quiet,
    )
    return 0


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
    from . import hub
    from .convert_original import convert_original

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
        f"wrote {path}: VisageForFOA converted from {args.src}; use it with 'visage generate --model {path}'"
    )
    return 0


# ----------------------------------------------------------------------------- entry point

COMMANDS: list[Callable] = [
    add_encode_command,
    add_rotate_command,
    add_decode_command,
    add_energy_map_command,
    add_demo_spatial_command,
    add_evaluate_parser,
    add_generate_command,
    add_convert_original_command,
    add_generate_batch_command,
]


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(
        prog=PROG,
        description="visage-hf: video to first-order ambisonics (ViSAGe), and FOA tools. Angles are degrees: "
        "azimuth counter-clockwise from the front toward the left, elevation up.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for add_command in COMMANDS:
        add_command(subparsers)
    return parser


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


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
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
