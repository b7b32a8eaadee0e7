"""VisageForFOA.generate against independent references.

The main reference is `reference_generate`, a loop written like the original `generate_cfg` /
`generate_dual_cfg`: one decoder call per guidance branch per step, each branch with its own cache, the head
lists of the original (even / odd / last heads), the original's CFG expressions on logits, and one
`torch.multinomial` per head in ascending order. It shares only the network modules with the code under test.
"""

from __future__ import annotations

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from visage_hf.models.generation import (
    CodePatternLogitsProcessor,
    GuidancePlan,
    build_code_canvas,
    prompt_steps,
    repeat_last_frame,
)
from visage_hf.models.modeling_visage import shift_codes_right

PAD = 1024
BRANCHES = {  # (null_visual, null_direction), in the order the original's formulas use them
    "none": [(False, False)],
    "joint": [(False, False), (True, True)],
    "visual": [(False, False), (True, False)],
    "direction": [(False, False), (False, True)],
    "dual": [(False, False), (False, True), (True, False), (True, True)],
}


def original_head_lists(num_channels: int, num_frames: int) -> list[list[int]]:
    """Heads computed at each step, as the original hard-codes them (FOA: 2T+1 steps; mono: 2T)."""
    if num_channels == 1:
        return [[0] if step % 2 == 0 else list(range(1, 9)) for step in range(2 * num_frames)]
    odd = [j for j in range(1, 36) if j < 9 or j % 9 == 0]
    even = [0] + [j for j in range(1, 36) if not (j < 9 or j % 9 == 0)]
    last = even[1:]
    lists = []
    for step in range(2 * num_frames + 1):
        lists.append([0] if step == 0 else last if step == 2 * num_frames else odd if step % 2 else even)
    return lists


def original_revert(grid: torch.Tensor, num_channels: int) -> torch.Tensor:
    """The original's de-interleaving: (batch, steps, streams) -> (batch, streams, frames)."""
    if num_channels == 1:
        return torch.stack([grid[:, 0::2, 0], *[grid[:, 1::2, j] for j in range(1, 9)]], dim=1)
    columns = []
    for j in range(36):
        if j == 0:
            columns.append(grid[:, :-1, 0][:, 0::2])
        elif j < 9 or j % 9 == 0:
            columns.append(grid[:, 1::2, j])
        else:
            columns.append(grid[:, 2::2, j])
    return torch.stack(columns, dim=1)


@torch.no_grad()
def reference_generate(model, clip, energy, direction, num_frames, guidance="joint", scale=2.5, direction_scale=2.5,
                       do_sample=False, top_k=256):  # fmt: skip
    config = model.config
    batch, streams = clip.shape[0], config.num_streams
    encoder, decoder = model.model.encoder, model.model.decoder
    states = [
        encoder(
            *model.apply_null_conditions(
                clip, energy, direction, torch.full((batch,), nv), torch.full((batch,), nd)
            )
        )
        for nv, nd in BRANCHES[guidance]
    ]
    caches = [EncoderDecoderCache(DynamicCache(), DynamicCache()) for _ in states]
    row = torch.full((batch, 1, streams), PAD)  # placeholder at step 0 (becomes the learned BOS)
    generated = []
    for step, heads in enumerate(original_head_lists(config.num_channels, num_frames)):
        hidden = [
            decoder(decoder.embed(row, step), state, cache=cache, past_length=step)[:, -1]
            for state, cache in zip(states, caches)
        ]
        row = torch.full((batch, 1, streams), PAD)
        for head in heads:
            logits = [model.heads[head](h) for h in hidden]
            if guidance == "none":
                logit = logits[0]
            elif guidance == "dual":
                logit = (
                    logits[0] + (logits[1] - logits[3]) * scale + (logits[2] - logits[3]) * direction_scale
                )
            else:
                s = direction_scale if guidance == "direction" else scale
                logit = logits[0] + (logits[0] - logits[1]) * s
            if do_sample:
                logit = logit.masked_fill(logit < torch.topk(logit, top_k)[0][..., -1, None], float("-inf"))
                row[:, 0, head] = torch.multinomial(logit.softmax(-1), num_samples=1)[:, 0]
            else:
                row[:, 0, head] = logit.argmax(-1)
        generated.append(row)
    codes = original_revert(torch.cat(generated, dim=1), config.num_channels)
    return codes.view(batch, config.num_channels, config.num_codebooks, num_frames)


