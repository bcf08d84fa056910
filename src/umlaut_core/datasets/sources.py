"""The input forms ``track_dataset`` accepts, each opened as a stream of Arrow batches.

A pandas DataFrame, a pyarrow Table (or RecordBatch), a list of dicts, or the path of
a CSV or Parquet file. Files are read batch by batch (``pyarrow.csv.open_csv``,
``ParquetFile.iter_batches``), so a file larger than memory is fine. A pandas index
is never data: ``preserve_index=False`` for frames, and index columns that pandas
wrote into a Table or a Parquet file are left out.
"""

# (pyarrow ships no type information; it is Any here, as pandas is everywhere.)

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..exceptions import ConfigurationError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["ACCEPTED", "BATCH_ROWS", "RESTORE_KEY", "CsvRetype", "Source", "open_source"]

#: Rows per batch read from an in-memory table or a Parquet file.
BATCH_ROWS = 65_536
#: Bytes per CSV block; types are inferred from the first block.
CSV_BLOCK_BYTES = 8 << 20
#: Parquet metadata key holding what pandas' own metadata does not restore.
RESTORE_KEY = b"umlaut.pandas"
ACCEPTED = (
    "a pandas DataFrame, a pyarrow Table, a list of dicts, or the path (str or Path) "
    "of a .csv or .parquet file"
)
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_CSV_SUFFIXES = (".csv", ".tsv")
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")
_CSV_ERROR = re.compile(r"In CSV column #(\d+): CSV conversion error to ([\w\[\],=/+: -]+?): ")


@dataclass
class Source:
    """One opened input: the schema written (metadata included), its batches, and
    each column's type as given (a pandas dtype, or an Arrow type)."""

    schema: pa.Schema
    batches: Iterator[pa.RecordBatch]
    dtypes: list[str]
    label: str
    restore: dict[str, Any] = field(default_factory=dict)


class CsvRetype(Exception):  # a signal to read again, never seen by users
    """A CSV column held a value its type (inferred from the first block) refused."""

    def __init__(self, column: int, type_name: str) -> None:
        super().__init__(column, type_name)
        self.column = column
        self.type_name = type_name


def open_source(data: Any, *, csv_types: Mapping[str, Any] | None = None) -> Source:
    """Open ``data`` as a :class:`Source`; ``ConfigurationError`` for other inputs."""
    import pyarrow as pa

    pd = sys.modules.get("pandas")  # a DataFrame exists only if pandas was imported
    if pd is not None and isinstance(data, pd.DataFrame):
        return _from_frame(data)
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        return _from_table(data, "pyarrow.Table")
    if isinstance(data, list):
        return _from_records(data)
    if isinstance(data, (str, os.PathLike)):
        return _from_path(Path(data), csv_types or {})
    raise ConfigurationError(
        f"track_dataset takes {ACCEPTED}; got {type(data).__module__}.{type(data).__qualname__}"
    )


def check_names(names: list[Any], where: str) -> list[str]:
    """Column names must be unique non-empty strings."""
    if not names:
        raise ConfigurationError(f"{where} has no columns; a dataset needs at least one")
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str):
            raise ConfigurationError(
                f"{where}: column names must be strings; {name!r} is "
                f"{type(name).__name__} (rename the columns, e.g. df.columns = "
                f"df.columns.map(str))"
            )
        if not name:
            raise ConfigurationError(f"{where}: a column has an empty name")
        if name in seen:
            raise ConfigurationError(f"{where}: the column name {name!r} appears twice")
        seen.add(name)
    return list(names)


# -- in memory -----------------------------------------------------------------------


