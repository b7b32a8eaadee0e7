"""VisagePipeline and the tiny random pipeline, on tiny random models built here (nothing is downloaded).

The window plan has its own tests (tests/pipelines/test_windowing.py), and so has the clip reader
(tests/video/test_clip.py)."""

from __future__ import annotations

import io
import json
import math
import shutil

import numpy as np
import pytest
import torch
from transformers import DacConfig, DacModel

from visage_hf.audio.codec import FOACodec
from visage_hf.data.synthetic import moving_object_video
from visage_hf.models.configuration_visage import VisageConfig
from visage_hf.models.convert_original import load_original_checkpoint
from visage_hf.models.feature_extraction_visage import VisageFeatureExtractor
from visage_hf.models.modeling_visage import VisageForFOA
from visage_hf.pipelines import pipeline_visage
from visage_hf.pipelines.pipeline_visage import VisagePipeline
from visage_hf.pipelines.tiny import tiny_random_components
from visage_hf.video.clip import load_video_clip

SAMPLE_RATE, HOP, FPS = 44100, 512, 4
ORIGINAL_FIXTURE = "tests/fixtures/original_tiny/foa"


@pytest.fixture(scope="module")
def pipe() -> VisagePipeline:
    """The tiny random pipeline with the real 5 s window."""
    pipeline = VisagePipeline(**tiny_random_components(seed=0))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def short_window_pipe() -> VisagePipeline:
    """Tiny random pipeline whose window is 1 s (4 video frames, 86 codec frames): windowing made cheap."""
    pipeline = VisagePipeline(**tiny_random_components(seed=1, window_video_frames=4))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "moving.mp4"
    return moving_object_video(path, seconds=4.0, fps=10, width=96, height=72)


# ============================================================================================== pipeline


