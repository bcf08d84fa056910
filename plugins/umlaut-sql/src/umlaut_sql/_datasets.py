"""``SqlDatasetStore``: dataset versions and lineage links in the tracker's database.

Like the experiment store it shares the tracker's engine, error mapping and write
transactions (SQLite's ``BEGIN IMMEDIATE``), so it costs no connection of its own.
The Parquet bytes are not kept here: the facade puts them in the artifact store,
which for a PostgreSQL tracker without ``artifact_uri`` (or a SQLite one asked to)
is the same database (:mod:`._blobs`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from umlaut_core.clock import utcnow
from umlaut_core.datasets.records import (
    ColumnProfile,
    DatasetDraft,
    DatasetInfo,
    DatasetLink,
    DatasetVersion,
)
from umlaut_core.exceptions import BackendError, ConfigurationError, DatasetNotFoundError
from umlaut_core.protocols import Capability

from . import _schema as s
from ._rows import dump, fmt_time, parse_time
from ._tracker import SqlTracker

__all__ = ["SqlDatasetStore", "decode_columns", "encode_columns", "open_dataset_store"]

_PROFILE_FIELDS = tuple(f.name for f in dataclasses.fields(ColumnProfile))
_VERSION_COLUMNS = (
    "name", "version", "digest", "row_count", "columns", "artifact_uri", "size_bytes",
    "sha256", "created_at", "created_by", "description", "tags", "target", "source",
)  # fmt: skip


def open_dataset_store(tracker: Any) -> SqlDatasetStore:
    """Factory for the registry: the dataset store of an open SQL tracker."""
    if not isinstance(tracker, SqlTracker):
        raise ConfigurationError(
            f"umlaut-sql keeps datasets next to its own tracker, not {tracker!r}"
        )
    return SqlDatasetStore(tracker)


def encode_columns(columns: Sequence[ColumnProfile]) -> str:
    """The profiles as a JSON list of objects, one per column, every field named."""
    rows = [{f: getattr(c, f) for f in _PROFILE_FIELDS} for c in columns]
    return json.dumps(rows, separators=(",", ":"), ensure_ascii=False)


def decode_columns(text: str) -> tuple[ColumnProfile, ...]:
    """Back to profiles: JSON lists become the tuples the record holds."""
    out = []
    for row in json.loads(text):
        # Fields a later release may add are left out rather than refused.
        values = {k: v for k, v in row.items() if k in _PROFILE_FIELDS}
        values["quantiles"] = tuple(values.get("quantiles") or ())
        values["top"] = tuple(tuple(pair) for pair in values.get("top") or ())
        if values.get("categories") is not None:
            values["categories"] = tuple(values["categories"])
        out.append(ColumnProfile(**values))
    return tuple(out)


def _version(row: Sequence[Any], *, created: bool = False) -> DatasetVersion:
    (name, number, digest, rows, columns, uri, size, sha, when, by, about, tags, target,
     source) = row  # fmt: skip
    return DatasetVersion(
        name=name,
        version=number,
        digest=digest,
        rows=rows,
        columns=decode_columns(columns),
        artifact_uri=uri,
        size_bytes=size,
        sha256=sha,
        created_at=parse_time(when),
        created_by=by,
        description=about,
        tags=json.loads(tags),
        target=target,
        source=source,
        created=created,
    )


class SqlDatasetStore:
    """The DatasetStore contract on the SQL tracker's database (SQLite, PostgreSQL)."""

    #: Dataset bytes go to the artifact store (which may be this database).
    capabilities: frozenset[Capability] = frozenset()

    def __init__(self, tracker: SqlTracker) -> None:
        self.uri = tracker.uri
        self._tracker = tracker

    def __repr__(self) -> str:
        return f"SqlDatasetStore({self.uri!r})"

    @staticmethod
    def _select() -> sa.Select[Any]:
        v = s.dataset_versions
        return sa.select(*(v.c[c] for c in _VERSION_COLUMNS))

    # -- versions -----------------------------------------------------------------------

    def find_dataset(self, name: str, digest: str) -> DatasetVersion | None:
        v = s.dataset_versions
        with self._tracker._read(f"looking up dataset {name!r} by digest") as conn:
            row = conn.execute(self._select().where(v.c.name == name, v.c.digest == digest)).first()
        return None if row is None else _version(row)

    def register_dataset(self, draft: DatasetDraft) -> DatasetVersion:
        d, v = s.datasets, s.dataset_versions
        t = self._tracker
        try:
            with t._write(f"registering a version of dataset {draft.name!r}") as conn:
                conn.execute(
                    t._insert(d).on_conflict_do_nothing(index_elements=["name"]),
                    {"name": draft.name, "latest_version": 0, "created_at": fmt_time(utcnow())},
                )
                # As for model versions: the row lock (PostgreSQL) or the IMMEDIATE
                # transaction (SQLite) serialises allocation per name, so numbers
                # have no gaps and no duplicates.
                latest = conn.execute(
                    sa.select(d.c.latest_version).where(d.c.name == draft.name).with_for_update()
                ).scalar_one()
                row = conn.execute(
                    self._select().where(v.c.name == draft.name, v.c.digest == draft.digest)
                ).first()
                if row is not None:
                    return _version(row)
                values = {
                    "name": draft.name,
                    "version": latest + 1,
                    "digest": draft.digest,
                    "row_count": draft.rows,
                    "columns": encode_columns(draft.columns),
                    "artifact_uri": draft.artifact_uri,
                    "size_bytes": draft.size_bytes,
                    "sha256": draft.sha256,
                    "created_at": fmt_time(draft.created_at),
                    "created_by": draft.created_by,
                    "description": draft.description,
                    "tags": dump(draft.tags),
                    "target": draft.target,
                    "source": draft.source,
                }
                conn.execute(sa.insert(v), values)
                conn.execute(
                    sa.update(d).where(d.c.name == draft.name).values(latest_version=latest + 1)
                )
        except BackendError as exc:
            # Backstop for the unique (name, digest): a writer that lost a race
            # returns the winner's version instead of failing.
            if isinstance(exc.__cause__, sa.exc.IntegrityError):
                existing = self.find_dataset(draft.name, draft.digest)
                if existing is not None:
                    return existing
            raise
        return _version([values[c] for c in _VERSION_COLUMNS], created=True)

    def get_dataset(self, name: str, version: int | None = None) -> DatasetVersion:
        d, v = s.datasets, s.dataset_versions
        query = self._select().where(v.c.name == name)
        if version is None:
            query = query.join(d, sa.and_(d.c.name == v.c.name, d.c.latest_version == v.c.version))
        else:
            query = query.where(v.c.version == version)
        with self._tracker._read(f"reading dataset {name!r}") as conn:
            row = conn.execute(query).first()
            if row is None:
                raise self._not_found(conn, name, version)
        return _version(row)

    def _not_found(self, conn: sa.Connection, name: str, version: int | None) -> Exception:
        d, v = s.datasets, s.dataset_versions
        numbers = (
            conn.execute(sa.select(v.c.version).where(v.c.name == name).order_by(v.c.version))
            .scalars()
            .all()
        )
        if numbers and version is not None:
            return DatasetNotFoundError.for_version(name, version, numbers)
        names = conn.execute(
            sa.select(d.c.name).where(d.c.latest_version > 0).order_by(d.c.name)
        ).scalars()
        return DatasetNotFoundError.for_name(name, list(names))

    def list_datasets(self) -> list[DatasetInfo]:
        d, v = s.datasets, s.dataset_versions
        query = (
            sa.select(d.c.name, d.c.latest_version, v.c.description)
            .join(v, sa.and_(v.c.name == d.c.name, v.c.version == d.c.latest_version))
            .order_by(d.c.name)
        )
        with self._tracker._read("listing datasets") as conn:
            rows = conn.execute(query).all()
        return [DatasetInfo(name, latest, about) for name, latest, about in rows]

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        v = s.dataset_versions
        with self._tracker._read(f"listing versions of dataset {name!r}") as conn:
            rows = conn.execute(self._select().where(v.c.name == name).order_by(v.c.version)).all()
            if not rows:
                raise self._not_found(conn, name, None)
        return [_version(r) for r in rows]

    # -- lineage ------------------------------------------------------------------------

    def add_links(self, links: Sequence[DatasetLink]) -> int:
        if not links:
            return 0
        v, link_table = s.dataset_versions, s.dataset_links
        t = self._tracker
        wanted = sorted({(x.dataset_name, x.dataset_version) for x in links})
        names = sorted({name for name, _ in wanted})
        now = fmt_time(utcnow())
        added = 0
        with t._write(f"linking {len(links)} dataset uses") as conn:
            # All or nothing: every target is checked before the first insert, in
            # the writing transaction (dataset versions are never deleted).
            held = {
                (name, number)
                for name, number in conn.execute(
                    sa.select(v.c.name, v.c.version).where(v.c.name.in_(names))
                )
            }
            for name, number in wanted:
                if (name, number) not in held:
                    raise self._not_found(conn, name, number)
            # RETURNING says whether the row went in: the rowcount of this INSERT is
            # -1 on PostgreSQL.
            insert = t._insert(link_table).on_conflict_do_nothing().returning(link_table.c.id)
            for x in links:
                result = conn.execute(
                    insert,
                    {
                        "dataset_name": x.dataset_name,
                        "dataset_version": x.dataset_version,
                        "kind": x.kind,
                        "context": x.context,
                        "model_name": x.model_name,
                        "model_version": x.model_version,
                        "run_id": x.run_id,
                        "created_at": fmt_time(x.created_at) if x.created_at else now,
                    },
                )
                added += result.first() is not None
        return added

    def links(
        self,
        *,
        dataset: tuple[str, int | None] | None = None,
        model: tuple[str, int | None] | None = None,
        run_id: str | None = None,
    ) -> list[DatasetLink]:
        k = s.dataset_links
        query = sa.select(
            k.c.dataset_name, k.c.dataset_version, k.c.kind, k.c.context, k.c.model_name,
            k.c.model_version, k.c.run_id, k.c.created_at,
        ).order_by(k.c.id)  # fmt: skip
        if dataset is not None:
            query = query.where(k.c.dataset_name == dataset[0])
            if dataset[1] is not None:
                query = query.where(k.c.dataset_version == dataset[1])
        if model is not None:
            query = query.where(k.c.model_name == model[0])
            if model[1] is not None:
                query = query.where(k.c.model_version == model[1])
        if run_id is not None:
            query = query.where(k.c.run_id == run_id)
        with self._tracker._read("reading dataset lineage") as conn:
            rows = conn.execute(query).all()
        return [
            DatasetLink(name, number, kind, context, model_name, model_version, rid,
                        parse_time(when))
            for name, number, kind, context, model_name, model_version, rid, when in rows
        ]  # fmt: skip

    def close(self) -> None:
        """Nothing to release: the connections are the tracker's."""
