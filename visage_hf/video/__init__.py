"""Video: PyAV decode and mux, the clip loader, equirectangular crops, SA3D/spherical boxes, pictures and overlays.

``from visage_hf.video import read_frames`` (the 0.1.0 module ``visage_hf.video``) still works: the names of
:mod:`visage_hf.video.io` are served here.
"""

from ..utils.moved import forward_names_to

__getattr__ = forward_names_to(__name__, "io")
