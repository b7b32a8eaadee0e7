"""``--dtype int8`` on the command line reaches the model: the decoder's step products are int8 inside generation
(`visage generate` and `visage generate-batch`)."""

from __future__ import annotations

from visage_hf.commands.main import main
from visage_hf.data.synthetic import moving_object_video

from ..models.test_quantization import INT8_PRODUCTS, int8_generation_spy
from ..pipelines.test_batch_generation import _write_features


def test_generate_dtype_int8_generates_with_int8_products(tmp_path, monkeypatch):
    video = moving_object_video(tmp_path / "clip.mp4", seconds=1.0, fps=10, width=64, height=48)
    calls = int8_generation_spy(monkeypatch)
    out = tmp_path / "out"
    argv = ["generate", str(video), "--azimuth", "30", "--elevation", "0", "--duration", "0.5", "--quiet",
            "--model", "tiny-random", "--dtype", "int8", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert calls and all(seen == INT8_PRODUCTS for seen in calls)
    assert (out / "foa_ambix.wav").is_file()


def test_generate_batch_dtype_int8_generates_with_int8_products(tmp_path, monkeypatch):
    features = _write_features(tmp_path / "features", clips=[("clip_a", 2, 40, 60)])
    calls = int8_generation_spy(monkeypatch)
    out = tmp_path / "out"
    argv = ["generate-batch", "--quiet", "--features", str(features), "--model", "tiny-random", "--dtype", "int8",
            "--device", "cpu", "-o", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert calls and all(seen == INT8_PRODUCTS for seen in calls)
    assert [path.name for path in out.glob("*.wav")] == ["clip_a.wav"]
