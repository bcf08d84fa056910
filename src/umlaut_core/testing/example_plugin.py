"""A complete, small umlaut backend plugin to read and copy: the ``toy:`` tracker.

It ships in the core wheel so that a plugin author can work from the installed
package alone (``python -m pydoc umlaut_core.testing.example_plugin``, or open
``umlaut_core/testing/example_plugin.py``). It is *not* registered: nothing in the
core declares it as an entry point, so ``Umlaut("toy:")`` works only once you
register it, as your own plugin would be.

What a backend distribution needs, in four pieces:

1. **An entry point** in the ``umlaut`` group. Its name (``toy`` below) is the plugin
   name that ``UMLAUT_DISABLE_PLUGINS`` takes::

       # pyproject.toml of umlaut-toy
       [project.entry-points.umlaut]
       toy = "umlaut_toy.plugin"

2. **A registration hook** (:func:`umlaut_register_backends` below): it maps a URI
   scheme to a factory called as ``factory(uri, **tracker_options)``. Keep the
   module cheap to import; import a client library inside the factory.

3. **A tracker** that satisfies :class:`umlaut_core.Tracker` (:class:`ToyTracker`
   below): the attributes ``uri``, ``capabilities`` (a ``frozenset[Capability]``
   class attribute) and ``default_artifact_uri``, and the methods whose docstrings
   in :mod:`umlaut_core.protocols` are the contract. Raise only
   :class:`umlaut_core.UmlautError` subclasses (``ModelNotFoundError`` and friends
   take what exists, so messages list it).

4. **The conformance suite** (``pip install umlaut-core[testing]``), one class and
   one fixture::

       # tests/test_conformance.py of umlaut-toy
       import pytest
       from umlaut_core.testing import TrackerSuite
       from umlaut_core.testing.example_plugin import ToyTracker

       class TestToyTracker(TrackerSuite):
           @pytest.fixture
           def tracker(self):
               tracker = ToyTracker("toy:")
               yield tracker
               tracker.close()

   umlaut's own tests run exactly this class (``tests/test_conformance.py``).

This tracker keeps everything in one process (like ``memory:``), so it declares only
``STORES_BUNDLES``. A store that survives reopening declares ``PERSISTENT``; one that
several processes can share declares ``MULTI_PROCESS`` too, and then the suite starts
fresh interpreters that open ``Umlaut(tracker.uri, ...)`` through the installed entry
point: install your plugin (``pip install -e .``) before running the suite, make
``uri`` reopen the same store, and override the ``store_uris`` fixture when ``uri``
hides a credential the other process needs.

To try it without an entry point, register the module on a plugin manager::

    from umlaut_core import Umlaut, get_plugin_manager
    from umlaut_core.testing import example_plugin

    pm = get_plugin_manager()
    pm.register(example_plugin, "toy")
    umlaut = Umlaut("toy:", plugin_manager=pm)
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from typing import Any

from ..exceptions import (
    ArtifactError,
    ConfigurationError,
    ModelNotFoundError,
    StageNotFoundError,
    VersionNotFoundError,
)
from ..hookspecs import hookimpl
from ..protocols import Capability
from ..records import AuditRecord, ModelInfo, ModelVersion, RunQuery, StageChange, VersionDraft
from ..registry import BackendRegistry, redact

__all__ = ["SCHEME", "ToyTracker", "umlaut_register_backends"]

#: The URI scheme this plugin handles: ``toy:`` or ``toy://anything``.
SCHEME = "toy"


class ToyTracker:
    """The Tracker contract in plain dicts under one lock, written out in full.

    :param uri: ``toy:`` (each tracker is a new, empty store).
    :param options: ``tracker_options``; this tracker takes none, and refuses
        unknown ones rather than ignoring a typo.
    """

    #: Declared, not guessed: the suite skips tests that need anything else.
    capabilities: frozenset[Capability] = frozenset({Capability.STORES_BUNDLES})
    #: Bundles live in the tracker (STORES_BUNDLES), so no artifact store is needed.
    default_artifact_uri: str | None = None

    def __init__(self, uri: str = "toy:", **options: Any) -> None:
        if options:
            raise ConfigurationError(
                f"the toy tracker {redact(uri)!r} takes no options; got {sorted(options)}"
            )
        #: Safe to print: ``redact`` hides any password a URI might carry.
        self.uri = redact(uri)
        self._lock = threading.RLock()  # every method may be called from many threads
        self._versions: dict[str, list[ModelVersion]] = {}
        self._descriptions: dict[str, str | None] = {}
        self._bundles: dict[str, bytes] = {}
        self._aliases: dict[str, dict[str, int]] = {}
        self._ledger: list[StageChange] = []
        self._runs: dict[str, AuditRecord] = {}

    # -- versions -----------------------------------------------------------------

    def find_version(self, name: str, digest: str) -> ModelVersion | None:
        """Return the version of ``name`` with this digest, or None."""
        with self._lock:
            return next((v for v in self._versions.get(name, ()) if v.digest == digest), None)

    def register_version(self, draft: VersionDraft, bundle: bytes) -> ModelVersion:
        """Number the next version atomically, or return the one with this digest."""
        with self._lock:
            existing = self.find_version(draft.name, draft.digest)
            if existing is not None:
                return existing  # created=False: nothing written
            versions = self._versions.setdefault(draft.name, [])
            mv = ModelVersion(
                name=draft.name,
                version=len(versions) + 1,  # 1, 2, 3 … no gaps: we hold the lock
                digest=draft.digest,
                flavor=draft.flavor,
                artifact_uri=draft.artifact_uri or f"toy:bundles/{draft.digest}",
                created_at=draft.created_at,
                manifest=dict(draft.manifest),
                created_by=draft.created_by,
                description=draft.description,
                params=dict(draft.params),
                metrics=dict(draft.metrics),
                tags=dict(draft.tags),
            )
            self._bundles[draft.digest] = bundle
            versions.append(mv)
            self._descriptions.setdefault(draft.name, draft.description)
            return dataclasses.replace(mv, created=True)

    def _model(self, name: str) -> list[ModelVersion]:
        versions = self._versions.get(name)
        if not versions:
            raise ModelNotFoundError(name, self._versions)  # lists the existing names
        return versions

    def get_version(
        self, name: str, *, version: int | None = None, alias: str | None = None
    ) -> ModelVersion:
        """``version`` first, then ``alias``, else the latest; typed errors otherwise."""
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
        """The bundle bytes given to ``register_version`` (STORES_BUNDLES)."""
        with self._lock:
            try:
                return self._bundles[version.digest]
            except KeyError:
                raise ArtifactError(f"no bundle stored for {version.digest}") from None

    def list_models(self) -> list[ModelInfo]:
        """Every model, sorted by name."""
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
        """Every version of ``name``, oldest first."""
        with self._lock:
            return list(self._model(name))

    # -- aliases and the ledger ---------------------------------------------------

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        changed_by: str | None,
        reason: str | None,
    ) -> StageChange:
        """Move ``alias`` and ledger the move; an alias already there writes nothing."""
        from ..clock import utcnow

        with self._lock:
            self.get_version(name, version=version)  # VersionNotFoundError first
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
                return change  # the ledger records moves, not repeated requests
            aliases[alias] = version
            self._ledger.append(change)
            return change

    def stage_history(self, name: str, alias: str | None = None) -> list[StageChange]:
        """The ledger of ``name`` (optionally one alias), oldest first."""
        with self._lock:
            self._model(name)
            return [
                c
                for c in self._ledger
                if c.model_name == name and (alias is None or c.stage == alias)
            ]

    # -- audit records ------------------------------------------------------------

    def record_runs(self, records: Iterable[AuditRecord]) -> int:
        """All or nothing; ids already held are skipped (ids are idempotency keys)."""
        batch = list(records)  # consume the iterable before changing anything
        with self._lock:
            new = {r.id: r for r in batch if r.id not in self._runs}
            self._runs.update(new)
            return len(new)

    def query_runs(self, query: RunQuery) -> list[AuditRecord]:
        """Newest first by id; ``since`` ≤ started_at < ``until``; ids < ``before``."""
        with self._lock:
            matched = [
                r
                for r in self._runs.values()
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

    def close(self) -> None:
        """Nothing to release; a real backend closes its connections here."""


@hookimpl
def umlaut_register_backends(registry: BackendRegistry) -> None:
    """Publish the ``toy`` scheme; called once per plugin manager's registry."""
    registry.add_tracker(SCHEME, ToyTracker)
