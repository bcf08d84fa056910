"""Datasets: versioned, profiled, content-addressed data, lineage, input checks, drift.

``Umlaut.track_dataset`` registers a version; :class:`DatasetStore` is what a backend
implements. pandas and pyarrow are imported only where data is read or written
(install ``umlaut-core[datasets]``).
"""

from .drift_report import DriftReport
from .protocol import DatasetStore
from .records import ColumnProfile, DatasetDraft, DatasetInfo, DatasetLink, DatasetVersion

__all__ = [
    "ColumnProfile",
    "DatasetDraft",
    "DatasetInfo",
    "DatasetLink",
    "DatasetStore",
    "DatasetVersion",
    "DriftReport",
]
