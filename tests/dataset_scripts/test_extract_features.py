"""dataset_scripts/extract_features.py: the feature files, codes equal to the codec's on the prepared FOA,
interruption and resumption."""

from __future__ import annotations

import numpy as np
import pytest

from dataset_scripts import extract_features
from visage_hf.audio.codec import FOACodec
from visage_hf.audio.foa import rotate
from visage_hf.audio.io import read_audio

from .helpers import CLIP_SECONDS, SOURCES, all_clip_ids, extract_args


def test_features_files(pipeline):
    for clip_id in all_clip_ids():
        arrays, meta = extract_features.load_features(pipeline["features"] / f"{clip_id}.npz")
        frames = CLIP_SECONDS * 4
        codec_frames = -(-CLIP_SECONDS * 44100 // 512)  # ceil(n_44k / hop), the original's count
        assert arrays["clip_features"].shape == (frames, 512) and arrays["clip_features"].dtype == np.float16
        assert arrays["energy_map"].shape == (frames, 49)
        np.testing.assert_allclose(arrays["energy_map"].sum(axis=1), 1.0, rtol=1e-5)
        assert arrays["codes"].shape == (codec_frames, 36) and arrays["codes"].dtype == np.int16
        rotated = arrays["codes_yaw-90"]
        # A rotation leaves W unchanged and moves energy between Y and X: W codes equal, the others do not.
        np.testing.assert_array_equal(rotated[:, :9], arrays["codes"][:, :9])
        assert not np.array_equal(rotated[:, 9:], arrays["codes"][:, 9:])
        assert meta["clip_id"] == clip_id and (meta["azimuth"], meta["elevation"]) == SOURCES[clip_id[:11]]


def test_codes_match_the_codec_on_the_prepared_foa(pipeline):
    # Batched extraction equals a direct FOACodec call on the prepared FLAC (channel-major -> time-major).
    codec = FOACodec.from_pretrained(pipeline["root"] / "dac")
    clip_id = "BBBBBBBBBB2_0"
    foa, sample_rate = read_audio(pipeline["media"] / clip_id / "foa.flac")
    arrays, _ = extract_features.load_features(pipeline["features"] / f"{clip_id}.npz")
    expected = codec.encode(foa, sample_rate).numpy()  # (4, 9, T)
    np.testing.assert_array_equal(arrays["codes"], expected.reshape(36, -1).T)
    expected_rotated = codec.encode(rotate(foa, yaw=-90), sample_rate).numpy()
    np.testing.assert_array_equal(arrays["codes_yaw-90"], expected_rotated.reshape(36, -1).T)


def test_extract_features_interrupted_then_resumed(workspace, pipeline, tmp_path, monkeypatch):
    output = tmp_path / "features"
    real_savez = np.savez
    calls = []

    def crash_on_third(handle, **arrays):
        calls.append(1)
        if len(calls) == 3:
            handle.write(b"PK\x03\x04 half an npz")
            raise KeyboardInterrupt
        return real_savez(handle, **arrays)

    argv = extract_args(workspace, pipeline["media"], output, "--rotation-yaws=")  # no rotated codes: faster
    monkeypatch.setattr(np, "savez", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        extract_features.main(argv)
    # the two clips of the first batch are complete; the crashed write left no file, not even a temporary
    assert sorted(p.name for p in output.iterdir()) == sorted(f"{c}.npz" for c in all_clip_ids()[:2])
    monkeypatch.setattr(np, "savez", real_savez)
    assert extract_features.main(argv) == 0
    assert sorted(p.name for p in output.iterdir()) == sorted(f"{c}.npz" for c in all_clip_ids())
    for clip_id in all_clip_ids():
        resumed, _ = extract_features.load_features(output / f"{clip_id}.npz")
        reference, _ = extract_features.load_features(pipeline["features"] / f"{clip_id}.npz")
        assert set(resumed) == {"clip_features", "energy_map", "codes"}
        for key in resumed:
            np.testing.assert_array_equal(resumed[key], reference[key])
