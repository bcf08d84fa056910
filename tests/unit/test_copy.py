"""``umlaut copy`` and ``umlaut gc``: the engine, the commands, resume and clean-up."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from umlaut_core import Capability, RunQuery, Umlaut, get_plugin_manager, hookimpl
from umlaut_core.cli import make_cli
from umlaut_core.exceptions import ConfigurationError, IntegrityError, ModelNotFoundError
from umlaut_core.garbage import collect_garbage, parse_age
from umlaut_core.migration import copy_registry, verify_copy
from umlaut_core.stores.folder import FolderArtifactStore
from umlaut_core.stores.memory import MemoryArtifactStore, MemoryTracker
from umlaut_core.testing.models import ExampleModel, Threshold

pytest.importorskip("umlaut_sql", reason="the SQLite pairs need umlaut-sql")

PASSWORD = "pa55-Secret-w0rd"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in list(os.environ):
        if var.startswith("UMLAUT_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("UMLAUT_HOME", str(tmp_path / ".umlaut"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def sqlite(where: Path, name: str) -> str:
    return f"sqlite:///{where / name / 'umlaut.db'}"


def seed(umlaut: Umlaut, records: int = 1200) -> None:
    """Two models: A (3 versions, Staging and Production moved about, calls of every
    kind) and B (one version, a few calls)."""
    umlaut.track_model(Threshold(1), "A", stage="Staging", tags={"team": "risk"})
    umlaut.track_model(Threshold(2), "A", stage="Production", reason="first")
    umlaut.track_model(Threshold(3), "A", stage="Staging", params={"depth": 3})
    umlaut.promote("A", 3, "Production", reason="AUC 0.91")
    umlaut.promote("A", 2, "Production", reason="rollback")
    umlaut.track_model(ExampleModel(), "B", stage="Production")
    umlaut.run_batch("A", [{"x": i} for i in range(records)], stage="Production")
    umlaut.run_batch("A", [{"x": i} for i in range(5)], version=1, reference_ids=["r"] * 5)
    umlaut.run_batch("B", [{"revenue": i} for i in range(40)])


def open_sqlite(url: str) -> Umlaut:
    return Umlaut(url, delivery="sync")


@pytest.fixture
def src(workdir: Path) -> Iterator[Umlaut]:
    umlaut = open_sqlite(sqlite(workdir, "src"))
    seed(umlaut)
    yield umlaut
    umlaut.close()


@pytest.fixture
def dst(workdir: Path) -> Iterator[Umlaut]:
    umlaut = open_sqlite(sqlite(workdir, "dst"))
    yield umlaut
    umlaut.close()


def everything(umlaut: Umlaut) -> dict[str, Any]:
    """What a registry holds, in a form two registries can be compared by."""
    t = umlaut.tracker
    out: dict[str, Any] = {}
    for info in t.list_models():
        out[info.name] = {
            "aliases": dict(info.aliases),
            "versions": [
                (mv.version, mv.digest, mv.bundle_sha256, mv.created_at, mv.created_by,
                 dict(mv.tags), dict(mv.params))
                for mv in t.list_versions(info.name)
            ],
            "ledger": t.stage_history(info.name),
        }  # fmt: skip
    out["records"] = sorted(t.query_runs(RunQuery(limit=100_000)), key=lambda r: r.id)
    return out


class Proxy:
    """A tracker that behaves like another, except for what a test changes."""

    def __init__(self, inner: Any, **overrides: Any) -> None:
        self._inner = inner
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class TestCopyEngine:
    """copy_registry copies everything as it was and verify_copy agrees."""

    def test_memory_to_memory_keeps_everything(self) -> None:
        a = Umlaut(tracker=MemoryTracker(), artifact_store=MemoryArtifactStore(), delivery="sync")
        b = Umlaut(tracker=MemoryTracker(), artifact_store=MemoryArtifactStore(), delivery="sync")
        seed(a, records=300)
        report = copy_registry(a, b, chunk_size=64)
        assert (report.records, report.records_added, report.mappings) == (345, 345, {})
        assert [m.versions_copied for m in report.models] == [3, 1]
        assert everything(a) == everything(b)
        assert b.run_model("A", {"x": 5}, stage="Production") == {"above": True, "limit": 2}
        assert verify_copy(a, b).ok

    def test_sqlite_to_sqlite_then_again_copies_nothing(self, src: Umlaut, dst: Umlaut) -> None:
        first = copy_registry(src, dst, chunk_size=500)
        assert (first.records_added, sum(m.ledger_added for m in first.models)) == (1245, 6)
        again = copy_registry(src, dst, chunk_size=500)
        assert (again.records, again.records_added) == (1245, 0)
        assert [(m.versions_copied, m.ledger_added) for m in again.models] == [(0, 0), (0, 0)]
        assert everything(src) == everything(dst)
        # The bundle is the same file, stored under the same content key.
        mv = dst.get_version("A", version=3)
        assert mv.artifact_uri.startswith(dst.artifact_store.uri)  # type: ignore[union-attr]
        assert mv.artifact_uri.endswith(f"{mv.bundle_sha256}.zip")

    def test_a_source_without_scan_runs_is_paged_newest_first(
        self, src: Umlaut, dst: Umlaut, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        caps = src.tracker.capabilities - {Capability.SCAN_RUNS, Capability.IMPORT}
        plain = Umlaut(tracker=Proxy(src.tracker, capabilities=caps),  # type: ignore[arg-type]
                       artifact_store=src.artifact_store, delivery="sync")  # fmt: skip
        monkeypatch.setattr("umlaut_core.datasets.trail._PAGE", 100)
        report = copy_registry(plain, dst)
        assert report.records_added == 1245
        assert everything(src) == everything(dst)
        assert verify_copy(plain, dst).ok

    def test_a_destination_without_import_is_refused_before_writing(self, src: Umlaut) -> None:
        caps = frozenset({Capability.STORES_BUNDLES})
        target = MemoryTracker()
        blind = Umlaut(tracker=Proxy(target, capabilities=caps),  # type: ignore[arg-type]
                       delivery="sync")  # fmt: skip
        with pytest.raises(ConfigurationError, match="can still be a copy's source"):
            copy_registry(src, blind)
        assert target.list_models() == []
        # …but it can be a source.
        back = Umlaut(tracker=MemoryTracker(), delivery="sync")
        copy_registry(src, back)
        caps_src = Umlaut(tracker=Proxy(back.tracker, capabilities=caps),  # type: ignore[arg-type]
                          delivery="sync")  # fmt: skip
        other = Umlaut(tracker=MemoryTracker(), delivery="sync")
        assert copy_registry(caps_src, other).records_added == 1245

    def test_unknown_model_is_refused(self, src: Umlaut, dst: Umlaut) -> None:
        with pytest.raises(ModelNotFoundError):
            copy_registry(src, dst, models=["Nope"])

    def test_a_changed_bundle_is_not_copied(self, src: Umlaut, dst: Umlaut) -> None:
        mv = src.get_version("A", version=2)
        path = Path(mv.artifact_uri.removeprefix("file://"))
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(IntegrityError, match="'A' version 2"):
            copy_registry(src, dst)
        assert [v.version for v in dst.list_versions("A")] == [1]


class TestFiltersAndMapping:
    """--model and --since narrow the copy; a non-empty destination gets a mapping."""

    def test_model_filter(self, src: Umlaut, dst: Umlaut) -> None:
        report = copy_registry(src, dst, models=["B"])
        assert [m.name for m in report.models] == ["B"]
        assert [m.name for m in dst.list_models()] == ["B"]
        assert report.records_added == 40
        assert dst.history(limit=1000) and {r.model_name for r in dst.history(limit=1000)} == {"B"}
        assert verify_copy(src, dst, models=["B"]).ok

    def test_since_filters_audit_records_only(self, src: Umlaut, dst: Umlaut) -> None:
        records = sorted(src.history(limit=5000), key=lambda r: r.id)
        cut = records[1000].started_at
        expected = sum(r.started_at >= cut for r in records)
        report = copy_registry(src, dst, since=cut)
        assert report.records_added == expected < 1245
        assert len(dst.list_versions("A")) == 3  # versions and ledger whole
        assert len(dst.stage_history("A")) == 5
        assert verify_copy(src, dst, since=cut).ok
        # Without the filter the verification sees what was left out.
        assert not verify_copy(src, dst).ok

    def test_non_empty_destination_gets_a_mapping(self, src: Umlaut, dst: Umlaut) -> None:
        dst.track_model(Threshold(99), "A", stage="Shadow")  # dst's own A v1
        dst.run_model("A", {"x": 1})
        report = copy_registry(src, dst)
        assert report.mappings == {"A": {1: 2, 2: 3, 3: 4}}
        assert dst.get_version("A", stage="Production").version == 3  # src v2
        assert dst.get_version("A", stage="Shadow").version == 1  # untouched
        pinned = [r for r in dst.history("A", limit=5000) if r.reference_id == "r"]
        assert {(r.version, r.selector) for r in pinned} == {(2, "version=2")}
        ledger = dst.stage_history("A", stage="Production")
        assert [(c.from_version, c.to_version, c.reason) for c in ledger] == [
            (None, 3, "first"), (3, 4, "AUC 0.91"), (4, 3, "rollback"),
        ]  # fmt: skip
        check = verify_copy(src, dst)
        assert check.ok, check.problems
        assert check.checks[0].records == (1205, 1206)  # dst's own call as well


class TestDryRun:
    """--dry-run reads both sides and writes nothing."""

    def test_dry_run_writes_nothing(self, src: Umlaut, dst: Umlaut) -> None:
        report = copy_registry(src, dst, dry_run=True)
        assert report.dry_run and report.records == 1245 and report.records_added == 0
        assert [(m.versions_copied, m.ledger_added) for m in report.models] == [(3, 5), (1, 1)]
        assert dst.list_models() == [] and dst.history(limit=10) == []


class Boom(RuntimeError):
    """An error injected mid-copy."""


def failing_after(inner: Any, method: str, calls: int) -> Proxy:
    """``inner`` whose ``method`` raises Boom on call number ``calls + 1``."""
    real = getattr(inner, method)
    count = {"n": 0}

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        count["n"] += 1
        if count["n"] > calls:
            raise Boom(f"{method} failed on call {count['n']}")
        return real(*args, **kwargs)

    return Proxy(inner, **{method: wrapped})


class TestResume:
    """An exception mid-copy, then the same copy again: nothing lost or doubled."""

    @pytest.mark.parametrize(
        ("method", "calls"),
        [("register_version", 2), ("import_ledger", 1), ("import_runs", 1)],
    )
    def test_resume_after_an_exception(
        self, src: Umlaut, dst: Umlaut, method: str, calls: int
    ) -> None:
        flaky = Umlaut(tracker=failing_after(dst.tracker, method, calls),  # type: ignore[arg-type]
                       artifact_store=dst.artifact_store, delivery="sync")  # fmt: skip
        with pytest.raises(Boom):
            copy_registry(src, flaky, chunk_size=300)
        assert not verify_copy(src, dst).ok
        report = copy_registry(src, dst, chunk_size=300)
        assert report.records == 1245
        assert everything(src) == everything(dst)
        assert verify_copy(src, dst).ok


def lossy_plugin(drop: int) -> object:
    """A plugin with a ``lossy+sqlite:///`` tracker that silently drops records."""

    class Plugin:
        @hookimpl
        def umlaut_register_backends(self, registry: Any) -> None:
            from umlaut_sql import SqlTracker

            def open_lossy(uri: str, **options: Any) -> Any:
                inner = SqlTracker(uri.removeprefix("lossy+"), **options)
                real = inner.import_runs

                def import_runs(records: Any) -> int:
                    return int(real(list(records)[drop:]))

                tracker = Proxy(inner, import_runs=import_runs, uri=uri)
                return tracker

            registry.add_tracker("lossy+sqlite", open_lossy)

    return Plugin()


