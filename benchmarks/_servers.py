"""Servers shared by every benchmark module in one run, started on first use.

``postgres()`` (a :class:`tests._services.postgres.PostgresServer`, fsync on),
``moto()`` (a ``ThreadedMotoServer`` endpoint) and ``mlflow()`` (an ``mlflow server``
URL, same flags as ``tests/_services/mlflow_server.py``: ``--workers 1``, job
execution off, artifacts proxied) each start once per process and stop in
:func:`stop_all`, which ``run.py`` calls at the end (and ``atexit`` as a fallback).
``mlflow_at(exe)`` starts a server from another installation, e.g. the MLflow 1.28
of the original umlaut's virtual environment, with the same flags.

A server that cannot start raises :class:`Unavailable` with the reason; benchmark
modules turn that into a ``skipped`` entry instead of a number.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = ["Unavailable", "mlflow", "mlflow_at", "moto", "postgres", "stop_all"]

ROOT = Path(__file__).resolve().parents[1]
_started: dict[str, Any] = {}
_stops: list[Callable[[], None]] = []


class Unavailable(RuntimeError):
    """A server this scenario needs could not be started (the message says why)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres() -> Any:
    """A running PostgreSQL server (``.create_database(name)`` → URL); fsync on."""
    if "postgres" not in _started:
        spec = importlib.util.spec_from_file_location(
            "_bench_pg_service", ROOT / "tests" / "_services" / "postgres.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        try:
            spec.loader.exec_module(module)
            server = module.PostgresServer(fsync=True)
            server.start()
        except Exception as exc:  # missing binaries, no psycopg, no pytest, ...
            raise Unavailable(f"PostgreSQL: {exc}"[:500]) from exc
        _started["postgres"] = server
        _stops.append(server.stop)
    return _started["postgres"]


def fake_aws_credentials() -> None:
    """Fake credentials and a region for moto, unless the environment has its own."""
    for var, value in {
        "AWS_ACCESS_KEY_ID": "AKIABENCHFAKE",
        "AWS_SECRET_ACCESS_KEY": "bench-fake-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        os.environ.setdefault(var, value)


def run_alone(run: Callable[..., Iterable[Any]]) -> None:
    """Run one benchmark module by itself: print its rows, stop the servers it started."""
    try:
        for row in run(quick="--quick" in sys.argv):
            print(row.as_dict())
    finally:
        stop_all()


def moto() -> str:
    """Endpoint URL of a moto S3 server over HTTP on 127.0.0.1; sets fake credentials."""
    if "moto" not in _started:
        fake_aws_credentials()
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:
            raise Unavailable(f"moto[server] is not installed ({exc})") from exc
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        _started["moto"] = f"http://{host}:{port}"
        _stops.append(server.stop)
    return str(_started["moto"])


def mlflow() -> str:
    """URL of an ``mlflow server`` from this interpreter's installation."""
    if "mlflow" not in _started:
        exe = Path(sys.executable).with_name("mlflow")
        found = str(exe) if exe.exists() else shutil.which("mlflow")
        if found is None:
            raise Unavailable("the `mlflow` command is not installed here")
        _started["mlflow"] = mlflow_at(found, label="mlflow")
    return str(_started["mlflow"])


def mlflow_at(exe: str, *, label: str, extra_path: str | None = None) -> str:
    """Start ``exe server`` with the tests' flags; return its URL (stopped by stop_all).

    The server's stdout/stderr go to ``server.log`` in its temp folder; the folder is
    named in the error if it does not answer ``/health`` within 90 s.
    """
    root = Path(tempfile.mkdtemp(prefix=f"umlaut-bench-{label}-"))
    port = _free_port()
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    env.pop("MLFLOW_TRACKING_URI", None)
    if extra_path:  # MLflow 1.x runs `gunicorn` from PATH
        env["PATH"] = f"{extra_path}{os.pathsep}{env.get('PATH', '')}"
    cmd = [exe, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--serve-artifacts"]
    cmd += ["--artifacts-destination", str(root / "artifacts")]
    log = root / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"

    def stop() -> None:
        # start_new_session: the server's workers share its process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(timeout=5)
        shutil.rmtree(root, ignore_errors=True)

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:]
            raise Unavailable(f"{label} server exited with {proc.returncode}: {tail}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                _stops.append(stop)
                return url
        except OSError:
            time.sleep(0.2)
    stop()
    raise Unavailable(f"{label} server gave no answer on {url}/health within 90 s")


def stop_all() -> None:
    """Stop every server started in this process, newest first."""
    while _stops:
        with contextlib.suppress(Exception):
            _stops.pop()()
    _started.clear()


atexit.register(stop_all)
