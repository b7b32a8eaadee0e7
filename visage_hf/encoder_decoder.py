"""The ViSAGe encoder-decoder stack: BART-style post-LayerNorm layers with ViSAGe's input front-ends.

Parameter names follow BART (``q_proj``, ``self_attn_layer_norm``, ``fc1`` ...) so that the original
checkpoint maps onto them by renaming only a few front-end modules. Attention runs through torch's
``scaled_dot_product_attention``; caches are transformers `Cache` objects (`EncoderDecoderCache`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, EncoderDecoderCache
from transformers.modeling_layers import GradientCheckpointingLayer

from .configuration_visage import VisageConfig


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
        query = self._split_heads(self.q_proj(hidden_states)).to(compute_dtype)
        if self.is_cross_attention:
            key, value = self._cross_key_value(key_value_states, cache, compute_dtype)
        else:
            key = self._split_heads(self.k_proj(hidden_states)).to(compute_dtype)
            value = self._split_heads(self.v_proj(hidden_states)).to(compute_dtype)
            if cache is not None:
                self_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
                key, value = self_cache.update(key, value, self.layer_idx)
        attended = F.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=attention_mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=is_causal,
        )
        attended = attended.to(hidden_states.dtype).transpose(1, 2).reshape(batch, length, -1)
        return self.out_proj(attended)

    def _cross_key_value(self, encoder_states: torch.Tensor, cache: Cache | None, compute_dtype: torch.dtype):
        # The encoder states never change during generation: project them once, then reuse the cache.
        if isinstance(cache, EncoderDecoderCache) and cache.is_updated.get(self.layer_idx, False):
            layer = cache.cross_attention_cache.layers[self.layer_idx]
            return layer.keys, layer.values
        key = self._split_heads(self.k_proj(encoder_states)).to(compute_dtype)
        value = self._split_heads(self.v_proj(encoder_states)).to(compute_dtype)
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
        self.fc1 = nn.Linear(dim, config.encoder_ffn_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.activation_fn = ACT2FN[config.activation_function]
        self.dropout = config.dropout
        self.activation_dropout = config.activation_dropout

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        residual = hidden_states
        hidden_states = F.dropout(self.self_attn(hidden_states), p=self.dropout, training=self.training)
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
        self.fc1 = nn.Linear(dim, config.decoder_ffn_dim)
        self.fc2 = nn.Linear(config.decoder_ffn_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.activation_fn = ACT2FN[config.activation_function]
        self.dropout = config.dropout
        self.activation_dropout = config.activation_dropout

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
        hidden_states = F.dropout(hidden_states, p=self.dropout, training=self.training)
        hidden_states = self.self_attn_layer_norm(residual + hidden_states)

        residual = hidden_states
        hidden_states = self.encoder_attn(hidden_states, key_value_states=encoder_hidden_states, cache=cache)
        hidden_states = F.dropout(hidden_states, p=self.dropout, training=self.training)
        hidden_states = self.encoder_attn_layer_norm(residual + hidden_states)
        return _feed_forward(self, hidden_states)


def _feed_forward(
    layer: VisageEncoderLayer | VisageDecoderLayer, hidden_states: torch.Tensor
) -> torch.Tensor:
    residual = hidden_states
    hidden_states = layer.activation_fn(layer.fc1(hidden_states))
    hidden_states = F.dropout(hidden_states, p=layer.activation_dropout, training=layer.training)
    hidden_states = F.dropout(layer.fc2(hidden_states), p=layer.dropout, training=layer.training)
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
        """clip_features ``(batch, frames, clip_dim)``, energy_map ``(batch, frames, 49)``, direction ``(batch, 3)``."""
        batch, frames, _ = clip_features.shape
        tokens = self.clip_projection(clip_features)
        if energy_map is not None:
            tokens = tokens + self.energy_projection(energy_map)
        tokens = tokens + self.embed_positions.weight[:frames]
        if direction is not None:
            tokens = tokens + self.direction_projection(direction)[:, None]
        dim = tokens.shape[-1]
        hidden_states = torch.cat(
            [self.bos.expand(batch, 1, dim), tokens, self.eos.expand(batch, 1, dim)], dim=1
        )
        hidden_states = F.dropout(
            self.layernorm_embedding(hidden_states), p=self.dropout, training=self.training
        )
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

    def embed(self, codes: torch.Tensor, past_length: int = 0) -> torch.Tensor:
        """Sum of the per-stream embeddings of ``(batch, rows, streams)`` codes; absolute position 0 is BOS."""
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
        hidden_states = F.dropout(
            self.layernorm_embedding(hidden_states), p=self.dropout, training=self.training
        )
        attention_mask, is_causal = _causal_mask(length, past_length, hidden_states.device)
        for layer in self.layers:
            hidden_states = layer(
                hidden_states,
                encoder_hidden_states,
                cache=cache,
                attention_mask=attention_mask,
                is_causal=is_causal,
            )
        return hidden_states


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
    "VisageAttention",
    "VisageDecoder",
    "VisageDecoderLayer",
    "VisageEncoder",
    "VisageEncoderLayer",
    "VisageModel",
]
