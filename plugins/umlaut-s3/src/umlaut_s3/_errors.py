"""The one place botocore / s3transfer errors become umlaut errors.

* the object is missing → ``ArtifactError``
* a checksum does not match → ``IntegrityError``
* missing bucket, access denied, no or bad credentials, unreachable endpoint, any
  other service error → ``BackendError`` (the store as a whole is unusable as
  configured; the message says what to check)

Every message names the bucket and key and the endpoint (passwords redacted), and is
scrubbed of the credentials the store knows about before it is raised.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from umlaut_core.exceptions import (
    ArtifactError,
    BackendError,
    ConfigurationError,
    IntegrityError,
    UmlautError,
)

__all__ = ["Scrubber", "s3_errors"]

_MISSING_OBJECT = {"NoSuchKey", "404", "NotFound"}
_MISSING_BUCKET = {"NoSuchBucket"}
_DENIED = {
    "AccessDenied",
    "403",
    "Forbidden",
    "AllAccessDisabled",
    "AccountProblem",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
}
_CHANGED = {"PreconditionFailed", "412"}


class Scrubber:
    """Removes known secret strings from text meant for humans."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        # Longest first, so a secret that contains another is removed whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def _code(exc: Any) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code") or "")


def _root(exc: BaseException) -> BaseException:
    """boto3 wraps some failures (S3UploadFailedError, RetriesExceededError)."""
    inner = getattr(exc, "last_exception", None)
    if isinstance(inner, BaseException):
        return inner
    cause = exc.__cause__ or exc.__context__
    if type(exc).__name__ == "S3UploadFailedError" and cause is not None:
        return cause
    return exc


@contextlib.contextmanager
def s3_errors(
    *,
    action: str,
    bucket: str,
    key: str | None,
    endpoint: str,
    scrub: Scrubber,
) -> Iterator[None]:
    """Translate what boto3 raises inside the block; ``action`` is e.g. ``"download"``."""
    import botocore.exceptions as bce

    try:
        yield
    except UmlautError:
        raise
    except Exception as outer:
        exc = _root(outer)
        where = f"s3://{bucket}/{key}" if key else f"bucket {bucket!r}"
        via = f" (endpoint {endpoint})"
        err: UmlautError
        if isinstance(exc, bce.FlexibleChecksumError):
            err = IntegrityError(
                f"the object {where}{via} does not match its stored checksum: it was "
                f"changed or damaged after upload. Re-track the model to store it again."
            )
        elif isinstance(exc, (bce.NoCredentialsError, bce.PartialCredentialsError)):
            err = BackendError(
                f"cannot {action} {where}{via}: no usable AWS credentials were found. Set "
                f"AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance role."
            )
        elif isinstance(exc, (bce.ProfileNotFound, bce.InvalidConfigError)):
            err = ConfigurationError(f"cannot {action} {where}{via}: {exc}")
        elif isinstance(
            exc,
            (bce.EndpointConnectionError, bce.ConnectTimeoutError, bce.ConnectionClosedError),
        ):
            err = BackendError(
                f"cannot {action} {where}: the S3 endpoint {endpoint} is unreachable "
                f"({type(exc).__name__}). Check endpoint_url / AWS_ENDPOINT_URL_S3 and that "
                f"the server is running."
            )
        elif isinstance(exc, (bce.ReadTimeoutError, bce.ResponseStreamingError)):
            err = BackendError(
                f"cannot {action} {where}{via}: the server stopped answering "
                f"({type(exc).__name__}); raise read_timeout or retry later."
            )
        elif isinstance(exc, bce.ClientError):
            code = _code(exc)
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            detail = f"{code or status}: {exc.response.get('Error', {}).get('Message', '')}"
            if code in _MISSING_BUCKET:
                err = BackendError(
                    f"cannot {action} {where}{via}: the bucket {bucket!r} does not exist. "
                    f"Create it, or point artifact_uri at an existing bucket."
                )
            elif code in _DENIED:
                err = BackendError(
                    f"cannot {action} {where}{via}: access denied ({detail.rstrip(': ')}). "
                    f"Check the credentials in use and the bucket policy."
                )
            elif code in _MISSING_OBJECT:
                err = ArtifactError(
                    f"the artifact {where} is missing{via}: was it deleted, or is "
                    f"artifact_uri pointing at another bucket/prefix than when it was tracked?"
                )
            elif code in _CHANGED:
                err = ArtifactError(
                    f"the object {where}{via} changed while it was being read; try again"
                )
            else:
                err = BackendError(f"cannot {action} {where}{via}: S3 said {detail}")
        elif isinstance(exc, bce.BotoCoreError):
            err = BackendError(f"cannot {action} {where}{via}: {type(exc).__name__}: {exc}")
        elif isinstance(exc, OSError):
            err = ArtifactError(f"cannot {action} {where}{via}: {exc}")
        else:
            raise
        raise type(err)(scrub(str(err))) from outer
