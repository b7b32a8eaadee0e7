"""Pictures of direction for people: the audio energy map laid over the video, and where the camera looks.

* :func:`render_overlay_frames` — each video frame with the generated sound's energy map drawn over it. For a
  field-of-view clip every pixel is mapped to the direction it shows (rectilinear, 90° across the short side,
  like the square crop the model sees) and a full-sphere panel beside the frame shows the energy outside the
  view too, with the view's outline; a 360° (equirectangular) frame is the sphere itself.
* :func:`write_preview_video` — those frames as an H.264 MP4 with the binaural (headphone) track, so people
  can watch where the sound comes from while they hear it.
* :func:`camera_direction_picture` — a small globe showing the camera direction and its field of view.

Directions use the package convention (degrees; azimuth counter-clockwise from the front toward the left,
elevation up) and the energy-map grid of :func:`visage_hf.audio.foa.spherical_grid` (column 0 = just under +180°
at the image-left, the front in the middle, like an equirect video).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..audio.io import atomic_output_path

__all__ = [
    "FIELD_OF_VIEW",
    "camera_basis",
    "camera_direction_picture",
    "fov_outline",
    "fov_pixel_directions",
    "render_overlay_frames",
    "sample_energy_map",
    "write_preview_video",
]

# The model saw 224 x 224 crops of a 90° field of view; CLIP's processor takes the centre square of a frame.
FIELD_OF_VIEW = 90.0
_COLORMAP = "inferno"
_PANEL_BACKGROUND = (24, 24, 27)
_OUTLINE_COLOR = np.array([120, 220, 255], dtype=np.uint8)


# ============================================================================================ geometry


def camera_basis(azimuth: float, elevation: float) -> np.ndarray:
    """Rows ``(forward, left, up)`` of a camera looking at ``(azimuth, elevation)`` with no roll, as unit
    vectors in the ambisonic frame (x front, y left, z up): float64 ``(3, 3)``."""
    az, el = np.radians(azimuth), np.radians(elevation)
    forward = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    left = np.array([-np.sin(az), np.cos(az), 0.0])
    up = np.cross(forward, left)
    return np.stack([forward, left, up])


def _vectors_to_degrees(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y, z = np.moveaxis(vectors, -1, 0)
    azimuth = np.degrees(np.arctan2(y, x))
    elevation = np.degrees(np.arctan2(z, np.hypot(x, y)))
    return azimuth, elevation


def fov_pixel_directions(
    width: int, height: int, azimuth: float, elevation: float, fov: float = FIELD_OF_VIEW
) -> tuple[np.ndarray, np.ndarray]:
    """World direction ``(azimuth, elevation)`` in degrees shown at each pixel centre of a rectilinear frame,
    each float64 ``(height, width)``: the frame centre looks at ``(azimuth, elevation)``, ``fov`` degrees span
    the frame's short side, image-right is the camera's right."""
    focal = (min(width, height) / 2) / np.tan(np.radians(fov) / 2)
    columns = np.arange(width) + 0.5 - width / 2
    rows = np.arange(height) + 0.5 - height / 2
    right, down = np.meshgrid(columns, rows)
    camera = np.stack([np.full_like(right, focal), -right, -down], axis=-1)
    world = camera @ camera_basis(azimuth, elevation)
    return _vectors_to_degrees(world)


def fov_outline(
    width: int, height: int, azimuth: float, elevation: float, fov: float = FIELD_OF_VIEW, points: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Directions (degrees) along the border of the frame :func:`fov_pixel_directions` describes."""
    edge = np.linspace(0.0, 1.0, points)
    border = np.concatenate(
        [
            np.stack([edge * width, np.zeros(points)], 1),
            np.stack([np.full(points, width), edge * height], 1),
            np.stack([(1 - edge) * width, np.full(points, height)], 1),
            np.stack([np.zeros(points), (1 - edge) * height], 1),
        ]
    )
    focal = (min(width, height) / 2) / np.tan(np.radians(fov) / 2)
    camera = np.stack(
        [np.full(len(border), focal), -(border[:, 0] - width / 2), -(border[:, 1] - height / 2)], axis=-1
    )
    return _vectors_to_degrees(camera @ camera_basis(azimuth, elevation))


