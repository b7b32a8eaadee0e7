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
