"""Tracking a dataset's data: one pass from the input to Parquet, digest and profile.

:func:`ingest` reads the input as Arrow batches (:mod:`.sources`), and each batch is
encoded canonically and hashed (:mod:`.canonical`), profiled (:mod:`.profile`) and
appended to a Parquet file, so the data is read once and never held twice.
:func:`read_frame` turns the stored bytes back into a DataFrame with the dtypes the
data was tracked with. pandas and pyarrow are imported inside the functions.
"""

# (pyarrow ships no type information; it is Any here, as pandas is everywhere.)

from __future__ import annotations

import hashlib
import json
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..exceptions import ConfigurationError, IntegrityError
from ..naming import looks_like
from .records import ColumnProfile

if TYPE_CHECKING:
    import pyarrow as pa

    from .records import DatasetVersion
    from .sources import Source

__all__ = ["Ingested", "dataset_digest", "ingest", "read_frame", "resolve_roles"]

#: A Parquet row group is written once this many rows or bytes are buffered.
ROW_GROUP_ROWS = 1 << 20
ROW_GROUP_BYTES = 16 << 20
#: Parquet's writer tries a dictionary for every column chunk and gives up when it
#: outgrows this; pyarrow's 1 MiB default makes a high-cardinality column pay for
#: 131,072 hash lookups per row group (3x slower writes at these row-group sizes),
#: while columns of a few thousand distinct values still get their dictionary.
_DICTIONARY_PAGE_BYTES = 256 << 10
#: How a CSV column's type widens when a later block holds a value it refuses.
_WIDER = {"null": "int64", "int64": "double", "bool": "string", "double": "string"}
_MAX_REREADS = 64
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Ingested:
    """What one pass over the input produced: the Parquet file (inside the caller's
    working folder) with its size and sha256, the content digest and the profile."""

    digest: str
    rows: int
    columns: tuple[ColumnProfile, ...]
    path: Path
    size_bytes: int
    sha256: str
    source: str


def ingest(
    data: Any,
    *,
    target: str | None = None,
    roles: Mapping[str, str] | None = None,
    workdir: Path,
) -> Ingested:
    """Read ``data`` once: write ``workdir/data.parquet``, digest and profile it.

    ``data`` is one of :data:`~umlaut_core.datasets.sources.ACCEPTED`; anything else,
    bad column names, or ``target``/``roles`` naming no column raise
    :class:`~umlaut_core.exceptions.ConfigurationError`. A CSV column whose type,
    inferred from the first block, is refused by a later value is widened (null →
    int64 → double → string; bool and times → string) and the file read again.
    """
    return _reading(data, lambda source: _one_pass(source, target, roles, Path(workdir)))


def dataset_digest(data: Any) -> str:
    """The content digest of ``data`` (any form :func:`ingest` takes), without
    writing or profiling it: what ``track_dataset`` would record."""
    from .canonical import DigestBuilder

    def digest(source: Source) -> str:
        builder = DigestBuilder(source.schema.names, list(source.schema.types))
        for batch in source.batches:
            builder.encode(batch)
        return builder.hexdigest()

    return _reading(data, digest)


def _reading(data: Any, read: Callable[[Source], _T]) -> _T:
    """``read(source)`` of ``data``, again with a wider type for a CSV column that a
    value past the first block did not fit."""
    from .sources import CsvRetype, open_source

    retypes: dict[str, str] = {}
    for _ in range(_MAX_REREADS):
        source = open_source(data, csv_types=_arrow_types(retypes))
        try:
            return read(source)
        except CsvRetype as exc:
            name = source.schema.names[exc.column]
            wider = _WIDER.get(exc.type_name, "string")
            if retypes.get(name) == wider or exc.type_name == "string":
                raise ConfigurationError(
                    f"column {name!r} of {source.label} cannot be read as {wider}"
                ) from exc
            retypes[name] = wider
    raise ConfigurationError(f"the CSV file {str(data)!r} needed too many type corrections")


