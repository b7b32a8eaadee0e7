"""Video frames -> the model's visual and directional inputs (the "processor").

Three inputs condition :class:`~visage_hf.models.modeling_visage.VisageForFOA` (docs/original-implementation.md §1.3):

* ``clip_features`` ``(batch, T, 512)``: CLIP ViT-B/32 image embeddings of the 4-fps frames, un-normalised
  (``image_embeds`` of transformers' ``CLIPVisionModelWithProjection`` = OpenAI ``encode_image``: CLS token
  after ``ln_post`` and ``proj``).
* ``energy_map`` ``(batch, T, 49)``: the patchwise visual energy map (§7), computed from the same forward's
  last-layer patch tokens. transformers' ``last_hidden_state`` is the encoder output *before*
  ``post_layernorm`` (which is applied to the CLS token only, for the pooled output), i.e. exactly OpenAI's
  tokens after the last residual block with ``ln_post``/``proj`` skipped — what the original got by
  hand-editing ``clip/model.py``. One forward gives both; nothing third-party is edited.
* ``direction`` ``(batch, 3)``: the camera direction in the checkpoint's frame, from
  :func:`visage_hf.directions.direction_to_model_vector` (the one owner of direction conventions).

Preprocessing. The original (``data/infer_clip.py``) let ffmpeg scale the short side to 224 (long side
``224·long // short``), centre-crop 224×224 at offset ``(size − 224) // 2``, convert to rgb24, divide by 255 and
apply CLIP's mean/std. We use transformers' PIL ``CLIPImageProcessorPil`` (no torchvision needed), which does
the same size arithmetic (``int(224·long/short)``), the same crop offsets, /255 and the same mean/std. The
one difference is the resampling kernel when a frame must be resized: ffmpeg's default ``scale`` is swscale
bicubic (B = 0, C = 0.6), applied in the decoder's YUV 4:2:0 before RGB conversion; PIL is Keys bicubic
(a = −0.5) with antialiasing, in RGB. For YT-Ambigen's 224×224 field-of-view frames no resize happens in
either, so the pixels fed to CLIP are identical.

Energy-map numerics: the original stored CLIP features and patch tokens as float16 (§9 B.16) and computed
the map from those; ``mode="original"`` rounds both through float16 to reproduce that, the default keeps
full precision. The map is always computed in (at least) float32.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import AutoImageProcessor, BatchFeature, CLIPVisionModelWithProjection
from transformers.utils import cached_file

from ..directions import direction_to_model_vector
from ..video.frames import validate_frames

__all__ = [
    "DEFAULT_CLIP_REPO",
    "ENERGY_TEMPERATURE",
    "ENERGY_TOP_P",
    "VisageFeatureExtractor",
    "encode_frames",
    "energy_from_scores",
    "low_energy_mask",
    "patch_energy_map",
    "patch_grid_size",
    "patch_novelty_scores",
    "validate_frames",
]

DEFAULT_CLIP_REPO = "openai/clip-vit-base-patch32"
ENERGY_TEMPERATURE = 0.1
ENERGY_TOP_P = 0.7
FEATURES_CONFIG_NAME = "visage_features_config.json"
_MODES = ("corrected", "original")  # "default" (0.1.0's spelling of "corrected") is still accepted


# --------------------------------------------------------------------------------------------------------
# Patchwise energy map (docs/original-implementation.md §7)
# --------------------------------------------------------------------------------------------------------


def patch_grid_size(num_patches: int) -> int:
    """Side of the square patch grid holding ``num_patches`` tokens (49 -> 7); ``ValueError`` if not square."""
    side = math.isqrt(num_patches)
    if num_patches < 1 or side * side != num_patches:
        raise ValueError(f"expected a square number of patch tokens (e.g. 49 = 7×7), got {num_patches}")
    return side


def _unit(vectors: torch.Tensor) -> torch.Tensor:
    # F.normalize maps a zero vector to zero (eps clamp), which is what makes s_tm = 1 when T = 1.
    return F.normalize(vectors, p=2, dim=-1)


def _neighbour_sum_and_count(grid: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of the previous and next entry along ``dim`` (missing ones at the edges count as absent)."""
    total = torch.zeros_like(grid)
    count = torch.zeros((*grid.shape[:-1], 1), dtype=grid.dtype, device=grid.device)
    length = grid.shape[dim]
    if length > 1:
        total.narrow(dim, 1, length - 1).add_(grid.narrow(dim, 0, length - 1))
        total.narrow(dim, 0, length - 1).add_(grid.narrow(dim, 1, length - 1))
        count.narrow(dim, 1, length - 1).add_(1)
        count.narrow(dim, 0, length - 1).add_(1)
    return total, count


