"""What every conformance class shares: fixtures and capability checks."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..._api import Umlaut
from ..._manager import get_plugin_manager
from ...protocols import ArtifactStore, Capability, Tracker
from ...stores.folder import FolderArtifactStore

__all__ = ["TrackerTestBase"]


class TrackerTestBase:
    """Fixtures for tracker tests; a backend overrides ``tracker`` (and maybe more)."""

    @pytest.fixture
    def tracker(self) -> Iterator[Tracker]:
        """The backend under test: every subclass must override this fixture."""
        pytest.fail(
            f"{type(self).__name__} must define a `tracker` fixture yielding the backend "
            f"under test (see umlaut_core.testing)"
        )
        yield  # pragma: no cover

    @pytest.fixture
    def artifact_store(self, tracker: Tracker, tmp_path: Path) -> ArtifactStore | None:
        """A folder store, unless the tracker keeps bundles itself."""
        if Capability.STORES_BUNDLES in tracker.capabilities:
            return None
        return FolderArtifactStore(str(tmp_path / "artifacts"))

    @pytest.fixture
    def store_uris(
        self, tracker: Tracker, artifact_store: ArtifactStore | None
    ) -> tuple[str, str | None]:
        """``(tracking_uri, artifact_uri)`` that reopen the same stores elsewhere.

        Used by the reopen test (``PERSISTENT``) and by the process tests
        (``MULTI_PROCESS``), which open ``Umlaut(tracking_uri, artifact_uri)`` in fresh
        interpreters through the installed entry point: the plugin must be installed
        in the test environment. Defaults to ``tracker.uri`` and the artifact store's
        ``uri``; override it when ``uri`` hides a credential the other process needs.
        """
        return tracker.uri, artifact_store.uri if artifact_store is not None else None

    @pytest.fixture
    def umlaut(self, tracker: Tracker, artifact_store: ArtifactStore | None) -> Umlaut:
        """A facade on ``tracker`` and ``artifact_store``, with sync audit delivery."""
        # sync: the suite checks the tracker's own writes, not the spool in front of it.
        return Umlaut(
            tracker=tracker,
            artifact_store=artifact_store,
            plugin_manager=get_plugin_manager(),
            delivery="sync",
        )

    @pytest.fixture
    def fresh_umlaut(self, umlaut: Umlaut) -> Umlaut:
        """A second facade on the same stores, with empty caches."""
        return Umlaut(
            tracker=umlaut.tracker,
            artifact_store=umlaut.artifact_store,
            plugin_manager=get_plugin_manager(),
            delivery="sync",
        )

    @pytest.fixture
    def model_name(self) -> str:
        """A name no other test uses, so stores may be shared between tests."""
        return f"conformance {uuid.uuid4().hex[:12]}"

    @staticmethod
    def require(tracker: Tracker, capability: Capability) -> None:
        if capability not in tracker.capabilities:
            pytest.skip(f"{type(tracker).__name__} does not declare Capability.{capability.name}")
