"""The look-around player: what the browser needs to render FOA binaurally while the listener turns.

The page's player (``assets/lookaround.js``) is a small WebAudio graph that applies **the same** spherical-
harmonic-domain binaural filters as :mod:`visage_hf.audio.binaural` (MIT KEMAR, cube decoder, max-rE): the FOA
(4-channel PCM WAV, decoded by the browser) is rotated by a 3x3 gain matrix that follows the head, each of the
4 channels feeds one two-channel ``ConvolverNode`` (left and right filter of that channel), and the ears are
summed. With the head at the camera direction it renders what ``binaural.wav`` holds (before its peak limit).

This module exports the filters (:func:`binaural_filter_payload`), describes a loaded clip to the player
(:func:`player_config`), and prepares any AmbiX / FuMa / SA3D-MP4 file for the "listen to any AmbiX file" tab
(:func:`prepare_listening`): checked, converted to AmbiX, written as a 4-channel float WAV, with its energy
map over time as a video the player shows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .logic import OVERLAY_FPS, DemoError, DemoLimits

ASSETS = Path(__file__).parent / "assets"
PLAYER_SCRIPT = ASSETS / "lookaround.js"
PLAYER_STYLE = ASSETS / "lookaround.css"
MEDIA_SUFFIXES = {".mp4", ".mov", ".m4a", ".m4v"}
SOUND_SUFFIXES = {".wav", ".flac"}
ENERGY_MOVIE_HEIGHT = 240
_SA3D_NORMALIZATIONS = {0: "sn3d", 1: "n3d"}


def player_head() -> str:
    """The ``<script>`` and ``<style>`` the page's ``head`` gets: the player, inline (nothing is fetched)."""
    return (
        f"<style>{PLAYER_STYLE.read_text(encoding='utf-8')}</style>\n"
        f"<script>{PLAYER_SCRIPT.read_text(encoding='utf-8')}</script>"
    )


def player_markup(name: str) -> str:
    """The HTML of one player (``name`` tells the players of the page apart); the script fills it in."""
    return (
        f'<div class="visage-lookaround" id="lookaround-{name}" data-player="{name}">'
        '<p class="la-empty">The look-around player appears here.</p></div>'
    )


@lru_cache(maxsize=8)
def _filters(sample_rate: int) -> np.ndarray:
    from ..audio.binaural import BinauralRenderer

    return BinauralRenderer(peak="none").filters(sample_rate).astype(np.float32)


def binaural_filter_payload(sample_rate: int) -> dict:
    """The binaural filters at ``sample_rate`` as JSON-ready lists: ``{"sampleRate", "left": (4, taps),
    "right": (4, taps)}``, channel order W, Y, Z, X — exactly :func:`visage_hf.audio.binaural.binaural_filters`
    (float32), so the browser's render equals :class:`~visage_hf.audio.binaural.BinauralRenderer`'s."""
    filters = _filters(int(sample_rate))
    return {
        "sampleRate": int(sample_rate),
        "left": filters[0].tolist(),
        "right": filters[1].tolist(),
    }


def player_config(
    sample_rate: int,
    camera_azimuth: float = 0.0,
    camera_elevation: float = 0.0,
    sphere_from: float | None = None,
    title: str = "",
) -> dict:
    """What the player needs besides the two media URLs.

    Args:
        sample_rate: Hz of the FOA WAV (the player's audio context runs at this rate).
        camera_azimuth, camera_elevation: the camera direction in degrees; "follow the camera" faces it.
        sphere_from: where, as a fraction of the video's width, a whole-sphere (equirectangular, front in
            the middle, left on the left) picture starts in the video; the player marks the listener's gaze
            there. ``None``: the video has no such picture.
    """
    return {
        "filters": binaural_filter_payload(sample_rate),
        "camera": [float(camera_azimuth), float(camera_elevation)],
        "sphereFrom": sphere_from,
        "title": title,
    }


