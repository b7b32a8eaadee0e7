"""What the Gradio app (``app.py``) does, without Gradio: limits, request checks, model loading, one generation.

``app.py`` only wires widgets to these functions: it turns :class:`DemoError` into ``gr.Error`` (a message
in the page, never a stack trace), the notes of :func:`check_request` into ``gr.Warning`` and passes
``gr.Progress`` as the ``progress`` callable. Everything here is testable without a browser.

One request:

    check_request(...)  -> GenerationRequest (+ notes)   cheap: probes the upload, no decoding
    run_generation(...) -> DemoResult                   pipeline -> export_generation (AmbiX WAV, binaural
                                                        WAV, YouTube-ready MP4, energy map) + overlay video
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..models.configuration_visage import DEFAULT_GENERATION_SETTINGS, GUIDANCE_MODES

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SETTINGS",
    "MODEL_ENV",
    "DemoError",
    "DemoLimits",
    "DemoResult",
    "GenerationRequest",
    "ModelLoader",
    "check_request",
    "example_video",
    "load_pipeline",
    "prune_outputs",
    "run_generation",
]

MODEL_ENV = "VISAGE_MODEL"  # the same variable `visage generate` reads
MAX_SEED = 2**32 - 1
OVERLAY_FPS = 10.0  # frames (and energy-map windows) per second of the overlay video
# What the widgets start at: the released model's generation settings.
DEFAULT_SETTINGS = {
    "guidance": DEFAULT_GENERATION_SETTINGS["guidance_mode"],
    "guidance_scale": DEFAULT_GENERATION_SETTINGS["cfg_guidance_scale"],
    "direction_guidance_scale": DEFAULT_GENERATION_SETTINGS["cfg_direction_guidance_scale"],
    "top_k": DEFAULT_GENERATION_SETTINGS["top_k"],
    "temperature": 1.0,
}
SILENT_NOTE = "The generated audio is silent (every sample zero): the energy map marks no loudest direction."
GUIDANCE_SCALE_RANGE = (0.0, 10.0)
TOP_K_RANGE = (0, 1024)  # 0 switches top-k off
TEMPERATURE_RANGE = (0.05, 2.0)

Progress = Callable[[float, str], None]


class DemoError(ValueError):
    """Bad input or an unusable model, with a message meant for the person using the app."""


# ============================================================================================ limits


def _env_number(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"${name}: expected a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"${name}: expected a number > 0, got {text!r}")
    return value


@dataclass(frozen=True)
class DemoLimits:
    """What the app accepts. ``max_clip_seconds`` bounds the audio generated per request (the pipeline
    itself has no limit; `visage generate` is the way to long clips), ``max_video_seconds`` the uploaded
    video, ``max_upload_mb`` its size (also given to Gradio's ``max_file_size``, which refuses a larger upload
    before it is stored). ``keep_seconds``: how long results and uploads stay on disk (our run folders, and
    Gradio's cache through the sweep of `visage_hf.app.cache`), so the temporary folders hold at most that much traffic."""

    max_upload_mb: int = 100
    max_video_seconds: float = 300.0
    max_clip_seconds: float = 10.0
    min_clip_seconds: float = 0.5  # two video frames at the model's 4 fps
    keep_seconds: float = 3600.0

    def __post_init__(self):
        if not (0 < self.min_clip_seconds <= self.max_clip_seconds <= self.max_video_seconds):
            raise ValueError(
                "limits: expected 0 < min_clip_seconds <= max_clip_seconds <= max_video_seconds, got "
                f"{self.min_clip_seconds}, {self.max_clip_seconds}, {self.max_video_seconds}"
            )

    @classmethod
    def from_env(cls) -> DemoLimits:
        """Defaults, overridden by ``VISAGE_MAX_UPLOAD_MB``, ``VISAGE_MAX_VIDEO_SECONDS``,
        ``VISAGE_MAX_CLIP_SECONDS`` and ``VISAGE_KEEP_SECONDS``."""
        return cls(
            max_upload_mb=int(_env_number("VISAGE_MAX_UPLOAD_MB", cls.max_upload_mb)),
            max_video_seconds=_env_number("VISAGE_MAX_VIDEO_SECONDS", cls.max_video_seconds),
            max_clip_seconds=_env_number("VISAGE_MAX_CLIP_SECONDS", cls.max_clip_seconds),
            keep_seconds=_env_number("VISAGE_KEEP_SECONDS", cls.keep_seconds),
        )

    @property
    def delete_cache(self) -> tuple[int, int]:
        """The cache sweep's ``(every, older than)`` seconds (`visage_hf.app.cache.CacheSweeper`): cached files go
        ``keep_seconds`` after they were made, within at most half that again."""
        keep = max(1, round(self.keep_seconds))
        return max(1, keep // 2), keep

    @property
    def max_file_size(self) -> str:
        """The upload limit in Gradio's ``max_file_size`` syntax."""
        return f"{self.max_upload_mb}mb"

    def describe(self) -> str:
        return (
            f"Videos up to {self.max_upload_mb} MB and {_seconds_text(self.max_video_seconds)}; each run "
            f"generates {_seconds_text(self.min_clip_seconds)} to {_seconds_text(self.max_clip_seconds)} of audio."
        )


def _seconds_text(seconds: float) -> str:
    if seconds >= 120 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


# ============================================================================================ requests


@dataclass(frozen=True)
class GenerationRequest:
    """A checked request: the clip ``[start, start + duration)`` of ``video`` seen from ``(azimuth,
    elevation)``, the sampling settings and the ``seed`` to use (``random_seed``: it was drawn here)."""

    video: Path
    start: float
    duration: float
    azimuth: float
    elevation: float
    guidance: str
    guidance_scale: float
    direction_guidance_scale: float
    top_k: int
    temperature: float
    seed: int
    random_seed: bool


def _number(value, name: str, low: float, high: float, unit: str = "") -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DemoError(f"{name}: expected a number, got {value!r}") from None
    if not (math.isfinite(number) and low <= number <= high):
        raise DemoError(
            f"{name}: expected a value from {low:g}{unit} to {high:g}{unit}, got {number:g}{unit}"
        )
    return number


def _whole_number(value, name: str, low: int, high: int) -> int:
    number = _number(value, name, low, high)
    if not number.is_integer():
        raise DemoError(f"{name}: expected a whole number, got {number:g}")
    return int(number)


def _video_path(video) -> Path:
    if video is None or (isinstance(video, str) and not video.strip()):
        raise DemoError("No video: upload a video clip (or pick an example) first.")
    if isinstance(video, dict):  # what older Gradio versions passed
        video = video.get("video") or video.get("path")
    path = Path(os.fspath(video))
    if not path.is_file():
        raise DemoError("The uploaded video is gone from the server; upload it again.")
    return path


def _probe(path: Path, limits: DemoLimits):
    from ..video.io import probe

    size_mb = path.stat().st_size / 2**20
    if size_mb > limits.max_upload_mb:
        raise DemoError(f"The video is {size_mb:.1f} MB; this demo accepts up to {limits.max_upload_mb} MB.")
    try:
        info = probe(path)
    except ValueError as error:
        if str(error).startswith("expected a video stream"):
            raise DemoError(f"{path.name} has no video stream: upload a video file.") from None
        raise DemoError(
            f"Could not read {path.name} as a video: the file is damaged or not a video. Try an MP4 (H.264)."
        ) from None
    # A container that does not state its length reports 0 s: then only decoding will tell (the upload size
    # still bounds the work).
    frames = info.num_frames
    if (frames is not None and frames < 2) or 0 < info.duration < limits.min_clip_seconds:
        count = f"{frames} frame{'s' if frames != 1 else ''}, " if frames else ""
        raise DemoError(
            f"The video is too short ({count}{info.duration:.2f} s): upload a clip of at least "
            f"{_seconds_text(limits.min_clip_seconds)}."
        )
    if info.duration > limits.max_video_seconds:
        raise DemoError(
            f"The video is {info.duration:.1f} s long; this demo accepts videos up to "
            f"{_seconds_text(limits.max_video_seconds)}. Trim it, or run `visage generate` locally (any length)."
        )
    return info


def check_request(
    video,
    start,
    duration,
    azimuth,
    elevation,
    guidance=DEFAULT_SETTINGS["guidance"],
    guidance_scale=DEFAULT_SETTINGS["guidance_scale"],
    direction_guidance_scale=DEFAULT_SETTINGS["direction_guidance_scale"],
    top_k=DEFAULT_SETTINGS["top_k"],
    temperature=DEFAULT_SETTINGS["temperature"],
    seed=None,
    random_seed: bool = True,
    limits: DemoLimits | None = None,
) -> tuple[GenerationRequest, list[str]]:
    """Check the widgets' values against the video (probed, not decoded) and the limits.

    A clip running past the end of the video is shortened to what the video has, with a note saying so
    (people leave the duration at its default); everything else that is wrong raises.

    Returns:
        ``(request, notes)``: notes are messages to show as warnings.

    Raises:
        DemoError: with a message for the page.
    """
    limits = limits or DemoLimits()
    path = _video_path(video)
    azimuth = _number(azimuth, "Azimuth", -180.0, 180.0, "°")
    elevation = _number(elevation, "Elevation", -90.0, 90.0, "°")
    start = _number(start, "Start", 0.0, limits.max_video_seconds, " s")
    duration = _check_duration(_number(duration, "Duration", 0.0, math.inf, " s"), limits)
    if guidance not in GUIDANCE_MODES:
        raise DemoError(f"Guidance: expected one of {', '.join(GUIDANCE_MODES)}, got {guidance!r}.")
    guidance_scale = _number(guidance_scale, "Guidance scale", *GUIDANCE_SCALE_RANGE)
    direction_guidance_scale = _number(
        direction_guidance_scale, "Direction guidance scale", *GUIDANCE_SCALE_RANGE
    )
    top_k = _whole_number(top_k, "Top-k", *TOP_K_RANGE)
    temperature = _number(temperature, "Temperature", *TEMPERATURE_RANGE)
    seed, random_seed = _choose_seed(seed, random_seed)
    duration, notes = _fit_to_video(_probe(path, limits), start, duration, limits)
    request = GenerationRequest(
        video=path,
        start=start,
        duration=duration,
        azimuth=azimuth,
        elevation=elevation,
        guidance=guidance,
        guidance_scale=guidance_scale,
        direction_guidance_scale=direction_guidance_scale,
        top_k=top_k,
        temperature=temperature,
        seed=int(seed),
        random_seed=bool(random_seed),
    )
    return request, notes


def _check_duration(duration: float, limits: DemoLimits) -> float:
    if duration > limits.max_clip_seconds:
        raise DemoError(
            f"Duration {duration:g} s is over this demo's limit of {_seconds_text(limits.max_clip_seconds)} per "
            "run. Run `visage generate` locally for longer clips (any length)."
        )
    if duration < limits.min_clip_seconds:
        raise DemoError(
            f"Duration: expected at least {_seconds_text(limits.min_clip_seconds)}, got {duration:g} s."
        )
    return duration


def _choose_seed(seed, random_seed: bool) -> tuple[int, bool]:
    """``(seed, random_seed)``: a fresh random seed unless a seed is given and random is off."""
    if random_seed or seed is None or (isinstance(seed, str) and not seed.strip()):
        return secrets.randbelow(MAX_SEED + 1), True
    return _whole_number(seed, "Seed", 0, MAX_SEED), False


def _fit_to_video(info, start: float, duration: float, limits: DemoLimits) -> tuple[float, list[str]]:
    """Shorten a clip that runs past the end of the video (with a note); refuse a start too near the end."""
    notes = []
    if info.duration > 0:  # 0: the container does not state its length
        available = info.duration - start
        if available < limits.min_clip_seconds:
            raise DemoError(
                f"Start {start:g} s leaves {max(available, 0):.2f} s of the {info.duration:.2f} s video; at least "
                f"{_seconds_text(limits.min_clip_seconds)} are needed. Choose an earlier start."
            )
        if duration > available + 1e-3:
            notes.append(
                f"The video has {available:.2f} s from {start:g} s on: generating {available:.2f} s instead of "
                f"{duration:g} s."
            )
            duration = math.floor(available * 100) / 100
    return duration, notes


# ============================================================================================ the model


def load_pipeline(model: str, device: str | None = None):
    """The pipeline for ``model``: ``"tiny-random"``, a folder, or a Hub id (the original release is
    converted on load), on ``device`` (default: CUDA when available), through the one loader the CLI uses
    (:func:`visage_hf.pipelines.loading.load_pipeline`), with its CPU generation kernels compiled.

    Raises:
        DemoError: the model cannot be loaded, with the reason (offline, missing folder, ...).
    """
    from ..models.row_kernels import compile_step_kernels
    from ..pipelines.loading import load_pipeline as load

    try:
        pipeline = load(model, device)
    except ValueError as error:
        raise DemoError(
            f"{_one_line(error)} (in the app: set {MODEL_ENV} to a downloaded or converted checkpoint folder, "
            "or to tiny-random to try the app offline (noise))"
        ) from None
    # Here, at start-up (the loader's thread), rather than inside the first person's request: a fresh Space
    # compiles the CPU generation kernels once (~10-20 s).
    compile_step_kernels(pipeline.foa_model)
    return pipeline


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


class ModelLoader:
    """Loads the pipeline once — in a background thread from :meth:`start`, or on the first :meth:`get` —
    and remembers why it failed, so the page can load and say so. A failed load is tried again by the next
    :meth:`get` (the network may be back)."""

    def __init__(self, model: str, pipeline=None, loader: Callable[[str], object] = load_pipeline):
        self.model = model
        self._pipeline = pipeline
        self._loader = loader
        self._error: str | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def is_tiny_random(self) -> bool:
        from ..pipelines.tiny import TINY_RANDOM

        return self.model == TINY_RANDOM

    def start(self) -> None:
        """Start loading in the background (returns at once)."""
        if self._pipeline is None and self._thread is None:
            self._thread = threading.Thread(target=self._load, name="visage-model-loader", daemon=True)
            self._thread.start()

    def _load(self):
        with self._lock:
            if self._pipeline is not None:
                return self._pipeline
            try:
                self._pipeline = self._loader(self.model)
                self._error = None
            except DemoError as error:
                self._error = str(error)
            except Exception as error:  # a model that loads badly must not take the page down
                logger.exception("loading %s failed", self.model)
                self._error = f"could not load the model {self.model}: {_one_line(error)}"
            return self._pipeline

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background load to finish; True when none is running any more."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.loading

    @property
    def loading(self) -> bool:
        return self._pipeline is None and self._thread is not None and self._thread.is_alive()

    def status(self) -> str:
        """One line (markdown) for the page."""
        if self._pipeline is not None:
            if self.is_tiny_random:
                return (
                    f"Model: `{self.model}` — a tiny model with **random weights: its audio is noise**. It only "
                    f"checks the plumbing; unset `{MODEL_ENV}` for the released ViSAGe model."
                )
            return f"Model: `{self.model}` — ready."
        if self.loading:
            return f"Model: `{self.model}` — loading (the first start downloads the weights)…"
        if self._error:
            return f"Model: `{self.model}` — **not available**: {self._error}"
        return f"Model: `{self.model}` — loads with the first request."

    def get(self):
        """The pipeline (waits for a load in progress, loads if needed).

        Raises:
            DemoError: the model could not be loaded.
        """
        if self._pipeline is None:
            self._load()
        if self._pipeline is None:
            raise DemoError(f"The model is not available: {self._error}")
        return self._pipeline


# ============================================================================================ generation


@dataclass(frozen=True)
class DemoResult:
    """Files of one generation (all in ``folder``) and what to tell the person."""

    folder: Path
    binaural: Path
    foa: Path
    spatial_video: Path
    energy_map: Path
    overlay_video: Path
    seed: int
    summary: str
    notes: list[str] = field(default_factory=list)


def _report(progress: Progress | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(fraction, message)


def run_generation(
    pipeline, request: GenerationRequest, output_root: str | os.PathLike, progress: Progress | None = None
) -> DemoResult:
    """Generate FOA for the request and write everything the page shows into a new folder of ``output_root``.

    Writes (via :func:`visage_hf.pipelines.export.export_generation`, as `visage generate` does) ``foa_ambix.wav``,
    ``binaural.wav``, ``spatial.mp4`` and ``energy_map.png``, then ``overlay.mp4``: the clip with the energy
    map drawn over it and the binaural track.

    Raises:
        DemoError: the pipeline refused the input (e.g. a video that cannot be decoded after all).
    """
    from ..pipelines.export import export_generation

    began = time.monotonic()
    output_root = Path(output_root)
    output_root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="run-", dir=output_root))
    try:
        _report(progress, 0.0, "reading the video")
        result = _generate(pipeline, request)
        foa, sample_rate = result.audio[0], result.sample_rate
        _report(progress, 0.85, "writing the AmbiX WAV, binaural preview and YouTube MP4")
        direction = f"az {request.azimuth:+.0f}°, el {request.elevation:+.0f}°"
        files = export_generation(
            folder / "files",
            foa,
            sample_rate,
            request.azimuth,
            request.elevation,
            video=request.video,
            video_start=request.start,
            equirect=result.equirect,
            title=f"generated FOA, camera {direction}",
        )
        _report(progress, 0.93, "drawing the energy map over the video")
        overlay = _write_overlay_video(
            folder / "overlay.mp4", request, foa, sample_rate, files.binaural, result.equirect
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    seconds = foa.shape[-1] / sample_rate
    kind = "360° video (field of view cropped at the camera)" if result.equirect else "field-of-view video"
    summary = (
        f"Generated **{seconds:.2f} s** of 4-channel AmbiX at {sample_rate / 1000:g} kHz for the {kind}, camera at "
        f"{direction}, in {len(result.windows)} window(s) and {time.monotonic() - began:.1f} s. "
        f"Seed **{request.seed}**{' (random)' if request.random_seed else ''}."
    )
    if files.silent:
        summary += " " + SILENT_NOTE
    _report(progress, 1.0, "done")
    return DemoResult(
        folder=folder,
        binaural=files.binaural,
        foa=files.foa,
        spatial_video=files.video_360 or files.video,  # YouTube head-tracks spatial audio only in 360° videos
        energy_map=files.energy_map,
        overlay_video=overlay,
        seed=request.seed,
        summary=summary,
        notes=[SILENT_NOTE] if files.silent else [],
    )


def _generate(pipeline, request: GenerationRequest):
    """The pipeline's output for the request; its input errors become a :class:`DemoError` without server paths."""
    try:
        settings = {name: getattr(request, name) for name in DEFAULT_SETTINGS}  # the sampling widgets
        return pipeline(
            str(request.video),
            request.azimuth,
            request.elevation,
            request.start,
            request.duration,
            seed=request.seed,
            **settings,
        )
    except (ValueError, FileNotFoundError) as error:
        raise DemoError(_one_line(error).replace(str(request.video), request.video.name)) from None


def _write_overlay_video(
    path: Path,
    request: GenerationRequest,
    foa: np.ndarray,
    sample_rate: int,
    binaural_path: Path,
    equirect: bool,
) -> Path:
    from ..audio.foa import energy_map
    from ..audio.io import read_audio
    from ..video.io import read_frames
    from ..video.overlay import render_overlay_frames, write_preview_video

    window = 1.0 / OVERLAY_FPS
    maps = energy_map(foa, sample_rate, window_seconds=window, resolution=4.0)
    if maps.ndim == 2:
        maps = maps[None]
    size = None if not equirect else (960, 480)
    frames, times = read_frames(
        request.video, fps=OVERLAY_FPS, start=request.start, duration=request.duration, size=size
    )
    frames = render_overlay_frames(
        frames, times - request.start, maps, window, request.azimuth, request.elevation, equirect=equirect
    )
    binaural, binaural_rate = read_audio(binaural_path)
    return write_preview_video(path, frames, OVERLAY_FPS, binaural, binaural_rate)


# ============================================================================================ housekeeping


def prune_outputs(output_root: str | os.PathLike, max_age_seconds: float = 3600.0) -> int:
    """Delete run folders in ``output_root`` older than ``max_age_seconds``; returns how many went.
    (Gradio copies what it serves into its own cache, so old runs are only disk space.)"""
    root = Path(output_root)
    if not root.is_dir():
        return 0
    removed, now = 0, time.time()
    for folder in root.glob("run-*"):
        try:
            if folder.is_dir() and now - folder.stat().st_mtime > max_age_seconds:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        except OSError:
            continue
    return removed


def example_video(folder: str | os.PathLike, seconds: float = 5.0) -> Path:
    """A synthetic example clip (a red disc crossing a textured background, 320 x 240, 25 fps) in ``folder``,
    made offline so that no media ships with the app."""
    from ..data.synthetic import moving_object_video

    path = Path(folder) / "moving_disc.mp4"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        moving_object_video(path, seconds=seconds, fps=25.0, width=320, height=240)
    return path
