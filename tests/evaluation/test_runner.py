"""Tests for visage_hf.evaluation.runner (the `visage evaluate` runner) and visage_hf.metrics.table.

Evidence: the per-clip CSV columns; an interrupted run, resumed (also after a half-written CSV line), gives
the same CSV and table as an uninterrupted one; unpaired and bad files are reported without stopping the
run; directions files in every accepted format; Table 3 layout and the two aggregation rules.
"""

import argparse
import csv
import json
import math
import subprocess
import sys

import numpy as np
import pytest

from visage_hf.audio.foa import encode
from visage_hf.audio.io import write_audio
from visage_hf.commands.evaluate import add_evaluate_parser, main
from visage_hf.data.clip_files import load_directions, match_files
from visage_hf.evaluation.runner import PER_CLIP_COLUMNS, evaluate_directories
from visage_hf.metrics.spatial import spatial_scores
from visage_hf.metrics.table import format_table, summarize_clips

RATE = 16_000


def _write_dataset(root, count=4, seconds=5.0):
    """Ground truth: a source per clip; prediction: the same kind of source 25° away (flac, to pair by stem)."""
    rng = np.random.default_rng(0)
    for index in range(count):
        samples = int(seconds * RATE)
        azimuth = -60 + 40 * index
        target = encode(rng.standard_normal(samples) * 0.1, azimuth, 0) + 0.01 * rng.standard_normal(
            (4, samples)
        )
        prediction = encode(rng.standard_normal(samples) * 0.1, azimuth + 25, 5)
        write_audio(root / "gt" / f"clip{index}.wav", target.astype(np.float32), RATE)
        write_audio(root / "pred" / f"clip{index}.flac", prediction.astype(np.float32), RATE)
    return root / "pred", root / "gt"


def test_column_constants_agree_with_the_metrics_modules():
    from visage_hf.evaluation.runner import DEFAULT_DURATION_SECONDS
    from visage_hf.metrics.semantic import VIEWS
    from visage_hf.metrics.spatial import CLIP_SECONDS, DIRECTION_COLUMNS, SPATIAL_COLUMNS

    assert (
        "clip",
        *SPATIAL_COLUMNS,
        *DIRECTION_COLUMNS,
        *(f"kld_{view}" for view in VIEWS),
    ) == PER_CLIP_COLUMNS
    assert DEFAULT_DURATION_SECONDS == CLIP_SECONDS


def test_importing_the_runner_stays_light():
    code = (
        "import sys, visage_hf; before = 'numpy' in sys.modules; import visage_hf.evaluation.runner; "
        "print(before, 'numpy' in sys.modules)"
    )
    before, after = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    if before == "True":
        pytest.skip("the package itself imports numpy")
    assert after == "False"  # `visage --help` builds this parser without loading numpy


