"""The tables umlaut keeps, and the small migration runner that evolves them.

Why not alembic: the schema is fourteen small tables, the runner must refuse a
database that is not ours *before* touching it, and it has to run inside the same
lock that guards concurrent first opens. A dict of numbered steps keyed on
``umlaut_schema.version`` does all that in forty lines without an ``env.py``, a
script folder or another dependency. Each step runs in the one upgrade transaction
(both SQLite and PostgreSQL have transactional DDL), so an upgrade either completes
or leaves the database as it was.

Timestamps are ISO-8601 text in UTC with microseconds and a fixed ``+00:00`` suffix
(``2024-03-01T09:30:00.000000+00:00``): fixed width, so text order is time order and
``started_at >= '2024-03-01'`` filters correctly in plain SQL on every dialect, and
both SQLite's date functions and PostgreSQL's ``::timestamptz`` read it.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from umlaut_core.exceptions import SchemaError

__all__ = [
    "BLOB_TABLES",
    "CURRENT_VERSION",
    "DATASET_TABLES",
    "PREFIX",
    "TRAINING_TABLES",
    "blob_chunks",
    "blob_uploads",
    "blobs",
    "dataset_links",
    "dataset_versions",
    "datasets",
    "experiments",
    "metadata",
    "metric_points",
    "models",
    "runs",
    "training_artifacts",
    "training_metrics",
    "training_params",
    "training_runs",
    "training_tags",
    "training_versions",
    "upgrade",
]

#: The schema this release writes. Bump it and add a step to ``_STEPS`` together.
CURRENT_VERSION = 5
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
sa.event.listen(runs, "after_create", sa.DDL(REFERENCE_INDEX))  # type: ignore[no-untyped-call]


# -- training runs (schema 4) -------------------------------------------------------
# Named "training" throughout: umlaut_runs holds audit records (one call of a model),
# and the two must not be confused by anyone reading the database.
#
# Text that is compared with < and > or ordered (ids, names, tag and param strings,
# times) is collated "C" on PostgreSQL: code-point order, the order Python and
# SQLite's BINARY collation give, so a search returns the same page on both.
# NaN is stored as NULL in every float column: SQLite turns NaN into NULL anyway, and
# SQL's NULL rules then are exactly the IEEE ones the filters define (every
# comparison false, ignored by MIN/MAX/AVG, sorted with the missing values), whereas
# PostgreSQL's own NaN equals itself and sorts above infinity. ±inf is kept as is.
# On SQLite the tables are WITHOUT ROWID: rows are stored in primary-key order, so a
# lookup by (run_id, key) or a metric's history in step order reads one b-tree range.


def _ordered(length: int | None = None) -> sa.types.TypeEngine[str]:
    plain = sa.String(length) if length else sa.Text()
    return plain.with_variant(sa.String(length, collation="C"), "postgresql")


_ID = _ordered(255)
_ORDERED_TEXT = _ordered()
_CTIME = _ordered(32)
_KEY = sa.Text()
_NUMBER: sa.types.TypeEngine[float] = sa.Double()
_INT = sa.BigInteger()


def _run_ref() -> sa.ForeignKey:
    return sa.ForeignKey("umlaut_training_runs.run_id")


experiments = sa.Table(
    "umlaut_experiments",
    metadata,
    sa.Column("name", _ID, primary_key=True),
    sa.Column("created_at", _CTIME, nullable=False),
    sqlite_with_rowid=False,
)
training_runs = sa.Table(
    "umlaut_training_runs",
    metadata,
    sa.Column("run_id", _ID, primary_key=True),
    sa.Column("experiment", _ID, sa.ForeignKey("umlaut_experiments.name"), nullable=False),
    sa.Column("name", _ORDERED_TEXT),
    sa.Column("status", _ordered(10), nullable=False),
    sa.Column("started_at", _CTIME, nullable=False),
    sa.Column("ended_at", _CTIME),
    # Not a foreign key: a child's writes may reach the store before its parent's.
    sa.Column("parent_id", _ID),
    # Not "user", which PostgreSQL reads as CURRENT_USER in plain SQL.
    sa.Column("user_name", _ORDERED_TEXT),
    sa.Column("host", _TEXT),
    sa.Column("error", _TEXT),
    sa.Column("heartbeat_at", _CTIME),
    sa.Column("environment", _TEXT, nullable=False),
    # Keyset pages in the default order (started_at DESC) within an experiment and
    # across all; by end and by name within one; by run_id within one (the runs
    # missing the sort key); a run's children.
    sa.Index("ix_umlaut_training_runs_exp_started", "experiment", "started_at", "run_id"),
    sa.Index("ix_umlaut_training_runs_started", "started_at", "run_id"),
    sa.Index("ix_umlaut_training_runs_exp_ended", "experiment", "ended_at", "run_id"),
    # SQLite only: a name may outgrow a PostgreSQL b-tree entry (about 2.7 kB).
    sa.Index("ix_umlaut_training_runs_exp_name", "experiment", "name", "run_id").ddl_if(
        dialect="sqlite"
    ),
    sa.Index("ix_umlaut_training_runs_exp_run", "experiment", "run_id"),
    sa.Index("ix_umlaut_training_runs_parent", "parent_id"),
    sqlite_with_rowid=False,
)
training_params = sa.Table(
    "umlaut_training_params",
    metadata,
    sa.Column("run_id", _ID, _run_ref(), primary_key=True),
    sa.Column("key", _KEY, primary_key=True),
    #: The value as JSON text, of any size: what get_run returns.
    sa.Column("value", _TEXT, nullable=False),
    #: Copies to filter and order on: the number (not a bool, not NaN), the string.
    sa.Column("value_num", _NUMBER),
    sa.Column("value_text", _ORDERED_TEXT),
    sa.Index("ix_umlaut_training_params_num", "key", "value_num", "run_id"),
    # SQLite only: a PostgreSQL b-tree entry is capped at about 2.7 kB and a string
    # param may be longer (there, text filters use the primary key per run).
    sa.Index("ix_umlaut_training_params_text", "key", "value_text", "run_id").ddl_if(
        dialect="sqlite"
    ),
    sqlite_with_rowid=False,
)
training_tags = sa.Table(
    "umlaut_training_tags",
    metadata,
    sa.Column("run_id", _ID, _run_ref(), primary_key=True),
    sa.Column("key", _KEY, primary_key=True),
    sa.Column("value", _ORDERED_TEXT, nullable=False),
    sa.Index("ix_umlaut_training_tags_value", "key", "value", "run_id").ddl_if(dialect="sqlite"),
    sa.Index("ix_umlaut_training_tags_key", "key", "run_id").ddl_if(dialect="postgresql"),
    sqlite_with_rowid=False,
)
#: One row per (run, metric): its summary, updated as points arrive, so neither
#: get_run nor a search reads a history.
training_metrics = sa.Table(
    "umlaut_training_metrics",
    metadata,
    sa.Column("run_id", _ID, _run_ref(), primary_key=True),
    sa.Column("key", _KEY, primary_key=True),
    sa.Column("last", _NUMBER),
    sa.Column("last_step", _INT, nullable=False),
    sa.Column("last_timestamp_ms", _INT, nullable=False),
    #: Breaks a tie of step and time for "last", as the history order does.
    sa.Column("last_point_id", _INT, nullable=False),
    sa.Column("min", _NUMBER),
    sa.Column("max", _NUMBER),
    sa.Column("count", _INT, nullable=False),
    sa.Index("ix_umlaut_training_metrics_last", "key", "last", "run_id"),
    sa.Index("ix_umlaut_training_metrics_min", "key", "min", "run_id"),
    sa.Index("ix_umlaut_training_metrics_max", "key", "max", "run_id"),
    sqlite_with_rowid=False,
)
#: Every point, clustered in history order; the unique (run, key, point id) is what
#: makes a replayed point a no-op. No foreign key, unlike the small tables: its check
#: cost a quarter of each insert on PostgreSQL, and the store already checks the run
#: exists in the writing transaction (runs are never deleted).
metric_points = sa.Table(
    "umlaut_metric_points",
    metadata,
    sa.Column("run_id", _ID, primary_key=True),
    sa.Column("key", _KEY, primary_key=True),
    sa.Column("step", _INT, primary_key=True, autoincrement=False),
    sa.Column("timestamp_ms", _INT, primary_key=True, autoincrement=False),
    sa.Column("point_id", _INT, primary_key=True, autoincrement=False),
    sa.Column("value", _NUMBER),
    sa.UniqueConstraint("run_id", "key", "point_id", name="uq_umlaut_metric_points_id"),
    sqlite_with_rowid=False,
)
training_artifacts = sa.Table(
    "umlaut_training_artifacts",
    metadata,
    sa.Column("run_id", _ID, _run_ref(), primary_key=True),
    sa.Column("path", _ORDERED_TEXT, primary_key=True),
    sa.Column("uri", _TEXT, nullable=False),
    sa.Column("size", _INT, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sqlite_with_rowid=False,
)
#: Lineage: the model versions a training run produced. No foreign key to
#: umlaut_versions, as for audit records: copies between stores may bring the link
#: before the version.
training_versions = sa.Table(
    "umlaut_training_versions",
    metadata,
    sa.Column("run_id", _ID, _run_ref(), primary_key=True),
    sa.Column("model_name", _ID, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Index("ix_umlaut_training_versions_model", "model_name", "version"),
    sqlite_with_rowid=False,
)
TRAINING_TABLES = (
    experiments,
    training_runs,
    training_params,
    training_tags,
    training_metrics,
    metric_points,
    training_artifacts,
    training_versions,
)


# -- datasets and blobs (schema 5) ----------------------------------------------------

datasets = sa.Table(
    "umlaut_datasets",
    metadata,
    sa.Column("name", _ID, primary_key=True),
    # The allocation counter, as umlaut_models.latest_version: locked and bumped in
    # the transaction that inserts the version.
    sa.Column("latest_version", sa.Integer, nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
)
dataset_versions = sa.Table(
    "umlaut_dataset_versions",
    metadata,
    sa.Column("name", _ID, sa.ForeignKey("umlaut_datasets.name"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("digest", sa.String(100), nullable=False),
    sa.Column("row_count", _INT, nullable=False),
    sa.Column("artifact_uri", _TEXT, nullable=False),
    sa.Column("size_bytes", _INT, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("created_by", sa.String(255)),
    sa.Column("description", _TEXT),
    sa.Column("tags", _TEXT, nullable=False),
    sa.Column("target", _TEXT),
    sa.Column("source", _TEXT),
    #: The column profiles, a JSON list of objects (one per column, in order).
    sa.Column("columns", _TEXT, nullable=False),
    # Identity is per name: the same digest under another name is another dataset.
    sa.UniqueConstraint("name", "digest", name="uq_umlaut_dataset_versions_digest"),
)
#: Lineage: a dataset version used by a model version (kind "model_version") or a
#: training run ("training_run"); the fields the other kind lacks are NULL. The id
#: is insertion order, which is what "oldest first" means.
dataset_links = sa.Table(
    "umlaut_dataset_links",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dataset_name", _ID, nullable=False),
    sa.Column("dataset_version", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("context", _ID, nullable=False),
    sa.Column("model_name", _ID),
    sa.Column("model_version", sa.Integer),
    sa.Column("run_id", _ID),
    sa.Column("created_at", _TIME, nullable=False),
    sa.ForeignKeyConstraint(
        ["dataset_name", "dataset_version"],
        ["umlaut_dataset_versions.name", "umlaut_dataset_versions.version"],
    ),
    sa.Index("ix_umlaut_dataset_links_model", "model_name", "model_version"),
    sa.Index("ix_umlaut_dataset_links_run", "run_id"),
)
#: A link's identity is every field but the time. NULLs are distinct in a plain
#: unique index on both dialects, so the nullable fields are compared through
#: COALESCE: adding a link twice then conflicts, and INSERT … ON CONFLICT DO NOTHING
#: makes add_links idempotent (this also serves the lookups by dataset).
LINK_IDENTITY_INDEX = (
    "CREATE UNIQUE INDEX uq_umlaut_dataset_links_identity ON umlaut_dataset_links "
    "(dataset_name, dataset_version, kind, context, COALESCE(model_name, ''), "
    "COALESCE(model_version, -1), COALESCE(run_id, ''))"
)
sa.event.listen(dataset_links, "after_create", sa.DDL(LINK_IDENTITY_INDEX))  # type: ignore[no-untyped-call]
DATASET_TABLES = (datasets, dataset_versions, dataset_links)

#: Objects of the database artifact store (``sqldb:<key>``): one row per object.
#: Its bytes are the rows of umlaut_blob_chunks with its blob_id, in seq order.
blobs = sa.Table(
    "umlaut_blobs",
    metadata,
    sa.Column("key", _ordered(1024), primary_key=True),
    sa.Column("blob_id", sa.String(32), nullable=False, unique=True),
    sa.Column("size", _INT, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("chunk_count", sa.Integer, nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
)
#: A rowid table on SQLite, unlike the training tables: WITHOUT ROWID suits small
#: rows, and a chunk is up to 4 MiB.
blob_chunks = sa.Table(
    "umlaut_blob_chunks",
    metadata,
    sa.Column("blob_id", sa.String(32), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
#: Objects larger than one chunk being written, one transaction per chunk; their
#: umlaut_blobs row comes last. What a crash leaves here is removed a day later.
blob_uploads = sa.Table(
    "umlaut_blob_uploads",
    metadata,
    sa.Column("blob_id", sa.String(32), primary_key=True),
    sa.Column("key", _ordered(1024), nullable=False),
    sa.Column("started_at", _TIME, nullable=False),
)
BLOB_TABLES = (blobs, blob_chunks, blob_uploads)


def _to_v2(conn: sa.Connection) -> None:
    """Schema 2: audit records gain ``tags``; time-window queries get an index."""
    conn.exec_driver_sql("ALTER TABLE umlaut_runs ADD COLUMN tags TEXT NOT NULL DEFAULT '{}'")
    conn.exec_driver_sql("CREATE INDEX ix_umlaut_runs_started_at ON umlaut_runs (started_at)")


def _to_v3(conn: sa.Connection) -> None:
    """Schema 3: the reference-id index leaves out the rows that have none."""
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_umlaut_runs_reference_id")
    conn.exec_driver_sql(REFERENCE_INDEX)


def _to_v4(conn: sa.Connection) -> None:
    """Schema 4: training runs (experiment tracking), in tables of their own."""
    # Built from the table definitions above, which are schema 4's: a later step
    # that changes one of these tables must first freeze this step's DDL as text.
    metadata.create_all(conn, tables=list(TRAINING_TABLES), checkfirst=False)


def _to_v5(conn: sa.Connection) -> None:
    """Schema 5: datasets with their lineage links, and the database artifact store."""
    # Built from the definitions above, as _to_v4 is; the same caveat applies.
    metadata.create_all(conn, tables=[*DATASET_TABLES, *BLOB_TABLES], checkfirst=False)


#: target version → step that brings a database from the version before to it.
_STEPS: dict[int, Callable[[sa.Connection], None]] = {
    2: _to_v2,
    3: _to_v3,
    4: _to_v4,
    5: _to_v5,
}


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
