"""A durable local queue of audit records and training-run writes: one SQLite file
in WAL mode.

Each row has a ``kind``: ``audit`` (an audit record, shipped to the tracker) or
``training`` (a :mod:`~umlaut_core.experiments.writes` write as JSON, shipped to the
experiment store). One outbox for both keeps one shipper, one backlog and one
``status()``; audit rows keep their record id as the row id, training rows get a
fresh id (their idempotency lives in the write itself).

``run_model`` in ``spooled`` delivery appends here and returns; a shipper process or
thread (:mod:`umlaut_core.shipping`) moves records to the tracker and notes failures
here, so that ``status()`` in any process sharing the file reports them. The file survives the
process: whatever a killed process left is shipped by the next one that opens it.
Several processes may share one spool; a row is *claimed* for a short lease while one
of them ships it, and tracker writes are idempotent by record id, so a replay after a
crash never duplicates a record.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .exceptions import BackendError, ConfigurationError
from .group_commit import GroupCommit, Turn
from .ids import new_run_id
from .records import AuditRecord, audit_record
from .redaction import redact
from .sqlite_wal import enable_wal

log = logging.getLogger("umlaut.delivery")

__all__ = ["Claim", "Spool", "SpoolFullError", "SpoolStatus"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    queued_at REAL NOT NULL,
    claimed_by TEXT,
    claimed_until REAL,
    kind TEXT NOT NULL DEFAULT 'audit'
);
CREATE TABLE IF NOT EXISTS spool_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

# What the full-spool check reads on every append: the seq span, two index lookups
# (count(*) would scan a spool grown large in an outage); holes only make it
# overestimate. Two subqueries, because SQLite answers min() and max() from the index
# only when each stands alone: together they scan every row, which once made each
# spooled call slower the longer the backlog.
_DEPTH_BOUND = "SELECT coalesce((SELECT max(seq) FROM spool) - (SELECT min(seq) FROM spool) + 1, 0)"


_Row = tuple[str, str, float, str]
"""A spool row as appended: id, body, queued_at, kind."""


def _begin(conn: sqlite3.Connection, timeout_s: float = 30.0) -> None:
    """``BEGIN IMMEDIATE``, waiting for another process's write lock in steps of 50 µs
    doubling to 2 ms. SQLite's own busy handler sleeps 1, 2, 5, 10 ms ... at once, ten
    times the commit it waits for; a shipper holds the lock for a claim of a few
    hundred rows, about a millisecond."""
    deadline = time.monotonic() + timeout_s
    delay = 50e-6
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            message = str(exc)
            if ("locked" not in message and "busy" not in message) or (time.monotonic() > deadline):
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.002)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class SpoolFullError(BackendError):
    """The spool holds its configured maximum and the policy is ``raise``."""


@dataclass(frozen=True)
class SpoolStatus:
    """How far behind delivery is."""

    depth: int
    oldest_age_s: float | None
    dropped: int
    path: str
    last_error: str | None = None
    unreachable_since: dt.datetime | None = None


@dataclass(frozen=True)
class Claim:
    """What one ``claim`` took, in spool order: audit records, and training writes as
    ``(row id, JSON body, queued_at)``."""

    records: list[AuditRecord]
    writes: list[tuple[str, str, float]]

    def __bool__(self) -> bool:
        return bool(self.records or self.writes)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records] + [w[0] for w in self.writes]


def _encode(r: AuditRecord) -> str:
    return json.dumps(
        [
            r.model_name,
            r.version,
            r.selector,
            r.inputs_json,
            r.output_json,
            r.status,
            r.started_at.isoformat(),
            r.duration_ms,
            r.reference_id,
            r.error_type,
            r.error_message,
            dict(r.tags),
        ],
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _decode(record_id: str, body: str) -> AuditRecord:
    (name, version, selector, inputs, output, status, started, duration, ref, etype, emsg, tags) = (
        json.loads(body)
    )
    return audit_record(
        record_id, name, version, selector, inputs, output, status,
        dt.datetime.fromisoformat(started), duration, ref, etype, emsg, tags, False,
    )  # fmt: skip


def _scrub_meta(conn: sqlite3.Connection, redacted: str) -> None:
    """Replace a full tracker URI left by an older release, leaving no copy on disk."""
    conn.execute("PRAGMA secure_delete=ON")  # the old bytes are zeroed, not just freed
    try:
        conn.execute("UPDATE spool_meta SET value = ? WHERE key = 'tracker'", (redacted,))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # and no copy stays in the WAL
    finally:
        conn.execute("PRAGMA secure_delete=OFF")


class Spool:
    """The queue itself; every method is safe from many threads and processes."""

    def __init__(self, path: str | Path, *, tracker_uri: str, durable: bool = False) -> None:
        self.path = Path(path).expanduser()
        # Only the redacted URI is kept, here and on disk: the spool file outlives the
        # process, and the same store with a rotated password is still the same store.
        self.tracker_uri = redact(tracker_uri)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the folder {str(self.path.parent)!r} for the audit spool "
                f"({exc.strerror or exc}); set spool_path (or UMLAUT_HOME) to a writable folder"
            ) from exc
        self._owner = f"{os.getpid()}-{id(self)}"
        self._local = threading.local()
        self._durable = durable
        # Appends share one connection per process, used by one leader at a time.
        self._writer: tuple[sqlite3.Connection, int, tuple[int, int] | None] | None = None
        self._commits: GroupCommit[_Row] = GroupCommit(self._write)
        self._prepare(self._conn())

    def _prepare(self, conn: sqlite3.Connection) -> None:
        # Each statement stands alone (autocommit) and tolerates another process
        # creating the same spool at the same moment: the first tracker written wins.
        conn.executescript(_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(spool)")}
        if "kind" not in columns:  # a spool written by a release before training runs
            with contextlib.suppress(sqlite3.OperationalError):  # another process won
                conn.execute("ALTER TABLE spool ADD COLUMN kind TEXT NOT NULL DEFAULT 'audit'")
        conn.execute("INSERT OR IGNORE INTO spool_meta VALUES ('tracker', ?)", (self.tracker_uri,))
        row = conn.execute("SELECT value FROM spool_meta WHERE key='tracker'").fetchone()
        stored = redact(row[0])
        if stored != self.tracker_uri:
            raise BackendError(
                f"the spool {self.path} holds records for {stored}, not {self.tracker_uri}; "
                f"point spool_path elsewhere, or ship it with that tracker first"
            )
        if row[0] != stored:
            _scrub_meta(conn, stored)  # an older release kept the password here

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            # One stat per operation (~1 µs): a connection to a file deleted or
            # replaced underneath it would queue records nobody will ship.
            if _identity(self.path) == self._local.ident:
                return conn
            log.error(
                "the audit spool %s was deleted or replaced while in use: records that "
                "were waiting in it and not yet delivered are lost; starting a new spool "
                "there",
                self.path,
            )
            with contextlib.suppress(sqlite3.Error):
                conn.close()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = self._connect()
            self._prepare(fresh)
            return fresh
        return self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        enable_wal(conn)
        self._set_synchronous(conn)
        self._local.conn, self._local.pid = conn, os.getpid()
        self._local.ident = _identity(self.path)
        return conn

    def _set_synchronous(self, conn: sqlite3.Connection) -> None:
        # NORMAL survives a killed process (the WAL is in the OS cache); FULL also
        # survives power loss, at the cost of an fsync per commit.
        conn.execute(f"PRAGMA synchronous={'FULL' if self._durable else 'NORMAL'}")

    def _writer_conn(self) -> sqlite3.Connection:
        """The process's append connection. Its busy timeout is 0: :func:`_begin` waits
        for another process's write lock in short steps of its own."""
        writer, ident = self._writer, _identity(self.path)
        if writer is not None and writer[1] == os.getpid():
            if writer[2] == ident:
                return writer[0]
            with contextlib.suppress(sqlite3.Error):
                writer[0].close()
        # Opened first, after a fork, or the file was deleted or replaced underneath
        # (the thread's connection reports that): make sure the schema is there.
        self._prepare(self._conn())
        conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        self._set_synchronous(conn)
        self._writer = (conn, os.getpid(), _identity(self.path))
        return conn

    def append(
        self,
        records: Iterable[AuditRecord],
        count: int,
        *,
        limit: int,
        policy: str,
        block_timeout_s: float = 60.0,
    ) -> None:
        """Queue ``count`` records in one transaction, applying the full-spool policy.

        ``records`` is consumed lazily (a batch may be larger than memory); it must be
        iterable again if the ``block`` policy has to retry. ``block`` waits for the
        shipper to make room for up to ``block_timeout_s``, then raises like ``raise``.
        """
        self._append(
            lambda now: ((r.id, _encode(r), now, "audit") for r in records),
            count,
            limit=limit,
            policy=policy,
            block_timeout_s=block_timeout_s,
        )

    def append_writes(
        self, bodies: Sequence[str], *, limit: int, policy: str, block_timeout_s: float = 60.0
    ) -> None:
        """Queue training-run writes (JSON bodies) in one transaction, in order."""
        ids = [new_run_id() for _ in bodies]
        self._append(
            lambda now: ((i, b, now, "training") for i, b in zip(ids, bodies, strict=True)),
            len(bodies),
            limit=limit,
            policy=policy,
            block_timeout_s=block_timeout_s,
        )

    def _append(
        self,
        rows: Callable[[float], Iterable[_Row]],
        count: int,
        *,
        limit: int,
        policy: str,
        block_timeout_s: float,
    ) -> None:
        self._commits.submit(rows, count, (limit, policy, block_timeout_s))

    def _write(self, turns: list[Turn[_Row]]) -> None:
        """Queue every turn's rows in one transaction, applying the full-spool policy
        to their sum."""
        how = turns[0].how
        assert isinstance(how, tuple)
        limit: int = how[0]
        policy: str = how[1]
        block_timeout_s: float = how[2]
        count = sum(turn.count for turn in turns)
        conn = self._writer_conn()
        deadline = time.monotonic() + block_timeout_s
        while True:
            _begin(conn)
            try:
                if limit:
                    depth = conn.execute(_DEPTH_BOUND).fetchone()[0]
                    over = depth + count - limit
                    if over > 0:
                        if policy == "drop_oldest":
                            conn.execute(
                                "DELETE FROM spool WHERE seq IN "
                                "(SELECT seq FROM spool ORDER BY seq LIMIT ?)",
                                (over,),
                            )
                            conn.execute(
                                "INSERT INTO spool_meta VALUES ('dropped', ?) ON CONFLICT(key) "
                                "DO UPDATE SET value = CAST(value AS INTEGER) + excluded.value",
                                (str(over),),
                            )
                        elif policy == "raise" or time.monotonic() > deadline:
                            raise SpoolFullError(
                                f"the audit spool {self.path} holds {depth} records (limit "
                                f"{limit}) and the tracker is not taking them; restore the "
                                f"tracker, raise spool_limit, or choose spool_full='drop_oldest'"
                            )
                        else:  # block: give the shipper time to drain
                            conn.execute("ROLLBACK")
                            time.sleep(0.05)
                            continue
                now = time.time()
                conn.executemany(
                    "INSERT OR IGNORE INTO spool (id, body, queued_at, kind) VALUES (?, ?, ?, ?)",
                    itertools.chain.from_iterable(turn.rows(now) for turn in turns),
                )
                conn.execute("COMMIT")
                return
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def claim(self, n: int, lease_s: float = 30.0) -> Claim:
        """Take up to ``n`` of the oldest unclaimed rows for shipping, in order."""
        conn = self._conn()
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute(
                "SELECT seq, id, body, kind, queued_at FROM spool "
                "WHERE claimed_until IS NULL OR claimed_until < ? ORDER BY seq LIMIT ?",
                (now, n),
            ).fetchall()
            conn.executemany(
                "UPDATE spool SET claimed_by = ?, claimed_until = ? WHERE seq = ?",
                [(self._owner, now + lease_s, row[0]) for row in rows],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return Claim(
            [_decode(rid, body) for _, rid, body, kind, _ in rows if kind == "audit"],
            [(rid, body, queued) for _, rid, body, kind, queued in rows if kind != "audit"],
        )

    def release(self, ids: Iterable[str]) -> None:
        """Give claimed records back (delivery failed), to be retried."""
        conn = self._conn()
        conn.executemany(
            "UPDATE spool SET claimed_by = NULL, claimed_until = NULL WHERE id = ?",
            [(i,) for i in ids],
        )

    def remove(self, ids: Iterable[str]) -> None:
        """Forget delivered records."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("DELETE FROM spool WHERE id = ?", [(i,) for i in ids])
        conn.execute("COMMIT")

    def pending(self) -> list[AuditRecord]:
        """Every queued record, oldest first (for history(include_pending=True))."""
        rows = (
            self._conn()
            .execute("SELECT id, body FROM spool WHERE kind = 'audit' ORDER BY seq")
            .fetchall()
        )
        return [_decode(rid, body) for rid, body in rows]

    def status(self) -> SpoolStatus:
        conn = self._conn()
        depth, oldest = conn.execute("SELECT count(*), min(queued_at) FROM spool").fetchone()
        meta = dict(
            conn.execute(
                "SELECT key, value FROM spool_meta WHERE key IN "
                "('dropped', 'last_error', 'unreachable_since')"
            ).fetchall()
        )
        since = meta.get("unreachable_since")
        return SpoolStatus(
            depth=depth,
            oldest_age_s=None if oldest is None else max(0.0, time.time() - oldest),
            dropped=int(meta.get("dropped", 0)),
            path=str(self.path),
            last_error=meta.get("last_error"),
            unreachable_since=None
            if since is None
            else dt.datetime.fromtimestamp(float(since), dt.UTC),
        )

    def note_failure(self, error: str) -> None:
        """Record that delivery is failing, for ``status()`` in any process."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT OR REPLACE INTO spool_meta VALUES ('last_error', ?)", (error,))
        conn.execute(
            "INSERT OR IGNORE INTO spool_meta VALUES ('unreachable_since', ?)",
            (repr(time.time()),),
        )
        conn.execute("COMMIT")

    def note_recovery(self) -> None:
        self._conn().execute(
            "DELETE FROM spool_meta WHERE key IN ('last_error', 'unreachable_since')"
        )

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
        writer, self._writer = self._writer, None
        if writer is not None and writer[1] == os.getpid():
            writer[0].close()