def _grid_position(azimuth, elevation, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Fractional (row, column) of directions on the ``spherical_grid`` layout of an ``(height, width)`` map."""
    resolution = 180.0 / height
    column = (180.0 - resolution - np.asarray(azimuth)) / resolution
    row = (90.0 - resolution - np.asarray(elevation)) / resolution
    return row, column % width


def sample_energy_map(maps: np.ndarray, azimuth, elevation) -> np.ndarray:
    """Bilinear look-up of energy maps ``(..., H, 2H)`` at directions (degrees) of any shape ``S``:
    ``(..., *S)``; azimuth wraps around the back seam, elevation clamps at the poles."""
    maps = np.asarray(maps)
    height, width = maps.shape[-2:]
    row, column = _grid_position(azimuth, elevation, height, width)
    row = np.clip(row, 0.0, height - 1.0)
    row0 = np.floor(row).astype(int)
    row1 = np.minimum(row0 + 1, height - 1)
    column0 = np.floor(column).astype(int) % width
    column1 = (column0 + 1) % width
    fr, fc = row - np.floor(row), column - np.floor(column)
    top = maps[..., row0, column0] * (1 - fc) + maps[..., row0, column1] * fc
    bottom = maps[..., row1, column0] * (1 - fc) + maps[..., row1, column1] * fc
    return top * (1 - fr) + bottom * fr


# ============================================================================================ colours


def _colormap_table() -> np.ndarray:
    from matplotlib import colormaps

    return (colormaps[_COLORMAP](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)


def _heat(values: np.ndarray, table: np.ndarray) -> np.ndarray:
    """uint8 RGB of values in [0, 1] through the colour table."""
    return table[np.clip(np.rint(values * 255), 0, 255).astype(int)]


def _display_levels(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-map contrast in [0, 1] (where the sound is now) and per-map loudness relative to the loudest map
    (so quiet moments fade instead of showing amplified noise)."""
    low = maps.min(axis=(-2, -1), keepdims=True)
    high = maps.max(axis=(-2, -1), keepdims=True)
    contrast = (maps - low) / np.maximum(high - low, 1e-12)
    peak = float(high.max())
    loudness = high[..., 0, 0] / peak if peak > 0 else np.zeros(maps.shape[0])
    return contrast, loudness


def _smooth_in_time(maps: np.ndarray) -> np.ndarray:
    """A [1, 2, 1] / 4 filter across windows: the overlay moves smoothly instead of flickering."""
    if len(maps) < 3:
        return maps
    padded = np.concatenate([maps[:1], maps, maps[-1:]])
    return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]


# ============================================================================================ frames


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR))