def test_pipeline_output_has_the_requested_length(pipe, video):
    for seconds in (0.3, 1.0):
        out = pipe(video, 30.0, 0.0, start=0.5, duration=seconds, seed=0)
        samples = round(seconds * SAMPLE_RATE)
        assert out.audio.shape == (1, 4, samples) and out.audio.dtype == np.float32
        assert out.codes.shape == (1, 4, 9, math.ceil(samples / HOP)) and out.sample_rate == SAMPLE_RATE
        assert len(out.frames) == math.ceil(seconds * FPS) and np.isfinite(out.audio).all()
        assert np.abs(out.audio).max() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_pipeline_on_cuda_gives_the_cpu_pipelines_greedy_codes(video, monkeypatch):
    """Every stage on the GPU (CLIP, generation with graph steps, the DAC's fast path) against the CPU pipeline:
    fp32 greedy codes equal, audio within float rounding. TF32 off: it rounds at ~1e-3, each path its own way."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    settings = dict(duration=1.0, do_sample=False, progress=False)
    expected = VisagePipeline(**tiny_random_components(seed=0))(video, 30.0, 0.0, **settings)
    out = VisagePipeline(**tiny_random_components(seed=0)).to("cuda")(video, 30.0, 0.0, **settings)
    assert torch.equal(out.codes.cpu(), expected.codes)
    assert np.abs(out.audio - expected.audio).max() <= 1e-4 * np.abs(expected.audio).max()


def test_pipeline_seed_reproduces_and_samples_differ(pipe, video):
    first = pipe(video, 30.0, 0.0, duration=0.5, seed=3, num_samples=2)
    again = pipe(video, 30.0, 0.0, duration=0.5, generator=torch.Generator().manual_seed(3), num_samples=2)
    other = pipe(video, 30.0, 0.0, duration=0.5, seed=4, num_samples=2)
    assert torch.equal(first.codes, again.codes) and np.array_equal(first.audio, again.audio)
    assert not torch.equal(first.codes, other.codes)
    assert not torch.equal(first.codes[0], first.codes[1])  # two samples are independent draws
    with pytest.raises(ValueError, match="either generator or seed"):
        pipe(video, 30.0, 0.0, duration=0.5, seed=1, generator=torch.Generator())


def test_pipeline_save_and_load_round_trip(pipe, video, tmp_path):
    pipe.save_pretrained(tmp_path / "pipe")
    index = json.loads((tmp_path / "pipe" / "model_index.json").read_text())
    assert index["_class_name"] == "VisagePipeline"
    assert index["foa_model"] == ["visage_hf.models.modeling_visage", "VisageForFOA"]
    loaded = VisagePipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    for name in ("image_encoder", "foa_model", "codec"):
        original, reloaded = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert original.keys() == reloaded.keys()
        assert all(torch.equal(original[key], reloaded[key]) for key in original)
    assert loaded.image_processor.to_dict() == pipe.image_processor.to_dict()
    expected = pipe(video, 30.0, 0.0, duration=0.5, seed=7)
    result = loaded(video, 30.0, 0.0, duration=0.5, seed=7)
    assert torch.equal(expected.codes, result.codes) and np.array_equal(expected.audio, result.audio)


def test_windowed_generation_continues_from_the_previous_window(short_window_pipe, video, monkeypatch):
    pipe = short_window_pipe
    calls = []
    generate = pipe.foa_model.generate

    def recording_generate(*args, **kwargs):
        codes = generate(*args, **kwargs)
        calls.append({"prefix": kwargs.get("prefix_codes"), "codes": codes.clone(), **kwargs})
        return codes

    monkeypatch.setattr(pipe.foa_model, "generate", recording_generate)
    out = pipe(video, 30.0, 0.0, start=0.25, duration=2.6, seed=0, overlap=0.5)
    plan = out.windows
    assert len(plan) == len(calls) >= 4 and out.audio.shape == (1, 4, round(2.6 * SAMPLE_RATE))
    assert calls[0]["prefix"] is None
    for index in range(1, len(plan)):
        window, before = plan[index], plan[index - 1]
        prefix = calls[index]["prefix"]
        assert prefix.shape[-1] == window.prefix_frames > 0
        # the prefix is the previous window's last codes, and the new window starts by reproducing it
        assert torch.equal(prefix.cpu(), calls[index - 1]["codes"][..., -window.prefix_frames :].cpu())
        assert torch.equal(calls[index]["codes"][..., : window.prefix_frames].cpu(), prefix.cpu())
        assert before.code_stop - window.code_start == window.prefix_frames
    for window, call in zip(plan, calls):
        assert torch.equal(out.codes[..., window.code_start : window.code_stop], call["codes"].cpu())
    # each window is conditioned on the video of its own time span
    extractor = VisageFeatureExtractor(pipe.image_encoder, pipe.image_processor)
    for window, call in zip(plan, calls):
        features = extractor(out.frames[window.video_start : window.video_stop], 30.0, 0.0)
        torch.testing.assert_close(call["clip_features"], features["clip_features"])
        torch.testing.assert_close(call["energy_map"], features["energy_map"])


def test_stitched_audio_equals_one_pass_decode_of_the_codes(short_window_pipe, video):
    out = short_window_pipe(video, 30.0, 0.0, duration=2.2, seed=1, overlap=0.5)
    reference = FOACodec(short_window_pipe.codec).decode(out.codes).numpy()[..., : out.audio.shape[-1]]
    # The joins sit mid-overlap, farther from every window edge than the DAC's receptive field. The windows are
    # decoded over other spans than the one pass, so the fast decoder's float rounding differs between them:
    # within its contract, 1e-4 of the peak (1.1e-5 measured for one clip; a misplaced join is of the signal's size).
    np.testing.assert_allclose(out.audio, reference, atol=1e-4 * np.abs(reference).max())


def test_one_window_clip_repeats_its_partial_last_frame_in_one_call(short_window_pipe, video, monkeypatch):
    # 1 s = 44 100 samples needs ceil(44 100 / 512) = 87 codec frames, but 86 · 512 = 44 032: the 87th ends past
    # the 1-s video. One generate call writes the 86 whole frames (all the model holds); the 87th repeats the
    # 86th, as the original pads its 431st — no second window prefilled with 85 frames to write one.
    calls = []
    generate = short_window_pipe.foa_model.generate

    def recording_generate(*args, **kwargs):
        codes = generate(*args, **kwargs)
        calls.append((kwargs["num_frames"], kwargs.get("prefix_codes") is None, codes.shape[-1]))
        return codes

    monkeypatch.setattr(short_window_pipe.foa_model, "generate", recording_generate)
    out = short_window_pipe(video, 30.0, 0.0, duration=1.0, seed=2)
    assert calls == [(86, True, 86)] and len(out.windows) == 1
    assert out.codes.shape == (1, 4, 9, math.ceil(SAMPLE_RATE / HOP)) == (1, 4, 9, 87)
    assert torch.equal(out.codes[..., 86], out.codes[..., 85])
    assert out.audio.shape == (1, 4, SAMPLE_RATE)
    reference = FOACodec(short_window_pipe.codec).decode(out.codes).numpy()[..., :SAMPLE_RATE]
    np.testing.assert_allclose(out.audio, reference, atol=1e-5 * np.abs(reference).max())


def test_progress_bar_counts_the_decoder_steps_that_run(short_window_pipe, video, monkeypatch):
    # The bar's total is planned before generation; the decoder advances it once per step it really runs. A 1 s
    # clip (one window, its 87th frame repeated, not generated) and a 2.2 s clip (prefix windows) both end full.
    bars = []

    class RecordingBar(pipeline_visage.tqdm):
        def close(self):
            bars.append((self.n, self.total))
            super().close()

    monkeypatch.setattr(pipeline_visage, "tqdm", RecordingBar)
    monkeypatch.setattr(short_window_pipe, "_progress_bar_config", {"file": io.StringIO()})
    for seconds in (1.0, 2.2):
        bars.clear()
        short_window_pipe(video, 30.0, 0.0, duration=seconds, seed=0, overlap=0.5)
        steps, total = bars[0]  # the generation bar (the decoding bar follows)
        assert steps == total > 0


def test_pipeline_rejects_bad_calls(pipe, video):
    with pytest.raises(ValueError, match="elevation"):
        pipe(video, 0.0, 95.0, duration=0.5)
    with pytest.raises(ValueError, match="overlap"):
        pipe(video, 0.0, 0.0, duration=0.5, overlap=5.0)
    with pytest.raises(ValueError, match="num_samples"):
        pipe(video, 0.0, 0.0, duration=0.5, num_samples=0)
    with pytest.raises(FileNotFoundError):
        pipe(video.with_name("missing.mp4"), 0.0, 0.0)


def test_components_that_do_not_fit_are_rejected():
    parts = tiny_random_components()
    codec_24k = DacModel(
        DacConfig(
            encoder_hidden_size=8, decoder_hidden_size=16, codebook_dim=8, hidden_size=64, sampling_rate=24000,
            downsampling_ratios=[2, 4, 8, 8], upsampling_ratios=[8, 8, 4, 2],
        )
    )  # fmt: skip
    with pytest.raises(ValueError, match="24000 Hz"):
        VisagePipeline(**{**parts, "codec": codec_24k})
    with pytest.raises(ValueError, match="mono"):
        VisagePipeline(**{**parts, "foa_model": VisageForFOA(VisageConfig.tiny(num_channels=1))})


def test_frames_array_input_matches_the_file(pipe, video, monkeypatch):
    # An array is taken as frames already at 4 fps (frame k at k / 4 s): that equals the file read with exact-time
    # sampling (a model whose config says so; the release's FFmpeg sampling is tested in test_frame_sampling.py).
    monkeypatch.setattr(pipe.foa_model.config, "frame_sampling", "exact")
    # The file is scaled while decoding to the processor's short side (56 px here): give the array the same.
    whole = load_video_clip(video, 30.0, 0.0, short_side=56).frames
    assert whole.shape[1:3] == (56, 74)  # int(56 · 96 / 72)
    from_array = pipe(whole, 30.0, 0.0, start=0.5, duration=1.0, seed=5)
    from_file = pipe(video, 30.0, 0.0, start=0.5, duration=1.0, seed=5)
    assert np.array_equal(from_array.frames, from_file.frames)
    assert torch.equal(from_array.codes, from_file.codes)


# ============================================================================================== checkpoints


def test_original_checkpoint_folder_routes_through_from_original(tmp_path, video):
    folder = shutil.copytree(ORIGINAL_FIXTURE, tmp_path / "original")
    parts = tiny_random_components()
    pipe = VisagePipeline.from_pretrained(
        folder,
        image_encoder=parts["image_encoder"],
        image_processor=parts["image_processor"],
        codec=parts["codec"],
    )
    pipe.set_progress_bar_config(disable=True)
    expected = load_original_checkpoint(folder)
    assert pipe.foa_model.config.mode == "original"
    reference = expected.state_dict()
    assert all(torch.equal(tensor, reference[key]) for key, tensor in pipe.foa_model.state_dict().items())

    # One window in original mode: the original's int(T/4·86) frames, the last repeated to the clip's length.
    out = pipe(video, 30.0, 0.0, duration=0.5, seed=0)
    assert out.codes.shape[-1] == math.ceil(22050 / HOP) == 44
    assert torch.equal(out.codes[..., -1], out.codes[..., -2])
    assert out.audio.shape == (1, 4, 22050) and int(out.codes.max()) < 16  # the fixture's 16-code books
    # Longer than its 1 s window: windowed.
    longer = pipe(video, 30.0, 0.0, duration=2.5, seed=0, overlap=0.5)
    assert len(longer.windows) > 1 and longer.audio.shape == (1, 4, round(2.5 * SAMPLE_RATE))


def test_converted_checkpoint_folder_routes_through_from_original(tmp_path):
    from visage_hf.models.convert_original import convert_original

    converted = convert_original(ORIGINAL_FIXTURE, tmp_path / "converted")
    parts = tiny_random_components()
    pipe = VisagePipeline.from_pretrained(
        converted,
        image_encoder=parts["image_encoder"],
        image_processor=parts["image_processor"],
        codec=parts["codec"],
    )
    reference = load_original_checkpoint(ORIGINAL_FIXTURE).state_dict()
    assert all(torch.equal(tensor, reference[key]) for key, tensor in pipe.foa_model.state_dict().items())
    assert pipe.foa_model.config.mode == "original"


def test_tiny_random_pipeline_has_the_real_layout():
    parts = tiny_random_components()
    config, codec, vision = parts["foa_model"].config, parts["codec"].config, parts["image_encoder"].config
    # the released model's window (docs/original-implementation.md §11): 20 video frames, 861 positions, 430 frames
    assert (config.max_source_positions, config.max_target_positions, config.max_frames) == (20, 861, 430)
    assert (config.num_channels, config.num_codebooks, config.codebook_size) == (4, 9, 1024)
    assert (codec.sampling_rate, int(np.prod(codec.downsampling_ratios)), codec.n_codebooks) == (
        44100,
        512,
        9,
    )
    assert ((vision.image_size // vision.patch_size) ** 2, vision.projection_dim) == (49, 512)


def test_missing_model_folder_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        VisagePipeline.from_pretrained(tmp_path / "nowhere")
