"""Issue 17, "the first hour": what a newcomer hit, each reproduced as the newcomer did it (in-process
``main([...])``, offline, tiny models built here, nothing downloaded)."""

from __future__ import annotations

import csv
import json
import re
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from visage_hf.commands.main import main
from visage_hf.data.synthetic import moving_object_video
from visage_hf.models.configuration_visage import VisageConfig
from visage_hf.models.modeling_visage import VisageForFOA
from visage_hf.pipelines.pipeline_visage import VisagePipeline
from visage_hf.pipelines.tiny import tiny_random_components
from visage_hf.utils import hub

TINY_RECIPE = Path(__file__).resolve().parents[2] / "visage_hf" / "training" / "configs" / "tiny.yaml"


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return moving_object_video(
        tmp_path_factory.mktemp("video") / "clip.mp4", seconds=3.0, fps=10, width=96, height=72
    )


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """What a user has offline after training with the tiny recipe: the model folder (config from the recipe,
    random weights: nothing is trained), plus CLIP and a codec saved as folders (the --clip / --codec sources)."""
    root = tmp_path_factory.mktemp("parts")
    recipe = yaml.safe_load(Path(TINY_RECIPE).read_text())
    torch.manual_seed(0)
    VisageForFOA(VisageConfig.tiny(**recipe["config_overrides"])).save_pretrained(root / "model")
    components = tiny_random_components(seed=0)
    components["image_encoder"].save_pretrained(root / "clip")
    components["image_processor"].save_pretrained(root / "clip")
    components["codec"].save_pretrained(root / "codec")
    return root


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Offline as on a plane: the Hub unreachable, an empty Hugging Face cache, and any connection attempt
    counted (and refused)."""
    from huggingface_hub import constants

    attempts = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=5.0: False)
    return attempts


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith("visage: error: "), err
    return err[-1]


def _generate(video, out, *extra):
    return main(["generate", str(video), "--azimuth", "30", "--quiet", "-o", str(out), *map(str, extra)])


# ============================================================================================ bugs


def test_tiny_recipe_window_is_what_encoder_and_decoder_both_hold():
    # Independent arithmetic: 4 video frames at 4 fps = 1 s = 44100 / 512 = 86.1 -> 86 codec frames, which is the
    # decoder's 173 positions (2·86 + 1); 5 frames would need 107 codec frames. So 8 encoder positions -> 4.
    recipe = yaml.safe_load(Path(TINY_RECIPE).read_text())["config_overrides"]
    assert VisageConfig.tiny(**{**recipe, "max_source_positions": 4}).window_video_frames == 4
    assert VisageConfig.tiny(**recipe).window_video_frames == 4  # the recipe's 8 encoder positions: still 1 s
    assert VisageConfig().window_video_frames == 20  # the release: 5 s both sides


@pytest.mark.parametrize("max_source_positions", [8, 4])  # the recipe's (encoder 2 s, decoder 1 s), and equal
def test_model_with_the_tiny_recipe_generates_2_s_offline(parts, video, tmp_path, no_network, capsys,
                                                          max_source_positions):  # fmt: skip
    """Bug 1 (windows sized by the encoder alone) and bug 2 (a fine local folder reported as a download
    failure): a model folder + --clip/--codec folders generate 2 s with no network at all."""
    model = parts / "model"
    config = VisageConfig.from_pretrained(model)
    if config.max_source_positions != max_source_positions:
        config.max_source_positions = max_source_positions
        torch.manual_seed(0)
        model = tmp_path / f"model{max_source_positions}"
        VisageForFOA(config).save_pretrained(model)
    out = tmp_path / "out"
    code = _generate(video, out, "--duration", "2", "--seed", "0", "--model", model,
                     "--clip", parts / "clip", "--codec", parts / "codec")  # fmt: skip
    assert code == 0, capsys.readouterr().err
    foa, rate = sf.read(out / "foa_ambix.wav", always_2d=True)
    assert foa.shape == (2 * 44100, 4) and rate == 44100 and np.abs(foa).max() > 0
    assert "window(s)" in capsys.readouterr().out
    assert not no_network


def test_local_model_folder_offline_names_the_missing_clip_and_its_option(parts, video, tmp_path, no_network,
                                                                          capsys):  # fmt: skip
    """Bug 2: not "could not download runs/tiny/model ... set HF_HUB_OFFLINE=1" after 35 s of retries, but what
    is missing (CLIP, then the codec) and the option that supplies it, without touching the network."""
    out = tmp_path / "out"
    assert _generate(video, out, "--duration", "1", "--model", parts / "model") == 2
    line = _one_line_error(capsys)
    assert "CLIP" in line and "openai/clip-vit-base-patch32" in line and "--clip" in line, line
    assert f"could not download {parts / 'model'}" not in line and "HF_HUB_OFFLINE" not in line
    assert _generate(video, out, "--duration", "1", "--model", parts / "model", "--clip", parts / "clip") == 2
    line = _one_line_error(capsys)
    assert "codec" in line and "descript/dac_44khz" in line and "--codec" in line, line
    assert not no_network and not out.exists()


def test_tiny_random_by_name_is_built_offline(no_network):
    """Bug 3: `VisagePipeline.from_pretrained("tiny-random")` retried HTTP for 55 s and raised
    LocalEntryNotFoundError. It builds the tiny pipeline with no connection tried, exactly the one
    `tiny_random_components(seed=0)` makes, as does the shared loader behind `--model tiny-random`."""
    from visage_hf.pipelines.loading import load_pipeline

    reference = VisagePipeline(**tiny_random_components(seed=0))
    theirs = reference.foa_model.state_dict()
    for pipe in (
        VisagePipeline.from_pretrained("tiny-random"),
        load_pipeline("tiny-random", "cpu", quiet=True),
    ):
        assert pipe.foa_model.config.to_dict() == reference.foa_model.config.to_dict()
        mine = pipe.foa_model.state_dict()
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[key], theirs[key]) for key in mine)
    assert not no_network


def test_feature_extractor_takes_mode_corrected_and_a_pipeline_folder(tmp_path):
    """Bug 4: mode="corrected" raised (it took "default"); a saved pipeline's CLIP sits in sibling folders."""
    from visage_hf import VisageFeatureExtractor

    components = tiny_random_components(seed=0)
    VisagePipeline(**components).save_pretrained(tmp_path / "my-pipeline")
    extractor = VisageFeatureExtractor.from_pretrained(tmp_path / "my-pipeline", mode="corrected")
    assert (
        extractor.mode == "corrected"
        and VisageFeatureExtractor(
            components["image_encoder"], components["image_processor"], mode="default"
        ).mode
        == "corrected"
    )
    frames = np.random.default_rng(0).integers(0, 255, (4, 60, 80, 3), dtype=np.uint8)
    direct = VisageFeatureExtractor(components["image_encoder"], components["image_processor"])
    loaded, expected = extractor(frames, 30.0, 0.0), direct(frames, 30.0, 0.0)
    for key in expected:
        torch.testing.assert_close(loaded[key], expected[key])


