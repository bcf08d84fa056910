"""S3 failures become umlaut errors that name bucket and key and never show credentials."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from umlaut_s3 import S3ArtifactStore

from umlaut_core import Umlaut
from umlaut_core.exceptions import (
    ArtifactError,
    BackendError,
    ModelNotFoundError,
    UmlautError,
)
from umlaut_core.stores.memory import MemoryTracker

KEY = "bundles/ab/abc123.zip"


def _operations(store: S3ArtifactStore) -> list[tuple[str, Callable[[], Any]]]:
    return [
        ("upload", lambda: store.put(KEY, b"payload")),
        ("upload", lambda: store.put(KEY, b"p" * (9 * 1024 * 1024))),
        ("download", lambda: store.get(KEY)),
        ("look up", lambda: store.exists(KEY)),
    ]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class TestServiceErrors:
    """Missing bucket, denied access, no credentials, dead endpoint: BackendError."""

    def test_missing_bucket(self, mocked_s3: Any) -> None:
        store = S3ArtifactStore("s3://no-such-bucket/models")
        for action, call in _operations(store):
            with pytest.raises(BackendError) as info:
                call()
            message = str(info.value)
            assert f"cannot {action} s3://no-such-bucket/models/{KEY}" in message
            assert "bucket 'no-such-bucket' does not exist" in message

    def test_access_denied(self, mocked_s3: Any) -> None:
        """moto enforces IAM when auth is switched on: a user without policies is denied."""
        import boto3
        from moto.core import set_initial_no_auth_action_count

        @set_initial_no_auth_action_count(2)
        def denied() -> list[str]:
            iam = boto3.client("iam", region_name="us-east-1")
            iam.create_user(UserName="nobody")
            key = iam.create_access_key(UserName="nobody")["AccessKey"]
            store = S3ArtifactStore(
                "s3://umlaut-test/p",
                aws_access_key_id=key["AccessKeyId"],
                aws_secret_access_key=key["SecretAccessKey"],
            )
            messages = []
            for _action, call in _operations(store):
                with pytest.raises(BackendError, match="access denied") as info:
                    call()
                messages.append(str(info.value))
            for text in (*messages, repr(store), store.uri):
                assert key["SecretAccessKey"] not in text and key["AccessKeyId"] not in text
            return messages

        messages = denied()
        assert all("s3://umlaut-test/p/" + KEY in m for m in messages)

    def test_no_credentials(
        self, server_bucket: tuple[str, str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        endpoint, bucket, _ = server_bucket
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(var)
        store = S3ArtifactStore(f"s3://{bucket}/p", endpoint_url=endpoint)
        for action, call in _operations(store):
            with pytest.raises(BackendError, match="no usable AWS credentials") as info:
                call()
            assert f"cannot {action} s3://{bucket}/p/{KEY}" in str(info.value)

    def test_unreachable_endpoint_fails_within_seconds(self, aws_env: dict[str, str]) -> None:
        endpoint = f"http://127.0.0.1:{_closed_port()}"
        store = S3ArtifactStore(f"s3://umlaut-test/p?endpoint_url={endpoint}")
        for action, call in _operations(store):
            started = time.monotonic()
            with pytest.raises(BackendError, match="unreachable") as info:
                call()
            assert time.monotonic() - started < 5
            assert endpoint in str(info.value) and f"cannot {action}" in str(info.value)

    def test_timeouts_and_retries_are_configurable(self, aws_env: dict[str, str]) -> None:
        store = S3ArtifactStore(
            "s3://umlaut-test/p?connect_timeout=0.5",
            read_timeout=3,
            max_attempts=1,
            retry_mode="adaptive",
        )
        config = store._client.meta.config
        assert (config.connect_timeout, config.read_timeout) == (0.5, 3)
        assert config.retries == {"total_max_attempts": 1, "mode": "adaptive"}

    def test_defaults_fail_fast(self, aws_env: dict[str, str]) -> None:
        config = S3ArtifactStore("s3://umlaut-test/p")._client.meta.config
        assert config.connect_timeout <= 5 and config.retries["total_max_attempts"] <= 3


class TestObjectErrors:
    """A missing object is an ArtifactError naming its URI."""

    def test_missing_object(self, server_bucket: tuple[str, str, Any]) -> None:
        endpoint, bucket, _ = server_bucket
        store = S3ArtifactStore(f"s3://{bucket}/p", endpoint_url=endpoint)
        assert store.exists(KEY) is False
        with pytest.raises(ArtifactError, match=f"s3://{bucket}/p/{KEY} is missing") as info:
            store.get(f"s3://{bucket}/p/{KEY}")
        assert not isinstance(info.value, BackendError)

    def test_failed_upload_registers_no_version(self, mocked_s3: Any) -> None:
        tracker = MemoryTracker()
        ml = Umlaut(tracker=tracker, artifact_store=S3ArtifactStore("s3://no-such-bucket/m"))
        with pytest.raises(BackendError):
            ml.track_model(lambda x: x, "Never Stored")
        with pytest.raises(ModelNotFoundError):
            ml.list_versions("Never Stored")
        assert ml.list_models() == []


class TestSecrets:
    """Credentials never reach a message, a repr or a log line."""

    def test_errors_and_logs_hold_no_credentials(
        self,
        aws_env: dict[str, str],
        server_bucket: tuple[str, str, Any],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        endpoint, bucket, _ = server_bucket
        secrets = [aws_env["AWS_SECRET_ACCESS_KEY"], "opt-only-secret-9f8e7d"]
        texts: list[str] = []
        caplog.set_level(logging.DEBUG)
        stores = [
            S3ArtifactStore(f"s3://{bucket}/p?endpoint_url={endpoint}"),
            S3ArtifactStore(
                "s3://no-such-bucket/p",
                endpoint_url=endpoint,
                aws_access_key_id="AKIAOPTIONONLY1234",
                aws_secret_access_key=secrets[1],
            ),
            S3ArtifactStore(f"s3://umlaut-test/p?endpoint_url=http://127.0.0.1:{_closed_port()}"),
        ]
        for store in stores:
            texts += [repr(store), store.uri]
            for _action, call in _operations(store):
                try:
                    call()
                except UmlautError as exc:
                    texts.append(str(exc))
        assert len(texts) > 6
        everything = "\n".join(texts)
        for secret in secrets:
            assert secret not in everything
            # botocore's own DEBUG output included: it never prints secret keys.
            assert secret not in caplog.text
        ids_and_tokens = [
            aws_env["AWS_ACCESS_KEY_ID"],
            aws_env["AWS_SESSION_TOKEN"],
            "AKIAOPTIONONLY1234",
        ]
        # botocore prints request headers (key id, session token) at DEBUG only.
        ours_or_loud = [
            r.getMessage()
            for r in caplog.records
            if r.levelno >= logging.INFO or r.name.startswith("umlaut")
        ]
        for value in ids_and_tokens:
            assert value not in everything
            assert all(value not in message for message in ours_or_loud)
