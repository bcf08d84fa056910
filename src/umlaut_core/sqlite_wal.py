"""Switching a SQLite file to WAL when several processes open it at the same moment."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

__all__ = ["enable_wal"]


def enable_wal(conn: Any, *, timeout_s: float = 30.0) -> bool:
    """Put the database behind ``conn`` (a ``sqlite3`` connection) in WAL mode.

    Returns whether this call made the switch. The switch needs an exclusive lock and
    SQLite reports "database is locked" at once, without calling its busy handler, when
    another process is opening or converting the same new file; so this waits that out
    itself, up to ``timeout_s``, before letting the error through. WAL is a property of
    the file, so the first process to switch it settles the question for all others.
    """
    deadline = time.monotonic() + timeout_s
    delay = 0.001
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return False
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() == "wal":
                return True
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
        else:
            # SQLite answered with the old mode: someone held a lock; try again.
            if time.monotonic() > deadline:
                raise sqlite3.OperationalError(f"could not switch to WAL (still {mode!r})")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
