"""What reached the model: a spy on `VisageForFOA._fill_canvas`, the step where a generate call's guidance plan,
logits processors and conditions are final, and the non-default settings the layer tests send down.

Each test of a layer (CLI, pipeline, batch generation, app) passes settings at its own surface and compares
:func:`reached` — read back from the plan the model combines its branches with, the sampler that draws the codes,
and the model's own weights — with what it asked for. A layer that dropped or swapped an option makes the model
fall back to its defaults (joint, 2.5, top-k 256, temperature 1, sampling, float32), which differ from every case
here.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from transformers import TemperatureLogitsWarper, TopKLogitsWarper

from visage_hf.models.generation import CodeSamplingLogitsProcessor
from visage_hf.models.modeling_visage import VisageForFOA

# Non-default and pairwise distinct values, so a dropped option (the model's default) or two swapped options show.
# Each case: (CLI options, keyword arguments of the pipeline / batch settings, what the model must receive).
CASES = {
    "dual": (
        ["--guidance", "dual", "--guidance-scale", "1.25", "--direction-guidance-scale", "3.75",
         "--top-k", "7", "--temperature", "0.6"],
        {"guidance": "dual", "guidance_scale": 1.25, "direction_guidance_scale": 3.75, "top_k": 7,
         "temperature": 0.6},
        {"guidance": "dual", "guidance_scale": 1.25, "direction_guidance_scale": 3.75, "sampling": True,
         "top_k": 7, "temperature": 0.6},
    ),
    "direction-no-top-k": (
        ["--guidance", "direction", "--direction-guidance-scale", "0.5", "--top-k", "0", "--temperature", "1.7"],
        {"guidance": "direction", "direction_guidance_scale": 0.5, "top_k": 0, "temperature": 1.7},
        {"guidance": "direction", "direction_guidance_scale": 0.5, "sampling": True, "top_k": 0,
         "temperature": 1.7},
    ),
    "visual-greedy": (
        ["--guidance", "visual", "--guidance-scale", "4.5", "--greedy"],
        {"guidance": "visual", "guidance_scale": 4.5, "do_sample": False},
        {"guidance": "visual", "guidance_scale": 4.5, "sampling": False},
    ),
    "none-greedy": (
        ["--guidance", "none", "--greedy"],
        {"guidance": "none", "do_sample": False},
        {"guidance": "none", "sampling": False},
    ),
}  # fmt: skip
# --dtype values every layer must hand to the model (add "int8" here once the CLI offers it).
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class GenerationReached(BaseException):
    """Raised by the spy once it has recorded a call: nothing after the model's first step needs to run (a
    BaseException, so no layer's ``except Exception`` turns it into a reported failure)."""


@dataclass
class Reached:
    """What one `VisageForFOA.generate` call used."""

    guidance: str
    guidance_scale: float
    direction_guidance_scale: float
    sampling: bool
    top_k: int  # 0: no top-k filter
    temperature: float
    dtype: torch.dtype
    clip_features: torch.Tensor

    def matches(self, expected: dict) -> dict:
        """The expected entries this call did not receive, as ``{name: (expected, received)}``."""
        return {
            name: (value, getattr(self, name))
            for name, value in expected.items()
            if getattr(self, name) != value
        }


def reached(model: VisageForFOA, conditions, plan, processors) -> Reached:
    """Read the settings back from the objects the model generates with."""
    samplers = [p for p in processors if isinstance(p, CodeSamplingLogitsProcessor)]
    warpers = samplers[0].warpers if samplers else []
    top_k = [w.top_k for w in warpers if isinstance(w, TopKLogitsWarper)]
    temperature = [w.temperature for w in warpers if isinstance(w, TemperatureLogitsWarper)]
    return Reached(
        guidance=plan.mode,
        guidance_scale=plan.scale,
        direction_guidance_scale=plan.direction_scale,
        sampling=bool(samplers),
        top_k=top_k[0] if top_k else 0,
        temperature=temperature[0] if temperature else 1.0,
        dtype=next(model.parameters()).dtype,
        clip_features=conditions[0].detach().float().cpu().clone(),
    )


@contextmanager
def spy_generation(monkeypatch, stop: bool = True):
    """Record every generate call as a :class:`Reached` in the yielded list; ``stop`` ends the run at the first
    call with :class:`GenerationReached` (the test catches it)."""
    calls: list[Reached] = []
    original = VisageForFOA._fill_canvas

    def spy(self, conditions, canvas, plan, processors, kwargs):
        calls.append(reached(self, conditions, plan, processors))
        if stop:
            raise GenerationReached
        return original(self, conditions, canvas, plan, processors, kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(VisageForFOA, "_fill_canvas", spy)
        yield calls
