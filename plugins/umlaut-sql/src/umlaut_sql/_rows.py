"""Records ↔ rows: JSON text for mappings, fixed-width UTC ISO text for time."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from umlaut_core.records import AuditRecord, ModelVersion, RecordFields, audit_record, fields_of

__all__ = [
    "RUN_COLUMNS",
    "VERSION_COLUMNS",
    "dump",
    "fmt_time",
    "parse_time",
    "record_from_row",
    "row_from_fields",
    "run_row",
    "version_from_row",
]

_UTC = dt.UTC
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=_UTC)
_EMPTY = "{}"

RUN_COLUMNS = (
    "id",
    "model_name",
    "version",
    "selector",
    "inputs",
    "output",
    "status",
    "error_type",
    "error_message",
    "reference_id",
    "started_at",
    "duration_ms",
    "tags",
)
VERSION_COLUMNS = (
    "name",
    "version",
    "digest",
    "flavor",
    "artifact_uri",
    "manifest",
    "params",
    "metrics",
    "tags",
    "description",
    "created_at",
    "created_by",
)


def fmt_time(moment: dt.datetime) -> str:
    """``2024-03-01T09:30:00.000000+00:00``: naive values are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_UTC)
    elif moment.tzinfo is not _UTC:
        moment = moment.astimezone(_UTC)
    return moment.isoformat(timespec="microseconds")


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def dump(mapping: Mapping[str, Any]) -> str:
    return json.dumps(dict(mapping), sort_keys=True, separators=(",", ":")) if mapping else _EMPTY


# (whole second since the epoch, its "YYYY-MM-DDTHH:MM:SS" text), swapped as one
# tuple so threads never pair one second with another's text.
_last_second: tuple[int, str] = (-1, "")


def _utc_text(started: dt.datetime) -> str:
    """``fmt_time`` for the core's own clock readings (aware UTC), in a third less
    time: records made together share their second, so its text is made once."""
    global _last_second
    if started.tzinfo is not _UTC:
        return fmt_time(started)
    since = started - _EPOCH  # exact, unlike timestamp()'s float
    second = since.days * 86_400 + since.seconds
    known, text = _last_second
    if second != known:
        # A new second (always, for records spread over time: a copy between stores).
        full = started.isoformat(timespec="microseconds")
        _last_second = (second, full[:19])
        return full
    return f"{text}.{started.microsecond:06d}+00:00"


# (tags, their JSON text) of the last record written: a batch's records share theirs.
_last_tags: tuple[dict[str, Any], str] = ({}, _EMPTY)


def _tags_text(tags: Mapping[str, Any]) -> str:
    """``dump(tags)``, made once for a run of records with equal tags (a batch's
    records carry the same few tags: comparing them costs a tenth of encoding)."""
    global _last_tags
    known, text = _last_tags
    if tags == known:
        return text
    text = dump(tags)
    _last_tags = (dict(tags), text)  # a copy: the caller's dict may change later
    return text


def row_from_fields(f: RecordFields) -> tuple[Any, ...]:
    """The ``RUN_COLUMNS`` values of one audit record given as its fields tuple."""
    text = _utc_text(f[7])
    tags = f[12]
    return (
        f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[10], f[11], f[9], text, f[8],
        _tags_text(tags) if tags else _EMPTY,
    )  # fmt: skip


def run_row(r: AuditRecord) -> tuple[Any, ...]:
    """The ``RUN_COLUMNS`` values of one audit record."""
    return row_from_fields(fields_of(r))


def record_from_row(row: Sequence[Any]) -> AuditRecord:
    return audit_record(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], parse_time(row[10]), row[11],
        row[9], row[7], row[8], json.loads(row[12]) if row[12] and row[12] != _EMPTY else {},
        False,
    )  # fmt: skip


def version_from_row(row: Sequence[Any], *, created: bool = False) -> ModelVersion:
    return ModelVersion(
        name=row[0],
        version=row[1],
        digest=row[2],
        flavor=row[3],
        artifact_uri=row[4],
        manifest=json.loads(row[5]),
        params=json.loads(row[6]),
        metrics=json.loads(row[7]),
        tags=json.loads(row[8]),
        description=row[9],
        created_at=parse_time(row[10]),
        created_by=row[11],
        created=created,
    )