# --------------------------------------------------------------------------------------------- KV cache


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_codes_are_the_teacher_forced_argmax(tiny_model, make_conditions, use_cache):
    """KV-cached step-by-step decoding must agree with one causal pass over the generated sequence."""
    model, config = tiny_model, tiny_model.config
    clip, energy, direction = make_conditions(config, batch=2, frames=1)
    codes = model.generate(
        clip, energy, direction, guidance="none", do_sample=False, num_frames=6, use_cache=use_cache
    )
    assert codes.shape == (2, 4, 9, 6)
    grid = config.code_pattern.build(codes.view(2, 36, 6), PAD)
    logits = model(clip, energy, direction, decoder_input_ids=shift_codes_right(grid, PAD)).logits
    live = config.code_pattern.live_mask(6)
    assert torch.equal(logits.argmax(-1)[:, live], grid[:, live])


def test_mono_greedy_codes_are_the_teacher_forced_argmax(tiny_mono_model, make_conditions):
    model, config = tiny_mono_model, tiny_mono_model.config
    clip, _, _ = make_conditions(config, batch=2, frames=1)
    codes = model.generate(clip, guidance="none", do_sample=False, num_frames=5)
    assert codes.shape == (2, 1, 9, 5)
    grid = config.code_pattern.build(codes.view(2, 9, 5), PAD)
    assert grid.shape[1] == 10  # 2T steps
    logits = model(clip, decoder_input_ids=shift_codes_right(grid, PAD)).logits
    live = config.code_pattern.live_mask(5)
    assert torch.equal(logits.argmax(-1)[:, live], grid[:, live])


# --------------------------------------------------------------------------------------------- guidance


@pytest.mark.parametrize("mode", ["corrected", "original"])
@pytest.mark.parametrize("guidance", ["joint", "dual", "visual", "direction", "none"])
def test_batched_branches_equal_separate_passes(tiny_model, make_conditions, guidance, mode):
    model = tiny_model
    clip, energy, direction = make_conditions(model.config, batch=2, frames=1, seed=3)
    ours = model.generate(
        clip, energy, direction, guidance=guidance, guidance_scale=2.5, direction_guidance_scale=1.5,
        do_sample=False, num_frames=4, mode=mode,
    )  # fmt: skip
    reference = reference_generate(model, clip, energy, direction, 4, guidance, 2.5, 1.5)
    assert torch.equal(ours, reference)


@pytest.mark.parametrize("guidance", ["joint", "dual"])
def test_plain_stacked_fast_path_gives_the_eager_greedy_codes(
    tiny_model, make_conditions, monkeypatch, guidance
):
    """Where oneDNN has no kernel for the dtype, generate still reads stacked weights (q/k/v, live heads, code
    tables) in inference mode with a preallocated cache; in fp32 its greedy codes equal the eager loop's."""
    from visage_hf.models.encoder_decoder import PackedLinear

    monkeypatch.setattr(PackedLinear, "supports", staticmethod(lambda weight: False))
    clip, energy, direction = make_conditions(tiny_model.config, batch=2, frames=1, seed=5)
    ours = tiny_model.generate(clip, energy, direction, guidance=guidance, do_sample=False, num_frames=4)
    reference = reference_generate(tiny_model, clip, energy, direction, 4, guidance, 2.5, 2.5)
    assert torch.equal(ours, reference)


def test_mono_guidance_equals_separate_passes(tiny_mono_model, make_conditions):
    clip, _, _ = make_conditions(tiny_mono_model.config, batch=2, frames=1)
    ours = tiny_mono_model.generate(clip, guidance="joint", guidance_scale=3.0, do_sample=False, num_frames=4)
    assert torch.equal(ours, reference_generate(tiny_mono_model, clip, None, None, 4, "joint", 3.0))


