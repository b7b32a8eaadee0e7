"""VisageForFOA: parameter layout, forward/loss, nulls, init, caches, save/load and Auto classes."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from visage_hf.models.configuration_visage import VisageConfig
from visage_hf.models.generation import make_generation_cache
from visage_hf.models.modeling_visage import VisageForFOA, register_visage_auto_classes, shift_codes_right

PAD = 1024


def expected_state_dict_keys(config: VisageConfig) -> set[str]:
    """The agreed parameter layout (task brief), written out independently of the model code."""
    keys = {"null_clip_embedding"}
    if not config.is_mono:
        keys |= {"null_energy_embedding", "null_direction_embedding"}
    enc, dec = "model.encoder.", "model.decoder."
    keys |= {
        enc + "bos",
        enc + "eos",
        enc + "embed_positions.weight",
        dec + "bos",
        dec + "embed_positions.weight",
    }
    for prefix in (enc, dec):
        keys |= {prefix + f"layernorm_embedding.{p}" for p in ("weight", "bias")}
    keys |= {enc + f"clip_projection.{p}" for p in ("weight", "bias")}
    if not config.is_mono:
        for module in ("energy_projection", "direction_projection"):
            keys |= {enc + f"{module}.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")}
    attention = [
        f"{proj}.{p}" for proj in ("q_proj", "k_proj", "v_proj", "out_proj") for p in ("weight", "bias")
    ]
    block = [
        f"{m}.{p}"
        for m in ("self_attn_layer_norm", "fc1", "fc2", "final_layer_norm")
        for p in ("weight", "bias")
    ]
    for i in range(config.encoder_layers):
        keys |= {enc + f"layers.{i}.self_attn.{a}" for a in attention}
        keys |= {enc + f"layers.{i}.{b}" for b in block}
    for i in range(config.decoder_layers):
        keys |= {dec + f"layers.{i}.self_attn.{a}" for a in attention}
        keys |= {dec + f"layers.{i}.encoder_attn.{a}" for a in attention}
        keys |= {dec + f"layers.{i}.{b}" for b in block}
        keys |= {dec + f"layers.{i}.encoder_attn_layer_norm.{p}" for p in ("weight", "bias")}
    for j in range(config.num_streams):
        keys.add(dec + f"embed_codes.{j}.weight")
        keys |= {f"heads.{j}.{p}" for p in ("weight", "bias")}
    return keys


def test_state_dict_layout_is_the_agreed_one(tiny_model, tiny_mono_model):
    for model in (tiny_model, tiny_mono_model):
        state = model.state_dict()
        assert set(state) == expected_state_dict_keys(model.config)
    config = tiny_model.config
    state = tiny_model.state_dict()
    assert state["model.decoder.embed_codes.0.weight"].shape == (1088, config.d_model)
    assert state["model.decoder.embed_positions.weight"].shape == (
        config.max_target_positions + 2,
        config.d_model,
    )
    assert state["model.encoder.embed_positions.weight"].shape == (
        config.max_source_positions,
        config.d_model,
    )
    assert state["heads.35.weight"].shape == (1024, config.d_model)
    assert state["model.encoder.energy_projection.0.weight"].shape == (config.d_model, 49)
    assert state["model.encoder.direction_projection.0.weight"].shape == (config.d_model, 3)


def test_full_size_parameter_counts_match_the_original():
    """docs/original-implementation.md §1.7 / §11: 358,626,868 parameters minus the unused embed_spatial (4 × 1024); mono 298,052,096
    minus embed_spatial. Built on the meta device: no memory, no weights."""
    with torch.device("meta"):
        foa = VisageForFOA(VisageConfig())
        mono = VisageForFOA(VisageConfig(num_channels=1))
    assert sum(p.numel() for p in foa.parameters()) == 358_626_868 - 4096
    assert sum(p.numel() for p in mono.parameters()) == 298_052_096 - 4096
    assert len(foa.state_dict()) == 539 - 1
    assert len(mono.state_dict()) == 448 - 1


def test_initialisation(tiny_config):
    torch.manual_seed(0)
    model = VisageForFOA(tiny_config)
    for name in ("null_clip_embedding", "null_energy_embedding", "null_direction_embedding"):
        assert torch.count_nonzero(getattr(model, name)) == 0
    for vector in (model.model.encoder.bos, model.model.encoder.eos, model.model.decoder.bos):
        assert torch.count_nonzero(vector) == 0
    for table in model.model.decoder.embed_codes:
        assert torch.count_nonzero(table.weight[PAD]) == 0
    weight = model.heads[3].weight
    assert weight.std().item() == pytest.approx(tiny_config.init_std, rel=0.05)
    assert torch.count_nonzero(model.heads[3].bias) == 0


def test_forward_shapes_and_initial_loss(tiny_model, make_conditions):
    config = tiny_model.config
    clip, energy, direction = make_conditions(config, batch=2, frames=2)
    frames = config.frames_for_video_frames(2)
    codes = torch.randint(0, 1024, (2, 36, frames))
    labels = config.code_pattern.build(codes, PAD)
    out = tiny_model(clip, energy, direction, labels=labels)
    assert out.logits.shape == (2, 2 * frames + 1, 36, 1024)
    assert out.encoder_last_hidden_state.shape == (2, 2 + 2, config.d_model)
    assert out.stream_losses.shape == (36,)
    # Random init predicts ~uniformly: 36 · ln 1024 = 249.5 (original measured 249.9–250.0)
    assert out.loss.item() == pytest.approx(36 * math.log(1024), rel=0.02)
    assert torch.allclose(out.loss, out.stream_losses.sum())


def hand_computed_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum over streams of the mean CE over the stream's valid cells (pads and -100 excluded), by loops."""
    total = torch.zeros(())
    for stream in range(labels.shape[-1]):
        terms = []
        for b in range(labels.shape[0]):
            for row in range(labels.shape[1]):
                target = int(labels[b, row, stream])
                if target in (-100, PAD):
                    continue
                row_logits = logits[b, row, stream].double()
                terms.append(torch.logsumexp(row_logits, 0) - row_logits[target])
        if terms:
            total = total + torch.stack(terms).mean()
    return total


