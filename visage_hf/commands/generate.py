"""`visage generate`: one video -> FOA WAV, binaural preview, MP4 and energy-map picture."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .common import (
    FOA_DESCRIPTION,
    CommandError,
    add_direction_arguments,
    describe_direction,
    one_line,
    positive_seconds,
    start_seconds,
)

# ----------------------------------------------------------------------------- generate

MODEL_ENV = "VISAGE_MODEL"


def default_model() -> str:
    from ..pipelines.pipeline_visage import DEFAULT_MODEL_REPO

    return os.environ.get(MODEL_ENV) or DEFAULT_MODEL_REPO


# The guidance modes of `visage_hf.models.configuration_visage.GUIDANCE_MODES`, written out so `--help` does not
# import transformers; tests check that the two agree.
GUIDANCE_CHOICES = ("joint", "dual", "visual", "direction", "none")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --clip, --codec, --device, --dtype: the options of `visage generate` and `generate-batch` that
    load the pipeline (one loader: :func:`visage_hf.pipelines.loading.load_pipeline`)."""
    parser.add_argument(
        "--model",
        default=None,
        help="saved pipeline folder (pipe.save_pretrained), model checkpoint folder (trained <output_dir>/model, "
        "'visage convert-original' output), Hub id, or 'tiny-random' (noise, for checking the plumbing); "
        f"default ${MODEL_ENV} or the original release jaeyeonkim99/visage, converted on load",
    )
    parser.add_argument(
        "--clip",
        default=None,
        help="CLIP folder (or Hub id) for a model checkpoint folder, which holds the ViSAGe model only "
        "(default openai/clip-vit-base-patch32 from the Hub or its cache); not with a saved pipeline",
    )
    parser.add_argument(
        "--codec",
        default=None,
        help="DAC codec folder (or Hub id) for a model checkpoint folder (default descript/dac_44khz from the "
        "Hub or its cache); not with a saved pipeline",
    )
    parser.add_argument(
        "--dtype",
        choices=["float32", "float16", "bfloat16", "int8"],
        default="float32",
        help="precision of the models; int8: float32 with the ViSAGe decoder's step weights in int8 (the fastest "
        "generation on CPU; codes deviate slightly from float32, see the README's Precision section)",
    )


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """Guidance, sampling and mode options, shared (names and defaults) by `generate` and `generate-batch`."""
    parser.add_argument(
        "--guidance",
        choices=GUIDANCE_CHOICES,
        default=None,
        help="classifier-free guidance: joint (the release: video and direction nulled together), dual (separate "
        "visual and direction scales), visual, direction, none (default: the model's, joint for the release)",
    )
    parser.add_argument(
        "--guidance-scale",
        type=float,
        default=None,
        help="s in l_c + s(l_c - l_u); 0 is the conditional model alone (default: the model's, 2.5)",
    )
    parser.add_argument(
        "--direction-guidance-scale",
        type=float,
        default=None,
        help="the direction term's scale, with --guidance dual or direction (default: the model's, 2.5)",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=None,
        help="sample from the k likeliest codes; 0 = no limit, all codes (default: the model's, 256)",
    )
    parser.add_argument(
        "--temperature", type=float, default=None, help="sampling temperature > 0 (default: the model's, 1)"
    )
    parser.add_argument(
        "--greedy",
        action="store_true",
        help="take the likeliest code at every step instead of sampling (not with --top-k/--temperature)",
    )
    parser.add_argument(
        "--mode",
        choices=["corrected", "original"],
        default=None,
        help="'original' reproduces the original code's quirks (default: the model's; original for the release)",
    )
    parser.add_argument(
        "--equirect",
        action="store_true",
        help="the video is 360° equirectangular: crop the field of view at the direction (auto-detected from "
        "2:1 frames with spherical metadata)",
    )


