"""How far ``dtype="int8"`` (and bf16, for comparison) moves generation away from fp32.

For each model: fp32 generates greedily (joint guidance, the model's scale) while a logits processor records
every step's guided logits of the live cells; then the variant generates twice:

* **teacher-forced** along fp32's codes (a processor records its logits, then forces fp32's choice), giving the
  per-step logit error ``max |l - l_fp32| / max |l_fp32|`` over the step's live cells (reported: the largest and
  the mean over steps, plus the mean over all logits of ``|l - l_fp32|`` / mean ``|l_fp32|``) and the fraction of
  cells whose argmax equals fp32's (the decision each step takes given the same past);
* **free-running** greedily: the fraction of generated codes identical to fp32's (after a first difference the
  two continue from different pasts, so this is the stricter number).

Models: ``fixture`` (the parity fixture converted from the original, tests/fixtures/original_tiny/foa: random
N(0, 0.2) weights, d_model 16, 2 decoder layers), ``--model DIR`` (e.g. the tiny recipe trained on the synthetic
task: ``accelerate launch visage_hf/train.py --config visage_hf/training/configs/tiny.yaml --use_cpu
--max_steps 400`` then ``--model runs/tiny/model``), and ``random-full`` (full size, random weights; slow).

Usage:
    python benchmarks/quantization_error.py                      # the fixture
    python benchmarks/quantization_error.py --model runs/tiny/model --frames 40
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "original_tiny" / "foa"


class StepLogits:
    """A logits processor (after pattern forcing) recording each step's free cells' logits and the argmax of
    every row; with ``force`` (a list of per-step argmax rows) it then makes that choice certain."""

    def __init__(self, codebook_size: int, force: list | None = None):
        self.codebook_size, self.force = codebook_size, force
        self.logits, self.choices = [], []

    def __call__(self, input_ids, scores):
        import torch

        codes = scores[:, : self.codebook_size]
        free = torch.isfinite(codes).all(dim=-1)
        self.logits.append(codes[free].float().clone())
        self.choices.append(scores.argmax(dim=-1))
        if self.force is None:
            return scores
        forced = torch.full_like(scores, float("-inf"))
        forced[torch.arange(scores.shape[0]), self.force[len(self.choices) - 1]] = 0.0
        return forced


def compare(reference, variant, conditions, frames: int) -> dict[str, float]:
    """The numbers of the module docstring for ``variant`` against ``reference`` (fp32)."""
    from transformers import LogitsProcessorList

    size = reference.config.codebook_size
    options = {"do_sample": False} if frames is None else {"do_sample": False, "num_frames": frames}
    recorder = StepLogits(size)
    codes = reference.generate(*conditions, logits_processor=LogitsProcessorList([recorder]), **options)
    forced = StepLogits(size, force=recorder.choices)
    variant.generate(*conditions, logits_processor=LogitsProcessorList([forced]), **options)
    free_running = variant.generate(*conditions, **options)
    relative, absolute, magnitude, agree, cells = [], 0.0, 0.0, 0, 0
    for exact, approximate in zip(recorder.logits, forced.logits):
        if exact.numel() == 0:
            continue
        error = (approximate - exact).abs()
        relative.append(float(error.max() / exact.abs().max()))
        absolute, magnitude = absolute + float(error.sum()), magnitude + float(exact.abs().sum())
        agree += int((approximate.argmax(-1) == exact.argmax(-1)).sum())
        cells += exact.shape[0]
    return {
        "step_rel_max": max(relative),
        "step_rel_mean": sum(relative) / len(relative),
        "mean_abs_rel": absolute / magnitude,
        "forced_agreement": agree / cells,
        "greedy_agreement": float((free_running == codes).float().mean()),
        "cells": cells,
        "steps": len(relative),
    }


def load(name: str):
    """(model, conditions, frames) for ``fixture``, ``random-full`` or a model folder."""
    import numpy as np
    import torch

    from visage_hf.models.configuration_visage import VisageConfig
    from visage_hf.models.convert_original import load_original_checkpoint
    from visage_hf.models.modeling_visage import VisageForFOA

    if name == "fixture":
        with np.load(FIXTURE / "expected.npz", allow_pickle=False) as data:
            conditions = [
                torch.from_numpy(data[key]).float() for key in ("inputs_embeds", "energy_map", "direction")
            ]
        return load_original_checkpoint(FIXTURE), conditions, 86
    if name == "random-full":
        torch.manual_seed(0)
        model = VisageForFOA(VisageConfig(dropout=0.0)).eval()
        generator = torch.Generator().manual_seed(1)
        conditions = [
            torch.randn(1, 20, 512, generator=generator),
            torch.rand(1, 20, 49, generator=generator).softmax(-1),
            torch.nn.functional.normalize(torch.randn(1, 3, generator=generator), dim=-1),
        ]
        return model, conditions, 20
    return load_synthetic(name)


def load_synthetic(folder: str, clips: int = 8):
    """A model trained on the synthetic task (visage_hf/data/synthetic_task.py) and ``clips`` fresh clips of it
    (1 s, a seed the training data did not use), with their directions as the model's vectors."""
    import numpy as np
    import torch

    from visage_hf.data.synthetic_task import synthetic_examples
    from visage_hf.directions import direction_to_model_vector, indices_to_direction
    from visage_hf.models.modeling_visage import VisageForFOA

    model = VisageForFOA.from_pretrained(folder).eval()
    rows = list(synthetic_examples(model.config, clips, seconds=1.0, seed=987))
    directions = [indices_to_direction(row["elevation_index"], row["azimuth_index"]) for row in rows]
    conditions = [
        torch.from_numpy(np.stack([row["clip_features"] for row in rows])).float(),
        torch.from_numpy(np.stack([row["energy_map"] for row in rows])).float(),
        torch.from_numpy(np.stack([direction_to_model_vector(*d) for d in directions])).float(),
    ]
    return model, conditions, None


def main() -> None:
    import torch

    from visage_hf.models.quantization import quantize_decoder

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="fixture", help="fixture, random-full, or a VisageForFOA folder")
    parser.add_argument(
        "--frames", type=int, default=None, help="codec frames to generate (default: the clip's)"
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="clips generated together (default: all); with at most 4 rows a step (batch 2 under joint guidance) "
        "the products run through the numba kernels (visage_hf.models.row_kernels), else through torch's",
    )
    args = parser.parse_args()
    model, conditions, frames = load(args.model)
    conditions = [None if tensor is None else tensor[: args.batch] for tensor in conditions]
    frames = args.frames or frames
    variants = {
        "int8": quantize_decoder(copy.deepcopy(model)),
        "bf16": copy.deepcopy(model).to(torch.bfloat16),
    }
    print(
        f"{args.model}: {frames or 'the clip length in'} codec frames, batch {conditions[0].shape[0]}, greedy, the model's guidance"
    )
    print(f"{'variant':8s} {'step rel max':>12s} {'step rel mean':>13s} {'mean |d|/|l|':>12s} "
          f"{'argmax same (forced)':>20s} {'codes same (free)':>17s}")  # fmt: skip
    for name, variant in variants.items():
        r = compare(model, variant, conditions, frames)
        print(
            f"{name:8s} {r['step_rel_max']:12.2e} {r['step_rel_mean']:13.2e} {r['mean_abs_rel']:12.2e} "
            f"{r['forced_agreement']:20.4f} {r['greedy_agreement']:17.4f}   ({r['steps']} steps, {r['cells']} cells)"
        )


if __name__ == "__main__":
    from machine import describe_machine  # benchmarks/machine.py: the CPU every number here is measured on

    print(describe_machine())
    main()