@pytest.mark.parametrize("guidance", ["joint", "dual"])
def test_scale_zero_is_the_conditional_model(tiny_model, make_conditions, guidance):
    clip, energy, direction = make_conditions(tiny_model.config, batch=2, frames=1, seed=5)
    conditional = tiny_model.generate(clip, energy, direction, guidance="none", do_sample=False, num_frames=5)
    guided = tiny_model.generate(
        clip, energy, direction, guidance=guidance, guidance_scale=0.0, direction_guidance_scale=0.0,
        do_sample=False, num_frames=5,
    )  # fmt: skip
    strong = tiny_model.generate(
        clip, energy, direction, guidance=guidance, guidance_scale=8.0, do_sample=False, num_frames=5
    )
    assert torch.equal(guided, conditional)
    assert not torch.equal(strong, conditional)


def test_guidance_formulas():
    stacked = torch.tensor([[1.0], [0.5], [0.25], [0.0]])
    assert GuidancePlan("dual", 2.0, 3.0).combine(stacked).item() == pytest.approx(
        1.0 + 2.0 * 0.5 + 3.0 * 0.25
    )
    assert GuidancePlan("joint", 2.5).combine(stacked[:2]).item() == pytest.approx(1.0 + 2.5 * 0.5)
    assert GuidancePlan("direction", 9.0, 2.0).combine(stacked[:2]).item() == pytest.approx(1.0 + 2.0 * 0.5)
    with pytest.raises(ValueError, match="branches"):
        GuidancePlan("joint").combine(stacked)
    with pytest.raises(ValueError, match="finite"):
        GuidancePlan("joint", float("nan"))


# --------------------------------------------------------------------------------------------- sampling


def test_original_mode_reproduces_the_originals_per_head_draws(tiny_model, make_conditions):
    clip, energy, direction = make_conditions(tiny_model.config, batch=2, frames=1, seed=7)
    torch.manual_seed(11)
    ours = tiny_model.generate(
        clip, energy, direction, do_sample=True, top_k=8, num_frames=4, mode="original"
    )
    torch.manual_seed(11)
    reference = reference_generate(tiny_model, clip, energy, direction, 4, do_sample=True, top_k=8)
    assert torch.equal(ours, reference)


def test_seeds_reproduce_and_differ(tiny_model, make_conditions):
    clip, energy, direction = make_conditions(tiny_model.config, batch=2, frames=1)
    kwargs = {"do_sample": True, "num_frames": 5}
    state = torch.get_rng_state()
    first = tiny_model.generate(clip, energy, direction, seed=1, **kwargs)
    assert torch.equal(torch.get_rng_state(), state)  # a private generator leaves the global RNG alone
    again = tiny_model.generate(clip, energy, direction, generator=torch.Generator().manual_seed(1), **kwargs)
    other = tiny_model.generate(clip, energy, direction, seed=2, **kwargs)
    assert torch.equal(first, again)
    assert (first != other).float().mean() > 0.5
    torch.manual_seed(5)
    global_a = tiny_model.generate(clip, energy, direction, **kwargs)
    torch.manual_seed(5)
    global_b = tiny_model.generate(clip, energy, direction, **kwargs)
    assert torch.equal(global_a, global_b)


@pytest.mark.parametrize("mode", ["corrected", "original"])
def test_one_generator_per_sequence_draws_what_each_sequence_draws_alone(tiny_model, make_conditions, mode):
    """Batch generation's per-clip seeds: with a generator per row, row i is exactly the codes of clip i
    generated alone with that seed, whatever the other rows are (both draw orders)."""
    clip, energy, direction = make_conditions(tiny_model.config, batch=3, frames=2)
    kwargs = {"do_sample": True, "num_frames": 5, "mode": mode}
    seeds = [11, 12, 13]
    batched = tiny_model.generate(
        clip, energy, direction, generator=[torch.Generator().manual_seed(seed) for seed in seeds], **kwargs
    )
    for row, seed in enumerate(seeds):
        alone = tiny_model.generate(clip[row : row + 1], energy[row : row + 1], direction[row : row + 1],
                                    seed=seed, **kwargs)  # fmt: skip
        assert torch.equal(batched[row : row + 1], alone)
    with pytest.raises(ValueError, match="one generator per sequence"):
        tiny_model.generate(clip, energy, direction, generator=[torch.Generator()], **kwargs)


