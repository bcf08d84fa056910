"""``umlaut db``: the umlaut-sql command group, added through ``umlaut_register_commands``.

Imported only when the ``umlaut`` command line is built, never by the tracker.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import click

from umlaut_core.cli import CliContext
from umlaut_core.exceptions import ConfigurationError
from umlaut_core.registry import redact, scheme_of

__all__ = ["db", "pending_steps"]

_SCHEMES = ("sqlite", "postgresql", "postgres")


def pending_steps(found: int | None) -> list[tuple[int, str]]:
    """(target version, what the step does) for each step from ``found`` to current."""
    from . import _schema as s

    if found is None:
        return [(s.CURRENT_VERSION, "create every table at the current schema")]
    steps = []
    for target in range(found + 1, s.CURRENT_VERSION + 1):
        doc = inspect.getdoc(s._STEPS[target]) or f"schema {target}"
        steps.append((target, " ".join(doc.replace("``", "").split())))
    return steps


def _read_version(uri: str, options: dict[str, Any]) -> int | None:
    """The schema version of the database at ``uri``; reads only, creates nothing."""
    import sqlalchemy as sa

    from . import _schema as s
    from ._errors import ErrorMapper

    shown = redact(uri)
    url = sa.engine.make_url(uri)
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if not database.startswith("file:") and not Path(database).expanduser().is_file():
            return None  # nothing there yet: the first open creates it
        url = url.set(drivername="sqlite")
    else:
        url = url.set(drivername="postgresql+psycopg")
    connect_args = dict(options.get("connect_args") or {})
    try:
        engine = sa.create_engine(url, connect_args=connect_args, poolclass=sa.pool.NullPool)
    except ImportError as exc:
        raise ConfigurationError(
            f"{shown} needs the PostgreSQL driver psycopg ({exc}); install it with: "
            f"pip install 'umlaut-sql[postgresql]'"
        ) from None
    errors = ErrorMapper(shown, (url.password or "",), engine.dialect.loaded_dbapi.Error)
    try:
        with engine.connect() as conn:
            return s.read_version(conn, shown)
    except (sa.exc.SQLAlchemyError, engine.dialect.loaded_dbapi.Error) as exc:
        raise errors.translate(exc, "reading the schema version") from exc
    finally:
        engine.dispose()


@click.group()
def db() -> None:
    """The umlaut-sql database (SQLite, PostgreSQL): schema upgrades."""


@db.command()
@click.option("--dry-run", is_flag=True, help="Show the versions and steps; change nothing.")
@click.pass_obj
def upgrade(state: CliContext, dry_run: bool) -> None:
    """Upgrade the tracking database's schema to this umlaut-sql's.

    Runs under the same lock as a tracker's first open (SQLite: BEGIN IMMEDIATE;
    PostgreSQL: an advisory lock), in one transaction: it completes or changes nothing.
    """
    from . import _schema as s

    settings = state.settings
    uri = settings.tracking_uri
    shown = redact(uri)
    if scheme_of(uri).split("+", 1)[0] not in _SCHEMES:
        raise ConfigurationError(
            f"umlaut db upgrade is for umlaut-sql databases (sqlite:///…, "
            f"postgresql+psycopg://…); the tracking URI is {shown}. Pass --tracking-uri."
        )
    options = dict(settings.tracker_options)
    found = _read_version(uri, options)
    click.echo(f"database: {shown}")
    click.echo(f"schema version: {'none (no umlaut tables yet)' if found is None else found}")
    click.echo(f"target version: {s.CURRENT_VERSION}")
    steps = pending_steps(found) if found != s.CURRENT_VERSION else []
    if not steps:
        click.echo("up to date: nothing to do")
        return
    click.echo("steps:")
    for target, what in steps:
        click.echo(f"  {'-' if found is None else target - 1} -> {target}: {what}")
    if dry_run:
        click.echo("dry run: nothing was changed")
        return
    from ._tracker import SqlTracker

    SqlTracker(uri, **options).close()  # opening upgrades, under the schema lock
    click.echo(f"upgraded to schema version {_read_version(uri, options)}")
