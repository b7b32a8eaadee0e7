"""Starting an FOA model from a mono (VGGSound) one, as the original does before FOA fine-tuning.

Used through `VisageForFOA.init_spatial_from_mono` and `VisageForFOA.from_mono_pretrained`; the model class is a
parameter so that this module does not import the model.
"""

from __future__ import annotations

import torch

from .configuration_visage import VisageConfig


@torch.no_grad()
def copy_w_channel_to_spatial(model) -> None:
    """Copy the W channel's code embeddings and heads of ``model`` (a FOA `VisageForFOA`) into Y, Z and X:
    stream ``j`` takes stream ``j mod num_codebooks``."""
    config = model.config
    if config.is_mono:
        raise ValueError("init_spatial_from_mono needs the FOA variant (num_channels=4)")
    embeddings = model.model.decoder.embed_codes
    for stream in range(config.num_codebooks, config.num_streams):
        source = stream % config.num_codebooks
        embeddings[stream].weight.copy_(embeddings[source].weight)
        model.heads[stream].weight.copy_(model.heads[source].weight)
        model.heads[stream].bias.copy_(model.heads[source].bias)


def foa_from_mono(model_class: type, mono, **config_overrides):
    """A ``model_class`` FOA model with the shared weights of the mono model ``mono``; the energy-map and
    direction MLPs start fresh (their nulls at zero) and Y/Z/X start as copies of W."""
    if not mono.config.is_mono:
        raise ValueError("from_mono_pretrained expects a mono model (num_channels=1)")
    settings = mono.config.to_dict()
    for key in ("model_type", "transformers_version", "architectures", "_name_or_path", "auto_map"):
        settings.pop(key, None)
    settings.update({"num_channels": 4, **config_overrides})
    model = model_class(VisageConfig(**settings))
    result = model.load_state_dict(mono.state_dict(), strict=False)
    if result.unexpected_keys:
        raise ValueError(f"mono weights that have no place in the FOA model: {result.unexpected_keys}")
    copy_w_channel_to_spatial(model)
    return model.to(mono.dtype)


__all__ = ["copy_w_channel_to_spatial", "foa_from_mono"]