def test_loss_is_sum_of_per_stream_means_and_ignores_pads(tiny_model):
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 36, 1024)
    labels = visage_labels(frames=3)  # 7 rows, pads where the pattern is idle
    labels[1, 3, 5] = -100  # an extra ignored cell
    labels[:, :, 20] = -100  # a stream with no labels contributes 0
    losses = tiny_model.stream_losses(logits, labels)
    assert losses[20] == 0
    assert losses.sum().item() == pytest.approx(hand_computed_loss(logits, labels).item(), rel=1e-6)

    changed = logits.clone()
    ignored = (labels == PAD) | (labels == -100)
    changed[ignored] = torch.randn(int(ignored.sum()), 1024) * 10
    assert torch.allclose(tiny_model.stream_losses(changed, labels), losses)
    relabelled = labels.masked_fill(labels == PAD, -100)
    assert torch.allclose(tiny_model.stream_losses(logits, relabelled), losses)


def visage_labels(frames: int, batch: int = 2) -> torch.Tensor:
    config = VisageConfig.tiny()
    codes = torch.randint(0, 1024, (batch, 36, frames), generator=torch.Generator().manual_seed(frames))
    return config.code_pattern.build(codes, PAD)


def test_forward_loss_equals_cross_entropy_of_its_logits(tiny_model, make_conditions):
    clip, energy, direction = make_conditions(tiny_model.config, batch=2, frames=1)
    labels = visage_labels(frames=4)
    out = tiny_model(clip, energy, direction, labels=labels)
    assert out.loss.item() == pytest.approx(hand_computed_loss(out.logits.detach(), labels).item(), rel=1e-5)


def test_decoder_input_is_labels_shifted_right(tiny_model, make_conditions):
    clip, energy, direction = make_conditions(tiny_model.config, batch=2, frames=1)
    labels = visage_labels(frames=3)
    shifted = shift_codes_right(labels.masked_fill(labels == PAD, -100), PAD)
    assert torch.equal(shifted[:, 1:], labels[:, :-1])
    from_labels = tiny_model(clip, energy, direction, labels=labels).logits
    explicit = tiny_model(clip, energy, direction, decoder_input_ids=shifted).logits
    assert torch.allclose(from_labels, explicit)


def test_null_masks_replace_conditions_per_sample(tiny_model, make_conditions):
    model = tiny_model
    clip, energy, direction = make_conditions(model.config, batch=3, frames=2)
    null_visual = torch.tensor([True, False, False])
    null_direction = torch.tensor([False, True, False])
    nulled = model.encode(clip, energy, direction, null_visual, null_direction).last_hidden_state

    manual_clip, manual_energy, manual_direction = clip.clone(), energy.clone(), direction.clone()
    manual_clip[0] = model.null_clip_embedding.detach()
    manual_energy[0] = model.null_energy_embedding.detach()
    manual_direction[1] = model.null_direction_embedding.detach()
    expected = model.encode(manual_clip, manual_energy, manual_direction).last_hidden_state
    assert torch.allclose(nulled, expected, atol=1e-6)
    plain = model.encode(clip, energy, direction).last_hidden_state
    assert torch.allclose(nulled[2], plain[2])
    assert not torch.allclose(nulled[0], plain[0])


