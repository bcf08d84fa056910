"""Artifact stores, and the integrity of bundles as a tracker hands them back."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

from ..._api import Umlaut
from ...exceptions import ArtifactError, IntegrityError, UmlautError
from ...keys import bundle_key
from ...protocols import ArtifactStore, Capability, ListingArtifactStore
from ...records import BUNDLE_SHA256_TAG, ModelVersion
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

    @staticmethod
    def _listing(store: ArtifactStore) -> ListingArtifactStore:
        if Capability.LIST_OBJECTS not in getattr(store, "capabilities", frozenset()):
            pytest.skip(f"{type(store).__name__} does not declare Capability.LIST_OBJECTS")
        assert isinstance(store, ListingArtifactStore)
        return store

    def test_list_yields_what_was_put(self, artifact_store: ArtifactStore) -> None:
        store = self._listing(artifact_store)
        before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        uris = {
            "bundles/ee/one.zip": store.put("bundles/ee/one.zip", b"1" * 10),
            "bundles/ef/two.zip": store.put("bundles/ef/two.zip", io.BytesIO(b"2" * 2000)),
            "other/three.bin": store.put("other/three.bin", b"3"),
        }
        everything = {o.key: o for o in store.list()}
        assert set(uris) <= set(everything)
        bundles = {o.key: o for o in store.list("bundles/")}
        assert {"bundles/ee/one.zip", "bundles/ef/two.zip"} <= set(bundles)
        assert not any(key.startswith("other/") for key in bundles)
        one, two = bundles["bundles/ee/one.zip"], bundles["bundles/ef/two.zip"]
        assert (one.uri, one.size, two.uri, two.size) == (
            uris["bundles/ee/one.zip"],
            10,
            uris["bundles/ef/two.zip"],
            2000,
        )
        after = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
        assert one.modified.tzinfo is not None and before <= one.modified <= after
        assert store.get(one.uri) == b"1" * 10
        store.delete(one.uri)
        assert "bundles/ee/one.zip" not in {o.key for o in store.list("bundles/")}

    @pytest.mark.parametrize("prefix", ["../", "/etc/", "bundles/../../"])
    def test_list_refuses_a_prefix_that_escapes(
        self, artifact_store: ArtifactStore, prefix: str
    ) -> None:
        store = self._listing(artifact_store)
        with pytest.raises(UmlautError):
            list(store.list(prefix))


class BundleIntegrityTests(TrackerTestBase):
    """A changed byte in a stored bundle is refused before anything is unpickled."""

    @staticmethod
    def _stored(umlaut: Umlaut, model: Any, name: str) -> tuple[ArtifactStore, ModelVersion]:
        store = umlaut.artifact_store
        if store is None:
            pytest.skip("the tracker keeps bundles itself; tamper with them in its own tests")
        return store, umlaut.track_model(model, name)

    @staticmethod
    def _rewrite(store: ArtifactStore, mv: ModelVersion, data: bytes) -> None:
        """Replace the stored bundle file, in place, with other bytes."""
        assert mv.artifact_uri is not None
        store.delete(mv.artifact_uri)
        # Bundles are keyed by the sha256 of the registered file.
        key = bundle_key(mv.tags[BUNDLE_SHA256_TAG])
        assert store.put(key, data) == mv.artifact_uri

    def test_registered_version_records_the_file_sha256(
        self, umlaut: Umlaut, model_name: str
    ) -> None:
        store, mv = self._stored(umlaut, Threshold(2), model_name)
        assert mv.artifact_uri is not None
        data = store.get(mv.artifact_uri)
        assert mv.tags[BUNDLE_SHA256_TAG] == hashlib.sha256(data).hexdigest()

    def test_tampered_bundle_is_refused_and_changes_nothing(
        self, umlaut: Umlaut, fresh_umlaut: Umlaut, model_name: str
    ) -> None:
        store, mv = self._stored(umlaut, Threshold(3), model_name)
        assert mv.artifact_uri is not None
        flipped = bytearray(store.get(mv.artifact_uri))
        flipped[len(flipped) // 2] ^= 0xFF
        self._rewrite(store, mv, bytes(flipped))
        with pytest.raises(IntegrityError):
            fresh_umlaut.run_model(model_name, {"x": 1})
        assert fresh_umlaut.history(model_name) == []
        assert fresh_umlaut.get_version(model_name).digest == mv.digest

    def test_truncated_bundle_is_refused(
        self, umlaut: Umlaut, fresh_umlaut: Umlaut, model_name: str
    ) -> None:
        store, mv = self._stored(umlaut, Threshold(4), model_name)
        assert mv.artifact_uri is not None
        data = store.get(mv.artifact_uri)
        self._rewrite(store, mv, data[: len(data) // 3])
        with pytest.raises(IntegrityError):
            fresh_umlaut.run_model(model_name, {"x": 1})
        assert fresh_umlaut.history(model_name) == []

    @pytest.mark.parametrize("change", ["flip the last byte", "append bytes", "zip comment"])
    def test_changed_zip_container_is_refused(
        self, umlaut: Umlaut, fresh_umlaut: Umlaut, model_name: str, change: str
    ) -> None:
        """Changes outside payload and manifest (the digest's cover) are caught too."""
        store, mv = self._stored(umlaut, Threshold(5), model_name)
        assert mv.artifact_uri is not None
        data = store.get(mv.artifact_uri)
        if change == "flip the last byte":
            # The last bytes of a zip are its end-of-central-directory record.
            changed = data[:-1] + bytes([data[-1] ^ 0x01])
        elif change == "append bytes":
            changed = data + b"\0" * 64
        else:
            buffer = io.BytesIO(data)
            with zipfile.ZipFile(buffer, "a") as zf:
                zf.comment = b"rewritten"
            changed = buffer.getvalue()
        assert changed != data
        self._rewrite(store, mv, changed)
        with pytest.raises(IntegrityError, match="changed since it was registered"):
            fresh_umlaut.run_model(model_name, {"x": 1})
        assert fresh_umlaut.history(model_name) == []
