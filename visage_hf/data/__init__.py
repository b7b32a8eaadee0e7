"""Data: the feature schema and training batches, clip files and directions, synthetic media and tasks.

``from visage_hf.data import VisageCollator`` (the 0.1.0 module ``visage_hf.data``) still works: the names of
:mod:`visage_hf.data.features` are served here.
"""

from ..utils.moved import forward_names_to

__getattr__ = forward_names_to(__name__, "features")
