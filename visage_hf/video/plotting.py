"""Figures: equirectangular energy-map heat maps written as PNG (matplotlib, Agg, imported lazily)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..audio.foa import direction_from_energy_map
from ..audio.io import atomic_output_path

__all__ = ["plot_energy_map"]

_MAX_COLUMNS = 5


def _map_extent(height: int, width: int) -> tuple[float, float, float, float]:
    """imshow extent that puts every pixel centre on its grid angle (``foa.spherical_grid`` layout)."""
    from ..audio.foa import spherical_grid

    resolution = 180.0 / height
    azimuths, elevations = spherical_grid(resolution)
    half = resolution / 2
    return azimuths[0] + half, azimuths[-1] - half, elevations[-1] - half, elevations[0] + half


def plot_energy_map(
    maps,
    path: str | os.PathLike,
    title: str | None = None,
    window_seconds: float | None = None,
    mark_peak: bool = True,
    max_frames: int = 60,
    camera: tuple[float, float] | np.ndarray | None = None,
) -> Path:
    """Write an energy map as an equirectangular heat map PNG (atomically) and return its path.

    The x axis is azimuth in degrees, +180 (behind, via the left) at the left edge through 0 (front) to
    −180 at the right edge, like an equirect video; the y axis is elevation, +90 at the top. A white cross
    marks each map's maximum when ``mark_peak``; a flat map (silence, or sound equally loud everywhere) has none
    and says "silent: no loudest direction" (all zero) or "flat map: no loudest direction" instead of marking a
    cell no sound came from.

    Args:
        maps: ``(H, 2H)`` for one map, or ``(n, H, 2H)`` per-window maps, drawn as a grid of subplots in one
            PNG (up to 5 per row, shared colour scale, titled with their time span when ``window_seconds``
            is given, else with their index). Only the first ``max_frames`` windows are drawn; the title
            says so when there are more.
        path: output ``.png``.
        title: figure title.
        camera: ``(azimuth, elevation)`` degrees of the camera, marked with a circle, or ``(k, 2)`` directions
            of a moving camera (its path, one small circle each); a legend names the marks.
    """
    # The Agg canvas is attached to this figure only: no pyplot, no global backend switch, no GUI.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    maps, single = _check_maps(maps)
    total = maps.shape[0]
    maps = maps[:max_frames]
    count = maps.shape[0]
    if count < total:
        title = f"{title + ': ' if title else ''}first {count} of {total} windows"
    columns = min(count, _MAX_COLUMNS)
    rows = -(-count // columns)
    figure = Figure(figsize=(4.2 * columns + 1.2, 2.4 * rows + 0.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False).ravel())
    low, high = float(maps.min()), float(maps.max())
    image = None
    for index, axis in enumerate(axes):
        if index >= count:
            axis.set_axis_off()
            continue
        image = _draw_map(axis, maps[index], low, high, mark_peak, camera)
        if not single:
            axis.set_title(_window_label(index, window_seconds), fontsize=9)
    figure.colorbar(image, ax=axes.tolist(), label="RMS", shrink=0.9)
    if title:
        figure.suptitle(title)

    path = Path(path)
    with atomic_output_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=100)
    return path


def _check_maps(maps) -> tuple[np.ndarray, bool]:
    """``(n, H, 2H)`` float64 maps and whether a single ``(H, 2H)`` map was given."""
    maps = np.asarray(maps, dtype=np.float64)
    single = maps.ndim == 2
    if single:
        maps = maps[None]
    if maps.ndim != 3 or maps.shape[-1] != 2 * maps.shape[-2] or maps.shape[0] == 0:
        raise ValueError(f"expected energy maps of shape (H, 2H) or (n, H, 2H), got shape {np.shape(maps)}")
    if not np.isfinite(maps).all():
        raise ValueError("expected finite energy-map values, got NaN/inf")
    return maps, single


def _draw_map(axis, energy_map: np.ndarray, low: float, high: float, mark_peak: bool, camera=None):
    """One ``(H, 2H)`` map on ``axis`` with azimuth/elevation ticks; a white cross at its maximum, a cyan circle
    at ``camera`` (azimuth, elevation), and a legend naming them."""
    extent = _map_extent(*energy_map.shape)
    image = axis.imshow(energy_map, extent=extent, aspect="auto", cmap="inferno", vmin=low, vmax=high)
    axis.set_xticks([180, 90, 0, -90, -180])
    axis.set_yticks([90, 45, 0, -45, -90])
    axis.set_xlabel("azimuth (°, + = left)")
    axis.set_ylabel("elevation (°)")
    flat = mark_peak and np.isnan(direction_from_energy_map(energy_map)[0])
    if flat:  # silence (all zero) or a field equally loud everywhere: no cell is "the" direction
        words = "silent" if not energy_map.any() else "flat map"
        axis.text(0.5, 0.5, f"{words}: no loudest direction", transform=axis.transAxes, ha="center",
                  va="center", color="white", fontsize=9)  # fmt: skip
    elif mark_peak:
        row, column = np.unravel_index(np.argmax(energy_map), energy_map.shape)
        resolution = 180.0 / energy_map.shape[0]
        axis.plot(
            extent[0] - resolution * (column + 0.5),
            extent[3] - resolution * (row + 0.5),
            marker="x",
            color="white",
            markersize=8,
            linestyle="none",
            label="loudest direction",
        )
    if camera is not None:
        track = np.atleast_2d(np.asarray(camera, dtype=np.float64))  # one direction, or a path (k, 2)
        azimuth = (track[:, 0] + 180.0) % 360.0 - 180.0  # the map's range, -180..180
        moving = len(track) > 1
        axis.plot(azimuth, track[:, 1], marker="o", markersize=4 if moving else 9, markerfacecolor="none",
                  markeredgecolor="cyan", linestyle="none",
                  label="camera path (4 fps)" if moving else "camera direction")  # fmt: skip
    if (mark_peak and not flat) or camera is not None:
        axis.legend(loc="lower left", fontsize=7, framealpha=0.6)
    return image


def _window_label(index: int, window_seconds: float | None) -> str:
    if window_seconds is None:
        return f"window {index}"
    return f"{index * window_seconds:.2f}–{(index + 1) * window_seconds:.2f} s"
