"""Direction conventions: checked against the original's formulas and its crop / augmentation geometry,
restated here from docs/original-implementation.md §4.3, §5.5, §5.6 and §11 (never by calling our own code twice)."""

import numpy as np
import pytest

from visage_hf import directions

# ----------------------------------------------------------------------------- independent references


def _ry(angle):  # docs/original-implementation.md §5.5, as in PreprocessorAmbi.roty
    return np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])


def _rx(angle):  # docs/original-implementation.md §5.5, as in PreprocessorAmbi.rotx
    return np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])


def _original_model_vector(e, a, augment=False):
    if augment:
        a = a + 45
        if a > 179:
            a = a - 180
    d = _ry((2 * a - 179) * np.pi / 180) @ _rx((89 - 2 * e) * np.pi / 180) @ np.array([0.0, 0.0, 1.0])
    return np.float32(d)


def _unit(azimuth, elevation):
    az, el = np.deg2rad(azimuth), np.deg2rad(elevation)
    return np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])


def _angle_between(u, v):
    return np.rad2deg(np.arccos(np.clip(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v), -1, 1)))


EQUIRECT_WIDTH, EQUIRECT_HEIGHT = 896, 448  # the original's clip size (§5.2)


def _crop_view_centre_pixel(e, a):
    """Where the original's FoV crop (`project`, §5.6) looks, in equirect pixels (column, row).

    yaw = φ = 2a − 179 and pitch = θ = 89 − 2e; the centre ray (0, 0, 1) is rotated by R_y(yaw)·R_x(pitch);
    longitude = sign(x)·acos(z/√(x²+z²)) (positive toward image-right), latitude = atan(y/√(x²+z²))
    (positive = down); column = lon/π·W/2 + W/2, row = lat/(π/2)·H/2 + H/2 (the 1-px MATLAB shift omitted).
    """
    x, y, z = _ry(np.deg2rad(2 * a - 179)) @ _rx(np.deg2rad(89 - 2 * e)) @ np.array([0.0, 0.0, 1.0])
    longitude = np.sign(x) * np.arccos(z / np.hypot(x, z))
    latitude = np.arctan(y / np.hypot(x, z))
    column = longitude / np.pi * (EQUIRECT_WIDTH / 2) + EQUIRECT_WIDTH / 2
    row = latitude / (np.pi / 2) * (EQUIRECT_HEIGHT / 2) + EQUIRECT_HEIGHT / 2
    return column, row


def _ambix_direction_of_pixel(column, row):
    """YouTube/AmbiX equirect layout: image centre = front, image-left = +y (positive azimuth), top = up."""
    azimuth = (EQUIRECT_WIDTH / 2 - column) / (EQUIRECT_WIDTH / 2) * 180.0
    elevation = (EQUIRECT_HEIGHT / 2 - row) / (EQUIRECT_HEIGHT / 2) * 90.0
    return azimuth, elevation


def _original_augmentation(foa):
    """`infer_dac.py --rotate`: Y' = −X, X' = Y on (W, Y, Z, X) channels (§4.3)."""
    w, y, z, x = foa
    return np.stack([w, -x, z, y])


def _intensity_direction(foa):
    w, y, z, x = foa
    return np.array([np.mean(w * x), np.mean(w * y), np.mean(w * z)])


# ----------------------------------------------------------------------------- model vector


def test_model_vector_anchors():
    np.testing.assert_allclose(
        directions.model_direction_vector(45, 90), [0.0174497, 0.0174524, 0.9996954], atol=5e-8
    )
    np.testing.assert_allclose(
        directions.model_direction_vector(45, 90, augment=True), [0.9996954, 0.0174524, -0.0174497], atol=5e-8
    )


