"""umlaut-sql: the umlaut tracker on SQL — an embedded SQLite file or PostgreSQL.

Quick start (the embedded default needs no configuration)::

    from umlaut_core import Umlaut
    um = Umlaut()  # sqlite:///.umlaut/umlaut.db + the folder .umlaut/artifacts
    um = Umlaut("postgresql+psycopg://user@db.example/umlaut", "s3://bucket/umlaut")

Any ``sqlite:///…`` or ``postgresql+psycopg://…`` URL is a tracking URI;
``tracker_options`` take ``busy_timeout``, ``synchronous``, ``pool_size``,
``max_overflow``, ``pool_recycle`` and ``connect_args`` (see :class:`SqlTracker`).
sqlalchemy is imported when the first tracker is built, not when the plugin loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["SqlTracker"]

if TYPE_CHECKING:
    from ._tracker import SqlTracker


def __getattr__(name: str) -> Any:
    if name == "SqlTracker":
        from ._tracker import SqlTracker

        return SqlTracker
    raise AttributeError(name)
