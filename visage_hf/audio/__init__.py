"""Audio: file I/O, first-order ambisonics (encode, rotate, decode, energy maps), the binaural preview, the codec.

``from visage_hf.audio import read_audio`` (the 0.1.0 module ``visage_hf.audio``) still works: the names of
:mod:`visage_hf.audio.io` are served here.
"""

from ..utils.moved import forward_names_to

__getattr__ = forward_names_to(__name__, "io")
