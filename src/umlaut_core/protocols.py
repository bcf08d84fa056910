"""The two contracts every backend implements: ``Tracker`` and ``ArtifactStore``.

The conformance suite in :mod:`umlaut_core.testing` checks these contracts; the
docstrings here are what it checks. Implementations must be safe to call from many
threads at once, and raise only :class:`~umlaut_core.UmlautError` subclasses.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import BinaryIO, Protocol, runtime_checkable

from .records import (
    AuditRecord,
    ModelInfo,
    ModelVersion,
    RunColumns,
    RunQuery,
    StageChange,
    StoredObject,
    VersionDraft,
)

__all__ = [
    "ArtifactStore",
    "Capability",
    "ColumnScanningTracker",
    "ImportingTracker",
    "ListingArtifactStore",
    "ScanningTracker",
    "Tracker",
]


class Capability(enum.Enum):
    """What a backend declares it supports; the conformance suite skips the rest.

    A tracker declares its capabilities as a class attribute,
    ``capabilities: frozenset[Capability] = frozenset({...})``. Tests that need a
    capability the tracker lacks are skipped with the reason
    ``<Tracker> does not declare Capability.<NAME>``; the facade reads
    ``STORES_BUNDLES`` and ``REMOTE`` to choose its defaults.
    """

    #: Data survives closing and reopening the store from the same URI
    #: (``tracker.uri``). The conformance suite then reopens the store with
    #: ``Umlaut(*store_uris)`` through the installed plugin and checks versions,
    #: stages, records and bundles are all there; umlaut-dask refuses a store
    #: without it (its workers could not reach the data).
    PERSISTENT = "persistent"
    #: Several processes may use one store at once. The conformance suite then
    #: starts fresh interpreters (``sys.executable -c ...``) that open
    #: ``Umlaut(tracking_uri, artifact_uri)`` from the ``store_uris`` fixture
    #: (default: ``tracker.uri`` and the artifact store's ``uri``) through the normal
    #: entry-point lookup: the plugin must be *installed* (``pip install -e .``), its
    #: ``uri`` must reopen the same store, and nothing may depend on the test
    #: process's memory. The facade also runs the spool's shipper in a child process
    #: that reopens ``tracker.uri`` when this is declared.
    MULTI_PROCESS = "multi_process"
    #: The tracker keeps bundles itself (``register_version`` gets the bytes and
    #: ``load_bundle`` returns them); no separate ArtifactStore is opened and
    #: ``default_artifact_uri`` is not consulted. Without it, ``load_bundle`` is
    #: never called and the facade stores bundles in an ArtifactStore.
    STORES_BUNDLES = "stores_bundles"
    #: The tracker is a network service: audit records are spooled locally by default
    #: so ``run_model`` never waits on it (see :mod:`umlaut_core.delivery`), and a
    #: ``stage=``/latest resolution is reused for ``resolve_ttl`` (1 s by default).
    REMOTE = "remote"
    #: The tracker can be the destination of ``umlaut copy``: it implements
    #: :class:`ImportingTracker` (``import_ledger``, ``import_runs``). Without it a
    #: tracker can still be a copy's source. (versionadded: 0.3)
    IMPORT = "import"
    #: The tracker streams audit records oldest first and counts them:
    #: :class:`ScanningTracker` (``scan_runs``, ``count_runs``). Without it a copy
    #: pages through ``query_runs`` instead. (versionadded: 0.3)
    SCAN_RUNS = "scan_runs"
    #: The tracker streams the few columns of audit records a drift report reads:
    #: :class:`ColumnScanningTracker` (``scan_run_columns``). Without it a report reads
    #: whole records (``scan_runs``, else ``query_runs`` pages) and makes the columns
    #: itself, the same values at a higher cost. (versionadded: 0.4)
    SCAN_COLUMNS = "scan_columns"
    #: An *artifact store* (in its own ``capabilities`` attribute) that lists what it
    #: holds: :class:`ListingArtifactStore` (``list``), used by ``umlaut gc``.
    #: (versionadded: 0.3)
    LIST_OBJECTS = "list_objects"
    #: An *experiment store* (in its own ``capabilities`` attribute) that keeps
    #: training-run artifacts itself (umlaut-mlflow: in MLflow's artifact repository,
    #: so its UI shows them): :class:`~umlaut_core.experiments.ArtifactKeepingStore`.
    #: Without it the facade puts them in the artifact store. (versionadded: 0.4)
    RUN_ARTIFACTS = "run_artifacts"
    #: A *dataset store* (in its own ``capabilities`` attribute) that keeps datasets'
    #: Parquet bytes itself (``put_data(sha256, file) -> uri``, ``get_data(uri)``),
    #: e.g. where there is no artifact store (``memory:``, MLflow). Without it the
    #: facade puts them in the artifact store. (versionadded: 0.4)
    DATASET_BYTES = "dataset_bytes"


@runtime_checkable
class Tracker(Protocol):
    """Metadata store: versions, aliases with their ledger, and audit records.

    A plugin's factory (``registry.add_tracker(scheme, factory)``) is called as
    ``factory(uri, **tracker_options)`` and returns an object with these attributes
    and methods; it need not inherit from this class (it is a ``typing.Protocol``).

    Attributes:

    * ``uri`` (``str``): the URI the tracker was opened with, **safe to print**: it
      never contains a password (use :func:`umlaut_core.registry.redact`). It is
      shown in reprs, errors and ``umlaut doctor``, names the spool file, and is
      what other processes reopen (the spool's shipper process and, with
      ``MULTI_PROCESS``, the conformance suite), so it must reach the same store
      through the plugin's own scheme.
    * ``capabilities`` (``frozenset[Capability]``): a **class attribute**, e.g.
      ``capabilities = frozenset({Capability.PERSISTENT, Capability.MULTI_PROCESS})``;
      see :class:`Capability` for what each one changes.
    * ``default_artifact_uri`` (``str | None``): where bundles go when the user
      names no artifact store (umlaut-sql: an ``artifacts`` folder beside a SQLite
      file). When it is ``None`` and the tracker lacks ``STORES_BUNDLES``,
      ``Umlaut("scheme://…")`` without ``artifact_uri`` raises ``ConfigurationError``
      asking for ``artifact_uri``.

    Contract:

    * ``register_version`` is atomic. It assigns the next number for the name (1, 2,
      3 … with no gaps, also under concurrent writers) and returns the version with
      ``created=True``; if the name already has a version with the same digest it
      returns that one with ``created=False`` and writes nothing.
    * ``get_version`` resolves ``version`` first, then ``alias``, else the highest
      version; it raises ``ModelNotFoundError``, ``VersionNotFoundError`` or
      ``StageNotFoundError`` listing what exists.
    * ``set_alias`` moves an alias and appends the move to the ledger in one
      transaction; moving an alias to the version it already points at writes
      nothing (no ledger entry) and returns a change with
      ``from_version == to_version``.
    * ``record_runs`` writes all given records in one transaction: all or none.
      A record whose id already exists is skipped (ids are idempotency keys).
    * ``query_runs`` returns records newest first by ``id``, filtered by the query
      (see :class:`~umlaut_core.RunQuery` for each field's exact meaning).
    * Every method is safe to call from many threads at once and raises only
      :class:`~umlaut_core.UmlautError` subclasses (map the client library's errors
      in one place, ``raise ... from exc``; never put a password in a message).
    """

    #: The URI this tracker was opened with; never contains a password.
    uri: str
    #: What the backend supports; declare it as a class attribute.
    capabilities: frozenset[Capability]
    #: Where bundles go when the user names no artifact store (None: the facade
    #: raises ``ConfigurationError`` asking for ``artifact_uri``, unless the tracker
    #: declares ``STORES_BUNDLES``).
    default_artifact_uri: str | None

    def find_version(self, name: str, digest: str) -> ModelVersion | None:
        """Return the version of ``name`` with this digest, or None."""
        ...

    def register_version(self, draft: VersionDraft, bundle: bytes) -> ModelVersion:
        """Register a new version (or return the existing one with this digest).

        The version keeps every field of the draft as given, ``created_at`` and
        ``created_by`` included (``umlaut copy`` registers a version under its
        original time and author this way); only the number is the tracker's.
        """
        ...

    def get_version(
        self, name: str, *, version: int | None = None, alias: str | None = None
    ) -> ModelVersion:
        """Resolve a selector to one version or raise a NotFoundError subclass."""
        ...

    def load_bundle(self, version: ModelVersion) -> bytes:
        """Return the bundle bytes (only trackers with STORES_BUNDLES)."""
        ...

    def list_models(self) -> list[ModelInfo]:
        """Every model, sorted by name."""
        ...

    def list_versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name``, oldest first; ModelNotFoundError if none."""
        ...

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        changed_by: str | None,
        reason: str | None,
    ) -> StageChange:
        """Point ``alias`` at ``version`` and append the move to the ledger.

        Both happen in one transaction, serialised per model, so each ledger entry's
        ``from_version`` is the version it replaced. If ``alias`` already points at
        ``version`` (for example another writer won a race to the same target),
        nothing is written: no ledger entry; the returned change has
        ``from_version == to_version``. The facade's ``promote`` checks this too and
        does not call ``set_alias`` then.

        :param name: an existing model (``ModelNotFoundError`` otherwise).
        :param alias: a valid alias name (checked by the facade).
        :param version: an existing version of ``name`` (``VersionNotFoundError``
            otherwise; nothing is written).
        :param changed_by: who moved it, for the ledger.
        :param reason: why, for the ledger.
        :return: the move, with ``changed_at`` in UTC.
        """
        ...

    def stage_history(self, name: str, alias: str | None = None) -> list[StageChange]:
        """The ledger for ``name`` (optionally one alias), oldest first."""
        ...

    def record_runs(self, records: Iterable[AuditRecord]) -> int:
        """Write the records in one transaction; return how many were new.

        ``records`` may be consumed once only. When it also has a ``field_tuples()``
        method (the batches ``run_batch`` writes do), that yields the same records as
        :data:`~umlaut_core.records.RecordFields` tuples, in the same order; a tracker
        that writes rows may read those instead and skip building the objects.
        """
        ...

    def query_runs(self, query: RunQuery) -> list[AuditRecord]:
        """Audit records matching every set field of ``query``, newest first.

        Ordered by ``id`` descending (ids are sortable: newer ids sort higher); at
        most ``query.limit`` records. ``since`` is inclusive and ``until`` exclusive,
        both on ``started_at`` (timezone-aware UTC); ``before`` is an exclusive id
        cursor (only records with ``id < before``), so the next page is
        ``before=page[-1].id``. :func:`umlaut_core.stores.memory.select_runs` is the
        executable statement of these semantics.
        """
        ...

    def close(self) -> None:
        """Release connections; the tracker is unusable afterwards."""
        ...