def test_model_vector_is_bit_exact_for_every_index():
    e, a = np.meshgrid(np.arange(90), np.arange(180), indexing="ij")
    ours = directions.model_direction_vector(e, a)
    ours_augmented = directions.model_direction_vector(e, a, augment=True)
    assert ours.dtype == np.float32 and ours.shape == (90, 180, 3)
    for ei, ai in [(0, 0), (45, 90), (89, 179), (12, 150), (70, 140), (44, 134), (3, 135)]:
        assert np.array_equal(ours[ei, ai], _original_model_vector(ei, ai))
        assert np.array_equal(ours_augmented[ei, ai], _original_model_vector(ei, ai, augment=True))
    # All 90 x 180 = 16,200 indices (and their augmented twins), each against the scalar restatement.
    reference = np.array([[_original_model_vector(ei, ai) for ai in range(180)] for ei in range(90)])
    augmented = np.array(
        [[_original_model_vector(ei, ai, augment=True) for ai in range(180)] for ei in range(90)]
    )
    assert reference.shape == (90, 180, 3)
    assert np.array_equal(ours, reference)
    assert np.array_equal(ours_augmented, augmented)


def test_public_degrees_map_to_the_model_vector():
    e, a = np.meshgrid(np.arange(90), np.arange(180), indexing="ij")
    azimuth, elevation = directions.indices_to_direction(e, a)
    np.testing.assert_allclose(
        directions.direction_to_model_vector(azimuth, elevation),
        directions.model_direction_vector(e, a),
        atol=1e-6,
    )
    # Augmented index a + 45 is the camera turned 90° to the right: azimuth − 90.
    np.testing.assert_allclose(
        directions.direction_to_model_vector(azimuth - 90, elevation),
        directions.model_direction_vector(e, a, augment=True),
        atol=1e-6,
    )
    back_azimuth, back_elevation = directions.model_vector_to_direction(
        directions.model_direction_vector(e, a)
    )
    np.testing.assert_allclose(back_elevation, elevation, atol=1e-4)
    np.testing.assert_allclose(np.cos(np.deg2rad(back_azimuth - azimuth)), 1.0, atol=1e-8)


def test_model_vector_frame_axes():
    # Camera frame: x = image-right, y = image-down, z = forward.
    np.testing.assert_allclose(directions.direction_to_model_vector(0, 0), [0, 0, 1], atol=1e-7)
    np.testing.assert_allclose(directions.direction_to_model_vector(-90, 0), [1, 0, 0], atol=1e-7)  # right
    np.testing.assert_allclose(directions.direction_to_model_vector(0, 90), [0, -1, 0], atol=1e-7)  # up


# ----------------------------------------------------------------------------- the azimuth mirror


@pytest.mark.parametrize(
    "e, a", [(45, 90), (44, 45), (45, 135), (30, 10), (60, 170), (45, 0), (20, 150), (80, 100)]
)
def test_camera_azimuth_mirror(e, a):
    """The camera's ambisonic azimuth is 179 − 2a, not the evaluation scripts' 2a − 179 (module docstring)."""
    # 1. Crop geometry: where the FoV crop looks, read in the AmbiX equirect layout.
    camera = _ambix_direction_of_pixel(*_crop_view_centre_pixel(e, a))
    corrected = directions.indices_to_direction(e, a)
    original = directions.indices_to_direction(e, a, mode="original")
    assert _angle_between(_unit(*corrected), _unit(*camera)) < 1e-6
    assert original[0] == pytest.approx(-corrected[0]) and original[1] == corrected[1]

    # 2. Augmentation: a plane wave at the camera, swapped Y' = −X, X' = Y, must land on camera a' = a + 45.
    a_augmented = a + 45 - (180 if a + 45 > 179 else 0)
    assert directions.augment_azimuth_index(a) == a_augmented
    camera_augmented = _ambix_direction_of_pixel(*_crop_view_centre_pixel(e, a_augmented))
    signal = np.random.default_rng(a).standard_normal(512)
    for mode, expect_match in (("corrected", True), ("original", False)):
        source = _unit(*directions.indices_to_direction(e, a, mode=mode))
        foa = np.stack([signal, signal * source[1], signal * source[2], signal * source[0]])
        landed = _intensity_direction(_original_augmentation(foa))
        target = _unit(*directions.indices_to_direction(e, a_augmented, mode=mode))
        error = _angle_between(landed, target)
        if expect_match:
            assert error < 1e-6
            assert _angle_between(landed, _unit(*camera_augmented)) < 1e-6
        else:  # the mirrored reading lands 180° away in azimuth, at the right elevation
            target_azimuth, target_elevation = directions.indices_to_direction(e, a_augmented, mode=mode)
            assert _angle_between(landed, _unit(target_azimuth + 180, target_elevation)) < 1e-6
            assert error > 30


