"""S3ArtifactStore behaviour beyond the conformance suite (moto in-process)."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sys
from typing import Any

import pytest
from umlaut_s3 import S3ArtifactStore

from umlaut_core import Umlaut, get_plugin_manager
from umlaut_core.exceptions import ArtifactError, ConfigurationError, IntegrityError
from umlaut_core.registry import BackendRegistry
from umlaut_core.stores.memory import MemoryTracker

MiB = 1024 * 1024


def _calls(store: S3ArtifactStore) -> list[str]:
    """Record the S3 operations the store's client makes from now on."""
    seen: list[str] = []
    store._client.meta.events.register(
        "before-call.s3.*", lambda model, **_: seen.append(model.name)
    )
    return seen


class _Unseekable(io.RawIOBase):
    """A pipe-like binary stream: readable, not seekable."""

    def __init__(self, data: bytes) -> None:
        self._src = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._src.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


class TestPlugin:
    """The plugin registers the s3 scheme and imports boto3 only when a store is built."""

    def test_entry_point_registers_the_s3_scheme(self) -> None:
        registry = BackendRegistry.from_plugins(get_plugin_manager())
        assert "umlaut-s3" in registry.artifact_schemes["s3"]

    def test_importing_the_plugin_does_not_import_boto3(self) -> None:
        code = (
            "import sys, umlaut_s3, umlaut_s3.plugin\n"
            "from umlaut_core import get_plugin_manager\n"
            "from umlaut_core.registry import BackendRegistry\n"
            "BackendRegistry.from_plugins(get_plugin_manager())\n"
            "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "[]"

    def test_registry_opens_an_s3_store_with_options(self, mocked_s3: Any) -> None:
        registry = BackendRegistry.from_plugins(get_plugin_manager())
        store = registry.open_artifact_store("s3://umlaut-test/p", connect_timeout=2)
        assert isinstance(store, S3ArtifactStore)
        assert store._client.meta.config.connect_timeout == 2


class TestUris:
    """URIs, options and keys: parsed strictly, printed without secrets."""

    def test_bucket_prefix_and_public_options_form_the_uri(self, mocked_s3: Any) -> None:
        store = S3ArtifactStore(
            "s3://umlaut-test/team/models/?region_name=eu-west-1",
            endpoint_url="http://127.0.0.1:9",
            aws_secret_access_key="opt-secret-value",
            aws_access_key_id="AKIAOPTIONKEY",
        )
        assert (store.bucket, store.prefix) == ("umlaut-test", "team/models")
        assert store.uri == (
            "s3://umlaut-test/team/models?endpoint_url=http://127.0.0.1:9&region_name=eu-west-1"
        )
        assert "opt-secret-value" not in repr(store) and "AKIAOPTIONKEY" not in repr(store)
        assert store._client.meta.region_name == "eu-west-1"

    def test_keyword_options_override_the_query(self, mocked_s3: Any) -> None:
        store = S3ArtifactStore(
            "s3://umlaut-test?read_timeout=7&multipart_threshold=64MiB", read_timeout=9
        )
        assert store._client.meta.config.read_timeout == 9
        assert store._opts.multipart_threshold == 64 * MiB

    @pytest.mark.parametrize(
        ("uri", "options", "needle"),
        [
            ("s3://umlaut-test?aws_secret_access_key=abc", {}, "credentials"),
            ("s3://AKIA:secret@umlaut-test/p", {}, "credentials"),
            ("s3://Bad_Bucket/p", {}, "bucket name"),
            ("s3://umlaut-test/a/../b", {}, "refused"),
            ("s3://umlaut-test/p", {"colour": "red"}, "unknown S3 option"),
            ("s3://umlaut-test/p", {"multipart_chunksize": "1MiB"}, "5 MiB"),
            ("s3://umlaut-test/p", {"addressing_style": "sideways"}, "addressing_style"),
            ("s3://umlaut-test/p?connect_timeout=soon", {}, "not a number"),
            ("file:///tmp/x", {}, "not an S3 URI"),
        ],
    )
    def test_bad_configuration_is_refused(
        self, mocked_s3: Any, uri: str, options: dict[str, Any], needle: str
    ) -> None:
        with pytest.raises(ConfigurationError, match=needle) as info:
            S3ArtifactStore(uri, **options)
        assert "secret@" not in str(info.value) and "=abc" not in str(info.value)

    def test_unknown_aws_profile_is_a_configuration_error(self, mocked_s3: Any) -> None:
        with pytest.raises(ConfigurationError, match="no-such-profile"):
            S3ArtifactStore("s3://umlaut-test/p", profile_name="no-such-profile")

    @pytest.mark.parametrize(
        "target",
        [
            "s3://other-bucket/p/bundles/aa/x.zip",
            "s3://umlaut-test/elsewhere/bundles/aa/x.zip",
            "s3://umlaut-test/p/../elsewhere/x.zip",
            "s3://umlaut-test/p/bundles/%2e%2e/x.zip",
            "bundles/a\x00b.zip",
            "bundles\\aa\\x.zip",
            "/abs/key.zip",
            "bundles//x.zip",
            "",
        ],
    )
    def test_objects_outside_the_store_are_refused(self, mocked_s3: Any, target: str) -> None:
        store = S3ArtifactStore("s3://umlaut-test/p")
        for call in (store.get, store.exists, store.delete):
            with pytest.raises(ArtifactError):
                call(target)
        if not target.startswith("s3://"):
            with pytest.raises(ArtifactError):
                store.put(target, b"x")


class TestWrites:
    """Objects land under the prefix, carry a sha256, and are uploaded once."""

    def test_object_is_stored_under_the_prefix_with_its_sha256(self, mocked_s3: Any) -> None:
        store = S3ArtifactStore("s3://umlaut-test/team")
        data = b"bundle bytes" * 10
        uri = store.put("bundles/ab/abcdef.zip", data)
        assert uri == "s3://umlaut-test/team/bundles/ab/abcdef.zip"
        head = mocked_s3.head_object(
            Bucket="umlaut-test", Key="team/bundles/ab/abcdef.zip", ChecksumMode="ENABLED"
        )
        assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
        # S3's own checksum too: the server checks it on PUT and keeps it.
        assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()

    def test_an_existing_small_object_is_never_overwritten(self, mocked_s3: Any) -> None:
        store = S3ArtifactStore("s3://umlaut-test/p")
        uri = store.put("bundles/aa/once.zip", b"first")
        assert store.put("bundles/aa/once.zip", b"second") == uri
        assert store.get(uri) == b"first"

    def test_an_existing_large_object_is_not_uploaded_again(self, mocked_s3: Any) -> None:
        store = S3ArtifactStore(
            "s3://umlaut-test/p", multipart_threshold="5MiB", multipart_chunksize="5MiB"
        )
        data = os.urandom(6 * MiB)
        store.put("bundles/bb/big.zip", data)
        calls = _calls(store)
        store.put("bundles/bb/big.zip", data)
        store.put("bundles/bb/big.zip", io.BytesIO(data))
        assert calls == ["HeadObject", "HeadObject"]

    @pytest.mark.parametrize("kind", ["bytes", "bytearray", "seekable", "unseekable"])
    def test_large_payloads_stream_as_multipart(self, mocked_s3: Any, kind: str) -> None:
        store = S3ArtifactStore(
            "s3://umlaut-test/p", multipart_threshold="5MiB", multipart_chunksize="5MiB"
        )
        data = os.urandom(12 * MiB + 123)
        payload: Any = {
            "bytes": data,
            "bytearray": bytearray(data),
            "seekable": io.BytesIO(data),
            "unseekable": io.BufferedReader(_Unseekable(data)),
        }[kind]
        calls = _calls(store)
        uri = store.put(f"bundles/cc/{kind}.zip", payload)
        assert calls.count("UploadPart") == 3 and "CompleteMultipartUpload" in calls
        head = mocked_s3.head_object(Bucket="umlaut-test", Key=f"p/bundles/cc/{kind}.zip")
        assert head["ETag"].endswith('-3"')
        assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
        calls.clear()
        assert store.get(uri) == data
        # One HEAD, then parallel ranged GETs pinned to that ETag: no second HEAD.
        assert calls.count("HeadObject") == 1 and calls.count("GetObject") == 3

    def test_a_stream_is_read_from_its_current_position(self, mocked_s3: Any) -> None:
        store = S3ArtifactStore("s3://umlaut-test/p")
        stream = io.BytesIO(b"HEADERpayload")
        stream.seek(6)
        assert store.get(store.put("bundles/dd/pos.zip", stream)) == b"payload"

    def test_not_bytes_nor_stream_is_refused(self, mocked_s3: Any) -> None:
        store = S3ArtifactStore("s3://umlaut-test/p")
        with pytest.raises(ArtifactError, match="not bytes or a binary stream"):
            store.put("bundles/dd/bad.zip", "text")  # type: ignore[arg-type]


class TestIntegrity:
    """Changed bytes are refused: by the object's sha256 (missing is a failure), then by
    the bundle's own checks."""

    @pytest.mark.parametrize("size", [100, 7 * MiB])
    def test_tampered_object_with_kept_metadata_is_an_integrity_error(
        self, mocked_s3: Any, size: int
    ) -> None:
        store = S3ArtifactStore(
            "s3://umlaut-test/p", multipart_threshold="5MiB", multipart_chunksize="5MiB"
        )
        data = os.urandom(size)
        uri = store.put("bundles/ee/t.zip", data)
        meta = mocked_s3.head_object(Bucket="umlaut-test", Key="p/bundles/ee/t.zip")["Metadata"]
        forged = bytes([data[0] ^ 1]) + data[1:]
        mocked_s3.put_object(
            Bucket="umlaut-test", Key="p/bundles/ee/t.zip", Body=forged, Metadata=meta
        )
        with pytest.raises(IntegrityError, match=r"s3://umlaut-test/p/bundles/ee/t\.zip"):
            store.get(uri)

    @pytest.mark.parametrize("size", [100, 7 * MiB])
    def test_object_rewritten_without_metadata_is_an_integrity_error(
        self, mocked_s3: Any, size: int
    ) -> None:
        store = S3ArtifactStore(
            "s3://umlaut-test/p", multipart_threshold="5MiB", multipart_chunksize="5MiB"
        )
        data = os.urandom(size)
        uri = store.put("bundles/ef/t.zip", data)
        forged = data[:-1] + bytes([data[-1] ^ 1])
        mocked_s3.put_object(Bucket="umlaut-test", Key="p/bundles/ef/t.zip", Body=forged)
        head = mocked_s3.head_object(Bucket="umlaut-test", Key="p/bundles/ef/t.zip")
        assert "sha256" not in head["Metadata"]
        with pytest.raises(IntegrityError, match=r"s3://umlaut-test/p/bundles/ef/t\.zip") as info:
            store.get(uri)
        assert "no x-amz-meta-sha256" in str(info.value) and "re-track" in str(info.value)
        # The same bytes rewritten without metadata are refused as well: unverifiable.
        mocked_s3.put_object(Bucket="umlaut-test", Key="p/bundles/ef/t.zip", Body=data)
        with pytest.raises(IntegrityError, match="without its metadata"):
            store.get(uri)

    def test_run_model_refuses_a_bundle_whose_last_byte_changed(self, mocked_s3: Any) -> None:
        store = S3ArtifactStore("s3://umlaut-test/last")
        tracker = MemoryTracker()
        ml = Umlaut(tracker=tracker, artifact_store=store)
        mv = ml.track_model(lambda x: x["a"] * 2, "Doubler")
        key = mv.artifact_uri.removeprefix("s3://umlaut-test/")
        body = mocked_s3.get_object(Bucket="umlaut-test", Key=key)["Body"].read()
        # The last byte sits in the zip's end-of-central-directory record.
        mocked_s3.put_object(
            Bucket="umlaut-test", Key=key, Body=body[:-1] + bytes([body[-1] ^ 0xFF])
        )
        fresh = Umlaut(tracker=tracker, artifact_store=S3ArtifactStore("s3://umlaut-test/last"))
        with pytest.raises(IntegrityError):
            fresh.run_model("Doubler", {"a": 2})
        assert fresh.history("Doubler") == []

    @pytest.mark.parametrize("keep_metadata", [True, False])
    def test_run_model_refuses_a_tampered_bundle(self, mocked_s3: Any, keep_metadata: bool) -> None:
        store = S3ArtifactStore("s3://umlaut-test/runs")
        tracker = MemoryTracker()
        ml = Umlaut(tracker=tracker, artifact_store=store)
        mv = ml.track_model(lambda x: x["a"] * 2, "Doubler")
        assert ml.run_model("Doubler", {"a": 2}) == 4
        key = mv.artifact_uri.removeprefix("s3://umlaut-test/")
        original = mocked_s3.get_object(Bucket="umlaut-test", Key=key)
        bad = bytearray(original["Body"].read())
        bad[len(bad) // 2] ^= 0xFF
        extra = {"Metadata": original["Metadata"]} if keep_metadata else {}
        mocked_s3.put_object(Bucket="umlaut-test", Key=key, Body=bytes(bad), **extra)
        fresh = Umlaut(tracker=tracker, artifact_store=S3ArtifactStore("s3://umlaut-test/runs"))
        with pytest.raises(IntegrityError):
            fresh.run_model("Doubler", {"a": 2})
        assert len(fresh.history("Doubler")) == 1  # only the run before the tampering
