"""A list of audit records that spills to a temporary file when it grows large.

``run_batch`` writes all of a batch's records in one transaction after the models
ran, so the records must be held somewhere meanwhile; past ``SPILL_AT`` records they
go to disk, keeping memory bounded for batches of millions.

Each record is held as its plain fields tuple (:data:`~umlaut_core.records.RecordFields`):
a tuple costs a fraction of a frozen dataclass to make and to pickle, and a tracker
that writes rows can read ``field_tuples()`` without the objects ever being built.
Iterating the buffer yields :class:`AuditRecord` objects as usual.
"""

from __future__ import annotations

import itertools
import pickle
import tempfile
from collections.abc import Iterator
from typing import IO

from .records import AuditRecord, RecordFields, audit_record

__all__ = ["SPILL_AT", "RecordBuffer"]

# Past this many records a batch spills to disk (about 30 MB of records in memory).
SPILL_AT = 50_000


class RecordBuffer:
    """Append records' fields, then iterate them (any number of times) in order."""

    def __init__(self, spill_at: int = SPILL_AT) -> None:
        self._spill_at = spill_at
        self._memory: list[RecordFields] = []
        self._file: IO[bytes] | None = None
        self._spilled = 0

    def __enter__(self) -> RecordBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __len__(self) -> int:
        return self._spilled + len(self._memory)

    def append(self, fields: RecordFields) -> None:
        self._memory.append(fields)
        if len(self._memory) >= self._spill_at:
            if self._file is None:
                # closed in __exit__: the file outlives this method on purpose
                self._file = tempfile.TemporaryFile(prefix="umlaut-batch-")  # noqa: SIM115
            pickle.dump(self._memory, self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self._spilled += len(self._memory)
            self._memory = []

    def field_tuples(self) -> Iterator[RecordFields]:
        """Every record's fields, in order, without building record objects."""
        if self._file is not None:
            self._file.seek(0)
            remaining = self._spilled
            while remaining:
                chunk: list[RecordFields] = pickle.load(self._file)
                remaining -= len(chunk)
                yield from chunk
            self._file.seek(0, 2)
        yield from self._memory

    def __iter__(self) -> Iterator[AuditRecord]:
        return itertools.starmap(audit_record, self.field_tuples())
