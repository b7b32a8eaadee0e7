"""`visage generate`: one video -> FOA WAV, binaural preview, MP4 and energy-map picture."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .common import (
    FOA_DESCRIPTION,
    PROG,
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
    add_direction_arguments(parser, "camera")
    parser.add_argument("--start", type=start_seconds, default=0.0, help="seconds into the video (default 0)")
    parser.add_argument(
        "--duration", type=positive_seconds, default=None, help="seconds (default: to the end of the video)"
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


def load_pipeline(model: str, device: str | None, dtype_name: str, quiet: bool = False):
    import torch

    from ..pipelines.tiny import TINY_RANDOM, TINY_RANDOM_WARNING, tiny_random_components

    dtype = getattr(torch, dtype_name)
    if quiet:  # the libraries' own loading bars
        from diffusers.utils import logging as diffusers_logging
        from transformers.utils import logging as transformers_logging

        diffusers_logging.disable_progress_bar()
        transformers_logging.disable_progress_bar()
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if model == TINY_RANDOM:
        from ..pipelines.pipeline_visage import VisagePipeline

        print(f"{PROG}: warning: {TINY_RANDOM_WARNING}", file=sys.stderr)
        # Its layers are too small to gain from intra-op threads, and on a busy CPU extra threads make each of
        # its ~2000 decoder steps wait on the others.
        torch.set_num_threads(1)
        pipe = VisagePipeline(**tiny_random_components())
    else:
        pipe = _load_named_pipeline(model, dtype)
    try:
        return pipe.to(device=device, dtype=dtype)
    except (AssertionError, RuntimeError) as error:  # e.g. "Torch not compiled with CUDA enabled"
        raise CommandError(f"--device {device}: {one_line(error)}") from None


def _load_named_pipeline(model: str, dtype):
    from ..pipelines.pipeline_visage import VisagePipeline
    from ..utils import hub

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
        raise CommandError(f"could not load the model {model}: {one_line(error)}") from None


def run_generate(args: argparse.Namespace) -> int:
    from ..pipelines.export import export_generation
    from ..video.clip import probe_clip

    output = Path(args.output)
    if output.exists() and not output.is_dir():
        raise CommandError(f"expected an output folder, got an existing file: {output}")
    if args.sample_rate is not None and args.sample_rate < 8000:
        raise CommandError(f"--sample-rate: expected at least 8000 Hz, got {args.sample_rate}")
    # Bad input fails before a model is loaded (which may mean a download).
    probe_clip(args.video, args.start, args.duration)
    pipe = load_pipeline(args.model or default_model(), args.device, args.dtype, args.quiet)
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
    direction = describe_direction(args.azimuth, args.elevation)
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
