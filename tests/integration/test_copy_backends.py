"""``umlaut copy`` between real backends: SQLite, PostgreSQL + S3 (moto server over
HTTP) and an ``mlflow server``, each pair both ways; a copy killed with SIGKILL and
run again; ``umlaut gc`` finds nothing left behind.

Kept small (a handful of versions, hundreds to thousands of records) for CI.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _services.moto_server import fake_aws_env

from umlaut_core import RunQuery, Umlaut
from umlaut_core.garbage import collect_garbage
from umlaut_core.migration import verify_copy
from umlaut_core.testing.models import ExampleModel, Threshold

pytestmark = [pytest.mark.slow]
pytest.importorskip("umlaut_sql")


@dataclass
class Side:
    """One registry: how to open it in Python and how to name it to ``umlaut copy``."""

    kind: str
    tracking: str
    artifact: str | None = None
    #: Models a test made here (an MLflow server is shared by the whole session).
    models: list[str] = field(default_factory=list)

    def open(self) -> Umlaut:
        return Umlaut(self.tracking, self.artifact, delivery="sync")

    def args(self, role: str) -> list[str]:
        return [] if self.artifact is None else [f"--{role}-artifact-uri", self.artifact]


def _sqlite(tmp_path: Path, name: str) -> Side:
    return Side(
        "sqlite", f"sqlite:///{tmp_path / name / 'umlaut.db'}", str(tmp_path / name / "bundles")
    )


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for var in list(os.environ):
        if var.startswith("UMLAUT_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("UMLAUT_HOME", str(tmp_path / ".umlaut"))
    aws = fake_aws_env(monkeypatch, tmp_path, access_key="AKIACOPYTEST7Q3X9ZZZ",
                       secret_key="copy/fake+Secret0Key9neverPrint4x2")  # fmt: skip
    return {**aws, "UMLAUT_HOME": str(tmp_path / ".umlaut")}


@pytest.fixture
def make_side(
    request: pytest.FixtureRequest, tmp_path: Path, env: dict[str, str]
) -> Callable[[str, str], Side]:
    """``make_side(kind, name)``: a fresh, empty registry of that kind."""

    def make(kind: str, name: str) -> Side:
        if kind == "sqlite":
            return _sqlite(tmp_path, name)
        if kind == "postgres":
            import boto3

            server = request.getfixturevalue("postgres_server")
            endpoint = request.getfixturevalue("moto_server")
            bucket = f"copy-{uuid.uuid4().hex[:12]}"
            boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
                Bucket=bucket
            )
            return Side("postgres", server.create_database(),
                        f"s3://{bucket}/umlaut?endpoint_url={endpoint}")  # fmt: skip
        pytest.importorskip("mlflow")
        return Side("mlflow", "mlflow+" + request.getfixturevalue("mlflow_server"))

    return make


def seed(side: Side, *, versions: int, records: int) -> list[str]:
    """Two models with unique names: A (``versions`` versions, two stages moved about,
    ``records`` calls) and B (one version, a few calls)."""
    tag = uuid.uuid4().hex[:8]
    a, b = f"copy A {tag}", f"copy B {tag}"
    with side.open() as umlaut:
        for i in range(1, versions + 1):
            stage = "Staging" if i % 2 else "Production"
            umlaut.track_model(Threshold(i), a, stage=stage, reason=f"v{i}", tags={"i": str(i)})
        umlaut.promote(a, 1, "Production", reason="rollback")
        umlaut.track_model(ExampleModel(), b, stage="Production")
        for start in range(0, records, 1000):
            n = min(1000, records - start)
            umlaut.run_batch(a, [{"x": start + i} for i in range(n)], stage="Production")
        umlaut.run_batch(b, [{"revenue": i} for i in range(7)], version=1)
    side.models += [a, b]
    return [a, b]


def snapshot(side: Side, models: list[str]) -> dict[str, Any]:
    """Everything a registry holds about ``models``, comparable across backends."""
    with side.open() as umlaut:
        t = umlaut.tracker
        out: dict[str, Any] = {}
        for name in models:
            info = next(m for m in t.list_models() if m.name == name)
            out[name] = {
                "aliases": dict(info.aliases),
                "versions": [
                    (mv.version, mv.digest, mv.bundle_sha256, mv.created_at, mv.created_by,
                     dict(mv.tags))
                    for mv in t.list_versions(name)
                ],
                "ledger": t.stage_history(name),
                "records": sorted(
                    t.query_runs(RunQuery(model_name=name, limit=100_000)), key=lambda r: r.id
                ),
            }  # fmt: skip
        return out


def umlaut_script() -> str:
    found = shutil.which("umlaut", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("the umlaut console script is not installed next to this Python")
    return found


def copy_command(src: Side, dst: Side, models: list[str], *extra: str) -> list[str]:
    selected = [arg for name in models for arg in ("--model", name)]
    return [umlaut_script(), "copy", src.tracking, dst.tracking, *src.args("src"),
            *dst.args("dst"), *selected, *extra]  # fmt: skip


def run_copy(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Verified" in done.stderr
    return done


def kill_when(cmd: list[str], cwd: Path, ready: Callable[[], bool], timeout: float = 300) -> bool:
    """Start ``cmd``; SIGKILL it as soon as ``ready()``; True if it was killed mid-run
    (False: it finished first)."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                hit = ready()
            except Exception:  # the destination's tables may not exist yet
                hit = False
            if hit and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                return True
            time.sleep(0.01)
        assert proc.poll() is not None, "umlaut copy neither finished nor got killed"
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