def test_top_k_one_is_greedy_and_temperature_is_applied(tiny_model, make_conditions):
    clip, energy, direction = make_conditions(tiny_model.config, batch=1, frames=1)
    greedy = tiny_model.generate(clip, energy, direction, do_sample=False, num_frames=4)
    top1 = tiny_model.generate(clip, energy, direction, do_sample=True, top_k=1, seed=3, num_frames=4)
    cold = tiny_model.generate(
        clip, energy, direction, do_sample=True, top_k=0, temperature=1e-4, seed=3, num_frames=4
    )
    nucleus = tiny_model.generate(
        clip, energy, direction, do_sample=True, top_k=0, top_p=1e-6, seed=9, num_frames=4
    )
    assert torch.equal(top1, greedy)
    assert torch.equal(cold, greedy)
    assert torch.equal(nucleus, greedy)


def test_num_return_sequences_groups_samples_per_clip(tiny_model, make_conditions):
    clip, energy, direction = make_conditions(tiny_model.config, batch=2, frames=1)
    codes = tiny_model.generate(clip, energy, direction, num_return_sequences=3, seed=0, num_frames=3)
    assert codes.shape == (6, 4, 9, 3)
    assert not torch.equal(codes[0], codes[1])
    greedy = tiny_model.generate(
        clip, energy, direction, num_return_sequences=2, do_sample=False, num_frames=3
    )
    assert torch.equal(greedy[0], greedy[1]) and torch.equal(greedy[2], greedy[3])
    assert torch.equal(
        greedy[::2], tiny_model.generate(clip, energy, direction, do_sample=False, num_frames=3)
    )


# --------------------------------------------------------------------------------------------- pattern, prefix


class RecordingProcessor(LogitsProcessor):
    """Keeps generate's sequences as seen at the last step (every row but the final one)."""

    def __call__(self, input_ids, scores):
        self.last_input_ids = input_ids.clone()
        return scores


def test_pads_exactly_where_the_pattern_is_idle(tiny_model, make_conditions):
    config = tiny_model.config
    clip, energy, direction = make_conditions(config, batch=2, frames=1)
    recorder = RecordingProcessor()
    codes = tiny_model.generate(
        clip, energy, direction, seed=0, num_frames=5, logits_processor=LogitsProcessorList([recorder])
    )
    assert int(codes.max()) < 1024 and int(codes.min()) >= 0
    rows = recorder.last_input_ids[:, 1:]  # drop the start column: pattern rows 0 .. steps-2
    grid = rows.view(2, 36, -1).transpose(1, 2)
    live = config.code_pattern.live_mask(5)[: grid.shape[1]]
    assert bool((grid[:, ~live] == PAD).all())
    assert bool((grid[:, live] != PAD).all())


def test_pattern_processor_forces_known_cells_and_frees_the_rest():
    pattern_canvas = torch.tensor([[[PAD, -1, 7]]])  # batch 1, one step, three streams
    processor = CodePatternLogitsProcessor(pattern_canvas, PAD)
    scores = torch.randn(3, 1024)
    out = processor(torch.zeros(3, 1, dtype=torch.long), scores)
    assert out.shape == (3, 1025)
    assert torch.isfinite(out[0]).sum() == 1 and out[0, PAD] == 0
    assert torch.equal(out[1, :1024], scores[1]) and out[1, PAD] == float("-inf")
    assert torch.isfinite(out[2]).sum() == 1 and out[2, 7] == 0


@pytest.mark.parametrize("prefix_frames", [1, 2, 4])
def test_prefix_is_reproduced_and_greedy_continuation_is_consistent(
    tiny_model, make_conditions, prefix_frames
):
    clip, energy, direction = make_conditions(tiny_model.config, batch=2, frames=1, seed=2)
    full = tiny_model.generate(clip, energy, direction, do_sample=False, num_frames=5)
    continued = tiny_model.generate(
        clip, energy, direction, do_sample=False, num_frames=5, prefix_codes=full[..., :prefix_frames]
    )
    # the prefix is what greedy decoding would have produced, so the whole clip must come out unchanged
    assert torch.equal(continued, full)


