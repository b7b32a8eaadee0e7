"""Every benchmark prints the machine it measured on (no speed without its CPU)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from visage_hf.models.configuration_visage import VisageConfig

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


def test_machine_line_names_the_numba_target_a_run_is_held_to():
    # NUMBA_CPU_NAME=haswell holds the kernels to AVX2 on a newer CPU: the line must say so.
    script = "import machine; print(machine.describe_machine())"
    environment = {**os.environ, "NUMBA_CPU_NAME": "haswell"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=BENCHMARKS,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "; numba kernels haswell;" in result.stdout


def _load_benchmark(name: str):
    import sys

    sys.path.insert(0, str(BENCHMARKS))  # generate.py imports its sibling machine.py
    try:
        spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def test_generation_floor_counts_the_weights_a_step_reads(tiny_model):
    """The floor's parameter count equals the decoder's step-weight tensors (self-attention q/k/v/o,
    cross-attention q/o, fc1, fc2), counted on a built model, plus the live heads of the pattern's steps, counted
    from the canvas `generate` fills (an independent source of which heads are live)."""
    from visage_hf.models.generation import build_code_canvas, stream_schedule

    generate = _load_benchmark("generate")
    config = tiny_model.config
    layer_weights = 0
    for layer in tiny_model.model.decoder.layers:
        attention, cross = layer.self_attn, layer.encoder_attn
        step_linears = [attention.q_proj, attention.k_proj, attention.v_proj, attention.out_proj]
        step_linears += [cross.q_proj, cross.out_proj, layer.fc1, layer.fc2]
        layer_weights += sum(linear.weight.numel() for linear in step_linears)
    canvas = build_code_canvas(config.code_pattern, 1, generate.CLIP_CODEC_FRAMES, config.code_pad_id)
    schedule = stream_schedule(canvas)
    assert len(schedule) == generate.CLIP_STEPS
    live = sum(len(streams) for streams in schedule) / len(schedule)
    head_weights = live * tiny_model.heads[0].weight.numel()
    assert generate.step_weight_count(config) == pytest.approx(layer_weights + head_weights, rel=1e-12)


def test_generation_floor_counts_the_keys_and_values_attention_reads(
    tiny_model, make_conditions, monkeypatch
):
    """The floor's attention term against what a real generation's attention receives, step by step: the keys
    and values of every self- and cross-attention call after the first step, recorded as SDPA or the kernel gets
    them."""
    import torch.nn.functional as F

    from visage_hf.models import encoder_decoder
    from visage_hf.models.fused_step import FusedDecoderStep

    generate = _load_benchmark("generate")
    read = []
    sdpa, kernel = F.scaled_dot_product_attention, encoder_decoder.single_query_attention

    def record(original):
        def attend(query, key, value, *args, **kwargs):
            if query.shape[-2] == 1:  # a decoder step (the encoder attends with all its rows)
                read.append((key.numel() + value.numel()) * 4)
            return original(query, key, value, *args, **kwargs)

        return attend

    monkeypatch.setattr(encoder_decoder.F, "scaled_dot_product_attention", record(sdpa))
    monkeypatch.setattr(encoder_decoder, "single_query_attention", record(kernel))
    # The layers one by one, so that every attention call is seen here (the fused step reads the same arrays).
    monkeypatch.setattr(FusedDecoderStep, "build", classmethod(lambda cls, layers: None))
    clip, energy, direction = make_conditions(tiny_model.config, batch=1, frames=4)
    tiny_model.generate(clip, energy, direction, seed=0, num_frames=3)  # 7 steps, joint guidance: 2 rows
    per_step = 2 * tiny_model.config.decoder_layers
    steps = len(read) // per_step
    assert steps == 7
    measured = sum(read[per_step:]) / (steps - 1)  # step 0 (the prompt) left out, as the benchmark does
    assert generate.cache_bytes_per_step(tiny_model.config, 2, steps, video_frames=4) == pytest.approx(
        measured, rel=1e-12
    )


def test_step_clock_leaves_its_bandwidth_probes_out_of_the_steps(monkeypatch):
    """A clock driven by a fake time: steps of known lengths, a probe every 4th step that takes 1 s. The steps'
    seconds must be the known ones (probes left out), and each pair must get the probe nearest to it."""
    generate = _load_benchmark("generate")
    now = [0.0]
    monkeypatch.setattr(generate.time, "perf_counter", lambda: now[0])
    probes = iter(range(1, 100))

    def probe():
        now[0] += 1.0  # a probe that costs a whole second
        return float(next(probes))

    clock = generate.StepClock(probe, probe_every=4)
    lengths = [0.5] + [0.01 * (step + 1) for step in range(12)]  # the first step (the prompt) is left out
    for length in lengths:
        now[0] += length
        clock()
    deltas = lengths[2:]  # stamps 1..12: the step after the first one on
    expected = [(a + b) / 2 for a, b in zip(deltas[::2], deltas[1::2])]
    assert clock.step_seconds() == pytest.approx(expected, abs=1e-12)
    # Probes after stamps 3, 7, 11 (the 4th, 8th, 12th calls): bandwidths 1, 2, 3. Pair j lies around stamp 2 + 2j.
    assert clock.probes == [(3, 1.0), (7, 2.0), (11, 3.0)]
    assert clock.step_bandwidths() == [1.0, 1.0, 2.0, 2.0, 3.0]
    assert clock.probe_seconds == pytest.approx(3.0)
    assert generate.StepClock().step_bandwidths() == []


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
    singles = re.findall(
        r"single clip, (static steps|op by op): generation ([\d.]+) s \(([\d.]+) ms a step\) "
        r"\+ DAC decode ([\d.]+) s -> real-time factor ([\d.]+)",
        output,
    )
    assert [variant for variant, *_ in singles] == ["static steps", "op by op"], output
    config = VisageConfig(**module.SMOKE)
    steps = config.code_pattern.num_steps(config.frames_for_video_frames(2))  # 0.5 s at 4 fps
    for _, generation, per_step, decode, factor in singles:
        generation, per_step, decode, factor = map(float, (generation, per_step, decode, factor))
        rounding = 0.001 / 0.5 + 0.0005  # times printed to 1 ms, the factor to 3 decimals
        assert abs((generation + decode) / 0.5 - factor) <= rounding + 1e-9
        assert abs(1000 * generation / steps - per_step) <= 0.005 + 0.0005 / steps * 1000
    # fp32: the fixed-shape steps give the op-by-op steps' greedy codes
    assert "static vs op-by-op steps: 100.00 % agree (identical; torch.float32)" in output
    batch = re.search(r"batch 2: generation ([\d.]+) s \+ decode ([\d.]+) s -> ([\d.]+) clips/s", output)
    assert batch, output
    generation, decode, per_second = map(float, batch.groups())
    rounding = 2 * 0.001 / (generation + decode - 0.001) ** 2 + 0.005  # times to 1 ms, clips/s to 2 decimals
    assert abs(2 / (generation + decode) - per_second) <= rounding