def _from_frame(frame: Any) -> Source:
    import pyarrow as pa

    names = check_names(list(frame.columns), "the DataFrame")
    try:
        with warnings.catch_warnings():
            # pyarrow reads a zone-aware column through Series.values, which pandas
            # 3.1 deprecates; the values it gets are right, and users cannot act on it.
            warnings.filterwarnings("ignore", message=r"Series\.values returning")
            table = pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise ConfigurationError(_conversion_problem(frame, str(exc))) from exc
    dtypes = [str(frame[n].dtype) for n in names]
    restore: dict[str, Any] = {}
    for name, dtype in zip(names, dtypes, strict=True):
        if dtype == "object":
            restore[name] = {"dtype": "object"}
        elif dtype == "category":
            categories = _json_list(frame[name].cat.categories.tolist())
            if categories is not None:
                restore[name] = {
                    "dtype": "category",
                    "categories": categories,
                    "ordered": bool(frame[name].cat.ordered),
                }
    return _in_memory(table, dtypes, "pandas.DataFrame", restore)


def _conversion_problem(frame: Any, message: str) -> str:
    """Name the column Arrow refused and the Python types it mixes (never values)."""
    found = re.search(r"for column (.+?) with type (\S+)", message)
    if found is None or found.group(1) not in frame.columns:
        return "the DataFrame cannot be stored as Arrow columns: a column mixes value types"
    name = found.group(1)
    kinds = sorted({type(v).__name__ for v in frame[name].dropna().head(100_000)})
    return (
        f"column {name!r} (dtype {found.group(2)}) holds values of types "
        f"{', '.join(kinds)}, which no single Arrow type stores; give it one type "
        f"(e.g. df[{name!r}].astype(str))"
    )


def _from_table(table: pa.Table, label: str) -> Source:
    import pyarrow as pa

    index = _index_columns(table.schema)
    if index:
        table = table.select([n for n in table.schema.names if n not in index])
    check_names(table.schema.names, f"the {label}")
    restore: dict[str, Any] = {}
    if any(pa.types.is_dictionary(f.type) for f in table.schema):
        table = table.unify_dictionaries()
        for name, column in zip(table.schema.names, table.columns, strict=True):
            if pa.types.is_dictionary(column.type) and column.num_chunks:
                categories = _json_list(column.chunk(0).dictionary.to_pylist())
                if categories is not None:
                    restore[name] = {
                        "dtype": "category",
                        "categories": categories,
                        "ordered": bool(column.type.ordered),
                    }
    dtypes = [str(f.type) for f in table.schema]
    return _in_memory(table, dtypes, label, restore)


def _from_records(rows: list[Any]) -> Source:
    import pyarrow as pa

    if not rows:
        raise ConfigurationError("an empty list has no columns; a dataset needs at least one")
    names: dict[Any, None] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ConfigurationError(
                f"a list given to track_dataset must hold dicts (one per row); item {i} "
                f"is {type(row).__name__}"
            )
        names.update(dict.fromkeys(row))
    checked = check_names(list(names), "the list of dicts")
    arrays = []
    for name in checked:
        try:  # a key missing from a row is a null there, as in pandas
            arrays.append(pa.array([row.get(name) for row in rows]))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            kinds = sorted({type(r.get(name)).__name__ for r in rows} - {"NoneType"})
            raise ConfigurationError(
                f"key {name!r} holds values of types {', '.join(kinds)}, which no single "
                f"Arrow type stores; give it one type"
            ) from exc
    table = pa.Table.from_arrays(arrays, names=checked)
    return _from_table(table, f"list of {len(rows)} dicts")


def _in_memory(table: pa.Table, dtypes: list[str], label: str, restore: dict[str, Any]) -> Source:
    schema = _with_metadata(table.schema, restore)
    return Source(schema, iter(table.to_batches(max_chunksize=BATCH_ROWS)), dtypes, label, restore)


# -- files ---------------------------------------------------------------------------


def _from_path(path: Path, csv_types: Mapping[str, Any]) -> Source:
    if not path.is_file():
        raise ConfigurationError(f"no file at {str(path)!r} ({ACCEPTED} is expected)")
    name = path.name.lower()
    for suffix in _COMPRESSED:
        name = name.removesuffix(suffix)
    if name.endswith(_CSV_SUFFIXES):
        return _from_csv(path, csv_types, tab=name.endswith(".tsv"))
    if name.endswith(_PARQUET_SUFFIXES) or _is_parquet(path):
        return _from_parquet(path)
    raise ConfigurationError(
        f"{str(path)!r} is neither CSV (.csv, .tsv, optionally .gz/.bz2/.zst/.lz4) nor "
        f"Parquet (.parquet, or a file starting with PAR1)"
    )


