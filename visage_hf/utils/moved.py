"""Old module paths keep importing after the 0.2 layout change.

Version 0.1.0 kept every module flat in ``visage_hf/``. Saved pipelines name ``visage_hf.modeling_visage`` in
their ``model_index.json``, and user code imports ``visage_hf.foa`` and friends, so each old path is an alias of
the module that now owns it (the same module object: monkeypatching either name patches both). The old
top-level modules ``audio``, ``video`` and ``data`` became packages; their ``__init__`` forwards the old public
names (:func:`forward_names_to`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from collections.abc import Callable

__all__ = ["MOVED_MODULES", "forward_names_to", "install_moved_module_finder"]

MOVED_MODULES: dict[str, str] = {
    f"visage_hf.{old}": f"visage_hf.{new}"
    for old, new in {
        "configuration_visage": "models.configuration_visage",
        "modeling_visage": "models.modeling_visage",
        "encoder_decoder": "models.encoder_decoder",
        "patterns": "models.patterns",
        "generation": "models.generation",
        "convert_original": "models.convert_original",
        "features": "models.feature_extraction_visage",
        "foa": "audio.foa",
        "binaural": "audio.binaural",
        "codec": "audio.codec",
        "video_clip": "video.clip",
        "equirect": "video.equirect",
        "sa3d": "video.sa3d",
        "overlay": "video.overlay",
        "plotting": "video.plotting",
        "clip_files": "data.clip_files",
        "synthetic": "data.synthetic",
        "synthetic_task": "data.synthetic_task",
        "pipeline": "pipelines.pipeline_visage",
        "windowing": "pipelines.windowing",
        "export": "pipelines.export",
        "batch_generation": "pipelines.batch_generation",
        "batch_inputs": "pipelines.batch_inputs",
        "tiny": "pipelines.tiny",
        "evaluate": "commands.evaluate",
        "baselines": "evaluation.baselines",
        "training_args": "training.arguments",
        "checkpointing": "training.checkpointing",
        "app_logic": "app.logic",
        "hub": "utils.hub",
    }.items()
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old module path to the module that replaced it."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED_MODULES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        # The existing module object keeps its own __name__ and __spec__; only sys.modules gains the old name.
        return importlib.import_module(MOVED_MODULES[spec.name])

    def exec_module(self, module) -> None:
        pass


def install_moved_module_finder() -> None:
    """Put the finder on ``sys.meta_path`` once (idempotent)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder())  # before the path finders: old files may linger


def forward_names_to(package: str, *modules: str) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package`` that serves the names of its submodules ``modules`` (lazily,
    the first module that has the name wins; a submodule is imported only when the ones before it lack it).

    Unknown names raise AttributeError, so ``from package import submodule`` still imports the submodule.
    """

    def __getattr__(name: str):
        if not name.startswith("__"):
            for module in modules:
                target = importlib.import_module(f"{package}.{module}")
                if hasattr(target, name):
                    return getattr(target, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
