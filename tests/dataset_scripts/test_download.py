"""dataset_scripts/download.py through a fake yt-dlp: format choice, retries, rate limiting, usage errors."""

from __future__ import annotations

import csv
import json

import pytest

from dataset_scripts import download
from dataset_scripts.jobs import run_cli

from .helpers import FakeYoutube, no_leftovers, youtube_formats


def test_download_picks_the_spatial_audio_and_survives_failures(tmp_path, workspace):
    formats = youtube_formats()
    assert download.select_ambisonic_audio(formats)["format_id"] == "338"  # 4 ch, 'ambi', highest rate
    assert download.select_video(formats, 480)["format_id"] == "135"  # smallest mp4 >= 480, H.264 first
    assert download.select_ambisonic_audio([f for f in formats if f["format_id"] == "251"]) is None
    source = workspace["raw"] / "AAAAAAAAAA1.mp4"
    fake = FakeYoutube(
        {"goodvideo01": source, "flakyvideo1": source, "stereoonly1": source, "privatevid1": source},
        errors={
            "flakyvideo1": [
                RuntimeError("HTTP Error 429: Too Many Requests"),
                RuntimeError("HTTP Error 429: Too Many Requests"),
            ],
            "privatevid1": [RuntimeError("ERROR: [youtube] privatevid1: Private video. Sign in")],
        },
        formats={"stereoonly1": [f for f in formats if f["format_id"] != "328" and f["format_id"] != "338"]},
    )
    sleeps: list[float] = []
    raw = tmp_path / "raw"
    argv = ["--output", str(raw), "--ids", "goodvideo01,flakyvideo1,stereoonly1,privatevid1", "--min-interval", "0",
            "--jitter", "0", "--retries", "3", "--backoff", "5", "--no-progress"]  # fmt: skip
    assert download.main(argv, downloader=fake, sleep=sleeps.append) == 0
    assert sleeps == [5.0, 10.0]  # the two 429s: exponential backoff; permanent errors are not retried
    assert fake.info_calls.count("privatevid1") == 1 and fake.info_calls.count("stereoonly1") == 1
    assert ("goodvideo01", "338") in fake.downloads and ("goodvideo01", "135") in fake.downloads
    for video_id in ("goodvideo01", "flakyvideo1"):
        video, audio = download.find_raw_files(raw, video_id)
        assert video.name == f"{video_id}.mp4" and audio.name == f"{video_id}.audio.webm"
        assert json.loads((raw / f"{video_id}.json").read_text())["audio_format"]["format_id"] == "338"
    with open(raw / download.FAILURES_FILE) as handle:
        failed = {row["item"]: row["reason"] for row in csv.DictReader(handle)}
    assert set(failed) == {"stereoonly1", "privatevid1"}
    assert "no ambisonic audio format" in failed["stereoonly1"] and "Private video" in failed["privatevid1"]
    assert no_leftovers(raw) == []

    # Resuming: finished videos are not asked for again.
    fake.info_calls.clear()
    assert download.main(argv, downloader=fake, sleep=sleeps.append) == 0
    assert sorted(fake.info_calls) == ["privatevid1", "stereoonly1"]


def test_rate_limiter_spaces_requests():
    now = [0.0]
    waits: list[float] = []

    def sleep(seconds):
        waits.append(seconds)
        now[0] += seconds

    limiter = download.RateLimiter(2.0, sleep=sleep, clock=lambda: now[0])
    for elapsed in (0.0, 0.5, 3.0):
        now[0] += elapsed
        limiter.wait()
    assert waits == pytest.approx([1.5])  # 0.5 s after the first call: wait 1.5 s; 3 s later: no wait


def test_download_without_yt_dlp_is_a_one_line_usage_error(tmp_path, capsys):
    try:
        import yt_dlp  # noqa: F401

        pytest.skip("yt-dlp is installed")
    except ImportError:
        pass
    code = run_cli(download.main, ["--output", str(tmp_path), "--ids", "jrvzuQmr5to", "--no-progress"])
    assert code == 2
    assert capsys.readouterr().err.strip() == "error: download.py needs yt-dlp: pip install yt-dlp"
