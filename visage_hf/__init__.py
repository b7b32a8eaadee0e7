"""visage-hf: video to first-order ambisonics (ViSAGe, ICLR 2025), Hugging Face native.

The subpackages follow the flow (see ``docs/architecture.md``): ``video`` -> ``models`` (features, the
transformer, generation) -> codes -> ``audio`` (codec, FOA, binaural) -> ``pipelines`` (the whole job and its
outputs), with ``metrics``/``evaluation``, ``training``, ``commands`` (the ``visage`` CLI) and ``app`` (the Space)
on top and ``utils`` below.

Public names load lazily (PEP 562), so ``import visage_hf`` and the ``visage`` command stay fast; the first access
to a model class (e.g. ``from visage_hf import VisageForFOA``) imports torch and transformers and registers
``VisageConfig`` / ``VisageForFOA`` with transformers' Auto classes. Module paths of 0.1.0 (``visage_hf.foa``,
``visage_hf.modeling_visage`` named by saved pipelines, ...) still import: see :mod:`visage_hf.utils.moved`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .utils.moved import install_moved_module_finder

__version__ = "0.1.0"

_EXPORTS = {
    "VisageConfig": "models.configuration_visage",
    "VisageForFOA": "models.modeling_visage",
    "VisagePreTrainedModel": "models.modeling_visage",
    "register_visage_auto_classes": "models.modeling_visage",
    "VisagePipeline": "pipelines.pipeline_visage",
    "VisagePipelineOutput": "pipelines.pipeline_visage",
    "VisageFeatureExtractor": "models.feature_extraction_visage",
    "FOACodec": "audio.codec",
    "build_tiny_random_pipeline": "pipelines.tiny",
    "export_generation": "pipelines.export",
    "render_binaural": "audio.binaural",
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

install_moved_module_finder()

if TYPE_CHECKING:
    from .audio.binaural import render_binaural
    from .audio.codec import FOACodec
    from .models.configuration_visage import VisageConfig
    from .models.feature_extraction_visage import VisageFeatureExtractor
    from .models.modeling_visage import VisageForFOA, VisagePreTrainedModel, register_visage_auto_classes
    from .pipelines.export import export_generation
    from .pipelines.pipeline_visage import VisagePipeline, VisagePipelineOutput
    from .pipelines.tiny import build_tiny_random_pipeline


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'visage_hf' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
