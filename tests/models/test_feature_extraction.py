"""Tests for visage_hf.models.feature_extraction_visage: the patchwise energy map against a naive loop written from the reference
text (docs/original-implementation.md §7, anchors §11), CLIP embeddings against a direct call of the
transformers model on pixels preprocessed by hand, and the processor's loading, batching and errors."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModelWithProjection

from visage_hf.models.feature_extraction_visage import (
    VisageFeatureExtractor,
    encode_frames,
    patch_energy_map,
    patch_novelty_scores,
    validate_frames,
)

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711])


# --------------------------------------------------------------------------------------------------------
# Naive reference: loops over frames, patches and neighbours, straight from the reference text
# --------------------------------------------------------------------------------------------------------


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = math.sqrt(float(np.sum(vector * vector)))
    return vector / norm if norm > 0 else np.zeros_like(vector)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return math.sqrt(float(np.sum((a - b) ** 2)))


def _softmax(scores: list[float], temperature: float) -> list[float]:
    finite = [score for score in scores if score != -math.inf]
    peak = max(finite) / temperature
    exps = [0.0 if score == -math.inf else math.exp(score / temperature - peak) for score in scores]
    total = sum(exps)
    return [value / total for value in exps]


def naive_energy_map(tokens: np.ndarray, temperature: float = 0.1, top_p: float = 0.7) -> np.ndarray:
    """tokens (T, 1 + P, D): CLS then P = g×g patches row-major. Returns (T, P) float64."""
    frames, patches = tokens.shape[0], tokens[:, 1:]
    num_patches = patches.shape[1]
    side = round(math.sqrt(num_patches))
    energy = np.zeros((frames, num_patches))
    for t in range(frames):
        spatial, temporal = [], []
        for p in range(num_patches):
            row, col = divmod(p, side)
            own = _unit(patches[t, p])
            neighbours = [
                patches[t, r * side + c]
                for r, c in ((row - 1, col), (row + 1, col), (row, col - 1), (row, col + 1))
                if 0 <= r < side and 0 <= c < side
            ]
            spatial_mean = sum(neighbours) / len(neighbours) if neighbours else np.zeros_like(own)
            spatial.append(_distance(own, _unit(spatial_mean)))
            in_time = [patches[u, p] for u in (t - 1, t + 1) if 0 <= u < frames]
            temporal_mean = sum(in_time) / len(in_time) if in_time else np.zeros_like(own)
            temporal.append(_distance(own, _unit(temporal_mean)))

        first = [(a + b) / 2 for a, b in zip(_softmax(spatial, temperature), _softmax(temporal, temperature))]
        cumulative, removed = 0.0, set()
        for p in sorted(range(num_patches), key=lambda index: first[index]):
            cumulative += first[p]
            if cumulative <= 1 - top_p:
                removed.add(p)
        spatial = [-math.inf if p in removed else s for p, s in enumerate(spatial)]
        temporal = [-math.inf if p in removed else s for p, s in enumerate(temporal)]
        final = [(a + b) / 2 for a, b in zip(_softmax(spatial, temperature), _softmax(temporal, temperature))]
        energy[t] = final
    return energy


# --------------------------------------------------------------------------------------------------------
# Energy map
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frames", "side", "dim"), [(1, 7, 32), (2, 7, 32), (5, 4, 16), (20, 7, 48), (5, 3, 8), (3, 1, 8)]
)
def test_energy_map_matches_naive_loop(frames, side, dim):
    generator = torch.Generator().manual_seed(frames * 100 + side)
    tokens = torch.randn(frames, 1 + side * side, dim, generator=generator, dtype=torch.float64)
    expected = naive_energy_map(tokens.numpy())

    in_float64 = patch_energy_map(tokens)
    assert in_float64.dtype == torch.float64
    np.testing.assert_allclose(in_float64.numpy(), expected, rtol=0, atol=1e-12)

    in_float32 = patch_energy_map(tokens.float())
    assert in_float32.dtype == torch.float32 and in_float32.shape == (frames, side * side)
    np.testing.assert_allclose(in_float32.numpy(), expected, rtol=0, atol=1e-6)
    # Filtered patches are exactly zero in both.
    np.testing.assert_array_equal(in_float32.numpy() == 0, expected == 0)


def test_batched_energy_map_keeps_clips_apart():
    """(batch, T, ...) equals each clip on its own: time neighbours never cross from one clip to the next."""
    tokens = torch.randn(3, 5, 1 + 16, 24, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    batched = patch_energy_map(tokens)
    assert batched.shape == (3, 5, 16)
    for clip in range(3):
        np.testing.assert_allclose(batched[clip].numpy(), naive_energy_map(tokens[clip].numpy()), atol=1e-12)


def test_energy_map_anchors_on_random_features():
    """docs/original-implementation.md §11: rows sum to 1, about 17–18 of 49 patches exactly zero on random ViT-B/32-sized tokens."""
    tokens = torch.randn(20, 50, 768, generator=torch.Generator().manual_seed(0))
    energy = patch_energy_map(tokens)
    np.testing.assert_allclose(energy.sum(-1).numpy(), 1.0, atol=1e-5)
    zeros_per_frame = (energy == 0).sum(-1).float()
    assert 16.5 <= zeros_per_frame.mean().item() <= 18.5
    assert (energy[energy != 0] > 0).all()


def test_single_frame_temporal_score_is_one():
    tokens = torch.randn(1, 1, 7, 7, 32, generator=torch.Generator().manual_seed(2))
    spatial, temporal = patch_novelty_scores(tokens)
    torch.testing.assert_close(temporal, torch.ones(1, 1, 7, 7), rtol=0, atol=1e-6)
    assert (spatial < 2).all() and (spatial > 0).all()


def test_unit_distance_is_sqrt_two_minus_two_cosine():
    """docs/original-implementation.md §7: the score equals √(2 − 2·cos) between a token and its neighbours' mean."""
    tokens = torch.randn(1, 2, 3, 3, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    _, temporal = patch_novelty_scores(tokens)
    cosine = torch.nn.functional.cosine_similarity(tokens[0, 0], tokens[0, 1], dim=-1)
    torch.testing.assert_close(temporal[0], torch.sqrt(2 - 2 * cosine).expand(2, 3, 3))


def test_top_p_one_keeps_every_patch():
    tokens = torch.randn(4, 1 + 49, 16, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    energy = patch_energy_map(tokens, top_p=1.0)
    assert (energy > 0).all()
    np.testing.assert_allclose(energy.numpy(), naive_energy_map(tokens.numpy(), top_p=1.0), atol=1e-12)


@pytest.mark.parametrize(
    "tokens",
    [torch.zeros(4, 1 + 48, 8), torch.zeros(4, 50), torch.zeros(0, 50, 8), torch.zeros(1, 1, 1, 50, 8)],
    ids=["not-square", "no-feature-dim", "no-frames", "5d"],
)
def test_energy_map_rejects_bad_tokens(tokens):
    with pytest.raises(ValueError, match="tokens"):
        patch_energy_map(tokens)


# --------------------------------------------------------------------------------------------------------
# CLIP embeddings
# --------------------------------------------------------------------------------------------------------


def _save_tiny_clip(folder, image_size: int, patch_size: int) -> None:
    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=16,
    )
    CLIPVisionModelWithProjection(config).save_pretrained(folder)
    processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor.save_pretrained(folder)


@pytest.fixture(scope="module")
def clip_7x7(tmp_path_factory):
    """Tiny random CLIP with the real geometry: 224 px, 32-px patches, a 7×7 grid."""
    folder = tmp_path_factory.mktemp("clip_7x7")
    _save_tiny_clip(folder, image_size=224, patch_size=32)
    return folder


@pytest.fixture(scope="module")
def clip_4x4(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip_4x4")
    _save_tiny_clip(folder, image_size=64, patch_size=16)
    return folder


def _random_frames(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _manual_pixels(frames: np.ndarray, size: int) -> torch.Tensor:
    """The original's preprocessing (data/infer_clip.py), by hand: short side to ``size`` with the long side
    ``size·long // short``, centre crop at ``(side − size) // 2``, /255, CLIP mean/std. Resizing uses PIL
    bicubic, the kernel the package documents for frames that need it."""
    height, width = frames.shape[1:3]
    new_width = size if width < height else size * width // height
    new_height = size if width >= height else size * height // width
    top, left = (new_height - size) // 2, (new_width - size) // 2
    pixels = []
    for frame in frames:
        if (new_height, new_width) != (height, width):
            frame = np.asarray(Image.fromarray(frame).resize((new_width, new_height), Image.BICUBIC))
        crop = frame[top : top + size, left : left + size].astype(np.float64) / 255
        pixels.append(((crop - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1))
    return torch.tensor(np.stack(pixels), dtype=torch.float32)


def test_clip_features_match_direct_model_call(clip_7x7):
    """224-px-high, wider frames: the processor crops the centre; compare with the HF model called directly."""
    frames = _random_frames((5, 224, 300, 3))
    extractor = VisageFeatureExtractor.from_pretrained(clip_7x7)
    inputs = extractor(frames, azimuth=0.0, elevation=0.0)

    model = CLIPVisionModelWithProjection.from_pretrained(clip_7x7).eval()
    with torch.no_grad():
        direct = model(pixel_values=_manual_pixels(frames, 224))
    assert inputs["clip_features"].shape == (1, 5, 16)
    assert inputs["energy_map"].shape == (1, 5, 49)
    torch.testing.assert_close(inputs["clip_features"][0], direct.image_embeds, rtol=1e-4, atol=1e-5)
    expected_energy = naive_energy_map(direct.last_hidden_state.double().numpy())
    np.testing.assert_allclose(inputs["energy_map"][0].numpy(), expected_energy, atol=1e-5)


def test_image_embeds_are_projected_post_layernorm_cls(clip_7x7):
    """``image_embeds`` = proj(post_layernorm(CLS of last_hidden_state)), i.e. OpenAI ``encode_image``; the
    energy map's tokens are the un-normed ``last_hidden_state`` (OpenAI's tokens before ``ln_post``)."""
    model = CLIPVisionModelWithProjection.from_pretrained(clip_7x7).eval()
    frames = _random_frames((3, 224, 224, 3), seed=5)
    embeds, tokens = encode_frames(model, CLIPImageProcessorPil.from_pretrained(clip_7x7), frames)
    with torch.no_grad():
        cls = model.vision_model.post_layernorm(tokens[0, :, 0])
        torch.testing.assert_close(embeds[0], model.visual_projection(cls), rtol=1e-5, atol=1e-6)
    assert tokens.shape == (1, 3, 50, 32)
    assert not torch.allclose(tokens[0, :, 0], cls)  # really before the layer norm


@pytest.mark.parametrize(
    "shape", [(2, 90, 120, 3), (2, 120, 90, 3), (2, 64, 64, 3)], ids=["landscape", "portrait", "exact"]
)
def test_resize_follows_the_original_size_rule(clip_4x4, shape):
    frames = _random_frames(shape, seed=sum(shape))
    extractor = VisageFeatureExtractor.from_pretrained(clip_4x4)
    embeds, _ = encode_frames(extractor.image_encoder, extractor.image_processor, frames)
    with torch.no_grad():
        direct = extractor.image_encoder(pixel_values=_manual_pixels(frames, 64)).image_embeds
    torch.testing.assert_close(embeds[0], direct, rtol=1e-4, atol=1e-5)


def test_chunked_batches_equal_one_batch(clip_4x4):
    clips = _random_frames((2, 5, 64, 80, 3), seed=7)
    chunked = VisageFeatureExtractor.from_pretrained(clip_4x4, batch_size=3)
    whole = VisageFeatureExtractor.from_pretrained(clip_4x4, batch_size=64)
    a = chunked(clips, azimuth=[10.0, -20.0], elevation=5.0)
    b = whole(clips, azimuth=[10.0, -20.0], elevation=5.0)
    for key in ("clip_features", "energy_map", "direction"):
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    # Each clip equals the clip processed alone (no mixing across the batch).
    alone = whole(clips[1], azimuth=-20.0, elevation=5.0)
    torch.testing.assert_close(a["clip_features"][1:], alone["clip_features"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a["energy_map"][1:], alone["energy_map"], rtol=1e-5, atol=1e-6)


def test_direction_is_the_camera_frame_vector(clip_4x4):
    """Camera frame (x image-right, y image-down, z forward), docs/original-implementation.md §5.5: front -> (0, 0, 1); a camera
    looking left (+90° azimuth) -> x = −1; looking up -> y = −1."""
    extractor = VisageFeatureExtractor.from_pretrained(clip_4x4)
    clips = _random_frames((3, 1, 64, 64, 3))
    direction = extractor(clips, azimuth=[0.0, 90.0, 0.0], elevation=[0.0, 0.0, 90.0])["direction"]
    expected = torch.tensor([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    assert direction.dtype == torch.float32 and direction.shape == (3, 3)
    torch.testing.assert_close(direction, expected, rtol=0, atol=1e-6)


def test_save_and_reload_without_warnings(clip_4x4, tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        extractor = VisageFeatureExtractor.from_pretrained(clip_4x4, energy_top_p=0.6, mode="original")
        extractor.save_pretrained(tmp_path / "saved")
        reloaded = VisageFeatureExtractor.from_pretrained(tmp_path / "saved")
    assert [str(w.message) for w in caught] == []
    assert isinstance(reloaded.image_processor, CLIPImageProcessorPil)
    assert reloaded.settings == {
        "batch_size": 32,
        "energy_temperature": 0.1,
        "energy_top_p": 0.6,
        "mode": "original",
    }
    assert not any(path.name.startswith(".tmp") for path in (tmp_path / "saved").iterdir())
    frames = _random_frames((4, 64, 64, 3), seed=3)
    first, second = extractor(frames, 30.0, 10.0), reloaded(frames, 30.0, 10.0)
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0)


def test_original_mode_rounds_features_through_float16(clip_4x4):
    """The original stored CLIP features and patch tokens as float16 (docs/original-implementation.md §9 B.16)."""
    frames = _random_frames((6, 64, 64, 3), seed=11)
    default = VisageFeatureExtractor.from_pretrained(clip_4x4)
    original = VisageFeatureExtractor.from_pretrained(clip_4x4, mode="original")
    exact, rounded = default(frames, 0.0, 0.0), original(frames, 0.0, 0.0)
    features = rounded["clip_features"]
    assert torch.equal(features, features.half().float())
    assert not torch.equal(exact["clip_features"], exact["clip_features"].half().float())
    torch.testing.assert_close(features, exact["clip_features"], rtol=1e-3, atol=1e-3)
    _, tokens = encode_frames(default.image_encoder, default.image_processor, frames)
    expected = naive_energy_map(tokens[0].half().double().numpy())
    np.testing.assert_allclose(rounded["energy_map"][0].numpy(), expected, atol=1e-5)


def test_dtype_aware_and_outputs_usable_in_autograd(clip_4x4):
    frames = _random_frames((3, 64, 64, 3), seed=13)
    in_float32 = VisageFeatureExtractor.from_pretrained(clip_4x4)(frames, 0.0, 0.0)
    extractor64 = VisageFeatureExtractor.from_pretrained(clip_4x4, dtype=torch.float64)
    assert extractor64.dtype == torch.float64
    in_float64 = extractor64(frames, 0.0, 0.0)
    assert in_float64["clip_features"].dtype == torch.float32
    torch.testing.assert_close(in_float64["clip_features"], in_float32["clip_features"], rtol=1e-4, atol=1e-5)
    # Computed under inference_mode, yet returned as ordinary tensors a training step can use.
    layer = torch.nn.Linear(16, 2)
    layer(in_float32["clip_features"]).sum().backward()
    assert layer.weight.grad is not None


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (np.zeros((4, 64, 64, 3), dtype=np.float32), "uint8"),
        (torch.zeros(4, 64, 64, 3), "uint8"),
        (np.zeros((4, 64, 64, 4), dtype=np.uint8), "shape"),
        (np.zeros((64, 64, 3), dtype=np.uint8), "shape"),
        (np.zeros((0, 64, 64, 3), dtype=np.uint8), "non-empty"),
        (np.zeros((2, 0, 64, 3), dtype=np.uint8), "non-empty"),
        ([], "empty list"),
        ([np.zeros((2, 64, 64, 3), np.uint8), np.zeros((3, 64, 64, 3), np.uint8)], "one shape"),
    ],
    ids=[
        "float-array",
        "float-tensor",
        "four-channels",
        "single-frame",
        "no-frames",
        "zero-height",
        "empty-list",
        "ragged",
    ],
)
def test_bad_frames_raise_value_error(frames, message):
    with pytest.raises(ValueError, match=message):
        validate_frames(frames)


def test_missing_folder_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="CLIP folder"):
        VisageFeatureExtractor.from_pretrained(tmp_path / "missing")


def test_bad_call_arguments_raise_value_error(clip_4x4):
    extractor = VisageFeatureExtractor.from_pretrained(clip_4x4)
    clips = _random_frames((2, 1, 64, 64, 3))
    with pytest.raises(ValueError, match="azimuth"):
        extractor(clips, azimuth=[0.0, 1.0, 2.0], elevation=0.0)
    with pytest.raises(ValueError, match="elevation"):
        extractor(clips, azimuth=0.0, elevation=120.0)
    with pytest.raises(ValueError, match="mode"):
        VisageFeatureExtractor(extractor.image_encoder, extractor.image_processor, mode="fast")
    with pytest.raises(ValueError, match="batch_size"):
        VisageFeatureExtractor(extractor.image_encoder, extractor.image_processor, batch_size=0)


def test_half_precision_features_need_cuda_and_say_so(clip_4x4):
    from visage_hf.models.feature_extraction_visage import encode_frames, require_half_precision_device

    with pytest.raises(ValueError, match="need a CUDA device"):
        require_half_precision_device(torch.device("cpu"))
    encoder = CLIPVisionModelWithProjection.from_pretrained(clip_4x4)
    processor = CLIPImageProcessorPil.from_pretrained(clip_4x4)
    with pytest.raises(ValueError, match="need a CUDA device"):
        encode_frames(encoder, processor, _random_frames((2, 64, 64, 3)), half_precision=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="float16 CLIP needs a CUDA device")
def test_half_precision_features_match_float32_on_cuda(clip_4x4):
    """float16 autocast CLIP + a float16 energy map stay close to float32 (what the original's GPU computed)."""
    from visage_hf.models.feature_extraction_visage import VisageFeatureExtractor

    encoder = CLIPVisionModelWithProjection.from_pretrained(clip_4x4).cuda()
    processor = CLIPImageProcessorPil.from_pretrained(clip_4x4)
    frames = _random_frames((4, 64, 64, 3))
    full = VisageFeatureExtractor(encoder, processor, mode="original")(frames, 0.0, 0.0)
    half = VisageFeatureExtractor(encoder, processor, mode="original", half_precision=True)(frames, 0.0, 0.0)
    torch.testing.assert_close(half["clip_features"], full["clip_features"], rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(half["energy_map"], full["energy_map"], rtol=5e-2, atol=2e-2)
