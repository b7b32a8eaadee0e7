"""Cut clips out of downloaded (or your own) videos: field-of-view frames at 4 fps + AmbiX FOA (or mono) per clip.

For YT-Ambigen (default) each clip ``<youtube id>_<start>`` of the split lists whose video was downloaded
(`download.py`) becomes ``<output>/<clip id>/``:

* ``video.mp4``: the 4-fps frames of seconds ``[start, start + 5)``, cropped to a 90° field of view (224x224)
  looking at the clip's camera direction from ``ambi.json`` (`visage_hf.video.equirect.fov_crop`; ``--mode
  original`` samples like the original ``project()``, the default is the corrected projection). The 360°
  frames are first scaled to 896x448 like the original (``--equirect-width``);
* ``foa.flac``: the clip's ambisonic track, checked to have 4 channels, kept at its own rate (YouTube: 48 kHz)
  as 24-bit FLAC. YouTube's ambisonic track is AmbiX (ACN/SN3D) already, so no channel change is applied;
  ``meta.json`` records a W-dominance plausibility check of the order (`curation.channel_order_check`);
* ``meta.json``: ids, split, direction (indices and degrees, public convention), projection settings.

The same code prepares VGGSound (``--vggsound``: mono sound, frames with a 224 short side), your own 360°
videos (``--own-videos``, direction ``auto`` from the audio or fixed) and your own field-of-view clips
(``--own-fov``); see `own_data.py`. Sources are decoded once each (all their clips in one audio pass).

Resumable and idempotent: a clip folder appears in one rename when complete, finished clips are skipped, and
temporaries of a killed run are removed on the next start. Failures never stop the run; they are listed in
``<output>/prepare_failures.csv`` and summarised.

Example::

    python -m dataset_scripts.prepare --raw-dir data/raw --output data/media
    python -m dataset_scripts.prepare --own-videos my360/ --direction auto --curate --output data/my_media
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from tqdm.auto import tqdm

from dataset_scripts.clip_jobs import AUDIO_FILES, META_FILE, VIDEO_FILE, ClipJob, is_prepared
from dataset_scripts.clips import (
    DEFAULT_DIRECTIONS_URL,
    load_direction_table,
    parse_clip_id,
    read_split_lists,
    resolve_splits,
)
from dataset_scripts.curation import CurationThresholds, channel_order_check, crop_direction, curate_clip
from dataset_scripts.jobs import (
    FailureLog,
    UsageError,
    atomic_write_json,
    describe_error,
    parse_list_argument,
    remove_stale_temporaries,
    run_cli,
    staged_directory,
)
from dataset_scripts.media_io import audio_stream_info, decode_audio_windows, select_mono_view, stereo_layout
from visage_hf.audio.foa import fuma_to_ambix
from visage_hf.audio.io import write_audio
from visage_hf.directions import indices_to_direction, wrap_azimuth
from visage_hf.video.equirect import fov_crop
from visage_hf.video.io import probe, read_frames, write_video
from visage_hf.video.sampling import FRAME_SAMPLINGS

__all__ = [
    "ClipFiltered",
    "PrepareOptions",
    "PrepareReport",
    "main",
    "prepare_clip",
    "prepare_source",
    "run_prepare",
    "yt_ambigen_jobs",
]

FAILURES_FILE = "prepare_failures.csv"
FILTERED_FILE = "prepare_filtered.csv"
ORIGINAL_EQUIRECT_WIDTH = 896  # the original resizes every 360° frame to 896x448 before cropping
# A clip's audio may end this fraction of the clip early (codec frame rounding) and is then zero-padded.
_AUDIO_SHORTFALL = 0.01


class ClipFiltered(Exception):
    """The clip was rejected by the curation filters (not an error)."""


@dataclass
class PrepareOptions:
    """How clips are made (see the module docstring and ``--help``)."""

    fps: float = 4.0
    fov: float = 90.0
    fov_size: int = 224
    mode: str = "corrected"
    frame_sampling: str = "ffmpeg"
    equirect_width: int | None = ORIGINAL_EQUIRECT_WIDTH
    stereo_layout: str = "auto"
    short_side: int = 224
    channel_order: str = "ambix"
    curate: bool = False
    thresholds: CurationThresholds = field(default_factory=CurationThresholds)
    overwrite: bool = False

    def __post_init__(self):
        if self.mode not in ("corrected", "original"):
            raise UsageError(f"--mode must be 'corrected' or 'original', got {self.mode!r}")
        if self.frame_sampling not in FRAME_SAMPLINGS:
            raise UsageError(
                f"--frame-sampling must be one of {FRAME_SAMPLINGS}, got {self.frame_sampling!r}"
            )
        if self.channel_order not in ("ambix", "fuma"):
            raise UsageError(f"--channel-order must be 'ambix' or 'fuma', got {self.channel_order!r}")
        if not (self.fps > 0 and 0 < self.fov < 180 and self.fov_size >= 8 and self.short_side >= 8):
            raise UsageError(
                f"expected fps > 0, 0 < fov < 180, sizes >= 8; got fps={self.fps}, fov={self.fov}, "
                f"fov_size={self.fov_size}, short_side={self.short_side}"
            )


@dataclass
class SourceResult:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    filtered: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class PrepareReport:
    """What a run did: clip ids prepared / already there, and the failure and curation logs."""

    done: list[str]
    skipped: list[str]
    failures: FailureLog
    filtered: FailureLog

    def summary(self) -> str:
        lines = [
            f"prepared {len(self.done)} clips, {len(self.skipped)} already done, "
            f"{len(self.filtered)} rejected by curation, {self.failures.summary()}"
        ]
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------ one clip
def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _read_size(
    job: ClipJob, options: PrepareOptions, width: int, height: int
) -> tuple[tuple[int, int] | None, str]:
    """FFmpeg scaling target ``(width, height)`` for reading the source, and the stereo layout."""
    if job.kind == "mono":
        scale = options.short_side / min(width, height)
        return (_even(width * scale), _even(height * scale)), "mono"
    if job.kind == "fov":
        return None, "mono"
    layout = stereo_layout(width, height, options.stereo_layout)
    if options.equirect_width is None:
        return None, layout
    w = options.equirect_width
    size = {"mono": (w, w // 2), "top-bottom": (w, w), "left-right": (2 * w, w // 2)}[layout]
    return size, layout


def _fit_audio(job: ClipJob, audio: np.ndarray, sample_rate: int) -> np.ndarray:
    wanted = round(job.seconds * sample_rate)
    if job.min_seconds is not None:
        if audio.shape[1] < round(job.min_seconds * sample_rate):
            raise ValueError(
                f"audio has {audio.shape[1] / sample_rate:.2f} s from {job.start:g} s, fewer than the "
                f"{job.min_seconds:g} s kept"
            )
        return audio[:, :wanted]
    if audio.shape[1] < wanted * (1 - _AUDIO_SHORTFALL):
        raise ValueError(
            f"audio ends {audio.shape[1] / sample_rate:.2f} s into the clip, before its {job.seconds:g} s "
            f"(source {job.audio_path.name})"
        )
    return np.pad(audio, ((0, 0), (0, wanted - audio.shape[1])))[:, :wanted]


def _ambisonic(job: ClipJob, audio: np.ndarray, options: PrepareOptions, layout: str | None) -> np.ndarray:
    if audio.shape[0] != 4:
        raise ValueError(
            f"expected 4-channel ambisonic audio (W, Y, Z, X), got {audio.shape[0]} channel(s) "
            f"(layout {layout!r}) in {job.audio_path.name}"
        )
    return fuma_to_ambix(audio) if options.channel_order == "fuma" else audio


def _direction(job: ClipJob, foa: np.ndarray | None, curation) -> tuple[float | None, float | None, str]:
    """Camera ``(azimuth, elevation, source)`` in public degrees."""
    if job.kind == "mono":
        return None, None, "none"
    if job.elevation_index is not None:
        azimuth, elevation = indices_to_direction(job.elevation_index, job.azimuth_index)
        return float(azimuth), float(elevation), "ambi.json"
    if job.auto_direction:
        if curation is not None:
            azimuth, elevation = curation.azimuth, curation.elevation
        else:
            azimuth, elevation = crop_direction(foa)
        if not (math.isfinite(azimuth) and math.isfinite(elevation)):
            raise ValueError("silent audio: no direction to crop toward (--direction auto)")
        return float(azimuth), float(elevation), "auto"
    if job.azimuth is None or job.elevation is None:
        raise ValueError("no camera direction for this clip")
    return float(wrap_azimuth(job.azimuth)), float(job.elevation), "given"


def prepare_clip(
    job: ClipJob,
    audio: np.ndarray,
    sample_rate: int,
    output_dir: Path,
    options: PrepareOptions,
    layout: str | None = None,
    video_info=None,
) -> dict:
    """Make one clip folder from its decoded audio window; returns its ``meta.json`` record.

    ``layout`` is the audio track's channel layout name (for the record); ``video_info`` the source's
    `visage_hf.video.io.probe` result (probed here when not given).

    Raises:
        ClipFiltered: rejected by the curation filters.
        ValueError: the data cannot make a valid clip (the message says why).
    """
    audio = _fit_audio(job, audio, sample_rate)
    meta: dict = {"audio_channel_layout": layout}
    curation = None
    if job.kind == "mono":
        sound = audio.mean(axis=0, keepdims=True)  # downmix: the mono stage models one channel (W)
    else:
        sound = _ambisonic(job, audio, options, layout)
        meta["channel_order_check"] = channel_order_check(sound)
        if options.curate:
            curation = curate_clip(sound, sample_rate, options.thresholds)
            meta["curation"] = curation.to_dict()
            if not curation.keep:
                raise ClipFiltered("; ".join(curation.reasons))
    azimuth, elevation, direction_source = _direction(job, sound, curation)

    info = video_info or probe(job.video_path)
    size, frame_layout = _read_size(job, options, info.width, info.height)
    seconds = audio.shape[1] / sample_rate
    frames, _ = read_frames(
        job.video_path,
        fps=options.fps,
        start=job.start,
        duration=seconds,
        size=size,
        sampling=options.frame_sampling,
    )
    expected = math.ceil(seconds * options.fps - 1e-6)
    frames = frames[:expected]  # FFmpeg's sampling writes a frame or two past the end; the original kept 20
    if (
        len(frames) < expected
        and job.min_seconds is not None
        and len(frames) >= job.min_seconds * options.fps
    ):
        seconds = len(frames) / options.fps  # the video ends before the sound: keep what both cover
        sound = sound[:, : round(seconds * sample_rate)]
    elif len(frames) < expected:
        raise ValueError(
            f"the video has {len(frames)} frames at {options.fps:g} fps from {job.start:g} s, the clip needs "
            f"{expected} (source {job.video_path.name})"
        )
    if job.kind == "equirect":
        frames, frame_layout = select_mono_view(frames, frame_layout)
        frames = fov_crop(
            frames, azimuth, elevation, fov=options.fov, size=options.fov_size, mode=options.mode
        )

    peak = float(np.max(np.abs(sound))) if sound.size else 0.0
    meta.update(
        {
            "clip_id": job.clip_id,
            "video_id": job.video_id,
            "start_second": job.start,
            "seconds": seconds,
            "split": job.split,
            "kind": job.kind,
            "num_channels": job.num_channels,
            "elevation_index": job.elevation_index,
            "azimuth_index": job.azimuth_index,
            "azimuth": azimuth,
            "elevation": elevation,
            "direction_source": direction_source,
            "fps": options.fps,
            "frame_sampling": options.frame_sampling,
            "num_frames": len(frames),
            "frame_size": [int(frames.shape[2]), int(frames.shape[1])],
            "sample_rate": int(sample_rate),
            "num_samples": int(sound.shape[1]),
            "peak": peak,
            "clipped_samples": int(np.sum(np.abs(sound) > 1.0)),
            "video_file": VIDEO_FILE,
            "audio_file": AUDIO_FILES[job.num_channels],
            "source_video": job.video_path.name,
            "source_audio": job.audio_path.name,
            **job.extra,
        }
    )
    if job.kind == "equirect":
        meta.update({"projection_mode": options.mode, "fov": options.fov, "stereo_layout": frame_layout})
    with staged_directory(output_dir / job.clip_id, overwrite=options.overwrite) as staging:
        write_video(staging / VIDEO_FILE, frames, options.fps)
        write_audio(
            staging / AUDIO_FILES[job.num_channels], np.clip(sound, -1.0, 1.0), sample_rate, subtype="PCM_24"
        )
        atomic_write_json(staging / META_FILE, meta)  # written last: its presence marks a complete clip
    return meta


def prepare_source(jobs: Sequence[ClipJob], output_dir: str | Path, options: PrepareOptions) -> SourceResult:
    """Prepare the clips of one source (same video and audio files): one audio decoding pass for all of them."""
    output_dir = Path(output_dir)
    result = SourceResult()
    pending = []
    for job in jobs:
        if not options.overwrite and is_prepared(output_dir, job.clip_id):
            result.skipped.append(job.clip_id)
        else:
            pending.append(job)
    if not pending:
        return result
    finished: set[str] = set()
    try:
        layout = audio_stream_info(pending[0].audio_path)["layout"]
        video_info = probe(pending[0].video_path)
        windows = [(job.start, job.seconds) for job in pending]
        for index, audio, sample_rate in decode_audio_windows(pending[0].audio_path, windows):
            job = pending[index]
            finished.add(job.clip_id)
            try:
                prepare_clip(job, audio, sample_rate, output_dir, options, layout, video_info)
                result.done.append(job.clip_id)
            except ClipFiltered as reason:
                result.filtered.append((job.clip_id, "curation", str(reason)))
            except Exception as error:  # one clip never stops the others
                result.failed.append((job.clip_id, "prepare", describe_error(error)))
    except Exception as error:  # the source itself is unreadable: every clip not yet made fails
        for job in pending:
            if job.clip_id not in finished:
                result.failed.append((job.clip_id, "source", describe_error(error)))
    return result


def run_prepare(
    jobs: Sequence[ClipJob],
    output_dir: str | Path,
    options: PrepareOptions | None = None,
    num_workers: int = 1,
    progress: bool = True,
) -> PrepareReport:
    """Prepare every job (skipping finished clips); sources run in parallel with ``num_workers`` processes."""
    options = options or PrepareOptions()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output_dir)
    failures, filtered = FailureLog(), FailureLog()
    unique: dict[str, ClipJob] = {}
    for job in jobs:
        if job.clip_id in unique:
            failures.add(
                job.clip_id, "input", f"duplicate clip id (also from {unique[job.clip_id].video_path.name})"
            )
        else:
            unique[job.clip_id] = job
    groups: dict[tuple[str, str], list[ClipJob]] = defaultdict(list)
    for job in unique.values():
        groups[job.source_key].append(job)
    done, skipped = [], []
    bar = tqdm(total=len(unique), desc="prepare", unit="clip", disable=not progress)

    def collect(result: SourceResult) -> None:
        done.extend(result.done)
        skipped.extend(result.skipped)
        failures.extend(result.failed)
        filtered.extend(result.filtered)
        bar.update(len(result.done) + len(result.skipped) + len(result.failed) + len(result.filtered))
        bar.set_postfix(failed=len(failures), refresh=False)

    try:
        if num_workers <= 1:
            for group in groups.values():
                collect(prepare_source(group, output_dir, options))
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=num_workers, mp_context=context) as pool:
                futures = [
                    pool.submit(prepare_source, group, output_dir, options) for group in groups.values()
                ]
                try:
                    for future in as_completed(futures):
                        collect(future.result())
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    finally:
        bar.close()
    return PrepareReport(done, skipped, failures, filtered)


# ------------------------------------------------------------------------------------------ sources
def yt_ambigen_jobs(
    raw_dir: str | Path,
    directions,
    splits: Sequence[str] | None = None,
    split_lists_dir: str | Path | None = None,
    clip_seconds: float = 5.0,
    limit: int | None = None,
) -> tuple[list[ClipJob], list[str], list[str]]:
    """Jobs for the YT-Ambigen clips whose video is in ``raw_dir``.

    Args:
        directions: a direction table (see `clips.load_direction_table`): URL, path or mapping.

    Returns:
        ``(jobs, clip ids not downloaded, clip ids without a direction)``.
    """
    from dataset_scripts.download import find_raw_files

    table = load_direction_table(directions)
    lists = read_split_lists(splits, split_lists_dir)
    jobs, missing, no_direction = [], [], []
    files_of: dict[str, tuple[Path, Path] | None] = {}
    for split, clip_ids in lists.items():
        for clip_id in clip_ids:
            youtube_id, start = parse_clip_id(clip_id)
            if youtube_id not in files_of:
                files_of[youtube_id] = find_raw_files(raw_dir, youtube_id)
            files = files_of[youtube_id]
            if files is None:
                missing.append(clip_id)
                continue
            if clip_id not in table:
                no_direction.append(clip_id)
                continue
            elevation_index, azimuth_index = table[clip_id]
            jobs.append(
                ClipJob(
                    clip_id=clip_id,
                    video_id=youtube_id,
                    start=float(start),
                    seconds=clip_seconds,
                    split=split,
                    video_path=files[0],
                    audio_path=files[1],
                    kind="equirect",
                    elevation_index=elevation_index,
                    azimuth_index=azimuth_index,
                    extra={"youtube_id": youtube_id},
                )
            )
            if limit and len(jobs) >= limit:
                return jobs, missing, no_direction
    return jobs, missing, no_direction


# ------------------------------------------------------------------------------------------ CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dataset_scripts.prepare",
        description="Cut 4-fps field-of-view clips with AmbiX FOA (or mono audio) from downloaded or own videos. "
        "Resumable; failures are listed in <output>/prepare_failures.csv.",
    )
    parser.add_argument("--output", required=True, help="folder of clip folders (<output>/<clip id>/)")
    source = parser.add_argument_group("source (default: YT-Ambigen downloads in --raw-dir)")
    source.add_argument("--raw-dir", default=None, help="download.py output (YT-Ambigen or VGGSound)")
    source.add_argument("--directions", default=DEFAULT_DIRECTIONS_URL, help="ambi.json: URL or local file")
    source.add_argument(
        "--splits", default="train,validation,test", help="YT-Ambigen splits (comma-separated)"
    )
    source.add_argument("--split-lists", default=None, help="folder with other split lists (*.csv[.gz])")
    source.add_argument("--vggsound", default=None, help="VGGSound's vggsound.csv (mono pre-training clips)")
    source.add_argument("--own-videos", default=None, help="folder of your 360° videos with ambisonic audio")
    source.add_argument(
        "--own-fov", default=None, help="folder of your field-of-view clips + FOA + directions.csv"
    )
    source.add_argument(
        "--directions-csv", default=None, help="--own-fov directions (default DIR/directions.csv)"
    )
    source.add_argument("--direction", default="auto", help="--own-videos camera: 'auto' or 'AZ,EL' degrees")
    source.add_argument("--limit", type=int, default=None, help="only the first N clips")
    own = parser.add_argument_group("own data")
    own.add_argument("--split", default="train", help="split of own clips (default train)")
    own.add_argument("--validation-fraction", type=float, default=0.0, help="hashed share of own videos")
    own.add_argument("--test-fraction", type=float, default=0.0, help="hashed share of own videos")
    own.add_argument("--hop-seconds", type=float, default=None, help="clip spacing (default: back to back)")
    own.add_argument(
        "--channel-order", default="ambix", choices=("ambix", "fuma"), help="input FOA convention"
    )
    own.add_argument("--curate", action="store_true", help="apply the curation filters (curation.py)")
    own.add_argument("--min-channel-peak", type=float, default=CurationThresholds.min_channel_peak)
    own.add_argument("--min-second-rms-db", type=float, default=CurationThresholds.min_second_rms_db)
    own.add_argument(
        "--min-valid-fraction",
        type=float,
        default=CurationThresholds.min_valid_fraction,
        help="share of seconds that must be valid (0.6: 3 of 5)",
    )
    clip = parser.add_argument_group("clips")
    clip.add_argument("--clip-seconds", type=float, default=None, help="clip length (5; VGGSound 10)")
    clip.add_argument(
        "--min-seconds", type=float, default=None, help="keep shorter clips down to this (VGGSound 5)"
    )
    clip.add_argument("--fps", type=float, default=4.0)
    clip.add_argument("--fov", type=float, default=90.0, help="vertical field of view, degrees")
    clip.add_argument("--fov-size", type=int, default=224, help="field-of-view frame size, pixels")
    clip.add_argument("--mode", default="corrected", choices=("corrected", "original"), help="FoV projection")
    clip.add_argument(
        "--frame-sampling",
        default="ffmpeg",
        choices=FRAME_SAMPLINGS,
        help="which source frames make the 4-fps frames: 'ffmpeg' (default; as the original's `ffmpeg -ss S "
        "-to S+5 -r 4`, what the released model saw) or 'exact' (the frame shown at k/fps; record it as the "
        "model config's frame_sampling)",
    )
    clip.add_argument(
        "--equirect-width", type=int, default=ORIGINAL_EQUIRECT_WIDTH, help="0: keep the source size"
    )
    clip.add_argument("--stereo-layout", default="auto", choices=("auto", "mono", "top-bottom", "left-right"))
    clip.add_argument("--short-side", type=int, default=224, help="VGGSound frame short side")
    parser.add_argument("--num-workers", type=int, default=1, help="parallel processes (one source each)")
    parser.add_argument("--overwrite", action="store_true", help="remake clips that exist")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def _jobs_from_args(args) -> tuple[list[ClipJob], list[str], FailureLog]:
    """(jobs, notes, input problems) for the chosen source."""
    from dataset_scripts import own_data, vggsound

    problems, notes = FailureLog(), []
    chosen = [name for name in ("vggsound", "own_videos", "own_fov") if getattr(args, name)]
    if len(chosen) > 1:
        raise UsageError(f"choose one source, got --{' --'.join(c.replace('_', '-') for c in chosen)}")
    try:
        fractions = own_data.split_fractions_from(args.validation_fraction, args.test_fraction)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if args.vggsound:
        if not args.raw_dir:
            raise UsageError("--vggsound needs --raw-dir (the download.py output)")
        rows = vggsound.read_vggsound_csv(args.vggsound)
        jobs, missing = vggsound.vggsound_jobs(
            rows,
            args.raw_dir,
            clip_seconds=args.clip_seconds or vggsound.CLIP_SECONDS,
            min_seconds=args.min_seconds if args.min_seconds is not None else vggsound.MIN_SECONDS,
        )
        notes.append(f"{len(missing)} clips skipped: video not downloaded")
    elif args.own_videos or args.own_fov:
        try:
            direction = own_data.parse_direction(args.direction)
        except ValueError as error:
            raise UsageError(str(error)) from None
        if args.own_videos:
            jobs, bad = own_data.own_video_jobs(
                args.own_videos, args.clip_seconds or 5.0, args.hop_seconds, direction, args.split, fractions
            )
        else:
            jobs, bad = own_data.own_fov_jobs(
                args.own_fov,
                args.directions_csv,
                args.clip_seconds or 5.0,
                args.hop_seconds,
                args.split,
                fractions,
            )
        for name, problem in bad:
            problems.add(name, "input", problem)
    else:
        if not args.raw_dir:
            raise UsageError(
                "give --raw-dir (YT-Ambigen downloads) or one of --vggsound, --own-videos, --own-fov"
            )
        try:
            splits = resolve_splits(parse_list_argument(args.splits))
        except ValueError as error:
            raise UsageError(str(error)) from None
        jobs, missing, no_direction = yt_ambigen_jobs(
            args.raw_dir, args.directions, splits, args.split_lists, args.clip_seconds or 5.0
        )
        notes.append(f"{len(missing)} clips skipped: video not downloaded (see download_failures.csv)")
        for clip_id in no_direction:
            problems.add(clip_id, "input", "no camera direction in the direction table")
    if args.min_seconds is not None and not args.vggsound:
        for job in jobs:
            job.min_seconds = args.min_seconds
    return (jobs[: args.limit] if args.limit else jobs), notes, problems


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    thresholds = CurationThresholds(
        min_channel_peak=args.min_channel_peak,
        min_second_rms_db=args.min_second_rms_db,
        min_valid_fraction=args.min_valid_fraction,
    )
    options = PrepareOptions(
        fps=args.fps,
        fov=args.fov,
        fov_size=args.fov_size,
        mode=args.mode,
        frame_sampling=args.frame_sampling,
        equirect_width=args.equirect_width or None,
        stereo_layout=args.stereo_layout,
        short_side=args.short_side,
        channel_order=args.channel_order,
        curate=args.curate,
        thresholds=thresholds,
        overwrite=args.overwrite,
    )
    if args.num_workers < 1:
        raise UsageError(f"--num-workers must be >= 1, got {args.num_workers}")
    jobs, notes, problems = _jobs_from_args(args)
    output_dir = Path(args.output)
    report = run_prepare(jobs, output_dir, options, args.num_workers, progress=not args.no_progress)
    report.failures.extend(problems.rows)
    failures_path = report.failures.write_csv(output_dir / FAILURES_FILE)
    report.filtered.write_csv(output_dir / FILTERED_FILE)
    print(report.summary())
    for note in notes:
        print(note)
    if failures_path:
        print(f"failures listed in {failures_path}")
    if len(report.filtered):
        print(f"clips rejected by curation listed in {output_dir / FILTERED_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
