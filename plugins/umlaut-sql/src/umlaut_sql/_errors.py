"""The one place database errors become umlaut errors.

Both SQLAlchemy's wrapped errors (cold path, Core) and the driver's own errors (hot
path, raw DBAPI connections) arrive here. Messages name the redacted URI, never
the password, and say what to do: every credential the tracker was given (the URL's
password, secret query values and ``connect_args``, also percent-encoded) is replaced
in the driver's text, which then goes through :func:`umlaut_core.registry.redact`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from umlaut_core.exceptions import BackendError, SchemaError, UmlautError
from umlaut_core.registry import redact

__all__ = ["ErrorMapper"]


class ErrorMapper:
    """Translate native errors for one database; knows the secrets to scrub."""

    def __init__(self, where: str, secrets: tuple[str, ...], dbapi_error: type[Exception]) -> None:
        self.where = where
        self._secrets = tuple(s for s in secrets if s)
        self._dbapi_error = dbapi_error

    def translate(self, exc: BaseException, action: str) -> UmlautError:
        """The umlaut error for ``exc``; the caller raises it ``from exc``."""
        native = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig else exc
        detail = " ".join(str(native).split())[:500]
        for secret in self._secrets:  # longest first, so no fragment of one survives
            detail = detail.replace(secret, "***")
        detail = redact(detail)  # and any URI or key=value the driver echoed
        lowered = detail.lower()
        if "file is not a database" in lowered or "file is encrypted" in lowered:
            return SchemaError(
                f"{self.where} is not a SQLite database ({detail}). Nothing was "
                f"changed; point the tracking URI at a new file."
            )
        if "database is locked" in lowered or "database is busy" in lowered:
            advice = (
                "another process held the write lock longer than busy_timeout; retry, "
                "or raise tracker_options={'busy_timeout': seconds}"
            )
        elif "readonly" in lowered or "read-only" in lowered:
            advice = "the database file or its folder is not writable by this user"
        elif "unable to open" in lowered:
            advice = "check that the folder exists and is writable"
        elif isinstance(exc, sa.exc.OperationalError) or "connect" in lowered:
            advice = "check that the server is running and reachable, then retry"
        else:
            advice = "this is unexpected; please report it with the message above"
        return BackendError(f"{action} failed on {self.where}: {detail}. Advice: {advice}.")

    def is_native(self, exc: BaseException) -> bool:
        return isinstance(exc, (sa.exc.SQLAlchemyError, self._dbapi_error))

    @contextmanager
    def mapped(self, action: str) -> Iterator[None]:
        """Raise any database error inside the block as a BackendError/SchemaError."""
        try:
            yield
        except UmlautError:
            raise
        except Exception as exc:
            if self.is_native(exc):
                raise self.translate(exc, action) from exc
            raise