def sphere_start_of_overlay(overlay_video: str | os.PathLike) -> float:
    """Where the whole-sphere panel of an overlay video (:func:`~visage_hf.video.overlay.render_overlay_frames`)
    starts, as a fraction of its width: the panel is twice as wide as high and on the right (360° frames are
    all panel: 0)."""
    import av

    with av.open(str(overlay_video)) as container:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
    return max(0.0, (width - 2 * height) / width)


# ============================================================================================ any AmbiX file


def _read_media_foa(path: Path) -> tuple[np.ndarray, int]:
    from ..audio.foa import n3d_to_sn3d
    from ..video.io import read_audio_track
    from ..video.sa3d import read_sa3d

    try:
        sa3d = read_sa3d(path)
    except (ValueError, OSError) as error:
        raise DemoError(f"{path.name} is not a readable MP4/MOV file ({error}).") from None
    if sa3d is None:
        raise DemoError(
            f"{path.name} has no spatial-audio (SA3D) box: it is not marked as ambisonics. "
            "Upload its audio as a 4-channel WAV or FLAC instead."
        )
    if sa3d["ambisonic_order"] != 1 or sa3d["num_channels"] < 4:
        raise DemoError(
            f"{path.name} holds order-{sa3d['ambisonic_order']} ambisonics in {sa3d['num_channels']} channels; "
            "this player renders first order (4 channels)."
        )
    try:
        audio, sample_rate = read_audio_track(path)
    except (ValueError, OSError) as error:
        raise DemoError(f"The audio of {path.name} could not be decoded ({error}).") from None
    order = [int(index) for index in sa3d["channel_map"][:4]]
    if audio.shape[0] < 4 or max(order) >= audio.shape[0]:
        raise DemoError(
            f"{path.name}: its audio track has {audio.shape[0]} channels, its SA3D box expects 4."
        )
    foa = audio[order]  # channel_map[acn] = the track channel holding ACN channel acn
    if _SA3D_NORMALIZATIONS.get(sa3d["ambisonic_normalization"]) == "n3d":
        foa = n3d_to_sn3d(foa)
    return foa.astype(np.float32), sample_rate


def _read_sound_file(path: Path) -> tuple[np.ndarray, int]:
    from ..audio.io import read_audio

    try:
        return read_audio(path)
    except (ValueError, OSError) as error:
        reason = " ".join(str(error).replace(str(path), path.name).split())
    if reason.startswith("could not read audio"):
        raise DemoError(
            f"{path.name} could not be read as audio: expected a 4-channel WAV or FLAC (AmbiX or FuMa) "
            "or an MP4 with spatial audio."
        )
    # read_audio's own refusals (NaN samples, a truncated WAV, over a limit) say what is wrong.
    raise DemoError(f"{path.name} cannot be played: {reason.removeprefix(path.name + ': ')}")


def read_ambisonics_file(path: str | os.PathLike, fuma: bool = False) -> tuple[np.ndarray, int]:
    """Read an uploaded first-order ambisonics file as AmbiX: float32 ``(4, samples)`` and its rate.

    WAV / FLAC: 4 channels, AmbiX (W, Y, Z, X; SN3D) or, with ``fuma``, FuMa (W, X, Y, Z; W at −3 dB).
    MP4 / MOV: the audio track of a file with an ``SA3D`` box (its channel map and normalisation are applied).

    Raises:
        DemoError: a one-line reason (empty, not audio, not 4 channels, NaN/infinite samples, ...).
    """
    from ..audio.foa import fuma_to_ambix

    path = Path(path)
    if not path.is_file():
        raise DemoError("No file was uploaded.")
    if path.stat().st_size == 0:
        raise DemoError(f"{path.name} is empty (0 bytes).")
    suffix = path.suffix.lower()
    if suffix in MEDIA_SUFFIXES:
        foa, sample_rate = _read_media_foa(path)
    elif suffix in SOUND_SUFFIXES:
        foa, sample_rate = _read_sound_file(path)
    else:
        raise DemoError(
            f"{path.name}: expected a .wav, .flac, .mp4 or .mov file, got {suffix or 'no extension'}."
        )
    if foa.shape[0] != 4:
        raise DemoError(
            f"{path.name} has {foa.shape[0]} channel{'s' if foa.shape[0] != 1 else ''}; first-order ambisonics "
            "has 4 (AmbiX W, Y, Z, X or FuMa W, X, Y, Z)."
        )
    if foa.shape[1] == 0:
        raise DemoError(f"{path.name} holds no samples.")
    if not np.all(np.isfinite(foa)):
        raise DemoError(f"{path.name} contains NaN or infinite samples; it cannot be played.")
    if fuma and suffix in SOUND_SUFFIXES:
        foa = fuma_to_ambix(foa)
    return np.ascontiguousarray(foa, dtype=np.float32), int(sample_rate)


