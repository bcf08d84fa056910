"""Registers the SQL tracker with its experiment and dataset stores for ``sqlite``,
``postgresql`` and ``postgres`` URIs, the database artifact store (``sqldb+…``), and
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

    from ._blobs import SqlBlobStore
    from ._datasets import SqlDatasetStore
    from ._experiments import SqlExperimentStore
    from ._tracker import SqlTracker

#: Every scheme the tracker answers; the experiment and dataset stores follow it.
SCHEMES = ("sqlite", "postgresql", "postgres")


def open_sql_tracker(uri: str, **options: Any) -> SqlTracker:
    """Factory for the registry: build a :class:`SqlTracker` for ``uri`` (the option
    ``store_blobs`` chooses where bundles go by default: see :mod:`._blobs`)."""
    from ._blobs import open_tracker

    return open_tracker(uri, **options)


def open_sql_experiment_store(tracker: Any) -> SqlExperimentStore:
    """Factory for the registry: the training-run store sharing ``tracker``'s engine."""
    from ._experiments import open_experiment_store

    return open_experiment_store(tracker)


def open_sql_dataset_store(tracker: Any) -> SqlDatasetStore:
    """Factory for the registry: the dataset store sharing ``tracker``'s engine."""
    from ._datasets import open_dataset_store

    return open_dataset_store(tracker)


def open_sql_blob_store(uri: str, **options: Any) -> SqlBlobStore:
    """Factory for the registry: the artifact store in a tracker's database."""
    from ._blobs import open_blob_store

    return open_blob_store(uri, **options)


@hookimpl
def umlaut_register_backends(registry: BackendRegistry) -> None:
    # An umlaut-core without experiment tracking or datasets (before 0.4) still
    # loads this plugin.
    add_experiment_store = getattr(registry, "add_experiment_store", None)
    add_dataset_store = getattr(registry, "add_dataset_store", None)
    for scheme in SCHEMES:
        registry.add_tracker(scheme, open_sql_tracker)
        if add_experiment_store is not None:
            add_experiment_store(scheme, open_sql_experiment_store)
        if add_dataset_store is not None:
            add_dataset_store(scheme, open_sql_dataset_store)
    registry.add_artifact_store("sqldb", open_sql_blob_store)


# Optional: an umlaut-core older than the hook (0.2) still loads this plugin.
@hookimpl(optionalhook=True)
def umlaut_register_commands(cli: click.Group) -> None:
    from ._cli import db

    cli.add_command(db)