# ----------------------------------------------------------------------------- indices <-> degrees


@pytest.mark.parametrize("mode", ["corrected", "original"])
def test_indices_round_trip(mode):
    e, a = np.meshgrid(np.arange(90), np.arange(180), indexing="ij")
    azimuth, elevation = directions.indices_to_direction(e, a, mode=mode)
    assert azimuth.min() == -179 and azimuth.max() == 179 and elevation.min() == -89 and elevation.max() == 89
    back_e, back_a = directions.direction_to_indices(azimuth, elevation, mode=mode)
    assert np.array_equal(back_e, e) and np.array_equal(back_a, a)
    # Nearest index for off-grid directions, across the seam: 180° is 1° from both a = 0 and a = 179.
    near_e, near_a = directions.direction_to_indices(179.6 if mode == "corrected" else -179.6, 0.4, mode=mode)
    assert (near_e, near_a) == (44, 0)


def test_indices_to_direction_values():
    assert directions.indices_to_direction(45, 90) == (-1.0, -1.0)
    assert directions.indices_to_direction(0, 45) == (89.0, 89.0)  # a = 45: left quarter of the panorama
    assert directions.indices_to_direction(0, 45, mode="original") == (-89.0, 89.0)
    with pytest.raises(ValueError, match="azimuth_index"):
        directions.indices_to_direction(0, 180)
    with pytest.raises(ValueError, match="elevation_index"):
        directions.indices_to_direction(-1, 0)
    with pytest.raises(ValueError, match="integers"):
        directions.indices_to_direction(0.5, 0)
    with pytest.raises(ValueError, match="mode"):
        directions.indices_to_direction(0, 0, mode="ambix")


# ----------------------------------------------------------------------------- degrees <-> vectors


@pytest.mark.parametrize(
    "azimuth, wrapped",
    [(0, 0), (180, 180), (-180, 180), (190, -170), (-190, 170), (540, 180), (359.5, -0.5), (-720, 0)],
)
def test_wrap_azimuth(azimuth, wrapped):
    assert directions.wrap_azimuth(azimuth) == pytest.approx(wrapped)


def test_elevation_validation():
    assert directions.check_elevation(90) == 90 and directions.check_elevation(-90) == -90
    for bad in (90.0001, -91, np.nan):
        with pytest.raises(ValueError, match=r"elevation"):
            directions.direction_to_vector(0, bad)
    with pytest.raises(ValueError, match=r"\[-90, 90\].*95"):
        directions.check_elevation(np.array([0, 95]))


def test_vectors_match_the_textbook_axes():
    np.testing.assert_allclose(directions.direction_to_vector(0, 0), [1, 0, 0], atol=1e-15)
    np.testing.assert_allclose(directions.direction_to_vector(90, 0), [0, 1, 0], atol=1e-15)  # left
    np.testing.assert_allclose(directions.direction_to_vector(-90, 0), [0, -1, 0], atol=1e-15)
    np.testing.assert_allclose(directions.direction_to_vector(123, 90), [0, 0, 1], atol=1e-15)
    rng = np.random.default_rng(0)
    azimuth, elevation = rng.uniform(-180, 180, 200), rng.uniform(-89, 89, 200)
    np.testing.assert_allclose(
        directions.direction_to_vector(azimuth, elevation), _unit(azimuth, elevation).T
    )
    back_azimuth, back_elevation = directions.vector_to_direction(3.0 * _unit(azimuth, elevation).T)
    np.testing.assert_allclose(back_elevation, elevation, atol=1e-9)
    np.testing.assert_allclose(back_azimuth, azimuth, atol=1e-9)
    assert directions.vector_to_direction([-1.0, -0.0, 0.0]) == (180.0, 0.0)
    with pytest.raises(ValueError, match="zero vector"):
        directions.vector_to_direction([0.0, 0.0, 0.0])


def test_angular_distance():
    assert directions.angular_distance(179, 0, -179, 0) == pytest.approx(2.0)
    assert directions.angular_distance(0, 90, 123, 90) == pytest.approx(0.0, abs=1e-6)
    assert directions.angular_distance(0, 0, 180, 0) == pytest.approx(180.0)
    assert directions.angular_distance(10, 20, 10, 20) == 0.0
