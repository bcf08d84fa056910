"""The one place MLflow's errors become umlaut's.

Connection failures, timeouts and server errors → ``BackendError`` naming the
(redacted) URI; a missing object → whatever NotFoundError the caller builds (it knows
which name, version or alias was asked for and can list what exists).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from umlaut_core.exceptions import BackendError, UmlautError
from umlaut_core.registry import redact

__all__ = ["error_code", "mlflow_errors"]


def error_code(exc: BaseException) -> str | None:
    """MLflow's error code (``RESOURCE_DOES_NOT_EXIST`` …) or None."""
    code = getattr(exc, "error_code", None)
    return code if isinstance(code, str) else None


@contextmanager
def mlflow_errors(
    uri: str,
    doing: str,
    *,
    not_found: Callable[[], UmlautError] | None = None,
) -> Iterator[None]:
    """Translate errors raised inside the block.

    :param uri: the tracker's printable URI, named in every message.
    :param doing: what was being done, e.g. ``"registering 'm' version"``.
    :param not_found: builds the typed error for ``RESOURCE_DOES_NOT_EXIST``.
    """
    try:
        yield
    except UmlautError:
        raise
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        code = error_code(exc)
        missing = isinstance(exc, MlflowException) and _means_missing(exc, code)
        if missing and not_found is not None:
            raise not_found() from exc
        if isinstance(exc, MlflowException) or _is_io_error(exc):
            raise BackendError(
                f"MLflow at {redact(uri)} failed while {doing}: {_short(exc)}. Check that the "
                f"server is running and the URI is right; retries and timeout are set by "
                f"MLFLOW_HTTP_REQUEST_MAX_RETRIES / MLFLOW_HTTP_REQUEST_TIMEOUT."
            ) from exc
        raise


def _means_missing(exc: BaseException, code: str | None) -> bool:
    if code == "RESOURCE_DOES_NOT_EXIST":
        return True
    # MLflow reports an unknown alias as INVALID_PARAMETER_VALUE "... alias X not found".
    text = str(exc)
    return code == "INVALID_PARAMETER_VALUE" and "alias" in text and "not found" in text


def _is_io_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return True
    try:
        import requests
        import sqlalchemy.exc
    except ImportError:  # pragma: no cover - both come with mlflow
        return False
    return isinstance(exc, (requests.RequestException, sqlalchemy.exc.SQLAlchemyError))


def _short(exc: BaseException) -> str:
    # MLflow and requests echo the URLs they were given, user-info included.
    text = redact(" ".join(str(exc).split()))
    return text if len(text) <= 400 else text[:400] + " …"
