"""Features of prepared clips: CLIP frame tokens, the patch energy map and DAC codes (+ rotated codes).

For every clip folder made by `prepare.py` this writes ``<output>/<clip id>.npz`` with

* ``clip_features`` ``(T, 512)`` (float16 by default, like the original): CLIP ViT-B/32 image embeddings of
  the 4-fps field-of-view frames (`visage_hf.models.feature_extraction_visage.VisageFeatureExtractor`);
* ``energy_map`` ``(T, 49)`` float32: the patchwise visual energy map (FOA clips only);
* ``codes`` ``(frames, 36)`` int16, time-major, stream ``9·c + q`` (AmbiX W, Y, Z, X × 9 levels) from the 44.1 kHz
  DAC (`visage_hf.audio.codec.FOACodec`); mono clips get the 9 W-only streams;
* ``codes_yaw-90`` (and any ``--rotation-yaws``): codes of the sound field rotated by that yaw
  (`visage_hf.audio.foa.rotate`); -90 is the original's augmentation (``Y' = -X, X' = Y``);
* ``meta``: the clip's ids, split and camera direction (JSON), so the features stand without the media.

That is the layout `visage_hf.data.schema` reads (`build_shards.py` turns the files into Parquet shards).

Batched (``--batch-size`` clips per CLIP/DAC call) and parallel over processes or GPUs with accelerate: each
process takes its share of the clip ids (``Accelerator.split_between_processes``) and writes its own files::

    accelerate launch -m dataset_scripts.extract_features --media-dir data/media --output data/features

Resumable per clip (finished ``.npz`` files are skipped; each file is written atomically). Failures are listed
in ``<output>/extract_failures.csv`` and never stop the run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from tqdm.auto import tqdm

from dataset_scripts.clip_jobs import META_FILE, prepared_clip_dirs
from dataset_scripts.clips import resolve_splits
from dataset_scripts.jobs import (
    FailureLog,
    UsageError,
    atomic_file,
    parse_list_argument,
    remove_stale_temporaries,
    run_cli,
)
from visage_hf.audio.codec import DAC_44KHZ_REPO, FOACodec
from visage_hf.audio.foa import rotate
from visage_hf.audio.io import read_audio, resample
from visage_hf.data.schema import ORIGINAL_ROTATION_YAW, rotated_codes_column
from visage_hf.models.feature_extraction_visage import DEFAULT_CLIP_REPO, VisageFeatureExtractor
from visage_hf.video.io import read_frames

__all__ = [
    "ClipMedia",
    "ExtractOptions",
    "clip_features",
    "encode_mono",
    "features_path",
    "load_clip_media",
    "load_features",
    "main",
    "run_extract",
]

FAILURES_FILE = "extract_failures.csv"
FEATURE_SUFFIX = ".npz"
META_KEY = "meta"


@dataclass
class ExtractOptions:
    rotation_yaws: tuple[int, ...] = (ORIGINAL_ROTATION_YAW,)
    clip_dtype: str = "float16"
    batch_size: int = 8
    overwrite: bool = False

    def __post_init__(self):
        if self.clip_dtype not in ("float16", "float32"):
            raise UsageError(f"clip dtype must be float16 or float32, got {self.clip_dtype!r}")
        if self.batch_size < 1:
            raise UsageError(f"batch size must be >= 1, got {self.batch_size}")
        self.rotation_yaws = tuple(int(yaw) for yaw in self.rotation_yaws)


@dataclass
class ClipMedia:
    """A prepared clip, decoded: ``frames`` uint8 ``(T, H, W, 3)``, ``audio`` float32 ``(channels, samples)``."""

    clip_dir: Path
    meta: dict
    frames: np.ndarray
    audio: np.ndarray
    sample_rate: int

    @property
    def clip_id(self) -> str:
        return self.meta["clip_id"]


def features_path(output_dir: Path, clip_id: str) -> Path:
    return Path(output_dir) / f"{clip_id}{FEATURE_SUFFIX}"


def load_clip_media(clip_dir: str | Path, fps: float | None = None) -> ClipMedia:
    """Read a clip folder made by `prepare.py` (frames at the clip's own fps, checked channel count)."""
    clip_dir = Path(clip_dir)
    meta = json.loads((clip_dir / META_FILE).read_text())
    frames, _ = read_frames(clip_dir / meta["video_file"], fps=fps or meta["fps"])
    audio, sample_rate = read_audio(clip_dir / meta["audio_file"])
    if audio.shape[0] != meta["num_channels"]:
        raise ValueError(
            f"{clip_dir.name}: expected {meta['num_channels']} audio channels, got {audio.shape[0]}"
        )
    return ClipMedia(clip_dir, meta, frames, audio, sample_rate)


@torch.inference_mode()
def encode_mono(codec: FOACodec, mono: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono ``(batch, samples)`` -> DAC codes ``(batch, codebooks, frames)`` int64, ``frames = ceil(n_44k / hop)``.

    The mono path calls the codec's ``DacModel.encode`` directly (``FOACodec.encode`` takes 4 channels), with
    the same resampling and end padding as ``FOACodec.encode``.
    """
    mono = resample(np.asarray(mono, dtype=np.float32), sample_rate, codec.sample_rate)
    frames = math.ceil(mono.shape[-1] / codec.hop_length)
    padded = np.pad(mono, ((0, 0), (0, frames * codec.hop_length - mono.shape[-1])))
    signal = torch.from_numpy(padded).unsqueeze(1).to(codec.device, codec.dtype)
    codes = codec.model.encode(signal, n_quantizers=codec.num_codebooks, return_dict=True).audio_codes
    return codes[..., :frames].cpu().numpy()


def _time_major(codes: np.ndarray) -> np.ndarray:
    """``(batch, channels, codebooks, frames)`` or ``(batch, codebooks, frames)`` -> ``(batch, frames, streams)``
    int16 with stream ``codebooks·c + q`` (the original's channel-major ``(36, T)`` transposed)."""
    batch, frames = codes.shape[0], codes.shape[-1]
    return np.ascontiguousarray(codes.reshape(batch, -1, frames).transpose(0, 2, 1)).astype(np.int16)


def _degrees(value) -> float:
    return 0.0 if value is None else float(value)


def _groups(items: Sequence, key) -> list[list[int]]:
    groups: dict = defaultdict(list)
    for index, item in enumerate(items):
        groups[key(item)].append(index)
    return list(groups.values())


def clip_features(
    clips: Sequence[ClipMedia],
    extractor: VisageFeatureExtractor,
    codec: FOACodec,
    options: ExtractOptions,
) -> list[dict[str, np.ndarray]]:
    """Feature arrays of each clip (see the module docstring), computed in batches of equal shapes."""
    results: list[dict[str, np.ndarray]] = [{} for _ in clips]
    for indices in _groups(clips, lambda clip: clip.frames.shape):
        frames = np.stack([clips[i].frames for i in indices])
        # The extractor's direction output is not stored (build_shards derives it from the meta); mono clips
        # have no direction, so any value does.
        azimuths = [_degrees(clips[i].meta.get("azimuth")) for i in indices]
        elevations = [_degrees(clips[i].meta.get("elevation")) for i in indices]
        inputs = extractor(frames, azimuth=azimuths, elevation=elevations)
        for row, i in enumerate(indices):
            results[i]["clip_features"] = (
                inputs["clip_features"][row].cpu().numpy().astype(options.clip_dtype)
            )
            if clips[i].meta["num_channels"] == 4:
                results[i]["energy_map"] = inputs["energy_map"][row].cpu().numpy().astype(np.float32)
    for indices in _groups(clips, lambda clip: (clip.audio.shape, clip.sample_rate)):
        audio = np.stack([clips[i].audio for i in indices])
        sample_rate = clips[indices[0]].sample_rate
        if audio.shape[1] == 1:
            codes = {None: encode_mono(codec, audio[:, 0], sample_rate)}
        else:
            codes = {None: codec.encode(audio, sample_rate).cpu().numpy()}
            for yaw in options.rotation_yaws:
                codes[yaw] = codec.encode(rotate(audio, yaw=yaw), sample_rate).cpu().numpy()
        for key, values in codes.items():
            name = "codes" if key is None else rotated_codes_column(key)
            for row, i in enumerate(indices):
                results[i][name] = _time_major(values[row : row + 1])[0]
    return results


def _feature_meta(clip: ClipMedia, settings: dict) -> dict:
    keys = (
        "clip_id",
        "video_id",
        "youtube_id",
        "start_second",
        "split",
        "num_channels",
        "elevation_index",
        "azimuth_index",
        "azimuth",
        "elevation",
        "label",
    )
    return {**{key: clip.meta.get(key) for key in keys}, "features": settings}


def save_features(path: Path, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write one clip's ``.npz`` atomically (``meta`` as a JSON string array: no pickle needed to read it)."""
    with atomic_file(path) as temporary, open(temporary, "wb") as handle:
        np.savez(handle, **arrays, **{META_KEY: np.array(json.dumps(meta, sort_keys=True))})
    return path


def load_features(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a features ``.npz``: ``(arrays, meta)``."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files if key != META_KEY}
        meta = json.loads(str(data[META_KEY]))
    return arrays, meta


@dataclass
class ExtractReport:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: FailureLog = field(default_factory=FailureLog)

    def summary(self) -> str:
        return (
            f"extracted {len(self.done)} clips, {len(self.skipped)} already done, {self.failures.summary()}"
        )


def _process_batch(batch: list[Path], output_dir: Path, extractor, codec, options, settings, report) -> None:
    """Features of one batch; a failing batch is redone clip by clip so only the bad clip is lost."""
    clips = []
    for clip_dir in batch:
        try:
            clips.append(load_clip_media(clip_dir))
        except Exception as error:
            report.failures.add(clip_dir.name, "read", error)
    try:
        pairs = list(zip(clips, clip_features(clips, extractor, codec, options))) if clips else []
    except Exception as error:
        if len(clips) == 1:
            report.failures.add(clips[0].clip_id, "features", error)
            return
        pairs = []
        for clip in clips:
            try:
                pairs.append((clip, clip_features([clip], extractor, codec, options)[0]))
            except Exception as clip_error:
                report.failures.add(clip.clip_id, "features", clip_error)
    for clip, arrays in pairs:
        try:
            save_features(features_path(output_dir, clip.clip_id), arrays, _feature_meta(clip, settings))
            report.done.append(clip.clip_id)
        except Exception as error:
            report.failures.add(clip.clip_id, "write", error)


def run_extract(
    clip_dirs: Sequence[Path],
    output_dir: str | Path,
    extractor: VisageFeatureExtractor,
    codec: FOACodec,
    options: ExtractOptions | None = None,
    settings: dict | None = None,
    progress: bool = True,
) -> ExtractReport:
    """Extract features of ``clip_dirs`` into ``output_dir`` (skipping finished clips), in batches."""
    options = options or ExtractOptions()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    report = ExtractReport()
    todo = []
    for clip_dir in clip_dirs:
        if not options.overwrite and features_path(output_dir, clip_dir.name).is_file():
            report.skipped.append(clip_dir.name)
        else:
            todo.append(Path(clip_dir))
    settings = settings or {}
    bar = tqdm(total=len(todo), desc="features", unit="clip", disable=not progress)
    try:
        for start in range(0, len(todo), options.batch_size):
            batch = todo[start : start + options.batch_size]
            _process_batch(batch, output_dir, extractor, codec, options, settings, report)
            bar.update(len(batch))
            bar.set_postfix(failed=len(report.failures), refresh=False)
    finally:
        bar.close()
    return report


# ------------------------------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dataset_scripts.extract_features",
        description="CLIP features, energy maps and DAC codes (+ rotated codes) of prepared clips, one .npz per "
        "clip. Runs on every process/GPU of `accelerate launch`. Resumable.",
    )
    parser.add_argument("--media-dir", required=True, help="prepare.py output")
    parser.add_argument("--output", required=True, help="folder for <clip id>.npz")
    parser.add_argument("--clip-model", default=DEFAULT_CLIP_REPO, help="CLIP Hub id or folder")
    parser.add_argument("--codec", default=DAC_44KHZ_REPO, help="DAC Hub id or folder")
    parser.add_argument("--codec-revision", default=None, help="DAC revision (default: the pinned one)")
    parser.add_argument(
        "--rotation-yaws",
        default=str(ORIGINAL_ROTATION_YAW),
        help="comma-separated yaws of rotated codes for FOA clips (default -90, the original's; '' for none). "
        "Write --rotation-yaws=-90 so the value is not read as an option.",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="clips per CLIP/DAC call")
    parser.add_argument("--features-mode", default="corrected", choices=("corrected", "original", "default"))
    parser.add_argument(
        "--clip-dtype", default="float16", choices=("float16", "float32"), help="stored dtype"
    )
    parser.add_argument(
        "--compute-dtype",
        default="auto",
        choices=("auto", "float32", "float16", "bfloat16"),
        help="CLIP compute dtype (auto: float16 on GPU like the original, float32 on CPU); DAC runs in float32",
    )
    parser.add_argument("--splits", default=None, help="only these splits (comma-separated)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N clips")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def _select_clips(media_dir: Path, splits: list[str] | None, limit: int | None) -> list[Path]:
    if not media_dir.is_dir():
        raise FileNotFoundError(f"--media-dir not found: {media_dir}")
    clip_dirs = prepared_clip_dirs(media_dir)
    if splits:
        clip_dirs = [d for d in clip_dirs if json.loads((d / META_FILE).read_text()).get("split") in splits]
    return clip_dirs[:limit] if limit else clip_dirs


def main(argv: Sequence[str] | None = None) -> int:
    from accelerate import Accelerator

    args = build_parser().parse_args(argv)
    try:
        yaws = parse_list_argument(args.rotation_yaws, int)
        splits = resolve_splits(parse_list_argument(args.splits)) if args.splits else None
    except ValueError as error:
        raise UsageError(str(error)) from None
    options = ExtractOptions(tuple(yaws), args.clip_dtype, args.batch_size, args.overwrite)
    output_dir = Path(args.output)
    clip_dirs = _select_clips(Path(args.media_dir), splits, args.limit)

    accelerator = Accelerator()
    device = accelerator.device
    if args.compute_dtype == "auto":
        compute_dtype = torch.float16 if device.type == "cuda" else torch.float32
    else:
        compute_dtype = getattr(torch, args.compute_dtype)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(output_dir)
    accelerator.wait_for_everyone()
    extractor = VisageFeatureExtractor.from_pretrained(
        args.clip_model, device=device, dtype=compute_dtype, mode=args.features_mode
    )
    codec = FOACodec.from_pretrained(args.codec, revision=args.codec_revision, device=device)
    settings = {
        "clip_model": args.clip_model,
        "codec": args.codec,
        "features_mode": args.features_mode,
        "compute_dtype": str(compute_dtype).removeprefix("torch."),
        "rotation_yaws": list(options.rotation_yaws),
    }
    with accelerator.split_between_processes(clip_dirs) as mine:
        report = run_extract(
            mine,
            output_dir,
            extractor,
            codec,
            options,
            settings,
            progress=not args.no_progress and accelerator.is_local_main_process,
        )
    rank_log = output_dir / f".{FAILURES_FILE}.rank{accelerator.process_index}"
    report.failures.write_csv(rank_log)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        merged = FailureLog()
        for index in range(accelerator.num_processes):
            path = output_dir / f".{FAILURES_FILE}.rank{index}"
            merged.extend(FailureLog.read_csv(path))
            path.unlink(missing_ok=True)
        failures_path = merged.write_csv(output_dir / FAILURES_FILE)
        report.failures = merged
        print(
            report.summary()
            if accelerator.num_processes == 1
            else f"{accelerator.num_processes} processes; {merged.summary()}"
        )
        if failures_path:
            print(f"failures listed in {failures_path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
