"""The window loop, written once: codes for a clip of any length, one `VisageForFOA.generate` call per window.

Window ``k > 0`` of a :class:`~visage_hf.pipelines.windowing.WindowPlan` gets the codes already written in its
prefix span as ``prefix_codes``, so neighbouring windows continue each other; a window's ``repeated_frames``
(the frame past the video's end) are not generated but repeat its last generated frame.
`VisagePipeline.generate_codes` (conditions from video frames, window by window) and batch generation
(precomputed features, many clips with one generator each) both run this loop.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import LogitsProcessorList

from ..models.generation import ProgressLogitsProcessor, repeat_last_frame
from .windowing import Window, WindowPlan

__all__ = ["generate_window_codes", "uses_original_frame_count"]


def uses_original_frame_count(config, plan: WindowPlan, mode: str) -> bool:
    """True when the plan is one window that `generate` sizes itself in original mode (the original's
    ``int(T / 4 · 86)`` frames and last-frame padding) rather than to the plan's frame count."""
    return mode == "original" and len(plan) == 1 and plan[0].num_video_frames <= config.max_source_positions


def generate_window_codes(
    model,
    plan: WindowPlan,
    window_conditions: Callable[[Window], dict[str, torch.Tensor]],
    num_sequences: int,
    mode: str,
    bar=None,
    **generate_kwargs,
) -> torch.LongTensor:
    """Codes ``(num_sequences, channels, codebooks, plan.num_code_frames)`` (on the CPU), window by window.

    Args:
        model: a `VisageForFOA`.
        window_conditions: the window's ``clip_features`` / ``energy_map`` / ``direction`` for `generate`, with
            ``num_sequences`` rows.
        mode: the resolved faithfulness mode.
        bar: a tqdm bar advanced once per decoder step (its description names the window), or None.
        generate_kwargs: the rest of `VisageForFOA.generate`'s options (guidance, sampling, ``generator`` — one,
            or one per sequence: a generator is used across all windows of its sequence).
    """
    config = model.config
    shape = (num_sequences, config.num_channels, config.num_codebooks, plan.num_code_frames)
    codes = torch.zeros(shape, dtype=torch.long)
    own_count = uses_original_frame_count(config, plan, mode)
    processors = LogitsProcessorList([ProgressLogitsProcessor(bar=bar)] if bar is not None else [])
    for index, window in enumerate(plan):
        if bar is not None:
            bar.set_description(f"window {index + 1}/{len(plan)}")
        prefix = None
        if window.prefix_frames:
            prefix = codes[..., window.code_start : window.code_start + window.prefix_frames].to(model.device)
        window_codes = model.generate(
            **window_conditions(window),
            prefix_codes=prefix,
            num_frames=None if own_count else window.generated_frames,
            mode=mode,
            logits_processor=processors,
            **generate_kwargs,
        )
        # the frame past the video's end (plan) or original mode's own count falls short: repeat the last
        window_codes = repeat_last_frame(window_codes, window.num_code_frames)
        codes[..., window.code_start : window.code_stop] = window_codes[..., : window.num_code_frames].cpu()
    return codes
