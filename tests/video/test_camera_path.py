"""CameraPath: keyframes interpolated along the great circle (checked against closed forms), CSV parsing and
its one-line errors."""

from __future__ import annotations

import numpy as np
import pytest

from visage_hf.directions import direction_to_vector
from visage_hf.video.camera_path import CameraPath


def _angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)))


@pytest.mark.parametrize(
    ("start", "end", "midpoint"),
    [((-80, 0), (80, 0), (0, 0)), ((170, 0), (-170, 0), (180, 0)), ((0, 80), (180, 80), (0, 90))],
)
def test_midpoint_is_the_normalised_sum_of_the_endpoints(start, end, midpoint):
    """On a great circle the midpoint is (a + b) / |a + b|: the short way, across the seam and the pole."""
    path = CameraPath.from_keyframes([(0.0, *start), (2.0, *end)])
    got = path.vectors_at([1.0])[0]
    a, b = direction_to_vector(*start), direction_to_vector(*end)
    expected = (a + b) / np.linalg.norm(a + b)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    np.testing.assert_allclose(got, direction_to_vector(*midpoint), atol=1e-9)


def test_constant_angular_speed_and_held_ends():
    path = CameraPath.from_keyframes([(1.0, -60, 0), (3.0, 60, 30)])
    times = np.linspace(1.0, 3.0, 21)
    vectors = path.vectors_at(times)
    steps = _angle(vectors[:-1], vectors[1:])
    np.testing.assert_allclose(steps, steps[0], rtol=1e-9)
    total = _angle(direction_to_vector(-60, 0), direction_to_vector(60, 30))
    assert steps.sum() == pytest.approx(total, rel=1e-9)
    np.testing.assert_allclose(path.vectors_at([0.0, 5.0]), vectors[[0, -1]], atol=1e-12)


def test_constant_path_gives_its_direction_exactly():
    path = CameraPath.constant(30.0, -10.0)
    azimuth, elevation = path.directions_at(np.arange(5) / 4)
    assert (azimuth == 30.0).all() and (elevation == -10.0).all()
    assert path.is_constant
    path.check_covers(0.0, 100.0)  # a constant path spans any clip
    assert not CameraPath.from_keyframes([(0, 0, 0), (1, 10, 0)]).is_constant


def test_csv_round_trip(tmp_path):
    csv_file = tmp_path / "path.csv"
    csv_file.write_text("Elevation, time ,azimuth,note\n0,0.0,-90,start\n10,4.0,90,end\n")
    path = CameraPath.from_csv(csv_file)
    np.testing.assert_array_equal(path.times, [0.0, 4.0])
    np.testing.assert_array_equal(path.azimuth, [-90.0, 90.0])
    np.testing.assert_array_equal(path.elevation, [0.0, 10.0])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("t,azimuth,elevation\n0,0,0\n", "missing column"),
        ("time,azimuth,elevation\n1,0,0\n0,10,0\n", "strictly increasing"),
        ("time,azimuth,elevation\n0,nan,0\n", "must be finite"),
        ("time,azimuth,elevation\n0,zero,0\n", "is not a number"),
        ("time,azimuth,elevation\n0,0,95\n", r"\[-90, 90\]"),
        ("time,azimuth,elevation\n", "no keyframes"),
        ("time,azimuth,elevation\n0,0,0\n1,180,0\n", "opposite"),
    ],
)
def test_bad_csv_is_one_clear_error(tmp_path, text, message):
    csv_file = tmp_path / "path.csv"
    csv_file.write_text(text)
    with pytest.raises(ValueError, match=message):
        CameraPath.from_csv(csv_file)


def test_path_shorter_than_the_clip_is_refused():
    path = CameraPath.from_keyframes([(1.0, 0, 0), (4.0, 90, 0)])
    path.check_covers(1.0, 4.0)
    with pytest.raises(ValueError, match="covers 1–4 s but the clip is 0–4 s"):
        path.check_covers(0.0, 4.0)
    with pytest.raises(ValueError, match="add keyframes"):
        path.check_covers(1.0, 5.0)