def test_generate_batch_failures_exit_1_and_run_config_holds_the_values_used(video, tmp_path, capsys):
    """Bug 5: "1 failed" and exit 0; run_config.json with null guidance, scale, top-k and temperature."""
    table = tmp_path / "clips.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "video", "azimuth", "elevation", "duration"])
        writer.writerow(["good", video, 30, 0, 1])
        writer.writerow(["missing", tmp_path / "no-such-video.mp4", 30, 0, 1])
    out = tmp_path / "batch"
    code = main(
        ["generate-batch", "--videos", str(table), "--model", "tiny-random", "--quiet", "-o", str(out)]
    )
    assert code == 1, capsys.readouterr()
    assert (out / "good.wav").is_file()
    assert [row["clip"] for row in csv.DictReader((out / "failed.csv").open())] == ["missing"]
    used = json.loads((out / "run_config.json").read_text())["settings"]
    # The tiny model has no generation config of its own: the released model's documented settings apply
    # (README: joint guidance, s = 2.5, top-k 256; temperature 1 and top-p 1 leave the distribution as is).
    assert used["guidance"] == "joint" and used["guidance_scale"] == 2.5
    assert used["top_k"] == 256 and used["temperature"] == 1.0 and used["top_p"] == 1.0
    assert used["do_sample"] is True and used["mode"] == "corrected"
    # Resuming with the same command is still accepted (it compares what was asked for).
    assert (
        main(["generate-batch", "--videos", str(table), "--model", "tiny-random", "--quiet", "-o", str(out)])
        == 1
    )
    assert "already done" in capsys.readouterr().out