@runtime_checkable
class ArtifactStore(Protocol):
    """Byte store for bundles, keyed by content.

    Contract: ``put`` is atomic (a reader never sees a partial object) and
    idempotent for a key; ``key`` is a relative path of ``[a-z0-9/._-]`` segments
    chosen by the core (never a user's model name). ``get`` raises ``ArtifactError``
    naming the URI when the object is missing. ``uri`` never holds a secret.
    """

    uri: str

    def put(self, key: str, data: bytes | BinaryIO) -> str:
        """Store ``data`` under ``key``; return the object's URI."""
        ...

    def get(self, uri: str) -> bytes:
        """Return the bytes stored at ``uri`` (a URI ``put`` returned)."""
        ...

    def exists(self, uri: str) -> bool:
        """True when an object is stored at ``uri``."""
        ...

    def delete(self, uri: str) -> None:
        """Remove the object at ``uri``; no error if it is already gone."""
        ...


class ImportingTracker(Tracker, Protocol):
    """What a tracker declaring ``Capability.IMPORT`` adds: writing history that was
    made elsewhere, as it was, so ``umlaut copy`` can use it as a destination.

    Versions need no method of their own: ``register_version`` keeps the draft's
    ``created_at``/``created_by``, and registering a model's versions oldest first
    into a store that has none of them gives them the same numbers (numbers stay gap
    free; anything else is reported by the copy as a mapping).
    """

    def import_ledger(
        self, name: str, changes: Sequence[StageChange], aliases: Mapping[str, int]
    ) -> int:
        """Append ledger entries made elsewhere, then set aliases without entries.

        An entry's identity is ``(stage, changed_at, from_version, to_version)`` (with
        ``changed_at`` to the microsecond): an entry of ``name`` already present with
        that identity is skipped, so importing twice adds nothing. The others are
        written with every field as given (``changed_at``, ``changed_by``, ``reason``),
        in the order given (oldest first), and ``stage_history`` returns them in
        ``changed_at`` order. Then each alias in ``aliases`` points at its version,
        *without* a ledger entry (the entries say how it got there).

        :param name: a model that has every version the entries and aliases name
            (``ModelNotFoundError`` / ``VersionNotFoundError`` otherwise, before
            anything is written).
        :param changes: entries of ``name`` (their ``model_name`` is ignored).
        :param aliases: alias → version: where each alias must point afterwards.
        :return: how many entries were added.
        """
        ...

    def import_runs(self, records: Iterable[AuditRecord]) -> int:
        """Write audit records replayed from another store; return how many were new.

        The same contract as ``record_runs`` (ids are idempotency keys; ``records``
        may offer ``field_tuples()``), except that every id must be checked against
        the store however recent the record (a tracker may skip that check on the
        ``run_model`` path), and the batch need not be one transaction: a batch cut
        short by a crash is completed by importing it again. Batches may be large
        (tens of thousands); a tracker may use a bulk path.
        """
        ...


