"""umlaut plugin module: registers the ``s3`` artifact-store scheme (cheap to import)."""

from __future__ import annotations

from typing import Any

from umlaut_core import hookimpl
from umlaut_core.registry import BackendRegistry

__all__ = ["umlaut_register_backends"]


def _open_s3(uri: str, **options: Any) -> Any:
    # boto3 is imported by the store's module, so only when a store is made.
    from ._store import S3ArtifactStore

    return S3ArtifactStore(uri, **options)


@hookimpl
def umlaut_register_backends(registry: BackendRegistry) -> None:
    registry.add_artifact_store("s3", _open_s3)
