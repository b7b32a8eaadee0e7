"""`visage encode | rotate | decode | energy-map | demo-spatial`: FOA tools that need no model."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import (
    AUDIO_OUTPUT_HELP,
    FOA_DESCRIPTION,
    CommandError,
    add_direction_arguments,
    check_audio_output,
    describe_direction,
    read_foa,
    read_mono,
)


def _pattern(text: str):
    """``--pattern``: a name (cardioid, figure8, ...) or a number in [0, 1]."""
    from ..audio.foa import PATTERNS

    if text in PATTERNS:
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number in [0, 1] or one of {', '.join(sorted(PATTERNS))}, got {text!r}"
        ) from None


# ----------------------------------------------------------------------------- encode


def add_encode_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "encode",
        help="encode a mono file as a plane wave into FOA",
        description="Encode a mono sound file at a direction into " + FOA_DESCRIPTION + ".",
    )
    parser.add_argument("input", help="mono audio file")
    add_direction_arguments(parser, "source")
    parser.add_argument("-o", "--output", required=True, help="FOA " + AUDIO_OUTPUT_HELP)
    parser.set_defaults(handler=run_encode)


def run_encode(args: argparse.Namespace) -> int:
    from ..audio.foa import encode
    from ..audio.io import write_audio
    from ..directions import wrap_azimuth

    check_audio_output(args.output)

    mono, sample_rate = read_mono(args.input)
    foa = encode(mono, args.azimuth, args.elevation)
    path = write_audio(args.output, foa, sample_rate)
    print(
        f"wrote {path}: {FOA_DESCRIPTION}, {sample_rate} Hz, source at {describe_direction(wrap_azimuth(args.azimuth), args.elevation)}"
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
    parser.add_argument("-o", "--output", required=True, help="FOA " + AUDIO_OUTPUT_HELP)
    parser.set_defaults(handler=run_rotate)


def run_rotate(args: argparse.Namespace) -> int:
    from ..audio.foa import rotate
    from ..audio.io import write_audio

    check_audio_output(args.output)

    foa, sample_rate = read_foa(args.input)
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
    add_direction_arguments(parser, "look")
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
    parser.add_argument("-o", "--output", required=True, help=AUDIO_OUTPUT_HELP)
    parser.set_defaults(handler=run_decode)


def run_decode(args: argparse.Namespace) -> int:
    from ..audio.foa import decode_stereo, virtual_microphone
    from ..audio.io import write_audio

    check_audio_output(args.output)

    foa, sample_rate = read_foa(args.input)
    if args.mono:
        audio = virtual_microphone(foa, args.azimuth, args.elevation, args.pattern)
    else:
        audio = decode_stereo(foa, args.azimuth, args.elevation, args.spread, args.pattern)
    path = write_audio(args.output, audio, sample_rate)
    layout = "mono" if args.mono else "stereo (left, right)"
    print(
        f"wrote {path}: {layout}, {args.pattern} pattern looking at {describe_direction(args.azimuth, args.elevation)}"
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
    parser.add_argument(
        "input", help=f"{FOA_DESCRIPTION} file, or a video with a 4-channel FOA track (e.g. spatial.mp4)"
    )
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

    from ..audio.foa import direction_from_energy_map, energy_map
    from ..video.plotting import plot_energy_map

    foa, sample_rate = read_foa(args.input)
    maps = energy_map(foa, sample_rate, args.window, args.resolution, args.normalization)
    title = Path(args.input).name + ("" if args.window is None else f" ({args.window:g} s windows)")
    path = plot_energy_map(maps, args.output, title=title, window_seconds=args.window)
    azimuths, elevations = (np.atleast_1d(value) for value in direction_from_energy_map(maps))
    print(f"wrote {path}: {len(azimuths)} map(s)")
    for index, (azimuth, elevation) in enumerate(zip(azimuths, elevations)):
        label = "loudest direction" if args.window is None else f"window {index}"
        found = describe_direction(azimuth, elevation) if np.isfinite(azimuth) else "none (silent window)"
        print(f"{label}: {found}")
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
    add_direction_arguments(parser, "source", azimuth=60.0)
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
    from ..audio.foa import direction_from_energy_map, direction_from_intensity, encode, energy_map
    from ..audio.io import write_audio
    from ..directions import angular_distance, wrap_azimuth
    from ..video.plotting import plot_energy_map

    azimuth = wrap_azimuth(args.azimuth)
    foa = encode(_tone(args.seconds, args.sample_rate), azimuth, args.elevation)
    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise CommandError(f"expected an output folder, got an existing file: {output}")
    foa_path = write_audio(output / "foa.wav", foa, args.sample_rate)
    maps = energy_map(foa)
    map_path = plot_energy_map(
        maps, output / "energy_map.png", title=f"1 kHz tone at {describe_direction(azimuth, args.elevation)}"
    )
    found = direction_from_energy_map(maps)
    intensity = direction_from_intensity(foa)
    print(f"encoded a 1 kHz tone at {describe_direction(azimuth, args.elevation)}")
    print(f"wrote {foa_path} ({FOA_DESCRIPTION}, {args.sample_rate} Hz) and {map_path}")
    for method, (az, el) in (("energy map", found), ("intensity vector", intensity)):
        error = angular_distance(az, el, azimuth, args.elevation)
        print(f"direction found by {method}: {describe_direction(az, el)} (error {error:.2f}°)")
    return 0
