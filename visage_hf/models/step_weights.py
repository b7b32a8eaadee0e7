"""The weights a generation step reads, laid out for it for the length of one `generate` call.

A step computes the decoder layers for one position, then the heads of the streams the code pattern leaves live
at that step; the interleaved pattern alternates two lists of live streams (11 and 25 of the 36 heads). Calling
each live head apart is a product and a kernel launch per stream: on a GPU at batch 1 that is ~20 launches a
step, about as many as a decoder layer's. So each recurring list of live heads becomes one stacked product, on
every device; on CPU the decoder's step weights are packed as well (`VisageDecoder.packed_weights`).
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from .encoder_decoder import step_product, supports_step_products
from .quantization import float_weight


def stacked_heads(heads: Sequence[nn.Linear]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``(..., d)`` -> ``(..., len(heads) · codebook)``: the heads' logits side by side, in one product."""
    weight = torch.cat([float_weight(head) for head in heads])
    bias = torch.cat([head.bias for head in heads])
    return functools.partial(F.linear, weight=weight, bias=bias)


@contextmanager
def step_weights(model: nn.Module, schedule: list[list[int]], rows: int) -> Iterator[None]:
    """Within the block, steps of ``schedule`` (live streams per step) read each recurring list of live heads as
    one product (model ``_packed_heads``), and on CPU the decoder's step weights through `step_product`s (float:
    `PackedLinear`, int8: `StackedInt8Linear`). ``rows``: a step's rows (branches × batch)."""
    if len(schedule) < 2:
        yield
        return
    recurring = [key for key, count in Counter(map(tuple, schedule)).items() if key and count > 1]
    heads = {key: [model.heads[stream] for stream in key] for key in recurring}
    if model.device.type == "cpu":
        if not supports_step_products(model.heads[0]):
            yield
            return
        packed = model.model.decoder.packed_weights(rows)
        stack = functools.partial(step_product, rows=rows)
    else:
        packed, stack = nullcontext(), stacked_heads
    with packed:
        try:
            model._packed_heads = {key: stack(linears) for key, linears in heads.items()}
            yield
        finally:
            model._packed_heads = None


__all__ = ["stacked_heads", "step_weights"]