def test_per_clip_csv_columns_exactly(tmp_path):
    pred, gt = _write_dataset(tmp_path, count=1)
    result = evaluate_directories(pred, gt, tmp_path / "report", progress=False)
    with open(tmp_path / "report" / "per_clip.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert header[:7] == ["clip", "cc_all", "cc_1fps", "cc_5fps", "auc_all", "auc_1fps", "auc_5fps"]
    assert tuple(header) == PER_CLIP_COLUMNS
    assert result.num_clips == 1
    table = (tmp_path / "report" / "table.md").read_text()
    assert "| CC All ↑ | CC 1 fps ↑ | CC 5 fps ↑ | AUC All ↑ | AUC 1 fps ↑ | AUC 5 fps ↑ |" in table
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert summary["num_clips"] == 1 and summary["mode"] == "corrected"


def test_scores_equal_the_library_call_with_the_clip_seed(tmp_path):
    pred, gt = _write_dataset(tmp_path, count=1)
    evaluate_directories(pred, gt, tmp_path / "report", mode="original", progress=False)
    with open(tmp_path / "report" / "per_clip.csv", newline="") as handle:
        row = next(csv.DictReader(handle))
    from visage_hf.audio.io import read_audio

    direct = spatial_scores(
        read_audio(pred / "clip0.flac")[0], read_audio(gt / "clip0.wav")[0], RATE, mode="original"
    )
    # Jitter differs (seeded per clip id), so AUC agrees to the jitter's tie-breaking; CC has no jitter.
    assert float(row["cc_all"]) == pytest.approx(direct.cc_all, abs=1e-12)
    assert float(row["auc_all"]) == pytest.approx(direct.auc_all, abs=1e-6)


class _Interrupt(Exception):
    pass


def test_resumed_run_gives_the_same_table(tmp_path):
    pred, gt = _write_dataset(tmp_path, count=4)
    full = evaluate_directories(pred, gt, tmp_path / "full", mode="original", progress=False)

    done = []

    def stop_after_two(clip):
        done.append(clip)
        if len(done) == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        evaluate_directories(
            pred, gt, tmp_path / "resumed", mode="original", progress=False, on_clip_done=stop_after_two
        )
    per_clip = tmp_path / "resumed" / "per_clip.csv"
    assert per_clip.read_text().count("\n") == 3  # header + 2 clips on disk
    # A crash in the middle of the next append leaves half a line behind:
    with per_clip.open("a") as handle:
        handle.write("clip2,0.93,0.9")
    resumed = evaluate_directories(pred, gt, tmp_path / "resumed", mode="original", progress=False)
    assert resumed.evaluated_now == 2
    assert resumed.table == full.table
    assert (tmp_path / "resumed" / "table.md").read_text() == (tmp_path / "full" / "table.md").read_text()
    assert per_clip.read_text() == (tmp_path / "full" / "per_clip.csv").read_text()
    # Nothing left to do: a third run recomputes nothing and still gives the same table.
    assert (
        evaluate_directories(pred, gt, tmp_path / "resumed", mode="original", progress=False).evaluated_now
        == 0
    )


def test_worker_processes_give_the_same_report(tmp_path):
    pred, gt = _write_dataset(tmp_path, count=3, seconds=2.0)
    (pred / "bad.wav").write_bytes(b"not audio")
    (gt / "bad.wav").write_bytes(b"not audio")
    kwargs = dict(mode="original", duration_seconds=2.0, progress=False)
    serial = evaluate_directories(pred, gt, tmp_path / "serial", **kwargs)
    parallel = evaluate_directories(pred, gt, tmp_path / "parallel", workers=2, **kwargs)
    assert parallel.table == serial.table and list(parallel.failed) == ["bad"]
    assert (tmp_path / "parallel" / "per_clip.csv").read_text() == (
        tmp_path / "serial" / "per_clip.csv"
    ).read_text()


def test_silent_prediction_nan_in_original_mode_skipped_in_corrected(tmp_path):
    pred, gt = _write_dataset(tmp_path, count=2, seconds=2.0)
    write_audio(pred / "clip0.flac", np.zeros((4, 2 * RATE), np.float32), RATE)
    original = evaluate_directories(pred, gt, tmp_path / "original", mode="original", progress=False)
    corrected = evaluate_directories(pred, gt, tmp_path / "corrected", duration_seconds=2.0, progress=False)
    # Original: CC of the silent clip is NaN and the dataset mean with it (evaluate_spatial.py behaviour).
    assert math.isnan(original.scores["cc_all"])
    assert "| NaN |" in original.table
    strict = json.loads((tmp_path / "original" / "summary.json").read_text(), parse_constant=pytest.fail)
    assert strict["scores"]["cc_all"] is None and strict["nan_clips"]["cc_all"] == 1
    # Corrected: a silent prediction scores CC 0 (no spatial information), averaged in.
    with open(tmp_path / "corrected" / "per_clip.csv", newline="") as handle:
        rows = {row["clip"]: row for row in csv.DictReader(handle)}
    assert float(rows["clip0"]["cc_all"]) == 0.0
    assert corrected.scores["cc_all"] == pytest.approx(float(rows["clip1"]["cc_all"]) / 2)


def test_unpaired_and_bad_files_are_reported_and_the_run_goes_on(tmp_path):
    pred, gt = _write_dataset(tmp_path, count=2, seconds=2.0)
    write_audio(gt / "only_in_gt.wav", np.zeros((4, RATE), np.float32), RATE)
    write_audio(pred / "stereo.wav", np.zeros((2, RATE), np.float32), RATE)
    write_audio(gt / "stereo.wav", np.zeros((4, RATE), np.float32), RATE)
    (pred / "garbage.wav").write_bytes(b"RIFF....")
    (gt / "garbage.wav").write_bytes(b"RIFF....")
    result = evaluate_directories(pred, gt, tmp_path / "report", progress=False, duration_seconds=2.0)
    assert result.num_clips == 2
    assert sorted(result.failed) == ["garbage", "stereo"]
    assert "4-channel" in result.failed["stereo"]
    assert [p.endswith("only_in_gt.wav") for p in result.unmatched_targets] == [True]
    with open(tmp_path / "report" / "failed.csv", newline="") as handle:
        assert sorted(row["clip"] for row in csv.DictReader(handle)) == ["garbage", "stereo"]
    assert "only_in_gt.wav" in (tmp_path / "report" / "unmatched.csv").read_text()


def test_report_with_another_configuration_is_refused_unless_overwrite(tmp_path):
    pred, gt = _write_dataset(tmp_path, count=1, seconds=2.0)
    evaluate_directories(pred, gt, tmp_path / "report", progress=False, duration_seconds=2.0)
    with pytest.raises(ValueError, match="different configuration"):
        evaluate_directories(pred, gt, tmp_path / "report", mode="original", progress=False)
    result = evaluate_directories(
        pred, gt, tmp_path / "report", mode="original", overwrite=True, progress=False
    )
    assert result.evaluated_now == 1
    with pytest.raises(FileNotFoundError):
        evaluate_directories(tmp_path / "nope", gt, tmp_path / "r2", progress=False)
    with pytest.raises(ValueError, match="embedder"):
        evaluate_directories(pred, gt, tmp_path / "r3", metrics="spatial,fad", progress=False)


def test_match_files_by_relative_path_then_unique_stem(tmp_path):
    for path in (
        "p/a/x.wav",
        "p/b/x.wav",
        "p/y.flac",
        "p/z.wav",
        "g/a/x.wav",
        "g/b/x.flac",
        "g/nested/y.wav",
        "g/w.wav",
    ):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"")
    pairs, left_pred, left_gt = match_files(tmp_path / "p", tmp_path / "g")
    assert [clip for clip, _, _ in pairs] == ["a/x", "b/x", "y"]
    assert [p.name for p in left_pred] == ["z.wav"] and [p.name for p in left_gt] == ["w.wav"]


