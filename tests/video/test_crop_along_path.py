"""360° input under a moving camera: every 4-fps crop shows a world-fixed object where an independent pinhole
model puts it (±1.5 px at 224²)."""

from __future__ import annotations

import math

import numpy as np

from visage_hf.directions import direction_to_vector
from visage_hf.video.camera_path import CameraPath
from visage_hf.video.clip import load_video_clip
from visage_hf.video.equirect import equirect_directions

OBJECT = (20.0, 10.0)  # world direction of a small red patch (degrees)
SIZE, FOV = 224, 90.0


def _scene(frames: int) -> np.ndarray:
    rays = equirect_directions(1024, 2048)
    near = rays @ direction_to_vector(*OBJECT) > math.cos(math.radians(1.5))
    image = np.full((1024, 2048, 3), 40, np.uint8)
    image[near] = (255, 0, 0)
    return np.repeat(image[None], frames, axis=0)


def _pinhole(camera_azimuth: float, camera_elevation: float) -> tuple[float, float]:
    """Pixel (column, row) of OBJECT in a 90° 224² view of a camera with no roll (image right = -left)."""
    target = direction_to_vector(*OBJECT)
    front = direction_to_vector(camera_azimuth, camera_elevation)
    left = direction_to_vector(camera_azimuth + 90.0, 0.0)
    up = np.cross(front, left)
    focal = SIZE / 2 / math.tan(math.radians(FOV / 2))
    depth = target @ front
    return SIZE / 2 - focal * (target @ left) / depth - 0.5, SIZE / 2 - focal * (target @ up) / depth - 0.5


def test_every_crop_of_a_pan_shows_the_object_where_the_pinhole_model_puts_it():
    path = CameraPath.from_keyframes([(0.0, -10.0, 0.0), (1.0, 30.0, 15.0), (2.0, 45.0, 5.0)])
    clip = load_video_clip(_scene(8), None, None, fps=4, equirect=True, camera_path=path)
    assert clip.frames.shape == (8, SIZE, SIZE, 3)
    azimuths, elevations = path.directions_at(np.arange(8) / 4)
    for frame, azimuth, elevation in zip(clip.frames, azimuths, elevations):
        red = (frame[..., 0] > 150) & (frame[..., 1] < 100)
        rows, cols = np.nonzero(red)
        column, row = _pinhole(azimuth, elevation)
        assert abs(cols.mean() - column) <= 1.5 and abs(rows.mean() - row) <= 1.5, (azimuth, elevation)
