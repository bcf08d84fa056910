"""The core's own stores pass the conformance suite unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from umlaut_core.stores.folder import FolderArtifactStore
from umlaut_core.stores.memory import MemoryArtifactStore, MemoryTracker
from umlaut_core.testing import ArtifactStoreSuite, ExperimentStoreTests, TrackerSuite
from umlaut_core.testing.example_plugin import ToyTracker


class TestMemoryTracker(TrackerSuite):
    """memory: keeps bundles itself."""

    @pytest.fixture
    def tracker(self) -> Iterator[MemoryTracker]:
        tracker = MemoryTracker()
        yield tracker
        tracker.close()


class TestMemoryTrackerWithFolder(TrackerSuite):
    """memory: metadata with bundles in a local folder (exercises the integrity tests)."""

    @pytest.fixture
    def tracker(self) -> Iterator[MemoryTracker]:
        yield MemoryTracker()

    @pytest.fixture
    def artifact_store(self, tmp_path: Path) -> FolderArtifactStore:
        return FolderArtifactStore(str(tmp_path / "artifacts"))


class TestMemoryExperimentStore(ExperimentStoreTests):
    """memory: training runs alone (TrackerSuite runs them too; this class is what
    ``-k Experiment`` selects)."""

    @pytest.fixture
    def tracker(self) -> Iterator[MemoryTracker]:
        tracker = MemoryTracker()
        yield tracker
        tracker.close()


class TestToyTracker(TrackerSuite):
    """The example plugin shipped in the core wheel, tested as its docstring shows."""

    @pytest.fixture
    def tracker(self) -> Iterator[ToyTracker]:
        tracker = ToyTracker("toy:")
        yield tracker
        tracker.close()


class TestFolderStore(ArtifactStoreSuite):
    """The local-folder artifact store."""

    @pytest.fixture
    def artifact_store(self, tmp_path: Path) -> FolderArtifactStore:
        return FolderArtifactStore(f"file://{tmp_path / 'store'}")


class TestMemoryStore(ArtifactStoreSuite):
    """The in-memory artifact store."""

    @pytest.fixture
    def artifact_store(self) -> MemoryArtifactStore:
        return MemoryArtifactStore()
