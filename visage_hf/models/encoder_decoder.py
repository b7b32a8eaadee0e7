"""The ViSAGe encoder-decoder stack: BART-style post-LayerNorm layers with ViSAGe's input front-ends.

Parameter names follow BART (``q_proj``, ``self_attn_layer_norm``, ``fc1`` ...) so that the original
checkpoint maps onto them by renaming only a few front-end modules. Attention runs through torch's
``scaled_dot_product_attention``; caches are transformers `Cache` objects (`EncoderDecoderCache`).
During CPU generation the decoder's step weights can be read through `PackedLinear` copies
(`VisageDecoder.packed_weights`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, EncoderDecoderCache
from transformers.modeling_layers import GradientCheckpointingLayer

from .configuration_visage import VisageConfig
from .fused_step import FusedDecoderStep
from .quantization import Int8WeightOnlyLinear, StackedInt8Linear
from .row_kernels import (
    RowProduct,
    attention_applies,
    kernel_threads,
    kernels_apply,
    rows_fit_kernels,
    single_query_attention,
    torch_threads,
)

# Looked up once: resolving `torch.ops` attributes costs microseconds per call.
_ONEDNN_LINEAR = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)


class PackedLinear:
    """An inference-only copy of one or more Linear layers (stacked along the output), laid out for decoding.

    Why: a decoding step multiplies a few rows (guidance branches × batch) by every step weight once, so it
    costs the time to stream the weights from memory, plus a fixed cost per product. With ``few_rows`` (steps of
    at most `MAX_KERNEL_ROWS` rows) and numba installed, `RowProduct` streams the weight at close
    to the memory bandwidth (fp32 and bf16, any CPU), and larger inputs (a prefill) go through `F.linear`.
    Otherwise, two layouts:

    - oneDNN (`supports`: CPU, fp32, or bf16 where the CPU has native bf16): `F.linear` on row-major ``(out, in)``
      weights reads them well below the memory bandwidth on CPU; oneDNN's inner product on a weight reordered
      once into its blocked layout does better, given at least 3 rows -- with 1-2 rows it picks a slower
      schedule, so fewer rows are padded with zero rows, which read no extra weights. Results equal
      `F.linear`'s (bit-identical in bf16, within ~1e-6 relative in fp32). An exact GELU can run inside the
      product (``activation="gelu"``; in bf16 it then acts on the fp32 accumulator, before rounding). The ops
      are torch's oneDNN linear ops (those torch.compile's CPU freezing pass emits).
    - plain (everything else, e.g. bf16 on AVX2-only CPUs, where oneDNN has no bf16 kernel): `F.linear` on the
      stacked weight -- still one product instead of one per layer (q/k/v, the live heads), and no copy for a
      single layer.
    """

    MIN_ROWS = 4
    ACTIVATIONS = ("gelu",)  # oneDNN post-ops that equal ACT2FN[name] (erf GELU)

    def __init__(self, linears: Sequence[nn.Linear], activation: str | None = None, few_rows: bool = False):
        if activation is not None and activation not in self.ACTIVATIONS:
            raise ValueError(f"activation must be one of {self.ACTIVATIONS} or None, got {activation!r}")
        weights = [linear.weight.detach() for linear in linears]
        weight = weights[0] if len(weights) == 1 else torch.cat(weights)
        has_bias = [linear.bias is not None for linear in linears]
        if any(has_bias) and not all(has_bias):
            raise ValueError("PackedLinear stacks Linear layers that all have a bias, or none")
        self.out_features = weight.shape[0]
        biases = [linear.bias.detach() for linear in linears] if all(has_bias) else None
        self.bias = None if biases is None else biases[0] if len(biases) == 1 else torch.cat(biases)
        self.rows = (
            RowProduct(weight, self.bias, activation=activation)
            if few_rows and kernels_apply(weight)
            else None
        )
        self.onednn = self.rows is None and self.supports(weight)
        if not self.onednn:
            self.weight = weight
            self._activation = None if activation is None else ACT2FN[activation]
            return
        self.weight = torch.ops.mkldnn._reorder_linear_weight(weight, self.MIN_ROWS)
        # oneDNN's (attr, scalars, algorithm): erf GELU is ("gelu", [], "none").
        self._post_op = ("none", [], "") if activation is None else (activation, [], "none")
        # Zero rows to append, shaped like a decoding step's input ``(rows, 1, in_features)``; read-only.
        self._padding = weight.new_zeros(self.MIN_ROWS - 1, 1, weight.shape[1])

    @staticmethod
    def applies(weight: torch.Tensor) -> bool:
        """Whether decoding reads ``weight`` through a `PackedLinear` (oneDNN or plain): floating weights on CPU."""
        return weight.device.type == "cpu" and weight.is_floating_point()

    @staticmethod
    def supports(weight: torch.Tensor) -> bool:
        """Whether this torch build and CPU can use oneDNN's layout for ``weight`` (on CPU, fp32 or bf16)."""
        if weight.device.type != "cpu" or weight.dtype not in (torch.float32, torch.bfloat16):
            return False
        if not torch.backends.mkldnn.is_available() or _ONEDNN_LINEAR is None:
            return False
        if not hasattr(torch.ops.mkldnn, "_reorder_linear_weight"):
            return False
        bf16_supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return weight.dtype == torch.float32 or (bf16_supported is not None and bf16_supported())

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        """``(..., in_features)`` -> ``(..., out_features)``."""
        if self.rows is not None and self.rows.takes(states):
            return self.rows(states)
        if not self.onednn:
            projected = F.linear(states, self.weight, self.bias)
            return projected if self._activation is None else self._activation(projected)
        rows = states.numel() // states.shape[-1]
        if rows >= self.MIN_ROWS:
            return _ONEDNN_LINEAR(states, self.weight, self.bias, *self._post_op)
        step = states.reshape(rows, 1, states.shape[-1]) if states.shape[1:-1] != (1,) else states
        padded = torch.cat([step, self._padding[: self.MIN_ROWS - rows]])
        projected = _ONEDNN_LINEAR(padded, self.weight, self.bias, *self._post_op)[:rows]
        return projected if step is states else projected.view(*states.shape[:-1], self.out_features)


