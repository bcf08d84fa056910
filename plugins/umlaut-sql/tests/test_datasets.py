"""Datasets and the database artifact store on SQL (schema 5): the migration, writers
in two processes, chunked objects streamed in bounded memory, PostgreSQL without an
artifact_uri, and one SQLite file that carries a whole registry.

What every dataset store and artifact store does is checked by the core's
conformance classes; they run here on the database store too.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import hashlib
import io
import json
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from umlaut_sql import SqlTracker, _schema
from umlaut_sql._blobs import (
    CHUNK_SIZE,
    SqlBlobStore,
    _known,
    open_blob_store,
    open_tracker,
    store_uri,
)
from umlaut_sql._datasets import SqlDatasetStore, decode_columns, encode_columns
from umlaut_sql.plugin import SCHEMES

from umlaut_core import Umlaut, get_plugin_manager
from umlaut_core.datasets.records import ColumnProfile, DatasetLink
from umlaut_core.exceptions import ArtifactError, ConfigurationError, IntegrityError
from umlaut_core.garbage import collect_garbage
from umlaut_core.registry import BackendRegistry
from umlaut_core.stores.folder import FolderArtifactStore
from umlaut_core.testing import ArtifactStoreSuite
from umlaut_core.testing.conformance.artifacts import BundleIntegrityTests
from umlaut_core.testing.conformance.datasets import DatasetTestBase, LineageTests
from umlaut_core.testing.models import Threshold

NEW_TABLES = sorted(t.name for t in (*_schema.DATASET_TABLES, *_schema.BLOB_TABLES))
DOCS = Path(__file__).parents[3] / "docs"
draft = DatasetTestBase.draft


def documented(path: Path, section: str) -> dict[str, str]:
    """The titled SQL blocks of a Markdown file's ``section`` (up to the next ``## ``
    heading), by title: the tests run what the documentation shows."""
    text = path.read_text(encoding="utf-8").split(section, 1)[1].split("\n## ", 1)[0]
    blocks = {}
    for block in text.split('```sql title="')[1:]:
        title, rest = block.split('"\n', 1)
        blocks[title] = rest.split("```", 1)[0]
    return blocks


def sql(url: str, text: str, **params: Any) -> list[tuple[Any, ...]]:
    """Plain SQL, no umlaut code on the way: what a user's query sees or changes."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(text), params)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def schema_of(url: str) -> list[tuple[Any, ...]]:
    """The DDL of the schema-5 tables and their indexes, as the database reports it."""
    names = "', '".join(NEW_TABLES)
    if url.startswith("sqlite"):
        found = sql(url, f"SELECT name, sql FROM sqlite_master WHERE tbl_name IN ('{names}') "
                          "AND sql IS NOT NULL ORDER BY name")  # fmt: skip
        return [(n, " ".join(sql.split())) for n, sql in found]
    return sql(
        url,
        "SELECT table_name, column_name, data_type, coalesce(collation_name, ''), is_nullable "
        f"FROM information_schema.columns WHERE table_name IN ('{names}') ORDER BY 1, 2",
    ) + sql(url, f"SELECT indexdef FROM pg_indexes WHERE tablename IN ('{names}') ORDER BY 1")


@pytest.fixture
def blob_store(any_url: str) -> Iterator[SqlBlobStore]:
    tracker = open_tracker(any_url, store_blobs=True)
    yield open_blob_store(store_uri(tracker))
    tracker.close()


@pytest.fixture
def frame() -> Any:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    return pd.DataFrame({"x": [0.5, 1.5, 2.5, 3.5], "label": pd.Categorical(list("abab"))})


class TestSqliteBlobStore(ArtifactStoreSuite):
    """The artifact-store conformance suite on a SQLite file's database store."""

    @pytest.fixture
    def artifact_store(self, tmp_path: Path) -> Iterator[SqlBlobStore]:
        tracker = open_tracker(f"sqlite:///{tmp_path / 'umlaut.db'}", store_blobs=True)
        yield open_blob_store(tracker.default_artifact_uri or "")
        tracker.close()