class TestCopyCommand:
    """``umlaut copy`` through click's runner: summary, formats, exit status, secrets."""

    def invoke(self, *args: str, pm: Any = None) -> Any:
        return CliRunner().invoke(make_cli(pm), list(args))

    def test_copy_verify_and_rerun(self, src: Umlaut, workdir: Path) -> None:
        target = sqlite(workdir, "dst")
        result = self.invoke("copy", src.tracker.uri, target, "--chunk-size", "100")
        assert result.exit_code == 0, result.output
        assert "Verified" in result.stderr and "1,245 new at the destination" in result.stderr
        assert "A" in result.stdout and "1,205/1,205" in result.stdout
        again = self.invoke("copy", src.tracker.uri, target, "--format", "json")
        assert again.exit_code == 0, again.output
        rows = json.loads(again.stdout)
        assert [r["model"] for r in rows] == ["A", "B", "(all records)"]
        assert rows[0]["versions_copied"] == 0 and rows[0]["mapping"] == "same"
        assert all(r["ok"] for r in rows) and "0 new at the destination" in again.stderr

    def test_dry_run_and_filters(self, src: Umlaut, workdir: Path) -> None:
        target = sqlite(workdir, "dst")
        dry = self.invoke("copy", src.tracker.uri, target, "--dry-run", "--format", "csv")
        assert dry.exit_code == 0, dry.output
        assert dry.stdout.splitlines()[1].startswith("A,3,3,same,5,5,")
        with open_sqlite(target) as check:
            assert check.list_models() == []
        only_b = self.invoke("copy", src.tracker.uri, target, "--model", "B",
                             "--since", "2000-01-01", "--format", "jsonl")  # fmt: skip
        assert only_b.exit_code == 0, only_b.output
        assert [json.loads(line)["model"] for line in only_b.stdout.splitlines()] == ["B"]

    def test_mapping_is_reported(self, src: Umlaut, workdir: Path) -> None:
        target = sqlite(workdir, "dst")
        with open_sqlite(target) as other:
            other.track_model(Threshold(99), "A")
        result = self.invoke("copy", src.tracker.uri, target)
        assert result.exit_code == 0, result.output
        assert "renumbered at the destination: A: 1→2, 2→3, 3→4" in result.stderr

    def test_verification_failure_exits_1(self, src: Umlaut, workdir: Path) -> None:
        pm = get_plugin_manager()
        pm.register(lossy_plugin(drop=3), "lossy")
        result = self.invoke("copy", src.tracker.uri, "lossy+" + sqlite(workdir, "dst"), pm=pm)
        assert result.exit_code == 1, result.output
        assert "VerificationError: the copy differs" in result.stderr
        assert "audit record(s) missing" in result.stderr
        assert "no" in result.stdout.splitlines()[1]  # the table's ok column

    def test_usage_and_same_store(self, src: Umlaut) -> None:
        assert self.invoke("copy").exit_code == 2
        same = self.invoke("copy", src.tracker.uri, src.tracker.uri)
        assert same.exit_code == 1 and "same registry" in same.stderr

    def test_secrets_are_never_printed(self, src: Umlaut) -> None:
        pytest.importorskip("psycopg")
        url = f"postgresql+psycopg://umlaut:{PASSWORD}@127.0.0.1:9/nowhere?connect_timeout=1"
        result = self.invoke("copy", src.tracker.uri, url, "--dry-run")
        assert result.exit_code == 1
        assert PASSWORD not in result.output and "***" in result.stderr

    def test_profiles_name_each_side(self, src: Umlaut, workdir: Path, monkeypatch: Any) -> None:
        (workdir / "pyproject.toml").write_text(
            textwrap.dedent(f"""
            [tool.umlaut.profiles.old]
            tracking_uri = "{src.tracker.uri}"
            [tool.umlaut.profiles.new]
            tracking_uri = "{sqlite(workdir, "new")}"
        """)
        )
        # The environment never decides a side of a copy.
        monkeypatch.setenv("UMLAUT_TRACKING_URI", sqlite(workdir, "elsewhere"))
        result = self.invoke("copy", "--src-profile", "old", "--dst-profile", "new")
        assert result.exit_code == 0, result.output
        with open_sqlite(sqlite(workdir, "new")) as new:
            assert len(new.history(limit=5000)) == 1245
        assert not (workdir / "elsewhere").exists()


