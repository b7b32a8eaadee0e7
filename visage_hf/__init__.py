"""visage-hf: video to first-order ambisonics (ViSAGe), Hugging Face native."""

__version__ = "0.1.0"
