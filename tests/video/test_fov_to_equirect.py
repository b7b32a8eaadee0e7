"""fov_to_equirect: a field-of-view frame painted on the sphere lands where the camera looked (a red disc at the
frame centre is found at the camera direction within 1°), and cropping it again (fov_crop, the forward pinhole
model) gives the frame back."""

from __future__ import annotations

import numpy as np
import pytest

from visage_hf.directions import angular_distance, vector_to_direction
from visage_hf.video.equirect import equirect_directions, fov_crop, fov_to_equirect


def _disc_frame(size: int = 96, radius: int = 8) -> np.ndarray:
    frame = np.full((size, size, 3), 40, np.uint8)
    y, x = np.mgrid[:size, :size]
    disc = (x - (size - 1) / 2) ** 2 + (y - (size - 1) / 2) ** 2 <= radius**2
    frame[disc] = (255, 0, 0)
    return frame


def _red_centroid(canvas: np.ndarray) -> tuple[float, float]:
    red = (canvas[..., 0] > 200) & (canvas[..., 1] < 60)
    rays = equirect_directions(*canvas.shape[:2])
    weight = np.sqrt(1 - rays[..., 2] ** 2)  # solid angle of an equirect pixel ∝ cos(elevation)
    centre = (rays[red] * weight[red, None]).sum(0)
    return vector_to_direction(centre / np.linalg.norm(centre))


@pytest.mark.parametrize(("azimuth", "elevation"), [(0, 0), (75, 20), (-150, -35), (179, 5), (30, 70)])
def test_red_disc_lands_at_the_camera_direction(azimuth, elevation):
    canvas = fov_to_equirect(_disc_frame(), azimuth, elevation, size=(360, 720))
    found = _red_centroid(canvas)
    assert angular_distance(*found, azimuth, elevation) < 1.0


def test_crop_of_the_painting_gives_the_frame_back():
    rng = np.random.default_rng(0)
    frame = np.kron(rng.integers(0, 256, (12, 12, 3)), np.ones((8, 8, 1))).astype(np.uint8)  # smooth blocks
    canvas = fov_to_equirect(frame, 40.0, 15.0, size=(1024, 2048))
    back = fov_crop(canvas[None], 40.0, 15.0, size=96)[0].astype(float)
    interior = (slice(12, -12), slice(12, -12))  # away from block edges the resampling cannot keep exactly
    assert np.median(np.abs(back[interior] - frame[interior])) <= 2.0


def test_outside_the_field_of_view_keeps_the_background():
    background = np.full((180, 360, 3), 7, np.uint8)
    canvas = fov_to_equirect(_disc_frame(), 0.0, 0.0, size=(180, 360), background=background)
    rays = equirect_directions(180, 360)
    behind = rays[..., 0] < 0
    assert (canvas[behind] == 7).all()
    covered = (canvas != 7).any(-1)
    assert (
        0.1 < covered.mean() < 0.2
    )  # a 90°x90° view covers about 1/6 of the sphere in pixels near the equator
