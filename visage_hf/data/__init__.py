"""Data: the feature schema and training batches, clip files and directions, synthetic media and tasks.

``from visage_hf.data import VisageCollator`` (the 0.1.0 module ``visage_hf.data``) still works: the names of
:mod:`visage_hf.data.schema` (read first: importing it does not import the model) and
:mod:`visage_hf.data.collator` are served here.
"""

from ..utils.moved import forward_names_to

__getattr__ = forward_names_to(__name__, "schema", "collator")
