"""``accelerate launch visage_hf/train.py --config <recipe>``: the training entry point (see visage_hf.training)."""

if __package__ in (None, ""):  # run as a file from a source checkout: make `visage_hf` importable
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from visage_hf.training.train import _cli, main

__all__ = ["main"]

if __name__ == "__main__":
    _cli()
