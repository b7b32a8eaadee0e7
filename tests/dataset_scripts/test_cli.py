"""The dataset_scripts/ command lines: --help and one-line usage errors (exit code 2)."""

from __future__ import annotations

import pytest

from dataset_scripts import build_shards, download, extract_features, prepare, push_to_hub
from dataset_scripts.jobs import run_cli


def test_cli_help_and_usage_errors(tmp_path, capsys):
    for module in (download, prepare, extract_features, build_shards, push_to_hub):
        with pytest.raises(SystemExit) as exit_info:
            module.main(["--help"])
        assert exit_info.value.code == 0
        assert "usage:" in capsys.readouterr().out
    cases = [
        (prepare.main, ["--output", str(tmp_path)], "give --raw-dir"),
        (
            prepare.main,
            ["--own-videos", str(tmp_path), "--direction", "north", "--output", str(tmp_path)],
            "AZ,EL",
        ),
        (build_shards.main, ["--output", str(tmp_path), "--configs", "videos"], "--configs"),
        (
            extract_features.main,
            ["--media-dir", str(tmp_path / "none"), "--output", str(tmp_path)],
            "not found",
        ),
        (push_to_hub.main, ["--folder", str(tmp_path), "--repo-id", "no-owner", "--dry-run"], "owner/name"),
    ]
    for main, argv, message in cases:
        assert run_cli(main, argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and message in err and "\n" not in err
