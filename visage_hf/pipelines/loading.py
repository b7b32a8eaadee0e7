"""One way to load a `VisagePipeline` by name, shared by ``visage generate``, ``visage generate-batch`` and the app.

A name is ``"tiny-random"`` (a tiny random pipeline built offline), a local folder (a saved pipeline with
``model_index.json``, or a bare model checkpoint: converted `VisageForFOA`, trained ``<output_dir>/model``, or
the original release) or a Hub id. A bare checkpoint holds only the ViSAGe model: CLIP
(``openai/clip-vit-base-patch32``) and the 44.1 kHz DAC come from the Hub, its cache, or folders given as
``clip=`` / ``codec=`` (``--clip`` / ``--codec`` on the command line).

Offline, the Hub libraries retry for tens of seconds before failing. So the Hub is checked once, quickly; when it
cannot be reached every Hub id is resolved from the local cache only, and what is missing is named in one line
with the option that supplies it — never "could not download" for a folder that is fine.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

__all__ = ["PipelineLoadError", "load_pipeline", "resolve_source"]

# How long the one reachability check of the Hub may take (a DNS failure answers at once; a black hole waits).
REACHABILITY_TIMEOUT_SECONDS = 3.0


class PipelineLoadError(ValueError):
    """The pipeline cannot be loaded; the message is one line naming what is missing and what supplies it."""


def load_pipeline(
    name_or_path: str | os.PathLike,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    quiet: bool = False,
    *,
    clip: str | os.PathLike | None = None,
    codec: str | os.PathLike | None = None,
):
    """The `VisagePipeline` named by ``name_or_path``, on ``device`` (default: CUDA when available) in ``dtype``.

    Args:
        name_or_path: ``"tiny-random"``, a saved pipeline or model checkpoint folder, or a Hub id.
        device, dtype: where and in which precision (``torch.float16`` or ``"float16"``; default float32;
            ``"int8"``: float32 with the ViSAGe decoder's step weights in int8, see `visage_hf.models.quantization`).
        quiet: hide the libraries' loading bars.
        clip, codec: folders (or Hub ids) of CLIP and the DAC for a bare checkpoint (default: the Hub's).

    Raises:
        PipelineLoadError: one line — a missing folder, an unreachable Hub with the files not cached (naming
            which component and the option that supplies it), or the loader's own reason.
    """
    from ..models.quantization import is_int8, quantize_decoder
    from .tiny import TINY_RANDOM, TINY_RANDOM_WARNING, tiny_random_components

    int8 = is_int8(dtype)
    dtype = torch.float32 if int8 else _dtype(dtype)
    if quiet:
        _hide_loading_bars()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    name = os.fspath(name_or_path)
    if name == TINY_RANDOM:
        from .pipeline_visage import VisagePipeline

        print(f"visage: warning: {TINY_RANDOM_WARNING}", file=sys.stderr)
        # Its layers are too small to gain from intra-op threads, and on a busy CPU extra threads make each of
        # its ~2000 decoder steps wait on the others.
        torch.set_num_threads(1)
        pipe = VisagePipeline(**tiny_random_components())
    else:
        pipe = _load_named(name, dtype, clip, codec)
    try:
        pipe = pipe.to(device=device, dtype=dtype)
    except (AssertionError, RuntimeError) as error:  # e.g. "Torch not compiled with CUDA enabled"
        raise PipelineLoadError(f"device {device}: {_one_line(error)}") from None
    return quantize_decoder(pipe) if int8 else pipe


def _load_named(name: str, dtype: torch.dtype, clip, codec):
    from ..audio.codec import DAC_44KHZ_REPO, DAC_44KHZ_REVISION
    from ..models.feature_extraction_visage import DEFAULT_CLIP_REPO
    from .pipeline_visage import VisagePipeline

    online = hub_online()
    source = resolve_source(name, online, "the model", "--model")
    try:
        if (Path(source) / "model_index.json").is_file():
            if clip is not None or codec is not None:
                raise PipelineLoadError(
                    f"{name} is a complete pipeline (it holds its own CLIP and codec): leave out --clip/--codec"
                )
            return VisagePipeline.from_pretrained(source, dtype=dtype)
        if not _is_dir(source) and online and _hub_has_pipeline(source):
            return VisagePipeline.from_pretrained(source, dtype=dtype)
        needs = f"{name} holds the ViSAGe model only; the pipeline also needs"
        clip_source = resolve_source(clip or DEFAULT_CLIP_REPO, online, f"{needs} CLIP", "--clip")
        codec_revision = DAC_44KHZ_REVISION if codec is None else None
        codec_source = resolve_source(
            codec or DAC_44KHZ_REPO, online, f"{needs} the DAC codec", "--codec", revision=codec_revision
        )
        return VisagePipeline.from_original(
            source,
            dtype=dtype,
            clip_repo=clip_source,
            codec_repo=codec_source,
            codec_revision=codec_revision if codec_source == DAC_44KHZ_REPO else None,
        )
    except PipelineLoadError:
        raise
    except Exception as error:
        raise PipelineLoadError(f"could not load the model {name}: {_one_line(error)}") from None


def hub_online() -> bool:
    """Whether the Hub may be asked: not with HF_HUB_OFFLINE set, nor when one quick connection fails."""
    from huggingface_hub import constants

    from ..utils import hub

    return not constants.HF_HUB_OFFLINE and hub.hub_reachable(timeout=REACHABILITY_TIMEOUT_SECONDS)


def resolve_source(
    name: str | os.PathLike, online: bool, what: str, option: str, revision: str | None = None
) -> str:
    """``name`` as something to load from: a local folder as is, a Hub id as is when ``online``, else the
    id's snapshot in the local Hugging Face cache (no network at all).

    Raises:
        PipelineLoadError: a local path that is not a folder, or an id that is neither reachable nor cached;
            the message says ``what`` is missing and that ``option`` supplies it.
    """
    text = os.fspath(name)
    path = Path(text).expanduser()
    if _looks_local(text):
        if not path.is_dir():
            raise PipelineLoadError(
                f"{option.lstrip('-')} folder not found: {text} (pass a folder to {option})"
            )
        return str(path)
    if online:
        return text
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return snapshot_download(text, revision=revision, local_files_only=True)
    except (LocalEntryNotFoundError, OSError, ValueError):
        extra = (
            " (e.g. a converted checkpoint, see 'visage convert-original'), or --model tiny-random to check "
            "the plumbing"
            if option == "--model"
            else ""
        )
        raise PipelineLoadError(
            f"{what} ({text}): could not download it, the Hub cannot be reached (offline) and it is not in the "
            f"Hugging Face cache; pass {option} DIR with a local copy{extra}"
        ) from None


def _hub_has_pipeline(repo_id: str) -> bool:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        hf_hub_download(repo_id, "model_index.json")
    except EntryNotFoundError:
        return False
    return True


def _looks_local(text: str) -> bool:
    """A filesystem path rather than a Hub id (``owner/name``)."""
    return text.startswith(("/", ".", "~")) or text.count("/") > 1 or Path(text).expanduser().exists()


def _is_dir(text: str) -> bool:
    return Path(text).expanduser().is_dir()


def _dtype(dtype) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        value = getattr(torch, dtype, None)
        if not isinstance(value, torch.dtype) or not value.is_floating_point:
            raise PipelineLoadError(f"dtype: expected float32, float16, bfloat16 or int8, got {dtype!r}")
        return value
    return dtype


def _hide_loading_bars() -> None:
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
