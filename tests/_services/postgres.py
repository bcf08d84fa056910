"""A real PostgreSQL server on 127.0.0.1 for the tests, started once per session.

``postgres_server`` (session scope) finds the server binaries under
``/usr/lib/postgresql/*/bin`` (or on ``PATH``); when they are missing and the session
runs as root on Debian/Ubuntu it installs them with ``apt-get install -y postgresql``.
It then runs ``initdb`` into a fresh temporary folder (trust authentication, owned by
the ``postgres`` user when running as root, because the server refuses to run as
root), starts it with ``pg_ctl`` listening on 127.0.0.1 on a free port with its
unix socket inside that folder, and stops it at session end (``-m fast``, falling
back to ``-m immediate``). ``postgres_database`` gives each test a throwaway
database as a ``postgresql+psycopg://`` URL.

If no server can be started, tests that need one are skipped with the reason, or
fail when the ``CI`` environment variable is set. :class:`PostgresServer` is usable
outside pytest too (the benchmarks start one the same way).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "PostgresUnavailable", "postgres_database", "postgres_server"]


class PostgresUnavailable(RuntimeError):
    """The binaries are missing and cannot be installed, or the server did not start."""


def _find_bindir() -> Path | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
    )
    for folder in reversed(candidates):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).parent
    return None


def _install() -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise PostgresUnavailable(
            "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin or on "
            "PATH, and they can only be installed automatically as root with apt-get "
            "(install the 'postgresql' package)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "postgresql"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise PostgresUnavailable(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One throwaway PostgreSQL cluster: ``start()``, ``restart()``, ``stop()``."""

    def __init__(self, *, fsync: bool = False) -> None:
        self.fsync = fsync
        self.host = "127.0.0.1"
        self.port = 0
        self.root: Path | None = None
        self._bindir: Path | None = None

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 120) -> str:
        assert self._bindir is not None
        cmd = [str(self._bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            # The server refuses to run as root; its files belong to 'postgres'.
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd="/")
        if done.returncode != 0:
            log = ""
            if self.root is not None and (self.root / "server.log").exists():
                log = (self.root / "server.log").read_text(errors="replace")[-2000:]
            raise PostgresUnavailable(
                f"{' '.join(args[:2])} failed ({done.returncode}): "
                f"{(done.stderr or done.stdout)[-2000:]}\n{log}"
            )
        return done.stdout

    def start(self) -> PostgresServer:
        self._bindir = _find_bindir()
        if self._bindir is None:
            _install()
            self._bindir = _find_bindir()
            if self._bindir is None:
                raise PostgresUnavailable("apt-get installed postgresql but no initdb found")
        self.root = Path(tempfile.mkdtemp(prefix="umlaut-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        data = self.root / "data"
        self._run(
            "initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
            "--no-locale", "--no-sync",
        )  # fmt: skip
        self.port = _free_port()
        self._options = (
            f"-c listen_addresses={self.host} -p {self.port} -k {self.root} "
            f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=200"
        )
        self._pg_ctl("start")
        return self

    def _pg_ctl(self, action: str, *extra: str) -> None:
        assert self.root is not None
        self._run(
            "pg_ctl", action, "-D", str(self.root / "data"), "-l", str(self.root / "server.log"),
            "-w", "-t", "60", "-o", self._options, *extra,
        )  # fmt: skip

    def pause(self) -> None:
        """Stop the server but keep its data, to simulate an outage."""
        self._pg_ctl("stop", "-m", "fast")

    def resume(self) -> None:
        """Start the server again after :meth:`pause`, on the same port."""
        self._pg_ctl("start")

    def restart(self) -> None:
        """Stop and start the server on the same port (drops every connection)."""
        self._pg_ctl("restart", "-m", "fast")

    def stop(self) -> None:
        if self.root is None:
            return
        try:
            self._pg_ctl("stop", "-m", "fast")
        except (PostgresUnavailable, subprocess.TimeoutExpired):
            # Not stopping cleanly: kill it; if that fails too it is not running.
            with contextlib.suppress(PostgresUnavailable, subprocess.TimeoutExpired):
                self._pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its ``postgresql+psycopg://`` URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _unavailable(reason: str) -> None:
    message = f"PostgreSQL server unavailable, postgres tests NOT run: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL server on 127.0.0.1 (``.host``, ``.port``, ``.admin_url``)."""
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        _unavailable(f"cannot import psycopg ({exc}); pip install 'psycopg[binary]'")
    server = PostgresServer()
    try:
        server.start()
    except (PostgresUnavailable, OSError, subprocess.TimeoutExpired) as exc:
        server.stop()
        _unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_database(postgres_server: PostgresServer) -> str:
    """The ``postgresql+psycopg://`` URL of a new, empty database for this test."""
    return postgres_server.create_database()
