"""dataset_scripts/prepare.py: the field-of-view crop looks at the object the scene drew and the FOA's energy maximum
at the tone it encoded; interruption and resumption leave nothing half-written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dataset_scripts import prepare
from visage_hf.audio.foa import direction_from_energy_map, energy_map
from visage_hf.audio.io import read_audio
from visage_hf.directions import angular_distance
from visage_hf.video.io import read_frames

from .helpers import (
    CLIP_SECONDS,
    FOV_SIZE,
    REPO_ROOT,
    SOURCES,
    SPLIT_CLIPS,
    all_clip_ids,
    no_leftovers,
    prepare_args,
    red_centroid,
)


def test_prepared_clips_look_at_the_object_and_the_tone(pipeline):
    media = pipeline["media"]
    assert sorted(p.name for p in media.iterdir() if p.is_dir()) == sorted(all_clip_ids())
    for clip_id in all_clip_ids():
        meta = json.loads((media / clip_id / "meta.json").read_text())
        azimuth, elevation = SOURCES[clip_id[:11]]
        assert (meta["azimuth"], meta["elevation"]) == (azimuth, elevation)
        assert meta["split"] in SPLIT_CLIPS and clip_id in SPLIT_CLIPS[meta["split"]]
        frames, _ = read_frames(media / clip_id / "video.mp4", fps=None)
        assert frames.shape == (CLIP_SECONDS * 4, FOV_SIZE, FOV_SIZE, 3)
        x, y = red_centroid(frames)
        assert (
            abs(x - (FOV_SIZE - 1) / 2) < 1.5 and abs(y - (FOV_SIZE - 1) / 2) < 1.5
        )  # the crop is centred on it
        foa, sample_rate = read_audio(media / clip_id / "foa.flac")
        assert foa.shape == (4, CLIP_SECONDS * 48000) and sample_rate == 48000
        found = direction_from_energy_map(energy_map(foa))  # where the tone comes from, on the 2° grid
        assert angular_distance(*found, azimuth, elevation) <= 4.0
        assert meta["channel_order_check"]["w_dominant"]


def test_original_projection_mode_is_also_centred(workspace, tmp_path):
    media = tmp_path / "media_original"
    assert prepare.main(prepare_args(workspace, media, "--mode", "original", "--limit", "2")) == 0
    for clip_dir in sorted(p for p in media.iterdir() if p.is_dir()):
        assert json.loads((clip_dir / "meta.json").read_text())["projection_mode"] == "original"
        x, y = red_centroid(read_frames(clip_dir / "video.mp4", fps=None)[0])
        # the original samples ~1 px right of and below the view centre at 896 px; at 256 px that is ~3.5 px
        assert abs(x - (FOV_SIZE - 1) / 2) < 3.5 and abs(y - (FOV_SIZE - 1) / 2) < 3.5


def test_prepare_interrupted_then_resumed(workspace, pipeline, tmp_path, monkeypatch):
    media = tmp_path / "media"
    real_write_audio = prepare.write_audio
    calls = []

    def crash_on_third(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            Path(path).write_bytes(b"half a flac")  # a half-written file inside the clip's staging folder
            raise KeyboardInterrupt
        return real_write_audio(path, *args, **kwargs)

    monkeypatch.setattr(prepare, "write_audio", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        prepare.main(prepare_args(workspace, media))
    assert len([p for p in media.iterdir() if p.is_dir() and not p.name.startswith(".")]) == 2
    assert no_leftovers(media) == []
    monkeypatch.setattr(prepare, "write_audio", real_write_audio)
    assert prepare.main(prepare_args(workspace, media)) == 0
    assert sorted(p.name for p in media.iterdir()) == sorted(all_clip_ids())
    for clip_id in all_clip_ids():
        assert sorted(p.name for p in (media / clip_id).iterdir()) == ["foa.flac", "meta.json", "video.mp4"]
        np.testing.assert_array_equal(read_audio(media / clip_id / "foa.flac")[0],
                                      read_audio(pipeline["media"] / clip_id / "foa.flac")[0])  # fmt: skip


def test_prepare_killed_process_leaves_nothing_half_written(workspace, tmp_path):
    media = tmp_path / "media"
    driver = tmp_path / "driver.py"
    driver.write_text(
        textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        sys.path.insert(0, {str(REPO_ROOT)!r})
        from dataset_scripts import prepare
        real, calls = prepare.write_audio, []
        def write_then_die(path, *args, **kwargs):
            calls.append(path)
            if len(calls) == 2:
                Path(path).write_bytes(b"half")
                os.kill(os.getpid(), signal.SIGKILL)
            return real(path, *args, **kwargs)
        prepare.write_audio = write_then_die
        prepare.main(sys.argv[1:])
    """)
    )
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    killed = subprocess.run(
        [sys.executable, str(driver), *prepare_args(workspace, media)], env=env, capture_output=True
    )
    assert killed.returncode == -signal.SIGKILL
    complete = [p.name for p in media.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(complete) == 1 and no_leftovers(media) != []  # the dead process left its staging folder
    assert (
        prepare.main(prepare_args(workspace, media)) == 0
    )  # resumes and removes the dead process's leftovers
    assert no_leftovers(media) == []
    assert sorted(p.name for p in media.iterdir()) == sorted(all_clip_ids())
    for clip_id in all_clip_ids():
        foa, _ = read_audio(media / clip_id / "foa.flac")
        assert foa.shape == (4, CLIP_SECONDS * 48000)
