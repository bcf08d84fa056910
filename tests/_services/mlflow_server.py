"""A real ``mlflow server`` on 127.0.0.1, once per test session, plus a shared
``mlflow+sqlite:///`` database.

The server runs with ``--workers 1`` and ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``:
with the defaults MLflow 3 starts seven job processes, takes ~10 s and 2.9 GB, and
several uvicorn workers stall keep-alive requests. Artifacts are proxied by the server
(``--serve-artifacts --artifacts-destination``), so a client reaches them over HTTP
exactly as a remote team would (``mlflow-artifacts:/…`` URIs).

Nothing from mlflow is imported at module import: every tox env loads this module.
The ``mlflow`` executable is looked up next to the running interpreter first (the
venv the tests run in), then on ``PATH``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["MlflowServer", "mlflow_server", "mlflow_sqlite_uri"]

_START_TIMEOUT_S = 60.0


def _unavailable(reason: str) -> None:
    """Skip loudly outside CI; fail under CI, where the server must run."""
    message = f"mlflow server unavailable: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mlflow_executable() -> str | None:
    beside = Path(sys.executable).with_name("mlflow")
    if beside.exists():
        return str(beside)
    return shutil.which("mlflow")


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            _unavailable(f"`mlflow server` exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    proc.terminate()
    _unavailable(f"no answer on {url}/health within {_START_TIMEOUT_S:.0f} s; see {log}")


class MlflowServer:
    """One ``mlflow server`` process over a SQLite store in ``root``.

    ``pause()`` stops the process and ``resume()`` starts it again on the same port
    with the same store, to simulate an outage.
    """

    def __init__(self, root: Path) -> None:
        exe = _mlflow_executable()
        if exe is None:
            _unavailable("the `mlflow` command is not installed (pip install mlflow)")
        assert exe is not None
        self.exe, self.root = exe, root
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MlflowServer:
        env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        env.pop("MLFLOW_TRACKING_URI", None)
        command = [
            self.exe, "server", "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", "1", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
            "--serve-artifacts", "--artifacts-destination", str(self.root / "artifacts"),
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                command,
                cwd=self.root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_healthy(self.url, self.proc, self.log)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        # The server runs in its own session: stop the whole group (uvicorn children).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        self.proc = None

    pause = stop

    def resume(self) -> None:
        self.start()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL (``http://127.0.0.1:<port>``) of a running ``mlflow server``."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"))
    try:
        yield server.start().url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``mlflow+sqlite:///…`` for one database shared by the session (creating one
    runs MLflow's migrations, 2–3 s). Artifacts go to a folder beside the file."""
    pytest.importorskip("mlflow", reason="mlflow is not installed")
    root = tmp_path_factory.mktemp("mlflow-sqlite")
    return f"mlflow+sqlite:///{root / 'mlflow.db'}"
