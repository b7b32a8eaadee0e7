"""Int8 weight-only quantization of the decoder's step weights: ``dtype="int8"`` / ``--dtype int8``.

A generation step multiplies a few rows (guidance branches × batch) by every step weight once, so on CPU its time
is the time to read those weights from memory. Stored as int8 with one scale per output channel, they are a
quarter of fp32's bytes and half of bf16's. `quantize_decoder` swaps the step linears for
`Int8WeightOnlyLinear`: self-attention q/k/v/out, cross-attention q/out, the FFN and the 36 heads. Everything
computed once per generation stays float: the encoder, the cross-attention k/v of the encoder states, the code
tables. Between the products the activations stay fp32 (residuals, LayerNorm, attention, softmax).

A generation step's products (at most 4 rows: guidance branches × batch) run through the numba kernel of
`visage_hf.models.row_kernels`, which reads each int8 weight once, widens it to fp32 in registers and applies the
row's scale after the sum: inputs stay fp32. It streams the weights at ~18 GB/s on a 2-core AMD EPYC (AVX2),
against ~10 GB/s for torch's own int8 weight-only kernel, ``torch.ops.aten._weight_int8pack_mm`` (per-output-channel
scales; the one gpt-fast uses), which remains the product for more rows and where numba is not installed. On x86
that kernel is vectorised (AVX2 / AVX-512) for bf16 inputs only -- its fp32 path is a scalar loop, ~3x slower than
reading fp32 weights -- so there each product reads its input rounded to bf16, accumulates in fp32 and rounds its
output to bf16, which then returns to fp32 before the bias. torchao's int8 weight-only layout was not used: in
eager mode (torchao 0.18) it dequantizes the whole weight for every product, which is slower than fp32; it is fast
only under torch.compile.

Deviation from fp32 (measured by ``benchmarks/quantization_error.py``; README "Precision"): symmetric int8 rounds
each weight by up to half a step of ``max|row| / 127``, which moves logits by about 1% of their range; greedy
codes then follow fp32's wherever the top two logits are further apart than that.

Inference only: quantized layers have no gradient and `save_pretrained` of a quantized model writes int8
tensors that a float model cannot load; save the float model and quantize after loading.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .row_kernels import RowProduct, kernels_apply

INT8 = "int8"
# The kernel's input, scale and output dtype: the one with vectorised x86 kernels (see the module docstring).
KERNEL_DTYPE = torch.bfloat16
# Rows of the kernel's input are read with aligned vector loads, so a row must span whole 32-byte blocks.
KERNEL_IN_FEATURES_MULTIPLE = 16
_INT8PACK_MM = getattr(torch.ops.aten, "_weight_int8pack_mm", None)
# CPU only: torch's CUDA version of the kernel is a naive one-thread-per-output loop (torch 2.13); other devices
# multiply by a dequantized copy (correct, not fast: on GPUs bf16 is the fast option).
_KERNEL_DEVICES = ("cpu",)


def is_int8(dtype) -> bool:
    """Whether ``dtype`` asks for int8 decoder step weights (``"int8"`` or ``torch.int8``)."""
    return dtype == INT8 or dtype is torch.int8


def with_int8_option(from_pretrained: Callable) -> Callable:
    """Wraps a ``from_pretrained(cls, ...)`` body (of `VisageForFOA` or `VisagePipeline`): ``dtype="int8"`` (or
    ``torch_dtype``) loads float32 weights, then quantizes the decoder's step weights (`quantize_decoder`)."""

    @functools.wraps(from_pretrained)
    def load(cls, *args, **kwargs):
        if not is_int8(kwargs.get("dtype", kwargs.get("torch_dtype"))):
            return from_pretrained(cls, *args, **kwargs)
        options = {key: value for key, value in kwargs.items() if key != "torch_dtype"}
        return quantize_decoder(from_pretrained(cls, *args, **{**options, "dtype": torch.float32}))

    return load


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8: ``(out, in)`` float -> (``(out, in)`` int8 in [-127, 127], ``(out,)``
    bf16 scales) with ``weight ≈ q · scale[:, None]``.

    The scale is rounded to bf16 first (the kernel's scale dtype) and then the weights are rounded against that
    stored scale, so that rounding the scale adds no error; where bf16 rounded the scale down, it is moved one
    bf16 step up so that no weight is clipped. An all-zero row gets scale 1.
    """
    if weight.ndim != 2:
        raise ValueError(f"quantize_rows takes an (out, in) weight, got shape {tuple(weight.shape)}")
    weight = weight.detach().float()
    amax = weight.abs().amax(dim=1)
    scale = (amax / 127).to(KERNEL_DTYPE)
    too_small = scale.float() * 127 < amax
    scale = torch.where(too_small, torch.nextafter(scale, torch.full_like(scale, float("inf"))), scale)
    scale = torch.where(amax == 0, torch.ones_like(scale), scale)
    quantized = torch.round(weight / scale.float()[:, None]).clamp(-127, 127).to(torch.int8)
    return quantized, scale


def int8_linear(
    states: torch.Tensor,
    weight: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
) -> torch.Tensor:
    """``(..., in)`` -> ``(..., out)``: ``states @ (weight · scale[:, None]).T + bias``, then the activation
    (``"gelu"``: exact erf GELU), in ``states``' dtype. ``weight`` ``(out, in)`` int8, ``scale`` ``(out,)``."""
    rows = states.reshape(-1, states.shape[-1])
    if scale.dtype != KERNEL_DTYPE:
        scale = scale.to(KERNEL_DTYPE)
    if _kernel_fits(rows, weight):
        rows = rows.to(KERNEL_DTYPE)
        if rows.data_ptr() % 64:  # a view into a bigger tensor: the kernel needs an aligned start
            rows = rows.clone()
        projected = _INT8PACK_MM(rows.contiguous(), weight, scale)
    else:  # other devices and shapes: the same arithmetic through a dequantized copy
        dequantized = weight.to(torch.float32) * scale.float()[:, None]
        projected = F.linear(rows.to(KERNEL_DTYPE).float(), dequantized).to(KERNEL_DTYPE)
    projected = projected.to(states.dtype) if bias is None else torch.add(bias.to(states.dtype), projected)
    if activation == "gelu":
        projected = F.gelu(projected)
    elif activation is not None:
        raise ValueError(f"activation must be 'gelu' or None, got {activation!r}")
    return projected.view(*states.shape[:-1], weight.shape[0])


def _kernel_fits(rows: torch.Tensor, weight: torch.Tensor) -> bool:
    return (
        _INT8PACK_MM is not None
        and rows.device.type in _KERNEL_DEVICES
        and weight.shape[1] % KERNEL_IN_FEATURES_MULTIPLE == 0
    )


class Int8WeightOnlyLinear(nn.Module):
    """`nn.Linear` with an int8 weight and one bf16 scale per output channel; the bias stays float.

    Buffers: ``weight`` ``(out_features, in_features)`` int8, ``scale`` ``(out_features,)``, ``bias``
    ``(out_features,)`` or None. Input ``(..., in_features)`` -> ``(..., out_features)`` in the input's dtype.
    """

    def __init__(self, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        if weight.dtype != torch.int8 or weight.ndim != 2 or scale.shape != weight.shape[:1]:
            raise ValueError("Int8WeightOnlyLinear takes an (out, in) int8 weight and (out,) scales")
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight.contiguous())
        self.register_buffer("scale", scale)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8WeightOnlyLinear:
        weight, scale = quantize_rows(linear.weight)
        return cls(weight, scale, linear.bias)

    def dequantized_weight(self) -> torch.Tensor:
        """The weight this layer multiplies by, ``(out, in)`` float32."""
        return self.weight.float() * self.scale.float()[:, None]

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return int8_linear(states, self.weight, self.scale, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
        )


class StackedInt8Linear:
    """Several `Int8WeightOnlyLinear` layers as one product (outputs concatenated), optionally followed by an
    activation: the int8 counterpart of `PackedLinear` for a generation step (q/k/v in one call, FFN input with
    its GELU, the live heads stacked). ``few_rows``: steps of at most `MAX_KERNEL_ROWS` rows, multiplied by
    `RowProduct` where numba is installed. Inference only: a copy, which does not follow later weight
    changes."""

    ACTIVATIONS = ("gelu",)

    def __init__(
        self,
        linears: Sequence[Int8WeightOnlyLinear],
        activation: str | None = None,
        few_rows: bool = False,
    ):
        if activation is not None and activation not in self.ACTIVATIONS:
            raise ValueError(f"activation must be one of {self.ACTIVATIONS} or None, got {activation!r}")
        has_bias = [linear.bias is not None for linear in linears]
        if any(has_bias) and not all(has_bias):
            raise ValueError("StackedInt8Linear stacks layers that all have a bias, or none")
        self.weight, self.scale = _stack(
            [linear.weight for linear in linears], [linear.scale for linear in linears]
        )
        self.scale = self.scale.to(KERNEL_DTYPE)
        self.bias = _stack([linear.bias for linear in linears])[0] if all(has_bias) else None
        self.activation = activation
        self.out_features = self.weight.shape[0]
        self.rows = (
            RowProduct(self.weight, self.bias, self.scale, activation)
            if few_rows and kernels_apply(self.weight)
            else None
        )

    def __call__(self, states: torch.Tensor) -> torch.Tensor:
        if self.rows is not None and self.rows.takes(states):
            return self.rows(states)
        return int8_linear(states, self.weight, self.scale, self.bias, self.activation)


def _stack(*groups: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    # One layer is used as it is (no copy); several are concatenated along the output.
    return tuple(group[0] if len(group) == 1 else torch.cat(group) for group in groups)


def decoder_step_linears(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """``(owner, attribute)`` of every linear a generation step reads: per decoder layer self-attention
    q/k/v/out, cross-attention q/out, fc1, fc2; then the heads (``model.heads[j]``)."""
    slots = []
    for layer in model.model.decoder.layers:
        slots += [(layer.self_attn, name) for name in ("q_proj", "k_proj", "v_proj", "out_proj")]
        slots += [(layer.encoder_attn, name) for name in ("q_proj", "out_proj")]
        slots += [(layer, "fc1"), (layer, "fc2")]
    slots += [(model.heads, str(index)) for index in range(len(model.heads))]
    return slots


def quantize_decoder(model):
    """Swap the decoder step linears of ``model`` (a `VisageForFOA`, or a `VisagePipeline`: its ``foa_model``)
    for `Int8WeightOnlyLinear` in place (see the module docstring for which); returns ``model``. Idempotent:
    quantized layers stay as they are."""
    for owner, name in decoder_step_linears(getattr(model, "foa_model", model)):
        linear = getattr(owner, name)
        if isinstance(linear, nn.Linear):
            setattr(owner, name, Int8WeightOnlyLinear.from_linear(linear).to(linear.weight.device))
    return model


def is_quantized(model: nn.Module) -> bool:
    """Whether ``model``'s decoder step weights are int8 (`quantize_decoder`)."""
    return any(isinstance(module, Int8WeightOnlyLinear) for module in model.modules())


def float_weight(linear: nn.Module) -> torch.Tensor:
    """The float ``(out, in)`` weight ``linear`` multiplies by (dequantized for `Int8WeightOnlyLinear`)."""
    return linear.dequantized_weight() if isinstance(linear, Int8WeightOnlyLinear) else linear.weight


__all__ = [
    "INT8",
    "Int8WeightOnlyLinear",
    "StackedInt8Linear",
    "decoder_step_linears",
    "float_weight",
    "int8_linear",
    "is_int8",
    "is_quantized",
    "quantize_decoder",
    "quantize_rows",
    "with_int8_option",
]
