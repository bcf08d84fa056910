"""``SqlTracker``: the Tracker contract on SQLAlchemy 2 Core (SQLite, PostgreSQL)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

import sqlalchemy as sa

from umlaut_core.clock import utcnow
from umlaut_core.exceptions import (
    ArtifactError,
    BackendError,
    ConfigurationError,
    ModelNotFoundError,
    StageNotFoundError,
    VersionNotFoundError,
)
from umlaut_core.filewatch import FileGuard
from umlaut_core.protocols import Capability
from umlaut_core.records import (
    ModelInfo,
    ModelVersion,
    StageChange,
    VersionDraft,
)
from umlaut_core.registry import looks_secret, redact
from umlaut_core.sqlite_wal import enable_wal

from . import _schema as s
from ._audit import SqlAuditRecords
from ._errors import ErrorMapper
from ._rows import (
    RUN_COLUMNS,
    VERSION_COLUMNS,
    dump,
    fmt_time,
    parse_time,
    version_from_row,
)

__all__ = ["SqlTracker"]

T = TypeVar("T")
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
_DRIVERS = {
    "sqlite": "sqlite",
    "sqlite+pysqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}
#: pg_advisory_xact_lock key that serialises schema creation/upgrade ("umlaut").
_SCHEMA_LOCK = 0x756D6C617574


_V = ", ".join(f"v.{c}" for c in VERSION_COLUMNS)
_HOT_LATEST = (
    f"SELECT {_V} FROM umlaut_models m JOIN umlaut_versions v "
    "ON v.name = m.name AND v.version = m.latest_version WHERE m.name = ?"
)
_HOT_ALIAS = (
    f"SELECT {_V} FROM umlaut_aliases a JOIN umlaut_versions v "
    "ON v.name = a.model_name AND v.version = a.version WHERE a.model_name = ? AND a.alias = ?"
)
_HOT_PINNED = f"SELECT {_V} FROM umlaut_versions v WHERE v.name = ? AND v.version = ?"
_INSERT_RUN = "INSERT INTO umlaut_runs ({}) VALUES ({})".format(
    ", ".join(RUN_COLUMNS), ", ".join("?" for _ in RUN_COLUMNS)
)
_HOT_SQL = {"latest": _HOT_LATEST, "alias": _HOT_ALIAS, "pinned": _HOT_PINNED}


def _sqlite_url(url: sa.URL, shown: str) -> sa.URL:
    """Refuse a host part; expand ``~`` the way the folder is created, so both agree."""
    if url.host or url.port or url.username:
        raise ConfigurationError(
            f"{shown!r} has a host part, which SQLite URLs do not take: write three "
            f"slashes and a relative path (sqlite:///data/umlaut.db, read from the working "
            f"directory) or four slashes for an absolute one (sqlite:////srv/umlaut.db)"
        )
    db = url.database or ""
    if db.startswith("~"):
        url = url.set(database=str(Path(db).expanduser()))
    return url


def _make_parent(db: Path, shown: str) -> None:
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot create the folder {str(db.parent)!r} for the SQLite database {shown} "
            f"({exc.strerror or exc}); point the tracking URI (or UMLAUT_HOME) at a "
            f"writable folder"
        ) from exc


def _secrets_of(url: sa.URL, connect_args: dict[str, Any]) -> tuple[str, ...]:
    """Every credential a driver message could echo: password, secret query values, …"""
    found = [url.password or ""]
    for key, value in [*url.query.items(), *connect_args.items()]:
        if looks_secret(key):
            many = isinstance(value, (list, tuple))
            found += [str(v) for v in value] if many else [str(value)]
    found += [quote(s, safe="") for s in found] + [quote_plus(s) for s in found]
    return tuple(sorted({s for s in found if s}, key=len, reverse=True))


class SqlTracker(SqlAuditRecords):
    """Versions, aliases, ledger and audit records in SQL tables.

    :param uri: a SQLAlchemy URL: ``sqlite:///path/umlaut.db`` or
        ``postgresql+psycopg://user:pass@host/db`` (``postgresql://`` means psycopg).
    :param busy_timeout: SQLite: seconds a writer waits for another's lock (30).
    :param synchronous: SQLite ``PRAGMA synchronous``: ``NORMAL`` (default; in WAL
        mode a power cut may lose the last commits, never corrupt) or ``FULL``.
    :param pool_size: pooled connections kept open (5); ``max_overflow`` more (10).
    :param pool_recycle: seconds after which a pooled connection is replaced (1800).
    :param connect_args: extra keyword arguments for the DBAPI ``connect``.
    """

    capabilities = frozenset(
        {
            Capability.PERSISTENT,
            Capability.MULTI_PROCESS,
            Capability.IMPORT,
            Capability.SCAN_RUNS,
            Capability.SCAN_COLUMNS,
        }
    )
    #: SQLite: notices the database file being deleted or replaced while open.
    _guard: FileGuard | None = None

    def __init__(
        self,
        uri: str,
        *,
        busy_timeout: float = 30.0,
        synchronous: str = "NORMAL",
        pool_size: int = 5,
        max_overflow: int = 10,
        pool_recycle: int = 1800,
        connect_args: dict[str, Any] | None = None,
        **unknown: Any,
    ) -> None:
        self.uri = redact(uri)
        if unknown:
            raise ConfigurationError(
                f"unknown tracker option(s) {sorted(unknown)} for {self.uri}; known: "
                f"busy_timeout, synchronous, pool_size, max_overflow, pool_recycle, "
                f"connect_args"
            )
        try:
            url = sa.engine.make_url(uri)
        except sa.exc.ArgumentError as exc:
            raise ConfigurationError(f"not a SQLAlchemy URL: {self.uri!r} ({exc})") from None
        driver = _DRIVERS.get(url.drivername)
        if driver is None:
            raise ConfigurationError(
                f"umlaut-sql supports sqlite:/// and postgresql+psycopg:// URLs, not "
                f"{url.drivername!r} (in {self.uri!r})"
            )
        url = url.set(drivername=driver)
        if driver == "sqlite":
            url = _sqlite_url(url, self.uri)
        self.dialect = url.get_backend_name()
        if self.dialect != "sqlite":
            # A database server: audit records are spooled by default (issue 8).
            self.capabilities = self.capabilities | {Capability.REMOTE}
        sync = str(synchronous).upper()
        if sync not in _SYNCHRONOUS:
            raise ConfigurationError(
                f"synchronous must be one of {_SYNCHRONOUS}, not {synchronous!r}"
            )
        self._closed = False
        self._cache: dict[tuple[str, int, str], ModelVersion] = {}
        self._free: list[Any] = []
        cargs: dict[str, Any] = dict(connect_args or {})
        if self.dialect == "sqlite":
            db = url.database or ""
            if db in ("", ":memory:") or "mode=memory" in db:
                raise ConfigurationError(
                    "an in-memory SQLite database is private to one connection; use a "
                    "file (sqlite:///umlaut.db) or the 'memory:' tracker"
                )
            if not db.startswith("file:"):
                _make_parent(Path(db), self.uri)
            self.default_artifact_uri: str | None = str(Path(db).parent / "artifacts")
            cargs.setdefault("check_same_thread", False)
            cargs.setdefault("timeout", float(busy_timeout))
            self._sql = {**_HOT_SQL, "run": _INSERT_RUN.replace("INSERT", "INSERT OR IGNORE", 1)}
        else:
            self.default_artifact_uri = None
            run = _INSERT_RUN + " ON CONFLICT (id) DO NOTHING"
            self._sql = {k: q.replace("?", "%s") for k, q in {**_HOT_SQL, "run": run}.items()}
        pool: dict[str, Any] = {
            "pool_size": pool_size,
            "max_overflow": max_overflow,
            "pool_recycle": pool_recycle,
        }
        try:
            self._engine = sa.create_engine(
                url, connect_args=cargs, pool_pre_ping=self.dialect != "sqlite", **pool
            )
        except ImportError as exc:  # the driver is an optional extra
            raise ConfigurationError(
                f"{self.uri} needs the PostgreSQL driver psycopg, which is not installed "
                f"({exc}); install it with: pip install 'umlaut-sql[postgresql]'"
            ) from None
        self._configure = (
            _sqlite_setup(int(busy_timeout * 1000), sync)
            if (self.dialect == "sqlite")
            else _pg_setup
        )
        sa.event.listen(self._engine, "connect", lambda dbapi, _rec: self._configure(dbapi))
        if self.dialect == "sqlite":
            sa.event.listen(self._engine, "begin", _sqlite_begin)
        dbapi = self._engine.dialect.loaded_dbapi
        self._dbapi_error: type[Exception] = dbapi.Error
        self._errors = ErrorMapper(self.uri, _secrets_of(url, cargs), self._dbapi_error)
        # Raw DBAPI connections for the two hot statements, kept outside the engine's
        # pool: a pool checkout plus its reset costs about as much as the statement on
        # SQLite, and pre-ping adds a round trip on PostgreSQL. A dead one (server
        # restart) is dropped and the call retried once, which is safe because the
        # hot reads are reads and audit inserts are idempotent by record id.
        c_args, c_params = self._engine.dialect.create_connect_args(url)
        c_params.update(cargs)
        self._raw_connect: Callable[[], Any] = lambda: self._hot_setup(
            dbapi.connect(*c_args, **c_params)
        )
        try:
            self._open()
        except BaseException:
            self.close()  # a refused database must not leave connections behind
            raise

    # -- setup ------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"SqlTracker({self.uri!r})"

    def _open(self) -> None:
        with self._errors.mapped("opening the database"), self._engine.connect() as conn:
            found = s.read_version(conn, self.uri)
        if found != s.CURRENT_VERSION:
            with self._write("creating or upgrading the umlaut schema") as conn:
                if self.dialect == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK})
                s.upgrade(conn, self.uri, fmt_time(utcnow()))
        if self.dialect == "sqlite" and self._hot("enabling WAL", enable_wal):
            # Pooled connections opened before the switch report the old mode
            # until their next read; start them afresh.
            self._engine.dispose()
        database = self._engine.url.database or ""
        if self.dialect == "sqlite" and not database.startswith("file:"):
            self._guard = FileGuard(database, "SQLite database")

    def _check_usable(self) -> None:
        if self._closed:
            raise BackendError(f"the tracker for {self.uri} is closed")
        if self._guard is not None:
            self._guard.check()

    @contextmanager
    def _read(self, action: str) -> Iterator[sa.Connection]:
        self._check_usable()
        with self._errors.mapped(action), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self, action: str) -> Iterator[sa.Connection]:
        """One write transaction: SQLite takes the write lock at BEGIN (IMMEDIATE)."""
        self._check_usable()
        with self._errors.mapped(action), self._engine.connect() as conn:
            conn.execution_options(umlaut_write=True)
            with conn.begin():
                yield conn

    def _insert(self, table: sa.Table) -> Any:
        # Imported here: the PostgreSQL dialect module alone costs a sixth of
        # `import sqlalchemy`, which every command-line start would pay for SQLite.
        if self.dialect == "sqlite":
            from sqlalchemy.dialects import sqlite as dialect_module
        else:
            from sqlalchemy.dialects import postgresql as dialect_module
        return dialect_module.insert(table)

    # -- hot path: raw DBAPI ----------------------------------------------------------

    def _hot(
        self, action: str, work: Callable[[Any], T], retry: Callable[[], bool] = lambda: True
    ) -> T:
        self._check_usable()
        for attempt in (0, 1):
            try:
                conn = self._free.pop()
            except IndexError:
                try:
                    conn = self._raw_connect()
                except self._dbapi_error as exc:
                    raise self._errors.translate(exc, action) from exc
            try:
                result = work(conn)
            except self._dbapi_error as exc:
                gone = self._gone(exc, conn)
                _close_quietly(conn)
                if gone and attempt == 0 and retry():
                    continue
                raise self._errors.translate(exc, action) from exc
            except BaseException:
                _close_quietly(conn)
                raise
            if self._closed:
                _close_quietly(conn)
            else:
                self._free.append(conn)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _hot_setup(self, conn: Any) -> Any:
        if self.dialect == "sqlite":
            self._configure(conn)
        else:
            conn.autocommit = True  # transactions are begun explicitly in record_runs
        return conn

    def _gone(self, exc: Exception, conn: Any) -> bool:
        try:
            return bool(self._engine.dialect.is_disconnect(exc, conn, None))  # type: ignore[arg-type]
        except Exception:
            return False

    def _fetch_one(self, sql: str, params: tuple[Any, ...]) -> Any:
        def work(conn: Any) -> Any:
            cur = conn.cursor()
            try:
                cur.execute(sql, params)
                return cur.fetchone()
            finally:
                cur.close()

        return self._hot("reading a model version", work)

    # -- versions ---------------------------------------------------------------------

    def find_version(self, name: str, digest: str) -> ModelVersion | None:
        v = s.versions
        with self._read("looking up a version by digest") as conn:
            row = conn.execute(
                sa.select(*(v.c[c] for c in VERSION_COLUMNS)).where(
                    v.c.name == name, v.c.digest == digest
                )
            ).first()
        return None if row is None else version_from_row(row)

    def register_version(self, draft: VersionDraft, bundle: bytes) -> ModelVersion:
        if draft.artifact_uri is None:
            raise ConfigurationError(
                f"{self.uri} keeps no bundles itself: store the bundle in an artifact "
                f"store first and pass its artifact_uri"
            )
        m, v = s.models, s.versions
        now = fmt_time(draft.created_at)
        try:
            with self._write(f"registering a version of {draft.name!r}") as conn:
                conn.execute(
                    self._insert(m).on_conflict_do_nothing(index_elements=["name"]),
                    {
                        "name": draft.name,
                        "description": draft.description,
                        "latest_version": 0,
                        "created_at": now,
                    },
                )
                # The row lock (PostgreSQL) or the IMMEDIATE transaction (SQLite)
                # serialises allocation per name: no gaps, no duplicates.
                latest = conn.execute(
                    sa.select(m.c.latest_version).where(m.c.name == draft.name).with_for_update()
                ).scalar_one()
                row = conn.execute(
                    sa.select(*(v.c[c] for c in VERSION_COLUMNS)).where(
                        v.c.name == draft.name, v.c.digest == draft.digest
                    )
                ).first()
                if row is not None:
                    return version_from_row(row)
                number = latest + 1
                values = {
                    "name": draft.name,
                    "version": number,
                    "digest": draft.digest,
                    "flavor": draft.flavor,
                    "artifact_uri": draft.artifact_uri,
                    "manifest": dump(draft.manifest),
                    "params": dump(draft.params),
                    "metrics": dump(draft.metrics),
                    "tags": dump(draft.tags),
                    "description": draft.description,
                    "created_at": now,
                    "created_by": draft.created_by,
                }
                conn.execute(sa.insert(v), values)
                conn.execute(
                    sa.update(m).where(m.c.name == draft.name).values(latest_version=number)
                )
        except BackendError as exc:
            # Backstop for the unique (name, digest) constraint: whoever lost a race
            # returns the winner's version instead of failing.
            if isinstance(exc.__cause__, sa.exc.IntegrityError):
                existing = self.find_version(draft.name, draft.digest)
                if existing is not None:
                    return existing
            raise
        return version_from_row([values[c] for c in VERSION_COLUMNS], created=True)

    def get_version(
        self, name: str, *, version: int | None = None, alias: str | None = None
    ) -> ModelVersion:
        if version is not None:
            row = self._fetch_one(self._sql["pinned"], (name, version))
        elif alias is not None:
            row = self._fetch_one(self._sql["alias"], (name, alias))
        else:
            row = self._fetch_one(self._sql["latest"], (name,))
        if row is None:
            raise self._not_found(name, version, alias)
        key = (name, row[1], row[2])
        mv = self._cache.get(key)
        if mv is None:
            # Versions are immutable, so a parsed one can be reused for good; the
            # digest in the key guards against the file being replaced underneath.
            mv = version_from_row(row)
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = mv
        return mv

    def _not_found(self, name: str, version: int | None, alias: str | None) -> Exception:
        m, v, a = s.models, s.versions, s.aliases
        with self._read("listing what exists") as conn:
            numbers = (
                conn.execute(sa.select(v.c.version).where(v.c.name == name).order_by(v.c.version))
                .scalars()
                .all()
            )
            if not numbers:
                names = (
                    conn.execute(sa.select(m.c.name).where(m.c.latest_version > 0)).scalars().all()
                )
                return ModelNotFoundError(name, names)
            if version is not None:
                return VersionNotFoundError(name, version, numbers)
            labels = (
                conn.execute(sa.select(a.c.alias).where(a.c.model_name == name)).scalars().all()
            )
        return StageNotFoundError(name, alias or "", labels)

    def load_bundle(self, version: ModelVersion) -> bytes:
        raise ArtifactError(
            f"{self.uri} keeps no bundles; {version.name} v{version.version} is at "
            f"{version.artifact_uri}"
        )

    def list_models(self) -> list[ModelInfo]:
        m, a = s.models, s.aliases
        with self._read("listing models") as conn:
            rows = conn.execute(
                sa.select(m.c.name, m.c.latest_version, m.c.description)
                .where(m.c.latest_version > 0)
                .order_by(m.c.name)
            ).all()
            pointers: dict[str, dict[str, int]] = {}
            for name, alias, number in conn.execute(
                sa.select(a.c.model_name, a.c.alias, a.c.version)
            ):
                pointers.setdefault(name, {})[alias] = number
        return [
            ModelInfo(name=n, latest_version=lv, aliases=pointers.get(n, {}), description=d)
            for n, lv, d in rows
        ]

    def list_versions(self, name: str) -> list[ModelVersion]:
        v = s.versions
        with self._read(f"listing versions of {name!r}") as conn:
            rows = conn.execute(
                sa.select(*(v.c[c] for c in VERSION_COLUMNS))
                .where(v.c.name == name)
                .order_by(v.c.version)
            ).all()
        if not rows:
            raise self._not_found(name, None, None)
        return [version_from_row(r) for r in rows]

    # -- aliases and the ledger ---------------------------------------------------------

    def set_alias(
        self,
        name: str,
        alias: str,
        version: int,
        *,
        changed_by: str | None,
        reason: str | None,
    ) -> StageChange:
        m, v, a, led = s.models, s.versions, s.aliases, s.ledger
        with self._write(f"moving alias {alias!r} of {name!r}") as conn:
            # Locks the model row so concurrent moves of its aliases are serialised
            # and each ledger entry's from_version is the one it replaced.
            exists = conn.execute(
                sa.select(m.c.latest_version).where(m.c.name == name).with_for_update()
            ).scalar()
            # Stamped under the lock, so ledger order (id) is also changed_at order.
            changed_at = utcnow()
            when = fmt_time(changed_at)
            found = conn.execute(
                sa.select(v.c.version).where(v.c.name == name, v.c.version == version)
            ).scalar()
            if not exists or found is None:
                raise self._not_found(name, version, None)
            previous = conn.execute(
                sa.select(a.c.version).where(a.c.model_name == name, a.c.alias == alias)
            ).scalar()
            if previous == version:
                # Already there (another writer won a race to the same target): the
                # ledger records moves, not repeated requests.
                return StageChange(name, alias, version, version, changed_at, changed_by, reason)
            stmt = self._insert(a).values(
                model_name=name, alias=alias, version=version, updated_at=when
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["model_name", "alias"],
                    set_={"version": version, "updated_at": when},
                )
            )
            conn.execute(
                sa.insert(led),
                {
                    "model_name": name,
                    "alias": alias,
                    "from_version": previous,
                    "to_version": version,
                    "changed_at": when,
                    "changed_by": changed_by,
                    "reason": reason,
                },
            )
        return StageChange(
            model_name=name,
            stage=alias,
            from_version=previous,
            to_version=version,
            changed_at=changed_at,
            changed_by=changed_by,
            reason=reason,
        )

    def stage_history(self, name: str, alias: str | None = None) -> list[StageChange]:
        m, led = s.models, s.ledger
        query = sa.select(
            led.c.model_name,
            led.c.alias,
            led.c.from_version,
            led.c.to_version,
            led.c.changed_at,
            led.c.changed_by,
            led.c.reason,
        ).where(led.c.model_name == name)
        if alias is not None:
            query = query.where(led.c.alias == alias)
        with self._read(f"reading the ledger of {name!r}") as conn:
            if not conn.execute(sa.select(m.c.latest_version).where(m.c.name == name)).scalar():
                raise self._not_found(name, None, None)
            # changed_at first: entries imported from another store may be older
            # than entries written here (ids are insertion order).
            rows = conn.execute(query.order_by(led.c.changed_at, led.c.id)).all()
        return [
            StageChange(
                model_name=r[0],
                stage=r[1],
                from_version=r[2],
                to_version=r[3],
                changed_at=parse_time(r[4]),
                changed_by=r[5],
                reason=r[6],
            )
            for r in rows
        ]

    def import_ledger(
        self, name: str, changes: Sequence[StageChange], aliases: Mapping[str, int]
    ) -> int:
        """Ledger entries made elsewhere, skipped when present; aliases set without
        entries. One transaction, under the model row's lock."""
        m, v, a, led = s.models, s.versions, s.aliases, s.ledger
        wanted = {c.to_version for c in changes} | set(aliases.values())
        wanted |= {c.from_version for c in changes if c.from_version is not None}
        with self._write(f"importing the ledger of {name!r}") as conn:
            exists = conn.execute(
                sa.select(m.c.latest_version).where(m.c.name == name).with_for_update()
            ).scalar()
            found = set(
                conn.execute(sa.select(v.c.version).where(v.c.name == name)).scalars().all()
            )
            missing = sorted(wanted - found)
            if not exists or missing:
                raise self._not_found(name, missing[0] if missing else None, None)
            held = {
                (r[0], r[1], r[2], r[3])
                for r in conn.execute(
                    sa.select(
                        led.c.alias, led.c.changed_at, led.c.from_version, led.c.to_version
                    ).where(led.c.model_name == name)
                )
            }
            rows = []
            for c in changes:
                when = fmt_time(c.changed_at)
                identity = (c.stage, when, c.from_version, c.to_version)
                if identity in held:
                    continue
                held.add(identity)
                rows.append(
                    {
                        "model_name": name,
                        "alias": c.stage,
                        "from_version": c.from_version,
                        "to_version": c.to_version,
                        "changed_at": when,
                        "changed_by": c.changed_by,
                        "reason": c.reason,
                    }
                )
            if rows:
                conn.execute(sa.insert(led), rows)
            now = fmt_time(utcnow())
            for alias, number in aliases.items():
                stmt = self._insert(a).values(
                    model_name=name, alias=alias, version=number, updated_at=now
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["model_name", "alias"],
                        set_={"version": number, "updated_at": now},
                    )
                )
        return len(rows)

    def close(self) -> None:
        self._closed = True
        while self._free:
            _close_quietly(self._free.pop())
        self._engine.dispose()

    def __del__(self) -> None:
        # A tracker dropped without close() (e.g. a facade whose constructor failed
        # after opening it) must not leak server connections.
        if not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.close()


def _sqlite_setup(busy_ms: int, synchronous: str) -> Callable[[Any], None]:
    def setup(conn: Any) -> None:
        # Autocommit at the driver: transactions are begun explicitly (see
        # _sqlite_begin), so BEGIN IMMEDIATE is possible and pysqlite's implicit
        # BEGIN before DML does not get in the way.
        conn.isolation_level = None
        conn.execute(f"PRAGMA busy_timeout = {busy_ms}")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA foreign_keys = ON")

    return setup


def _pg_setup(conn: Any) -> None:
    return None


def _sqlite_begin(conn: sa.Connection) -> None:
    write = conn.get_execution_options().get("umlaut_write")
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):  # already broken; nothing to release
        conn.close()
