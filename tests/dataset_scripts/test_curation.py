"""dataset_scripts/curation.py: the original's filters and crop direction."""

from __future__ import annotations

import numpy as np

from dataset_scripts import curation
from visage_hf.audio.foa import ambix_to_fuma, encode
from visage_hf.directions import angular_distance


def test_curation_filters_and_crop_direction():
    rate = 16000
    t = np.arange(5 * rate) / rate
    tone = (0.3 * np.sin(2 * np.pi * 500 * t)).astype(np.float32)
    foa = encode(tone, -75.0, 24.0)
    kept = curation.curate_clip(foa, rate)
    assert kept.keep and kept.reasons == [] and kept.valid_seconds == 5
    assert angular_distance(kept.azimuth, kept.elevation, -75.0, 24.0) <= 2.0
    # the per-second RMS of a sine of amplitude A is A/√2
    np.testing.assert_allclose(kept.second_rms_db, 20 * np.log10(0.3 / np.sqrt(2)), atol=1e-3)

    dead = foa.copy()
    dead[1] = 0.0  # no Y: a fake ambisonic track
    result = curation.curate_clip(dead, rate)
    assert not result.keep and "Y" in result.reasons[0]

    two_silent, three_silent = foa.copy(), foa.copy()
    two_silent[:, : 2 * rate] = 0.0
    three_silent[:, : 3 * rate] = 0.0
    assert curation.curate_clip(two_silent, rate).keep  # 3 of 5 seconds valid
    rejected = curation.curate_clip(three_silent, rate)
    assert not rejected.keep and rejected.valid_seconds == 2 and "need 3" in rejected.reasons[0]
    assert curation.required_valid_seconds(5) == 3  # the paper's 3-of-5 s rule; shorter clips scale with it
    assert curation.required_valid_seconds(2) == 2
    quieter = curation.curate_clip(foa, rate, curation.CurationThresholds(min_second_rms_db=-5.0))
    assert not quieter.keep  # -13 dBFS seconds fail a -5 dBFS threshold

    front = encode(tone, 0.0, 0.0)
    assert curation.channel_order_check(front)["w_dominant"]
    fuma_read_as_ambix = ambix_to_fuma(front)  # W/√2, X, Y, Z in the AmbiX slots
    assert not curation.channel_order_check(fuma_read_as_ambix)["w_dominant"]
