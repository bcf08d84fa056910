"""Time in one place: aware UTC datetimes everywhere umlaut stores a moment."""

from __future__ import annotations

import datetime as dt
import functools
import getpass

__all__ = ["current_user", "utcnow"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@functools.lru_cache(maxsize=1)
def current_user() -> str | None:
    """Who is acting, for ``created_by`` and the ledger; None if it cannot be told."""
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return None
