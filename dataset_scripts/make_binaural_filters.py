"""Derive the default HRIR package data (visage_hf/audio/assets/mit_kemar_hrirs.npz) from MIT KEMAR.

Source: ``MIT_KEMAR_normal_pinna.sofa`` as shipped by Debian's ``libmysofa1`` package
(``/usr/share/libmysofa/``; without root: ``apt-get download libmysofa1 && dpkg -x libmysofa1_*.deb /tmp/x``).
MIT KEMAR: Bill Gardner and Keith Martin, MIT Media Lab, 1994 — "provided free with no restrictions on use,
provided the authors are cited when the data is used in any research or commercial application".

What is kept, and why it stays small (< 400 kB):
* all 710 measured directions (elevation −40° to 90°), so nearest-direction selection works for any layout;
* the left ear only: the set is exactly left/right symmetric (checked below), so the right ear at azimuth
  ``a`` is the left ear at ``−a`` (stored as ``mirror_index``);
* 256 taps after dropping the leading samples that are silent in every response (the common delay; relative
  delays between directions and ears are kept), with a 32-sample half-Hann fade-out;
* float16 samples (the script reports the quantisation error relative to the peak).

Usage: python dataset_scripts/make_binaural_filters.py [--sofa PATH] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

from visage_hf.audio.binaural import load_sofa
from visage_hf.directions import wrap_azimuth

DEFAULT_SOFA = "/usr/share/libmysofa/MIT_KEMAR_normal_pinna.sofa"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "visage_hf" / "assets" / "mit_kemar_hrirs.npz"


def mirror_indices(azimuth: np.ndarray, elevation: np.ndarray) -> np.ndarray:
    """For each direction, the index of the direction mirrored left <-> right (azimuth negated)."""
    keys = {
        (round(float(wrap_azimuth(a)), 3), round(float(e), 3)): i
        for i, (a, e) in enumerate(zip(azimuth, elevation))
    }
    mirror = []
    for a, e in zip(azimuth, elevation):
        key = (round(float(wrap_azimuth(-a)), 3), round(float(e), 3))
        if key not in keys:
            raise SystemExit(
                f"no mirrored measurement for azimuth {a:.3f}°, elevation {e:.3f}°: the grid is not symmetric"
            )
        mirror.append(keys[key])
    return np.asarray(mirror, dtype=np.int32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sofa", default=DEFAULT_SOFA, help="MIT_KEMAR_normal_pinna.sofa")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--taps", type=int, default=256)
    parser.add_argument("--fade", type=int, default=32)
    args = parser.parse_args()

    hrirs = load_sofa(args.sofa)
    ir = hrirs.hrirs.astype(np.float64)  # (M, 2, N)
    print(f"{hrirs.name}: {ir.shape[0]} directions, {ir.shape[2]} taps at {hrirs.sample_rate} Hz")

    mirror = mirror_indices(hrirs.azimuth, hrirs.elevation)
    asymmetry = np.abs(ir[mirror, 0] - ir[:, 1]).max() / np.abs(ir).max()
    print(f"left/right symmetry: max |right(a) - left(-a)| = {asymmetry:.2e} of peak")
    if asymmetry > 1e-6:
        raise SystemExit("the set is not left/right symmetric: store both ears instead")

    left = ir[:, 0]
    peak = np.abs(left).max()
    onset = int(np.argmax(np.any(np.abs(ir) > 1e-3 * peak, axis=(0, 1))))
    lead = max(onset - 8, 0)  # keep 8 samples of (near-)silence before the earliest onset
    energy = np.sum(left**2, axis=-1)
    dropped_lead = np.sum(left[:, :lead] ** 2, axis=-1) / energy
    kept = left[:, lead : lead + args.taps].copy()
    fade = np.hanning(2 * args.fade)[args.fade :]
    kept[:, -args.fade :] *= fade
    lost = 1 - np.sum(kept**2, axis=-1) / energy
    print(f"dropped {lead} leading samples (max energy there {dropped_lead.max():.1e});")
    print(f"truncation to {args.taps} taps loses at most {100 * lost.max():.2f} % of a response's energy")

    stored = kept.astype(np.float16)
    error = np.abs(stored.astype(np.float64) - kept).max() / peak
    print(f"float16 quantisation: max error {error:.1e} of peak ({20 * np.log10(error):.0f} dB)")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".hrirs.", suffix=".npz", dir=out.parent)
    os.close(handle)
    try:
        np.savez_compressed(
            temporary,
            hrir_left=stored,
            mirror_index=mirror,
            azimuth=hrirs.azimuth.astype(np.float32),
            elevation=hrirs.elevation.astype(np.float32),
            sample_rate=np.int32(hrirs.sample_rate),
        )
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; package data must be world-readable
        os.replace(temporary, out)
    finally:
        Path(temporary).unlink(missing_ok=True)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
