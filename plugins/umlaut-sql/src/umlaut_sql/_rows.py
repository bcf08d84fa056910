"""Records ↔ rows: JSON text for mappings, fixed-width UTC ISO text for time."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from umlaut_core.records import AuditRecord, ModelVersion

__all__ = [
    "RUN_COLUMNS",
    "VERSION_COLUMNS",
    "dump",
    "fmt_time",
    "parse_time",
    "record_from_row",
    "run_row",
    "version_from_row",
]

_UTC = dt.UTC
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


def run_row(r: AuditRecord) -> tuple[Any, ...]:
    """The values of one audit record in ``RUN_COLUMNS`` order."""
    started = r.started_at  # UTC already, from the core's clock: skip fmt_time's checks
    return (
        r.id,
        r.model_name,
        r.version,
        r.selector,
        r.inputs_json,
        r.output_json,
        r.status,
        r.error_type,
        r.error_message,
        r.reference_id,
        started.isoformat(timespec="microseconds") if started.tzinfo is _UTC else fmt_time(started),
        r.duration_ms,
        dump(r.tags) if r.tags else _EMPTY,
    )


def record_from_row(row: Sequence[Any]) -> AuditRecord:
    return AuditRecord(
        id=row[0],
        model_name=row[1],
        version=row[2],
        selector=row[3],
        inputs_json=row[4],
        output_json=row[5],
        status=row[6],
        error_type=row[7],
        error_message=row[8],
        reference_id=row[9],
        started_at=parse_time(row[10]),
        duration_ms=row[11],
        tags=json.loads(row[12]) if row[12] and row[12] != _EMPTY else {},
    )


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