def make_orphan(store: Any, age: dt.timedelta, body: bytes = b"orphan") -> str:
    """An unreferenced object under bundles/, last written ``age`` ago."""
    import hashlib

    from umlaut_core.keys import bundle_key

    uri = store.put(bundle_key(hashlib.sha256(body).hexdigest()), body)
    path = Path(uri.removeprefix("file://"))
    stamp = (dt.datetime.now(dt.UTC) - age).timestamp()
    os.utime(path, (stamp, stamp))
    return str(uri)


class TestGarbage:
    """gc lists unreferenced bundles, deletes only old ones and only when asked."""

    def test_age_parsing(self) -> None:
        assert parse_age("30m") == dt.timedelta(minutes=30)
        assert parse_age("2d") == dt.timedelta(days=2)
        assert parse_age("90") == parse_age("90s") == dt.timedelta(seconds=90)
        assert parse_age(0) == dt.timedelta(0)
        for bad in ("2x", "-1h", "", "h"):
            with pytest.raises(ConfigurationError):
                parse_age(bad)

    def test_collect_lists_and_deletes_only_old_unreferenced(self, src: Umlaut) -> None:
        store = src.artifact_store
        old = make_orphan(store, dt.timedelta(hours=3), b"old")
        young = make_orphan(store, dt.timedelta(minutes=5), b"young")
        referenced = {mv.artifact_uri for mv in src.list_versions("A") + src.list_versions("B")}
        for mv in src.list_versions("A"):  # even a very old referenced bundle is kept
            path = Path(mv.artifact_uri.removeprefix("file://"))
            os.utime(path, (0, 0))
        listed = collect_garbage(src)
        assert [(o.uri, o.action) for o in listed] == [
            (old, "would delete"), (young, "kept (too young)"),
        ]  # fmt: skip
        done = collect_garbage(src, delete=True)
        assert [(o.uri, o.action) for o in done] == [(old, "deleted"), (young, "kept (too young)")]
        assert not store.exists(old) and store.exists(young)  # type: ignore[union-attr]
        assert all(store.exists(u) for u in referenced)  # type: ignore[union-attr]
        collect_garbage(src, older_than=dt.timedelta(0), delete=True)
        assert not store.exists(young)  # type: ignore[union-attr]
        assert all(store.exists(u) for u in referenced)  # type: ignore[union-attr]
        assert src.run_model("A", {"x": 1}, version=1)  # still loads

    def test_store_that_cannot_list_or_no_store(self) -> None:
        class Plain:
            capabilities: frozenset[Capability] = frozenset()

            def __init__(self) -> None:
                self.inner = MemoryArtifactStore()
                self.uri = "plain:"

            def __getattr__(self, name: str) -> Any:
                return getattr(self.inner, name)

        u = Umlaut(tracker=MemoryTracker(), artifact_store=Plain(), delivery="sync")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="cannot list"):
            collect_garbage(u)
        with pytest.raises(ConfigurationError, match="keeps bundles itself"):
            collect_garbage(Umlaut(tracker=MemoryTracker(), delivery="sync"))

    def test_gc_command_formats_and_delete(self, src: Umlaut) -> None:
        old = make_orphan(src.artifact_store, dt.timedelta(days=3), b"old")
        cli, runner = make_cli(), CliRunner()
        base = ["--tracking-uri", src.tracker.uri, "gc"]
        listed = runner.invoke(cli, [*base, "--format", "json"])
        assert listed.exit_code == 0, listed.output
        (row,) = json.loads(listed.stdout)
        assert (row["uri"], row["size"], row["action"]) == (old, 3, "would delete")
        assert row["age_s"] > 2 * 86_400 and "run with --delete" in listed.stderr
        kept = runner.invoke(cli, [*base, "--delete", "--older-than", "4d"])
        assert kept.exit_code == 0 and "kept (too young)" in kept.stdout
        gone = runner.invoke(cli, [*base, "--delete", "--older-than", "2d", "--format", "csv"])
        assert gone.exit_code == 0 and gone.stdout.splitlines()[1].endswith(",deleted")
        assert not Path(old.removeprefix("file://")).exists()
        bad = runner.invoke(cli, [*base, "--older-than", "soon"])
        assert bad.exit_code == 2


