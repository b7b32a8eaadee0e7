"""The `visage` CLI, run in-process through `main([...])` (plus one real subprocess)."""

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from visage_hf import __version__
from visage_hf.commands.main import main

SAMPLE_RATE = 8000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write(path, channels_first, subtype="FLOAT"):
    sf.write(str(path), np.asarray(channels_first).T, SAMPLE_RATE, subtype=subtype)
    return str(path)


def _read(path):
    data, sample_rate = sf.read(str(path), dtype="float64", always_2d=True)
    return data.T, sample_rate


def _unit(azimuth, elevation):
    az, el = np.deg2rad(azimuth), np.deg2rad(elevation)
    return np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])


@pytest.fixture
def mono_file(tmp_path):
    signal = 0.3 * np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32)
    return _write(tmp_path / "mono.wav", signal[None]), signal


@pytest.fixture
def foa_file(tmp_path):
    """A noise plane wave from the left (azimuth +90), 1 s."""
    signal = 0.3 * np.random.default_rng(1).standard_normal(SAMPLE_RATE)
    return _write(tmp_path / "foa.wav", np.stack([signal, signal, 0 * signal, 0 * signal])), signal


def _intensity_direction(field):
    w, y, z, x = field
    vector = np.array([np.mean(w * x), np.mean(w * y), np.mean(w * z)])
    return vector / np.linalg.norm(vector)


def test_encode_writes_the_textbook_plane_wave(tmp_path, mono_file, capsys):
    path, signal = mono_file
    out = tmp_path / "foa.wav"
    assert (
        main(["encode", path, "--azimuth", "420", "--elevation", "-30", "-o", str(out)]) == 0
    )  # 420 wraps to 60
    field, sample_rate = _read(out)
    x, y, z = _unit(60, -30)
    assert sample_rate == SAMPLE_RATE and field.shape == (4, SAMPLE_RATE)
    np.testing.assert_allclose(field, [signal, y * signal, z * signal, x * signal], atol=1e-6)
    assert "azimuth +60.0°" in capsys.readouterr().out


def test_rotate_moves_the_source(tmp_path, foa_file):
    path, _ = foa_file
    out = tmp_path / "rotated.wav"
    assert main(["rotate", path, "--yaw", "-90", "-o", str(out)]) == 0  # left -> front
    np.testing.assert_allclose(_intensity_direction(_read(out)[0]), [1, 0, 0], atol=1e-6)
    assert main(["rotate", path, "--roll", "90", "-o", str(out)]) == 0  # left side lifted -> up
    np.testing.assert_allclose(_intensity_direction(_read(out)[0]), [0, 0, 1], atol=1e-6)


def test_decode_stereo_and_mono(tmp_path, foa_file):
    path, signal = foa_file
    out = tmp_path / "stereo.wav"
    assert main(["decode", path, "-o", str(out)]) == 0
    (left, right), _ = _read(out)
    np.testing.assert_allclose(left, signal, atol=1e-6)  # cardioid at +90: on axis
    np.testing.assert_allclose(right, 0.0, atol=1e-6)  # cardioid at −90: null
    assert main(["decode", path, "--mono", "--azimuth", "0", "--pattern", "figure8", "-o", str(out)]) == 0
    (mono,), _ = _read(out)
    np.testing.assert_allclose(mono, 0.0, atol=1e-6)  # figure-8 facing front: source in its side null
    assert main(["decode", path, "--mono", "--azimuth", "90", "--pattern", "0.25", "-o", str(out)]) == 0
    np.testing.assert_allclose(_read(out)[0][0], signal, atol=1e-6)


