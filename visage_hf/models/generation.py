"""Generation pieces for `VisageForFOA.generate`: guidance plans, the code canvas, and logits processors.

`VisageForFOA.generate` folds the code streams into generate's rows (row = b·S + stream) and calls
`GenerationMixin.generate`. Each step the model runs every guidance branch in one batched decoder pass and
combines them (see `GuidancePlan`); the processors below then force the code pattern (pad on idle streams,
known prefix codes) and, when sampling, draw the free codes with a private `torch.Generator`.

Guidance scales follow the original ViSAGe formula ``l = l_c + s·(l_c − l_u)`` (released: s = 2.5); s = 0 is
the purely conditional model. In the usual ``l_u + γ·(l_c − l_u)`` notation, γ = s + 1.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from .categorical import categorical_draws
from .configuration_visage import DEFAULT_GENERATION_SETTINGS, GUIDANCE_MODES, VisageConfig
from .kv_cache import PreallocatedKVLayer, VisageKVCache, make_generation_cache  # re-exported: their old home
from .patterns import CodePattern
from .top_k import KthValueTopKLogitsWarper  # re-exported: its old home

UNKNOWN_CODE = -1
"""Canvas value of a cell the model must generate."""

# (null_visual, null_direction) per branch; branch 0 is always the fully conditional one.
_GUIDANCE_BRANCHES = {
    "none": ((False, False),),
    "joint": ((False, False), (True, True)),
    "visual": ((False, False), (True, False)),
    "direction": ((False, False), (False, True)),
    "dual": ((False, False), (False, True), (True, False), (True, True)),
}


@dataclass(frozen=True)
class GuidancePlan:
    """Which condition branches run, and how their outputs combine.

    Modes (``c`` conditional, ``u`` all conditions nulled; visual = CLIP + energy map):
        - ``none``: ``c``.
        - ``joint`` (the original's released generation): ``c + s·(c − u)``.
        - ``visual``: ``c + s·(c − c_no_visual)``, direction kept in both branches.
        - ``direction``: ``c + s_d·(c − c_no_direction)``, visual kept in both branches.
        - ``dual`` (the original's `generate_dual_cfg`): ``c + s·(c_sem − u) + s_d·(c_spa − u)``, where
          ``c_sem`` nulls the direction and ``c_spa`` nulls the visual inputs.

    Every formula is affine in the branch outputs with weights summing to 1, so it can be applied to the
    decoder's last hidden states before the (affine) output heads: one head projection instead of K.
    ``combine_logits=True`` instead combines per-branch logits in the original's exact order of operations.
    """

    mode: str = "joint"
    scale: float = 2.5
    direction_scale: float = 2.5
    combine_logits: bool = False

    def __post_init__(self) -> None:
        if self.mode not in _GUIDANCE_BRANCHES:
            raise ValueError(
                f"unknown guidance mode {self.mode!r}; expected one of {list(_GUIDANCE_BRANCHES)}"
            )
        for name in ("scale", "direction_scale"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
                raise ValueError(f"guidance {name} must be a finite number, got {value!r}")

    @property
    def branches(self) -> tuple[tuple[bool, bool], ...]:
        """``(null_visual, null_direction)`` for each branch, conditional branch first."""
        return _GUIDANCE_BRANCHES[self.mode]

    @property
    def num_branches(self) -> int:
        return len(self.branches)

    def combine(self, stacked: torch.Tensor) -> torch.Tensor:
        """``(branches, ...)`` -> ``(...)`` with the mode's formula (written as the original writes it)."""
        if stacked.shape[0] != self.num_branches:
            raise ValueError(
                f"guidance {self.mode!r} needs {self.num_branches} branches, got {stacked.shape[0]}"
            )
        cond = stacked[0]
        if self.mode == "none":
            return cond
        if self.mode == "dual":
            semantic, spatial, uncond = stacked[1], stacked[2], stacked[3]
            return cond + (semantic - uncond) * self.scale + (spatial - uncond) * self.direction_scale
        scale = self.direction_scale if self.mode == "direction" else self.scale
        return cond + (cond - stacked[1]) * scale


# ---------------------------------------------------------------------------------------------------- arguments
# generate() arguments whose meaning the code pattern fixes, or which break the folded-stream row layout.
_FIXED_BY_PATTERN = (
    "max_length",
    "max_new_tokens",
    "min_length",
    "min_new_tokens",
    "eos_token_id",
    "stop_strings",
)


def first_set(*values):
    """The first value that is not None (explicit argument, then generation config, then fallback)."""
    for value in values:
        if value is not None:
            return value
    return None


def reject_unsupported_generate_kwargs(kwargs: dict) -> None:
    """ValueError for generate() options that cannot apply to pattern-driven, folded-stream generation."""
    fixed = sorted(set(kwargs) & set(_FIXED_BY_PATTERN))
    if fixed:
        raise ValueError(f"{fixed} cannot be set: the clip length and the code pattern fix the length")
    if kwargs.get("num_beams", 1) != 1:
        raise ValueError(
            f"beam search is not supported (num_beams={kwargs['num_beams']}); use sampling or greedy"
        )
    for name in ("guidance_scale", "negative_prompt_ids"):
        if name in kwargs:
            raise ValueError(f"{name!r} is not supported here; use `guidance` and its scales")


def resolve_guidance(
    config: VisageConfig,
    defaults: GenerationConfig,
    guidance: str | None,
    scale: float | None,
    direction_scale: float | None,
    mode: str,
) -> GuidancePlan:
    """The guidance plan from explicit arguments, then ``defaults`` (generation config), then the released
    model's settings (joint, 2.5) — also for checkpoints saved without a generation_config.json."""
    guidance = first_set(
        guidance, getattr(defaults, "guidance_mode", None), DEFAULT_GENERATION_SETTINGS["guidance_mode"]
    )
    if guidance not in GUIDANCE_MODES:
        raise ValueError(f"unknown guidance mode {guidance!r}; expected one of {list(GUIDANCE_MODES)}")
    if config.is_mono and guidance in ("dual", "direction"):
        raise ValueError(f"guidance {guidance!r} needs a direction input; the mono variant has none")
    scale = first_set(
        scale,
        getattr(defaults, "cfg_guidance_scale", None),
        DEFAULT_GENERATION_SETTINGS["cfg_guidance_scale"],
    )
    direction_scale = first_set(
        direction_scale,
        getattr(defaults, "cfg_direction_guidance_scale", None),
        DEFAULT_GENERATION_SETTINGS["cfg_direction_guidance_scale"],
    )
    return GuidancePlan(guidance, float(scale), float(direction_scale), combine_logits=mode == "original")


def resolve_num_return_sequences(value: int | None, defaults: GenerationConfig) -> int:
    """Samples per clip: ``value``, else the generation config's, else 1; ValueError unless an integer >= 1."""
    value = first_set(value, getattr(defaults, "num_return_sequences", None), 1)
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"num_return_sequences must be an integer >= 1, got {value!r}")
    return value


def resolve_sampling(
    defaults: GenerationConfig,
    top_k: int | None,
    top_p: float | None,
    temperature: float | None,
    generator: torch.Generator | Sequence[torch.Generator] | None,
    seed: int | None,
    device: torch.device,
) -> dict:
    """Keyword arguments for `CodeSamplingLogitsProcessor` (top-k 0 / top-p 1 / temperature 1 disable)."""
    top_k = first_set(top_k, defaults.top_k, DEFAULT_GENERATION_SETTINGS["top_k"])
    top_p = first_set(top_p, defaults.top_p, 1.0)
    temperature = first_set(temperature, defaults.temperature, 1.0)
    if not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 0 (0 disables it), got {top_k!r}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")
    if not temperature > 0.0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if generator is not None and seed is not None:
        raise ValueError("pass either generator or seed, not both")
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(int(seed))
    return {"top_k": top_k, "top_p": top_p, "temperature": temperature, "generator": generator}


def settings_in_effect(
    config: VisageConfig,
    defaults: GenerationConfig,
    guidance: str | None = None,
    guidance_scale: float | None = None,
    direction_guidance_scale: float | None = None,
    do_sample: bool | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    temperature: float | None = None,
    mode: str | None = None,
) -> dict:
    """The generation settings a call with these arguments uses (None = the generation config's, then the
    released model's), for reports such as ``run_config.json``."""
    mode = config.resolve_mode(mode)
    plan = resolve_guidance(config, defaults, guidance, guidance_scale, direction_guidance_scale, mode)
    sampling = resolve_sampling(defaults, top_k, top_p, temperature, None, None, torch.device("cpu"))
    do_sample = first_set(
        do_sample, getattr(defaults, "do_sample", None), DEFAULT_GENERATION_SETTINGS["do_sample"]
    )
    return {
        "guidance": plan.mode,
        "guidance_scale": plan.scale,
        "direction_guidance_scale": plan.direction_scale,
        "do_sample": bool(do_sample),
        **{key: sampling[key] for key in ("top_k", "top_p", "temperature")},
        "mode": mode,
    }


def check_prefix_codes(
    config: VisageConfig, prefix_codes: torch.Tensor | None, batch: int
) -> torch.Tensor | None:
    """``(batch, channels, codebooks, P)`` prefix -> ``(batch, streams, P)`` long, or ValueError."""
    if prefix_codes is None:
        return None
    expected = (batch, config.num_channels, config.num_codebooks)
    if prefix_codes.ndim != 4 or tuple(prefix_codes.shape[:3]) != expected or prefix_codes.shape[-1] < 1:
        raise ValueError(
            f"prefix_codes must be (batch, channels, codebooks, prefix_frames) = {(*expected, 'P >= 1')}, "
            f"got {tuple(prefix_codes.shape)}"
        )
    if (
        prefix_codes.is_floating_point()
        or int(prefix_codes.min()) < 0
        or int(prefix_codes.max()) >= config.codebook_size
    ):
        raise ValueError(f"prefix_codes must be integer codes in [0, {config.codebook_size})")
    return prefix_codes.reshape(batch, config.num_streams, -1).long()


def frames_to_generate(
    config: VisageConfig, num_frames: int | None, video_frames: int, mode: str, prefix_frames: int = 0
) -> int:
    """Frames one generate call produces (default from the clip length), checked against the decoder positions."""
    frames = config.frames_for_video_frames(video_frames, mode) if num_frames is None else num_frames
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
        raise ValueError(f"num_frames must be an integer >= 1, got {frames!r}")
    if frames > config.max_frames:
        raise ValueError(
            f"{frames} codec frames ({config.seconds_for_frames(frames):.3f} s) need "
            f"{config.pattern_steps(frames)} decoder positions with the {config.pattern!r} pattern; this model "
            f"has {config.max_target_positions} (at most {config.max_frames} frames per call)"
        )
    if prefix_frames > frames:
        raise ValueError(f"prefix_codes has {prefix_frames} frames, more than the {frames} to generate")
    return frames


def repeat_for_sequences(tensors: Sequence[torch.Tensor | None], count: int) -> list[torch.Tensor | None]:
    """Each tensor (or None) with every batch row repeated ``count`` times in a row (outputs grouped per clip)."""
    if count == 1:
        return list(tensors)
    return [None if tensor is None else tensor.repeat_interleave(count, dim=0) for tensor in tensors]


def generation_processors(
    canvas: torch.Tensor,
    config: VisageConfig,
    mode: str,
    sampler_settings: dict | None,
    logits_processor: Sequence[LogitsProcessor] | None,
    progress_steps: int | None,
) -> LogitsProcessorList:
    """The processors of one call, in order: pattern forcing, the caller's, a progress bar (``progress_steps``
    steps, if given), and the sampler (``sampler_settings`` from `resolve_sampling`; None = greedy)."""
    processors = LogitsProcessorList([CodePatternLogitsProcessor(canvas, config.code_pad_id)])
    processors.extend(logits_processor or [])
    if progress_steps:
        processors.append(ProgressLogitsProcessor(progress_steps))
    if sampler_settings is not None:
        processors.append(
            CodeSamplingLogitsProcessor(
                canvas, config.codebook_size, per_stream_draws=mode == "original", **sampler_settings
            )
        )
    return processors


def step_generation_config(config: VisageConfig, new_steps: int, use_cache: bool, kwargs: dict):
    """``(GenerationConfig, remaining model kwargs)`` for `GenerationMixin.generate` over the folded rows.

    Greedy decoding: the processors have already fixed every free cell (our sampler draws), so greedy keeps it.
    """
    step_config = GenerationConfig(
        do_sample=False,
        num_beams=1,
        max_new_tokens=new_steps,
        decoder_start_token_id=config.code_pad_id,
        pad_token_id=config.code_pad_id,
        use_cache=use_cache,
        # Neutral values: greedy ignores them, and they keep the model's sampling defaults (read by
        # `resolve_sampling`) from being merged in and reported as "flags that may be ignored".
        top_k=50,
        top_p=1.0,
        temperature=1.0,
    )
    return step_config, step_config.update(**kwargs)  # remaining generation options go into the config


# ---------------------------------------------------------------------------------------------------- cache


def build_code_canvas(
    pattern: CodePattern,
    batch_size: int,
    num_frames: int,
    pad_id: int,
    prefix_codes: torch.Tensor | None = None,
) -> torch.Tensor:
    """The step grid to fill: pad where the pattern is idle, prefix codes where known, -1 where to generate.

    Args:
        prefix_codes: ``(batch, streams, prefix_frames)`` known leading frames, or None.

    Returns:
        ``(batch, steps, streams)`` LongTensor.
    """
    codes = torch.full((batch_size, pattern.num_streams, num_frames), UNKNOWN_CODE, dtype=torch.long)
    if prefix_codes is not None:
        codes[..., : prefix_codes.shape[-1]] = prefix_codes.to(torch.long).cpu()
    return pattern.build(codes, pad_id)


def prompt_steps(canvas: torch.Tensor) -> int:
    """Number of leading canvas steps with no cell left to generate (they become the decoder prompt)."""
    unknown_steps = (canvas == UNKNOWN_CODE).any(dim=(0, 2)).nonzero()
    return int(unknown_steps[0]) if len(unknown_steps) else canvas.shape[1]


@functools.lru_cache(maxsize=64)
def _stream_index(streams: tuple[int, ...], device: torch.device) -> torch.LongTensor:
    return torch.tensor(streams, dtype=torch.long, device=device)


def stream_index(streams: Sequence[int], device: torch.device) -> torch.LongTensor:
    """``streams`` as an index tensor on ``device``, made once per list: indexing a GPU tensor by a Python list
    copies the list to the device and waits for that copy, at every step."""
    return _stream_index(tuple(streams), torch.device(device))


def stream_schedule(canvas: torch.Tensor) -> list[list[int]]:
    """For each step, the streams that some batch row must generate (the heads the model has to compute)."""
    unknown = (canvas == UNKNOWN_CODE).any(dim=0)
    return [row.nonzero().flatten().tolist() for row in unknown]


def repeat_last_frame(codes: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Pad ``(..., frames)`` codes to ``num_frames`` by repeating the last frame (the original's end handling)."""
    missing = num_frames - codes.shape[-1]
    if missing <= 0:
        return codes
    return torch.cat([codes, codes[..., -1:].expand(*codes.shape[:-1], missing)], dim=-1)


def with_stored_signature(function: Callable) -> Callable:
    """Decorator: ``function`` with its signature stored on it (``__signature__``), which `inspect.signature` returns
    as is.

    transformers' generate inspects the same signatures at every step: `LogitsProcessorList` each processor's
    ``__call__`` (for extra keyword arguments), and ``prepare_inputs_for_generation`` the model's ``forward`` when
    the class is registered for auto classes, as ours is (a check for Hub code). That was ~0.3 ms of a decoder step
    on a 2-core EPYC (4.8 ms at 78 M parameters in int8)."""
    function.__signature__ = inspect.signature(function)
    return function


def _current_step(input_ids: torch.LongTensor) -> int:
    # Column 0 of generate's sequences is the decoder start placeholder; the step being predicted follows it.
    return input_ids.shape[1] - 1


class CodePatternLogitsProcessor(LogitsProcessor):
    """Forces the code canvas: known cells (pattern pads, prefix codes) become certain, unknown cells stay free.

    The heads have no pad class, so the scores are widened to ``pad_id + 1`` columns: a known cell gets 0 at its
    value and -inf elsewhere; a free cell keeps the model's scores and -inf on the pad column.

    Args:
        canvas: ``(batch, steps, streams)`` from `build_code_canvas`; generate's row ``b·streams + s``.
        pad_id: the pad code.
    """

    def __init__(self, canvas: torch.Tensor, pad_id: int):
        self.canvas = canvas
        self.pad_id = pad_id
        self._device_canvas = canvas

    def _canvas_on(self, device: torch.device) -> torch.Tensor:
        """The canvas on the scores' device, copied there once (a blocking copy each step waits for the GPU)."""
        if self._device_canvas.device != device:
            self._device_canvas = self.canvas.to(device)
        return self._device_canvas

    @with_stored_signature
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        batch, _, streams = self.canvas.shape
        if scores.shape[0] != batch * streams:
            raise ValueError(
                f"expected {batch * streams} generate rows (batch × streams), got {scores.shape[0]}"
            )
        known = self._canvas_on(scores.device)[:, _current_step(input_ids)].reshape(-1)
        vocab = scores.shape[1]
        widened = scores.new_full((scores.shape[0], max(vocab, self.pad_id + 1)), float("-inf"))
        free = (known == UNKNOWN_CODE)[:, None]
        widened[:, :vocab] = scores.masked_fill(~free, float("-inf"))
        # Known cells: 0 at their code. Every row is written (free rows get their own value back): selecting the
        # known rows first (`nonzero`) would make the host wait for the device at every step.
        columns = known.clamp(min=0)[:, None]
        widened.scatter_(1, columns, torch.where(free, widened.gather(1, columns), 0.0))
        return widened


class CodeSamplingLogitsProcessor(LogitsProcessor):
    """Samples the free cells itself and returns one-hot scores, so that a greedy `generate` keeps the draw.

    transformers' `generate` has no generator argument; drawing here lets a `torch.Generator` (or a seed)
    reproduce outputs exactly without touching the global RNG. Warpers apply in transformers' order
    (temperature, top-k with ties kept, top-p) to the codebook columns only.

    Args:
        canvas: the code canvas (free cells are sampled, the others passed through).
        codebook_size: real code columns (the pad column is never sampled).
        per_stream_draws: draw stream by stream in ascending order, one ``(batch, codebook)`` multinomial each,
            as the original `generate_cfg` does (exact sample parity under the same seed); otherwise one
            multinomial over all free cells of the step.
    """

    def __init__(
        self,
        canvas: torch.Tensor,
        codebook_size: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        per_stream_draws: bool = False,
    ):
        self.canvas = canvas.cpu()  # free cells are found on the host: no device synchronisation per step
        self.codebook_size = codebook_size
        if generator is not None and not isinstance(generator, torch.Generator):
            generator = list(generator)
            if len(generator) != canvas.shape[0]:
                raise ValueError(
                    f"expected one generator per sequence, got {len(generator)} for {canvas.shape[0]} sequences"
                )
        self.generator = generator
        self.per_stream_draws = per_stream_draws
        self.warpers = []
        if temperature is not None and temperature != 1.0:
            self.warpers.append(TemperatureLogitsWarper(temperature))
        if top_k:
            self.warpers.append(KthValueTopKLogitsWarper(min(top_k, codebook_size)))
        if top_p is not None and top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p))

    @with_stored_signature
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        free_on_host = (
            (self.canvas[:, _current_step(input_ids)] == UNKNOWN_CODE).reshape(-1).nonzero().flatten()
        )
        if len(free_on_host) == 0:
            return scores
        free_rows = free_on_host.to(scores.device, non_blocking=True)
        logits = scores[free_rows, : self.codebook_size].float()
        for warper in self.warpers:  # row by row: each row's result is what it would be alone
            logits = warper(input_ids[free_rows], logits)
        probabilities = logits.softmax(dim=-1)
        if isinstance(self.generator, list):
            # One generator per sequence: each sequence draws exactly what it would draw in a batch of its own,
            # from its own rows (the warpers above ran once for the whole batch).
            owners = torch.div(free_on_host, self.canvas.shape[2], rounding_mode="floor")
            counts = torch.bincount(owners, minlength=len(self.generator)).tolist()
            generators = self.generator
        else:
            counts, generators = [len(free_on_host)], [self.generator]
        if self.per_stream_draws:
            parts = zip(probabilities.split(counts), free_on_host.split(counts), generators, strict=True)
            codes = torch.cat([self._draw_per_stream(*part) for part in parts if len(part[1])])
        else:
            codes = categorical_draws(probabilities, counts, generators)
        sampled = scores.clone()
        sampled[free_rows] = float("-inf")
        sampled[free_rows, codes] = 0.0
        return sampled

    def _draw_per_stream(
        self, probabilities: torch.Tensor, rows: torch.Tensor, generator
    ) -> torch.LongTensor:
        """Codes ``(len(rows),)`` drawn from ``probabilities`` ``(len(rows), codebook)`` of the folded ``rows``
        (host indices), one `torch.multinomial` per stream in ascending order (the original's order)."""
        codes = torch.empty(len(rows), dtype=torch.long, device=probabilities.device)
        row_streams = rows % self.canvas.shape[2]
        for stream in row_streams.unique().tolist():
            stream_rows = (row_streams == stream).nonzero().flatten().to(codes.device, non_blocking=True)
            codes[stream_rows] = torch.multinomial(
                probabilities[stream_rows], 1, generator=generator
            ).flatten()
        return codes


class ProgressLogitsProcessor(LogitsProcessor):
    """Advances a tqdm bar once per decoder step (generate has no per-step callback; a processor sees every step).

    Args:
        total_steps: steps of its own bar, closed after the last one.
        description: its own bar's description.
        bar: an existing bar to advance instead (e.g. one bar over several windows); left open.
    """

    def __init__(self, total_steps: int | None = None, description: str = "generating codes", bar=None):
        self.owns_bar = bar is None
        self.bar = tqdm(total=total_steps, desc=description, unit="step") if bar is None else bar

    @with_stored_signature
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.bar.update(1)
        if self.owns_bar and self.bar.n >= self.bar.total:
            self.bar.close()
        return scores


__all__ = [
    "UNKNOWN_CODE",
    "CodePatternLogitsProcessor",
    "CodeSamplingLogitsProcessor",
    "GuidancePlan",
    "KthValueTopKLogitsWarper",
    "PreallocatedKVLayer",
    "ProgressLogitsProcessor",
    "VisageKVCache",
    "build_code_canvas",
    "check_prefix_codes",
    "frames_to_generate",
    "generation_processors",
    "make_generation_cache",
    "prompt_steps",
    "reject_unsupported_generate_kwargs",
    "repeat_for_sequences",
    "repeat_last_frame",
    "resolve_guidance",
    "resolve_num_return_sequences",
    "resolve_sampling",
    "settings_in_effect",
    "step_generation_config",
    "stream_schedule",
    "with_stored_signature",
]
