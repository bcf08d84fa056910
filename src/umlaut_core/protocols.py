"""The two contracts every backend implements: ``Tracker`` and ``ArtifactStore``.

The conformance suite in :mod:`umlaut_core.testing` checks these contracts; the
docstrings here are what it checks. Implementations must be safe to call from many
threads at once, and raise only :class:`~umlaut_core.UmlautError` subclasses.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import BinaryIO, Protocol, runtime_checkable

from .records import AuditRecord, ModelInfo, ModelVersion, RunQuery, StageChange, VersionDraft

__all__ = ["ArtifactStore", "Capability", "Tracker"]


class Capability(enum.Enum):
    """What a backend declares it supports; the conformance suite skips the rest."""

    #: Data survives closing and reopening the store from the same URI.
    PERSISTENT = "persistent"
    #: Several processes may use one store at once (the suite spawns processes).
    MULTI_PROCESS = "multi_process"
    #: The tracker keeps bundles itself (``register_version`` gets the bytes and
    #: ``load_bundle`` returns them); no separate ArtifactStore is needed.
    STORES_BUNDLES = "stores_bundles"
    #: The tracker is a network service: audit records are spooled locally by default
    #: so ``run_model`` never waits on it (see :mod:`umlaut_core.delivery`).
    REMOTE = "remote"


@runtime_checkable
class Tracker(Protocol):
    """Metadata store: versions, aliases with their ledger, and audit records.

    Contract:

    * ``uri`` is safe to print: it never contains a password.
    * ``register_version`` is atomic. It assigns the next number for the name (1, 2,
      3 … with no gaps, also under concurrent writers) and returns the version with
      ``created=True``; if the name already has a version with the same digest it
      returns that one with ``created=False`` and writes nothing.
    * ``get_version`` resolves ``version`` first, then ``alias``, else the highest
      version; it raises ``ModelNotFoundError``, ``VersionNotFoundError`` or
      ``StageNotFoundError`` listing what exists.
    * ``set_alias`` moves an alias and appends to the ledger in one transaction.
    * ``record_runs`` writes all given records in one transaction: all or none.
      A record whose id already exists is skipped (ids are idempotency keys).
    * ``query_runs`` returns records newest first, filtered by the query.
    """

    uri: str
    capabilities: frozenset[Capability]
    #: Where bundles go when the user names no artifact store (None: ask the user).
    default_artifact_uri: str | None

    def find_version(self, name: str, digest: str) -> ModelVersion | None:
        """Return the version of ``name`` with this digest, or None."""
        ...

    def register_version(self, draft: VersionDraft, bundle: bytes) -> ModelVersion:
        """Register a new version (or return the existing one with this digest)."""
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
        """Point ``alias`` at ``version`` and append the move to the ledger."""
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
        """Audit records matching ``query``, newest first."""
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
