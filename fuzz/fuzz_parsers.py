"""Coverage-guided fuzzing (atheris / libFuzzer) of every parser that reads a user file.

Targets: ``boxes`` (MP4 box walker, SA3D/spherical reader, chunk offsets, SA3D injection), ``audio``
(``read_audio`` on WAV/FLAC), ``video`` (``probe`` + ``read_frames`` through PyAV), ``recipe`` (YAML recipes),
``features`` (Parquet feature files). Each input must end in success or one ``ValueError`` /
``FileNotFoundError``; any other exception is a crash, a call over ``--timeout`` seconds a hang, and the
process may not grow past ``--rss-limit-mb``.

Run all targets for N minutes each and print a table (inputs tried, crashes, hangs, peak RSS)::

    pip install -e ".[test,fuzz]"
    python fuzz/fuzz_parsers.py --minutes 3            # every target, one after the other
    python fuzz/fuzz_parsers.py --target boxes --minutes 10

The corpus of each target grows under ``fuzz/corpus/<target>/`` (git-ignored) and is seeded with small valid
files built by ``tests/hostile/builders.py``; crashing inputs are written to ``fuzz/artifacts/<target>/``.
Python code under ``visage_hf`` is instrumented; FFmpeg and libsndfile are not (they are exercised, not
measured).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ("boxes", "audio", "video", "recipe", "features")
CLEAR_ERRORS = (ValueError, FileNotFoundError)
MAX_LEN = {"boxes": 8192, "audio": 4096, "video": 8192, "recipe": 1024, "features": 65536}


# ------------------------------------------------------------------------------------------ seeds


def write_seeds(target: str, corpus: Path) -> None:
    """Put small valid inputs of ``target`` into an empty corpus folder."""
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    sys.path.insert(0, str(ROOT))
    from tests.hostile import builders

    scratch = Path(tempfile.mkdtemp(prefix="visage-fuzz-seed-"))
    seeds: dict[str, bytes] = {}
    if target == "boxes":
        seeds["foa.mp4"] = builders.foa_mp4(scratch / "foa.mp4").read_bytes()
        seeds["video.mp4"] = builders.timed_mp4(scratch / "v.mp4", [0.0, 0.25]).read_bytes()
    elif target == "audio":
        seeds["pcm.wav"] = builders.wav_bytes(channels=2, frames=32)
        seeds["float.wav"] = builders.wav_bytes(float_samples=[0.0, 0.5, -0.5, 0.25])
    elif target == "video":
        seeds["v.mp4"] = builders.timed_mp4(scratch / "v.mp4", [0.0, 0.25, 0.5]).read_bytes()
        seeds["v.mkv"] = builders.timed_mp4(
            scratch / "v.mkv", [0.0, 0.4], container_format="matroska"
        ).read_bytes()
        seeds["v.y4m"] = builders.y4m_bytes(16, 16, payload=16 * 16 * 3 // 2)
    elif target == "recipe":
        seeds["tiny.yaml"] = (ROOT / "visage_hf/training/configs").glob("*.yaml").__next__().read_bytes()
        seeds["odd.yaml"] = b"learning_rate: [1, 2]\nseed: .nan\nbad key: 3\n"
    elif target == "features":
        seeds["features.parquet"] = _feature_seed(scratch)
    for name, data in seeds.items():
        (corpus / name).write_bytes(data)


def _feature_seed(scratch: Path) -> bytes:
    import datasets
    import numpy as np

    rows = [
        {
            "clip_id": "a",
            "clip_features": np.zeros((2, 8), np.float16),
            "energy_map": np.zeros((2, 4), np.float32),
            "elevation_index": 1,
            "azimuth_index": 2,
            "codes": np.zeros((3, 36), np.int16),
        }
    ]
    path = scratch / "seed.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    return path.read_bytes()


# ------------------------------------------------------------------------------------------ one target


def _target_function(target: str, scratch: Path):
    """The function libFuzzer calls with each input (bytes); imports are instrumented."""
    import atheris

    with atheris.instrument_imports(include=["visage_hf"]):
        from visage_hf.audio.io import read_audio
        from visage_hf.training.arguments import load_recipe
        from visage_hf.video.io import probe, read_frames
        from visage_hf.video.sa3d import chunk_offsets, inject_spatial_metadata, read_sa3d, walk_boxes

    suffix = {"boxes": ".mp4", "audio": ".wav", "video": ".mp4", "recipe": ".yaml", "features": ".parquet"}[
        target
    ]
    path = scratch / f"input{suffix}"

    def boxes(path):
        for reader in (walk_boxes, read_sa3d, chunk_offsets):
            _clear(reader, path)
        _clear(inject_spatial_metadata, path, scratch / "out.mp4")

    def video(path):
        _clear(probe, path)
        _clear(read_frames, path, fps=4.0)

    def features(path):
        from visage_hf.data.features import load_feature_dataset

        _clear(load_feature_dataset, data_files=[str(path)])

    calls = {
        "boxes": boxes,
        "audio": lambda p: _clear(read_audio, p),
        "video": video,
        "recipe": lambda p: _clear(load_recipe, p),
        "features": features,
    }

    def one_input(data: bytes) -> None:
        path.write_bytes(data)
        calls[target](path)

    return one_input


def _clear(call, *args, **kwargs) -> None:
    with contextlib.suppress(CLEAR_ERRORS):
        call(*args, **kwargs)


def run_target(target: str, seconds: int, timeout: int, rss_limit_mb: int) -> int:
    """Run libFuzzer on one target in this process (it exits when done)."""
    import atheris

    corpus = ROOT / "fuzz" / "corpus" / target
    artifacts = ROOT / "fuzz" / "artifacts" / target
    artifacts.mkdir(parents=True, exist_ok=True)
    if not corpus.is_dir() or not any(corpus.iterdir()):
        raise SystemExit(f"empty corpus {corpus}: run without --child first (it writes the seeds)")
    scratch = Path(tempfile.mkdtemp(prefix=f"visage-fuzz-{target}-"))
    one_input = _target_function(target, scratch)
    argv = [
        sys.argv[0],
        str(corpus),
        f"-max_total_time={seconds}",
        f"-timeout={timeout}",
        f"-rss_limit_mb={rss_limit_mb}",
        f"-max_len={MAX_LEN[target]}",
        f"-artifact_prefix={artifacts}/",
        "-print_final_stats=1",
    ]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()
    return 0


# ------------------------------------------------------------------------------------------ report


def _summarise(target: str, minutes: float, log: str, returncode: int) -> dict:
    def stat(name: str) -> int | None:
        found = re.findall(rf"stat::{name}:\s+(\d+)", log)
        return int(found[-1]) if found else None

    crashes = len(re.findall(r"(?m)^==\d+== ERROR: libFuzzer: (?!timeout)|Uncaught Python exception", log))
    hangs = len(re.findall(r"ERROR: libFuzzer: timeout|ALARM: working on the last Unit", log))
    return {
        "target": target,
        "minutes": minutes,
        "inputs": stat("number_of_executed_units"),
        "crashes": crashes,
        "hangs": hangs,
        "peak_rss_mb": stat("peak_rss_mb"),
        "corpus": len(list((ROOT / "fuzz" / "corpus" / target).glob("*"))),
        "exit": returncode,
    }


def run_all(targets, minutes: float, timeout: int, rss_limit_mb: int) -> list[dict]:
    rows = []
    for target in targets:
        # Seeds are built here, not in the fuzzing process: building them imports visage_hf before atheris
        # could instrument it.
        write_seeds(target, ROOT / "fuzz" / "corpus" / target)
        command = [sys.executable, __file__, "--target", target, "--minutes", str(minutes), "--child"]
        command += ["--timeout", str(timeout), "--rss-limit-mb", str(rss_limit_mb)]
        result = subprocess.run(
            command, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
        )
        log = result.stdout + result.stderr
        (ROOT / "fuzz" / "artifacts" / target).mkdir(parents=True, exist_ok=True)
        (ROOT / "fuzz" / "artifacts" / target / "last_run.log").write_text(log[-200_000:])
        row = _summarise(target, minutes, log, result.returncode)
        rows.append(row)
        print(_format_row(row), flush=True)
    return rows


def _format_row(row: dict) -> str:
    return (
        f"| {row['target']} | {row['minutes']:g} | {row['inputs']} | {row['crashes']} | {row['hangs']} | "
        f"{row['peak_rss_mb']} | {row['corpus']} | {row['exit']} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=TARGETS, action="append", help="default: all")
    parser.add_argument("--minutes", type=float, default=3.0, help="per target (default 3)")
    parser.add_argument("--timeout", type=int, default=20, help="seconds one input may take (a hang past it)")
    parser.add_argument("--rss-limit-mb", type=int, default=2048, help="peak memory of the fuzzing process")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    targets = args.target or list(TARGETS)
    if args.child:
        return run_target(targets[0], max(1, round(args.minutes * 60)), args.timeout, args.rss_limit_mb)
    print("| target | minutes | inputs tried | crashes | hangs | peak RSS (MB) | corpus files | exit |")
    print("|---|---|---|---|---|---|---|---|")
    rows = run_all(targets, args.minutes, args.timeout, args.rss_limit_mb)
    return 1 if any(row["crashes"] or row["hangs"] or row["exit"] for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
