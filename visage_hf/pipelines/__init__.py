"""Pipelines: the whole video -> FOA job (`VisagePipeline`), its windows, batch generation and exports."""
