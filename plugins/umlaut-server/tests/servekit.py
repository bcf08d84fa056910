"""Helpers and fixtures (re-exported by conftest.py): registries (SQLite, PostgreSQL +
S3 on moto, the MLflow server) holding the test models, and real ``umlaut serve``
processes on 127.0.0.1 driven over HTTP.

One server per registry per session (module ``protocol_server``); tests that stop or
overload a server start their own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from umlaut_core import Umlaut

#: Tokens the tests use, and the entries the server is configured with.
RUN_TOKEN = "run-token-" + "7" * 24
READ_TOKEN = "read-token-" + "3" * 24
BOTH_TOKEN = "both-token-" + "5" * 24


def _entry(token: str, scopes: str) -> str:
    from umlaut_server import hash_token

    return f"{hash_token(token)}={scopes}"


TOKENS = ";".join(
    [_entry(RUN_TOKEN, "run"), _entry(READ_TOKEN, "read"), _entry(BOTH_TOKEN, "run,read")]
)


# -- the models ---------------------------------------------------------------------------


def echo(x: Any) -> Any:
    """Returns what it got: shows what each request shape becomes."""
    return x


def double(x: Any) -> Any:
    return [row["v"] * 2 for row in x] if isinstance(x, list) else x["v"] * 2


def slow(x: Any) -> Any:
    import time as _time

    rows = x if isinstance(x, list) else [x]
    _time.sleep(float(rows[0]["sleep"]))
    return "done"


def failing(x: Any) -> Any:
    raise ValueError(f"refused the secret input {x!r}")


class Marker:
    """Answers its own number: which version ran is visible in the output."""

    def __init__(self, n: int) -> None:
        self.n = n

    def run(self, x: Any) -> Any:
        return self.n


IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def iris_pipeline() -> Any:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    iris = load_iris(as_frame=True)
    x = iris.data.set_axis(IRIS_COLUMNS, axis=1)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        x, iris.target_names[iris.target]
    )


def fill(umlaut: Umlaut) -> None:
    """Every test model, ``Production`` set; ``Moving`` has versions 1 and 2."""
    umlaut.track_model(echo, "Echo", stage="Production")
    umlaut.track_model(double, "Double", stage="Production", signature={"v": "float"})
    umlaut.track_model(slow, "Slow", stage="Production")
    umlaut.track_model(failing, "Failing", stage="Production")
    umlaut.track_model(Marker(1), "Moving", stage="Production")
    umlaut.track_model(Marker(2), "Moving")
    # Its signature is the fitted estimator's (umlaut.table/1), as a user's would be.
    umlaut.track_model(iris_pipeline(), "Iris", stage="Production")


# -- registries ---------------------------------------------------------------------------


@dataclass
class Registry:
    """Where the models live, and the environment a server process needs for it."""

    name: str
    tracking_uri: str
    artifact_uri: str | None
    root: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def spool_path(self) -> str:
        return str(self.root / "spool.db")

    def umlaut(self, **options: Any) -> Umlaut:
        """A facade on the same registry and spool (history includes spooled records)."""
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        try:
            return Umlaut(
                self.tracking_uri,
                self.artifact_uri,
                delivery="spooled",
                spool_path=self.spool_path,
                **options,
            )
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _make_registry(registry: Registry) -> Registry:
    with registry.umlaut() as umlaut:
        fill(umlaut)
    return registry


@pytest.fixture(scope="session")
def sqlite_registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    root = tmp_path_factory.mktemp("serve-sqlite")
    return _make_registry(
        Registry("sqlite", f"sqlite:///{root / 'registry.db'}", str(root / "artifacts"), root)
    )


@pytest.fixture(scope="session")
def postgres_s3_registry(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: Any, moto_server: str
) -> Registry:
    import boto3

    root = tmp_path_factory.mktemp("serve-pg")
    env = {
        "AWS_ACCESS_KEY_ID": "AKIAUMLAUTSERVEFAKE1",
        "AWS_SECRET_ACCESS_KEY": "fake/secret/for/serve/tests",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(root / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(root / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_S3": moto_server,
    }
    bucket = f"serve-{uuid.uuid4().hex[:10]}"
    boto3.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    ).create_bucket(Bucket=bucket)
    return _make_registry(
        Registry(
            "postgres+s3",
            postgres_server.create_database(),
            f"s3://{bucket}/models?addressing_style=path",
            root,
            env,
        )
    )


@pytest.fixture(scope="session")
def mlflow_registry(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str) -> Registry:
    root = tmp_path_factory.mktemp("serve-mlflow")
    return _make_registry(Registry("mlflow", f"mlflow+{mlflow_server}", None, root))


# -- server processes ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    """A running ``umlaut serve``: its URL, process, logs and registry."""

    registry: Registry
    url: str
    proc: subprocess.Popen[bytes]
    root: Path

    @property
    def access_log(self) -> Path:
        return self.root / "access.jsonl"

    @property
    def stderr(self) -> str:
        return (self.root / "stderr.log").read_text(errors="replace")

    def client(self, token: str | None = BOTH_TOKEN, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def start_server(
    registry: Registry, root: Path, *args: str, env: dict[str, str] | None = None
) -> ServerProcess:
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    full_env = {
        **os.environ,
        **registry.env,
        "UMLAUT_SERVE_TOKENS": TOKENS,
        "UMLAUT_SPOOL_PATH": registry.spool_path,
        "UMLAUT_HOME": str(root / "home"),
        **(env or {}),
    }
    for var in ("UMLAUT_TRACKING_URI", "UMLAUT_ARTIFACT_URI", "UMLAUT_PROFILE"):
        full_env.pop(var, None)
    command = [sys.executable, "-m", "umlaut_core.cli", "--tracking-uri", registry.tracking_uri]
    if registry.artifact_uri:
        command += ["--artifact-uri", registry.artifact_uri]
    command += ["serve", "--port", str(port), "--access-log", str(root / "access.jsonl"), *args]
    with open(root / "stderr.log", "wb") as err, open(root / "stdout.log", "wb") as out:
        proc = subprocess.Popen(command, env=full_env, stdout=out, stderr=err, cwd=root)
    server = ServerProcess(registry, f"http://127.0.0.1:{port}", proc, root)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"umlaut serve exited {proc.returncode}:\n{server.stderr}")
        try:
            if httpx.get(server.url + "/ping", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise RuntimeError(f"umlaut serve did not answer /ping in 60 s:\n{server.stderr}")


#: The options of the shared server every protocol test uses.
SHARED_ARGS = (
    "--model", "Iris@Production",
    "--model", "Echo@Production",
    "--model", "Double@Production",
    "--model", "Slow@Production",
    "--model", "Failing@Production",
    "--model", "Moving@Production",
    "--timeout", "2",
    "--body-timeout", "2",
    "--max-body-size", "200000",
    "--resolve-ttl", "0.2",
)  # fmt: skip


@pytest.fixture(scope="session")
def server_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., ServerProcess]]:
    """Starts servers; every one is stopped at the end of the session."""
    started: list[ServerProcess] = []

    def start(registry: Registry, *args: str, env: dict[str, str] | None = None) -> ServerProcess:
        server = start_server(registry, tmp_path_factory.mktemp("server"), *args, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def sqlite_server(
    sqlite_registry: Registry, server_factory: Callable[..., ServerProcess]
) -> ServerProcess:
    """The shared server on the SQLite registry (auth on, 1 s timeout, 0.2 s TTL)."""
    return server_factory(sqlite_registry, *SHARED_ARGS)


@pytest.fixture(scope="session", params=["sqlite", "postgres+s3", "mlflow"])
def any_server(
    request: pytest.FixtureRequest, server_factory: Callable[..., ServerProcess]
) -> ServerProcess:
    """The shared server on each registry in turn."""
    if request.param == "sqlite":
        server: ServerProcess = request.getfixturevalue("sqlite_server")
        return server
    fixture = {"postgres+s3": "postgres_s3_registry", "mlflow": "mlflow_registry"}[request.param]
    registry: Registry = request.getfixturevalue(fixture)
    return server_factory(registry, *SHARED_ARGS)


def records_for(
    umlaut: Umlaut, reference_id: str, *, expect: int = 1, timeout: float = 30
) -> list[Any]:
    """The audit records with this reference id (spooled ones too), waiting up to
    ``timeout`` for ``expect`` of them."""
    deadline = time.monotonic() + timeout
    while True:
        found = umlaut.history(reference_id=reference_id, limit=100)
        if len(found) >= expect or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def records_by_reference(
    umlaut: Umlaut, model: str, since: Any, expect: set[str], timeout: float = 60
) -> dict[str, list[Any]]:
    """Every audit record of ``model`` since ``since`` (spooled ones too), by reference
    id, read in pages of 10,000; waits up to ``timeout`` for every id in ``expect``."""
    deadline = time.monotonic() + timeout
    while True:
        found: dict[str, list[Any]] = {}
        before = None
        while True:
            page = umlaut.history(model, since=since, limit=10_000, before=before)
            for record in page:
                found.setdefault(record.reference_id, []).append(record)
            if len(page) < 10_000:
                break
            before = page[-1].id
        if expect <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)
