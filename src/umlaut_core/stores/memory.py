"""``memory:`` — the reference tracker and artifact store, for tests and examples.

Everything lives in one process and vanishes with it. ``memory:`` URIs with the same
name (``memory:`` alone, or ``memory://shared``) within one ``Umlaut`` are unrelated:
each factory call is a fresh store.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, BinaryIO

from ..exceptions import (
    ArtifactError,
    ModelNotFoundError,
    StageNotFoundError,
    VersionNotFoundError,
)
from ..hookspecs import hookimpl
from ..keys import check_key, check_prefix
from ..protocols import Capability
from ..records import (
    AuditRecord,
    ModelInfo,
    ModelVersion,
    RunQuery,
    StageChange,
    StoredObject,
    VersionDraft,
)
from ..registry import BackendRegistry, redact
from .folder import refuse_options

__all__ = ["MemoryArtifactStore", "MemoryTracker", "scan_select", "select_runs"]


class MemoryTracker:
    """The Tracker contract in plain dicts under one lock."""

    capabilities = frozenset({Capability.STORES_BUNDLES, Capability.IMPORT, Capability.SCAN_RUNS})
    default_artifact_uri: str | None = None

    def __init__(self, uri: str = "memory:", **options: Any) -> None:
        refuse_options(options, "tracker", f"the memory tracker {redact(uri)!r}")
        self.uri = uri
        self._lock = threading.RLock()
        self._versions: dict[str, list[ModelVersion]] = {}
        self._descriptions: dict[str, str | None] = {}
        self._bundles: dict[str, bytes] = {}
        self._aliases: dict[str, dict[str, int]] = {}
        self._ledger: list[StageChange] = []
        self._runs: dict[str, AuditRecord] = {}

    def find_version(self, name: str, digest: str) -> ModelVersion | None:
        with self._lock:
            for mv in self._versions.get(name, ()):
                if mv.digest == digest:
                    return mv
        return None

    def register_version(self, draft: VersionDraft, bundle: bytes) -> ModelVersion:
        with self._lock:
            existing = self.find_version(draft.name, draft.digest)
            if existing is not None:
                return existing
            versions = self._versions.setdefault(draft.name, [])
            number = len(versions) + 1
            mv = ModelVersion(
                name=draft.name,
                version=number,
                digest=draft.digest,
                flavor=draft.flavor,
                artifact_uri=draft.artifact_uri or f"memory:bundles/{draft.digest}",
                created_at=draft.created_at,
                manifest=dict(draft.manifest),
                created_by=draft.created_by,
                description=draft.description,
                params=dict(draft.params),
                metrics=dict(draft.metrics),
                tags=dict(draft.tags),
            )
            if draft.artifact_uri is None:
                self._bundles[draft.digest] = bundle
            versions.append(mv)
            self._descriptions.setdefault(draft.name, draft.description)
            return dataclasses.replace(mv, created=True)

    def _model(self, name: str) -> list[ModelVersion]:
        versions = self._versions.get(name)
        if not versions:
            raise ModelNotFoundError(name, self._versions)
        return versions

    def get_version(
        self, name: str, *, version: int | None = None, alias: str | None = None
    ) -> ModelVersion:
        with self._lock:
            versions = self._model(name)
            if version is not None:
                if not 1 <= version <= len(versions):
                    raise VersionNotFoundError(name, version, (v.version for v in versions))
                return versions[version - 1]
            if alias is not None:
                aliases = self._aliases.get(name, {})
                if alias not in aliases:
                    raise StageNotFoundError(name, alias, aliases)
                return versions[aliases[alias] - 1]
            return versions[-1]

    def load_bundle(self, version: ModelVersion) -> bytes:
        with self._lock:
            try:
                return self._bundles[version.digest]
            except KeyError:
                raise ArtifactError(f"no bundle stored for {version.digest}") from None

    def list_models(self) -> list[ModelInfo]:
        with self._lock:
            return [
                ModelInfo(
                    name=name,
                    latest_version=len(versions),
                    aliases=dict(self._aliases.get(name, {})),
                    description=self._descriptions.get(name),
                )
                for name, versions in sorted(self._versions.items())
            ]

    def list_versions(self, name: str) -> list[ModelVersion]:
        with self._lock:
            return list(self._model(name))

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        changed_by: str | None,
        reason: str | None,
    ) -> StageChange:
        from ..clock import utcnow

        with self._lock:
            self.get_version(name, version=version)
            aliases = self._aliases.setdefault(name, {})
            change = StageChange(
                model_name=name,
                stage=alias,
                from_version=aliases.get(alias),
                to_version=version,
                changed_at=utcnow(),
                changed_by=changed_by,
                reason=reason,
            )
            if change.from_version == version:
                # Already there: the ledger records moves, not repeated requests.
                return change
            aliases[alias] = version
            self._ledger.append(change)
            return change

    def stage_history(self, name: str, alias: str | None = None) -> list[StageChange]:
        with self._lock:
            self._model(name)
            found = [
                c
                for c in self._ledger
                if c.model_name == name and (alias is None or c.stage == alias)
            ]
        # Imported entries may be older than entries written here: time order, stable.
        return sorted(found, key=lambda c: c.changed_at)

    def import_ledger(
        self, name: str, changes: Sequence[StageChange], aliases: Mapping[str, int]
    ) -> int:
        with self._lock:
            for number in [*(c.to_version for c in changes), *aliases.values()]:
                self.get_version(name, version=number)
            held = {
                (c.stage, c.changed_at, c.from_version, c.to_version)
                for c in self._ledger
                if c.model_name == name
            }
            added = 0
            for c in changes:
                identity = (c.stage, c.changed_at, c.from_version, c.to_version)
                if identity in held:
                    continue
                held.add(identity)
                self._ledger.append(dataclasses.replace(c, model_name=name))
                added += 1
            self._aliases.setdefault(name, {}).update(aliases)
            return added

    def record_runs(self, records: Iterable[AuditRecord]) -> int:
        batch = list(records)  # consume first: all or nothing
        with self._lock:
            new = {r.id: r for r in batch if r.id not in self._runs}
            self._runs.update(new)
            return len(new)

    def import_runs(self, records: Iterable[AuditRecord]) -> int:
        return self.record_runs(records)

    def query_runs(self, query: RunQuery) -> list[AuditRecord]:
        with self._lock:
            runs = list(self._runs.values())
        return select_runs(runs, query)

    def scan_runs(self, query: RunQuery, after: str | None = None) -> Iterator[AuditRecord]:
        with self._lock:
            runs = list(self._runs.values())
        return iter(scan_select(runs, query, after))

    def count_runs(self, query: RunQuery) -> int:
        with self._lock:
            runs = list(self._runs.values())
        return len(scan_select(runs, query, None))

    def close(self) -> None:
        return None


def select_runs(runs: Iterable[AuditRecord], query: RunQuery) -> list[AuditRecord]:
    """Filter, order newest first and page audit records in Python.

    Shared by stores that cannot filter server-side; it is also the executable
    statement of what each ``RunQuery`` field means.
    """
    matched = [
        r
        for r in runs
        if (query.model_name is None or r.model_name == query.model_name)
        and (query.version is None or r.version == query.version)
        and (query.status is None or r.status == query.status)
        and (query.reference_id is None or r.reference_id == query.reference_id)
        and (query.since is None or r.started_at >= query.since)
        and (query.until is None or r.started_at < query.until)
        and (query.before is None or r.id < query.before)
    ]
    matched.sort(key=lambda r: r.id, reverse=True)
    return matched[: query.limit]


def scan_select(
    runs: Iterable[AuditRecord], query: RunQuery, after: str | None
) -> list[AuditRecord]:
    """``scan_runs`` in Python: every match of ``query`` (its limit ignored) with
    ``id > after``, oldest first; the executable statement of that contract."""
    unlimited = dataclasses.replace(query, limit=2**62)
    matched = [r for r in select_runs(runs, unlimited) if after is None or r.id > after]
    matched.reverse()
    return matched


class MemoryArtifactStore:
    """Bytes in a dict: the ArtifactStore contract without a disk."""

    capabilities = frozenset({Capability.LIST_OBJECTS})

    def __init__(self, uri: str = "memory:", **options: Any) -> None:
        refuse_options(options, "artifact", f"the memory store {redact(uri)!r}")
        self.uri = uri
        self._objects: dict[str, bytes] = {}
        self._written: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes | BinaryIO) -> str:
        from ..clock import utcnow

        uri = f"memory:{check_key(key)}"
        content = data if isinstance(data, bytes) else data.read()
        with self._lock:
            if uri not in self._objects:
                self._objects[uri] = bytes(content)
                self._written[uri] = utcnow()
        return uri

    def get(self, uri: str) -> bytes:
        with self._lock:
            try:
                return self._objects[uri]
            except KeyError:
                raise ArtifactError(f"no artifact at {uri!r} in the memory store") from None

    def exists(self, uri: str) -> bool:
        with self._lock:
            return uri in self._objects

    def delete(self, uri: str) -> None:
        with self._lock:
            self._objects.pop(uri, None)
            self._written.pop(uri, None)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        check_prefix(prefix)
        with self._lock:
            found = [
                StoredObject(uri[len("memory:") :], uri, len(data), self._written[uri])
                for uri, data in self._objects.items()
                if uri.startswith("memory:" + prefix)
            ]
        return iter(found)


@hookimpl
def umlaut_register_backends(registry: BackendRegistry) -> None:
    registry.add_tracker("memory", MemoryTracker)
    registry.add_artifact_store("memory", MemoryArtifactStore)
    from ..experiments.memory import MemoryExperimentStore  # only when registering

    registry.add_experiment_store("memory", MemoryExperimentStore)
    from ..datasets.memory import MemoryDatasetStore

    registry.add_dataset_store("memory", MemoryDatasetStore)