@pytest.mark.postgres
class TestPostgresBlobStore(ArtifactStoreSuite):
    """The artifact-store conformance suite on PostgreSQL's database store."""

    @pytest.fixture
    def artifact_store(self, postgres_database: str) -> Iterator[SqlBlobStore]:
        tracker = open_tracker(postgres_database)  # a server keeps objects by default
        yield open_blob_store(tracker.default_artifact_uri or "")
        tracker.close()


class TestSuiteOnDatabaseObjects(BundleIntegrityTests, LineageTests):
    """Bundle integrity and lineage with bundles and Parquet files in the database."""

    @pytest.fixture
    def tracker(self, any_url: str) -> Iterator[SqlTracker]:
        tracker = open_tracker(any_url, store_blobs=True)
        yield tracker
        tracker.close()

    @pytest.fixture
    def artifact_store(self, tracker: SqlTracker) -> SqlBlobStore:
        return open_blob_store(store_uri(tracker))


class TestBlobStore:
    """Chunked objects: all or nothing, stored once, checked when read."""

    def test_large_object_is_chunked_and_deleted_whole(
        self, blob_store: SqlBlobStore, any_url: str
    ) -> None:
        data = bytes(range(256)) * (CHUNK_SIZE * 9 // 4 // 256) + b"tail"
        uri = blob_store.put("datasets/ab/big.parquet", io.BytesIO(data))
        assert uri == "sqldb:datasets/ab/big.parquet"
        assert blob_store.get(uri) == data
        assert sql(any_url, "SELECT count(*) FROM umlaut_blob_chunks") == [(3,)]
        assert sql(any_url, "SELECT count(*) FROM umlaut_blob_uploads") == [(0,)]
        (listed,) = blob_store.list("datasets/")
        assert (listed.key, listed.size) == ("datasets/ab/big.parquet", len(data))
        blob_store.delete(uri)
        assert sql(any_url, "SELECT count(*) FROM umlaut_blob_chunks") == [(0,)]
        assert blob_store.put("empty/0", b"") == "sqldb:empty/0"
        assert blob_store.get("sqldb:empty/0") == b""

    def test_concurrent_puts_of_one_key_store_it_once(
        self, blob_store: SqlBlobStore, any_url: str
    ) -> None:
        data = b"\x07" * (CHUNK_SIZE + 10)
        errors: list[BaseException] = []

        def put() -> None:
            try:
                blob_store.put("bundles/cd/same.zip", io.BytesIO(data))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=put) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert blob_store.get("sqldb:bundles/cd/same.zip") == data
        assert sql(any_url, "SELECT count(*) FROM umlaut_blob_chunks") == [(2,)]

    def test_failed_and_stale_uploads_leave_nothing(
        self, blob_store: SqlBlobStore, any_url: str
    ) -> None:
        class Broken(io.RawIOBase):
            sent = 0

            def readable(self) -> bool:
                return True

            def readinto(self, buffer: Any) -> int:
                if self.sent > 2 * CHUNK_SIZE:
                    raise OSError("disk gone")
                self.sent += len(buffer)
                buffer[:] = b"\1" * len(buffer)
                return len(buffer)

        with pytest.raises(OSError, match="disk gone"):
            blob_store.put("datasets/ee/cut.parquet", io.BufferedReader(Broken()))
        assert not blob_store.exists("sqldb:datasets/ee/cut.parquet")
        assert sql(any_url, "SELECT count(*) FROM umlaut_blob_chunks") == [(0,)]
        # What a killed process left two days ago goes with the next large upload.
        sql(any_url, "INSERT INTO umlaut_blob_uploads VALUES ('dead', 'k/x', '2020-01-01')")
        sql(any_url, "INSERT INTO umlaut_blob_chunks VALUES ('dead', 0, :d)", d=b"\0")
        blob_store.put("datasets/ef/next.parquet", b"\2" * (CHUNK_SIZE + 1))
        assert sql(any_url, "SELECT blob_id FROM umlaut_blob_uploads") == []
        assert sql(any_url, "SELECT count(*) FROM umlaut_blob_chunks") == [(2,)]

    def test_changed_bytes_are_an_integrity_error(
        self, blob_store: SqlBlobStore, any_url: str
    ) -> None:
        uri = blob_store.put("bundles/ff/x.zip", b"model bytes")
        sql(any_url, "UPDATE umlaut_blob_chunks SET seq = 1")
        with pytest.raises(IntegrityError, match="0 of 1 chunks"):
            blob_store.get(uri)
        with pytest.raises(ArtifactError, match="is not an object"):
            blob_store.get("s3://bucket/bundles/ff/x.zip")

    def test_prefixes_match_case_and_underscores_exactly(self, blob_store: SqlBlobStore) -> None:
        for key in ("bundles/a", "Bundles/b", "bundlesXc", "bundles_/d"):
            blob_store.put(key, b"1")
        assert [o.key for o in blob_store.list("bundles/")] == ["bundles/a"]
        assert [o.key for o in blob_store.list("bundles_")] == ["bundles_/d"]

    def test_uris_and_how_the_store_finds_its_database(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'u.db'}"
        tracker = open_tracker(url, store_blobs=True)
        store = open_blob_store(f"sqldb+{url}")
        assert store.uri == tracker.default_artifact_uri == f"sqldb+{url}"
        uri = store.put("bundles/aa/a.zip", b"a")
        tracker.close()  # the store borrowed the engine, which outlives close()
        assert store.get(uri) == b"a"
        del tracker, store
        gc.collect()
        assert _known(url) is None  # no tracker in this process: the store opens the file
        assert open_blob_store(f"sqldb+{url}").get(uri) == b"a"
        with pytest.raises(ConfigurationError, match="names no database"):
            open_blob_store("sqldb:")
        with pytest.raises(ConfigurationError, match="unknown artifact option"):
            open_blob_store(f"sqldb+{url}", region="x")
        with pytest.raises(ConfigurationError, match="store_blobs must be true or false"):
            open_tracker(url, store_blobs="yes")  # type: ignore[arg-type]

    @pytest.mark.postgres
    def test_the_password_is_never_in_a_uri(self, postgres_database: str) -> None:
        secret = postgres_database.replace("postgres@", "postgres:hunter2@")  # trust auth
        tracker = open_tracker(secret)
        store = open_blob_store(tracker.default_artifact_uri or "")
        assert "hunter2" not in store.uri + repr(store) and ":***@" in store.uri
        assert store.get(store.put("bundles/aa/p.zip", b"p")) == b"p"
        tracker.close()
        shown = store.uri
        del tracker, store
        gc.collect()
        with pytest.raises(ConfigurationError, match="open the tracker first"):
            open_blob_store(shown)