# ============================================================================================ friction


def test_directions_formats_are_in_help(capsys):
    for command in ("generate-batch", "evaluate"):
        assert main([command, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        for fragment in ("ambi.json", "clip,azimuth,elevation", "clip,elevation_index,azimuth_index"):
            assert fragment in text, (command, fragment)


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (["--guidance", "none", "--guidance-scale", "3"], ["--guidance-scale", "--guidance none"]),
        (["--guidance", "joint", "--direction-guidance-scale", "1.5"], ["--guidance dual or direction"]),
        (["--guidance", "direction", "--guidance-scale", "3"], ["--direction-guidance-scale"]),
        (["--greedy", "--top-k", "5"], ["--top-k", "--greedy"]),
        (["--temperature", "0"], ["--temperature", "--greedy"]),
        (["--top-k", "-1"], ["--top-k", "0 = no limit"]),
    ],
)
def test_options_that_cannot_apply_are_refused(video, tmp_path, capsys, options, fragments):
    for command in (["generate", str(video), "-o", str(tmp_path / "o")],
                    ["generate-batch", "--videos", str(video), "-o", str(tmp_path / "b")]):  # fmt: skip
        assert main([*command, "--model", "tiny-random", *options]) == 2
        line = _one_line_error(capsys)
        assert all(fragment in line for fragment in fragments), line
    assert not (tmp_path / "o").exists() and not (tmp_path / "b").exists()


def test_generate_and_generate_batch_share_options(capsys):
    from visage_hf.commands.main import build_parser

    parser = build_parser()
    actions = {
        name: {option: action.default for action in sub._actions for option in action.option_strings}
        for name, sub in parser._subparsers._group_actions[0].choices.items()
        if name in ("generate", "generate-batch")
    }
    shared = set(actions["generate"]) & set(actions["generate-batch"])
    for option in (
        "--greedy",
        "--guidance",
        "--top-k",
        "--temperature",
        "--mode",
        "--clip",
        "--codec",
        "--dtype",
    ):
        assert option in shared and actions["generate"][option] == actions["generate-batch"][option], option
    # The two that differ say why in both helps.
    for command in ("generate", "generate-batch"):
        main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "16000" in text and "44100" in text and "fresh" in text


def test_greedy_ignores_the_seed_and_the_summary_names_the_written_rate(video, tmp_path, capsys):
    """Greedy decoding takes the likeliest code: two seeds, the same audio. --sample-rate 48000 is reported as
    48000 Hz with the samples at that rate (not "... at 44100 Hz")."""
    for seed in (1, 2):
        assert _generate(video, tmp_path / f"g{seed}", "--model", "tiny-random", "--greedy", "--seed", seed,
                         "--duration", "0.5", "--sample-rate", "48000") == 0  # fmt: skip
    a, rate = sf.read(tmp_path / "g1" / "foa_ambix.wav")
    b, _ = sf.read(tmp_path / "g2" / "foa_ambix.wav")
    assert rate == 48000 and a.shape[0] == 24000 and np.array_equal(a, b)
    out = capsys.readouterr().out
    assert "(24000 samples at 48000 Hz, resampled from the model's 44100 Hz)" in out
    assert "44100 Hz, world frame" not in out


