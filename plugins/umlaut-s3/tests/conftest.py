"""Fixtures for the S3 store tests: fake AWS credentials, moto in-process and over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _services.moto_server import fake_aws_env

#: Fake credentials; tests grep messages and logs for them.
ACCESS_KEY = "AKIAUMLAUTFAKE7Q3X9Z"
SECRET_KEY = "umlaut/fake+Secret0Key9neverPrint4x2"
SESSION_TOKEN = "FwoGZXIvYXdzEUmlautFakeSessionToken0123456789"


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Fake credentials and a region in the environment; no real AWS config is read."""
    for var in ("UMLAUT_TRACKING_URI", "UMLAUT_ARTIFACT_URI", "UMLAUT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    return fake_aws_env(
        monkeypatch,
        tmp_path,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        session_token=SESSION_TOKEN,
    )


@pytest.fixture
def mocked_s3(aws_env: dict[str, str]) -> Iterator[Any]:
    """moto's in-process mock with one bucket ``umlaut-test``; yields a raw boto3 client."""
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="umlaut-test")
        yield client


@pytest.fixture
def server_bucket(moto_server: str, aws_env: dict[str, str]) -> tuple[str, str, Any]:
    """A fresh bucket on the moto HTTP server: (endpoint URL, bucket name, raw client)."""
    import boto3

    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    bucket = f"umlaut-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return moto_server, bucket, client
