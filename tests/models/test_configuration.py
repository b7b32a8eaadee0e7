"""VisageConfig: the original's hyper-parameters (docs/original-implementation.md §1.2), frame arithmetic, validation, round trips."""

from __future__ import annotations

import math

import pytest
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

from visage_hf.models.configuration_visage import VisageConfig


def test_defaults_are_the_released_model():
    config = VisageConfig()
    expected = {
        "d_model": 1024,
        "encoder_layers": 6,
        "decoder_layers": 12,
        "encoder_attention_heads": 16,
        "decoder_attention_heads": 16,
        "encoder_ffn_dim": 4096,
        "decoder_ffn_dim": 4096,
        "activation_function": "gelu",
        "dropout": 0.1,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "init_std": 0.02,
        "layer_norm_eps": 1e-5,
        "clip_dim": 512,
        "energy_map_dim": 49,
        "direction_dim": 3,
        "num_channels": 4,
        "num_codebooks": 9,
        "codebook_size": 1024,
        "code_pad_id": 1024,
        "code_embedding_rows": 1088,
        "max_source_positions": 20,
        "max_target_positions": 861,
        "sample_rate": 44100,
        "hop_length": 512,
        "video_fps": 4,
        "pattern": "visage",
        "mode": "corrected",
        "visual_dropout_prob": 0.1,
        "direction_dropout_prob": 0.1,
    }
    assert {key: getattr(config, key) for key in expected} == expected
    assert config.num_streams == 36
    assert config.code_embedding_rows == math.ceil((config.codebook_size + 1) / 64) * 64
    assert config.is_encoder_decoder


def test_model_type_is_own_and_not_a_transformers_builtin():
    assert VisageConfig.model_type == "visage"
    assert "visage" not in CONFIG_MAPPING_NAMES


def test_codec_frame_rates():
    config = VisageConfig()
    assert config.codec_frame_rate == pytest.approx(86.1328125)
    assert config.original_codec_frame_rate == 86


@pytest.mark.parametrize("video_frames", [1, 2, 3, 7, 10, 19, 20])
def test_frames_for_video_frames_both_modes(video_frames):
    config = VisageConfig()
    # corrected: whole codec frames inside T/4 s, in exact integers: floor(T · 44100 / (4 · 512))
    assert config.frames_for_video_frames(video_frames) == video_frames * 44100 // 2048
    # original: int(T / 4 · 86)
    assert config.frames_for_video_frames(video_frames, "original") == int(video_frames / 4 * 86)


def test_five_second_anchors():
    """docs/original-implementation.md §2.3 / §11: 430 generated frames, 861 pattern rows, 431 frames = 220,672 samples output."""
    config = VisageConfig()
    assert config.frames_for_video_frames(20) == 430
    assert config.frames_for_video_frames(20, "original") == 430
    assert config.pattern_steps(430) == 861
    assert config.output_frames_for_video_frames(20, "original") == 431
    assert config.output_frames_for_video_frames(20) == 430
    assert config.samples_for_frames(431) == 220_672
    assert config.max_frames == 430
    assert config.max_duration == 5.0
    assert config.frames_for_duration(5.0) == 430
    assert config.seconds_for_frames(430) == pytest.approx(430 * 512 / 44100)


def test_integer_rate_drift_is_what_corrected_mode_fixes():
    config = VisageConfig()
    # 19 video frames = 4.75 s: 409.1 true frames; the original's 86 frames/s gives 408.
    assert config.frames_for_video_frames(19) == 409
    assert config.frames_for_video_frames(19, "original") == 408
    # a minute of audio: 5167.97 true frames; the integer rate falls 7 whole frames (81 ms) behind
    assert config.frames_for_duration(60.0) == 5167
    assert config.frames_for_duration(60.0) - config.frames_for_duration(60.0, "original") == 7


def test_mono_variant():
    config = VisageConfig(num_channels=1)
    assert config.num_streams == 9
    assert config.is_mono
    assert config.pattern_steps(430) == 860


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"num_channels": 2}, "num_channels"),
        ({"mode": "faithful"}, "mode"),
        ({"pattern": "zigzag"}, "pattern"),
        ({"d_model": 1000}, "divisible"),
        ({"code_pad_id": 100}, "outside the codebook"),
        ({"code_embedding_rows": 1024}, "code_embedding_rows"),
        ({"hop_length": 0}, "hop_length"),
        ({"dropout": 1.5}, "probability"),
        ({"activation_function": "swishy"}, "activation"),
        ({"pattern": "custom"}, "pattern_delays"),
        ({"max_target_positions": 2}, "cannot hold even one frame"),
        ({"video_fps": 0}, "video_fps"),
    ],
)
def test_invalid_configs_raise(overrides, message):
    with pytest.raises(ValueError, match=message):
        VisageConfig(**overrides)


def test_bad_arithmetic_arguments_raise():
    config = VisageConfig()
    with pytest.raises(ValueError, match="num_video_frames"):
        config.frames_for_video_frames(0)
    with pytest.raises(ValueError, match="duration"):
        config.frames_for_duration(-1.0)
    with pytest.raises(ValueError, match="mode"):
        config.frames_for_video_frames(20, "fast")


def test_save_load_round_trip(tmp_path):
    config = VisageConfig.tiny(pattern="delay", mode="original")
    config.save_pretrained(tmp_path)
    loaded = VisageConfig.from_pretrained(tmp_path)
    assert loaded.model_type == "visage"
    for key in ("d_model", "decoder_layers", "pattern", "mode", "max_target_positions", "num_channels"):
        assert getattr(loaded, key) == getattr(config, key)
    assert loaded.code_pattern == config.code_pattern


def test_generation_settings_are_not_model_config_fields():
    # transformers drops generation parameters from model configs; they live in generation_config
    assert not hasattr(VisageConfig(), "top_k") or VisageConfig().to_dict().get("top_k") is None