class ScanningTracker(Tracker, Protocol):
    """What a tracker declaring ``Capability.SCAN_RUNS`` adds: audit records oldest
    first, streamed, and counted (``umlaut copy`` and its verification use them)."""

    def scan_runs(self, query: RunQuery, after: str | None = None) -> Iterator[AuditRecord]:
        """Every record matching ``query``'s filters, oldest first (ascending ``id``).

        The filters mean what they mean for ``query_runs`` (``before`` is an exclusive
        upper bound on ``id``); ``after`` is an exclusive lower bound on ``id``.
        ``query.limit`` is ignored: all matching records are yielded, fetched a page
        at a time so memory stays bounded however many there are. The iterator may
        hold a connection until it is exhausted or closed.
        """
        ...

    def count_runs(self, query: RunQuery) -> int:
        """How many records ``scan_runs(query)`` would yield (``limit`` ignored)."""
        ...


class ColumnScanningTracker(Tracker, Protocol):
    """What a tracker declaring ``Capability.SCAN_COLUMNS`` adds: the inputs, outputs,
    statuses, error types and durations of many audit records, without building the
    records (drift reports over millions of calls read them).

    ``umlaut_core.datasets.trail.scan_columns`` is the fallback for trackers without
    it, and the executable statement of what it returns.
    """

    def scan_run_columns(self, query: RunQuery, limit: int | None = None) -> Iterator[RunColumns]:
        """The records ``scan_runs(query)`` would yield, as consecutive chunks of columns.

        Oldest first (ascending ``id``) across and within chunks, every filter of
        ``query`` meaning what it means for ``query_runs``; ``query.limit`` is ignored.
        Chunks are never empty and their size is the tracker's choice; fetch them a
        page at a time so memory stays bounded however many records match.

        :param query: the filters.
        :param limit: at most this many records, the oldest (None: all of them).
        :return: the chunks; none when nothing matches. The iterator may hold a
            connection until it is exhausted or closed.
        """
        ...


@runtime_checkable
class ListingArtifactStore(ArtifactStore, Protocol):
    """What an artifact store declaring ``Capability.LIST_OBJECTS`` in its own
    ``capabilities`` attribute adds (``umlaut gc`` needs it)."""

    capabilities: frozenset[Capability]

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every object whose key starts with ``prefix`` (``""``: all), in any order.

        Yields :class:`~umlaut_core.records.StoredObject`: the key relative to the
        store, the URI ``put`` returned for it, its size and its last-modified time
        (aware UTC). Objects being written (a ``put`` not yet complete) are not
        listed. ``prefix`` is ``""`` or a key prefix of ``[A-Za-z0-9._-]`` segments
        (``bundles/``); anything else raises ``ArtifactError``.
        """
        ...
