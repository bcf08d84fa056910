"""What a scoring job carries to its tasks, and what a task sends back.

A :class:`Job` is made once, on the client, when the job is submitted: the version is
pinned there (number and digest), the batch gets its id and millisecond, and the
workers get the settings they open their own facade from. It travels in the task
graph, so everything in it is picklable and small.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from umlaut_core import AuditRecord, Capability, ConfigurationError, Umlaut
from umlaut_core.records import RecordFields, audit_record

__all__ = ["Job", "Payload", "Records", "WorkerDelivery", "Writer", "worker_settings", "writer"]

#: Where a partition's records are written: by the worker that scored it, or by the
#: client after the worker sent them back (single-writer stores such as SQLite files).
Writer = Literal["workers", "client"]
WorkerDelivery = Literal["sync", "spooled"]
#: Tags every record of a batch carries.
BATCH_TAG = "umlaut.batch_id"
SELECTOR_TAG = "umlaut.selector"


@dataclass(frozen=True)
class Job:
    """One scoring job, as every task of it sees it."""

    model_name: str
    version: int
    digest: str
    selector: str
    batch_id: str
    ms: int
    writer: Writer
    resume: bool
    #: ``Umlaut(**settings)`` on a worker (or ``Umlaut(profile=...)`` when ``profile``).
    settings: Mapping[str, Any]
    profile: str | None
    worker_delivery: WorkerDelivery
    tags: Mapping[str, str]
    on_error: Literal["raise", "continue"]
    #: The output frame's columns (besides ``id_column``) and dtypes.
    columns: tuple[str, ...]
    dtypes: Mapping[str, Any]
    id_column: str | None
    key: str | Callable[[Any], Hashable] | None
    value: Callable[[Any], Any] | None = None
    input_columns: tuple[str, ...] | None = None
    after_partition: Callable[[int], object] | None = None
    #: False: outputs only in the audit records; tasks return no rows (memory stays
    #: bounded by one partition however large the batch).
    return_outputs: bool = True
    #: Cache key of the worker facade: a digest of ``settings``/``profile``.
    settings_key: str = field(default="", compare=False)


@dataclass(frozen=True)
class Payload:
    """What a task sends back to the client, besides its outputs (kept on the cluster)."""

    partition: int
    rows: int
    skipped: bool = False
    #: The partition's records as field tuples, when the client writes them.
    records: list[RecordFields] | None = None
    #: A model error that stopped the partition (``on_error="raise"``), after its
    #: records up to that row were written or handed over.
    error: BaseException | None = None


class Records:
    """Field tuples sent back by a worker, as the batch ``Tracker.record_runs`` takes:
    iterable as records, or as field tuples through ``field_tuples()``."""

    def __init__(self, tuples: Sequence[RecordFields]) -> None:
        self._tuples = tuples

    def __len__(self) -> int:
        return len(self._tuples)

    def __iter__(self) -> Iterator[AuditRecord]:
        return (audit_record(*t) for t in self._tuples)

    def field_tuples(self) -> Iterator[RecordFields]:
        return iter(self._tuples)


def writer(umlaut: Umlaut) -> Writer:
    """Workers write to stores several processes and hosts can share; the client
    writes to a single-writer SQLite file (and anything not declared shareable)."""
    tracker = umlaut.tracker
    if Capability.PERSISTENT not in tracker.capabilities:
        raise ConfigurationError(
            f"{tracker.uri} keeps its data inside this process, where Dask workers "
            f"cannot reach it; score on a cluster against a store they can open "
            f"(a SQLite file on this host, PostgreSQL, an MLflow server)"
        )
    scheme = tracker.uri.split(":", 1)[0].lower()
    if "sqlite" in scheme.split("+") or Capability.MULTI_PROCESS not in tracker.capabilities:
        return "client"
    return "workers"


def worker_settings(umlaut: Umlaut) -> dict[str, Any]:
    """The keyword arguments a worker opens its own ``Umlaut`` with: the client's
    resolved URIs and options (secrets included: they travel in the task graph)."""
    s = umlaut.settings
    return {
        "tracking_uri": s.tracking_uri,
        "artifact_uri": s.artifact_uri,
        "env_policy": s.env_policy,
        "cache_size": s.cache_size,
        "tracker_options": dict(s.tracker_options),
        "artifact_options": dict(s.artifact_options),
        "signing_key": s.signing_key,
    }


def settings_key(settings: Mapping[str, Any], profile: str | None, delivery: str) -> str:
    """A digest naming one worker facade (never the settings themselves: no secret
    ends up in a key, a log line or the dashboard)."""
    blob = pickle.dumps((sorted(settings.items()), profile, delivery), protocol=4)
    return hashlib.sha256(blob).hexdigest()