def step_product(
    linears: Sequence[nn.Module], activation: str | None = None, rows: int | None = None
) -> PackedLinear | StackedInt8Linear:
    """``linears`` stacked into one product for generation steps of ``rows`` rows (None: unknown): int8 layers
    (`quantize_decoder`) as they are, float layers as a `PackedLinear`."""
    if isinstance(linears[0], Int8WeightOnlyLinear):
        return StackedInt8Linear(linears, activation, rows_fit_kernels(rows))
    return PackedLinear(linears, activation, rows_fit_kernels(rows))


def supports_step_products(linear: nn.Module) -> bool:
    """Whether `step_product` can stack ``linear`` on this device (int8 layers: always)."""
    return isinstance(linear, Int8WeightOnlyLinear) or PackedLinear.applies(linear.weight)


def _dropout(states: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """`F.dropout`, skipped outright at inference (a decoding step would otherwise make ~4 no-op calls per layer)."""
    return F.dropout(states, p=p, training=True) if training and p > 0 else states


def _cast(states: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return states if states.dtype == dtype else states.to(dtype)


def _linear(owner: nn.Module, name: str, states: torch.Tensor) -> torch.Tensor:
    """``owner.<name>(states)``, through the packed copy while one is set (`VisageDecoder.packed_weights`)."""
    packed = owner.packed_linears.get(name)
    return getattr(owner, name)(states) if packed is None else packed(states)


class VisageAttention(nn.Module):
    """Multi-head attention with BART's parameter names, through torch's scaled_dot_product_attention."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float,
        layer_idx: int | None,
        is_cross_attention: bool = False,
    ):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.layer_idx = layer_idx
        self.is_cross_attention = is_cross_attention
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)
        # Set only during CPU generation: "qkv" (stacked q, k, v; self-attention), "q_proj", "out_proj".
        self.packed_linears: dict[str, PackedLinear] = {}

    def _split_heads(self, states: torch.Tensor) -> torch.Tensor:
        return states.view(*states.shape[:2], self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        cache: Cache | None = None,
        attention_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        batch, length, _ = hidden_states.shape
        compute_dtype = attention_dtype(hidden_states)
        if self.is_cross_attention:
            query = _cast(self._split_heads(_linear(self, "q_proj", hidden_states)), compute_dtype)
            key, value = self._cross_key_value(key_value_states, cache, compute_dtype)
        else:
            query, key, value = (
                self._split_heads(projected)
                for projected in self._query_key_value(hidden_states, compute_dtype)
            )
            if cache is not None:
                self_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
                key, value = self_cache.update(key, value, self.layer_idx)
        if attention_mask is None and not self.training and attention_applies(query, key):
            attended = single_query_attention(query, key, value)  # a generation step on CPU
        else:
            attended = F.scaled_dot_product_attention(
                query,
                key,
                value,
                attn_mask=attention_mask,
                dropout_p=self.dropout if self.training else 0.0,
                is_causal=is_causal,
            )
        attended = _cast(attended, hidden_states.dtype).transpose(1, 2).reshape(batch, length, -1)
        return _linear(self, "out_proj", attended)

    def _query_key_value(self, hidden_states: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        packed = self.packed_linears.get("qkv")
        if packed is None:
            projections = (self.q_proj, self.k_proj, self.v_proj)
            return tuple(_cast(projection(hidden_states), dtype) for projection in projections)
        return _cast(packed(hidden_states), dtype).chunk(3, dim=-1)  # one cast for the three

    def _cross_key_value(self, encoder_states: torch.Tensor, cache: Cache | None, compute_dtype: torch.dtype):
        # The encoder states never change during generation: project them once, then reuse the cache.
        if isinstance(cache, EncoderDecoderCache) and cache.is_updated.get(self.layer_idx, False):
            layer = cache.cross_attention_cache.layers[self.layer_idx]
            return layer.keys, layer.values
        key = _cast(self._split_heads(self.k_proj(encoder_states)), compute_dtype)
        value = _cast(self._split_heads(self.v_proj(encoder_states)), compute_dtype)
        if isinstance(cache, EncoderDecoderCache):
            key, value = cache.cross_attention_cache.update(key, value, self.layer_idx)
            cache.is_updated[self.layer_idx] = True
        return key, value


def attention_dtype(hidden_states: torch.Tensor) -> torch.dtype:
    """The dtype attention runs in (and the KV cache holds): float32 for half-precision CPU tensors.

    torch's CPU scaled_dot_product_attention is ~7x slower in bf16 than in fp32 for one query over a few hundred
    keys (730 vs 106 us, 16 heads of 64, development machine), and attention is a small share of the weights
    read per step; on GPUs the half-precision kernels are the fast ones.
    """
    if hidden_states.device.type == "cpu" and hidden_states.dtype in (torch.bfloat16, torch.float16):
        return torch.float32
    return hidden_states.dtype


class VisageEncoderLayer(GradientCheckpointingLayer):
    """Post-LN transformer layer: self-attention, then FFN, each followed by residual add and LayerNorm."""

    def __init__(self, config: VisageConfig, layer_idx: int):
        super().__init__()
        dim = config.d_model
        self.self_attn = VisageAttention(
            dim, config.encoder_attention_heads, config.attention_dropout, layer_idx
        )
        self.self_attn_layer_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        _add_feed_forward(self, config, config.encoder_ffn_dim)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        residual = hidden_states
        hidden_states = _dropout(self.self_attn(hidden_states), self.dropout, self.training)
        hidden_states = self.self_attn_layer_norm(residual + hidden_states)
        return _feed_forward(self, hidden_states)


class VisageDecoderLayer(GradientCheckpointingLayer):
    """Post-LN decoder layer: causal self-attention, cross-attention to the encoder, FFN."""

    def __init__(self, config: VisageConfig, layer_idx: int):
        super().__init__()
        dim, heads = config.d_model, config.decoder_attention_heads
        self.self_attn = VisageAttention(dim, heads, config.attention_dropout, layer_idx)
        self.self_attn_layer_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.encoder_attn = VisageAttention(
            dim, heads, config.attention_dropout, layer_idx, is_cross_attention=True
        )
        self.encoder_attn_layer_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        _add_feed_forward(self, config, config.decoder_ffn_dim)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        cache: Cache | None = None,
        attention_mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        residual = hidden_states
        hidden_states = self.self_attn(
            hidden_states, cache=cache, attention_mask=attention_mask, is_causal=is_causal
        )
        hidden_states = _dropout(hidden_states, self.dropout, self.training)
        hidden_states = self.self_attn_layer_norm(residual + hidden_states)

        residual = hidden_states
        hidden_states = self.encoder_attn(hidden_states, key_value_states=encoder_hidden_states, cache=cache)
        hidden_states = _dropout(hidden_states, self.dropout, self.training)
        hidden_states = self.encoder_attn_layer_norm(residual + hidden_states)
        return _feed_forward(self, hidden_states)


def _add_feed_forward(layer: nn.Module, config: VisageConfig, ffn_dim: int) -> None:
    """The post-LN FFN block shared by encoder and decoder layers (BART names: fc1, fc2, final_layer_norm)."""
    layer.fc1 = nn.Linear(config.d_model, ffn_dim)
    layer.fc2 = nn.Linear(ffn_dim, config.d_model)
    layer.final_layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
    layer.activation_function = config.activation_function
    layer.activation_fn = ACT2FN[config.activation_function]
    layer.dropout = config.dropout
    layer.activation_dropout = config.activation_dropout
    layer.packed_linears = {}  # "fc1" (with activation), "fc2" during CPU generation: PackedLinear


def _feed_forward(
    layer: VisageEncoderLayer | VisageDecoderLayer, hidden_states: torch.Tensor
) -> torch.Tensor:
    residual = hidden_states
    packed_fc1 = layer.packed_linears.get("fc1")  # applies the activation itself
    if packed_fc1 is None:
        hidden_states = layer.activation_fn(layer.fc1(hidden_states))
    else:
        hidden_states = packed_fc1(hidden_states)
    hidden_states = _dropout(hidden_states, layer.activation_dropout, layer.training)
    hidden_states = _dropout(_linear(layer, "fc2", hidden_states), layer.dropout, layer.training)
    return layer.final_layer_norm(residual + hidden_states)


def _projection_mlp(in_features: int, dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_features, dim), nn.GELU(), nn.Linear(dim, dim))


class VisageEncoder(nn.Module):
    """Video frames (+ energy map, direction) -> ``(batch, frames + 2, d_model)`` states."""

    def __init__(self, config: VisageConfig):
        super().__init__()
        dim = config.d_model
        self.dropout = config.dropout
        self.bos = nn.Parameter(torch.zeros(1, dim))
        self.eos = nn.Parameter(torch.zeros(1, dim))
        self.clip_projection = nn.Linear(config.clip_dim, dim)
        if not config.is_mono:
            self.energy_projection = _projection_mlp(config.energy_map_dim, dim)
            self.direction_projection = _projection_mlp(config.direction_dim, dim)
        self.embed_positions = nn.Embedding(config.max_source_positions, dim)
        self.layernorm_embedding = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList([VisageEncoderLayer(config, i) for i in range(config.encoder_layers)])

    def forward(
        self,
        clip_features: torch.Tensor,
        energy_map: torch.Tensor | None = None,
        direction: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """clip_features ``(batch, frames, clip_dim)``, energy_map ``(batch, frames, 49)``, direction ``(batch, 3)``
        or ``(batch, frames, 3)``."""
        batch, frames, _ = clip_features.shape
        tokens = self.clip_projection(clip_features)
        if energy_map is not None:
            tokens = tokens + self.energy_projection(energy_map)
        tokens = tokens + self.embed_positions.weight[:frames]
        if direction is not None:  # one camera direction for the clip, or one per frame (a moving camera)
            projected = self.direction_projection(direction)
            tokens = tokens + (projected[:, None] if direction.ndim == 2 else projected)
        dim = tokens.shape[-1]
        hidden_states = torch.cat(
            [self.bos.expand(batch, 1, dim), tokens, self.eos.expand(batch, 1, dim)], dim=1
        )
        hidden_states = _dropout(self.layernorm_embedding(hidden_states), self.dropout, self.training)
        for layer in self.layers:
            hidden_states = layer(hidden_states)
        return hidden_states


class VisageDecoder(nn.Module):
    """Pattern rows of codes -> ``(batch, rows, d_model)`` states, attending to the encoder states."""

    # BART's learned positions skip two rows; kept so that the original weights load unchanged.
    POSITION_OFFSET = 2

    def __init__(self, config: VisageConfig):
        super().__init__()
        dim = config.d_model
        self.dropout = config.dropout
        self.bos = nn.Parameter(torch.zeros(1, dim))
        self.embed_codes = nn.ModuleList(
            [
                nn.Embedding(config.code_embedding_rows, dim, padding_idx=config.code_pad_id)
                for _ in range(config.num_streams)
            ]
        )
        self.embed_positions = nn.Embedding(config.max_target_positions + self.POSITION_OFFSET, dim)
        self.layernorm_embedding = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList([VisageDecoderLayer(config, i) for i in range(config.decoder_layers)])
        # Set only inside `packed_weights`: the code tables stacked, and each stream's first row in the stack;
        # the layers of a one-row step in one compiled call, where the step products are numba's.
        self._stacked_code_tables: tuple[torch.Tensor, torch.Tensor] | None = None
        self._fused_step: FusedDecoderStep | None = None

    def embed(self, codes: torch.Tensor, past_length: int = 0) -> torch.Tensor:
        """Sum of the per-stream embeddings of ``(batch, rows, streams)`` codes; absolute position 0 is BOS."""
        stacked = self._stacked_code_tables
        if stacked is not None:
            # One lookup-and-sum instead of 36 lookups and 35 additions (13 vs ~380 us per step on CPU);
            # in fp32 it adds in the same order (bit-identical), in bf16 it rounds once, not per addition.
            table, offsets = stacked
            bags = (codes + offsets).reshape(-1, codes.shape[-1])
            embeddings = F.embedding_bag(bags, table, mode="sum").view(*codes.shape[:-1], -1)
        else:
            embeddings = self.embed_codes[0](codes[..., 0])
            for stream in range(1, len(self.embed_codes)):
                embeddings = embeddings + self.embed_codes[stream](codes[..., stream])
        if past_length == 0:
            # Row 0 of the input is a placeholder (generate's start token, or shift_codes_right's pad row).
            bos = self.bos.expand(codes.shape[0], 1, -1).to(embeddings.dtype)
            embeddings = torch.cat([bos, embeddings[:, 1:]], dim=1)
        return embeddings

    def forward(
        self,
        inputs_embeds: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        cache: Cache | None = None,
        past_length: int = 0,
    ) -> torch.Tensor:
        length = inputs_embeds.shape[1]
        if past_length + length > self.embed_positions.num_embeddings - self.POSITION_OFFSET:
            raise ValueError(
                f"decoder positions {past_length}..{past_length + length - 1} exceed max_target_positions "
                f"({self.embed_positions.num_embeddings - self.POSITION_OFFSET})"
            )
        start = past_length + self.POSITION_OFFSET
        hidden_states = inputs_embeds + self.embed_positions.weight[start : start + length]
        hidden_states = _dropout(self.layernorm_embedding(hidden_states), self.dropout, self.training)
        if length == 1 and self._fused_step is not None:
            fused = self._fused_step(hidden_states, cache, past_length)
            if fused is not None:
                return fused
        attention_mask, is_causal = _causal_mask(length, past_length, hidden_states.device)
        # Many rows (a prefill) are compute-bound: torch's threads back if `packed_weights` lent them to kernels.
        with torch_threads() if length > 1 else nullcontext():
            for layer in self.layers:
                hidden_states = layer(
                    hidden_states,
                    encoder_hidden_states,
                    cache=cache,
                    attention_mask=attention_mask,
                    is_causal=is_causal,
                )
        return hidden_states

    def stacked_code_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The code tables as one ``(streams · rows, d)`` table, and each stream's first row in it ``(streams,)``:
        stream ``j``'s code ``c`` is row ``c + offsets[j]``."""
        tables = [table.weight.detach() for table in self.embed_codes]
        offsets = torch.arange(len(tables), device=tables[0].device) * tables[0].shape[0]
        return torch.cat(tables), offsets

    def step_cache_dtype(self) -> torch.dtype | None:
        """Inside `packed_weights`: the self-attention cache dtype its fused steps read (`FusedDecoderStep.
        cache_dtype`); None where steps run layer by layer (the cache then follows the states' dtype)."""
        return None if self._fused_step is None else self._fused_step.cache_dtype

    @contextmanager
    def packed_weights(self, rows: int | None = None) -> Iterator[None]:
        """Within the block, decoding steps read the decoder's weights through copies laid out for them: the
        layers' step weights (self-attention q/k/v/out, cross-attention q/out, FFN; fc1 only with an
        activation oneDNN can apply) as `PackedLinear`s, and the code tables stacked into one. Cost: a second
        copy of those weights (≈214 M parameters at full size) while the block runs, and ~0.1-0.2 s to make
        it (oneDNN layout; the plain layout copies only the stacks). Cross-attention k/v run once per generation
        and keep the ordinary weights. Inference only: the copies do not follow weight updates made inside the
        block. Callers check `PackedLinear.applies` first. ``rows``: a step's rows (None: unknown); where the numba
        kernels take them (at most `MAX_KERNEL_ROWS`), no oneDNN copy is made (see `PackedLinear`): fp32 weights
        are read in place, bf16 and int8 ones copied into the kernels' channel blocks (`channel_blocks`; 0.1-0.3 s
        and 0.2 GB in int8 at full size), and the block runs in `kernel_threads` (torch single-threaded, its threads
        lent to the kernels).
        """
        owners = []
        try:
            self._stacked_code_tables = self.stacked_code_tables()
            product = functools.partial(step_product, rows=rows)
            for layer in self.layers:
                attention, cross = layer.self_attn, layer.encoder_attn
                owners += [attention, cross, layer]
                attention.packed_linears.update(
                    qkv=product([attention.q_proj, attention.k_proj, attention.v_proj]),
                    out_proj=product([attention.out_proj]),
                )
                cross.packed_linears.update(
                    q_proj=product([cross.q_proj]), out_proj=product([cross.out_proj])
                )
                layer.packed_linears["fc2"] = product([layer.fc2])
                if layer.activation_function in PackedLinear.ACTIVATIONS:  # else fc1 keeps the plain path
                    layer.packed_linears["fc1"] = product([layer.fc1], layer.activation_function)
            kernels = rows_fit_kernels(rows) and kernels_apply(self.layers[0].fc2.weight)
            self._fused_step = FusedDecoderStep.build(self.layers) if kernels else None
            with kernel_threads() if kernels else nullcontext():
                yield
        finally:
            self._stacked_code_tables = None
            self._fused_step = None
            for owner in owners:
                owner.packed_linears.clear()


def _causal_mask(length: int, past_length: int, device: torch.device) -> tuple[torch.Tensor | None, bool]:
    """(mask, is_causal) for SDPA: query i (absolute past+i) may see keys 0..past+i."""
    if length == 1:
        return None, False
    if past_length == 0:
        return None, True
    allowed = torch.ones(length, past_length + length, dtype=torch.bool, device=device)
    return allowed.tril(diagonal=past_length), False


class VisageModel(nn.Module):
    """Holds the encoder and the decoder (parameter prefix ``model.``)."""

    def __init__(self, config: VisageConfig):
        super().__init__()
        self.encoder = VisageEncoder(config)
        self.decoder = VisageDecoder(config)


__all__ = [
    "PackedLinear",
    "VisageAttention",
    "VisageDecoder",
    "VisageDecoderLayer",
    "VisageEncoder",
    "VisageEncoderLayer",
    "VisageModel",
]
