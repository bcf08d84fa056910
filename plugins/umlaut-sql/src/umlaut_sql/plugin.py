"""Registers the SQL tracker for ``sqlite``, ``postgresql`` and ``postgres`` URIs, and
the ``umlaut db`` commands.

Cheap to import: sqlalchemy is imported only when a tracker is built, click only when
the ``umlaut`` command line is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from umlaut_core import hookimpl

if TYPE_CHECKING:
    import click

    from umlaut_core.registry import BackendRegistry

    from ._tracker import SqlTracker


def open_sql_tracker(uri: str, **options: Any) -> SqlTracker:
    """Factory for the registry: build a :class:`SqlTracker` for ``uri``."""
    from ._tracker import SqlTracker

    return SqlTracker(uri, **options)


@hookimpl
def umlaut_register_backends(registry: BackendRegistry) -> None:
    for scheme in ("sqlite", "postgresql", "postgres"):
        registry.add_tracker(scheme, open_sql_tracker)


# Optional: an umlaut-core older than the hook (0.2) still loads this plugin.
@hookimpl(optionalhook=True)
def umlaut_register_commands(cli: click.Group) -> None:
    from ._cli import db

    cli.add_command(db)
