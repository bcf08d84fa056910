"""What a UI page answers instead of its content, and how umlaut's errors map to it.

    UiError (status, title, message)    raised by pages: a bad filter (400), an
                                        unknown record (404), a refused form (400/403)
    umlaut's exceptions, by type:
      NotFoundError                     404 "Not found", its message shown
      InvalidNameError,
      ConfigurationError                400 "Bad request", its message shown
      BackendNotFoundError              200, the page "this backend keeps no …"
      ClosedError, other UmlautError    503 "The store did not answer" (logged)
      anything else                     500 "Something went wrong" (logged with its
                                        traceback; the page never shows one)

A message shown is escaped like any text; a traceback goes to the log only.
"""

from __future__ import annotations

import logging

from umlaut_core.exceptions import (
    BackendNotFoundError,
    ConfigurationError,
    InvalidNameError,
    NotFoundError,
    UmlautError,
)

__all__ = ["UiError", "from_exception"]

log = logging.getLogger("umlaut.ui")


class UiError(Exception):
    """An error page: HTTP ``status``, a ``title`` (the page's heading) and a
    ``message`` safe to show (it is escaped like any text)."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


def from_exception(exc: BaseException, where: str) -> UiError:
    """The error page for an exception a page raised (``where``: the request line,
    for the log)."""
    if isinstance(exc, UiError):
        return exc
    if isinstance(exc, NotFoundError):
        return UiError(404, "Not found", str(exc))
    if isinstance(exc, InvalidNameError | ConfigurationError):
        return UiError(400, "Bad request", str(exc))
    if isinstance(exc, BackendNotFoundError):  # pages catch it first; a fallback
        return UiError(404, "Not available on this backend", str(exc))
    if isinstance(exc, UmlautError):
        log.warning("%s: %s: %s", where, type(exc).__name__, exc)
        return UiError(
            503,
            "The store did not answer",
            f"Reading the store failed ({type(exc).__name__}); try again shortly. "
            f"The server log has the details.",
        )
    log.error("unexpected error in %s", where, exc_info=exc)
    return UiError(500, "Something went wrong", "The server log has the details.")
