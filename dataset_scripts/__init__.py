"""Build YT-Ambigen (and VGGSound / your own recordings) in the layout `visage_hf` trains on.

The stages, each a resumable command-line script (``python -m dataset_scripts.<stage> --help``)::

    download.py  ->  prepare.py  ->  extract_features.py  ->  build_shards.py  ->  push_to_hub.py
    (yt-dlp)         (5 s clips,      (CLIP, energy map,      (Parquet shards +     (the shards and
                      FoV crop,        DAC codes, rotated      dataset card)         the card)
                      AmbiX FLAC)      codes)

`yt_ambigen.py` is the `datasets.GeneratorBasedBuilder` that defines the ``metadata``, ``media`` and ``features``
configs; `build_shards.py` materialises it as Parquet. The Hub repository holds only Parquet and README.md,
never a loading script. `curation.py` holds the paper's clip filters for people building their own FOA sets.
"""
