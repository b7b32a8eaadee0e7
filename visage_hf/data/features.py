"""The feature schema and the training collator, under the name they shared in the first 0.2 layout.

:mod:`visage_hf.data.schema` (what inference reads) and :mod:`visage_hf.data.collator` (training batches) own
them now; this module re-exports both for code written against ``visage_hf.data.features``.
"""

from .collator import *  # noqa: F403
from .collator import __all__ as _collator_names
from .schema import *  # noqa: F403
from .schema import __all__ as _schema_names

__all__ = [*_schema_names, *_collator_names]