def test_generate_refuses_earlier_outputs_unless_overwrite(video, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "foa_ambix.wav").write_bytes(b"earlier run")
    (out / "notes.txt").write_text("mine")
    assert _generate(video, out, "--model", "tiny-random", "--duration", "0.5") == 2
    line = _one_line_error(capsys)
    assert "foa_ambix.wav" in line and "--overwrite" in line
    assert (out / "foa_ambix.wav").read_bytes() == b"earlier run"
    assert _generate(video, out, "--model", "tiny-random", "--duration", "0.5", "--overwrite") == 0
    assert sf.info(str(out / "foa_ambix.wav")).channels == 4 and (out / "notes.txt").read_text() == "mine"


def test_energy_map_reads_the_foa_track_of_an_mp4_and_encode_refuses_lossy(tmp_path, capsys):
    from visage_hf.audio.foa import encode
    from visage_hf.video.io import write_mp4

    rate = 48000
    tone = 0.3 * np.sin(2 * np.pi * 500 * np.arange(rate) / rate).astype(np.float32)
    foa = encode(tone, -60.0, 20.0)  # a source 60° to the right, 20° up
    frames = np.zeros((4, 64, 128, 3), np.uint8)
    video = write_mp4(tmp_path / "v.mp4", foa, rate, frames, fps=4)  # AAC-coded, as `generate` writes it
    assert main(["energy-map", str(video), "-o", str(tmp_path / "map.png")]) == 0
    found = capsys.readouterr().out
    azimuth, elevation = map(float, re.search(r"azimuth ([-+.\d]+)°, elevation ([-+.\d]+)°", found).groups())
    assert abs(azimuth + 60) <= 4 and abs(elevation - 20) <= 4, found

    mono = tmp_path / "mono.wav"
    sf.write(mono, tone, rate)
    assert main(["encode", str(mono), "-o", str(tmp_path / "x.ogg")]) == 2
    assert ".wav or .flac" in _one_line_error(capsys) and not (tmp_path / "x.ogg").exists()
    assert main(["encode", str(mono), "-o", str(tmp_path / "x.flac")]) == 0


def _foa_folder(folder, names, seconds=2.0, silent=False, rate=16000):
    from visage_hf.audio.foa import encode
    from visage_hf.audio.io import write_audio

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for index, name in enumerate(names):
        noise = (
            np.zeros(int(seconds * rate), np.float32) if silent else rng.standard_normal(int(seconds * rate))
        )
        write_audio(folder / f"{name}.wav", encode(noise.astype(np.float32), 40.0 * index, 0.0), rate)
    return folder


def test_evaluate_report_says_what_it_measured_beside_the_published_row(tmp_path, capsys):
    """Item 9: legend, clip count, mode, the unpaired clips, and the paper's row of the same guidance setting
    (read from generate-batch's run_config.json)."""
    gt = _foa_folder(tmp_path / "gt", ["a", "b", "c"])
    pred = _foa_folder(tmp_path / "pred", ["a"])
    settings = {"guidance": "joint", "guidance_scale": 2.5, "direction_guidance_scale": 2.5}
    (pred / "run_config.json").write_text(json.dumps({"settings": settings}))
    report = tmp_path / "report"
    args = ["evaluate", "--pred", str(pred), "--gt", str(gt), "-o", str(report), "--mode", "original"]
    assert main([*args, "--duration", "2", "--no-progress"]) == 0
    table = (report / "table.md").read_text()
    assert "Measured on 1 clip(s), mode original" in table and "2 file(s) without a partner" in table
    assert "Δ∠ energy" in table and "FAD<sub>avg</sub>" in table.split("\n\n")[-1]  # the legend
    published = next(line for line in table.splitlines() if "published" in line and line.startswith("|"))
    assert "| 3.86 | 1.71 | 4.20 | 0.6350 | 0.5840 | 0.5310 | 0.8460 | 0.8190 | 0.7900 |" in published
    assert capsys.readouterr().out == table


