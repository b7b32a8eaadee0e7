"""`VisageForFOA`: CLIP frames + patch energy map + camera direction -> DAC codes of first-order ambisonics.

A BART-style post-LayerNorm encoder-decoder (Kim, Yun, Kim, "ViSAGe", ICLR 2025):

- encoder token for video frame t: ``W_clip·c_t + b + MLP_E(E_t) + P[t] + MLP_d(d)``, sequence
  ``[bos, x_0 .. x_{T-1}, eos]`` (learned bos/eos, no position), then LayerNorm, dropout and the layers;
- decoder input at a pattern row: the sum of one embedding per code stream (the pad row is zero); position 0
  is a learned BOS vector; learned positions with BART's offset 2; causal self-attention + cross-attention;
- one linear head per stream (36 = 4 channels W, Y, Z, X × 9 RVQ levels, stream ``j = 9·c + q``);
- learned null conditions (CLIP, energy map, direction) for classifier-free guidance.

`generate` folds the streams into `GenerationMixin.generate`'s rows and runs all guidance branches in one
batched decoder pass per step (see `generation.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSeq2SeqLM,
    GenerationConfig,
    GenerationMixin,
    LogitsProcessorList,
    PreTrainedModel,
)
from transformers import initialization as init
from transformers.cache_utils import Cache
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput
from transformers.utils import ModelOutput

from .conditions import (
    branch_conditions,
    check_code_ids,
    check_conditions,
    check_null_flags,
    replace_with_nulls,
)
from .configuration_visage import DEFAULT_GENERATION_SETTINGS, VisageConfig
from .encoder_decoder import VisageDecoder, VisageEncoder, VisageModel
from .generation import (
    GuidancePlan,
    build_code_canvas,
    check_prefix_codes,
    first_set,
    frames_to_generate,
    generation_processors,
    make_generation_cache,
    prompt_steps,
    reject_unsupported_generate_kwargs,
    repeat_for_sequences,
    repeat_last_frame,
    resolve_guidance,
    resolve_num_return_sequences,
    resolve_sampling,
    step_generation_config,
    stream_index,
    stream_schedule,
    with_stored_signature,
)
from .mono_to_foa import copy_w_channel_to_spatial, foa_from_mono
from .original_checkpoint import find_original_source, load_converted
from .quantization import float_weight, with_int8_option
from .static_step import StaticDecoderStep
from .step_weights import step_weights


@dataclass
class VisageOutput(Seq2SeqLMOutput):
    r"""
    stream_losses (`torch.FloatTensor` of shape `(num_streams,)`, *optional*):
        Mean cross-entropy of each code stream over its non-ignored labels (0 for a stream without labels);
        `loss` is their sum, as in the original.
    """

    stream_losses: torch.FloatTensor | None = None


def shift_codes_right(labels: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Decoder inputs for teacher forcing: ``[placeholder, rows 0..L-2]`` from ``(batch, L, streams)`` labels.

    Label values -100 (ignored) become the pad id; the placeholder row is replaced by the learned BOS."""
    shifted = labels.new_full(labels.shape, pad_id)
    shifted[:, 1:] = labels[:, :-1]
    return shifted.masked_fill(shifted < 0, pad_id)


# ---------------------------------------------------------------------------------------------------- model
class VisagePreTrainedModel(PreTrainedModel):
    config_class = VisageConfig
    config: VisageConfig
    base_model_prefix = "model"
    main_input_name = "clip_features"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _no_split_modules = ("VisageEncoderLayer", "VisageDecoderLayer")

    def _init_weights(self, module: nn.Module) -> None:
        # Linear / Embedding (pad row zeroed) / LayerNorm follow transformers' defaults with `config.init_std`;
        # the learned start/end vectors and guidance nulls start at zero, as in the original.
        super()._init_weights(module)
        if isinstance(module, VisageEncoder):
            init.zeros_(module.bos)
            init.zeros_(module.eos)
        elif isinstance(module, VisageDecoder):
            init.zeros_(module.bos)
        elif isinstance(module, VisageForFOA):
            for name in VisageForFOA.NULL_PARAMETERS:
                if hasattr(module, name):
                    init.zeros_(getattr(module, name))


