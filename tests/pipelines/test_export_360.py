"""spatial_360.mp4 for field-of-view input: the clip lands on the sphere at the camera path's direction, the file
carries spherical and SA3D metadata (re-read by our reader and by ffprobe), and the world-frame FOA keeps a
source where it was encoded."""

from __future__ import annotations

import json
import subprocess

import av
import numpy as np
import pytest

from visage_hf.audio.foa import direction_from_energy_map, encode, energy_map
from visage_hf.directions import angular_distance, vector_to_direction
from visage_hf.pipelines.export import export_generation
from visage_hf.video.camera_path import CameraPath
from visage_hf.video.equirect import equirect_directions
from visage_hf.video.io import read_audio_track
from visage_hf.video.mux import write_video
from visage_hf.video.sa3d import read_sa3d, read_spherical

FPS, SECONDS, RATE = 10, 2.0, 16_000


@pytest.fixture(scope="module")
def disc_video(tmp_path_factory):
    """A 128x96 field-of-view clip with a red disc at the centre of every frame."""
    frames = np.full((int(FPS * SECONDS), 96, 128, 3), 30, np.uint8)
    y, x = np.mgrid[:96, :128]
    frames[:, (x - 63.5) ** 2 + (y - 47.5) ** 2 <= 10**2] = (255, 0, 0)
    path = tmp_path_factory.mktemp("video") / "disc.mp4"
    write_video(path, frames, FPS)
    return path


def _red_direction(image: np.ndarray) -> tuple[float, float]:
    red = (image[..., 0] > 150) & (image[..., 1] < 90) & (image[..., 2] < 90)
    rays = equirect_directions(*image.shape[:2])
    weight = np.sqrt(1 - rays[..., 2] ** 2)  # equirect pixels shrink toward the poles
    centre = (rays[red] * weight[red, None]).sum(0)
    return vector_to_direction(centre / np.linalg.norm(centre))


def _decoded_frames(path) -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as container:
        return [(float(frame.time), frame.to_ndarray(format="rgb24")) for frame in container.decode(video=0)]


def _export(tmp_path, video, path, foa):
    return export_generation(tmp_path / "out", foa, RATE, camera_path=path, video=video, video_start=0.0)


def test_moving_clip_lands_at_the_path_direction(tmp_path, disc_video):
    path = CameraPath.from_keyframes([(0.0, -60.0, 0.0), (1.0, 0.0, 20.0), (SECONDS, 70.0, -10.0)])
    foa = encode(np.random.default_rng(0).standard_normal(int(SECONDS * RATE)).astype(np.float32) * 0.1, 0, 0)
    files = _export(tmp_path, disc_video, path, foa)
    frames = _decoded_frames(files.video_360)
    assert len(frames) == int(FPS * SECONDS) and frames[0][1].shape[1] == 2 * frames[0][1].shape[0]
    for time, image in frames[::4]:
        azimuth, elevation = path.directions_at([time])
        assert angular_distance(*_red_direction(image), azimuth[0], elevation[0]) < 1.0, time


def test_360_file_has_spherical_and_sa3d_metadata_and_the_world_frame_field(tmp_path, disc_video):
    source = (100.0, 25.0)  # a world direction outside the camera's view
    noise = np.random.default_rng(1).standard_normal(int(SECONDS * RATE)).astype(np.float32) * 0.1
    files = _export(tmp_path, disc_video, CameraPath.constant(30.0, 0.0), encode(noise, *source))
    assert read_spherical(files.video_360)["projection"] == "equirectangular"
    assert read_sa3d(files.video_360)["num_channels"] == 4
    audio, rate = read_audio_track(files.video_360)
    assert audio.shape[0] == 4 and rate == 48000
    peak = direction_from_energy_map(energy_map(audio))
    assert angular_distance(*peak, *source) < 5.0  # the 2° grid and the AAC coding


def test_ffprobe_reports_the_spherical_mapping(tmp_path, disc_video):
    files = _export(
        tmp_path, disc_video, CameraPath.constant(0.0, 0.0), encode(np.zeros(RATE, np.float32) + 0.01, 0, 0)
    )
    report = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(files.video_360)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    video = next(s for s in json.loads(report.stdout)["streams"] if s["codec_type"] == "video")
    side_data = {item.get("side_data_type"): item for item in video.get("side_data_list", [])}
    assert side_data["Spherical Mapping"]["projection"] == "equirectangular"


def test_360_input_gets_no_second_video(tmp_path):
    frames = np.zeros((4, 64, 128, 3), np.uint8)
    video = tmp_path / "pano.mp4"
    write_video(video, frames, 4, spherical=True)
    files = export_generation(
        tmp_path / "out",
        encode(np.ones(RATE, np.float32) * 0.01, 0, 0),
        RATE,
        0.0,
        0.0,
        video=video,
        equirect=True,
    )
    assert files.video_360 is None and read_spherical(files.video) is not None
