"""Artifact stores, and the integrity of bundles as a tracker hands them back."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from ..._api import Umlaut
from ...exceptions import ArtifactError, IntegrityError, UmlautError
from ...keys import bundle_key
from ...protocols import ArtifactStore
from ...registry import redact
from ..models import Threshold
from ._base import TrackerTestBase

__all__ = ["ArtifactStoreSuite", "BundleIntegrityTests"]


class ArtifactStoreSuite:
    """Subclass and provide an ``artifact_store`` fixture; every test must pass."""

    @pytest.fixture
    def artifact_store(self) -> Iterator[ArtifactStore]:
        pytest.fail(f"{type(self).__name__} must define an `artifact_store` fixture")
        yield  # pragma: no cover

    def test_put_then_get_round_trips(self, artifact_store: ArtifactStore) -> None:
        uri = artifact_store.put("bundles/aa/roundtrip.zip", b"\x00bundle\xff" * 100)
        assert artifact_store.get(uri) == b"\x00bundle\xff" * 100
        assert artifact_store.exists(uri)

    def test_put_accepts_a_stream(self, artifact_store: ArtifactStore) -> None:
        data = bytes(range(256)) * 4096
        uri = artifact_store.put("bundles/bb/stream.zip", io.BytesIO(data))
        assert artifact_store.get(uri) == data

    def test_put_is_idempotent_per_key(self, artifact_store: ArtifactStore) -> None:
        first = artifact_store.put("bundles/cc/same.zip", b"one")
        second = artifact_store.put("bundles/cc/same.zip", b"one")
        assert first == second and artifact_store.get(first) == b"one"

    def test_missing_object_is_an_artifact_error(self, artifact_store: ArtifactStore) -> None:
        uri = artifact_store.put("bundles/dd/gone.zip", b"x")
        artifact_store.delete(uri)
        artifact_store.delete(uri)  # deleting twice is fine
        assert not artifact_store.exists(uri)
        with pytest.raises(ArtifactError):
            artifact_store.get(uri)

    @pytest.mark.parametrize("key", ["../escape.zip", "bundles/../../escape.zip", "/etc/passwd"])
    def test_keys_cannot_escape_the_store(self, artifact_store: ArtifactStore, key: str) -> None:
        with pytest.raises(UmlautError):
            artifact_store.put(key, b"nope")

    def test_uri_hides_secrets(self, artifact_store: ArtifactStore) -> None:
        assert redact(artifact_store.uri) == artifact_store.uri


class BundleIntegrityTests(TrackerTestBase):
    """A changed byte in a stored bundle is refused before anything is unpickled."""

    def test_tampered_bundle_is_refused_and_changes_nothing(
        self, umlaut: Umlaut, fresh_umlaut: Umlaut, model_name: str
    ) -> None:
        store = umlaut.artifact_store
        if store is None:
            pytest.skip("the tracker keeps bundles itself; tamper with them in its own tests")
        mv = umlaut.track_model(Threshold(3), model_name)
        original = store.get(mv.artifact_uri)
        flipped = bytearray(original)
        flipped[len(flipped) // 2] ^= 0xFF
        store.delete(mv.artifact_uri)
        assert store.put(bundle_key(mv.digest), bytes(flipped)) == mv.artifact_uri
        with pytest.raises(IntegrityError):
            fresh_umlaut.run_model(model_name, {"x": 1})
        assert fresh_umlaut.history(model_name) == []
        assert fresh_umlaut.get_version(model_name).digest == mv.digest

    def test_truncated_bundle_is_refused(
        self, umlaut: Umlaut, fresh_umlaut: Umlaut, model_name: str
    ) -> None:
        store = umlaut.artifact_store
        if store is None:
            pytest.skip("the tracker keeps bundles itself; tamper with them in its own tests")
        mv = umlaut.track_model(Threshold(4), model_name)
        data = store.get(mv.artifact_uri)
        store.delete(mv.artifact_uri)
        store.put(bundle_key(mv.digest), data[: len(data) // 3])
        with pytest.raises(IntegrityError):
            fresh_umlaut.run_model(model_name, {"x": 1})
        assert fresh_umlaut.history(model_name) == []
