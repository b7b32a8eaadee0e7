"""Top-k by selection (numba) against transformers' `TopKLogitsWarper` (a sorted `torch.topk`): bit for bit."""

from __future__ import annotations

import pytest
import torch
from transformers import TopKLogitsWarper

from visage_hf.models import top_k as top_k_module
from visage_hf.models.row_kernels import available
from visage_hf.models.top_k import KthValueTopKLogitsWarper, keep_top_k

pytestmark = pytest.mark.skipif(not available(), reason="needs numba")


def _rows(seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(25, 1024, generator=generator)
    ties = torch.randint(0, 4, (50, 1024), generator=generator).float()  # many values equal to the threshold
    pattern_filtered = scores.clone()
    pattern_filtered[:, ::3] = float("-inf")  # as the pattern leaves them; fewer finite values than k = 1024
    return [scores, ties, pattern_filtered, scores[:1]]


@pytest.mark.parametrize("kernel", [True, False], ids=["selection", "torch-kthvalue"])
@pytest.mark.parametrize("k", [1, 7, 256, 1024, 2000])
def test_warper_gives_transformers_top_k(k, kernel, monkeypatch):
    if not kernel:  # as without numba
        monkeypatch.setattr(top_k_module, "available", lambda: False)
    for values in _rows(k):
        expected = TopKLogitsWarper(k)(None, values.clone())
        assert (
            keep_top_k(values, min(k, 1024), float("-inf")) is not None
        ) == kernel  # the path under test ran
        assert torch.equal(KthValueTopKLogitsWarper(k)(None, values.clone()), expected)


def test_the_filter_value_is_the_warpers():
    values = torch.randn(4, 64, generator=torch.Generator().manual_seed(0))
    expected = TopKLogitsWarper(5, filter_value=-7.0)(None, values.clone())
    assert torch.equal(KthValueTopKLogitsWarper(5, filter_value=-7.0)(None, values.clone()), expected)


def test_input_is_left_as_it_was():
    values = torch.randn(3, 64, generator=torch.Generator().manual_seed(1))
    before = values.clone()
    keep_top_k(values, 4, float("-inf"))
    assert torch.equal(values, before)


def test_nan_rows_and_other_inputs_go_to_torch():
    values = torch.randn(3, 64, generator=torch.Generator().manual_seed(2))
    values[1, 5] = float("nan")
    assert keep_top_k(values, 4, float("-inf")) is None
    assert keep_top_k(values[0].bfloat16()[None], 4, float("-inf")) is None
    assert keep_top_k(values[0], 4, float("-inf")) is None  # 1-D
    assert keep_top_k(values[:1, :3], 4, float("-inf")) is None  # k beyond the row