@dataclass(frozen=True)
class ListeningResult:
    """Files of one "listen to any AmbiX file" request (all in ``folder``) and the player's settings."""

    folder: Path
    foa: Path
    energy_video: Path
    energy_map: Path
    config: dict
    summary: str


def _energy_movie(path: Path, foa: np.ndarray, sample_rate: int) -> Path:
    """The energy map over time as a video: the whole sphere (front in the middle), one frame per window,
    with the front-facing binaural mix as its sound (the player mutes it)."""
    from ..audio.binaural import render_binaural
    from ..audio.foa import energy_map
    from ..video.overlay import render_overlay_frames, write_preview_video

    window = 1.0 / OVERLAY_FPS
    maps = energy_map(foa, sample_rate, window_seconds=window, resolution=4.0)
    maps = maps[None] if maps.ndim == 2 else maps
    black = np.zeros((len(maps), ENERGY_MOVIE_HEIGHT, 2 * ENERGY_MOVIE_HEIGHT, 3), np.uint8)
    times = np.arange(len(maps)) * window
    frames = render_overlay_frames(
        black, times, maps, window, 0.0, 0.0, equirect=True, height=ENERGY_MOVIE_HEIGHT
    )
    return write_preview_video(path, frames, OVERLAY_FPS, render_binaural(foa, sample_rate), sample_rate)


def prepare_listening(
    path: str | os.PathLike, fuma: bool, output_root: str | os.PathLike, limits: DemoLimits
) -> ListeningResult:
    """Check an uploaded FOA file and write what the "listen" tab shows into a new folder of ``output_root``:
    ``foa_ambix.wav`` (float, the player's input), ``energy_map.mp4`` and ``energy_map.png``.

    Raises:
        DemoError: a bad file (see :func:`read_ambisonics_file`) or one longer than ``limits.max_video_seconds``.
    """
    from ..audio.foa import energy_map
    from ..audio.io import write_audio
    from ..video.plotting import plot_energy_map

    foa, sample_rate = read_ambisonics_file(path, fuma)
    seconds = foa.shape[1] / sample_rate
    if seconds > limits.max_video_seconds:
        raise DemoError(
            f"{Path(path).name} lasts {seconds:.1f} s; this page plays up to {limits.max_video_seconds:g} s."
        )
    output_root = Path(output_root)
    output_root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="listen-", dir=output_root))
    try:
        wav = write_audio(folder / "foa_ambix.wav", foa, sample_rate)
        movie = _energy_movie(folder / "energy_map.mp4", foa, sample_rate)
        picture = plot_energy_map(
            energy_map(foa, sample_rate), folder / "energy_map.png", title=Path(path).name
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    peak = float(np.max(np.abs(foa)))
    summary = (
        f"**{Path(path).name}**: {seconds:.2f} s of first-order ambisonics at {sample_rate / 1000:g} kHz, "
        f"peak {20 * np.log10(max(peak, 1e-12)):.1f} dBFS. Press play, then drag on the picture to turn your head."
    )
    config = player_config(sample_rate, sphere_from=0.0, title=Path(path).name)
    return ListeningResult(folder, wav, movie, picture, config, summary)