def test_evaluate_refuses_or_warns_instead_of_silently_ignoring(tmp_path, capsys, monkeypatch):
    gt = _foa_folder(tmp_path / "gt", ["a"])
    pred = _foa_folder(tmp_path / "pred", ["a"])
    base = ["evaluate", "--pred", str(pred), "--gt", str(gt), "--no-progress"]
    directions = tmp_path / "d.csv"
    directions.write_text("clip,azimuth,elevation\na,0,0\n")
    assert main([*base, "-o", str(tmp_path / "r1"), "--directions", str(directions)]) == 2
    assert "--directions is used only by" in capsys.readouterr().err
    assert main([*base, "-o", str(tmp_path / "r2")]) == 0  # default --duration 5 on 2 s clips
    assert "shorter than --duration 5 s (shortest 2.00 s) and are zero-padded" in capsys.readouterr().err
    # Offline: the VGGish download fails at once and the message names the option that avoids it.
    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    assert main([*base, "-o", str(tmp_path / "r3"), "--metrics", "fad", "--duration", "2"]) == 2
    assert "--vggish-weights" in capsys.readouterr().err


def test_evaluate_all_nan_is_not_success(tmp_path, capsys):
    gt = _foa_folder(tmp_path / "gt", ["a", "b"], silent=True)
    pred = _foa_folder(tmp_path / "pred", ["a", "b"])
    args = ["evaluate", "--pred", str(pred), "--gt", str(gt), "-o", str(tmp_path / "r"), "--duration", "2"]
    assert main([*args, "--no-progress"]) == 1
    assert "no score could be computed on the 2 clip(s)" in capsys.readouterr().err


def test_energy_map_picture_names_its_marks_and_shows_the_camera():
    """Item 10: the × had no legend and the camera direction in the title was not marked. The marks sit at
    the map's own coordinates: azimuth +90 is left of the front (x = 90), like the axis ticks say."""
    from matplotlib.figure import Figure

    from visage_hf.audio.foa import encode, energy_map
    from visage_hf.video.plotting import _draw_map

    tone = np.sin(2 * np.pi * 500 * np.arange(4800) / 48000).astype(np.float32)
    maps = energy_map(encode(tone, -120.0, 30.0))  # a source behind on the right, up
    axis = Figure().subplots()
    _draw_map(axis, maps, float(maps.min()), float(maps.max()), True, camera=(270.0, -10.0))
    marks = {line.get_label(): (line.get_xdata()[0], line.get_ydata()[0]) for line in axis.get_lines()}
    assert np.allclose(marks["camera direction"], (-90.0, -10.0))  # 270° wraps to -90° (right)
    azimuth, elevation = marks["loudest direction"]
    assert abs(azimuth + 120) <= 3 and abs(elevation - 30) <= 3
    assert [text.get_text() for text in axis.get_legend().get_texts()] == [
        "loudest direction",
        "camera direction",
    ]


def test_training_options_are_not_abbreviated():
    """Item 11: `--max_step 5` and `--learning_rat 1e-3` were read as --max_steps / --learning_rate while the
    YAML refuses unknown keys; both spellings are now refused alike."""
    from visage_hf.training.arguments import parse_arguments

    for wrong in (["--max_step", "5"], ["--learning_rat", "1e-3"]):
        with pytest.raises((ValueError, SystemExit)):
            parse_arguments(["--config", str(TINY_RECIPE), *wrong])
    *_, args = parse_arguments(["--config", str(TINY_RECIPE), "--max_steps", "5"])
    assert args.max_steps == 5
