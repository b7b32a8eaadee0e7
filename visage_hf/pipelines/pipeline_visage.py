"""`VisagePipeline`: a video clip and a camera direction -> first-order ambisonics (AmbiX), any length.

    video (path or 4-fps frames) --[360°: field-of-view crop at the direction]--> frames
    frames --CLIP + patch energy map (per window)--> VisageForFOA.generate (window by window) --> codes
    codes --DAC 44.1 kHz (per window) + crossfade at the joins--> FOA (n, 4, samples)

Container. The pipeline is a diffusers `DiffusionPipeline` holding four components: ``image_encoder``
(`CLIPVisionModelWithProjection`), ``image_processor`` (CLIP's, PIL backend), ``foa_model`` (`VisageForFOA`) and
``codec`` (transformers `DacModel`, used through `FOACodec`). That gives ``save_pretrained`` /
``from_pretrained`` (one sub-folder per component + ``model_index.json``), ``progress_bar``, ``components``,
``to(device, dtype)`` and per-component ``dtype`` dicts. Two limits of diffusers apply: the generic ``DiffusionPipeline.from_pretrained(folder)`` cannot load
it (it looks the class name up inside diffusers) — call ``VisagePipeline.from_pretrained``; and
``model_index.json`` names ``visage_hf.models.modeling_visage`` as the model's module, so that module must keep its
name (and keep ``PreTrainedModel`` in its namespace) for saved pipelines to load.

Checkpoints. ``VisagePipeline.from_pretrained`` reads a saved pipeline (``model_index.json``); given a
bare model checkpoint instead — the original ViSAGe release (``jaeyeonkim99/visage``, converted on load) or
a converted `VisageForFOA` folder — it goes to :meth:`VisagePipeline.from_original`, which adds CLIP
ViT-B/32 (``openai/clip-vit-base-patch32``) and the 44.1 kHz DAC (``descript/dac_44khz`` at the pinned
revision).

Length. Any duration: clips longer than the model's window (20 video frames = 5 s) are generated window by
window, each continuing from the previous window's last codes (:mod:`visage_hf.pipelines.windowing`; 1 s overlap by
default). The audio has exactly ``round(duration · 44100)`` samples.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput
from tqdm.auto import tqdm
from transformers import CLIPVisionModelWithProjection, DacModel

from ..audio.codec import DAC_44KHZ_REPO, FOACodec
from ..directions import direction_to_model_vector
from ..models.feature_extraction_visage import DEFAULT_CLIP_REPO, VisageFeatureExtractor
from ..models.generation import build_code_canvas, prompt_steps
from ..models.modeling_visage import VisageForFOA
from ..models.quantization import with_int8_option
from ..video.camera_path import CameraPath, resolve_camera_path
from ..video.clip import load_video_clip
from .tiny import TINY_RANDOM_WARNING, tiny_random_components
from .window_codes import generate_window_codes, uses_original_frame_count
from .windowing import Window, WindowPlan, contribution_spans, plan_windows, stitch_windows

__all__ = ["DEFAULT_MODEL_REPO", "VisagePipeline", "VisagePipelineOutput", "build_tiny_random_pipeline"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL_REPO = "jaeyeonkim99/visage"
# Video shared by neighbouring windows: each window continues from the previous one's last second of codes.
DEFAULT_OVERLAP_SECONDS = 1.0

# ============================================================================================== the pipeline


@dataclass
class VisagePipelineOutput(BaseOutput):
    """Output of :class:`VisagePipeline`.

    Args:
        audio: float32 ``(num_samples, 4, samples)`` AmbiX FOA (ACN W, Y, Z, X; SN3D) at ``sample_rate``,
            ``samples = round(duration · sample_rate)``; the sound field in the world frame the model learned
            (the camera looks at the requested azimuth / elevation).
        sample_rate: Hz (44100 for the DAC of the released model).
        codes: int64 ``(num_samples, 4, 9, frames)`` DAC codes, ``frames = ceil(samples / 512)``.
        windows: the generation windows (:class:`visage_hf.pipelines.windowing.Window`), in order.
        frames: the uint8 conditioning frames ``(T, H, W, 3)`` at 4 fps (the field-of-view crop for 360° input).
        equirect: whether the input was a 360° video (then cropped).
    """

    audio: np.ndarray
    sample_rate: int
    codes: torch.Tensor
    windows: tuple[Window, ...]
    frames: np.ndarray
    equirect: bool


class VisagePipeline(DiffusionPipeline):
    r"""Video + camera direction -> FOA spatial audio (ViSAGe), any length.

    Example::

        pipe = VisagePipeline.from_pretrained("jaeyeonkim99/visage")   # original release, converted on load
        out = pipe("clip.mp4", azimuth=30.0, elevation=0.0, seed=0)
        out.audio.shape   # (1, 4, samples) AmbiX at out.sample_rate (44100)

    Args:
        image_encoder: ``CLIPVisionModelWithProjection`` (ViT-B/32: 512-d projection, 7 x 7 patches).
        image_processor: its image processor (``CLIPImageProcessorPil`` works without torchvision).
        foa_model: the FOA :class:`~visage_hf.models.modeling_visage.VisageForFOA`.
        codec: the transformers ``DacModel`` whose codes the model writes (44.1 kHz, hop 512, 9 codebooks).

    Attributes:
        half_precision_features: set True to compute CLIP and the energy map in float16 in original mode, as
            the original did on its GPU (CUDA only: on a CPU generation stops with a one-line ``ValueError``).
    """

    half_precision_features: bool = False
    model_cpu_offload_seq = "image_encoder->foa_model"
    # Decoding goes through DacModel.decode, not forward, so accelerate's offload hook would never fire for it.
    _exclude_from_cpu_offload: ClassVar[list[str]] = ["codec"]

    def __init__(self, image_encoder, image_processor, foa_model: VisageForFOA, codec: DacModel):
        super().__init__()
        _check_components(image_encoder, foa_model, codec)
        self.register_modules(
            image_encoder=image_encoder, image_processor=image_processor, foa_model=foa_model, codec=codec
        )

    # ------------------------------------------------------------------------------------------ loading
    @classmethod
    @with_int8_option
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> VisagePipeline:
        """Load a saved pipeline (a folder or Hub repo with ``model_index.json``), or a bare model checkpoint
        (original ViSAGe or converted `VisageForFOA`) through :meth:`from_original`. ``"tiny-random"`` builds
        :func:`build_tiny_random_pipeline` (random weights, noise; keyword arguments
        ``seed``, ``window_video_frames``, ``mode``).

        Keyword arguments go to ``DiffusionPipeline.from_pretrained`` (``dtype``, ``revision``, component
        overrides such as ``codec=...``) or to :meth:`from_original`. ``dtype="int8"``: everything in float32, then
        the ViSAGe decoder's step weights in int8 (:mod:`visage_hf.models.quantization`).

        Raises:
            FileNotFoundError: a local path that does not exist.
        """
        source = os.fspath(pretrained_model_name_or_path)
        if source == "tiny-random":  # the name `visage generate --model` takes: build it, no Hub
            return build_tiny_random_pipeline(**kwargs)
        if _is_saved_pipeline(source, kwargs):
            # Pipelines saved by 0.1.0 name `visage_hf.modeling_visage`; diffusers loads components only from
            # modules already imported, so import the old path (an alias of models.modeling_visage) first.
            importlib.import_module("visage_hf.modeling_visage")
            return super().from_pretrained(source, **kwargs)
        return cls.from_original(source, **kwargs)

    @classmethod
    @with_int8_option
    def from_original(
        cls,
        repo_or_path: str | os.PathLike = DEFAULT_MODEL_REPO,
        *,
        revision: str | None = None,
        subfolder: str | None = None,
        dtype: torch.dtype | None = None,
        clip_repo: str | os.PathLike = DEFAULT_CLIP_REPO,
        codec_repo: str | os.PathLike = DAC_44KHZ_REPO,
        codec_revision: str | None = None,
        image_encoder=None,
        image_processor=None,
        codec: DacModel | None = None,
    ) -> VisagePipeline:
        """Build the pipeline around a model checkpoint: the original ViSAGe release (converted on load, in
        ``mode="original"``) or a `VisageForFOA` folder / repo, plus CLIP and the DAC.

        Args:
            repo_or_path: Hub id or folder of the model checkpoint (default: the original release).
            revision, subfolder: where the checkpoint sits in its repo.
            dtype: dtype of every model; ``"int8"``: float32, with the decoder's step weights in int8.
            clip_repo: CLIP vision tower + image processor (default ``openai/clip-vit-base-patch32``).
            codec_repo, codec_revision: the DAC (default ``descript/dac_44khz`` at the pinned revision).
            image_encoder, image_processor, codec: ready objects to use instead of loading them.
        """
        from transformers import AutoImageProcessor

        from ..models.convert_original import maybe_load_original_checkpoint

        _check_local_path(repo_or_path)
        foa_model = maybe_load_original_checkpoint(
            repo_or_path, revision=revision, subfolder=subfolder, dtype=dtype
        )
        if foa_model is None:
            options = {"revision": revision, "subfolder": subfolder, "dtype": dtype}
            foa_model = VisageForFOA.from_pretrained(
                repo_or_path, **{key: value for key, value in options.items() if value is not None}
            )
        if image_encoder is None:
            image_encoder = CLIPVisionModelWithProjection.from_pretrained(clip_repo, **_dtype_option(dtype))
        if image_processor is None:
            image_processor = AutoImageProcessor.from_pretrained(clip_repo, backend="pil")
        if codec is None:
            codec = FOACodec.from_pretrained(codec_repo, revision=codec_revision, dtype=dtype).model
        return cls(
            image_encoder=image_encoder, image_processor=image_processor, foa_model=foa_model, codec=codec
        )

    # ------------------------------------------------------------------------------------------ running
    @property
    def sample_rate(self) -> int:
        """Output sample rate in Hz (the codec's, 44100)."""
        return int(self.codec.config.sampling_rate)

    def plan_windows(
        self, num_samples: int, overlap: float | None = None, mode: str | None = None
    ) -> WindowPlan:
        """The :class:`~visage_hf.pipelines.windowing.WindowPlan` for ``num_samples`` output samples and ``overlap``
        seconds of video shared by neighbouring windows (rounded to whole video frames, at least one; default
        1 s, at most a quarter of the model's window). In ``mode="original"`` a clip that fits one window is
        one call with the original's own frame count and end padding (see `generate_codes`)."""
        config = self.foa_model.config
        mode = config.resolve_mode(mode)
        window = config.window_video_frames  # what both encoder and decoder hold
        if overlap is None:
            overlap = min(DEFAULT_OVERLAP_SECONDS, window / config.video_fps / 4)
        if not (math.isfinite(overlap) and overlap > 0):
            raise ValueError(f"overlap: expected seconds > 0, got {overlap!r}")
        overlap_frames = max(1, round(overlap * config.video_fps))
        if overlap_frames >= window:
            raise ValueError(
                f"overlap: expected less than the model's window of {window / config.video_fps:g} s, "
                f"got {overlap:g} s"
            )
        plan = plan_windows(
            num_samples,
            sample_rate=config.sample_rate,
            hop_length=config.hop_length,
            video_fps=config.video_fps,
            window_video_frames=window,
            max_window_frames=config.max_frames,
            overlap_video_frames=overlap_frames,
        )
        if mode == "original" and plan.num_video_frames <= window:
            single = Window(0, plan.num_video_frames, 0, plan.num_code_frames, 0)
            plan = WindowPlan(
                (single,), num_samples, plan.num_video_frames, plan.num_code_frames, plan.hop_length
            )
        return plan

    def load_frames(
        self,
        video,
        azimuth: float | None,
        elevation: float | None,
        start: float = 0.0,
        duration: float | None = None,
        *,
        equirect: bool | None = None,
        overlap: float | None = None,
        mode: str | None = None,
        camera_path: CameraPath | None = None,
    ) -> tuple[np.ndarray, WindowPlan, bool]:
        """The model's view of a clip: ``(frames (T, H, W, 3) uint8 at the model's fps, window plan, equirect)``.

        ``video`` is a path or 4-fps frames; a 360° video is cropped to the field of view at the direction
        (``azimuth``/``elevation``, or each frame at its ``camera_path`` direction).
        The output will have ``round(duration · sample_rate)`` samples, and ``frames`` exactly the plan's
        video frames.
        """
        config = self.foa_model.config
        clip = load_video_clip(
            video, azimuth, elevation, start, duration, fps=config.video_fps, equirect=equirect,
            short_side=_processor_short_side(self.image_processor),
            sampling=getattr(config, "frame_sampling", "ffmpeg"), mode=config.resolve_mode(mode),
            camera_path=camera_path,
        )  # fmt: skip
        num_samples = round(clip.duration * self.sample_rate)
        if num_samples < 1:
            raise ValueError(
                f"duration: {clip.duration:g} s is shorter than one sample at {self.sample_rate} Hz"
            )
        plan = self.plan_windows(num_samples, overlap, mode)
        return _fit_frames(clip.frames, plan.num_video_frames), plan, clip.equirect

    @torch.no_grad()
    def __call__(
        self,
        video,
        azimuth: float | None = None,
        elevation: float | None = None,
        start: float = 0.0,
        duration: float | None = None,
        *,
        camera_path: CameraPath | None = None,
        guidance: str | None = None,
        guidance_scale: float | None = None,
        direction_guidance_scale: float | None = None,
        do_sample: bool | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        temperature: float | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        num_samples: int = 1,
        equirect: bool | None = None,
        overlap: float | None = None,
        crossfade: float = 0.05,
        mode: str | None = None,
        progress: bool = True,
        return_dict: bool = True,
    ) -> VisagePipelineOutput | tuple:
        """Generate FOA for ``[start, start + duration)`` of ``video`` seen from ``(azimuth, elevation)``.

        Args:
            video: a video file path, or uint8 frames ``(T, H, W, 3)`` at 4 fps.
            azimuth, elevation: camera direction in degrees (azimuth counter-clockwise from the front toward
                the left, elevation up). For 360° input the field of view is cropped there.
            camera_path: instead of ``azimuth``/``elevation``, a :class:`~visage_hf.video.camera_path.CameraPath`
                (keyframes in the video's timeline) for a camera that moves: every 4-fps frame gets its own
                direction, 360° input is cropped frame by frame. It must span ``[start, start + duration]``.
                The released weights saw one direction per 5-s clip: smooth paths work best.
            start, duration: seconds; ``duration=None`` runs to the end of the video. Any length works.
            guidance, guidance_scale, direction_guidance_scale, do_sample, top_k, top_p, temperature: see
                :meth:`VisageForFOA.generate` (defaults: the model's generation config; released model: joint
                guidance 2.5, top-k 256).
            generator / seed: random stream of the sampling (same seed, same audio). Without either, torch's
                global RNG.
            num_samples: independent samples per clip.
            equirect: True for 360° equirectangular video; None detects it (2:1 + spherical metadata).
            overlap: seconds of video neighbouring windows share (>= one video frame; default 1 s, or a quarter
                of the model's window if that is shorter).
            crossfade: seconds of the raised-cosine crossfade at each join.
            mode: ``"corrected"`` / ``"original"`` (default: the model's; a converted release is original).
                In original mode a clip that fits one window is generated exactly as the original does
                (``int(T / 4 · 86)`` frames, the last repeated); longer clips are windowed as in corrected mode.
            progress: progress bars (decoder steps, decoding); ``set_progress_bar_config`` also applies.
            return_dict: False returns ``(audio, sample_rate, codes)``.
        """
        self._check_call(num_samples, crossfade)
        path = resolve_camera_path(azimuth, elevation, camera_path)
        config = self.foa_model.config
        mode = config.resolve_mode(mode)
        if seed is not None and generator is not None:
            raise ValueError("pass either generator or seed, not both")
        frames, plan, equirect = self.load_frames(
            video,
            None,
            None,
            start,
            duration,
            equirect=equirect,
            overlap=overlap,
            mode=mode,
            camera_path=path,
        )
        seconds = plan.num_samples / self.sample_rate
        azimuth, elevation = frame_directions(path, start, seconds, plan.num_video_frames, config.video_fps)
        if seed is not None:
            generator = torch.Generator(device=self.foa_model.device).manual_seed(int(seed))
        settings = {
            "guidance": guidance,
            "guidance_scale": guidance_scale,
            "direction_guidance_scale": direction_guidance_scale,
            "do_sample": do_sample,
            "top_k": top_k,
            "top_p": top_p,
            "temperature": temperature,
            "generator": generator,
            "mode": mode,
        }
        codes = self.generate_codes(frames, azimuth, elevation, plan, num_samples, progress, **settings)
        audio = self.decode(codes, plan, round(crossfade * self.sample_rate), progress)
        if not return_dict:
            return audio, self.sample_rate, codes
        return VisagePipelineOutput(audio, self.sample_rate, codes, plan.windows, frames, equirect)

    def _check_call(self, num_samples: int, crossfade: float) -> None:
        for name in ("image_encoder", "image_processor", "foa_model", "codec"):
            if getattr(self, name, None) is None:
                raise ValueError(f"this pipeline has no {name}; load one with from_pretrained({name}=...)")
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples: expected an integer >= 1, got {num_samples!r}")
        if not (math.isfinite(crossfade) and crossfade >= 0):
            raise ValueError(f"crossfade: expected seconds >= 0, got {crossfade!r}")

    def generate_codes(
        self,
        frames: np.ndarray,
        azimuth: float | np.ndarray,
        elevation: float | np.ndarray,
        plan: WindowPlan,
        num_samples: int = 1,
        progress: bool = True,
        **generate_kwargs,
    ) -> torch.LongTensor:
        """Codes ``(num_samples, 4, 9, plan.num_code_frames)`` for conditioning ``frames`` (at the model's fps),
        window by window; window ``k > 0`` gets the codes already written in its prefix span as
        ``prefix_codes``. ``azimuth``/``elevation``: degrees, scalars or one per video frame (a moving camera,
        see :func:`frame_directions`). ``generate_kwargs`` go to :meth:`VisageForFOA.generate`."""
        model, config = self.foa_model, self.foa_model.config
        mode = config.resolve_mode(generate_kwargs.pop("mode", None))
        extractor = VisageFeatureExtractor(
            self.image_encoder,
            self.image_processor,
            mode=mode,
            half_precision=mode == "original" and self.half_precision_features,
        )

        def window_conditions(window: Window) -> dict[str, torch.Tensor]:
            inputs = _window_inputs(extractor, frames, azimuth, elevation, window)
            return {
                name: tensor.to(model.device).repeat_interleave(num_samples, dim=0)
                for name, tensor in inputs.items()
            }

        own_count = uses_original_frame_count(config, plan, mode)
        bar = self._progress(progress, total=self._count_steps(plan, own_count), desc="generating codes")
        try:
            return generate_window_codes(
                model, plan, window_conditions, num_samples, mode, bar=bar, **generate_kwargs
            )
        finally:
            bar.close()

    def _progress(self, enabled: bool, iterable=None, total: int | None = None, desc: str | None = None):
        """A tqdm bar like ``self.progress_bar`` (honours ``set_progress_bar_config``), silent when not
        ``enabled``. The description is given at creation: progress trackers that wrap tqdm (Gradio's) read it
        only then."""
        config = {**getattr(self, "_progress_bar_config", {})}
        if desc:
            config["desc"] = desc
        if not enabled:
            config["disable"] = True
        return tqdm(iterable, total=total, **config)

    def _count_steps(self, plan: WindowPlan, original_count: bool = False) -> int:
        """Decoder steps the plan will run (for the progress bar): pattern steps minus prompt steps."""
        config = self.foa_model.config
        pattern = config.code_pattern
        total = 0
        for window in plan:
            frames = window.generated_frames
            if original_count:  # generate picks the original's own frame count
                frames = config.frames_for_video_frames(window.num_video_frames, "original")
            prefix = torch.zeros((1, config.num_streams, window.prefix_frames), dtype=torch.long)
            canvas = build_code_canvas(
                pattern, 1, frames, config.code_pad_id, prefix if window.prefix_frames else None
            )
            total += canvas.shape[1] - prompt_steps(canvas)
        return total

    def decode(
        self, codes: torch.Tensor, plan: WindowPlan, crossfade_samples: int, progress: bool = True
    ) -> np.ndarray:
        """Decode each window's codes with the DAC and stitch them: float32 ``(n, 4, plan.num_samples)``.

        A window is decoded only over the samples it contributes (plus the codec's context frames on each
        side, inside the window), so the total is about one pass over the clip."""
        codec = FOACodec(self.codec)
        hop, context = plan.hop_length, codec.context_frames
        pieces = []
        spans = contribution_spans(plan, crossfade_samples)
        for window, (start, stop) in self._progress(
            progress, list(zip(plan.windows, spans)), desc="decoding"
        ):
            first = max(window.code_start, start // hop - context)
            last = min(window.code_stop, -(-stop // hop) + context)
            audio = codec.decode(codes[..., first:last]).float().cpu().numpy()
            pieces.append(audio[..., start - first * hop : stop - first * hop])
        return stitch_windows(pieces, plan, crossfade_samples)


def build_tiny_random_pipeline(seed: int = 0, window_video_frames: int = 20, mode: str = "corrected"):
    """A `VisagePipeline` of :func:`~visage_hf.pipelines.tiny.tiny_random_components` (logs
    :data:`~visage_hf.pipelines.tiny.TINY_RANDOM_WARNING`)."""
    logger.warning(TINY_RANDOM_WARNING)
    return VisagePipeline(**tiny_random_components(seed, window_video_frames, mode))


# ============================================================================================== helpers


def frame_directions(
    path: CameraPath, start: float, seconds: float, num_frames: int, fps: float
) -> tuple[float, float] | tuple[np.ndarray, np.ndarray]:
    """The camera direction of each of ``num_frames`` video frames of a ``seconds``-long clip starting at
    ``start`` (frame ``k`` at ``start + k / fps``): two floats for a constant path, else ``(num_frames,)`` degree
    arrays. A moving path must span the clip."""
    if path.is_constant:
        return float(path.azimuth[0]), float(path.elevation[0])
    path.check_covers(start, start + seconds)
    return path.directions_at(start + np.arange(num_frames) / fps)


def _window_inputs(extractor, frames: np.ndarray, azimuth, elevation, window) -> dict[str, torch.Tensor]:
    """The extractor's model inputs for one window; a moving camera gets one direction vector per frame."""
    span = slice(window.video_start, window.video_stop)
    if np.ndim(azimuth) == 0:
        return extractor(frames[span], azimuth, elevation)
    inputs = extractor(frames[span], float(azimuth[span][0]), float(elevation[span][0]))
    vectors = direction_to_model_vector(azimuth[span], elevation[span])
    inputs["direction"] = torch.as_tensor(vectors, dtype=inputs["direction"].dtype)[None]
    return inputs


def _check_components(image_encoder, foa_model, codec) -> None:
    """ValueError when the components cannot work together (None components are not checked)."""
    if foa_model is None:
        return
    if not isinstance(foa_model, VisageForFOA):
        raise ValueError(f"foa_model: expected a VisageForFOA, got {type(foa_model).__name__}")
    config = foa_model.config
    if config.is_mono:
        raise ValueError("foa_model: expected the FOA model (num_channels=4), got the mono variant")
    if codec is not None:
        if not isinstance(codec, DacModel):
            raise ValueError(f"codec: expected a transformers DacModel, got {type(codec).__name__}")
        hop = int(np.prod(codec.config.downsampling_ratios))
        found = (codec.config.sampling_rate, hop)
        if found != (config.sample_rate, config.hop_length):
            raise ValueError(
                f"codec: the model writes codes of a {config.sample_rate} Hz codec with hop {config.hop_length}, "
                f"got a {found[0]} Hz codec with hop {found[1]}"
            )
        if (
            codec.config.n_codebooks < config.num_codebooks
            or codec.config.codebook_size < config.codebook_size
        ):
            raise ValueError(
                f"codec: the model writes {config.num_codebooks} codebooks of {config.codebook_size}, the codec has "
                f"{codec.config.n_codebooks} of {codec.config.codebook_size}"
            )
    if image_encoder is not None:
        vision = image_encoder.config
        patches = (vision.image_size // vision.patch_size) ** 2
        if (vision.projection_dim, patches) != (config.clip_dim, config.energy_map_dim):
            raise ValueError(
                f"image_encoder: the model expects {config.clip_dim}-d CLIP features and {config.energy_map_dim} "
                f"patches, got {vision.projection_dim}-d and {patches}"
            )


def _fit_frames(frames: np.ndarray, count: int) -> np.ndarray:
    """Exactly ``count`` frames: the clip reader and the window plan round the clip's end separately, so
    they can disagree by a frame; a missing last frame repeats the one before (what a player shows)."""
    if len(frames) < count:
        frames = np.concatenate([frames, np.repeat(frames[-1:], count - len(frames), axis=0)])
    return frames[:count]


def _processor_short_side(image_processor) -> int | None:
    """The short side CLIP's processor resizes frames to (224), read from a dict or a ``SizeDict``."""
    size = getattr(image_processor, "size", None)
    short_side = size.get("shortest_edge") if isinstance(size, dict) else getattr(size, "shortest_edge", None)
    return int(short_side) if short_side else None


def _dtype_option(dtype) -> dict:
    return {} if dtype is None else {"dtype": dtype}


def _looks_local(source: str) -> bool:
    """A filesystem path rather than a Hub id (``owner/name``)."""
    return source.startswith(("/", ".", "~")) or source.count("/") > 1 or Path(source).exists()


def _check_local_path(source) -> None:
    source = os.fspath(source)
    if _looks_local(source) and not Path(source).expanduser().exists():
        raise FileNotFoundError(f"model folder not found: {source}")


def _is_saved_pipeline(source: str, kwargs: dict) -> bool:
    """True when ``source`` holds ``model_index.json`` (a saved pipeline) rather than a bare checkpoint."""
    _check_local_path(source)
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"expected a model folder, got a file: {source}")
        return (path / "model_index.json").is_file()
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError, RemoteEntryNotFoundError

    options = {
        key: kwargs[key] for key in ("revision", "cache_dir", "token", "local_files_only") if key in kwargs
    }
    try:
        hf_hub_download(source, "model_index.json", **options)
    except RemoteEntryNotFoundError:
        return False
    except LocalEntryNotFoundError:
        # Offline and not cached as a pipeline: maybe cached as a bare checkpoint; from_original will say.
        return False
    return True