PAIRS = [
    ("sqlite", "postgres"),
    ("postgres", "sqlite"),
    ("sqlite", "mlflow"),
    ("mlflow", "sqlite"),
    ("postgres", "mlflow"),
    ("mlflow", "postgres"),
]


def _marks(*kinds: str) -> list[Any]:
    marks = []
    if "postgres" in kinds:
        marks.append(pytest.mark.postgres)
    if "mlflow" in kinds:
        marks.append(pytest.mark.mlflow)
    return marks


class TestEveryPair:
    """Each pair of backends, both ways: the copy verifies, a re-run adds nothing, and
    the destination holds exactly what the source does."""

    @pytest.mark.parametrize(
        ("src_kind", "dst_kind"),
        [pytest.param(s, d, marks=_marks(s, d), id=f"{s}-to-{d}") for s, d in PAIRS],
    )
    def test_copy_pair(
        self, make_side: Callable[[str, str], Side], tmp_path: Path, src_kind: str, dst_kind: str
    ) -> None:
        src, dst = make_side(src_kind, "src"), make_side(dst_kind, "dst")
        records = 150 if "mlflow" in (src_kind, dst_kind) else 2500
        models = seed(src, versions=2 if records < 1000 else 4, records=records)
        cmd = copy_command(src, dst, models, "--chunk-size", "500")
        first = run_copy(cmd, tmp_path)
        assert f"{records + 7:,} new at the destination" in first.stderr
        again = run_copy(cmd, tmp_path)
        assert "copied 0 version(s), 0 ledger entries" in again.stderr
        assert ", 0 new at the destination" in again.stderr
        assert snapshot(src, models) == snapshot(dst, models)
        with dst.open() as umlaut:
            assert umlaut.run_model(models[0], {"x": 3}, stage="Production") == {
                "above": True,
                "limit": 1,
            }
            if umlaut.artifact_store is not None and dst.kind != "mlflow":
                assert collect_garbage(umlaut) == []


@pytest.mark.postgres
class TestKilledAndResumed:
    """``umlaut copy`` killed with SIGKILL (during versions, then during records) and
    run again finishes with nothing lost or doubled."""

    def test_sqlite_to_postgres_and_s3(
        self, make_side: Callable[[str, str], Side], tmp_path: Path
    ) -> None:
        import sqlalchemy as sa

        src, dst = make_side("sqlite", "src"), make_side("postgres", "dst")
        models = seed(src, versions=24, records=6000)
        cmd = copy_command(src, dst, [], "--chunk-size", "50")
        engine = sa.create_engine(dst.tracking, poolclass=sa.pool.NullPool)

        def count(table: str) -> int:
            with engine.connect() as conn:
                return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())

        try:
            assert kill_when(cmd, tmp_path, lambda: count("umlaut_versions") >= 5)
            assert count("umlaut_versions") < 25  # killed while copying versions
            assert kill_when(cmd, tmp_path, lambda: count("umlaut_runs") >= 100)
            assert count("umlaut_runs") < 6007  # killed while copying records
            run_copy(cmd, tmp_path)
            with engine.connect() as conn:
                total, distinct = conn.execute(
                    sa.text("SELECT count(*), count(DISTINCT id) FROM umlaut_runs")
                ).one()
        finally:
            engine.dispose()
        assert (total, distinct) == (6007, 6007)
        assert snapshot(src, models) == snapshot(dst, models)
        with src.open() as a, dst.open() as b:
            assert verify_copy(a, b).ok
            assert collect_garbage(b) == []  # every bundle uploaded is registered

    @pytest.mark.mlflow
    def test_sqlite_to_mlflow_killed_while_writing_records(
        self, make_side: Callable[[str, str], Side], tmp_path: Path
    ) -> None:
        src, dst = make_side("sqlite", "src"), make_side("mlflow", "dst")
        models = seed(src, versions=2, records=300)
        cmd = copy_command(src, dst, models, "--chunk-size", "50")
        probe = dst.open()
        try:

            def some_records() -> bool:
                return len(probe.history(models[0], limit=60)) >= 60

            assert kill_when(cmd, tmp_path, some_records)
            run_copy(cmd, tmp_path)
        finally:
            probe.close()
        assert snapshot(src, models) == snapshot(dst, models)
