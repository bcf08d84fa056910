"""Registers the SQL tracker and its experiment store for ``sqlite``, ``postgresql``
and ``postgres`` URIs, and the ``umlaut db`` commands.

Cheap to import: sqlalchemy is imported only when a tracker is built, click only when
the ``umlaut`` command line is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from umlaut_core import hookimpl

if TYPE_CHECKING:
    import click

    from umlaut_core.registry import BackendRegistry

    from ._experiments import SqlExperimentStore
    from ._tracker import SqlTracker

#: Every scheme the tracker answers; the experiment store follows it on each.
SCHEMES = ("sqlite", "postgresql", "postgres")


def open_sql_tracker(uri: str, **options: Any) -> SqlTracker:
    """Factory for the registry: build a :class:`SqlTracker` for ``uri``."""
    from ._tracker import SqlTracker

    return SqlTracker(uri, **options)


def open_sql_experiment_store(tracker: Any) -> SqlExperimentStore:
    """Factory for the registry: the training-run store sharing ``tracker``'s engine."""
    from ._experiments import open_experiment_store

    return open_experiment_store(tracker)


@hookimpl
def umlaut_register_backends(registry: BackendRegistry) -> None:
    # An umlaut-core without experiment tracking (before 0.4) still loads this plugin.
    add_experiment_store = getattr(registry, "add_experiment_store", None)
    for scheme in SCHEMES:
        registry.add_tracker(scheme, open_sql_tracker)
        if add_experiment_store is not None:
            add_experiment_store(scheme, open_sql_experiment_store)


# Optional: an umlaut-core older than the hook (0.2) still loads this plugin.
@hookimpl(optionalhook=True)
def umlaut_register_commands(cli: click.Group) -> None:
    from ._cli import db

    cli.add_command(db)
