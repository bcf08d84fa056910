"""``S3ArtifactStore``: bundles as objects under ``s3://bucket/prefix``.

Writes: the sha256 of the bytes goes into the object's metadata (``x-amz-meta-sha256``),
and single-request uploads also send it as S3's own ``ChecksumSHA256`` so the server
refuses a body damaged in transit. Small objects are written with ``If-None-Match: *``
(one round trip; an existing object is never overwritten); larger ones are HEADed
first and skipped when present, then streamed with boto3's managed (multipart)
transfer. Reads HEAD the object once (size, ETag, sha256), fetch it (in parallel
ranges when large, pinned to that ETag) and check the sha256 before returning; an
object without the sha256 metadata (rewritten or copied without it) is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from umlaut_core.exceptions import ArtifactError, ConfigurationError, IntegrityError
from umlaut_core.keys import check_prefix
from umlaut_core.protocols import Capability
from umlaut_core.records import StoredObject
from umlaut_core.registry import redact

from ._errors import Scrubber, s3_errors
from ._options import (
    S3Location,
    S3Options,
    parse_s3_uri,
    split_object_uri,
    store_uri,
    validate_key,
)

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

__all__ = ["S3ArtifactStore"]

log = logging.getLogger("umlaut_s3")

#: Metadata key holding the hex sha256 of the object's bytes.
SHA256_META = "sha256"
#: Below this size an upload is attempted directly (conditional put); above it a HEAD
#: first avoids sending megabytes only to learn the object is already there.
_HEAD_FIRST = 1024 * 1024
_CHUNK = 1024 * 1024


class S3ArtifactStore:
    """Bundles in an S3 (or S3-compatible) bucket under a prefix.

    :param uri: ``s3://bucket`` or ``s3://bucket/prefix``, optionally with non-secret
        options as query parameters (``?endpoint_url=http://127.0.0.1:9000``).
    :param options: ``endpoint_url``, ``region_name``, ``profile_name``,
        ``addressing_style`` (``auto``/``virtual``/``path``), ``verify`` (bool or CA
        bundle path), ``connect_timeout`` / ``read_timeout`` (seconds, default 5 / 60),
        ``max_attempts`` (default 3), ``retry_mode``, ``multipart_threshold`` /
        ``multipart_chunksize`` (bytes or ``"16MiB"``, default 8 MiB),
        ``max_concurrency``, ``use_threads``; and, as keywords only,
        ``aws_access_key_id`` / ``aws_secret_access_key`` / ``aws_session_token``.
        Keywords override the URI's query; anything unset resolves the boto3 way
        (environment, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL_S3``, ``~/.aws/config``).
    """

    #: ``list`` (ListObjectsV2 under the prefix), for ``umlaut gc``.
    capabilities = frozenset({Capability.LIST_OBJECTS})

    def __init__(self, uri: str, **options: Any) -> None:
        location, opts = parse_s3_uri(uri, options)
        self._location: S3Location = location
        self._opts: S3Options = opts
        self.bucket = location.bucket
        self.prefix = location.prefix
        self.uri = store_uri(location, opts)
        self._client, self._transfer, self._scrub = _connect(opts)
        self.endpoint = redact(str(self._client.meta.endpoint_url))
        self._bucket_seen = False
        # Probed once: some S3-compatible servers reject If-None-Match on PUT.
        self._conditional_put = True

    def __repr__(self) -> str:
        return f"S3ArtifactStore({self.uri!r}, endpoint={self.endpoint!r})"

    def _errors(self, action: str, key: str | None) -> AbstractContextManager[None]:
        return s3_errors(
            action=action, bucket=self.bucket, key=key, endpoint=self.endpoint, scrub=self._scrub
        )

    # -- the ArtifactStore protocol ----------------------------------------------

    def put(self, key: str, data: bytes | BinaryIO) -> str:
        rel = validate_key(key)
        s3key = self._location.key_for(rel)
        uri = self._location.uri_for(rel)
        with self._errors("upload", s3key):
            if isinstance(data, (bytes, bytearray, memoryview)):
                self._put_bytes(s3key, data)
            else:
                self._put_stream(s3key, data)
        return uri

    def get(self, uri: str) -> bytes:
        s3key = self._location.key_for(split_object_uri(self._location, uri))
        with self._errors("download", s3key):
            head = self._head(s3key)
            if head is None:
                raise ArtifactError(
                    f"the artifact s3://{self.bucket}/{s3key} is missing (endpoint "
                    f"{self.endpoint}): was it deleted, or is artifact_uri pointing at another "
                    f"bucket/prefix than when it was tracked?"
                )
            size, etag = int(head["ContentLength"]), str(head["ETag"])
            if size < self._opts.multipart_threshold:
                resp = self._client.get_object(
                    Bucket=self.bucket, Key=s3key, IfMatch=etag, ChecksumMode="ENABLED"
                )
                with resp["Body"] as body:
                    data: bytes = body.read()
            else:
                data = self._download(s3key, size, etag)
        expected = (head.get("Metadata") or {}).get(SHA256_META)
        if expected is None:
            raise IntegrityError(
                f"the object s3://{self.bucket}/{s3key} (endpoint {self.endpoint}) has no "
                f"x-amz-meta-{SHA256_META} checksum, which umlaut writes with every upload: "
                f"it was rewritten or copied without its metadata, so its bytes cannot be "
                f"trusted. Nothing was loaded; restore the object with its metadata, or "
                f"delete it and re-track the model."
            )
        if hashlib.sha256(data).hexdigest() != expected.lower():
            raise IntegrityError(
                f"the object s3://{self.bucket}/{s3key} (endpoint {self.endpoint}) does not "
                f"match the sha256 recorded when it was uploaded: it was changed or damaged. "
                f"Re-track the model to store it again."
            )
        log.debug("downloaded s3://%s/%s (%d bytes)", self.bucket, s3key, len(data))
        return data

    def exists(self, uri: str) -> bool:
        s3key = self._location.key_for(split_object_uri(self._location, uri))
        with self._errors("look up", s3key):
            return self._head(s3key) is not None

    def delete(self, uri: str) -> None:
        s3key = self._location.key_for(split_object_uri(self._location, uri))
        with self._errors("delete", s3key):
            self._client.delete_object(Bucket=self.bucket, Key=s3key)

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Objects under the store's prefix whose key starts with ``prefix``, a page of
        ListObjectsV2 (1,000 keys) at a time. Multipart uploads in progress are not
        objects yet, so they are never listed."""
        check_prefix(prefix)
        base = self._location.key_for("")
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": base + prefix}
            if token:
                args["ContinuationToken"] = token
            with self._errors("list", base + prefix):
                page = self._client.list_objects_v2(**args)
            for obj in page.get("Contents", []):
                rel = str(obj["Key"])[len(base) :]
                if not rel or rel.endswith("/"):
                    continue
                modified = obj["LastModified"].astimezone(dt.UTC)
                yield StoredObject(rel, self._location.uri_for(rel), int(obj["Size"]), modified)
            token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
            if not token:
                return

    # -- internals ------------------------------------------------------------------

    def _head(self, s3key: str) -> dict[str, Any] | None:
        """The object's HEAD response, or None when it is missing (bucket checked)."""
        from botocore.exceptions import ClientError

        try:
            head: dict[str, Any] = self._client.head_object(Bucket=self.bucket, Key=s3key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
            # A HEAD has no body, so a missing bucket also reads "404": ask once.
            self._check_bucket()
            return None
        self._bucket_seen = True
        return head

    def _check_bucket(self) -> None:
        from botocore.exceptions import ClientError

        if self._bucket_seen:
            return
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket", "NotFound"):
                exc.response["Error"]["Code"] = "NoSuchBucket"
                raise
            return  # e.g. no ListBucket permission: cannot tell, treat the key as missing
        self._bucket_seen = True

    def _put_bytes(self, s3key: str, data: bytes | bytearray | memoryview) -> None:
        size = memoryview(data).nbytes
        if size >= _HEAD_FIRST and self._head(s3key) is not None:
            return  # checked before hashing: a stored bundle costs one HEAD, nothing more
        digest = hashlib.sha256(data)
        if size < self._opts.multipart_threshold:
            self._put_small(s3key, data, digest)
        else:
            # BytesIO over bytes shares the buffer (no copy until written to).
            source = io.BytesIO(data if isinstance(data, bytes) else bytes(data))
            self._upload(s3key, source, digest.hexdigest())

    def _put_small(self, s3key: str, data: Any, digest: Any) -> None:
        import base64

        from botocore.exceptions import ClientError

        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": s3key,
            "Body": bytes(data) if not isinstance(data, bytes) else data,
            "Metadata": {SHA256_META: digest.hexdigest()},
            # Algorithm named as well: some servers (moto) only store the checksum then.
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": base64.b64encode(digest.digest()).decode("ascii"),
        }
        if self._conditional_put:
            args["IfNoneMatch"] = "*"
        try:
            self._client.put_object(**args)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                # Already stored (or being stored by a concurrent writer) under this
                # content-addressed key: nothing to do.
                log.debug("s3://%s/%s already present; not uploaded", self.bucket, s3key)
                return
            if code in ("NotImplemented", "501") and self._conditional_put:
                self._conditional_put = False
                if self._head(s3key) is None:
                    self._put_small(s3key, data, digest)
                return
            raise
        self._bucket_seen = True
        log.debug("uploaded s3://%s/%s", self.bucket, s3key)

    def _put_stream(self, s3key: str, stream: IO[bytes]) -> None:
        if self._head(s3key) is not None:
            return
        read = getattr(stream, "read", None)
        if read is None:
            raise ArtifactError(
                f"cannot upload to s3://{self.bucket}/{s3key}: data is not bytes or a binary stream"
            )
        if _seekable(stream):
            start = stream.tell()
            digest = hashlib.sha256()
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
            stream.seek(start)
            self._upload(s3key, stream, digest.hexdigest())
            return
        # An unseekable stream is spooled (to disk past the threshold) while hashing,
        # because the sha256 must be known before the upload starts.
        with tempfile.SpooledTemporaryFile(max_size=self._opts.multipart_threshold) as spool:
            digest = hashlib.sha256()
            while chunk := stream.read(_CHUNK):
                digest.update(chunk)
                spool.write(chunk)
            spool.seek(0)
            self._upload(s3key, spool, digest.hexdigest())

    def _upload(self, s3key: str, source: IO[bytes], sha256_hex: str) -> None:
        self._client.upload_fileobj(
            source,
            self.bucket,
            s3key,
            ExtraArgs={"Metadata": {SHA256_META: sha256_hex}},
            Config=self._transfer,
        )
        self._bucket_seen = True
        log.debug("uploaded s3://%s/%s (managed transfer)", self.bucket, s3key)

    def _download(self, s3key: str, size: int, etag: str) -> bytes:
        from boto3.s3.transfer import create_transfer_manager
        from s3transfer.subscribers import BaseSubscriber

        class _Known(BaseSubscriber):  # type: ignore[misc]
            # Size and ETag are known from our HEAD: spare the manager its own HEAD,
            # and pin every ranged GET to this ETag.
            def on_queued(self, future: Any, **kwargs: Any) -> None:
                future.meta.provide_transfer_size(size)
                future.meta.provide_object_etag(etag)

        buffer = io.BytesIO()
        with create_transfer_manager(self._client, self._transfer) as manager:
            manager.download(self.bucket, s3key, buffer, subscribers=[_Known()]).result()
        return buffer.getvalue()


def _seekable(stream: Any) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _connect(opts: S3Options) -> tuple[Any, Any, Scrubber]:
    """Build the boto3 client; boto3 is imported here, never at plugin import."""
    import boto3
    import botocore.exceptions as bce
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    env_secrets = [
        os.environ.get(v)
        for v in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    ]
    scrub = Scrubber([*opts.secrets.values(), *env_secrets])
    try:
        session = boto3.session.Session(
            profile_name=opts.profile_name, region_name=opts.region_name, **opts.secrets
        )
        credentials = session.get_credentials()
    except bce.ProfileNotFound as exc:
        raise ConfigurationError(
            f"AWS profile {opts.profile_name!r} is not defined in ~/.aws/config or "
            f"~/.aws/credentials; available: {sorted(boto3.session.Session().available_profiles)}"
        ) from exc
    except bce.BotoCoreError as exc:
        raise ConfigurationError(f"cannot set up AWS credentials: {scrub(str(exc))}") from exc
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        scrub = Scrubber(
            [
                *opts.secrets.values(),
                *env_secrets,
                frozen.access_key,
                frozen.secret_key,
                frozen.token,
            ]
        )
    config = Config(
        connect_timeout=opts.connect_timeout,
        read_timeout=opts.read_timeout,
        retries={"total_max_attempts": opts.max_attempts, "mode": opts.retry_mode},
        max_pool_connections=max(10, opts.max_concurrency),
        s3={"addressing_style": opts.addressing_style} if opts.addressing_style else None,
    )
    try:
        client = session.client(
            "s3", endpoint_url=opts.endpoint_url, verify=opts.verify, config=config
        )
    except (bce.BotoCoreError, ValueError) as exc:
        raise ConfigurationError(f"cannot create the S3 client: {scrub(str(exc))}") from exc
    transfer = TransferConfig(
        multipart_threshold=opts.multipart_threshold,
        multipart_chunksize=opts.multipart_chunksize,
        max_concurrency=opts.max_concurrency,
        use_threads=opts.use_threads,
    )
    return client, transfer, scrub