class TestColumnsJson:
    """Profiles come back as they went in: tuples, None, JSON values."""

    def test_round_trip_and_unknown_fields(self) -> None:
        column = ColumnProfile(
            "ünï", "boolean", "bool", "bool", True, 2, 2, True, False, True, 0.5, None,
            (), ((True, 3), (False, 1)), "feature", None,
        )  # fmt: skip
        assert decode_columns(encode_columns([column])) == (column,)
        later = json.loads(encode_columns([column]))
        later[0]["added_in_a_later_release"] = 1
        assert decode_columns(json.dumps(later)) == (column,)


class TestMigration:
    """A schema-4 database gains the dataset and object tables and keeps its data."""

    def test_upgrade_from_schema_4(
        self, any_url: str, tmp_path: Path, request: pytest.FixtureRequest, frame: Any
    ) -> None:
        folder = FolderArtifactStore(str(tmp_path / "artifacts"))
        with Umlaut(any_url, artifact_store=folder, delivery="sync") as um:
            with um.start_run("exp") as run:
                run.log_param("lr", 0.1)
                um.track_model(Threshold(1), "Old", run=run)
            um.run_model("Old", {"x": 2}, reference_id="r-1")
        for table in reversed([*_schema.DATASET_TABLES, *_schema.BLOB_TABLES]):
            sql(any_url, f"DROP TABLE {table.name}")
        sql(any_url, "UPDATE umlaut_schema SET version = 4")
        with Umlaut(any_url, artifact_store=folder, delivery="sync") as um:
            assert sql(any_url, "SELECT version FROM umlaut_schema ORDER BY 1") == [(4,), (5,)]
            assert um.lineage(reference_id="r-1").training_run.params == {"lr": 0.1}  # type: ignore[union-attr]
            ds = um.track_dataset(frame, "iris")
            um.track_model(Threshold(2), "Old", datasets={"train": ds})
            assert [x.model_version for x in um.dataset_links(dataset=ds)] == [2]
        fresh = (
            f"sqlite:///{tmp_path / 'fresh.db'}"
            if any_url.startswith("sqlite")
            else str(request.getfixturevalue("postgres_server").create_database())
        )
        SqlTracker(fresh).close()
        assert schema_of(any_url) == schema_of(fresh)
        assert any("COALESCE" in str(r).upper() for r in schema_of(fresh))