def test_energy_map_whole_and_windowed(tmp_path, foa_file, capsys):
    path, _ = foa_file
    out = tmp_path / "map.png"
    assert main(["energy-map", path, "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert "loudest direction: azimuth +90.0°, elevation +0.0°" in capsys.readouterr().out
    assert main(["energy-map", path, "-o", str(out), "--window", "0.2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("window ") for line in lines) == 5
    assert all("azimuth +90.0°" in line for line in lines if line.startswith("window "))


def test_plot_energy_map_refuses_bad_maps_and_caps_frames(tmp_path):
    from visage_hf.video.plotting import plot_energy_map

    with pytest.raises(ValueError, match=r"\(H, 2H\)"):
        plot_energy_map(np.zeros((90, 90)), tmp_path / "bad.png")
    with pytest.raises(ValueError, match="NaN"):
        plot_energy_map(np.full((9, 18), np.nan), tmp_path / "bad.png")
    assert not list(tmp_path.iterdir())
    path = plot_energy_map(np.random.default_rng(0).random((7, 9, 18)), tmp_path / "few.png", max_frames=3)
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_demo_spatial(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo-spatial", "-o", str(out), "--seconds", "0.5"]) == 0
    field, sample_rate = _read(out / "foa.wav")
    assert sample_rate == 48000 and field.shape == (4, 24000)
    np.testing.assert_allclose(_intensity_direction(field), _unit(60, 0), atol=1e-6)
    assert (out / "energy_map.png").read_bytes()[:8] == PNG_MAGIC
    printed = capsys.readouterr().out
    assert "direction found by energy map: azimuth +60.0°, elevation +0.0°" in printed


def test_version(capsys):
    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out


def test_help_in_a_real_subprocess():
    command = [shutil.which("visage")] if shutil.which("visage") else [sys.executable, "-m", "visage_hf.cli"]
    result = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for name in ("encode", "rotate", "decode", "energy-map", "demo-spatial"):
        assert name in result.stdout


def _bad_inputs(tmp_path):
    stereo = _write(tmp_path / "stereo.wav", np.zeros((2, 100)))
    empty = _write(tmp_path / "empty.wav", np.zeros((4, 0)))
    nan = _write(tmp_path / "nan.wav", np.full((4, 100), np.nan))
    mono = _write(tmp_path / "mono.wav", np.random.default_rng(0).uniform(-0.5, 0.5, (1, 100)))
    silent_mono = _write(tmp_path / "silent_mono.wav", np.zeros((1, 100)))
    silent_foa = _write(tmp_path / "silent.wav", np.zeros((4, 100)))
    noisy_foa = _write(tmp_path / "noisy.wav", np.random.default_rng(1).uniform(-0.5, 0.5, (4, 100)))
    garbage = tmp_path / "garbage.wav"
    garbage.write_text("definitely not a wav file")
    return {
        "wrong channel count (FOA)": (["rotate", stereo, "-o", "o.wav"], "4-channel"),
        "wrong channel count (mono)": (["encode", stereo, "-o", "o.wav"], "mono"),
        "empty audio": (["energy-map", empty, "-o", "o.png"], "empty"),
        "NaN samples": (["decode", nan, "-o", "o.wav"], "NaN"),
        "elevation out of range": (["encode", mono, "--elevation", "95", "-o", "o.wav"], r"\[-90, 90\]"),
        "missing file": (["rotate", str(tmp_path / "nope.wav"), "-o", "o.wav"], "not found"),
        "unreadable file": (["energy-map", str(garbage), "-o", "o.png"], "could not read"),
        "bad pattern": (["decode", noisy_foa, "--pattern", "2", "-o", "o.wav"], "pattern"),
        # Silence has no direction: never "loudest direction +178°, +88°" (the first cell of an all-zero map).
        "silent energy map": (["energy-map", silent_foa, "-o", "o.png"], "silent"),
        "silent decode": (["decode", silent_foa, "-o", "o.wav"], "silent"),
        "silent rotate": (["rotate", silent_foa, "-o", "o.wav"], "silent"),
        "silent encode": (["encode", silent_mono, "-o", "o.wav"], "silent"),
        "bad number": (["encode", mono, "--azimuth", "left", "-o", "o.wav"], "--azimuth"),
        "missing output": (["encode", mono], "-o/--output"),
        "unknown command": (["explode"], "invalid choice"),
    }


def test_bad_input_gives_one_line_and_exit_code_2(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for case, (argv, message) in _bad_inputs(tmp_path).items():
        code = main(argv)
        captured = capsys.readouterr()
        assert code == 2, case
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("visage: error: "), (case, captured.err)
        assert "Traceback" not in captured.err, case
        assert re.search(message, lines[0]), (case, lines[0])
    assert not list(tmp_path.glob("o.*"))  # nothing written on failure
