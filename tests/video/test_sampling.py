"""Training-matched frame sampling against the real FFmpeg (the tool ViSAGe cut its training clips with).

Source videos show their own frame number as a 4 x 3 grid of black/white 16-pixel blocks (12 bits), so the
frames any tool outputs can be traced back to source frames exactly.
"""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction

import av
import numpy as np
import pytest

from visage_hf.video.io import read_frames
from visage_hf.video.sampling import ffmpeg_frame_selection

WIDTH, HEIGHT, BLOCK = 64, 48, 16
RATES = [Fraction(24000, 1001), Fraction(25), Fraction(30000, 1001), Fraction(30), Fraction(50), Fraction(60)]
STARTS = [0.0, 1.3, 2.71]
CONTAINERS = {"mp4": ("libx264", "mp4"), "webm": ("libvpx-vp9", "webm")}

needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None, reason="needs the ffmpeg tool (.ci/system-deps)"
)


def numbered_image(index: int) -> np.ndarray:
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for bit in range(12):
        row, column = divmod(bit, 4)
        image[row * BLOCK : (row + 1) * BLOCK, column * BLOCK : (column + 1) * BLOCK] = 255 * (
            (index >> bit) & 1
        )
    return image


def frame_number(image: np.ndarray) -> int:
    """The number :func:`numbered_image` drew (block centres only: robust to scaling and compression)."""
    gray = image.mean(axis=2)
    rows, columns = gray.shape[0] / 3, gray.shape[1] / 4
    number = 0
    for bit in range(12):
        row, column = divmod(bit, 4)
        centre = gray[
            int((row + 0.3) * rows) : int((row + 0.7) * rows),
            int((column + 0.3) * columns) : int((column + 0.7) * columns),
        ]
        number |= int(centre.mean() > 128) << bit
    return number


def write_numbered_video(path, rate: Fraction, seconds: float, container: str) -> None:
    codec, muxer = CONTAINERS[container]
    with av.open(str(path), "w", format=muxer) as output:
        stream = output.add_stream(codec, rate=rate, options={"g": "12", "crf": "10", "b": "0"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for index in range(int(seconds * rate)):
            frame = av.VideoFrame.from_ndarray(numbered_image(index), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode():
            output.mux(packet)


def ffmpeg_frame_numbers(source, start: float, folder) -> list[int]:
    """What ViSAGe's ``utils/prepare_dataset.py`` ran (``ffmpeg -ss S -to S+5 -i raw.mp4 -r 4 ...``), traced."""
    output = folder / "ffmpeg_out.mp4"
    command = ["ffmpeg", "-v", "error", "-y", "-ss", f"{start}", "-to", f"{start + 5}", "-i", str(source)]
    subprocess.run([*command, "-r", "4", str(output)], check=True, capture_output=True)
    with av.open(str(output)) as container:
        return [frame_number(frame.to_ndarray(format="rgb24")) for frame in container.decode(video=0)]


def test_numbered_frames_round_trip(tmp_path):
    write_numbered_video(tmp_path / "v.mp4", Fraction(25), 1.2, "mp4")
    frames, _ = read_frames(tmp_path / "v.mp4", fps=None)
    assert [frame_number(image) for image in frames] == list(range(30))


@needs_ffmpeg
@pytest.mark.parametrize("container", sorted(CONTAINERS))
@pytest.mark.parametrize("rate", RATES, ids=lambda rate: f"{float(rate):.3f}fps")
def test_ffmpeg_sampling_matches_the_ffmpeg_tool_frame_for_frame(tmp_path, rate, container):
    source = tmp_path / f"numbered.{container}"
    write_numbered_video(source, rate, max(STARTS) + 5.6, container)
    for start in STARTS:
        expected = ffmpeg_frame_numbers(source, start, tmp_path)
        assert len(expected) >= 20  # the original keeps the first 20
        frames, times = read_frames(source, fps=4, start=start, duration=5.0, sampling="ffmpeg")
        assert [frame_number(image) for image in frames] == expected, (float(rate), container, start)
        # The returned times are the chosen source frames' own times.
        np.testing.assert_allclose(times, np.asarray(expected) / float(rate), atol=1e-3)


@needs_ffmpeg
def test_exact_sampling_is_not_what_ffmpeg_wrote(tmp_path):
    """The two samplings differ (so the test above can tell them apart): exact time shows frame k at k/4 s."""
    source = tmp_path / "numbered.mp4"
    write_numbered_video(source, Fraction(25), 6.0, "mp4")
    frames, _ = read_frames(source, fps=4, start=0.0, duration=5.0)
    exact = [frame_number(image) for image in frames]
    assert exact == [int(np.floor(k / 4 * 25 + 1e-9)) for k in range(20)]
    assert exact != ffmpeg_frame_numbers(source, 0.0, tmp_path)[:20]


def test_selection_rule_on_timestamps():
    """The rule in closed form at 25 fps from 0: output 1 is source frame 1, output n >= 2 the first source frame at
    or after (n - 1.1 - 4/25) / 4 s."""
    pts = list(range(150))  # 6 s at 25 fps, time base 1/25
    chosen = ffmpeg_frame_selection(pts, Fraction(1, 25), start=0.0, duration=5.0, fps=4, source_rate=25)
    first = [0, 1] + [int(np.ceil((n - 1.1 - 0.16) / 4 * 25 - 1e-9)) for n in range(2, 22)]
    assert chosen[:22] == first


@needs_ffmpeg
def test_clip_loader_keeps_the_first_20_ffmpeg_frames(tmp_path):
    from visage_hf.video.clip import load_video_clip

    source = tmp_path / "numbered.mp4"
    write_numbered_video(source, Fraction(30), 6.5, "mp4")
    clip = load_video_clip(source, 0.0, 0.0, start=1.3, duration=5.0, sampling="ffmpeg")
    assert [frame_number(image) for image in clip.frames] == ffmpeg_frame_numbers(source, 1.3, tmp_path)[:20]


def test_model_config_records_the_sampling():
    from visage_hf.models.configuration_visage import VisageConfig

    assert VisageConfig().frame_sampling == "ffmpeg"  # the released model's (its training clips were cut so)
    assert VisageConfig.tiny(frame_sampling="exact").frame_sampling == "exact"
    with pytest.raises(ValueError, match="frame_sampling must be one of"):
        VisageConfig.tiny(frame_sampling="nearest")
    with pytest.raises(ValueError, match="frame sampling: expected one of"):
        read_frames(__file__, sampling="nearest")
