"""Backends for the reliability suite, and a runner for worker processes.

``backend`` is parametrised over the deployments a team runs: ``sqlite`` (a real
SQLite file and a folder of bundles) and ``postgres`` (the session's real PostgreSQL
server and a bucket on the moto S3 server, reached over HTTP). Each test gets a fresh
database and a fresh bucket. Workers are separate interpreters started with
``subprocess`` (nothing is inherited but the environment), see ``_worker.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _services.moto_server import fake_aws_env

from umlaut_core import Umlaut

WORKER = str(Path(__file__).with_name("_worker.py"))
TABLES = (
    "umlaut_models",
    "umlaut_versions",
    "umlaut_aliases",
    "umlaut_stage_ledger",
    "umlaut_runs",
    "umlaut_schema",
)
#: Fake credentials: the secrets test greps every output for them.
ACCESS_KEY = "AKIARELIABILITY7Q3X9"
SECRET_KEY = "reliab/fake+Secret0Key9neverPrint4x2"


@dataclass
class Backend:
    """One deployment: where metadata and bundles live, and how to read them raw."""

    name: str
    tracking: str
    artifact: str
    env: dict[str, str]
    artifact_options: dict[str, Any] = field(default_factory=dict)
    s3: Any = None  # raw boto3 client (postgres backend)
    server: Any = None  # the PostgresServer (postgres backend)
    bucket: str = ""
    _engine: Any = None

    def open(self, **options: Any) -> Umlaut:
        options.setdefault("artifact_options", self.artifact_options)
        return Umlaut(self.tracking, self.artifact, **options)

    @property
    def remote(self) -> bool:
        """A database server (its tracker declares REMOTE), not a local file."""
        return not self.tracking.startswith("sqlite")

    def job(self, **job: Any) -> dict[str, Any]:
        return {
            "tracking": self.tracking,
            "artifact": self.artifact,
            "artifact_options": self.artifact_options,
            **job,
        }

    @property
    def engine(self) -> Any:
        import sqlalchemy as sa

        if self._engine is None:
            self._engine = sa.create_engine(self.tracking, poolclass=sa.pool.NullPool)
        return self._engine

    def sql(self, query: str, **params: Any) -> list[Any]:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(query), params))

    def execute(self, query: str, **params: Any) -> None:
        import sqlalchemy as sa

        with self.engine.begin() as conn:
            conn.execute(sa.text(query), params)

    def counts(self) -> dict[str, int]:
        return {t: self.sql(f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}

    def digests(self) -> list[tuple[str, int, str, str]]:
        rows = self.sql("SELECT name, version, digest, artifact_uri FROM umlaut_versions")
        return sorted(tuple(r) for r in rows)

    def objects(self) -> dict[str, str]:
        """Every stored object (key → sha256 of its bytes), read without umlaut."""
        if self.s3 is not None:
            found: dict[str, str] = {}
            pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
            for page in pages:
                for obj in page.get("Contents", []):
                    body = self.s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read()
                    found[obj["Key"]] = hashlib.sha256(body).hexdigest()
            return found
        root = Path(self.artifact)
        return {
            str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))
            if p.is_file()
        }

    def read_object(self, uri: str) -> bytes:
        if self.s3 is not None:
            key = uri.split(f"s3://{self.bucket}/", 1)[1]
            return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        return Path(uri.removeprefix("file://")).read_bytes()

    def write_object(self, uri: str, data: bytes, *, sha_metadata: str = "fresh") -> None:
        """Overwrite a stored object behind umlaut's back (tampering, corruption).

        On S3, ``sha_metadata`` says what the object's checksum metadata becomes:
        ``fresh`` (the new bytes' sha256, as a tamperer who knows the store would
        write), ``keep`` (the old bytes', as a corruption underneath would leave) or
        ``none`` (as a plain copy without metadata leaves)."""
        if self.s3 is not None:
            key = uri.split(f"s3://{self.bucket}/", 1)[1]
            meta = self.s3.head_object(Bucket=self.bucket, Key=key)["Metadata"]
            if sha_metadata == "fresh":
                meta = {**meta, "sha256": hashlib.sha256(data).hexdigest()}
            elif sha_metadata == "none":
                meta = {}
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, Metadata=meta)
            return
        Path(uri.removeprefix("file://")).write_bytes(data)

    def delete_object(self, uri: str) -> None:
        if self.s3 is not None:
            key = uri.split(f"s3://{self.bucket}/", 1)[1]
            self.s3.delete_object(Bucket=self.bucket, Key=key)
        else:
            Path(uri.removeprefix("file://")).unlink()

    def snapshot(self) -> tuple[Any, ...]:
        """Row counts, registered digests and stored objects: what must not change."""
        return (self.counts(), self.digests(), self.objects())

    def other_database(self, tmp: Path) -> str:
        """The URL of another, empty database of the same kind."""
        if self.server is not None:
            return str(self.server.create_database())
        return f"sqlite:///{tmp / f'other-{uuid.uuid4().hex[:8]}.db'}"

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


@pytest.fixture
def umlaut_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Spools and defaults go to this test's folder, never to ./.umlaut."""
    home = tmp_path / "home"
    for var in ("UMLAUT_TRACKING_URI", "UMLAUT_ARTIFACT_URI", "UMLAUT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("UMLAUT_HOME", str(home))
    return home


def make_sqlite(tmp_path: Path, home: Path) -> Backend:
    return Backend(
        name="sqlite",
        tracking=f"sqlite:///{tmp_path / 'umlaut.db'}",
        artifact=str(tmp_path / "artifacts"),
        env={"UMLAUT_HOME": str(home)},
    )


def make_postgres(
    request: pytest.FixtureRequest, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> Backend:
    import boto3

    server = request.getfixturevalue("postgres_server")
    endpoint = request.getfixturevalue("moto_server")
    aws = fake_aws_env(monkeypatch, tmp_path, access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    bucket = f"rel-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return Backend(
        name="postgres",
        tracking=server.create_database(),
        artifact=f"s3://{bucket}/umlaut",
        artifact_options={"endpoint_url": endpoint},
        env={"UMLAUT_HOME": str(home), **aws},
        s3=client,
        bucket=bucket,
        server=server,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    umlaut_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Backend]:
    """SQLite file + folder, or PostgreSQL + S3 (moto over HTTP)."""
    if request.param == "sqlite":
        b = make_sqlite(tmp_path, umlaut_home)
    else:
        b = make_postgres(request, tmp_path, umlaut_home, monkeypatch)
    yield b
    b.dispose()


class Workers:
    """Worker processes started together; ``results()`` waits for their JSON lines."""

    def __init__(self, jobs: list[dict[str, Any]], env: dict[str, str], cwd: Path) -> None:
        full_env = {**os.environ, **env}
        self.procs = [
            subprocess.Popen(
                [sys.executable, WORKER, json.dumps(job)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=full_env,
                cwd=cwd,
            )
            for job in jobs
        ]

    def wait_for(self, proc: subprocess.Popen[str], word: str) -> None:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if line != word:
            proc.kill()
            _, err = proc.communicate(timeout=30)
            raise AssertionError(f"worker said {line!r}, not {word!r}:\n{err[-3000:]}")

    def start(self) -> None:
        """Wait until every worker has opened its store, then release them at once."""
        for proc in self.procs:
            self.wait_for(proc, "ready")
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()

    def results(self, timeout: float = 110) -> list[dict[str, Any]]:
        out = []
        for proc in self.procs:
            stdout, stderr = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, stderr[-3000:]
            last = stdout.strip().splitlines()[-1]
            out.append(json.loads(last)["result"])
        return out

    def kill_all(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.kill()
                proc.communicate(timeout=30)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Any]:
    """``workers(jobs, env)`` starts processes; all are killed at teardown."""
    started: list[Workers] = []

    def start(jobs: list[dict[str, Any]], env: dict[str, str]) -> Workers:
        w = Workers(jobs, env, tmp_path)
        started.append(w)
        return w

    yield start
    for w in started:
        w.kill_all()


@pytest.fixture
def pg_backend(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    umlaut_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Backend]:
    """PostgreSQL + S3 only (tests about the database server itself)."""
    b = make_postgres(request, tmp_path, umlaut_home, monkeypatch)
    yield b
    b.dispose()