def check_sampling_arguments(args: argparse.Namespace) -> None:
    """Refuse option combinations that cannot apply, saying why (instead of silently ignoring an option)."""
    if args.guidance == "none":
        given = [
            name for name in ("guidance_scale", "direction_guidance_scale") if getattr(args, name) is not None
        ]
        if given:
            options = " and ".join("--" + name.replace("_", "-") for name in given)
            raise CommandError(f"{options}: no guidance scale applies with --guidance none")
    if args.direction_guidance_scale is not None and args.guidance in ("joint", "visual"):
        raise CommandError(
            f"--direction-guidance-scale applies only to --guidance dual or direction (got --guidance "
            f"{args.guidance}); use --guidance-scale"
        )
    if args.guidance_scale is not None and args.guidance == "direction":
        raise CommandError(
            "--guidance-scale does not apply to --guidance direction, whose scale is --direction-guidance-scale"
        )
    if args.greedy:
        given = [name for name in ("top_k", "temperature") if getattr(args, name) is not None]
        if given:
            options = " and ".join("--" + name.replace("_", "-") for name in given)
            raise CommandError(f"{options}: sampling options do not apply with --greedy")
    if args.temperature is not None and not args.temperature > 0:
        raise CommandError(
            f"--temperature: expected > 0, got {args.temperature:g}; for the likeliest code use --greedy"
        )
    if args.top_k is not None and args.top_k < 0:
        raise CommandError(f"--top-k: expected >= 0 (0 = no limit), got {args.top_k}")


def add_generate_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="generate spatial audio (FOA) for a video seen from a camera direction",
        description="Generate first-order ambisonics for VIDEO seen from --azimuth/--elevation, any length "
        "(clips longer than the model's 5 s window are generated window by window). Writes into OUT: "
        "foa_ambix.wav (" + FOA_DESCRIPTION + ", float32, 44.1 kHz unless --sample-rate; world frame), "
        "binaural.wav (headphone preview, turned so the camera direction is in front), spatial.mp4 (the "
        "video segment with the FOA as a 4-channel AAC track + SA3D spatial-audio box; 360° input keeps the "
        "world frame and gets spherical metadata), spatial_360.mp4 (field-of-view input: the clip painted on a 360° "
        "sphere, for head-tracked playback on YouTube) and energy_map.png (a silent result is written too, and said: its "
        "energy map marks no loudest direction). Files appear only when all are written; "
        "earlier outputs in OUT are replaced only with --overwrite. 'visage generate-batch' shares the model "
        "and sampling options.",
    )
    parser.add_argument("video", help="video file (a field-of-view clip, or a 360° equirectangular video)")
    add_direction_arguments(parser, "camera")
    parser.set_defaults(azimuth=None, elevation=None)  # None = not given (0 unless --camera-path)
    parser.add_argument(
        "--camera-path",
        metavar="CSV",
        help="a moving camera instead of --azimuth/--elevation: a CSV with the columns time,azimuth,elevation "
        "(seconds in the video's timeline, degrees), interpolated along the great circle; it must span the "
        "clip. The released weights saw one direction per 5-s clip: smooth paths work best",
    )
    parser.add_argument("--start", type=start_seconds, default=0.0, help="seconds into the video (default 0)")
    parser.add_argument(
        "--duration", type=positive_seconds, default=None, help="seconds (default: to the end of the video)"
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="random seed (same seed, same audio; default: a fresh random draw — generate-batch defaults to 0 "
        "because every clip's seed derives from it)",
    )
    add_sampling_arguments(parser)
    parser.add_argument(
        "--sample-rate",
        type=int,
        default=None,
        help="Hz of the WAV files (default: the model's 44100; generate-batch defaults to 16000, the rate the "
        "paper scores at)",
    )
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: cuda if available)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace the outputs of an earlier run in OUT"
    )
    parser.add_argument("-o", "--output", required=True, help="output folder")
    parser.set_defaults(handler=run_generate)


def load_pipeline(
    model: str,
    device: str | None,
    dtype_name: str,
    quiet: bool = False,
    clip: str | None = None,
    codec: str | None = None,
):
    """:func:`visage_hf.pipelines.loading.load_pipeline` with its errors as one-line command errors."""
    from ..pipelines.loading import load_pipeline as load

    try:
        return load(model, device, dtype_name, quiet, clip=clip, codec=codec)
    except ValueError as error:
        raise CommandError(one_line(error)) from None


def _check_output_folder(output: Path, overwrite: bool) -> None:
    """The files `generate` writes are refused when already there, unless --overwrite."""
    from ..pipelines.export import OUTPUT_FILES

    if output.exists() and not output.is_dir():
        raise CommandError(f"expected an output folder, got an existing file: {output}")
    existing = [name for name in OUTPUT_FILES.values() if (output / name).exists()]
    if existing and not overwrite:
        raise CommandError(
            f"{output} already holds {', '.join(existing)} from an earlier run: pass --overwrite to replace "
            "them, or choose another output folder"
        )