def _is_parquet(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == b"PAR1"


def _from_parquet(path: Path) -> Source:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # Streamed page by page: pyarrow's default pre-buffers whole row groups (all
        # of a file written as one), which would hold the input in memory.
        parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ConfigurationError(f"{str(path)!r} is not a readable Parquet file: {exc}") from exc
    schema = parquet.schema_arrow
    index = set(_index_columns(schema))
    keep = [n for n in schema.names if n not in index]
    names = check_names(keep, repr(str(path)))
    schema = pa.schema([schema.field(n) for n in names], metadata=schema.metadata)
    dtypes = [str(f.type) for f in schema]
    if _pandas_metadata(schema) is not None:
        try:  # what pandas reads the file as: its dtypes, not Arrow's
            empty = schema.empty_table().to_pandas()
            dtypes = [str(empty[n].dtype) for n in names]
        except Exception:  # odd pandas metadata: Arrow's names will do
            pass
    batches = parquet.iter_batches(batch_size=BATCH_ROWS, columns=names)
    return Source(_with_metadata(schema, {}), batches, dtypes, str(path))


def _from_csv(path: Path, csv_types: Mapping[str, Any], *, tab: bool) -> Source:
    import pyarrow as pa
    from pyarrow import csv

    try:
        reader = csv.open_csv(
            path,
            read_options=csv.ReadOptions(block_size=CSV_BLOCK_BYTES),
            parse_options=csv.ParseOptions(delimiter="\t" if tab else ","),
            convert_options=csv.ConvertOptions(column_types=dict(csv_types)),
        )
    except pa.ArrowInvalid as exc:
        raise ConfigurationError(f"{str(path)!r} is not a readable CSV file: {exc}") from exc
    check_names(reader.schema.names, repr(str(path)))
    dtypes = [str(f.type) for f in reader.schema]
    return Source(reader.schema, _csv_batches(reader, path), dtypes, str(path))


def _csv_batches(reader: Any, path: Path) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowInvalid as exc:
            found = _CSV_ERROR.search(str(exc))
            if found is None:
                raise ConfigurationError(f"{str(path)!r} could not be read as CSV: {exc}") from exc
            raise CsvRetype(int(found.group(1)), found.group(2).strip()) from exc
        yield batch


# -- pandas metadata -----------------------------------------------------------------


def _pandas_metadata(schema: pa.Schema) -> dict[str, Any] | None:
    raw = (schema.metadata or {}).get(b"pandas")
    if raw is None:
        return None
    try:
        meta = json.loads(raw)
    except ValueError:
        return None
    return meta if isinstance(meta, dict) else None


def _index_columns(schema: pa.Schema) -> list[str]:
    meta = _pandas_metadata(schema)
    if meta is None:
        return []
    index = meta.get("index_columns") or []
    return [c for c in index if isinstance(c, str) and c in schema.names]


def _with_metadata(schema: pa.Schema, restore: Mapping[str, Any]) -> pa.Schema:
    """The schema as written: pandas' metadata without the index (so a read gives a
    fresh RangeIndex), plus what pandas' metadata cannot restore."""
    metadata: dict[bytes, bytes] = {}
    meta = _pandas_metadata(schema)
    if meta is not None:
        names = set(schema.names)
        meta["index_columns"] = []
        meta["columns"] = [
            c for c in meta.get("columns") or [] if c.get("field_name", c.get("name")) in names
        ]
        metadata[b"pandas"] = json.dumps(meta).encode()
    if restore:
        metadata[RESTORE_KEY] = json.dumps(restore).encode()
    return (
        schema.remove_metadata().with_metadata(metadata) if metadata else schema.remove_metadata()
    )


def _json_list(values: list[Any]) -> list[Any] | None:
    """``values`` when every one is a JSON scalar (categories worth restoring)."""
    if all(isinstance(v, (str, int, float, bool)) for v in values):
        return values
    return None
