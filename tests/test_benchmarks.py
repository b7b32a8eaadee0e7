"""Every benchmark prints the machine it measured on (no speed without its CPU)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_every_benchmark_prints_the_machine():
    scripts = [path for path in BENCHMARKS.glob("*.py") if path.name != "machine.py"]
    assert scripts
    for script in scripts:
        assert "print(describe_machine())" in script.read_text(), script.name


def test_machine_line_names_the_cpu_and_its_isa():
    spec = importlib.util.spec_from_file_location("machine", BENCHMARKS / "machine.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    line = module.describe_machine()
    assert line.startswith("machine: ") and "; ISA " in line and "CPU(s)" in line
    model, flags = module._cpuinfo()
    if Path("/proc/cpuinfo").exists():
        assert model in line and all(flag in line for flag in flags)


def test_gpu_check_runs_end_to_end_on_a_smoke_model(capsys):
    """The GPU script is run once per lent GPU, so it must not rot between loans: its CPU smoke run goes through
    the same generation (per-clip generators) and decode calls, and its figures follow from its timings."""
    import re
    import sys

    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location("gpu_check", BENCHMARKS / "gpu.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        argv = ["--device", "cpu", "--size", "smoke", "--dtype", "float32", "--seconds", "0.5"]
        assert module.main([*argv, "--batches", "2", "--repeats", "1"]) == 0
    finally:
        sys.path.remove(str(BENCHMARKS))
    output = capsys.readouterr().out
    single = re.search(r"generation ([\d.]+) s \+ DAC decode ([\d.]+) s -> real-time factor ([\d.]+)", output)
    assert single, output
    generation, decode, factor = map(float, single.groups())
    assert abs((generation + decode) / 0.5 - factor) <= 0.002 + 1e-3 * factor
    batch = re.search(r"batch 2: generation ([\d.]+) s \+ decode ([\d.]+) s -> ([\d.]+) clips/s", output)
    assert batch, output
    generation, decode, per_second = map(float, batch.groups())
    assert abs(2 / (generation + decode) - per_second) <= 0.05 + 0.01 * per_second
