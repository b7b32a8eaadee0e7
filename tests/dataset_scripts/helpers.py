"""Fakes, constants and argument lists shared by the dataset_scripts/ tests (fixtures: conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# The repository root: dataset_scripts/ is a folder of scripts there, not an installed package.
REPO_ROOT = Path(__file__).resolve().parents[2]
CLIP_SECONDS = 2
FOV_SIZE = 64
EQUIRECT_WIDTH = 256
# Three source videos, each with a red object and a tone at one direction (public degrees), on the 2° index
# grid so that the YT-Ambigen table can hold them exactly.
SOURCES = {"AAAAAAAAAA1": (59.0, 9.0), "BBBBBBBBBB2": (-101.0, -21.0), "CCCC-CCCC_3": (169.0, 29.0)}
SPLIT_CLIPS = {
    "train": ["AAAAAAAAAA1_0", "AAAAAAAAAA1_3", "BBBBBBBBBB2_0"],
    "validation": ["CCCC-CCCC_3_1"],
    "test": [],
}


class FakeYoutube:
    """Stands in for yt-dlp: formats like YouTube's, files copied from local synthetic sources.

    ``errors[video_id]`` is a list of exceptions raised by successive ``extract_info`` calls before success.
    """

    def __init__(self, sources: dict[str, Path], errors: dict | None = None, formats: dict | None = None):
        self.sources, self.errors, self.formats = sources, errors or {}, formats or {}
        self.info_calls: list[str] = []
        self.downloads: list[tuple[str, str]] = []

    def extract_info(self, url: str) -> dict:
        video_id = url.split("v=")[1]
        self.info_calls.append(video_id)
        pending = self.errors.get(video_id)
        if pending:
            raise pending.pop(0)
        return {"title": video_id, "duration": 6, "formats": self.formats.get(video_id, youtube_formats())}

    def download(self, url: str, format_id: str, output_template: str) -> None:
        video_id = url.split("v=")[1]
        self.downloads.append((video_id, format_id))
        extension = "webm" if format_id in ("338", "251") else "mp4"
        target = Path(output_template.replace("%(ext)s", extension))
        target.write_bytes(Path(self.sources[video_id]).read_bytes())


def _opus(format_id: str, note: str, channels: int, kbps: int) -> dict:
    return {"format_id": format_id, "format_note": note, "vcodec": "none", "acodec": "opus",
            "audio_channels": channels, "abr": kbps}  # fmt: skip


def _video(format_id: str, vcodec: str, height: int, ext: str = "mp4", **extra) -> dict:
    return {"format_id": format_id, "vcodec": vcodec, "acodec": "none", "ext": ext, "height": height, **extra}


def youtube_formats() -> list[dict]:
    return [
        _opus("251", "medium", 2, 160),
        _opus("328", "ambisonic", 4, 256),
        _opus("338", "ambisonic", 4, 512),
        {"format_id": "18", "vcodec": "avc1.42001E", "acodec": "mp4a", "ext": "mp4", "height": 360},
        _video("134", "avc1.4d401e", 360),
        _video("135", "avc1.4d401f", 480, tbr=800),
        _video("397", "av01.0.04M.08", 480, tbr=600),
        _video("136", "avc1.4d401f", 720),
        _video("244", "vp9", 480, ext="webm"),
    ]


def red_centroid(frames: np.ndarray) -> tuple[float, float]:
    """Mean (x, y) pixel of the saturated red object over all frames."""
    f = frames.astype(int)
    mask = (f[..., 0] > 150) & (f[..., 1] < 100) & (f[..., 2] < 100)
    assert mask.sum() > 0, "the object is not in the frames"
    _, ys, xs = np.nonzero(mask)
    return float(xs.mean()), float(ys.mean())


def write_split_lists(folder: Path, split_clips: dict[str, list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, name in (("train", "train.csv"), ("validation", "valid.csv"), ("test", "test.csv")):
        (folder / name).write_text("file_path\n" + "".join(f"{c}.npy\n" for c in split_clips[split]))
    return folder


def quiet(argv: list[str]) -> list[str]:
    return [*argv, "--no-progress"]


def prepare_args(ws, output: Path, *extra: str) -> list[str]:
    return quiet(["--raw-dir", str(ws["raw"]), "--output", str(output), "--directions", str(ws["directions"]),
                  "--split-lists", str(ws["splits"]), "--clip-seconds", str(CLIP_SECONDS), "--fov-size",
                  str(FOV_SIZE), "--equirect-width", str(EQUIRECT_WIDTH), *extra])  # fmt: skip


def extract_args(ws, media: Path, output: Path, *extra: str) -> list[str]:
    return quiet(["--media-dir", str(media), "--output", str(output), "--clip-model", str(ws["root"] / "clip"),
                  "--codec", str(ws["root"] / "dac"), "--batch-size", "2", *extra])  # fmt: skip


def all_clip_ids() -> list[str]:
    return [clip_id for ids in SPLIT_CLIPS.values() for clip_id in ids]


def no_leftovers(folder: Path) -> list[str]:
    """Hidden files or folders (temporaries, staging) anywhere under ``folder``."""
    return [str(p.relative_to(folder)) for p in folder.rglob(".*")]
