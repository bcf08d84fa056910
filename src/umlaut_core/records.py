"""The plain, typed records that cross the API and the Tracker protocol.

All are frozen dataclasses: a version is immutable once registered, an audit record
once written. Inputs and outputs travel as JSON text (``inputs_json``/``output_json``)
so trackers store exactly what was encoded, once; ``inputs`` and ``output`` decode
on access.
"""

from __future__ import annotations

import dataclasses
import json
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "BUNDLE_SHA256_TAG",
    "RESERVED_TAG_PREFIX",
    "AuditRecord",
    "ModelInfo",
    "ModelVersion",
    "RunQuery",
    "StageChange",
    "Status",
    "RecordFields",
    "RunColumns",
    "StoredObject",
    "VersionDraft",
    "audit_record",
    "fields_of",
]

Status = Literal["ok", "error"]

#: Version tags umlaut sets itself; users' version tags may not use the prefix.
RESERVED_TAG_PREFIX = "umlaut."
#: The sha256 of a version's whole bundle file, recorded when it is registered.
BUNDLE_SHA256_TAG = "umlaut.bundle_sha256"


def _empty() -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True, slots=True)
class VersionDraft:
    """What the facade asks a tracker to register; the tracker assigns the number."""

    name: str
    digest: str
    flavor: str
    manifest: Mapping[str, Any]
    artifact_uri: str | None
    created_at: datetime
    created_by: str | None = None
    description: str | None = None
    params: Mapping[str, Any] = field(default_factory=_empty)
    metrics: Mapping[str, float] = field(default_factory=_empty)
    tags: Mapping[str, str] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class ModelVersion:
    """One immutable, numbered version of a model.

    ``created`` is True when the call that returned it registered it, False when an
    identical bundle (same digest) already existed under that name.
    """

    name: str
    version: int
    digest: str
    flavor: str
    artifact_uri: str
    created_at: datetime
    manifest: Mapping[str, Any] = field(default_factory=_empty)
    created_by: str | None = None
    description: str | None = None
    params: Mapping[str, Any] = field(default_factory=_empty)
    metrics: Mapping[str, float] = field(default_factory=_empty)
    tags: Mapping[str, str] = field(default_factory=_empty)
    created: bool = False

    @property
    def bundle_sha256(self) -> str | None:
        """The sha256 of the whole bundle file, as registered; checked on every load
        (None for versions registered before umlaut kept it)."""
        return self.tags.get(BUNDLE_SHA256_TAG)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model name with its newest version number and where its aliases point."""

    name: str
    latest_version: int
    aliases: Mapping[str, int] = field(default_factory=_empty)
    description: str | None = None


@dataclass(frozen=True, slots=True)
class StageChange:
    """One entry of the promotion ledger: an alias moved from one version to another."""

    model_name: str
    stage: str
    from_version: int | None
    to_version: int
    changed_at: datetime
    changed_by: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object an artifact store holds, as its ``list`` yields it (``umlaut gc``).

    ``key`` is the object's key relative to the store (``bundles/ab/ab….zip``), ``uri``
    the URI ``put`` returned for it, ``size`` its length in bytes and ``modified`` when
    it was last written (timezone-aware UTC).
    """

    key: str
    uri: str
    size: int
    modified: datetime


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One call of a model: what went in, what came out, which version, how long.

    ``id`` (from :func:`umlaut_core.ids.new_run_id`) carries the millisecond it was
    made, just before ``started_at``: ordering by id is ordering by start, and stores
    may turn a time window into an id range. Tools writing records with their own
    times make ids with :func:`umlaut_core.ids.encode_id`.
    ``selector`` says how the version was chosen: ``version=3``, ``stage=Production``
    or ``latest``.
    """

    id: str
    model_name: str
    version: int
    selector: str
    inputs_json: str
    output_json: str | None
    status: Status
    started_at: datetime
    duration_ms: float
    reference_id: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    tags: Mapping[str, str] = field(default_factory=_empty)
    #: True for a record still waiting in the local spool (history(include_pending=True)).
    pending: bool = False

    @property
    def inputs(self) -> Any:
        """The input the model received, decoded from ``inputs_json``."""
        return json.loads(self.inputs_json)

    @property
    def output(self) -> Any:
        """The model's result decoded from ``output_json``; None for a failed call."""
        return None if self.output_json is None else json.loads(self.output_json)

    @property
    def error(self) -> str | None:
        """``"Type: message"`` for a failed call, else None."""
        if self.status == "ok":
            return None
        return f"{self.error_type}: {self.error_message}"