def resolve_roles(
    names: list[str], target: str | None, roles: Mapping[str, str] | None
) -> dict[str, str]:
    """Each column's role: ``target``, the one given in ``roles``, else ``feature``."""
    out = dict.fromkeys(names, "feature")
    if roles is not None and not isinstance(roles, Mapping):
        raise ConfigurationError(
            f"roles must map column names to roles, e.g. {{'id': 'id'}}, not {type(roles).__name__}"
        )
    for column, role in (roles or {}).items():
        _check_column(column, names, "roles")
        if not isinstance(role, str) or not role or role != role.strip():
            raise ConfigurationError(
                f"the role of column {column!r} must be non-empty text, not {role!r}"
            )
        if role == "target":
            raise ConfigurationError(f"name the target column with target={column!r}, not in roles")
        out[column] = role
    if target is not None:
        _check_column(target, names, "target")
        if roles and target in roles:
            raise ConfigurationError(f"column {target!r} is the target and has a role in roles")
        out[target] = "target"
    return out


def _check_column(column: Any, names: list[str], what: str) -> None:
    if isinstance(column, str) and column in names:
        return
    hint = looks_like(column, names) if isinstance(column, str) else None
    tip = f" (did you mean {hint!r}?)" if hint else ""
    shown = ", ".join(repr(n) for n in names[:20]) + (", …" if len(names) > 20 else "")
    raise ConfigurationError(f"{what} names {column!r}, not a column{tip}; columns: {shown}")


def _one_pass(
    source: Source, target: str | None, roles: Mapping[str, str] | None, workdir: Path
) -> Ingested:
    from .canonical import DigestBuilder
    from .profile import profiler_for

    names = list(source.schema.names)
    role_of = resolve_roles(names, target, roles)
    builder = DigestBuilder(names, list(source.schema.types))
    profilers = [profiler_for(c.kind, c.arrow_type) for c in builder.columns]
    path = workdir / "data.parquet"
    with _ParquetSink(path, source.schema) as sink:
        for batch in source.batches:
            for profiler, chunk in zip(profilers, builder.encode(batch), strict=True):
                profiler.update(chunk)
            sink.write(batch)
    columns = tuple(
        p.finish(name, dtype, role_of[name])
        for p, name, dtype in zip(profilers, names, source.dtypes, strict=True)
    )
    with path.open("rb") as fh:
        sha256 = hashlib.file_digest(fh, "sha256").hexdigest()
    return Ingested(
        digest=builder.hexdigest(),
        rows=builder.rows,
        columns=columns,
        path=path,
        size_bytes=path.stat().st_size,
        sha256=sha256,
        source=source.label,
    )


def _arrow_types(retypes: Mapping[str, str]) -> dict[str, Any]:
    if not retypes:
        return {}
    import pyarrow as pa

    return {name: pa.type_for_alias(alias) for name, alias in retypes.items()}