KILLED_BETWEEN_UPLOAD_AND_REGISTRATION = """
import os, signal, sys
from umlaut_core import Umlaut
from umlaut_core.stores.folder import FolderArtifactStore
from umlaut_core.testing.models import Threshold

class KilledAfterUpload(FolderArtifactStore):
    def put(self, key, data):
        uri = super().put(key, data)
        print(uri, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # before register_version

tracking, folder = sys.argv[1], sys.argv[2]
with Umlaut(tracking, artifact_store=KilledAfterUpload(folder), delivery="sync") as u:
    u.track_model(Threshold(42), "A")
"""


def console_script() -> str:
    found = shutil.which("umlaut", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("the umlaut console script is not installed next to this Python")
    return found


class TestConsoleScript:
    """The installed script: copy, then gc of a bundle orphaned by a SIGKILL."""

    def run(self, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [console_script(), *args], capture_output=True, text=True, cwd=cwd,
            env={**os.environ}, timeout=300,
        )  # fmt: skip

    def test_copy_through_the_script(self, src: Umlaut, workdir: Path) -> None:
        target = sqlite(workdir, "dst")
        done = self.run(workdir, "copy", src.tracker.uri, target, "--format", "csv")
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[0].startswith("model,versions_source,")
        assert "Verified" in done.stderr

    def test_ctrl_c_then_the_same_command_again(self, src: Umlaut, workdir: Path) -> None:
        target = sqlite(workdir, "dst")
        cmd = [console_script(), "copy", src.tracker.uri, target, "--chunk-size", "1"]
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        database = target.removeprefix("sqlite:///")
        deadline = time.monotonic() + 120
        copied = 0
        while proc.poll() is None and time.monotonic() < deadline and copied < 50:
            time.sleep(0.01)
            with (
                contextlib.suppress(sqlite3.Error),
                contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn,
            ):
                copied = conn.execute("SELECT count(*) FROM umlaut_runs").fetchone()[0]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "run the same command again" in err and "Traceback" not in err
        with open_sqlite(target) as half:
            assert 50 <= len(half.history(limit=5000)) < 1245
        done = self.run(workdir, *cmd[1:])
        assert done.returncode == 0, done.stderr
        with open_sqlite(target) as dst:
            assert everything(src) == everything(dst)

    def test_gc_finds_the_bundle_of_a_killed_track(self, src: Umlaut, workdir: Path) -> None:
        store = src.artifact_store
        assert isinstance(store, FolderArtifactStore)
        killed = subprocess.run(
            [sys.executable, "-c", KILLED_BETWEEN_UPLOAD_AND_REGISTRATION,
             src.tracker.uri, str(store.root)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        orphan = killed.stdout.strip()
        assert store.exists(orphan) and len(src.list_versions("A")) == 3
        base = ["--tracking-uri", src.tracker.uri, "gc"]
        spared = self.run(workdir, *base, "--delete", "--format", "json")
        assert spared.returncode == 0, spared.stderr
        assert [(r["uri"], r["action"]) for r in json.loads(spared.stdout)] == [
            (orphan, "kept (too young)")
        ]
        assert store.exists(orphan)
        swept = self.run(workdir, *base, "--delete", "--older-than", "0", "--format", "json")
        assert [(r["uri"], r["action"]) for r in json.loads(swept.stdout)] == [(orphan, "deleted")]
        assert not store.exists(orphan)
        for mv in src.list_versions("A") + src.list_versions("B"):
            assert store.exists(mv.artifact_uri)


class TestTrainingRuns:
    """A copy carries training runs whole, resumes without doubling, and verifies them."""

    def test_runs_with_history_artifacts_children_and_lineage(self) -> None:
        import math

        from umlaut_core.migration import copy_registry, verify_copy

        source, destination = Umlaut("memory:"), Umlaut("memory:")
        with source.start_run("iris", name="fit") as run:
            run.log_params({"C": 1.0, "layers": [3, 2]})
            for i in range(50):
                run.log_metric("loss", 1 / (i + 1))
            run.log_metric("loss", math.nan, step=99)
            run.log_text("notes", "notes.txt")
            with run.start_run("step") as child:
                child.set_tag("kind", "scaler")
            source.track_model(Threshold(1), "m", run=run)
        report = copy_registry(source, destination)
        assert report.training is not None
        assert (report.training.runs, report.training.runs_added) == (2, 2)
        again = copy_registry(source, destination)
        assert again.training is not None and again.training.runs_added == 0
        assert verify_copy(source, destination).ok
        copied = destination.get_training_run(run.run_id)
        assert copied.params == {"C": 1.0, "layers": [3, 2]}
        assert copied.metrics["loss"].count == 51  # nothing doubled by the re-run
        assert destination.load_artifact(run.run_id, "notes.txt") == b"notes"
        assert destination.get_training_run(child.run_id).parent_id == run.run_id
        assert [v.model_name for v in copied.versions] == ["m"]

    def test_a_missing_run_fails_verification(self) -> None:
        from umlaut_core.migration import verify_copy

        source, destination = Umlaut("memory:"), Umlaut("memory:")
        with source.start_run("iris"):
            pass
        result = verify_copy(source, destination)
        assert not result.ok
        assert any("missing at the destination" in p for p in result.problems)


class TestDatasets:
    """A copy carries datasets (bytes checked) and lineage links, and verifies them."""

    def test_versions_bytes_and_links(self) -> None:
        pd = pytest.importorskip("pandas")
        pytest.importorskip("pyarrow")
        source, destination = Umlaut("memory:"), Umlaut("memory:")
        frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
        ds = source.track_dataset(frame, "toy", target="y")
        source.track_dataset(frame.assign(x=[4.0, 5.0, 6.0]), "toy")
        with source.start_run("e") as run:
            run.log_input(ds)
            source.track_model(Threshold(1), "m", run=run, datasets={"train": ds})
        report = copy_registry(source, destination)
        assert report.datasets is not None
        assert (report.datasets.versions, report.datasets.versions_added) == (2, 2)
        assert report.datasets.links_added == 2
        again = copy_registry(source, destination)
        assert again.datasets is not None and again.datasets.versions_added == 0
        assert again.datasets.links_added == 0
        assert verify_copy(source, destination).ok
        pd.testing.assert_frame_equal(destination.load_dataset("toy", 1), frame)
        links = destination.dataset_links(model=("m", 1))
        assert [(x.dataset_name, x.dataset_version, x.context) for x in links] == [
            ("toy", 1, "train")
        ]