class VisageForFOA(VisagePreTrainedModel, GenerationMixin):
    """ViSAGe: video + camera direction -> DAC codes of first-order ambisonics (or mono, `num_channels=1`).

    Example:
        >>> model = VisageForFOA.from_pretrained("path/or/hub-id")
        >>> codes = model.generate(clip_features, energy_map, direction)  # (batch, 4, 9, frames)
    """

    NULL_PARAMETERS = ("null_clip_embedding", "null_energy_embedding", "null_direction_embedding")

    def __init__(self, config: VisageConfig):
        config.validate_visage()
        super().__init__(config)
        self.model = VisageModel(config)
        self.heads = nn.ModuleList(
            [nn.Linear(config.d_model, config.codebook_size) for _ in range(config.num_streams)]
        )
        self.null_clip_embedding = nn.Parameter(torch.zeros(config.clip_dim))
        if not config.is_mono:
            self.null_energy_embedding = nn.Parameter(torch.zeros(config.energy_map_dim))
            self.null_direction_embedding = nn.Parameter(torch.zeros(config.direction_dim))
        # Set only during CPU generation: stacked, packed heads per recurring list of live streams.
        self._packed_heads: dict[tuple[int, ...], Callable] | None = None
        self.post_init()
        for key, value in DEFAULT_GENERATION_SETTINGS.items():
            setattr(self.generation_config, key, value)
        self.generation_config.decoder_start_token_id = config.code_pad_id
        self.generation_config.pad_token_id = config.code_pad_id
        # These are model-specific defaults, not a copy of the model config: a saved generation_config.json
        # marked "from model config" would drop the custom guidance entries on load.
        self.generation_config._from_model_config = False

    @classmethod
    @with_int8_option
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs) -> VisageForFOA:
        """`PreTrainedModel.from_pretrained`, plus: a folder or Hub repo in the ORIGINAL ViSAGe layout (BART-named
        weights, ``model_type: bart``; e.g. ``jaeyeonkim99/visage``) is detected and converted on load
        (:mod:`visage_hf.models.convert_original`), in ``mode="original"``; ``dtype="int8"`` loads float32 and
        quantizes the decoder's step weights to int8 (:mod:`visage_hf.models.quantization`)."""
        dtype = kwargs.get("dtype", kwargs.get("torch_dtype"))
        if isinstance(dtype, str):
            dtype = None if dtype == "auto" else getattr(torch, dtype)
        original = find_original_source(
            pretrained_model_name_or_path,
            revision=kwargs.get("revision"),
            subfolder=kwargs.get("subfolder") or None,
        )
        if original is not None:
            return load_converted(cls, original, dtype=dtype)
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, **kwargs)

    def get_encoder(self, modality: str | None = None) -> VisageEncoder:
        return self.model.encoder

    def get_decoder(self) -> VisageDecoder:
        return self.model.decoder

    # ------------------------------------------------------------------ conditions and encoder
    def _check_conditions(
        self, clip_features: torch.Tensor, energy_map: torch.Tensor | None, direction: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        dtype = self.model.encoder.clip_projection.weight.dtype
        return check_conditions(self.config, clip_features, energy_map, direction, dtype)

    def apply_null_conditions(
        self,
        clip_features: torch.Tensor,
        energy_map: torch.Tensor | None,
        direction: torch.Tensor | None,
        null_visual: torch.Tensor | None = None,
        null_direction: torch.Tensor | None = None,
    ):
        """Replace the conditions of the samples flagged in ``null_visual`` / ``null_direction`` (bool, (batch,))
        by the learned null embeddings. Visual = CLIP features and energy map, nulled together (original)."""
        nulls = [getattr(self, name, None) for name in self.NULL_PARAMETERS]
        return replace_with_nulls((clip_features, energy_map, direction), nulls, null_visual, null_direction)

    def encode(
        self,
        clip_features: torch.Tensor,
        energy_map: torch.Tensor | None = None,
        direction: torch.Tensor | None = None,
        null_visual: torch.Tensor | None = None,
        null_direction: torch.Tensor | None = None,
    ) -> BaseModelOutput:
        """Encoder states ``(batch, frames + 2, d_model)`` for the (optionally nulled) conditions."""
        clip_features, energy_map, direction = self._check_conditions(clip_features, energy_map, direction)
        check_null_flags(clip_features.shape[0], null_visual=null_visual, null_direction=null_direction)
        conditions = self.apply_null_conditions(
            clip_features, energy_map, direction, null_visual, null_direction
        )
        return BaseModelOutput(last_hidden_state=self.model.encoder(*conditions))

    # ------------------------------------------------------------------ forward
    @with_stored_signature
    def forward(
        self,
        clip_features: torch.Tensor | None = None,
        energy_map: torch.Tensor | None = None,
        direction: torch.Tensor | None = None,
        null_visual: torch.Tensor | None = None,
        null_direction: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        labels: torch.LongTensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        live_streams: list[int] | None = None,
        guidance_plan: GuidancePlan | None = None,
        static_step: StaticDecoderStep | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> VisageOutput:
        r"""Teacher-forced logits and loss, or one generation step.

        Args:
            clip_features: ``(batch, frames, clip_dim)`` CLIP frame features (4 fps).
            energy_map: ``(batch, frames, energy_map_dim)`` patchwise energy map (FOA variant).
            direction: ``(batch, direction_dim)`` camera direction vector (FOA variant), or ``(batch, frames,
                direction_dim)`` for a camera that moves (one vector per video frame).
            null_visual, null_direction: ``(batch,)`` bool masks replacing that sample's visual (CLIP + energy)
                or direction condition by the learned nulls — how a training collator applies guidance dropout.
            decoder_input_ids: ``(batch, rows, streams)`` pattern rows; row 0 is a placeholder replaced by the
                learned BOS (HF's shifted-right convention). Built from ``labels`` when omitted.
            labels: ``(batch, rows, streams)`` the code pattern (`CodePattern.build`); -100 and the pad id are
                ignored. Loss = sum over streams of the per-stream mean cross-entropy.
            encoder_outputs: precomputed encoder states; ``K·batch`` rows (branch-major) with ``guidance_plan``.
            live_streams: generation only — compute the heads of these streams at the last position and return
                logits folded as ``(batch·streams, 1, codebook)`` (other streams' logits are 0).
            guidance_plan, static_step: generation only — how to combine the K encoder branches; one-row steps' runner.

        Returns:
            `VisageOutput` with ``logits`` ``(batch, rows, streams, codebook)`` (teacher forcing), ``loss`` and
            ``stream_losses`` when labels are given.
        """
        decoder_input_ids = self._decoder_inputs(decoder_input_ids, labels)
        if encoder_outputs is None:
            if clip_features is None:
                raise ValueError("pass clip_features (and energy_map, direction) or encoder_outputs")
            encoder_outputs = self.encode(clip_features, energy_map, direction, null_visual, null_direction)
        elif isinstance(encoder_outputs, (tuple, list)):
            encoder_outputs = BaseModelOutput(last_hidden_state=encoder_outputs[0])
        encoder_states = encoder_outputs.last_hidden_state
        batch = decoder_input_ids.shape[0]
        num_branches = guidance_plan.num_branches if guidance_plan is not None else 1
        if encoder_states.shape[0] != num_branches * batch:
            raise ValueError(
                f"encoder states have {encoder_states.shape[0]} rows; expected {num_branches} guidance branch(es) "
                f"× {batch} sequences"
            )
        use_cache = (self.config.use_cache if use_cache is None else use_cache) and labels is None
        cache = (make_generation_cache(self.config) if cache is None else cache) if use_cache else None
        hidden_states = self._decode(
            decoder_input_ids, encoder_states, num_branches, cache, live_streams, static_step
        )
        if live_streams is not None:
            logits = self._generation_logits(hidden_states[:, -1], live_streams, guidance_plan, batch)
            return VisageOutput(logits=logits, cache=cache)
        if num_branches > 1:
            raise ValueError("teacher forcing takes one condition branch; guidance_plan is for generation")
        logits = self.stream_logits(hidden_states)
        stream_losses = None if labels is None else self.stream_losses(logits, labels)
        output = VisageOutput(
            loss=None if stream_losses is None else stream_losses.sum(),
            logits=logits,
            cache=cache,
            encoder_last_hidden_state=encoder_states,
            stream_losses=stream_losses,
        )
        return output if return_dict is not False else output.to_tuple()

    def _decoder_inputs(
        self, decoder_input_ids: torch.LongTensor | None, labels: torch.LongTensor | None
    ) -> torch.LongTensor:
        """Checked ``(batch, rows, streams)`` decoder inputs, built from ``labels`` (shifted right) when omitted."""
        streams = self.config.num_streams
        if labels is not None and labels.ndim != 3:
            raise ValueError(f"labels must be (batch, rows, {streams}), got shape {tuple(labels.shape)}")
        if decoder_input_ids is None:
            if labels is None:
                raise ValueError("pass decoder_input_ids (batch, rows, streams) or labels")
            decoder_input_ids = shift_codes_right(labels, self.config.code_pad_id)
        if decoder_input_ids.ndim != 3 or decoder_input_ids.shape[-1] != streams:
            raise ValueError(
                f"decoder_input_ids must be (batch, rows, {streams}), got {tuple(decoder_input_ids.shape)}"
            )
        return decoder_input_ids

    def _decode(
        self,
        decoder_input_ids: torch.LongTensor,
        encoder_states: torch.Tensor,
        num_branches: int,
        cache: Cache | None,
        live_streams: list[int] | None,
        static_step: StaticDecoderStep | None = None,
    ) -> torch.Tensor:
        """Decoder hidden states ``(num_branches · batch, rows, d_model)`` after the cached positions."""
        past_length = cache.get_seq_length() if cache is not None else 0
        if (fixed_shape := static_step and static_step(decoder_input_ids, cache, past_length)) is not None:
            return fixed_shape  # the fixed-shape step ran (it returns None where it does not fit)
        if live_streams is None and past_length == 0:
            check_code_ids(self.config, decoder_input_ids)
        decoder = self.model.decoder
        inputs_embeds = decoder.embed(decoder_input_ids, past_length)
        if num_branches > 1:
            # Every branch continues the same codes; only cross-attention (the condition) differs.
            inputs_embeds = inputs_embeds.repeat(num_branches, 1, 1)
        return decoder(inputs_embeds, encoder_states, cache=cache, past_length=past_length)

    def stream_logits(self, hidden_states: torch.Tensor, streams: list[int] | None = None) -> torch.Tensor:
        """``(..., d_model)`` -> ``(..., len(streams), codebook)`` logits of the given heads (default: all)."""
        if streams is None:
            # All heads as one product: a single logits allocation (the largest tensor of a training step).
            weight = torch.stack([float_weight(head) for head in self.heads]).flatten(0, 1)
            bias = torch.stack([head.bias for head in self.heads]).flatten()
            return F.linear(hidden_states, weight, bias).unflatten(-1, (len(self.heads), -1))
        return torch.stack([self.heads[stream](hidden_states) for stream in streams], dim=-2)

    def stream_losses(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per-stream mean cross-entropy over valid labels (-100 and the pad id ignored); 0 for empty streams."""
        labels = labels.to(logits.device)
        labels = labels.masked_fill(labels == self.config.code_pad_id, -100)
        valid = labels != -100
        token_losses = F.cross_entropy(
            logits.flatten(0, 2).float(),
            labels.flatten(),
            ignore_index=-100,
            reduction="none",
            label_smoothing=self.config.label_smoothing,
        ).view(labels.shape)
        return (token_losses * valid).sum(dim=(0, 1)) / valid.sum(dim=(0, 1)).clamp(min=1)

    def _generation_logits(
        self, last_hidden: torch.Tensor, live_streams: list[int], plan: GuidancePlan | None, batch: int
    ) -> torch.Tensor:
        """Guided logits of the live streams, folded as generate's rows ``(batch·streams, 1, codebook)``."""
        config = self.config
        logits = last_hidden.new_zeros(batch, config.num_streams, config.codebook_size)
        if live_streams:
            branches = last_hidden.view(-1, batch, last_hidden.shape[-1])  # (K, batch, d)
            if plan is None:
                guided = self._live_stream_logits(branches[0], live_streams)
            elif plan.combine_logits:
                guided = plan.combine(self._live_stream_logits(branches, live_streams))
            else:
                # Heads are affine and the guidance weights sum to 1: combining hidden states first is exact
                # in real arithmetic and computes each live head once instead of K times.
                combined = plan.combine(branches.float()).to(branches.dtype)  # one rounding in bf16
                guided = self._live_stream_logits(combined, live_streams)
            logits.index_copy_(1, stream_index(live_streams, logits.device), guided.to(logits.dtype))
        return logits.view(batch * config.num_streams, 1, config.codebook_size)

    def _live_stream_logits(self, hidden_states: torch.Tensor, streams: list[int]) -> torch.Tensor:
        """`stream_logits` of a generation step: one packed product over the stacked heads of ``streams``
        where `step_weights` prepared one for this list."""
        packed_heads = self._packed_heads  # read once: another thread's generate may end meanwhile
        packed = packed_heads.get(tuple(streams)) if packed_heads else None
        if packed is None:
            return self.stream_logits(hidden_states, streams)
        return packed(hidden_states).unflatten(-1, (len(streams), -1))

    # ------------------------------------------------------------------ generation
    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        next_sequence_length: int | None = None,
        cache: Cache | None = None,
        attention_mask: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        is_first_iteration: bool | None = False,
        stream_schedule: list[list[int]] | None = None,
        guidance_plan: GuidancePlan | None = None,
        static_step: StaticDecoderStep | None = None,
        **kwargs,
    ):
        model_inputs = super().prepare_inputs_for_generation(
            input_ids,
            next_sequence_length=next_sequence_length,
            cache=cache,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            is_first_iteration=is_first_iteration,
            **kwargs,
        )
        # generate's rows are (batch · streams); the decoder wants (batch, rows, streams).
        folded = model_inputs["decoder_input_ids"]
        streams = self.config.num_streams
        model_inputs["decoder_input_ids"] = folded.view(-1, streams, folded.shape[-1]).transpose(1, 2)
        if stream_schedule is not None:
            model_inputs["live_streams"] = stream_schedule[input_ids.shape[1] - 1]
        model_inputs["guidance_plan"] = guidance_plan
        model_inputs["static_step"] = static_step
        return model_inputs

    @torch.no_grad()
    def generate(
        self,
        clip_features: torch.Tensor,
        energy_map: torch.Tensor | None = None,
        direction: torch.Tensor | None = None,
        *,
        guidance: str | None = None,
        guidance_scale: float | None = None,
        direction_guidance_scale: float | None = None,
        do_sample: bool | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        temperature: float | None = None,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        num_return_sequences: int | None = None,
        prefix_codes: torch.Tensor | None = None,
        num_frames: int | None = None,
        mode: str | None = None,
        logits_processor: LogitsProcessorList | None = None,
        generation_config: GenerationConfig | None = None,
        show_progress: bool = False,
        static_steps: bool | None = None,
        **kwargs,
    ) -> torch.LongTensor:
        r"""Generate codec codes for video clips.

        Args:
            clip_features: ``(batch, frames, clip_dim)`` CLIP features at ``video_fps`` (<= max_source_positions).
            energy_map: ``(batch, frames, energy_map_dim)``; direction: ``(batch, direction_dim)`` or per frame
                ``(batch, frames, direction_dim)`` (FOA only).
            guidance: ``"joint"`` (released ViSAGe: CLIP, energy and direction nulled together), ``"dual"``
                (separate visual and directional terms), ``"visual"``, ``"direction"`` or ``"none"``.
            guidance_scale: s of ``l_c + s·(l_c − l_u)`` (visual / joint term; original 2.5; 0 = conditional).
            direction_guidance_scale: s_d of the direction term (``dual`` and ``direction``; original 2.5).
            do_sample, top_k, top_p, temperature: sampling (defaults from ``generation_config``: top-k 256);
                ``do_sample=False`` is greedy.
            generator / seed: a private random stream for sampling; the same seed gives the same codes. Without
                either, the global torch RNG is used (`torch.manual_seed` reproduces). A list of generators,
                one per output sequence (``batch · num_return_sequences``), gives each sequence the codes it
                would get alone with its generator, whatever else is in the batch.
            num_return_sequences: samples per clip (outputs are grouped per clip).
            prefix_codes: ``(batch, channels, codebooks, prefix_frames)`` known first frames (e.g. the end of the
                previous window); they are reproduced and generation continues after them.
            num_frames: frames to produce; default: from the clip length (``config.frames_for_video_frames``;
                only then does original mode pad to the clip's DAC length by repeating the last frame).
            mode: ``"corrected"`` or ``"original"`` (default ``config.mode``); original reproduces the original's
                frame count, last-frame padding, logit-space guidance and per-stream sampling order.
            logits_processor: extra processors, run after pattern forcing and before sampling.
            show_progress: a tqdm bar over decoder steps.
            static_steps: run decoder steps in fixed shapes (`StaticDecoderStep`), replayed as CUDA graphs on a
                CUDA device; default: on for CUDA models. On CPU it runs eagerly (slower than the default path).
            kwargs: passed to `GenerationMixin.generate` (e.g. ``use_cache``).

        Returns:
            ``(batch · num_return_sequences, channels, codebooks, frames)`` LongTensor of codes.
        """
        config = self.config
        mode = config.resolve_mode(mode)
        defaults = generation_config if generation_config is not None else self.generation_config
        reject_unsupported_generate_kwargs(kwargs)
        num_return_sequences = resolve_num_return_sequences(num_return_sequences, defaults)
        plan = resolve_guidance(config, defaults, guidance, guidance_scale, direction_guidance_scale, mode)
        do_sample = bool(first_set(do_sample, defaults.do_sample, DEFAULT_GENERATION_SETTINGS["do_sample"]))
        sampler_settings = resolve_sampling(defaults, top_k, top_p, temperature, generator, seed, self.device)

        conditions = self._check_conditions(clip_features, energy_map, direction)
        batch, video_frames = conditions[0].shape[:2]
        prefix = check_prefix_codes(config, prefix_codes, batch)
        *conditions, prefix = repeat_for_sequences([*conditions, prefix], num_return_sequences)
        batch *= num_return_sequences
        num_frames_given = num_frames is not None
        num_frames = frames_to_generate(
            config, num_frames, video_frames, mode, 0 if prefix is None else prefix.shape[-1]
        )
        canvas = build_code_canvas(config.code_pattern, batch, num_frames, config.code_pad_id, prefix)
        processors = generation_processors(
            canvas, config, mode, sampler_settings if do_sample else None, logits_processor,
            canvas.shape[1] - prompt_steps(canvas) if show_progress else None,
        )  # fmt: skip
        kwargs["static_steps"] = self.device.type == "cuda" if static_steps is None else bool(static_steps)
        codes = self._fill_canvas(conditions, canvas, plan, processors, kwargs)
        if mode == "original" and not num_frames_given:
            # The original's end handling: repeat the last frame up to the clip's DAC length.
            codes = repeat_last_frame(codes, config.output_frames_for_video_frames(video_frames, mode))
        return codes.reshape(batch, config.num_channels, config.num_codebooks, -1)

    def _fill_canvas(
        self,
        conditions: list[torch.Tensor | None],
        canvas: torch.Tensor,
        plan: GuidancePlan,
        processors: LogitsProcessorList,
        kwargs: dict,
    ) -> torch.LongTensor:
        """Codes ``(batch, streams, frames)`` filling the unknown cells of ``canvas`` ``(batch, steps, streams)``."""
        batch, total_steps, streams = canvas.shape
        known_steps = prompt_steps(canvas)
        if known_steps == total_steps:  # the prefix already covers every frame
            return self.config.code_pattern.revert(canvas)
        sequences = self._generate_steps(conditions, canvas, known_steps, plan, processors, kwargs)
        grid = sequences[:, 1:].reshape(batch, streams, total_steps).transpose(1, 2)
        return self.config.code_pattern.revert(grid.cpu()).to(sequences.device)

    def _generate_steps(
        self,
        conditions: list[torch.Tensor | None],
        canvas: torch.Tensor,
        known_steps: int,
        plan: GuidancePlan,
        processors: LogitsProcessorList,
        kwargs: dict,
    ) -> torch.LongTensor:
        """Run `GenerationMixin.generate` over the folded rows; returns sequences ``(batch·streams, 1 + steps)``."""
        config = self.config
        batch, total_steps, streams = canvas.shape
        device = self.device
        # All K guidance branches in one encoder pass.
        encoder_outputs = self.encode(*branch_conditions(conditions, plan.branches, batch))
        start = torch.full((batch * streams, 1), config.code_pad_id, dtype=torch.long, device=device)
        prompt = canvas[:, :known_steps].transpose(1, 2).reshape(batch * streams, known_steps).to(device)
        use_cache = kwargs.pop("use_cache", True)
        static_step = None
        if kwargs.pop("static_steps", False) and use_cache:
            static_step = StaticDecoderStep(self.model.decoder, plan.num_branches, device.type == "cuda")
        # Guidance is combined inside `forward` (the model returns guided logits, one row per code stream)
        # rather than by a processor reducing K·rows of logits: generate's rows are exactly the output rows,
        # every branch is fed the same codes by construction, sampling draws once per cell, and the branches
        # can be combined on hidden states before the heads (one head projection per live stream, not K).
        step_config, model_kwargs = step_generation_config(
            config, total_steps - known_steps, use_cache, kwargs
        )
        schedule = stream_schedule(canvas)
        # Inference mode: no autograd bookkeeping on a step's ~1,500 small tensor ops; the codes are cloned out.
        packed = step_weights(self, schedule[known_steps:], rows=plan.num_branches * batch)
        step_cache_dtype = self.model.decoder.step_cache_dtype  # called inside the block, which sets it
        with torch.inference_mode(), packed:
            outputs = super().generate(
                start,
                generation_config=step_config,
                logits_processor=processors,
                encoder_outputs=encoder_outputs,
                decoder_input_ids=torch.cat([start, prompt], dim=1),
                cache=make_generation_cache(config, total_steps, step_cache_dtype()) if use_cache else None,
                stream_schedule=schedule,
                guidance_plan=plan,
                static_step=static_step,
                **model_kwargs,
            )
        sequences = outputs.sequences if isinstance(outputs, ModelOutput) else outputs
        return sequences.clone()  # a normal tensor: callers may write into it outside inference mode

    # ------------------------------------------------------------------ mono -> FOA
    def init_spatial_from_mono(self) -> None:
        """Copy the W channel's code embeddings and heads into Y, Z and X (stream j takes j mod 9), as the
        original does before FOA fine-tuning from a mono checkpoint."""
        copy_w_channel_to_spatial(self)

    @classmethod
    def from_mono_pretrained(cls, mono: VisageForFOA | str, **config_overrides) -> VisageForFOA:
        """Build the FOA model from a mono (VGGSound) model or checkpoint: shared weights are loaded, the
        energy-map / direction MLPs start fresh (their nulls at zero), and Y/Z/X start as copies of W."""
        return foa_from_mono(
            cls, mono if isinstance(mono, VisageForFOA) else cls.from_pretrained(mono), **config_overrides
        )


def register_visage_auto_classes() -> None:
    """Register with AutoConfig / AutoModel / AutoModelForSeq2SeqLM (idempotent), and mark the classes so that
    `save_pretrained` writes an ``auto_map`` (loadable with ``trust_remote_code`` without this package)."""
    AutoConfig.register(VisageConfig.model_type, VisageConfig, exist_ok=True)
    AutoModel.register(VisageConfig, VisageForFOA, exist_ok=True)
    AutoModelForSeq2SeqLM.register(VisageConfig, VisageForFOA, exist_ok=True)
    VisageConfig.register_for_auto_class()
    VisageForFOA.register_for_auto_class("AutoModel")


register_visage_auto_classes()

__all__ = [
    "VisageForFOA",
    "VisageOutput",
    "VisagePreTrainedModel",
    "register_visage_auto_classes",
    "shift_codes_right",
]
