"""Download the source videos of YT-Ambigen (or VGGSound) from YouTube with yt-dlp: resumable, rate limited.

For every YouTube id the script fetches two streams (the original's rule, docs/original-implementation.md §5.2):

* **audio**: YT-Ambigen takes the spatial-audio format (audio only, more than 2 channels, ``"ambi"`` in its
  ``format_note``: YouTube's 4-channel AmbiX Opus); VGGSound takes the best audio-only format;
* **video**: the smallest video-only MP4 at least ``--min-height`` pixels high (480 for 360° videos, whose
  frames are resized to 896x448 anyway; 240 for VGGSound, whose frames become 224 px).

Files land in ``<output>/<id>.mp4`` and ``<output>/<id>.audio.<ext>``, then ``<output>/<id>.json`` records the
chosen formats; a video counts as done only when that marker exists, so an interrupted run resumes where it
stopped. Requests are spaced by ``--min-interval`` seconds; failures are retried with exponential backoff
(``--retries``, ``--backoff``) unless they are permanent (private, removed, no spatial audio...). Every
failure is listed in ``<output>/download_failures.csv`` and summarised; none stops the run.

yt-dlp is an optional dependency: ``pip install yt-dlp``. YouTube's ambisonic format is not always offered to
every client (yt-dlp issue #12543); the script asks the ``default`` and ``android_vr`` player clients like the
original. Use ``--cookies`` for age-restricted videos.

Example::

    python -m dataset_scripts.download --output data/raw --splits train,validation,test
    python -m dataset_scripts.download --output data/vggsound_raw --vggsound vggsound.csv
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

if __package__ in (None, ""):  # run as a file: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tqdm.auto import tqdm

from dataset_scripts.clips import parse_clip_id, read_split_lists, resolve_splits, youtube_url
from dataset_scripts.jobs import (
    FailureLog,
    UsageError,
    atomic_write_json,
    parse_list_argument,
    remove_stale_temporaries,
    run_cli,
    scratch_directory,
)

__all__ = [
    "DownloadOptions",
    "Downloader",
    "RateLimiter",
    "YtDlpDownloader",
    "download_video",
    "find_raw_files",
    "main",
    "run_downloads",
    "select_ambisonic_audio",
    "select_audio",
    "select_video",
]

FAILURES_FILE = "download_failures.csv"
KINDS = ("yt_ambigen", "vggsound")
# Messages of errors that retrying cannot fix (yt-dlp reports them as DownloadError text).
_PERMANENT_MARKERS = (
    "private video",
    "video unavailable",
    "has been removed",
    "account associated",
    "copyright",
    "members-only",
    "confirm your age",
    "no longer available",
    "this video is not available",
    "no ambisonic",
    "no suitable",
)


class PermanentDownloadError(RuntimeError):
    """A failure that retrying will not fix (no spatial-audio format, removed video...)."""


class Downloader(Protocol):
    """What the script needs from yt-dlp (tests inject a fake)."""

    def extract_info(self, url: str) -> dict: ...

    def download(self, url: str, format_id: str, output_template: str) -> None:
        """Download one format; ``output_template`` is a yt-dlp template ending in ``.%(ext)s``."""
        ...


class YtDlpDownloader:
    """:class:`Downloader` over ``yt_dlp.YoutubeDL`` (player clients ``default`` and ``android_vr``, like the original).

    Args:
        rate_limit: bytes per second per download (yt-dlp ``ratelimit``), None for unlimited.
        cookies: a Netscape cookies file (age-restricted or bot-checked videos).
    """

    def __init__(self, rate_limit: float | None = None, cookies: str | None = None):
        try:
            import yt_dlp
        except ImportError:
            raise UsageError("download.py needs yt-dlp: pip install yt-dlp") from None
        self._yt_dlp = yt_dlp
        self.options = {
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "noplaylist": True,
            "extractor_args": {"youtube": {"player_client": ["default", "android_vr"]}},
        }
        if rate_limit:
            self.options["ratelimit"] = float(rate_limit)
        if cookies:
            self.options["cookiefile"] = str(cookies)

    def extract_info(self, url: str) -> dict:
        with self._yt_dlp.YoutubeDL(self.options) as client:
            return client.extract_info(url, download=False)

    def download(self, url: str, format_id: str, output_template: str) -> None:
        options = {**self.options, "format": format_id, "outtmpl": output_template}
        with self._yt_dlp.YoutubeDL(options) as client:
            client.download([url])


# ------------------------------------------------------------------------------------------ format choice
def _number(value, default: float = 0.0) -> float:
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _audio_only(fmt: dict) -> bool:
    return fmt.get("vcodec", "none") == "none" and fmt.get("acodec", "none") not in ("none", None)


def _bitrate(fmt: dict) -> float:
    return _number(fmt.get("abr")) or _number(fmt.get("tbr"))


def select_ambisonic_audio(formats: Sequence[dict]) -> dict | None:
    """The best spatial-audio format: audio only, more than 2 channels and ``"ambi"`` in ``format_note``
    (YouTube's FOA Opus); among several, 4 channels first, then the highest bit rate. None if there is none."""
    candidates = [
        fmt
        for fmt in formats
        if _audio_only(fmt)
        and _number(fmt.get("audio_channels")) > 2
        and "ambi" in str(fmt.get("format_note") or "").lower()
    ]
    if not candidates:
        return None
    return max(
        candidates,
        key=lambda fmt: (_number(fmt.get("audio_channels")) == 4, _bitrate(fmt), _number(fmt.get("asr"))),
    )


def select_audio(formats: Sequence[dict]) -> dict | None:
    """The best audio-only format of any channel count (VGGSound): highest bit rate, then sample rate."""
    candidates = [fmt for fmt in formats if _audio_only(fmt)]
    if not candidates:
        return None
    return max(candidates, key=lambda fmt: (_bitrate(fmt), _number(fmt.get("asr"))))


def select_video(formats: Sequence[dict], min_height: int = 480, ext: str = "mp4") -> dict | None:
    """The smallest video-only ``ext`` format at least ``min_height`` high (H.264 preferred at that height, since
    every FFmpeg decodes it, then the highest bit rate). None if there is none."""
    candidates = [
        fmt
        for fmt in formats
        if fmt.get("acodec", "none") == "none"
        and fmt.get("vcodec", "none") not in ("none", None)
        and fmt.get("ext") == ext
        and _number(fmt.get("height")) >= min_height
    ]
    if not candidates:
        return None
    return min(
        candidates,
        key=lambda fmt: (
            _number(fmt.get("height")),
            not str(fmt.get("vcodec", "")).startswith("avc1"),
            -_bitrate(fmt),
        ),
    )


# ------------------------------------------------------------------------------------------ pacing
class RateLimiter:
    """Spaces calls at least ``min_interval`` seconds apart (plus up to ``jitter`` random seconds)."""

    def __init__(
        self,
        min_interval: float,
        jitter: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
    ):
        self.min_interval, self.jitter = float(min_interval), float(jitter)
        self.sleep, self.clock = sleep, clock
        self.random = random.Random(seed)
        self.last: float | None = None

    def wait(self) -> None:
        if self.last is not None:
            gap = self.min_interval + (self.random.uniform(0, self.jitter) if self.jitter else 0.0)
            remaining = self.last + gap - self.clock()
            if remaining > 0:
                self.sleep(remaining)
        self.last = self.clock()


def is_permanent(error: BaseException) -> bool:
    if isinstance(error, PermanentDownloadError):
        return True
    text = str(error).lower()
    return any(marker in text for marker in _PERMANENT_MARKERS)


def with_retries(
    action: Callable[[], object],
    retries: int,
    backoff: float,
    limiter: RateLimiter,
    sleep: Callable[[float], None],
):
    """Run ``action`` (after the rate limiter), retrying transient errors ``retries`` times with delays
    ``backoff·2^k``; permanent errors and the last transient one are raised."""
    for attempt in range(retries + 1):
        limiter.wait()
        try:
            return action()
        except Exception as error:
            if attempt == retries or is_permanent(error):
                raise
            sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")


# ------------------------------------------------------------------------------------------ raw layout
def marker_path(raw_dir: Path, video_id: str) -> Path:
    return Path(raw_dir) / f"{video_id}.json"


def find_raw_files(raw_dir: str | os.PathLike, video_id: str) -> tuple[Path, Path] | None:
    """``(video, audio)`` files of a downloaded video, or None if it is not (completely) downloaded.

    Reads this script's marker ``<id>.json``; also accepts the original ``prepare_dataset.py`` layout
    (``<id>.mp4`` + ``<id>.webm``) so existing downloads can be reused.
    """
    raw_dir = Path(raw_dir)
    marker = marker_path(raw_dir, video_id)
    if marker.is_file():
        try:
            record = json.loads(marker.read_text())
            video, audio = raw_dir / record["video_file"], raw_dir / record["audio_file"]
        except (ValueError, KeyError, TypeError):
            return None
        return (video, audio) if video.is_file() and audio.is_file() else None
    video, audio = raw_dir / f"{video_id}.mp4", raw_dir / f"{video_id}.webm"
    return (video, audio) if video.is_file() and audio.is_file() else None


@dataclass
class DownloadOptions:
    kind: str = "yt_ambigen"
    min_height: int | None = None  # default: 480 (yt_ambigen) / 240 (vggsound)
    retries: int = 3
    backoff: float = 10.0
    overwrite: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise UsageError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.min_height is None:
            self.min_height = 480 if self.kind == "yt_ambigen" else 240


def _single_file(folder: Path, stem: str) -> Path:
    files = [p for p in folder.glob(f"{stem}.*") if not p.name.endswith((".part", ".ytdl"))]
    if len(files) != 1:
        raise RuntimeError(f"expected one downloaded '{stem}' file, found {[p.name for p in files]}")
    return files[0]


def download_video(
    client: Downloader,
    video_id: str,
    raw_dir: Path,
    options: DownloadOptions,
    limiter: RateLimiter,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Download one video's audio and video streams into ``raw_dir``; returns the marker record.

    Raises:
        PermanentDownloadError: no suitable format; other exceptions after the retries.
    """
    url = youtube_url(video_id)
    info = with_retries(lambda: client.extract_info(url), options.retries, options.backoff, limiter, sleep)
    formats = (info or {}).get("formats") or []
    audio = select_ambisonic_audio(formats) if options.kind == "yt_ambigen" else select_audio(formats)
    if audio is None:
        wanted = (
            "no ambisonic audio format (>2 channels, 'ambi')"
            if options.kind == "yt_ambigen"
            else "no audio-only format"
        )
        raise PermanentDownloadError(f"{wanted} among {len(formats)} formats")
    video = select_video(formats, options.min_height)
    if video is None:
        raise PermanentDownloadError(f"no suitable video-only mp4 of height >= {options.min_height}")

    raw_dir = Path(raw_dir)
    # Both streams are downloaded into one staging folder, then moved; the marker is written last.
    with scratch_directory(raw_dir, video_id) as staging:
        for stem, fmt in (("audio", audio), ("video", video)):
            template = str(staging / f"{stem}.%(ext)s")
            with_retries(
                lambda fmt=fmt, template=template: client.download(url, str(fmt["format_id"]), template),
                options.retries,
                options.backoff,
                limiter,
                sleep,
            )
        audio_file = _single_file(staging, "audio")
        video_file = _single_file(staging, "video")
        audio_name = f"{video_id}.audio{audio_file.suffix}"
        video_name = f"{video_id}.mp4"
        os.replace(audio_file, raw_dir / audio_name)
        os.replace(video_file, raw_dir / video_name)
        record = {
            "youtube_id": video_id,
            "title": (info or {}).get("title"),
            "duration": (info or {}).get("duration"),
            "audio_file": audio_name,
            "video_file": video_name,
            "audio_format": {
                k: audio.get(k)
                for k in ("format_id", "format_note", "ext", "acodec", "audio_channels", "asr", "abr")
            },
            "video_format": {
                k: video.get(k) for k in ("format_id", "ext", "vcodec", "width", "height", "fps", "tbr")
            },
        }
        atomic_write_json(marker_path(raw_dir, video_id), record)
    return record


def run_downloads(
    client: Downloader,
    video_ids: Iterable[str],
    raw_dir: str | os.PathLike,
    options: DownloadOptions,
    limiter: RateLimiter | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: bool = True,
) -> tuple[list[str], list[str], FailureLog]:
    """Download every id not already done; returns ``(downloaded, skipped, failures)``. Never raises for a
    single video's failure (Ctrl-C still stops the run; finished videos stay finished)."""
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(raw_dir)
    limiter = limiter or RateLimiter(0.0, sleep=sleep)
    downloaded, skipped, failures = [], [], FailureLog()
    ids = list(dict.fromkeys(video_ids))
    bar = tqdm(ids, desc="download", unit="video", disable=not progress)
    for video_id in bar:
        if not options.overwrite and find_raw_files(raw_dir, video_id) is not None:
            skipped.append(video_id)
            continue
        try:
            download_video(client, video_id, raw_dir, options, limiter, sleep)
            downloaded.append(video_id)
        except Exception as error:  # one video never stops the run
            failures.add(video_id, "download", error)
        bar.set_postfix(ok=len(downloaded), failed=len(failures), refresh=False)
    return downloaded, skipped, failures


# ------------------------------------------------------------------------------------------ CLI
def _video_ids_from_args(args) -> list[str]:
    if args.vggsound:
        from dataset_scripts.vggsound import read_vggsound_csv

        ids = [row.youtube_id for row in read_vggsound_csv(args.vggsound)]
    elif args.ids or args.ids_file:
        ids = parse_list_argument(args.ids)
        if args.ids_file:
            path = Path(args.ids_file)
            if not path.is_file():
                raise FileNotFoundError(f"--ids-file not found: {path}")
            ids += [line.strip() for line in path.read_text().splitlines() if line.strip()]
    else:
        try:
            splits = resolve_splits(parse_list_argument(args.splits))
        except ValueError as error:
            raise UsageError(str(error)) from None
        lists = read_split_lists(splits, args.split_lists)
        ids = [parse_clip_id(clip_id)[0] for split in splits for clip_id in lists[split]]
    ids = list(dict.fromkeys(ids))
    return ids[: args.limit] if args.limit else ids


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dataset_scripts.download",
        description="Download YT-Ambigen (default) or VGGSound source videos from YouTube with yt-dlp. "
        "Resumable; failures are listed in <output>/download_failures.csv.",
    )
    parser.add_argument("--output", required=True, help="folder for the raw downloads")
    source = parser.add_argument_group("which videos (default: every video of the YT-Ambigen splits)")
    source.add_argument(
        "--splits", default="train,validation,test", help="YT-Ambigen splits (comma-separated)"
    )
    source.add_argument("--split-lists", default=None, help="folder with other split lists (*.csv[.gz])")
    source.add_argument(
        "--vggsound", default=None, help="VGGSound's vggsound.csv: download its videos instead"
    )
    source.add_argument("--ids", default=None, help="comma-separated YouTube ids")
    source.add_argument("--ids-file", default=None, help="file with one YouTube id per line")
    source.add_argument("--limit", type=int, default=None, help="only the first N videos")
    pacing = parser.add_argument_group("pacing")
    pacing.add_argument(
        "--min-interval", type=float, default=2.0, help="seconds between requests (default 2)"
    )
    pacing.add_argument(
        "--jitter", type=float, default=3.0, help="extra random seconds between requests (default 3)"
    )
    pacing.add_argument("--retries", type=int, default=3, help="retries of a transient failure (default 3)")
    pacing.add_argument(
        "--backoff", type=float, default=10.0, help="first retry delay, doubled each time (default 10 s)"
    )
    pacing.add_argument("--rate-limit", type=float, default=None, help="bytes per second per download")
    parser.add_argument(
        "--min-height", type=int, default=None, help="smallest video height (480 / VGGSound 240)"
    )
    parser.add_argument("--cookies", default=None, help="Netscape cookies file for yt-dlp")
    parser.add_argument("--overwrite", action="store_true", help="download again even if done")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None, *, downloader: Downloader | None = None, sleep=time.sleep) -> int:
    """CLI entry point; ``downloader`` replaces yt-dlp (tests), ``sleep`` the real waiting."""
    args = build_parser().parse_args(argv)
    for name in ("min_interval", "jitter", "backoff"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if args.retries < 0:
        raise UsageError(f"--retries must be >= 0, got {args.retries}")
    options = DownloadOptions(
        kind="vggsound" if args.vggsound else "yt_ambigen",
        min_height=args.min_height,
        retries=args.retries,
        backoff=args.backoff,
        overwrite=args.overwrite,
    )
    video_ids = _video_ids_from_args(args)
    client = downloader or YtDlpDownloader(rate_limit=args.rate_limit, cookies=args.cookies)
    limiter = RateLimiter(args.min_interval, args.jitter, sleep=sleep)
    raw_dir = Path(args.output)
    downloaded, skipped, failures = run_downloads(
        client, video_ids, raw_dir, options, limiter, sleep, progress=not args.no_progress
    )
    failures_path = failures.write_csv(raw_dir / FAILURES_FILE)
    print(f"downloaded {len(downloaded)} videos, {len(skipped)} already done, {failures.summary()}")
    if failures_path:
        print(f"failures listed in {failures_path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