def test_load_directions_formats(tmp_path):
    (tmp_path / "ambi.json").write_text(json.dumps({"vid_10": [45, 90], "vid_20": [0, 0]}))
    table = load_directions(tmp_path / "ambi.json")
    # indices -> true camera direction: azimuth 179 - 2a, elevation 89 - 2e
    assert table == {"vid_10": (-1.0, -1.0), "vid_20": (179.0, 89.0)}
    (tmp_path / "deg.json").write_text(json.dumps({"a": {"azimuth": 30.5, "elevation": -10}}))
    assert load_directions(tmp_path / "deg.json") == {"a": (30.5, -10.0)}
    (tmp_path / "deg.csv").write_text("clip,azimuth,elevation\na,12.5,3\n")
    assert load_directions(tmp_path / "deg.csv") == {"a": (12.5, 3.0)}
    (tmp_path / "idx.csv").write_text("file_path,elevation_index,azimuth_index\nvid_10.npy,45,90\n")
    assert load_directions(tmp_path / "idx.csv") == {"vid_10": (-1.0, -1.0)}
    (tmp_path / "bad.json").write_text(json.dumps({"a": [1.5, 2.5]}))
    with pytest.raises(ValueError, match="elevation_index"):
        load_directions(tmp_path / "bad.json")
    (tmp_path / "bad.csv").write_text("clip,az\na,1\n")
    with pytest.raises(ValueError, match="columns"):
        load_directions(tmp_path / "bad.csv")