def _positional_factory(cls: type[Any]) -> Callable[..., Any]:
    """A constructor taking every field of a frozen slots dataclass positionally.

    The generated ``__init__`` of a frozen dataclass sets each field through
    ``object.__setattr__``; writing the slots through their descriptors does the same
    at less than half the cost, which matters on paths that make one record per call.
    """
    names = [f.name for f in dataclasses.fields(cls)]
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    for i, name in enumerate(names):
        scope[f"_set{i}"] = getattr(cls, name).__set__
    body = "".join(f"    _set{i}(r, {name})\n" for i, name in enumerate(names))
    exec(f"def make({', '.join(names)}):\n    r = _new(_cls)\n{body}    return r\n", scope)
    return scope["make"]  # type: ignore[no-any-return]


#: An audit record's fields as a plain tuple, in :class:`AuditRecord` field order
#: (``id, model_name, version, selector, inputs_json, output_json, status, started_at,
#: duration_ms, reference_id, error_type, error_message, tags, pending``).
RecordFields = tuple[
    str, str, int, str, str, str | None, Status, datetime, float,
    str | None, str | None, str | None, Mapping[str, str], bool,
]  # fmt: skip

#: ``audit_record(*fields)``: an :class:`AuditRecord` from all of its fields, in
#: order, unchecked; for code that makes or reads records in bulk.
audit_record: Callable[..., AuditRecord] = _positional_factory(AuditRecord)

#: ``fields_of(record)``: the :data:`RecordFields` of a record (the inverse).
fields_of: Callable[[AuditRecord], RecordFields] = operator.attrgetter(
    *(f.name for f in dataclasses.fields(AuditRecord))
)


@dataclass(frozen=True, slots=True)
class RunColumns:
    """A chunk of consecutive audit records as the five columns a drift report reads
    of each (see :class:`~umlaut_core.protocols.ColumnScanningTracker`).

    The sequences have one item per record, all in the same order (oldest first from
    ``scan_run_columns``), and hold the :class:`AuditRecord` fields of the same names.
    Ids, selectors, tags and messages are left out, and of the start times only the
    chunk's first and last are kept (timezone-aware UTC): a report needs its window's
    span alone, and a ``datetime`` per record costs about a second per million.
    """

    inputs_json: Sequence[str]
    output_json: Sequence[str | None]
    status: Sequence[Status]
    error_type: Sequence[str | None]
    duration_ms: Sequence[float]
    #: The first ``started_at`` among the chunk's records.
    earliest: datetime
    #: The last ``started_at`` among the chunk's records.
    latest: datetime

    def __len__(self) -> int:
        return len(self.status)


@dataclass(frozen=True, slots=True)
class RunQuery:
    """Filters for audit history, as a tracker's ``query_runs`` receives them.

    Every field that is set must match; records come newest first, ordered by ``id``
    descending (ids are sortable by time). Exactly:

    * ``model_name``, ``version``, ``status`` (``"ok"``/``"error"``),
      ``reference_id``: equality.
    * ``since`` (inclusive) and ``until`` (exclusive) bound ``started_at``:
      ``since <= record.started_at < until``. The facade passes timezone-aware UTC
      datetimes (naive ones are taken as UTC), any ``datetime`` included.
    * ``before``: an exclusive keyset cursor, a record id; only records with
      ``id < before``. The next page is ``before=page[-1].id``.
    * ``limit``: at most this many records. ``Umlaut.history`` refuses a limit
      outside 1–10,000 (``ConfigurationError``), so a tracker never gets more.
    """

    model_name: str | None = None
    version: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: Status | None = None
    reference_id: str | None = None
    limit: int = 100
    before: str | None = None