_WORKER = textwrap.dedent(
    """
    import json, os, sys, time
    from umlaut_sql._blobs import open_tracker
    from umlaut_sql._datasets import SqlDatasetStore
    from umlaut_core.testing.conformance.datasets import DatasetTestBase
    url, name, start, count, go = json.loads(sys.argv[1])
    tracker = open_tracker(url)
    store = SqlDatasetStore(tracker)
    while not os.path.exists(go):
        time.sleep(0.005)
    draft = DatasetTestBase.draft
    made = [store.register_dataset(draft(name, n)) for n in range(start, start + count)]
    same = store.register_dataset(draft(name, -1))
    tracker.close()
    print(json.dumps([[d.version, d.created] for d in [*made, same]]))
    """
)


@pytest.mark.slow
class TestTwoProcesses:
    """Processes registering versions of one dataset get consecutive numbers."""

    def test_versions_are_gap_free_and_deduplicated(self, any_url: str, tmp_path: Path) -> None:
        open_tracker(any_url).close()  # the schema exists before the race
        go = tmp_path / "go"
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _WORKER,
                 json.dumps([any_url, "raced", w * 100, 8, str(go)])],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for w in range(2)
        ]  # fmt: skip
        go.touch()
        outs = [p.communicate(timeout=300) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
        results = [json.loads(out) for out, _ in outs]
        tracker = SqlTracker(any_url)
        try:
            numbers = [d.version for d in SqlDatasetStore(tracker).list_dataset_versions("raced")]
        finally:
            tracker.close()
        assert numbers == list(range(1, 2 * 8 + 2))
        shared = [r[-1] for r in results]
        assert len({v for v, _ in shared}) == 1 and sum(c for _, c in shared) == 1
        assert sorted(v for r in results for v, c in r if c) == numbers


_MEMORY = textwrap.dedent(
    """
    import json, sys
    from umlaut_sql._blobs import open_blob_store, open_tracker, store_uri

    def rss(field):
        for line in open("/proc/self/status"):
            if line.startswith(field):
                return int(line.split()[1]) * 1024

    url, path, action = sys.argv[1:4]
    tracker = open_tracker(url, store_blobs=True)
    store = open_blob_store(store_uri(tracker))
    store.get(store.put("warm/up", b"w" * 100_000))  # imports and pools, off the books
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # the peak (VmHWM) starts again from here
    except OSError:
        pass  # then the peak may predate the call: an upper bound still
    before = rss("VmRSS:")
    if action == "put":
        with open(path, "rb") as fh:
            store.put("datasets/aa/big.parquet", fh)
    else:
        data = store.get("sqldb:datasets/aa/big.parquet")
    print(json.dumps(rss("VmHWM:") - before))
    """
)


@pytest.mark.slow
class TestBoundedMemory:
    """A 50 MB object is streamed in: its peak memory is a few chunks, not a copy."""

    SIZE = 50_000_000

    @pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
    def test_put_and_get_of_50_mb(self, any_url: str, tmp_path: Path) -> None:
        path = tmp_path / "big.bin"
        with path.open("wb") as fh:
            for _ in range(self.SIZE // 1_000_000):
                fh.write(hashlib.sha256(fh.tell().to_bytes(8, "big")).digest() * 31_250)
        peaks: dict[str, int] = {}
        for action in ("put", "get"):
            done = subprocess.run(
                [sys.executable, "-c", _MEMORY, any_url, str(path), action],
                capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            peaks[action] = json.loads(done.stdout)
        # put holds a chunk or two and the drivers' copies of one (measured about
        # 21 MB on SQLite, 17 MB on PostgreSQL, whatever the size); get the object
        # once and a chunk or two (62 MB and 70 MB).
        print(f"peak RSS above the start, bytes: {peaks}")
        assert peaks["put"] < 0.7 * self.SIZE, peaks
        assert peaks["get"] < 1.5 * self.SIZE, peaks
        tracker = SqlTracker(any_url)
        try:
            got = SqlBlobStore(tracker).get("sqldb:datasets/aa/big.parquet")
        finally:
            tracker.close()
        assert hashlib.sha256(got).digest() == hashlib.sha256(path.read_bytes()).digest()


class TestDefaults:
    """Where bundles and data go when no artifact_uri is given."""

    @pytest.mark.postgres
    def test_postgres_keeps_everything_in_the_database(
        self, postgres_database: str, frame: Any
    ) -> None:
        with Umlaut(postgres_database, delivery="sync") as um:
            assert isinstance(um.artifact_store, SqlBlobStore)
            ds = um.track_dataset(frame, "iris", target="label")
            with um.start_run("exp") as run:
                run.log_artifact(b"notes", "notes.txt")
                um.track_model(Threshold(1), "Pg", run=run, datasets={"train": ds})
            assert um.run_model("Pg", {"x": 2}, reference_id="r") == {"above": True, "limit": 1}
        keys = [r[0].split("/")[0] for r in sql(postgres_database, "SELECT key FROM umlaut_blobs")]
        assert sorted(keys) == ["bundles", "datasets", "training"]
        with Umlaut(postgres_database, delivery="sync") as um:  # empty caches
            assert um.load_model("Pg").run({"x": 0}) == {"above": False, "limit": 1}
            assert um.load_dataset("iris").equals(frame)
            assert um.load_artifact(run.run_id, "notes.txt") == b"notes"
            assert [x.dataset_name for x in um.lineage(reference_id="r").datasets] == ["iris"]
        with pytest.raises(ConfigurationError, match="artifact_uri"):
            Umlaut(postgres_database, tracker_options={"store_blobs": False})

    def test_sqlite_keeps_the_folder_beside_the_file(self, tmp_path: Path) -> None:
        with Umlaut(f"sqlite:///{tmp_path / 'u.db'}", delivery="sync") as um:
            assert isinstance(um.artifact_store, FolderArtifactStore)
            um.track_model(Threshold(1), "Plain")
        assert list((tmp_path / "artifacts" / "bundles").rglob("*.zip"))
        assert sql(f"sqlite:///{tmp_path / 'u.db'}", "SELECT count(*) FROM umlaut_blobs") == [(0,)]

    def test_one_sqlite_file_carries_the_whole_registry(self, tmp_path: Path, frame: Any) -> None:
        made = tmp_path / "made" / "team.db"
        with Umlaut(
            f"sqlite:///{made}", delivery="sync", tracker_options={"store_blobs": True}
        ) as um:
            ds = um.track_dataset(frame, "iris", target="label")
            with um.start_run("exp") as run:
                run.log_metric("acc", 0.9)
                run.log_artifact(b"confusion", "confusion.txt")
                um.track_model(Threshold(1), "Portable", run=run, datasets={"train": ds})
            um.run_model("Portable", {"x": 2}, reference_id="order-1")
        assert sorted(p.name for p in made.parent.iterdir()) == ["team.db"]  # no -wal left
        copy = tmp_path / "elsewhere" / "copy.db"
        copy.parent.mkdir()
        shutil.copyfile(made, copy)
        shutil.rmtree(made.parent)
        # Opened with the plain URL: a file that keeps objects goes on keeping them.
        with Umlaut(f"sqlite:///{copy}", delivery="sync") as um:
            assert isinstance(um.artifact_store, SqlBlobStore)
            assert um.run_model("Portable", {"x": 0}) == {"above": False, "limit": 1}
            assert um.load_dataset("iris").equals(frame)
            assert um.load_artifact(run.run_id, "confusion.txt") == b"confusion"
            lineage = um.lineage(reference_id="order-1")
            assert lineage.training_run is not None
            assert lineage.training_run.metrics["acc"].last == 0.9
            assert [(x.dataset_name, x.context) for x in lineage.datasets] == [("iris", "train")]
            assert len(um.history("Portable")) == 2
        assert sorted(p.name for p in copy.parent.iterdir()) == ["copy.db"]

    def test_versions_from_before_still_load_from_the_folder(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'u.db'}"
        with Umlaut(url, delivery="sync") as um:
            um.track_model(Threshold(1), "Mixed")
        with Umlaut(url, delivery="sync", tracker_options={"store_blobs": True}) as um:
            um.track_model(Threshold(2), "Mixed")
            assert um.load_model("Mixed", version=1).run({"x": 2})["limit"] == 1
            assert um.load_model("Mixed", version=2).run({"x": 2})["limit"] == 2
            uris = [v.artifact_uri for v in um.tracker.list_versions("Mixed")]
            assert [u.split(":")[0] for u in uris] == ["file", "sqldb"]


class TestRegistration:
    """Every tracker scheme has the dataset store; sqldb names the object store."""

    def test_schemes(self, any_tracker: SqlTracker) -> None:
        registry = BackendRegistry.from_plugins(get_plugin_manager())
        datasets, trackers = registry.dataset_schemes, registry.tracker_schemes
        assert {s: datasets.get(s) for s in SCHEMES} == {s: trackers[s] for s in SCHEMES}
        assert "sqldb" in registry.artifact_schemes
        store = registry.open_dataset_store(any_tracker)
        assert isinstance(store, SqlDatasetStore) and store.uri == any_tracker.uri
        store.register_dataset(draft("d"))
        link = DatasetLink("d", 1, "training_run", "training", run_id="r")
        assert store.add_links([link, dataclasses.replace(link)]) == 1
        store.close()
        any_tracker.list_models()  # closing the store leaves the tracker open


class TestDocumented:
    """What the documentation shows runs, and says what the facade says."""

    def test_plain_sql_queries(self, any_url: str, frame: Any) -> None:
        queries = documented(DOCS / "backends/sql.md", "## Datasets and lineage (schema 5)")
        assert len(queries) == 3
        with Umlaut(any_url, delivery="sync", tracker_options={"store_blobs": True}) as um:
            ds = um.track_dataset(frame, "iris", target="label")
            um.track_model(Threshold(1), "Iris", datasets={"train": ds, "eval": ds})
            um.run_model("Iris", {"x": 2}, reference_id="order-1042")
            (record,) = um.history("Iris")
        trained = sql(any_url, queries["The model versions trained on a dataset"])
        assert sorted(trained) == [("Iris", 1, "eval", 1, 4), ("Iris", 1, "train", 1, 4)]
        (back,) = (q for title, q in queries.items() if title.startswith("From a reference"))
        answered = sql(any_url, back)
        assert answered == [(record.id, "Iris", 1, "iris", 1, c) for c in ("train", "eval")]
        stored = sql(any_url, queries["Stored bytes by kind of object"])
        assert [(kind, n) for kind, n, _ in stored] == [("bundles", 1), ("datasets", 1)]
        assert int(stored[1][2]) == ds.size_bytes

    def test_portable_profile(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        text = (DOCS / "configuration.md").read_text(encoding="utf-8")
        profile = text.split("**Where bundles", 1)[1].split("```toml\n", 1)[1].split("```")[0]
        (tmp_path / "pyproject.toml").write_text(profile, encoding="utf-8")
        monkeypatch.chdir(tmp_path)
        for var in ("UMLAUT_HOME", "UMLAUT_TRACKING_URI", "UMLAUT_ARTIFACT_URI"):
            monkeypatch.delenv(var, raising=False)
        with Umlaut(profile="portable", delivery="sync") as um:
            assert isinstance(um.artifact_store, SqlBlobStore)
            um.track_model(Threshold(1), "Portable")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["pyproject.toml", "team.db"]

    def test_gc_removes_unreferenced_bundles(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'u.db'}"
        with Umlaut(url, delivery="sync", tracker_options={"store_blobs": True}) as um:
            um.track_model(Threshold(1), "Kept")
            assert um.artifact_store is not None
            orphan = um.artifact_store.put(f"bundles/00/{'0' * 64}.zip", b"orphan")
            (gone,) = collect_garbage(um, older_than=dt.timedelta(0), delete=True)
            assert (gone.uri, gone.action) == (orphan, "deleted")
            assert not um.artifact_store.exists(orphan)
            assert um.load_model("Kept").run({"x": 2})["above"] is True
