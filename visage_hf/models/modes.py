"""The two faithfulness modes, owned here for the whole package.

``"original"`` reproduces the released ViSAGe code, quirks included (its published numbers depend on them);
``"corrected"`` (the default) fixes what differs from the paper or from physics. Every quirk that differs is
documented where it is implemented and tested in both modes. This module imports nothing, so every layer
(directions, audio, video, metrics) may use it, and a model saved with remote code carries it as a sibling.
"""

from __future__ import annotations

__all__ = ["DEFAULT_MODE", "MODES", "check_mode"]

MODES = ("corrected", "original")
DEFAULT_MODE = "corrected"


def check_mode(mode: str, name: str = "mode") -> str:
    """``mode`` if it is one of :data:`MODES`, else a ValueError naming the choices."""
    if mode not in MODES:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, MODES))}, got {mode!r}")
    return mode