def test_positions_use_bart_offset_and_encoder_bos_eos_have_none(tiny_model, make_conditions):
    model = tiny_model
    clip, energy, direction = make_conditions(model.config, batch=1, frames=2)
    labels = visage_labels(frames=2, batch=1)
    before = model(clip, energy, direction, labels=labels).logits
    with torch.no_grad():
        model.model.decoder.embed_positions.weight[:2] += 5.0  # rows 0 and 1 are never read
        model.model.encoder.embed_positions.weight[2:] += 5.0  # only frames 0..T-1 have positions
    after = model(clip, energy, direction, labels=labels).logits
    assert torch.allclose(before, after)


@pytest.mark.parametrize("split", [1, 3, 6])
def test_cached_chunks_equal_full_teacher_forcing(tiny_model, make_conditions, split):
    """KV cache: feeding rows in two chunks (the second attends to the first through the cache, with a
    bottom-right causal mask) equals one causal pass; for both cache kinds."""
    model = tiny_model
    clip, energy, direction = make_conditions(model.config, batch=2, frames=1)
    inputs = shift_codes_right(visage_labels(frames=4), PAD)
    full = model(clip, energy, direction, decoder_input_ids=inputs, use_cache=False).logits
    for cache in (make_generation_cache(model.config), EncoderDecoderCache(DynamicCache(), DynamicCache())):
        first = model(
            clip, energy, direction, decoder_input_ids=inputs[:, :split], cache=cache, use_cache=True
        )
        second = model(
            clip, energy, direction, decoder_input_ids=inputs[:, split:], cache=first.cache, use_cache=True
        )
        assert torch.allclose(torch.cat([first.logits, second.logits], dim=1), full, atol=1e-5)


def test_save_load_round_trip_keeps_weights_nulls_and_generation_defaults(
    tiny_model, tmp_path, make_conditions
):
    model = tiny_model
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = VisageForFOA.from_pretrained(tmp_path).eval()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert loaded.generation_config.top_k == 256
    assert loaded.generation_config.do_sample is True
    assert loaded.generation_config.guidance_mode == "joint"
    assert loaded.generation_config.cfg_guidance_scale == 2.5
    clip, energy, direction = make_conditions(model.config, batch=1, frames=1)
    labels = visage_labels(frames=2, batch=1)
    assert torch.allclose(
        model(clip, energy, direction, labels=labels).loss,
        loaded(clip, energy, direction, labels=labels).loss,
    )


def test_auto_class_round_trip(tiny_model, tmp_path):
    register_visage_auto_classes()
    register_visage_auto_classes()  # idempotent
    tiny_model.save_pretrained(tmp_path)
    assert type(AutoConfig.from_pretrained(tmp_path)) is VisageConfig
    for auto in (AutoModel, AutoModelForSeq2SeqLM):
        loaded = auto.from_pretrained(tmp_path)
        assert type(loaded) is VisageForFOA
        assert torch.equal(loaded.null_direction_embedding, tiny_model.null_direction_embedding)
    # register_for_auto_class: the folder carries an auto_map and the code for trust_remote_code users
    config_json = (tmp_path / "config.json").read_text()
    assert '"auto_map"' in config_json
    assert (tmp_path / "modeling_visage.py").exists()
    assert (tmp_path / "row_kernels.py").exists()  # imported by encoder_decoder.py and quantization.py
    assert (tmp_path / "fused_step.py").exists()  # imported by encoder_decoder.py
    assert (tmp_path / "kv_cache.py").exists()  # imported by generation.py and fused_step.py


def test_gradient_checkpointing_gives_the_same_gradients(tiny_config, make_conditions):
    clip, energy, direction = make_conditions(tiny_config, batch=2, frames=1)
    labels = visage_labels(frames=2)
    gradients, recomputed = [], []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = VisageForFOA(tiny_config).train()
        if checkpointing:
            model.activation_checkpointing_enable()
        # Checkpointing is really on: each layer runs a second time during backward (recomputation). transformers
        # checkpoints the layer's `forward`, so a hook on a sub-module (its self-attention) sees the replay.
        calls = []
        layers = [*model.model.encoder.layers, *model.model.decoder.layers]
        hooks = [layer.self_attn.register_forward_hook(lambda *_, c=calls: c.append(1)) for layer in layers]
        loss = model(clip, energy, direction, labels=labels).loss
        forward_calls = len(calls)
        loss.backward()
        recomputed.append(len(calls) - forward_calls)
        for hook in hooks:
            hook.remove()
        gradients.append(model.model.encoder.clip_projection.weight.grad.clone())
    assert recomputed == [0, len(layers)], recomputed
    assert torch.allclose(gradients[0], gradients[1], atol=1e-6)