def patch_novelty_scores(patch_grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial and temporal novelty of every patch.

    Args:
        patch_grid: ``(batch, T, rows, cols, dim)`` raw patch tokens (no CLS); frames of one clip along ``T``.

    Returns:
        ``(spatial, temporal)``, each ``(batch, T, rows, cols)``: ``‖f̂ − normalize(mean of neighbours)‖₂`` with
        the 4-neighbourhood in the grid (2–3 neighbours at edges) and the ±1 frame neighbourhood (one at the
        clip ends, none when ``T = 1``). No neighbour at all means a zero mean, hence a score of exactly 1.
    """
    unit = _unit(patch_grid)
    up_down, count_rows = _neighbour_sum_and_count(patch_grid, dim=2)
    left_right, count_cols = _neighbour_sum_and_count(patch_grid, dim=3)
    # A 1×1 grid has no neighbours: a zero mean gives score 1, as a single frame does in time.
    spatial_mean = (up_down + left_right) / (count_rows + count_cols).clamp(min=1)
    spatial = torch.linalg.vector_norm(unit - _unit(spatial_mean), dim=-1)

    around, count_frames = _neighbour_sum_and_count(patch_grid, dim=1)
    temporal_mean = around / count_frames.clamp(min=1)
    temporal = torch.linalg.vector_norm(unit - _unit(temporal_mean), dim=-1)
    return spatial, temporal


def energy_from_scores(scores: torch.Tensor, temperature: float = ENERGY_TEMPERATURE) -> torch.Tensor:
    """Average over score maps of their softmax across patches.

    Args:
        scores: ``(num_maps, ..., num_patches)``; ``-inf`` entries get exactly zero energy.

    Returns:
        ``(..., num_patches)``, each row summing to 1.
    """
    return torch.softmax(scores / temperature, dim=-1).mean(dim=0)


def low_energy_mask(energy: torch.Tensor, top_p: float = ENERGY_TOP_P) -> torch.Tensor:
    """Patches in the least-energetic tail: ascending cumulative energy ``<= 1 − top_p`` (``(..., patches)`` bool)."""
    sorted_energy, order = torch.sort(energy, dim=-1)
    tail_sorted = torch.cumsum(sorted_energy, dim=-1) <= (1 - top_p)
    return torch.zeros_like(tail_sorted).scatter(-1, order, tail_sorted)


def patch_energy_map(
    tokens: torch.Tensor,
    temperature: float = ENERGY_TEMPERATURE,
    top_p: float = ENERGY_TOP_P,
    num_prefix_tokens: int = 1,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The original's patchwise visual energy map (``data/infer_clip_energy.py``), vectorised.

    ``M₀ = ½[softmax(s_sp/τ) + softmax(s_tm/τ)]``; patches whose ascending cumulative ``M₀`` is ``<= 1 − top_p``
    get ``-inf`` in both score maps; the result is ``½[softmax(s_sp′/τ) + softmax(s_tm′/τ)]``.

    Args:
        tokens: last-layer CLIP tokens ``(T, 1 + P, dim)`` or ``(batch, T, 1 + P, dim)``, CLS first, then the
            ``P = g×g`` patches row-major (index = row·g + col). Frames of a clip lie along ``T``.
        temperature: softmax temperature τ (original 0.1).
        top_p: energy mass kept (original 0.7).
        num_prefix_tokens: tokens before the patches (1: CLS).
        compute_dtype: dtype of the arithmetic (None: at least float32). ``torch.float16`` on a CUDA device is
            what the original ran.

    Returns:
        ``compute_dtype``, else float32 (float64 for float64 input) ``(T, P)`` or ``(batch, T, P)``; rows sum to 1, filtered patches are 0.
    """
    if tokens.ndim not in (3, 4):
        raise ValueError(
            f"tokens: expected (T, tokens, dim) or (batch, T, tokens, dim), got shape {tuple(tokens.shape)}"
        )
    if tokens.shape[-3] < 1:
        raise ValueError("tokens: expected at least one frame, got T = 0")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p: expected a value in (0, 1], got {top_p}")
    unbatched = tokens.ndim == 3
    if unbatched:
        tokens = tokens.unsqueeze(0)
    patches = tokens[..., num_prefix_tokens:, :]
    side = patch_grid_size(patches.shape[-2])
    patches = patches.to(compute_dtype or torch.promote_types(patches.dtype, torch.float32))
    batch, frames = patches.shape[:2]
    grid = patches.reshape(batch, frames, side, side, patches.shape[-1])

    scores = torch.stack(patch_novelty_scores(grid)).flatten(-2)  # (2, batch, T, P)
    tail = low_energy_mask(energy_from_scores(scores, temperature), top_p)
    energy = energy_from_scores(scores.masked_fill(tail, float("-inf")), temperature)
    return energy.squeeze(0) if unbatched else energy


# --------------------------------------------------------------------------------------------------------
# CLIP frame encoding
# --------------------------------------------------------------------------------------------------------


def _pixel_values(image_processor, frames: np.ndarray) -> torch.Tensor:
    """``(n, H, W, 3)`` uint8 -> ``(n, 3, size, size)`` float32 CLIP pixels."""
    processed = image_processor(list(frames), return_tensors="pt", input_data_format="channels_last")
    return processed["pixel_values"]


def require_half_precision_device(device: torch.device) -> None:
    """A one-line ``ValueError`` unless ``device`` is a CUDA device (float16 CLIP / energy maps need one)."""
    if torch.device(device).type != "cuda":
        raise ValueError(
            f"half_precision: float16 CLIP and energy maps (the original's GPU numerics) need a CUDA device, the "
            f"CLIP encoder is on {device}; on a CPU use the default float32 (original mode still rounds the "
            "features through float16, as the original stored them)"
        )


def encode_frames(
    image_encoder: CLIPVisionModelWithProjection,
    image_processor,
    frames,
    batch_size: int = 32,
    progress: bool = False,
    half_precision: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """CLIP image embeddings and last-layer tokens of every frame, in one forward per chunk.

    Args:
        image_encoder: a ``CLIPVisionModelWithProjection`` (any device/dtype; pixels follow it).
        image_processor: its image processor (resize short side, centre crop, /255, mean/std).
        frames: see :func:`validate_frames`.
        batch_size: frames per forward.
        progress: show a tqdm bar over the chunks.
        half_precision: run the forward under float16 autocast (matrix products in float16, layer norms in
            float32: what OpenAI's CLIP does on CUDA, as the original ran it). Needs a CUDA device.

    Returns:
        ``(image_embeds, tokens)``: ``(batch, T, projection_dim)`` and ``(batch, T, 1 + P, hidden)``, in the
        encoder's dtype and on its device (ordinary tensors, usable outside inference mode).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
    clips = validate_frames(frames)
    batch, num_frames = clips.shape[:2]
    flat = clips.reshape(batch * num_frames, *clips.shape[2:])
    parameter = next(image_encoder.parameters())
    if half_precision:
        require_half_precision_device(parameter.device)
    starts = range(0, len(flat), batch_size)
    embeds, tokens = [], []
    autocast = torch.autocast("cuda", dtype=torch.float16, enabled=half_precision)
    with torch.inference_mode(), autocast:
        for start in tqdm(starts, desc="CLIP frames", unit="chunk", disable=not progress):
            pixels = _pixel_values(image_processor, flat[start : start + batch_size])
            output = image_encoder(pixel_values=pixels.to(device=parameter.device, dtype=parameter.dtype))
            embeds.append(output.image_embeds)
            tokens.append(output.last_hidden_state)
        image_embeds = torch.cat(embeds).unflatten(0, (batch, num_frames))
        last_tokens = torch.cat(tokens).unflatten(0, (batch, num_frames))
    # Inference tensors cannot be saved for backward; a clone outside inference mode is an ordinary tensor.
    return image_embeds.clone(), last_tokens.clone()


def _round_through_float16(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.to(torch.float16).to(tensor.dtype)


# --------------------------------------------------------------------------------------------------------
# The processor
# --------------------------------------------------------------------------------------------------------


class VisageFeatureExtractor:
    """Frames + camera direction -> ``VisageForFOA.generate`` inputs.

    Holds the CLIP vision tower with projection and its image processor. Example::

        extractor = VisageFeatureExtractor.from_pretrained("openai/clip-vit-base-patch32")
        inputs = extractor(frames, azimuth=30.0, elevation=0.0)   # frames (20, H, W, 3) uint8 at 4 fps
        codes = model.generate(**inputs)

    Args:
        image_encoder: ``CLIPVisionModelWithProjection``.
        image_processor: its image processor (``CLIPImageProcessorPil`` without torchvision).
        batch_size: frames per CLIP forward.
        energy_temperature, energy_top_p: energy-map softmax temperature and kept mass (original 0.1, 0.7).
        mode: ``"corrected"`` (full precision; ``"default"`` is accepted too) or ``"original"`` (features and
            patch tokens rounded through float16 as the original stored them on disk).
        half_precision: compute CLIP and the energy map in float16 as the original did on its GPU (CUDA only;
            a ``ValueError`` on other devices when called).
    """

    def __init__(
        self,
        image_encoder: CLIPVisionModelWithProjection,
        image_processor,
        batch_size: int = 32,
        energy_temperature: float = ENERGY_TEMPERATURE,
        energy_top_p: float = ENERGY_TOP_P,
        mode: str = "corrected",
        half_precision: bool = False,
    ):
        mode = "corrected" if mode == "default" else mode
        if mode not in _MODES:
            raise ValueError(f"mode: expected one of {_MODES}, got {mode!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size: expected a positive integer, got {batch_size}")
        self.image_encoder = image_encoder.eval()
        self.image_processor = image_processor
        self.batch_size = batch_size
        self.energy_temperature = energy_temperature
        self.energy_top_p = energy_top_p
        self.mode = mode
        self.half_precision = half_precision

    # -- loading and saving ------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike = DEFAULT_CLIP_REPO,
        *,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        image_processor_backend: str = "pil",
        **kwargs,
    ) -> VisageFeatureExtractor:
        """Load the CLIP vision tower and image processor from a Hub id or folder, or from a folder saved by
        ``VisagePipeline.save_pretrained`` (its ``image_encoder/`` and ``image_processor/``).

        ``kwargs`` that name settings of this class (``batch_size``, ``energy_temperature``, ``energy_top_p``,
        ``mode``) override those saved by :meth:`save_pretrained`; Hub arguments (``revision``, ``subfolder``,
        ``cache_dir``, ``local_files_only``, ``token``) go to both loaders, anything else to the model's
        ``from_pretrained`` only. The PIL image processor backend is the default so results do not depend on
        whether torchvision is installed. A local folder that does not exist raises ``FileNotFoundError``.
        """
        settings = {key: kwargs.pop(key) for key in _SETTING_NAMES if key in kwargs}
        if _is_pipeline_folder(pretrained_model_name_or_path, kwargs.get("subfolder")):
            return cls._from_pipeline_folder(pretrained_model_name_or_path, device, dtype, settings)
        _check_local_folder(pretrained_model_name_or_path, kwargs.get("subfolder"))
        hub_kwargs = {key: value for key, value in kwargs.items() if key in _HUB_KWARGS}
        image_processor = AutoImageProcessor.from_pretrained(
            pretrained_model_name_or_path, backend=image_processor_backend, **hub_kwargs
        )
        model_kwargs = {"dtype": dtype} if dtype is not None else {}
        image_encoder = CLIPVisionModelWithProjection.from_pretrained(
            pretrained_model_name_or_path, **kwargs, **model_kwargs
        )
        if device is not None:
            image_encoder = image_encoder.to(device)
        saved = _load_saved_settings(pretrained_model_name_or_path, hub_kwargs)
        return cls(image_encoder, image_processor, **{**saved, **settings})

    @classmethod
    def _from_pipeline_folder(cls, folder, device, dtype, settings: dict) -> VisageFeatureExtractor:
        """A folder written by ``VisagePipeline.save_pretrained``: CLIP and its processor sit in the sibling
        subfolders ``image_encoder/`` and ``image_processor/``."""
        folder = os.path.expanduser(os.fspath(folder))
        image_processor = AutoImageProcessor.from_pretrained(
            os.path.join(folder, "image_processor"), backend="pil"
        )
        model_kwargs = {"dtype": dtype} if dtype is not None else {}
        image_encoder = CLIPVisionModelWithProjection.from_pretrained(
            os.path.join(folder, "image_encoder"), **model_kwargs
        )
        if device is not None:
            image_encoder = image_encoder.to(device)
        return cls(image_encoder, image_processor, **settings)

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        """Write the encoder (``config.json``, ``model.safetensors``), the image processor
        (``preprocessor_config.json``) and this class's settings (``visage_features_config.json``).

        Files are written to a temporary folder first and moved into place, so a crash leaves no half file.
        """
        os.makedirs(save_directory, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".tmp-features-", dir=save_directory)
        try:
            self.image_encoder.save_pretrained(staging)
            self.image_processor.save_pretrained(staging)
            with open(os.path.join(staging, FEATURES_CONFIG_NAME), "w") as handle:
                json.dump(self.settings, handle, indent=2, sort_keys=True)
            for name in os.listdir(staging):
                os.replace(os.path.join(staging, name), os.path.join(save_directory, name))
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @property
    def settings(self) -> dict:
        """The non-model settings written by :meth:`save_pretrained`."""
        return {
            "batch_size": self.batch_size,
            "energy_temperature": self.energy_temperature,
            "energy_top_p": self.energy_top_p,
            "mode": self.mode,
        }

    def to(
        self, device: str | torch.device | None = None, dtype: torch.dtype | None = None
    ) -> VisageFeatureExtractor:
        """Move the CLIP encoder (in place) and return ``self``."""
        self.image_encoder.to(device=device, dtype=dtype)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.image_encoder.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.image_encoder.parameters()).dtype

    @property
    def num_patches(self) -> int:
        """Patches per frame, i.e. the energy map's width (49 for ViT-B/32 at 224 px)."""
        config = self.image_encoder.config
        return (config.image_size // config.patch_size) ** 2

    # -- running -----------------------------------------------------------------------------------------

    def __call__(
        self,
        frames,
        azimuth: float | Sequence[float],
        elevation: float | Sequence[float],
        progress: bool = False,
    ) -> BatchFeature:
        """Compute the model inputs for one or several clips.

        Args:
            frames: ``(T, H, W, 3)`` or ``(batch, T, H, W, 3)`` uint8 RGB frames at 4 fps (numpy or torch), or
                a list of equal-shape clips.
            azimuth, elevation: camera direction in degrees (public convention of ``visage_hf.directions``),
                one value or one per clip.
            progress: show a progress bar over CLIP chunks.

        Returns:
            ``BatchFeature`` with float32 tensors on the encoder's device: ``clip_features (batch, T, 512)``,
            ``energy_map (batch, T, 49)``, ``direction (batch, 3)``.
        """
        clips = validate_frames(frames)
        direction = self._direction(azimuth, elevation, batch=clips.shape[0])
        image_embeds, tokens = encode_frames(
            self.image_encoder,
            self.image_processor,
            clips,
            batch_size=self.batch_size,
            progress=progress,
            half_precision=self.half_precision,
        )
        clip_features = image_embeds.float()
        if self.mode == "original":
            clip_features = _round_through_float16(clip_features)
            tokens = _round_through_float16(tokens)
        energy_map = patch_energy_map(
            tokens,
            temperature=self.energy_temperature,
            top_p=self.energy_top_p,
            compute_dtype=torch.float16 if self.half_precision else None,
        ).float()
        return BatchFeature(
            {
                "clip_features": clip_features,
                "energy_map": energy_map,
                "direction": direction.to(clip_features.device),
            }
        )

    @staticmethod
    def _direction(azimuth, elevation, batch: int) -> torch.Tensor:
        azimuth = np.atleast_1d(np.asarray(azimuth, dtype=np.float64))
        elevation = np.atleast_1d(np.asarray(elevation, dtype=np.float64))
        for name, values in (("azimuth", azimuth), ("elevation", elevation)):
            if values.ndim != 1 or len(values) not in (1, batch):
                raise ValueError(
                    f"{name}: expected one value or {batch} (one per clip), got shape {values.shape}"
                )
        vectors = direction_to_model_vector(*np.broadcast_arrays(azimuth, elevation))
        return torch.tensor(np.broadcast_to(vectors, (batch, 3)), dtype=torch.float32)

    def __repr__(self) -> str:
        name = getattr(self.image_encoder.config, "_name_or_path", "") or "CLIPVisionModelWithProjection"
        return f"{type(self).__name__}(image_encoder={name!r}, {self.settings})"


_HUB_KWARGS = ("revision", "subfolder", "cache_dir", "local_files_only", "token", "force_download", "proxies")
_SETTING_NAMES = ("batch_size", "energy_temperature", "energy_top_p", "mode")


def _is_pipeline_folder(pretrained_model_name_or_path, subfolder: str | None) -> bool:
    """A local folder saved by ``VisagePipeline.save_pretrained`` (``model_index.json`` beside the components)."""
    if subfolder or not isinstance(pretrained_model_name_or_path, (str, os.PathLike)):
        return False
    folder = os.path.expanduser(os.fspath(pretrained_model_name_or_path))
    return os.path.isfile(os.path.join(folder, "model_index.json"))


def _check_local_folder(pretrained_model_name_or_path, subfolder: str | None) -> None:
    """Fail early and clearly for a local path (not a Hub id) that is not a folder."""
    text = str(pretrained_model_name_or_path)
    looks_local = not isinstance(pretrained_model_name_or_path, str) or text.startswith(("/", ".", "~"))
    folder = os.path.join(os.path.expanduser(text), subfolder or "")
    if (looks_local or os.path.exists(text)) and not os.path.isdir(folder):
        raise FileNotFoundError(f"CLIP folder: expected a directory with config.json, got {folder!r}")


def _load_saved_settings(pretrained_model_name_or_path, hub_kwargs: dict) -> dict:
    """Settings saved by :meth:`VisageFeatureExtractor.save_pretrained` (local or Hub); a plain CLIP repo
    has none, so the defaults apply."""
    path = cached_file(
        pretrained_model_name_or_path,
        FEATURES_CONFIG_NAME,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **hub_kwargs,
    )
    if path is None:
        return {}
    with open(path) as handle:
        saved = json.load(handle)
    return {key: value for key, value in saved.items() if key in _SETTING_NAMES}
