"""dataset_scripts/media_io.py: windows of an audio track decoded apart equal slices of the whole track."""

from __future__ import annotations

import numpy as np

from dataset_scripts import media_io
from visage_hf.video.io import read_audio_track


def test_audio_windows_equal_slices_of_the_whole_track(workspace):
    path = workspace["raw"] / "CCCC-CCCC_3.mp4"
    whole, rate = read_audio_track(path)
    windows = [(2.5, 1.0), (0.0, 2.0), (1.0, 0.5), (5.5, 2.0)]
    decoded = {index: (audio, r) for index, audio, r in media_io.decode_audio_windows(path, windows)}
    for index, (start, seconds) in enumerate(windows):
        audio, r = decoded[index]
        expected = whole[:, round(start * rate) : round(start * rate) + round(seconds * rate)]
        assert r == rate
        np.testing.assert_array_equal(audio, expected)  # the last window runs past the end: cut short