def test_sampled_continuation_keeps_a_foreign_prefix(tiny_model, make_conditions):
    clip, energy, direction = make_conditions(tiny_model.config, batch=2, frames=1, seed=2)
    prefix = torch.randint(0, 1024, (2, 4, 9, 3), generator=torch.Generator().manual_seed(0))
    codes = tiny_model.generate(clip, energy, direction, seed=4, num_frames=6, prefix_codes=prefix)
    assert codes.shape == (2, 4, 9, 6)
    assert torch.equal(codes[..., :3], prefix)
    whole = tiny_model.generate(clip, energy, direction, num_frames=3, prefix_codes=prefix)
    assert torch.equal(whole, prefix)  # nothing left to generate


def test_canvas_prompt_covers_the_rows_the_prefix_fixes():
    from visage_hf.models.patterns import visage_pattern

    canvas = build_code_canvas(visage_pattern(), 1, 5, PAD, torch.zeros(1, 36, 2, dtype=torch.long))
    assert prompt_steps(canvas) == 4  # rows 0..3; row 4 holds frame 2's W coarse code
    assert canvas[0, 4, 0] == -1
    assert int((canvas[0, 4] == 0).sum()) == 24  # ... and frame 1's 24 fine spatial codes, known


# --------------------------------------------------------------------------------------------- modes