class _ParquetSink:
    """A Parquet writer that gathers batches into row groups and writes them on a
    thread of its own, so encoding and compression (pyarrow, without the GIL)
    overlap the digest and the profile. At most two row groups are held, the one
    being written and the one being gathered: a slow disk slows the reader down
    instead of filling memory."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        self._schema = schema
        self._writer = pq.ParquetWriter(
            path, schema, dictionary_pagesize_limit=_DICTIONARY_PAGE_BYTES
        )
        self._pending: list[pa.RecordBatch] = []
        self._rows = 0
        self._bytes = 0
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="umlaut-parquet", daemon=True)
        self._thread.start()

    def write(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._rows += batch.num_rows
        self._bytes += batch.nbytes
        if self._rows >= ROW_GROUP_ROWS or self._bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa

        if self._pending:
            table = pa.Table.from_batches(self._pending, self._schema)
            self._queue.join()  # the previous row group is written
            self._queue.put(table)
        self._pending, self._rows, self._bytes = [], 0, 0
        if self._error is not None:
            raise self._error

    def _drain(self) -> None:
        while (table := self._queue.get()) is not None:
            if self._error is None:  # after a failure, only empty the queue
                try:
                    self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
                except BaseException as exc:  # re-raised on the reading thread
                    self._error = exc
            del table  # hold no row group while waiting for the next
            self._queue.task_done()

    def __enter__(self) -> _ParquetSink:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                self._flush()
        finally:
            self._queue.put(None)
            self._thread.join()
            self._writer.close()
        if exc[0] is None and self._error is not None:
            raise self._error


# -- reading back --------------------------------------------------------------------


def read_frame(data: bytes, dv: DatasetVersion) -> Any:
    """The stored Parquet bytes of ``dv`` as a pandas DataFrame, with the dtypes it
    was tracked with, a fresh RangeIndex, and exactly ``dv.rows`` rows (else
    :class:`~umlaut_core.exceptions.IntegrityError`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .sources import RESTORE_KEY

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise IntegrityError(
            f"the stored data of dataset {dv.name} v{dv.version} is not readable Parquet"
        ) from exc
    names = [c.name for c in dv.columns]
    if table.num_rows != dv.rows or table.schema.names != names:
        raise IntegrityError(
            f"the stored data of dataset {dv.name} v{dv.version} has {table.num_rows} rows "
            f"and {table.num_columns} columns; {dv.rows} rows and {len(names)} columns "
            f"were tracked"
        )
    metadata = table.schema.metadata or {}
    restore = json.loads(metadata.get(RESTORE_KEY, b"{}"))
    from_pandas = _pandas_columns(metadata)
    frame = table.to_pandas()
    for column in dv.columns:
        _restore(frame, table, column, restore.get(column.name), column.name in from_pandas)
    return frame


def _pandas_columns(metadata: Mapping[bytes, bytes]) -> set[str]:
    raw = metadata.get(b"pandas")
    if raw is None:
        return set()
    columns = json.loads(raw).get("columns") or []
    return {str(c.get("name")) for c in columns if isinstance(c, dict)}


def _restore(
    frame: Any, table: pa.Table, column: ColumnProfile, spec: Any, from_pandas: bool
) -> None:
    """Undo what Parquet and pyarrow's pandas conversion lose for one column."""
    import pandas as pd
    import pyarrow as pa

    name = column.name
    if isinstance(spec, dict) and spec.get("dtype") == "object":
        if frame[name].dtype != object:  # pandas 3 reads text as its own str dtype
            values = table.column(name).to_numpy(zero_copy_only=False).astype(object)
            frame[name] = pd.Series(values, index=frame.index, dtype=object)
        return
    if isinstance(spec, dict) and spec.get("dtype") == "category":
        dtype = pd.CategoricalDtype(spec["categories"], ordered=bool(spec["ordered"]))
        if frame[name].dtype != dtype:  # Parquet keeps only text dictionaries
            frame[name] = pd.Categorical(frame[name], dtype=dtype)
        return
    if from_pandas or not column.null_count:
        return
    arrow_type = table.schema.field(name).type
    if pa.types.is_integer(arrow_type) or pa.types.is_boolean(arrow_type):
        # Arrow-born data: ints with nulls stay ints (Int64), not floats; bools stay
        # bools (boolean), not objects.
        frame[name] = table.column(name).to_pandas(types_mapper=_nullable_dtype)


def _nullable_dtype(arrow_type: pa.DataType) -> Any:
    import pandas as pd
    import pyarrow as pa

    if pa.types.is_boolean(arrow_type):
        return pd.BooleanDtype()
    if pa.types.is_integer(arrow_type):
        return pd.api.types.pandas_dtype(
            str(arrow_type).replace("int", "Int").replace("uInt", "UInt")
        )
    return None
