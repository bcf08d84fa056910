"""How commands print: ``table`` for people, ``json``/``jsonl``/``csv`` for scripts.

The machine formats are stable: field names are the API's attribute names, datetimes
are ISO 8601 in UTC with microseconds (``2026-03-01T09:30:00.000000+00:00``), null is
``null`` in JSON and an empty cell in CSV, and nested values (dicts, lists) are JSON
text in a CSV cell. ``table`` is for reading only and may change; it uses rich when
it is installed (``umlaut-core[cli]``) and stdout is a terminal, plain text otherwise.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import enum
import json
import operator
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any, TypeVar

import click

from .context import _isatty

__all__ = [
    "FORMATS",
    "RECORD_FIELDS",
    "Progress",
    "emit_object",
    "emit_rows",
    "format_option",
    "iso",
    "plain",
    "record_csv_row",
    "record_json",
    "write_records",
]

FORMATS = ("table", "json", "jsonl", "csv")

#: Audit-record fields, in the order every machine format writes them.
RECORD_FIELDS = (
    "id",
    "model_name",
    "version",
    "selector",
    "status",
    "started_at",
    "duration_ms",
    "reference_id",
    "inputs",
    "output",
    "error_type",
    "error_message",
    "tags",
    "pending",
)
#: What ``history`` shows in a table (the rest is one ``--format json`` away).
RECORD_TABLE = (
    "id",
    "started_at",
    "model_name",
    "version",
    "selector",
    "status",
    "duration_ms",
    "reference_id",
    "error",
)


_F = TypeVar("_F", bound=Callable[..., Any])


def format_option(default: str = "table") -> Callable[[_F], _F]:
    """The ``--format`` option every listing takes."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default=default,
        show_default=True,
        help="table for reading; json, jsonl or csv for scripts (stable field names).",
    )


def iso(value: dt.datetime) -> str:
    """ISO 8601 in UTC with microseconds; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    elif value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    # isoformat() shows microseconds whenever they are not 0, and costs two thirds of
    # isoformat(timespec=...): it matters when exporting millions of records.
    return value.isoformat() if value.microsecond else value.isoformat(timespec="microseconds")


def plain(value: Any) -> Any:
    """``value`` as JSON-able data: datetimes as :func:`iso`, dataclasses as dicts
    (fields in order), mappings as dicts sorted by key, so output is stable."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dt.datetime):
        return iso(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _cell(value: Any) -> str:
    """A CSV cell: empty for null, ``true``/``false``, JSON text for nested values."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return _dumps(value)
    return str(value)


def _shown(value: Any) -> str:
    """A table cell, for reading."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_shown(v) if not isinstance(v, dict) else _dumps(v)}"
                         for k, v in value.items())  # fmt: skip
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value)
    return str(value)


def _out(out: IO[str] | None) -> IO[str]:
    return out if out is not None else sys.stdout


def emit_rows(
    rows: Iterable[Mapping[str, Any]],
    fmt: str,
    columns: Sequence[str],
    *,
    table_columns: Sequence[str] | None = None,
    out: IO[str] | None = None,
) -> int:
    """Print ``rows`` (already :func:`plain`) in ``fmt``; return how many were printed.

    ``columns`` are the fields of the machine formats, in order; ``table_columns``
    (default: the same) are those a table shows.
    """
    stream = _out(out)
    count = 0
    if fmt == "table":
        shown = list(table_columns or columns)
        data = [[_shown(row.get(c)) for c in shown] for row in rows]
        render_table(shown, data, stream)
        return len(data)
    if fmt == "json":
        stream.write("[")
        for row in rows:
            stream.write(("," if count else "") + "\n  " + _dumps({c: row.get(c) for c in columns}))
            count += 1
        stream.write("\n]\n" if count else "]\n")
        return count
    if fmt == "jsonl":
        for row in rows:
            stream.write(_dumps({c: row.get(c) for c in columns}) + "\n")
            count += 1
        return count
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
        count += 1
    return count


def emit_object(obj: Mapping[str, Any], fmt: str, *, out: IO[str] | None = None) -> None:
    """Print one object (already :func:`plain`): a two-column table, or one record."""
    stream = _out(out)
    if fmt == "table":
        tables = {k: v for k, v in obj.items() if _is_rows(v)}
        pairs = [[k, _shown(v)] for k, v in obj.items() if k not in tables]
        render_table(["field", "value"], pairs, stream)
        for key, rows in tables.items():
            stream.write(f"\n{key}\n")
            header = list(dict.fromkeys(c for row in rows for c in row))
            render_table(header, [[_shown(row.get(c)) for c in header] for row in rows], stream)
    elif fmt == "json":
        stream.write(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")
    else:
        emit_rows([obj], fmt, list(obj), out=stream)


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], out: IO[str]) -> None:
    """Columns aligned with spaces; through rich when it is installed and ``out`` is a
    terminal."""
    if _isatty(out):
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            pass
        else:
            table = Table(*header, show_edge=False, header_style="bold")
            for row in rows:
                table.add_row(*row)
            Console(file=out).print(table)
            return
    if not rows:
        out.write("(none)\n")
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    for line in (header, *rows):
        cells = [c.ljust(w) for c, w in zip(line, widths, strict=True)]
        out.write("  ".join(cells).rstrip() + "\n")