def shared_generation_settings(args: argparse.Namespace) -> dict:
    """The model and sampling options `generate` and `generate-batch` share, as keyword arguments."""
    return {
        "guidance": args.guidance,
        "guidance_scale": args.guidance_scale,
        "direction_guidance_scale": args.direction_guidance_scale,
        "do_sample": False if args.greedy else None,
        "top_k": args.top_k,
        "temperature": args.temperature,
        "mode": args.mode,
        "equirect": True if args.equirect else None,
    }


def _camera_path(args: argparse.Namespace):
    """The camera of the call: --camera-path, or the fixed --azimuth/--elevation (refused together)."""
    from ..video.camera_path import CameraPath

    if args.camera_path is None:
        return CameraPath.constant(args.azimuth or 0.0, args.elevation or 0.0)
    if args.azimuth is not None or args.elevation is not None:
        raise CommandError("--camera-path replaces --azimuth/--elevation: pass one or the other")
    path = CameraPath.from_csv(args.camera_path)
    if args.duration is not None:
        path.check_covers(args.start, args.start + args.duration)
    return path


def _describe_path(path) -> str:
    if path.is_constant:
        return describe_direction(float(path.azimuth[0]), float(path.elevation[0]))
    return (
        f"a path of {len(path.times)} keyframes from {describe_direction(path.azimuth[0], path.elevation[0])} "
        f"to {describe_direction(path.azimuth[-1], path.elevation[-1])}"
    )


def run_generate(args: argparse.Namespace) -> int:
    from ..pipelines.export import export_generation
    from ..video.clip import probe_clip

    output = Path(args.output)
    _check_output_folder(output, args.overwrite)
    if args.sample_rate is not None and args.sample_rate < 8000:
        raise CommandError(f"--sample-rate: expected at least 8000 Hz, got {args.sample_rate}")
    check_sampling_arguments(args)
    # Bad input fails before a model is loaded (which may mean a download).
    probe_clip(args.video, args.start, args.duration)
    path = _camera_path(args)
    pipe = load_pipeline(
        args.model or default_model(), args.device, args.dtype, args.quiet, args.clip, args.codec
    )
    result = pipe(
        args.video,
        start=args.start,
        duration=args.duration,
        camera_path=path,
        seed=args.seed,
        progress=not args.quiet,
        **shared_generation_settings(args),
    )
    foa = result.audio[0]
    seconds = foa.shape[-1] / result.sample_rate
    direction = _describe_path(path)
    files = export_generation(
        output,
        foa,
        result.sample_rate,
        camera_path=path,
        video=args.video,
        video_start=args.start,
        equirect=result.equirect,
        output_sample_rate=args.sample_rate,
        title=f"generated FOA, camera {direction}",
    )
    kind = "360° video, field of view cropped at the camera" if result.equirect else "field-of-view video"
    rate = files.sample_rate
    resampled = "" if rate == result.sample_rate else f", resampled from the model's {result.sample_rate} Hz"
    print(
        f"generated {seconds:.3f} s ({round(seconds * rate)} samples at {rate} Hz{resampled}) for {args.video} "
        f"[{kind}], camera at {direction}, in {len(result.windows)} window(s)"
    )
    print(f"wrote {files.foa}: {FOA_DESCRIPTION}, float32, {rate} Hz, world frame")
    print(f"wrote {files.binaural}: binaural stereo, {rate} Hz, camera direction in front")
    frame = "world frame, 360° spherical metadata" if result.equirect else "camera direction in front"
    print(f"wrote {files.video}: H.264 + 4-channel AAC 48 kHz with SA3D (AmbiX), {frame}")
    if files.video_360 is not None:
        print(
            f"wrote {files.video_360}: the clip painted on a 360° sphere at the camera direction, world-frame FOA, "
            "spherical metadata: upload this one to YouTube for head-tracked spatial audio"
        )
    if files.silent:
        print(
            f"wrote {files.energy_map}: energy map of the generated FOA, which is silent (every sample zero): no "
            "loudest direction to mark (○ = camera)"
        )
    else:
        print(
            f"wrote {files.energy_map}: energy map of the generated FOA (× = loudest direction, ○ = camera)"
        )
    return 0
