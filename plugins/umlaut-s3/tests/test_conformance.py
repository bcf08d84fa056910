"""The S3 store passes the core's conformance suite, in-process and over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from umlaut_s3 import S3ArtifactStore

from umlaut_core.stores.memory import MemoryTracker
from umlaut_core.testing import ArtifactStoreSuite, TrackerSuite


class TestS3StoreInProcess(ArtifactStoreSuite):
    """S3ArtifactStore against moto's in-process mock (moto.mock_aws)."""

    @pytest.fixture
    def artifact_store(self, mocked_s3: Any) -> S3ArtifactStore:
        return S3ArtifactStore("s3://umlaut-test/conformance")


class TestS3StoreOverHttp(ArtifactStoreSuite):
    """S3ArtifactStore against the moto server over real HTTP (endpoint on the URI)."""

    @pytest.fixture
    def artifact_store(self, server_bucket: tuple[str, str, Any]) -> S3ArtifactStore:
        endpoint, bucket, _ = server_bucket
        return S3ArtifactStore(f"s3://{bucket}/conformance?endpoint_url={endpoint}")


class TestS3StoreNoPrefix(ArtifactStoreSuite):
    """S3ArtifactStore at the root of a bucket (no prefix)."""

    @pytest.fixture
    def artifact_store(self, mocked_s3: Any) -> S3ArtifactStore:
        return S3ArtifactStore("s3://umlaut-test")


class TestMemoryTrackerWithS3(TrackerSuite):
    """The whole tracker suite with bundles in S3 (moto in-process), incl. tampering."""

    @pytest.fixture
    def tracker(self, mocked_s3: Any) -> Iterator[MemoryTracker]:
        tracker = MemoryTracker()
        yield tracker
        tracker.close()

    @pytest.fixture
    def artifact_store(self, mocked_s3: Any) -> S3ArtifactStore:
        return S3ArtifactStore("s3://umlaut-test/suite")