# -- audit records: the fast path for history exports -------------------------------


def record_json(r: Any) -> str:
    """One audit record as a JSON object, fields in :data:`RECORD_FIELDS` order.

    Inputs and output are copied as the stored JSON text, never decoded and encoded
    again.
    """
    d = json.dumps
    return (
        f'{{"id":{d(r.id)},"model_name":{d(r.model_name, ensure_ascii=False)},'
        f'"version":{r.version},"selector":{d(r.selector, ensure_ascii=False)},'
        f'"status":{d(r.status)},"started_at":"{iso(r.started_at)}",'
        f'"duration_ms":{d(r.duration_ms)},'
        f'"reference_id":{d(r.reference_id, ensure_ascii=False)},'
        f'"inputs":{r.inputs_json},"output":{r.output_json or "null"},'
        f'"error_type":{d(r.error_type, ensure_ascii=False)},'
        f'"error_message":{d(r.error_message, ensure_ascii=False)},'
        f'"tags":{_dumps(dict(r.tags)) if r.tags else "{}"},'
        f'"pending":{"true" if r.pending else "false"}}}'
    )


_CSV_HEAD = operator.attrgetter("id", "model_name", "version", "selector", "status")
_CSV_MIDDLE = operator.attrgetter(
    "duration_ms", "reference_id", "inputs_json", "output_json", "error_type", "error_message"
)


def record_csv_row(r: Any) -> list[Any]:
    """One audit record as CSV cells in :data:`RECORD_FIELDS` order."""
    return [
        *_CSV_HEAD(r),
        iso(r.started_at),
        *_CSV_MIDDLE(r),
        _dumps(dict(r.tags)) if r.tags else "{}",
        "true" if r.pending else "false",
    ]


def record_table_row(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "started_at": iso(r.started_at),
        "model_name": r.model_name,
        "version": r.version,
        "selector": r.selector,
        "status": r.status + (" (pending)" if r.pending else ""),
        "duration_ms": f"{r.duration_ms:.3g}",
        "reference_id": r.reference_id,
        "error": r.error,
    }


def write_records(
    pages: Iterable[Sequence[Any]], fmt: str, out: IO[str], progress: Progress | None = None
) -> int:
    """Stream audit records page by page in ``fmt``; memory holds one page at a time."""
    count = 0
    if fmt == "table":
        rows = [record_table_row(r) for page in pages for r in page]
        return emit_rows(rows, "table", RECORD_TABLE, out=out)
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(RECORD_FIELDS)
        for page in pages:
            writer.writerows(map(record_csv_row, page))
            count += len(page)
            if progress is not None:
                progress.advance(len(page))
        return count
    if fmt == "json":
        out.write("[")
    for page in pages:
        if not page:
            continue
        if fmt == "jsonl":
            out.write("\n".join(map(record_json, page)) + "\n")
        else:
            out.write(("," if count else "") + "\n  " + ",\n  ".join(map(record_json, page)))
        count += len(page)
        if progress is not None:
            progress.advance(len(page))
    if fmt == "json":
        out.write("\n]\n" if count else "]\n")
    return count


class Progress:
    """A count (and rate) on stderr while a long command runs, only on a terminal.

    Uses rich when installed; a plain ``\\r`` counter otherwise; nothing at all when
    stderr is not a terminal.
    """

    def __init__(self, what: str, *, enabled: bool | None = None) -> None:
        stream = sys.stderr
        self._on = _isatty(stream) if enabled is None else enabled
        self._what = what
        self._count = 0
        self._rich: Any = None
        self._task: Any = None
        self._stream = stream
        if self._on:
            try:
                from rich.console import Console
                from rich.progress import Progress as RichProgress
                from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn
            except ImportError:
                return
            self._rich = RichProgress(
                SpinnerColumn(),
                TextColumn("{task.description}: {task.completed:,.0f}"),
                TimeElapsedColumn(),
                console=Console(file=stream),
                transient=True,
            )

    def __enter__(self) -> Progress:
        if self._rich is not None:
            self._rich.start()
            self._task = self._rich.add_task(self._what, total=None)
        return self

    def advance(self, n: int) -> None:
        self._count += n
        if not self._on:
            return
        if self._rich is not None:
            self._rich.update(self._task, completed=self._count)
        else:
            self._stream.write(f"\r{self._what}: {self._count:,}")
            self._stream.flush()

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()
        elif self._on and self._count:
            self._stream.write("\n")


def pages_of(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of up to ``size`` items."""
    while True:
        page = [item for _, item in zip(range(size), items, strict=False)]
        if not page:
            return
        yield page
