"""The model: configuration, the encoder-decoder, code patterns, guided generation, checkpoint conversion and
the feature extractor. Modules here import only their siblings (``from .x``), so a model saved with
``register_for_auto_class`` loads with ``trust_remote_code`` from its own folder."""
