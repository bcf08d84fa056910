"""umlaut-s3: keep umlaut bundles in Amazon S3 or any S3-compatible store (MinIO, …).

Quick start::

    pip install umlaut-s3
    export AWS_ENDPOINT_URL_S3=http://127.0.0.1:9000   # only for MinIO & co.

    from umlaut_core import Umlaut
    ml = Umlaut("sqlite:///umlaut.db", "s3://my-bucket/models")

The plugin registers the ``s3`` artifact-store scheme through the ``umlaut``
entry-point group (module :mod:`umlaut_s3.plugin`). Endpoint, region and credentials
resolve the boto3 way; options (``endpoint_url``, ``region_name``, ``profile_name``,
``addressing_style``, ``verify``, timeouts, transfer sizes) may be given as
``artifact_options`` or as query parameters of the URI. See :class:`S3ArtifactStore`.
Importing this package does not import boto3; constructing a store does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["S3ArtifactStore"]

if TYPE_CHECKING:
    from ._store import S3ArtifactStore


def __getattr__(name: str) -> Any:
    if name == "S3ArtifactStore":
        from ._store import S3ArtifactStore

        return S3ArtifactStore
    raise AttributeError(name)