def test_pad_embedding_gets_no_gradient(tiny_config, make_conditions):
    torch.manual_seed(0)
    model = VisageForFOA(tiny_config).train()
    clip, energy, direction = make_conditions(tiny_config, batch=2, frames=1)
    model(clip, energy, direction, labels=visage_labels(frames=2)).loss.backward()
    assert torch.count_nonzero(model.model.decoder.embed_codes[4].weight.grad[PAD]) == 0
    assert model.null_clip_embedding.grad is None or torch.count_nonzero(model.null_clip_embedding.grad) == 0


def test_init_spatial_from_mono_copies_w_into_yzx(tiny_model):
    model = tiny_model
    model.init_spatial_from_mono()
    for stream in range(9, 36):
        source = stream % 9
        assert torch.equal(model.heads[stream].weight, model.heads[source].weight)
        assert torch.equal(model.heads[stream].bias, model.heads[source].bias)
        assert torch.equal(
            model.model.decoder.embed_codes[stream].weight, model.model.decoder.embed_codes[source].weight
        )


def test_foa_model_from_mono_checkpoint(tiny_mono_model, tmp_path):
    tiny_mono_model.save_pretrained(tmp_path)
    foa = VisageForFOA.from_mono_pretrained(str(tmp_path))
    assert foa.config.num_channels == 4
    mono_state = tiny_mono_model.state_dict()
    foa_state = foa.state_dict()
    for name, tensor in mono_state.items():
        assert torch.equal(foa_state[name], tensor), name
    assert torch.equal(
        foa.model.decoder.embed_codes[27].weight, mono_state["model.decoder.embed_codes.0.weight"]
    )
    assert torch.equal(foa.heads[35].weight, mono_state["heads.8.weight"])
    assert torch.count_nonzero(foa.null_energy_embedding) == 0
    assert torch.count_nonzero(foa.null_direction_embedding) == 0
    with pytest.raises(ValueError, match="mono"):
        VisageForFOA.from_mono_pretrained(foa)
    with pytest.raises(ValueError, match="FOA"):
        tiny_mono_model.init_spatial_from_mono()


def test_bfloat16_forward_runs(tiny_model, make_conditions):
    model = tiny_model.to(torch.bfloat16)
    clip, energy, direction = make_conditions(model.config, batch=1, frames=1)
    out = model(clip, energy, direction, labels=visage_labels(frames=2, batch=1))
    assert out.logits.dtype == torch.bfloat16
    assert torch.isfinite(out.loss)


def test_bad_forward_inputs_raise(tiny_model, tiny_mono_model, make_conditions):
    config = tiny_model.config
    clip, energy, direction = make_conditions(config, batch=2, frames=2)
    labels = visage_labels(frames=2)
    with pytest.raises(ValueError, match="clip_features"):
        tiny_model(clip[..., :100], energy, direction, labels=labels)
    with pytest.raises(ValueError, match="energy_map"):
        tiny_model(clip, energy[:, :1], direction, labels=labels)
    with pytest.raises(ValueError, match="direction"):
        tiny_model(clip, energy, direction[:, :2], labels=labels)
    with pytest.raises(ValueError, match="energy_map"):
        tiny_model(clip, None, direction, labels=labels)
    with pytest.raises(ValueError, match="at most 8"):
        big = torch.randn(2, 9, 512)
        tiny_model(big, torch.rand(2, 9, 49), direction, labels=labels)
    with pytest.raises(ValueError, match="decoder_input_ids"):
        tiny_model(clip, energy, direction, decoder_input_ids=labels[..., :9])
    with pytest.raises(ValueError, match="decoder codes"):
        tiny_model(clip, energy, direction, decoder_input_ids=labels.masked_fill(labels == PAD, -5))
    with pytest.raises(ValueError, match="null_visual"):
        tiny_model(clip, energy, direction, labels=labels, null_visual=torch.tensor([True]))
    with pytest.raises(ValueError, match="mono"):
        tiny_mono_model(clip, energy, direction, labels=labels[..., :9])
    with pytest.raises(ValueError, match="max_target_positions"):
        long_inputs = torch.full((1, config.max_target_positions + 1, 36), PAD)
        tiny_model(clip[:1], energy[:1], direction[:1], decoder_input_ids=long_inputs)
