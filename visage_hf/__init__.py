"""visage-hf: video to first-order ambisonics (ViSAGe, ICLR 2025), Hugging Face native.

Public names load lazily (PEP 562), so ``import visage_hf`` and the ``visage`` command stay fast; the first access
to a model class (e.g. ``from visage_hf import VisageForFOA``) imports torch and transformers and registers
``VisageConfig`` / ``VisageForFOA`` with transformers' Auto classes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "VisageConfig": "configuration_visage",
    "VisageForFOA": "modeling_visage",
    "VisagePreTrainedModel": "modeling_visage",
    "register_visage_auto_classes": "modeling_visage",
    "VisagePipeline": "pipeline",
    "VisagePipelineOutput": "pipeline",
    "VisageFeatureExtractor": "features",
    "FOACodec": "codec",
    "build_tiny_random_pipeline": "tiny",
    "export_generation": "export",
    "render_binaural": "binaural",
}

__all__ = [  # noqa: RUF022 (grouped as _EXPORTS)
    "__version__",
    "VisageConfig",
    "VisageForFOA",
    "VisagePreTrainedModel",
    "register_visage_auto_classes",
    "VisagePipeline",
    "VisagePipelineOutput",
    "VisageFeatureExtractor",
    "FOACodec",
    "build_tiny_random_pipeline",
    "export_generation",
    "render_binaural",
]

if TYPE_CHECKING:
    from .binaural import render_binaural
    from .codec import FOACodec
    from .configuration_visage import VisageConfig
    from .export import export_generation
    from .features import VisageFeatureExtractor
    from .modeling_visage import VisageForFOA, VisagePreTrainedModel, register_visage_auto_classes
    from .pipeline import VisagePipeline, VisagePipelineOutput
    from .tiny import build_tiny_random_pipeline


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'visage_hf' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