def test_original_mode_frame_count_and_last_frame_padding(tiny_model, make_conditions):
    clip, energy, direction = make_conditions(tiny_model.config, batch=1, frames=1)
    corrected = tiny_model.generate(clip, energy, direction, do_sample=False)
    original = tiny_model.generate(clip, energy, direction, do_sample=False, mode="original")
    assert corrected.shape[-1] == 44100 // 2048  # 21 whole frames in 0.25 s (21.53 true frames)
    assert original.shape[-1] == -(-int(1 / 4 * 44100) // 512)  # int(0.25 · 86) = 21 generated, padded to 22
    assert torch.equal(original[..., -1], original[..., -2])
    assert torch.equal(repeat_last_frame(original[..., :21], 22), original)
    assert torch.equal(original[..., :21], corrected)  # same frames: greedy, guidance only reordered


# --------------------------------------------------------------------------------------------- errors


def test_bad_generate_inputs_raise(tiny_model, tiny_mono_model, make_conditions):
    config = tiny_model.config
    clip, energy, direction = make_conditions(config, batch=2, frames=2)
    cases = [
        (dict(clip_features=clip[..., :10]), "clip_features"),
        (dict(clip_features=clip[0]), "clip_features"),
        (dict(energy_map=energy[..., :7]), "energy_map"),
        (dict(direction=direction[:1]), "direction"),
        (dict(clip_features=torch.randn(2, 9, 512), energy_map=torch.rand(2, 9, 49)), "at most 8"),
        (dict(clip_features=torch.randn(2, 4, 512), energy_map=torch.rand(2, 4, 49)), "decoder positions"),
        (dict(num_frames=100), "decoder positions"),
        (dict(guidance="stereo"), "guidance"),
        (dict(num_beams=2), "beam search"),
        (dict(max_new_tokens=5), "cannot be set"),
        (dict(guidance_scale=float("inf")), "finite"),
        (dict(top_k=-1), "top_k"),
        (dict(top_p=0.0), "top_p"),
        (dict(temperature=0.0), "temperature"),
        (dict(seed=1, generator=torch.Generator()), "either generator or seed"),
        (dict(num_return_sequences=0), "num_return_sequences"),
        (dict(prefix_codes=torch.zeros(2, 36, 3, dtype=torch.long)), "prefix_codes"),
        (dict(prefix_codes=torch.full((2, 4, 9, 3), 1024)), "prefix_codes"),
        (dict(prefix_codes=torch.zeros(2, 4, 9, 50, dtype=torch.long)), "more than"),
        (dict(mode="fast"), "mode"),
    ]
    base = dict(clip_features=clip, energy_map=energy, direction=direction, num_frames=None)
    for overrides, message in cases:
        kwargs = {**base, **overrides}
        if kwargs["num_frames"] is None:
            kwargs.pop("num_frames")
        with pytest.raises(ValueError, match=message):
            tiny_model.generate(**kwargs)
    with pytest.raises(ValueError, match="mono"):
        tiny_mono_model.generate(clip, direction=direction)
    with pytest.raises(ValueError, match="direction input"):
        tiny_mono_model.generate(clip, guidance="dual")


def test_cpu_fp32_generation_restores_the_weight_layout(tiny_model, make_conditions):
    # generate reads the decoder through packed weight copies while it runs (faster few-row products on CPU);
    # saving or training afterwards must see ordinary contiguous parameters with unchanged values.
    before = {name: tensor.clone() for name, tensor in tiny_model.state_dict().items()}
    clip, energy, direction = make_conditions(tiny_model.config, batch=1, frames=1)
    tiny_model.generate(clip, energy, direction, seed=0, num_frames=2)
    for name, tensor in tiny_model.state_dict().items():
        assert tensor.is_contiguous(), name
        assert torch.equal(tensor, before[name]), name


def test_bfloat16_logits_match_float32(tiny_model, make_conditions):
    """The bf16 path computes the same model as fp32, on any CPU (this one may lack native bf16: then torch
    emulates it and attention runs in fp32; no skip). Tolerance: bf16 keeps 8 mantissa bits (relative rounding
    2^-9 = 0.2% per operation); through the tiny model's 3 layers the measured error (AMD EPYC, AVX2, torch
    2.13) is 0.74% of the logits' norm and 4.5% of their standard deviation at worst. Bounds of 1.1% and 7% sit
    between that and a head-layout slip on the bf16-only attention path (1.5% and 9.4%, measured)."""
    import copy

    from tests.models.test_modeling import PAD, visage_labels
    from visage_hf.models.modeling_visage import shift_codes_right

    clip, energy, direction = make_conditions(tiny_model.config, batch=2, frames=1)
    inputs = shift_codes_right(visage_labels(frames=4), PAD)
    with torch.no_grad():
        full = tiny_model(clip, energy, direction, decoder_input_ids=inputs).logits
        half_model = copy.deepcopy(tiny_model).to(torch.bfloat16)
        half = half_model(clip, energy, direction, decoder_input_ids=inputs).logits
    assert half.dtype == torch.bfloat16
    error = (half.float() - full).abs()
    assert float(error.norm() / full.norm()) < 0.011
    assert float(error.max()) < 0.07 * float(full.std())


def test_bfloat16_generation_runs_and_is_deterministic(tiny_model, make_conditions):
    clip, energy, direction = make_conditions(tiny_model.config, batch=2, frames=1)
    full = tiny_model.generate(clip, energy, direction, do_sample=False, num_frames=3)
    half_model = tiny_model.to(torch.bfloat16)
    half = half_model.generate(clip, energy, direction, do_sample=False, num_frames=3)
    assert half.shape == full.shape and int(half.max()) < 1024 and int(half.min()) >= 0
    assert torch.equal(half, half_model.generate(clip, energy, direction, do_sample=False, num_frames=3))
    sampled = half_model.generate(clip, energy, direction, seed=0, num_frames=3)
    assert int(sampled.max()) < 1024


def test_generate_inspects_no_signature_per_step(tiny_model, make_conditions, monkeypatch):
    """transformers' generate asks for the processors' and (for auto-registered classes) forward's signatures at
    every step; ours are stored (`with_stored_signature`), so signatures are computed per call, not per step."""
    import inspect

    from visage_hf.models.generation import ProgressLogitsProcessor

    computed = []
    compute = inspect._signature_from_function
    monkeypatch.setattr(
        inspect, "_signature_from_function", lambda *a, **k: computed.append(a[1]) or compute(*a, **k)
    )
    clip, energy, direction = make_conditions(tiny_model.config, batch=1, frames=2)
    counts = []
    for num_frames in (2, 8):  # 5 and 17 steps
        computed.clear()
        bar = ProgressLogitsProcessor(total_steps=2 * num_frames + 1)
        tiny_model.generate(clip, energy, direction, seed=0, num_frames=num_frames, logits_processor=[bar])
        counts.append(len(computed))
    assert counts[0] == counts[1], f"signatures computed: {counts} for 5 and 17 steps"
    stored = inspect.signature(tiny_model.forward)
    # The real signature, ``self`` dropped.
    assert list(stored.parameters)[:3] == ["clip_features", "energy_map", "direction"]