def _draw_points(image: np.ndarray, rows, columns, color: np.ndarray, thickness: int = 1) -> None:
    rows, columns = np.rint(rows).astype(int), np.rint(columns).astype(int)
    for dr in range(-(thickness // 2), thickness - thickness // 2):
        for dc in range(-(thickness // 2), thickness - thickness // 2):
            r, c = rows + dr, columns + dc
            inside = (r >= 0) & (r < image.shape[0]) & (c >= 0) & (c < image.shape[1])
            image[r[inside], c[inside]] = color


def _outline_pixels(azimuth, elevation, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel (row, column) of directions on an equirect image of ``height`` x ``width`` (front at the centre)."""
    column = (180.0 - np.asarray(azimuth)) / 360.0 * width
    row = (90.0 - np.asarray(elevation)) / 180.0 * height
    return row, column % width


def _label_font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ValueError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


def _sphere_panel(contrast: np.ndarray, loudness: float, height: int, outline, table) -> np.ndarray:
    """The whole-sphere map (equirect, ``height`` x ``2·height``) with the view's outline and labels."""
    from PIL import Image, ImageDraw

    width = 2 * height
    heat = _heat(contrast * np.sqrt(loudness), table)
    panel = _resize(heat, width, height).copy()
    _draw_points(panel, *_outline_pixels(*outline, height, width), _OUTLINE_COLOR, thickness=2)
    picture = Image.fromarray(panel)
    draw = ImageDraw.Draw(picture)
    font = _label_font(max(10, height // 20))
    for label, azimuth in (
        ("back", 180.0),
        ("left", 90.0),
        ("front", 0.0),
        ("right", -90.0),
        ("back", -180.0),
    ):
        x = (180.0 - azimuth) / 360.0 * width
        draw.line([(x, height - 5), (x, height - 1)], fill=(220, 220, 220), width=2)
        anchor = "ls" if azimuth == 180.0 else "rs" if azimuth == -180.0 else "ms"
        draw.text((x, height - 8), label, fill=(240, 240, 240), font=font, anchor=anchor)
    draw.text((6, 5), "whole sphere around the camera", fill=(240, 240, 240), font=font)
    return np.asarray(picture)


def render_overlay_frames(
    frames: np.ndarray,
    times: np.ndarray,
    maps: np.ndarray,
    window_seconds: float,
    azimuth: float,
    elevation: float,
    equirect: bool = False,
    height: int = 270,
) -> np.ndarray:
    """Frames with the energy map drawn over them: uint8 ``(T, height, W', 3)``.

    Args:
        frames: uint8 RGB ``(T, H, W, 3)``: a field-of-view clip looking at ``(azimuth, elevation)``, or 360°
            equirectangular frames (``equirect=True``; front at the centre, +azimuth to the left).
        times: seconds of each frame from the start of the audio ``(T,)``.
        maps: world-frame energy maps ``(n, h, 2h)`` of consecutive ``window_seconds`` windows
            (:func:`visage_hf.audio.foa.energy_map` with ``window_seconds``).
        height: output height in pixels; field-of-view frames get the whole-sphere panel (``2·height`` wide)
            on their right.
    """
    frames, maps = np.asarray(frames), _smooth_in_time(np.asarray(maps, dtype=np.float64))
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames: expected uint8 (T, H, W, 3), got shape {frames.shape}")
    if maps.ndim != 3 or len(maps) == 0:
        raise ValueError(f"maps: expected energy maps (n, H, 2H), got shape {maps.shape}")
    table = _colormap_table()
    contrast, loudness = _display_levels(maps)
    source_height, source_width = frames.shape[1:3]
    width = max(2, round(source_width * height / source_height))
    if equirect:
        outline = fov_outline(224, 224, azimuth, elevation)
        azimuths = 180.0 - (np.arange(width) + 0.5) * 360.0 / width
        elevations = 90.0 - (np.arange(height) + 0.5) * 180.0 / height
        pixel_directions = np.meshgrid(azimuths, elevations)
    else:
        outline = fov_outline(source_width, source_height, azimuth, elevation)
        pixel_directions = fov_pixel_directions(width, height, azimuth, elevation)
    index = np.clip((np.asarray(times) / window_seconds).astype(int), 0, len(maps) - 1)
    output = []
    for frame, window in zip(frames, index):
        picture = _resize(frame, width, height).astype(np.float32)
        values = sample_energy_map(contrast[window], *pixel_directions)
        alpha = (0.8 * values**1.2 * np.sqrt(loudness[window]))[..., None]
        picture = (1 - alpha) * picture + alpha * _heat(values, table).astype(np.float32)
        picture = np.clip(np.rint(picture), 0, 255).astype(np.uint8)
        if equirect:
            _draw_points(picture, *_outline_pixels(*outline, height, width), _OUTLINE_COLOR, thickness=2)
        else:
            panel = _sphere_panel(contrast[window], loudness[window], height, outline, table)
            picture = np.concatenate([picture, panel], axis=1)
        output.append(picture)
    return np.stack(output)


# ============================================================================================ video file


def write_preview_video(
    path: str | os.PathLike, frames: np.ndarray, fps: float, audio: np.ndarray, sample_rate: int
) -> Path:
    """Write frames ``(T, H, W, 3)`` at ``fps`` and stereo ``audio`` ``(2, samples)`` as an MP4 browsers play
    (H.264 yuv420p + AAC), atomically; returns the path."""
    import av

    frames = np.asarray(frames)
    audio = np.ascontiguousarray(np.clip(audio, -1.0, 1.0), dtype=np.float32)
    if audio.ndim != 2 or audio.shape[0] != 2:
        raise ValueError(f"audio: expected stereo (2, samples), got shape {audio.shape}")
    # 4:2:0 chroma needs even sizes.
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    path = Path(path)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with (
        atomic_output_path(path) as temporary,
        av.open(str(temporary), "w", format="mp4", options={"movflags": "+faststart"}) as container,
    ):
        video = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        video.width, video.height, video.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        sound = container.add_stream("aac", rate=sample_rate, layout="stereo")
        sound.bit_rate = 192_000
        for image in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), "rgb24")))
        container.mux(video.encode())
        chunk = 4096
        for offset in range(0, audio.shape[1], chunk):
            frame = av.AudioFrame.from_ndarray(
                audio[:, offset : offset + chunk], format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts = sample_rate, offset
            container.mux(sound.encode(frame))
        container.mux(sound.encode())
    return path


# ============================================================================================ camera globe


def _draw_globe(axis, azimuth: float, elevation: float) -> None:
    axis.set_axis_off()
    axis.view_init(elev=24, azim=-125)  # seen from above, behind-right of the listener: left is on the left
    axis.set_box_aspect((1, 1, 1))
    axis.set_proj_type("ortho")
    theta = np.linspace(0, 2 * np.pi, 91)
    for latitude in (-60, -30, 0, 30, 60):
        radius, height = np.cos(np.radians(latitude)), np.sin(np.radians(latitude))
        style = (
            {"color": "#6b7280", "linewidth": 1.3}
            if latitude == 0
            else {"color": "#d1d5db", "linewidth": 0.6}
        )
        axis.plot(radius * np.cos(theta), radius * np.sin(theta), np.full_like(theta, height), **style)
    phi = np.linspace(-np.pi / 2, np.pi / 2, 46)
    for longitude in range(0, 180, 30):
        lon = np.radians(longitude)
        for sign in (1, -1):
            axis.plot(
                sign * np.cos(phi) * np.cos(lon), sign * np.cos(phi) * np.sin(lon), np.sin(phi),
                color="#d1d5db", linewidth=0.6,
            )  # fmt: skip
    for label, vector in (("front", (1.3, 0, 0)), ("left", (0, 1.35, 0)), ("up", (0, 0, 1.2))):
        axis.text(*vector, label, color="#374151", fontsize=8, ha="center", va="center")
    outline_az, outline_el = fov_outline(1, 1, azimuth, elevation, points=24)
    az, el = np.radians(outline_az), np.radians(outline_el)
    axis.plot(np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el), color="#f97316", linewidth=1.6)
    forward = camera_basis(azimuth, elevation)[0]
    axis.quiver(0, 0, 0, *forward, color="#ea580c", linewidth=2.2, arrow_length_ratio=0.18)
    axis.scatter([0], [0], [0], color="#111827", s=14)
    for setter in (axis.set_xlim, axis.set_ylim, axis.set_zlim):
        setter(-0.95, 0.95)


def _draw_map(axis, azimuth: float, elevation: float) -> None:
    axis.set_facecolor("#f3f4f6")
    axis.set_xlim(180, -180)  # like an equirect video and the energy map: left on the left
    axis.set_ylim(-90, 90)
    axis.set_xticks([180, 90, 0, -90, -180], ["back", "left", "front", "right", "back"], fontsize=7)
    axis.set_yticks([-45, 0, 45], ["-45°", "0°", "+45°"], fontsize=7)
    axis.grid(color="white", linewidth=0.8)
    axis.set_aspect("equal")
    outline_az, outline_el = fov_outline(1, 1, azimuth, elevation, points=48)
    # Break the outline where it wraps across the back seam so no line crosses the whole map.
    jumps = np.flatnonzero(np.abs(np.diff(outline_az)) > 180) + 1
    for az, el in zip(np.split(outline_az, jumps), np.split(outline_el, jumps)):
        axis.plot(az, el, color="#f97316", linewidth=1.4)
    axis.plot([azimuth], [elevation], marker="o", color="#ea580c", markersize=5)
    for side in axis.spines.values():
        side.set_visible(False)
    axis.tick_params(length=0, pad=2)


def camera_direction_picture(azimuth: float, elevation: float, height: int = 220) -> np.ndarray:
    """Where the camera looks: a globe seen from above and behind the listener (the arrow is the camera
    direction, the orange outline its 90° field of view) beside the same on an equirectangular map laid out
    like the energy map (left on the left, the front in the middle): uint8 RGB ``(height, 2.4·height, 3)``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..directions import check_elevation, wrap_azimuth

    azimuth, elevation = float(wrap_azimuth(azimuth)), float(check_elevation(elevation))
    figure = Figure(figsize=(2.4 * height / 100, height / 100), dpi=100)
    canvas = FigureCanvasAgg(figure)
    _draw_globe(figure.add_axes((0.0, 0.0, 0.42, 0.92), projection="3d"), azimuth, elevation)
    _draw_map(figure.add_axes((0.5, 0.2, 0.47, 0.62)), azimuth, elevation)
    figure.suptitle(f"camera: azimuth {azimuth:+.0f}°, elevation {elevation:+.0f}°", fontsize=9, y=0.97)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
