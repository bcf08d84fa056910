"""``SqlBlobStore``: an artifact store inside the tracker's own database.

With it one SQLite file carries a whole registry with its bytes (bundles, dataset
files and training-run artifacts beside the versions, audit records, training runs
and datasets), and a team with only PostgreSQL needs no S3 bucket or shared folder.

URIs, both free of secrets:

* the store: ``sqldb+<tracking URI>``, e.g. ``sqldb+sqlite:////srv/umlaut.db`` or
  ``sqldb+postgresql+psycopg://ada:***@db/umlaut`` (the password redacted);
* an object: ``sqldb:<key>`` (``sqldb:bundles/ab/ab….zip``). It names no database, so
  the versions in a copied SQLite file still find their bytes in the copy.

The registry hands an artifact-store factory nothing but the store URI, which holds
no password. So every tracker the plugin opens is remembered (weakly) by its
redacted URI, and the store borrows the engine of one of them: it shares the pool,
the error mapping and SQLite's ``BEGIN IMMEDIATE``. It uses the engine directly, not
the tracker's methods: an engine stays usable after ``dispose()``, so closing that
tracker does not break the store. With no such tracker in the process the store opens the
database itself, which works for SQLite and for a server URL that needs no password
(trust, ``.pgpass``, ``PGPASSWORD``); otherwise it says to open the tracker first.

Objects are stored as 4 MiB chunks (``umlaut_blob_chunks``) under one row of
``umlaut_blobs``, so a large dataset is streamed both ways. An object of one chunk
is written in one transaction; a larger one a chunk per transaction (so a long
upload never holds SQLite's write lock for its whole length), its ``umlaut_blobs``
row last: readers see all of it or none. Keys are content-addressed by the core,
so a key that is present is never written again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import threading
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa

from umlaut_core.clock import utcnow
from umlaut_core.exceptions import ArtifactError, ConfigurationError, IntegrityError
from umlaut_core.keys import check_key, check_prefix
from umlaut_core.protocols import ArtifactStore, Capability
from umlaut_core.records import StoredObject
from umlaut_core.registry import redact
from umlaut_core.stores.folder import FolderArtifactStore, refuse_options

from . import _schema as s
from ._rows import fmt_time, parse_time
from ._tracker import SqlTracker

__all__ = [
    "CHUNK_SIZE",
    "OBJECT_PREFIX",
    "STORE_PREFIX",
    "SqlBlobStore",
    "open_blob_store",
    "open_tracker",
    "store_uri",
]

STORE_PREFIX = "sqldb+"
OBJECT_PREFIX = "sqldb:"
#: Bytes per chunk row: large enough that per-row costs vanish, small enough that
#: a chunk in flight (and the driver's copy of it) is nothing next to the object.
CHUNK_SIZE = 4 << 20
#: An upload unfinished after this long was cut short (a crash): its chunks go.
STALE_UPLOAD = dt.timedelta(days=1)

_CHUNKS = "SELECT seq, data FROM umlaut_blob_chunks WHERE blob_id = {} ORDER BY seq"

_live: dict[str, list[weakref.ref[SqlTracker]]] = {}
_live_lock = threading.Lock()


def store_uri(tracker: SqlTracker) -> str:
    """The URI of the database store of ``tracker`` (never holds a password)."""
    return STORE_PREFIX + tracker.uri


def open_tracker(uri: str, *, store_blobs: bool | None = None, **options: Any) -> SqlTracker:
    """The plugin's tracker factory: a :class:`SqlTracker`, with its default artifact
    store chosen and the tracker remembered for :func:`open_blob_store`.

    :param store_blobs: keep bundles and dataset files in the database when no
        ``artifact_uri`` is given. ``None`` (the default): yes on a database server;
        on SQLite only if the file already holds some (it was asked for before, so
        a copy of the file opens as it was made), else the folder beside the file.
    """
    if store_blobs is not None and not isinstance(store_blobs, bool):
        raise ConfigurationError(
            f"store_blobs must be true or false, not {store_blobs!r} (for {redact(uri)})"
        )
    tracker = SqlTracker(uri, **options)
    try:
        if store_blobs is None:
            store_blobs = tracker.dialect != "sqlite" or _holds_blobs(tracker)
        if store_blobs:
            tracker.default_artifact_uri = store_uri(tracker)
    except BaseException:
        tracker.close()
        raise
    _remember(tracker)
    return tracker


def open_blob_store(uri: str, **options: Any) -> SqlBlobStore:
    """The artifact-store factory for ``sqldb+<tracking URI>``."""
    refuse_options(options, "artifact", f"the database store {redact(uri)!r}")
    if not uri.lower().startswith(STORE_PREFIX):
        raise ConfigurationError(
            f"{redact(uri)!r} names no database: write sqldb+ and the tracking URI "
            f"(sqldb+sqlite:///umlaut.db), or open the tracker with "
            f"tracker_options={{'store_blobs': True}} and leave artifact_uri unset"
        )
    tracking = uri[len(STORE_PREFIX) :]
    # Trackers are known by their redacted URI; a store URI may carry the password.
    tracker = _known(tracking) or _known(redact(tracking))
    if tracker is None:
        if "***" in tracking:
            raise ConfigurationError(
                f"{redact(uri)} is the database store of a tracker not open in this "
                f"process, and its URI hides the password: open the tracker first "
                f"(Umlaut(tracking_uri) with artifact_uri unset does both)"
            )
        tracker = open_tracker(tracking)
    return SqlBlobStore(tracker)


def _remember(tracker: SqlTracker) -> None:
    with _live_lock:
        for key in list(_live):
            _live[key] = [r for r in _live[key] if r() is not None]
            if not _live[key]:
                del _live[key]
        _live.setdefault(tracker.uri, []).append(weakref.ref(tracker))


def _known(uri: str) -> SqlTracker | None:
    """The newest open tracker opened with ``uri``, else the newest closed one (its
    engine still works), else None."""
    with _live_lock:
        found = [t for t in (r() for r in _live.get(uri, ())) if t is not None]
    open_ones = [t for t in found if not t._closed]
    chosen = open_ones or found
    return chosen[-1] if chosen else None


def _holds_blobs(tracker: SqlTracker) -> bool:
    with tracker._read("looking for objects kept in the database") as conn:
        return conn.execute(sa.select(s.blobs.c.key).limit(1)).first() is not None


def _read_full(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes; fewer only at the end (a pipe may return short reads)."""
    first = stream.read(size)
    if not first or len(first) == size:
        return first or b""
    parts = [first]
    got = len(first)
    while got < size:
        more = stream.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class SqlBlobStore:
    """Objects as chunked rows in the SQL tracker's database (``sqldb:<key>``)."""

    capabilities = frozenset({Capability.LIST_OBJECTS})

    def __init__(self, tracker: SqlTracker) -> None:
        self.uri = store_uri(tracker)
        self._engine = tracker._engine
        self._errors = tracker._errors
        self._insert = tracker._insert
        self._dialect = tracker.dialect
        self._folder: ArtifactStore | None = None
        database = tracker._engine.url.database or ""
        #: Where objects of a SQLite file went before it kept them itself: versions
        #: tracked then still load (``file:`` URIs are read from there).
        self._beside = (
            str(Path(database).parent / "artifacts")
            if tracker.dialect == "sqlite" and not database.startswith("file:")
            else None
        )

    def __repr__(self) -> str:
        return f"SqlBlobStore({self.uri!r})"

    # -- transactions on the borrowed engine ------------------------------------------

    @contextmanager
    def _read(self, action: str) -> Iterator[sa.Connection]:
        with self._errors.mapped(action), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self, action: str) -> Iterator[sa.Connection]:
        with self._errors.mapped(action), self._engine.connect() as conn:
            conn.execution_options(umlaut_write=True)  # SQLite: BEGIN IMMEDIATE
            with conn.begin():
                yield conn

    def _key(self, uri: str) -> str:
        if not uri.startswith(OBJECT_PREFIX):
            raise ArtifactError(
                f"{redact(uri)!r} is not an object of the database store {self.uri} "
                f"(its objects are sqldb:<key>); point artifact_uri at the store that "
                f"holds it"
            )
        return check_key(uri[len(OBJECT_PREFIX) :])

    def _elsewhere(self, uri: str) -> ArtifactStore | None:
        """The folder store for a ``file:`` URI of a SQLite tracker, else None."""
        if self._beside is None or not uri.startswith("file:"):
            return None
        if self._folder is None:
            self._folder = FolderArtifactStore(self._beside)
        return self._folder

    # -- writing ------------------------------------------------------------------------

    def put(self, key: str, data: bytes | BinaryIO) -> str:
        key = check_key(key)
        uri = OBJECT_PREFIX + key
        if self._has(key):
            return uri  # content-addressed: the same key holds the same bytes
        stream: BinaryIO = (
            io.BytesIO(data) if isinstance(data, (bytes, bytearray, memoryview)) else data
        )
        first = _read_full(stream, CHUNK_SIZE)
        if len(first) < CHUNK_SIZE:
            self._put_whole(key, first)
        else:
            self._put_chunked(key, first, stream)
        return uri

    def _head(self, key: str, blob_id: str, size: int, sha256: str, chunks: int) -> dict[str, Any]:
        return {
            "key": key,
            "blob_id": blob_id,
            "size": size,
            "sha256": sha256,
            "chunk_count": chunks,
            "created_at": fmt_time(utcnow()),
        }

    def _claim(self, conn: sa.Connection, head: dict[str, Any]) -> bool:
        """Insert the object's row; False when another writer's is already there."""
        b = s.blobs
        stmt = self._insert(b).on_conflict_do_nothing(index_elements=["key"]).returning(b.c.key)
        return conn.execute(stmt, head).first() is not None

    def _put_whole(self, key: str, data: bytes) -> None:
        blob_id = uuid.uuid4().hex
        sha = hashlib.sha256(data).hexdigest()
        head = self._head(key, blob_id, len(data), sha, 1 if data else 0)
        with self._write(f"storing {OBJECT_PREFIX}{key}") as conn:
            if self._claim(conn, head) and data:
                conn.execute(sa.insert(s.blob_chunks), {"blob_id": blob_id, "seq": 0, "data": data})

    def _put_chunked(self, key: str, first: bytes, stream: BinaryIO) -> None:
        c, u = s.blob_chunks, s.blob_uploads
        blob_id = uuid.uuid4().hex
        where = f"storing {OBJECT_PREFIX}{key}"
        with self._write(where) as conn:
            self._drop_stale_uploads(conn)
            conn.execute(
                sa.insert(u),
                {"blob_id": blob_id, "key": key, "started_at": fmt_time(utcnow())},
            )
        digest, size, seq, chunk = hashlib.sha256(), 0, 0, first
        try:
            while chunk:
                digest.update(chunk)
                size += len(chunk)
                with self._write(where) as conn:
                    conn.execute(sa.insert(c), {"blob_id": blob_id, "seq": seq, "data": chunk})
                seq += 1
                # Read between transactions: a slow source holds no lock.
                chunk = _read_full(stream, CHUNK_SIZE)
            head = self._head(key, blob_id, size, digest.hexdigest(), seq)
            with self._write(where) as conn:
                if not self._claim(conn, head):  # another writer stored it meanwhile
                    conn.execute(sa.delete(c).where(c.c.blob_id == blob_id))
                conn.execute(sa.delete(u).where(u.c.blob_id == blob_id))
        except BaseException:
            with suppress(Exception):  # the error being raised matters more
                self._discard(blob_id)
            raise

    def _discard(self, blob_id: str) -> None:
        c, u = s.blob_chunks, s.blob_uploads
        with self._write("removing an unfinished upload") as conn:
            conn.execute(sa.delete(c).where(c.c.blob_id == blob_id))
            conn.execute(sa.delete(u).where(u.c.blob_id == blob_id))

    def _drop_stale_uploads(self, conn: sa.Connection) -> None:
        c, u = s.blob_chunks, s.blob_uploads
        cutoff = fmt_time(utcnow() - STALE_UPLOAD)
        stale = conn.execute(sa.select(u.c.blob_id).where(u.c.started_at < cutoff)).scalars().all()
        if stale:
            conn.execute(sa.delete(c).where(c.c.blob_id.in_(stale)))
            conn.execute(sa.delete(u).where(u.c.blob_id.in_(stale)))

    def delete(self, uri: str) -> None:
        other = self._elsewhere(uri)
        if other is not None:
            other.delete(uri)
            return
        key = self._key(uri)
        b, c = s.blobs, s.blob_chunks
        with self._write(f"deleting {uri}") as conn:
            blob_id = conn.execute(sa.select(b.c.blob_id).where(b.c.key == key)).scalar()
            if blob_id is not None:
                conn.execute(sa.delete(b).where(b.c.key == key))
                conn.execute(sa.delete(c).where(c.c.blob_id == blob_id))

    # -- reading ------------------------------------------------------------------------

    def _has(self, key: str) -> bool:
        b = s.blobs
        with self._read(f"looking up {OBJECT_PREFIX}{key}") as conn:
            return conn.execute(sa.select(b.c.size).where(b.c.key == key)).first() is not None

    def exists(self, uri: str) -> bool:
        other = self._elsewhere(uri)
        return other.exists(uri) if other is not None else self._has(self._key(uri))

    def get(self, uri: str) -> bytes:
        other = self._elsewhere(uri)
        if other is not None:
            return other.get(uri)
        key = self._key(uri)
        b = s.blobs
        with self._read(f"reading {uri}") as conn:
            head = conn.execute(
                sa.select(b.c.blob_id, b.c.size, b.c.sha256, b.c.chunk_count).where(b.c.key == key)
            ).first()
            if head is None:
                raise ArtifactError(
                    f"{uri} is missing from the database store {self.uri}: was it "
                    f"deleted, or tracked into another artifact store?"
                )
            blob_id, size, sha256, count = head
            # Sized up front and filled in place: getvalue() then hands over the
            # buffer itself, so the object is held once, not once per copy.
            buffer = io.BytesIO()
            if size:
                buffer.seek(size - 1)
                buffer.write(b"\0")
                buffer.seek(0)
            digest, seen = hashlib.sha256(), 0
            with self._chunks(conn, blob_id) as rows:
                for seq, piece in rows:
                    if seq != seen:
                        break
                    buffer.write(piece)
                    digest.update(piece)
                    seen += 1
        if seen != count or buffer.tell() != size or digest.hexdigest() != sha256:
            raise IntegrityError(
                f"{uri} in {self.uri} does not match the size and sha256 recorded when it "
                f"was stored ({seen} of {count} chunks read): the database was changed "
                f"outside umlaut. Delete the object and track it again."
            )
        return buffer.getvalue()

    @contextmanager
    def _chunks(self, conn: sa.Connection, blob_id: str) -> Iterator[Iterator[Any]]:
        """(seq, bytes) of an object, one chunk in memory at a time, in the read
        transaction of ``conn`` (so a concurrent delete does not cut it short)."""
        raw = conn.connection.driver_connection
        assert raw is not None
        if self._dialect == "sqlite":
            cur = raw.cursor()  # sqlite3 steps the statement a row per fetch
            cur.execute(_CHUNKS.format("?"), (blob_id,))
        else:
            # A server-side cursor fetching one row per round trip, so the driver
            # never holds the whole result; binary, so a chunk arrives as its bytes
            # rather than as hex text twice their size.
            cur = raw.cursor(name=f"umlaut_blob_{uuid.uuid4().hex}", binary=True)
            cur.itersize = 1
            cur.execute(_CHUNKS.format("%s"), (blob_id,))
        try:
            yield iter(cur)
        finally:
            cur.close()  # also when the caller stops early

    def list(self, prefix: str = "") -> Iterator[StoredObject]:
        """Every object whose key starts with ``prefix``; uploads in progress have no
        ``umlaut_blobs`` row yet, so they are not listed."""
        check_prefix(prefix)
        b = s.blobs
        query = sa.select(b.c.key, b.c.size, b.c.created_at).order_by(b.c.key)
        if prefix:
            # substr, not LIKE: SQLite's LIKE ignores case, and '_' is a wildcard.
            query = query.where(sa.func.substr(b.c.key, 1, len(prefix)) == prefix)
        with self._read("listing objects") as conn:
            rows = conn.execute(query).all()  # heads only: small, and no cursor held
        for key, size, created in rows:
            yield StoredObject(key, OBJECT_PREFIX + key, size, parse_time(created))
