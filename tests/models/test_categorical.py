"""The batched categorical draw against `torch.multinomial` itself: the same codes, the generators left where
multinomial leaves them, on the compiled race (numba, CPU) and on torch's exponentials."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from visage_hf.models import categorical
from visage_hf.models.categorical import categorical_draws
from visage_hf.models.kernel_scalars import available

PATHS = ["torch-exponential"] + (["compiled-race"] if available() else [])
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _top_k_probabilities(
    rows: int, seed: int, top_k: int | None = 256, sharpness: float = 4.0
) -> torch.Tensor:
    logits = sharpness * torch.randn(rows, 1024, generator=torch.Generator().manual_seed(seed))
    if top_k is not None:
        logits[logits < logits.kthvalue(1024 - top_k, dim=-1, keepdim=True).values] = float("-inf")
    return logits.softmax(dim=-1)


def _use(path: str, monkeypatch) -> None:
    if path == "torch-exponential":  # as without numba
        monkeypatch.setattr(categorical, "available", lambda: False)
    else:
        assert categorical._race_matches_torch()  # the compiled race is the path under test


def _generators(seeds, device="cpu"):
    torch.manual_seed(14)
    return [None if seed is None else torch.Generator(device).manual_seed(seed) for seed in seeds]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("device", DEVICES)
def test_blocks_draw_what_multinomial_draws_with_their_generators(device, path, monkeypatch):
    """Blocks of rows, each with its own generator or the global RNG; every generator must end where multinomial
    leaves it."""
    if device != "cpu" and path == "compiled-race":
        pytest.skip("the compiled race runs on CPU tensors only")
    _use(path, monkeypatch)
    probabilities = _top_k_probabilities(15, seed=0).to(device)
    counts, seeds = [5, 0, 7, 3], [11, 12, 13, None]
    our_generators = _generators(seeds, device)
    ours = categorical_draws(probabilities, counts, our_generators)
    ours_after = torch.rand(1, device=device)
    expected_generators = _generators(seeds, device)
    expected = [
        torch.multinomial(block, 1, generator=generator).flatten()
        for block, generator in zip(probabilities.split(counts), expected_generators)
        if len(block)
    ]
    assert torch.equal(ours, torch.cat(expected))
    assert torch.equal(ours_after, torch.rand(1, device=device))
    for generator, reference in zip(our_generators[:3], expected_generators[:3]):
        assert torch.equal(generator.get_state(), reference.get_state())
    assert len(ours.unique()) > 10  # a real draw, not one code


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "top_k, sharpness",
    [(256, 4.0), (None, 4.0), (None, 0.01), (1, 4.0)],
    ids=["top-256", "full", "flat", "top-1"],
)
def test_many_steps_of_draws_are_multinomials(top_k, sharpness, path, monkeypatch):
    """Step after step from one generator, as a generation draws: top-k rows (mostly zeros), full rows, nearly
    flat rows (where the exponentials' last bits pick the winner) and one-code rows."""
    _use(path, monkeypatch)
    ours, theirs = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for step in range(20):
        probabilities = _top_k_probabilities(25, seed=step, top_k=top_k, sharpness=sharpness)
        expected = torch.multinomial(probabilities, 1, generator=theirs).flatten()
        assert torch.equal(categorical_draws(probabilities, [25], [ours]), expected), f"step {step}"
    assert torch.equal(ours.get_state(), theirs.get_state())


def _torch_race(probabilities: np.ndarray, bits: np.ndarray) -> torch.Tensor:
    """torch's race written out: q = -log1p(-u) from the low 53 bits, stored as float32; torch's div and argmax."""
    uniform = (bits & ((1 << 53) - 1)).astype(np.float64) * 2.0**-53
    exponentials = torch.from_numpy((-np.log1p(-uniform)).astype(np.float32))
    return torch.from_numpy(probabilities).div(exponentials).argmax(dim=-1)


@pytest.mark.skipif(not available(), reason="needs numba")
def test_the_race_takes_zero_uniforms_and_ties_as_torch_does():
    """Inputs no seed produces in a test's time: a 0 uniform where p is 0 (torch's 0 / 0 = NaN wins its argmax),
    a 0 uniform where p is not (p / 0 = inf wins), equal ratios (the first wins), and the top bits that the
    uniform ignores."""
    probabilities = np.zeros((4, 8), dtype=np.float32)
    probabilities[:, [1, 4, 6]] = [0.25, 0.25, 0.5]
    bits = np.tile(np.arange(1, 9, dtype=np.int64) << 40, (4, 1))
    bits[0, 3] = 0  # p = 0, u = 0: NaN
    bits[1, 4] = 1 << 62  # p > 0, u = 0 (only ignored bits set): inf
    bits[2, 4] = bits[2, 1]  # equal p, equal q
    bits[2, 6] = 1 << 52  # q large enough that column 6 is not the winner
    bits[3] = -bits[3]  # negative integers: the sign bit is ignored as the uniform ignores it
    codes = np.empty(4, dtype=np.int64)
    categorical._race(probabilities, bits, codes)
    expected = _torch_race(probabilities, bits)
    assert expected.tolist()[:3] == [3, 4, 1]  # the cases above are what they claim to be
    assert codes.tolist() == expected.tolist()


def test_a_race_that_is_not_torchs_is_not_used(monkeypatch):
    """Where torch would fill its exponentials otherwise (here: a race that takes 52 bits), the check at first
    use finds it and the draw stays multinomial's."""

    def fifty_two_bits(probabilities, generator):
        bits = torch.empty(probabilities.shape, dtype=torch.int64).random_(generator=generator) >> 1
        return _torch_race(probabilities.numpy(), bits.numpy())

    monkeypatch.setattr(categorical, "_compiled_race", fifty_two_bits)
    categorical._race_matches_torch.cache_clear()
    try:
        assert not categorical._race_matches_torch()
        probabilities = _top_k_probabilities(25, seed=1)
        ours, theirs = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        expected = torch.multinomial(probabilities, 1, generator=theirs).flatten()
        assert torch.equal(categorical_draws(probabilities, [25], [ours]), expected)
    finally:
        categorical._race_matches_torch.cache_clear()
