"""The tiny-random pipeline (the quick start's stand-in for the release) writes what the README says: noise."""

from __future__ import annotations

import numpy as np

from visage_hf.pipelines.tiny import build_tiny_random_pipeline


def test_tiny_random_audio_is_audible_noise_different_per_channel():
    pipe = build_tiny_random_pipeline(window_video_frames=4)
    frames = np.random.default_rng(0).integers(0, 256, size=(4, 56, 56, 3), dtype=np.uint8)
    audio = pipe(frames, azimuth=30.0, elevation=0.0, seed=0, progress=False).audio[0]
    audio = np.asarray(audio, dtype=np.float64)
    assert audio.shape[0] == 4
    rms = np.sqrt(np.mean(audio**2, axis=1))
    assert np.all(20 * np.log10(rms) > -35), rms  # audible: the README's "noise", not a near-constant
    assert np.all(np.abs(audio.mean(axis=1)) < 0.1 * rms)  # no DC offset dressed up as sound
    assert np.all(np.abs(audio).max(axis=1) <= 1.0)
    correlation = np.corrcoef(audio)
    assert np.all(np.abs(correlation[np.triu_indices(4, 1)]) < 0.9), correlation  # four different channels
