"""The tables umlaut keeps, and the small migration runner that evolves them.

Why not alembic: the schema is six tables, the runner must refuse a database that is
not ours *before* touching it, and it has to run inside the same lock that guards
concurrent first opens. A dict of numbered steps keyed on ``umlaut_schema.version``
does all that in forty lines without an ``env.py``, a script folder or another
dependency. Each step runs in the one upgrade transaction (both SQLite and
PostgreSQL have transactional DDL), so an upgrade either completes or leaves the
database as it was.

Timestamps are ISO-8601 text in UTC with microseconds and a fixed ``+00:00`` suffix
(``2024-03-01T09:30:00.000000+00:00``): fixed width, so text order is time order and
``started_at >= '2024-03-01'`` filters correctly in plain SQL on every dialect, and
both SQLite's date functions and PostgreSQL's ``::timestamptz`` read it.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from umlaut_core.exceptions import SchemaError

__all__ = ["CURRENT_VERSION", "PREFIX", "metadata", "models", "runs", "upgrade"]

#: The schema this release writes. Bump it and add a step to ``_STEPS`` together.
CURRENT_VERSION = 3
PREFIX = "umlaut_"

metadata = sa.MetaData()
_TEXT = sa.Text()
_TIME = sa.String(32)

schema = sa.Table(
    "umlaut_schema",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", _TIME, nullable=False),
)
models = sa.Table(
    "umlaut_models",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("description", _TEXT),
    # The allocation counter: locked and bumped in the transaction that inserts the
    # version, so numbers are gap-free under concurrent writers on every dialect.
    sa.Column("latest_version", sa.Integer, nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
)
versions = sa.Table(
    "umlaut_versions",
    metadata,
    sa.Column("name", sa.String(255), sa.ForeignKey("umlaut_models.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("digest", sa.String(100), nullable=False),
    sa.Column("flavor", sa.String(100), nullable=False),
    sa.Column("artifact_uri", _TEXT, nullable=False),
    sa.Column("manifest", _TEXT, nullable=False),
    sa.Column("params", _TEXT, nullable=False),
    sa.Column("metrics", _TEXT, nullable=False),
    sa.Column("tags", _TEXT, nullable=False),
    sa.Column("description", _TEXT),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("created_by", sa.String(255)),
    sa.UniqueConstraint("name", "digest", name="uq_umlaut_versions_digest"),
)
aliases = sa.Table(
    "umlaut_aliases",
    metadata,
    sa.Column("model_name", sa.String(255), primary_key=True),
    sa.Column("alias", sa.String(255), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", _TIME, nullable=False),
    sa.ForeignKeyConstraint(
        ["model_name", "version"], ["umlaut_versions.name", "umlaut_versions.version"]
    ),
)
ledger = sa.Table(
    "umlaut_stage_ledger",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("alias", sa.String(255), nullable=False),
    sa.Column("from_version", sa.Integer),
    sa.Column("to_version", sa.Integer, nullable=False),
    sa.Column("changed_at", _TIME, nullable=False),
    sa.Column("changed_by", sa.String(255)),
    sa.Column("reason", _TEXT),
    sa.Index("ix_umlaut_stage_ledger_model", "model_name", "alias", "id"),
)
# No foreign key from runs to versions: the audit trail is append-only history that
# must survive copying between stores, and the check would cost on the hot path.
runs = sa.Table(
    "umlaut_runs",
    metadata,
    sa.Column("id", sa.String(26), primary_key=True),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("selector", sa.String(300), nullable=False),
    sa.Column("inputs", _TEXT, nullable=False),
    sa.Column("output", _TEXT),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("error_type", _TEXT),
    sa.Column("error_message", _TEXT),
    sa.Column("reference_id", sa.String(255)),
    sa.Column("started_at", _TIME, nullable=False),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("tags", _TEXT, nullable=False, server_default="{}"),
    sa.Index("ix_umlaut_runs_model_id", "model_name", "id"),
    sa.Index("ix_umlaut_runs_started_at", "started_at"),
)
#: Partial: most calls carry no reference id, and an index entry per NULL would cost
#: every insert for a lookup that never asks for NULL (schema 3). Written as DDL that
#: SQLite and PostgreSQL both read, rather than as an Index with ``sqlite_where`` and
#: ``postgresql_where``: those make SQLAlchemy import every dialect they name on
#: import, a sixth of a command-line start on SQLite.
REFERENCE_INDEX = (
    "CREATE INDEX ix_umlaut_runs_reference_id ON umlaut_runs (reference_id) "
    "WHERE reference_id IS NOT NULL"
)
sa.event.listen(runs, "after_create", sa.DDL(REFERENCE_INDEX))


def _to_v2(conn: sa.Connection) -> None:
    """Schema 2: audit records gain ``tags``; time-window queries get an index."""
    conn.exec_driver_sql("ALTER TABLE umlaut_runs ADD COLUMN tags TEXT NOT NULL DEFAULT '{}'")
    conn.exec_driver_sql("CREATE INDEX ix_umlaut_runs_started_at ON umlaut_runs (started_at)")


def _to_v3(conn: sa.Connection) -> None:
    """Schema 3: the reference-id index leaves out the rows that have none."""
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_umlaut_runs_reference_id")
    conn.exec_driver_sql(REFERENCE_INDEX)


#: target version → step that brings a database from the version before to it.
_STEPS: dict[int, Callable[[sa.Connection], None]] = {2: _to_v2, 3: _to_v3}


def read_version(conn: sa.Connection, where: str) -> int | None:
    """The database's schema version, None for an empty database.

    Raises SchemaError for a database that holds tables but is not umlaut's, or
    whose schema is newer than this release; reads only.
    """
    names = set(sa.inspect(conn).get_table_names())
    if "umlaut_schema" not in names:
        ours = sorted(n for n in names if n.startswith(PREFIX))
        # A shared PostgreSQL database may hold other applications' tables next to
        # ours; a SQLite file is ours alone.
        foreign = sorted(names) if conn.dialect.name == "sqlite" else ours
        if foreign:
            shown = ", ".join(foreign[:10]) + (" …" if len(foreign) > 10 else "")
            raise SchemaError(
                f"{where} is not an umlaut database: it has tables ({shown}) but no "
                f"umlaut_schema table. Nothing was changed. Point the tracking URI at a "
                f"new file or an empty database."
            )
        return None
    found = conn.execute(sa.select(sa.func.max(schema.c.version))).scalar()
    if found is None:
        raise SchemaError(
            f"{where} has an empty umlaut_schema table, so its schema version is "
            f"unknown. Nothing was changed; restore the database from a backup."
        )
    if found > CURRENT_VERSION:
        raise SchemaError(
            f"{where} has umlaut schema version {found}, newer than the {CURRENT_VERSION} "
            f"this umlaut-sql understands. Nothing was changed; upgrade umlaut-sql "
            f"(pip install -U umlaut-sql) to use it."
        )
    return int(found)


def upgrade(conn: sa.Connection, where: str, now: str) -> int | None:
    """Create or upgrade the schema inside the caller's write transaction.

    Returns the version found before (None: created from scratch).
    """
    found = read_version(conn, where)
    if found is None:
        metadata.create_all(conn)
        conn.execute(sa.insert(schema), [{"version": CURRENT_VERSION, "applied_at": now}])
        return None
    for target in range(found + 1, CURRENT_VERSION + 1):
        _STEPS[target](conn)
        conn.execute(sa.insert(schema), [{"version": target, "applied_at": now}])
    return found