class _TinyEmbedder:
    def embed(self, audio, sample_rate):
        frames = np.asarray(audio)[: len(audio) // 1600 * 1600].reshape(-1, 1600)
        return np.stack([frames.std(1), np.abs(frames).max(1)], axis=1)


class _TinyClassifier:
    def logits(self, audio, sample_rate):
        return np.log(np.array([np.mean(part**2) for part in np.array_split(np.asarray(audio), 4)]) + 1e-4)


def test_semantic_metrics_with_tiny_models_and_directions(tmp_path):
    pred, gt = _write_dataset(tmp_path, count=3, seconds=2.0)
    (tmp_path / "ambi.json").write_text(json.dumps({"clip0": [45, 90], "clip1": [45, 80]}))
    result = evaluate_directories(
        pred,
        gt,
        tmp_path / "report",
        directions=tmp_path / "ambi.json",
        metrics="spatial,semantic",
        embedder=_TinyEmbedder(),
        classifier=_TinyClassifier(),
        duration_seconds=2.0,
        progress=False,
    )
    assert result.missing_directions == ["clip2"]
    for key in ("fad_dec", "fad_avg", "kld_dec", "kld_avg", "cc_all"):
        assert math.isfinite(result.scores[key])
    with open(tmp_path / "report" / "per_clip.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[2]["kld_dec"] == "" and rows[2]["kld_w"] != ""
    assert result.scores["kld_w"] == pytest.approx(np.mean([float(row["kld_w"]) for row in rows]))

    # Interrupted after one clip and resumed: the per-clip caches give the same dataset-level FAD.
    def stop(clip):
        raise _Interrupt

    semantic_kwargs = dict(
        directions=tmp_path / "ambi.json",
        metrics="spatial,semantic",
        embedder=_TinyEmbedder(),
        classifier=_TinyClassifier(),
        duration_seconds=2.0,
        progress=False,
    )
    with pytest.raises(_Interrupt):
        evaluate_directories(pred, gt, tmp_path / "resumed", on_clip_done=stop, **semantic_kwargs)
    resumed = evaluate_directories(pred, gt, tmp_path / "resumed", **semantic_kwargs)
    assert resumed.evaluated_now == 2 and resumed.table == result.table
    # A row whose cached features were deleted is recomputed, not listed twice.
    (tmp_path / "resumed" / "cache" / "clip1.npz").unlink()
    again = evaluate_directories(pred, gt, tmp_path / "resumed", **semantic_kwargs)
    assert again.evaluated_now == 1 and again.num_clips == 3 and again.table == result.table
    # Ground truth against itself: FAD 0 and KLD 0 in every view.
    same = evaluate_directories(
        gt,
        gt,
        tmp_path / "same",
        directions=tmp_path / "ambi.json",
        metrics="semantic",
        embedder=_TinyEmbedder(),
        classifier=_TinyClassifier(),
        duration_seconds=2.0,
        progress=False,
    )
    assert same.scores["fad_avg"] == pytest.approx(0.0, abs=1e-9)
    assert same.scores["kld_dec"] == pytest.approx(0.0, abs=1e-12)


def test_summaries_original_propagates_nan_corrected_skips_it():
    rows = [{"cc_all": "0.5"}, {"cc_all": "nan"}, {"cc_all": "0.7"}, {"cc_all": ""}]
    original = summarize_clips(rows, ["cc_all"], mode="original")
    corrected = summarize_clips(rows, ["cc_all"], mode="corrected")
    assert math.isnan(original["scores"]["cc_all"])
    assert corrected["scores"]["cc_all"] == pytest.approx(0.6)
    assert corrected["nan_clips"] == {"cc_all": 1}


def test_table3_layout():
    table = format_table({"ViSAGe": {"fad_dec": 3.14159, "cc_all": 0.123456}, "Ambi Enc.": {}})
    lines = table.splitlines()
    assert lines[0].startswith(
        "| Method | FAD<sub>dec</sub> ↓ | KLD<sub>dec</sub> ↓ | FAD<sub>avg</sub> ↓ | CC All ↑"
    )
    assert lines[2] == "| ViSAGe | 3.14 | – | – | 0.1235 | – | – | – | – | – |"
    assert lines[3].startswith("| Ambi Enc. | – |")


def test_cli_wiring_exit_codes_and_output(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="visage")
    add_evaluate_parser(parser.add_subparsers(dest="command"))
    pred, gt = _write_dataset(tmp_path, count=1, seconds=2.0)
    args = parser.parse_args(
        [
            "evaluate",
            "--pred",
            str(pred),
            "--gt",
            str(gt),
            "-o",
            str(tmp_path / "r"),
            "--duration",
            "2",
            "--no-progress",
        ]
    )
    assert args.handler is args.func
    assert args.func(args) == 0
    assert "| pred |" in capsys.readouterr().out
    assert main(["--pred", str(tmp_path / "missing"), "--gt", str(gt), "-o", str(tmp_path / "r2")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("visage evaluate: error:") and "not found" in error and "Traceback" not in error
    assert (
        main(
            ["--pred", str(pred), "--gt", str(gt), "-o", str(tmp_path / "r3"), "--metrics", "spatial,colour"]
        )
        == 2
    )
