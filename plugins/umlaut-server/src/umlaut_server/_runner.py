"""Running the app under uvicorn: one process, or ``--workers N`` through uvicorn's
multiprocess supervisor.

With one worker the app is built here and served in this process. With several,
uvicorn spawns N processes that each build the app with
:func:`~umlaut_server._app.app_from_environment` (the configuration travels in
``UMLAUT_SERVE_CONFIG``), restarts a worker that dies, and on SIGTERM/SIGINT tells
every worker to stop: each stops accepting, lets in-flight requests finish (up to
``--graceful-timeout``), then within as long again waits for its model threads and
ships the spool, and closes its ``Umlaut``; whatever is left (the store is down)
stays in the spool file and is shipped by the next process that opens it. A
response is only ever sent after its record is in the spool, so a stop loses none.

On Linux each worker listens on a socket of its own, all bound to the one port with
``SO_REUSEPORT``, and the kernel spreads new connections evenly over them (as nginx's
``reuseport``, gunicorn's ``--reuse-port``). With one shared socket the workers race
for every connection, and the one that happens to be awake takes most of them: of a
load generator's 8 keep-alive connections, two workers got 8/0, 7/1 and 6/2 in three
of five runs, and a worker holding all of them serves alone while the other idles.
Elsewhere (``SO_REUSEPORT`` does not balance on BSD or macOS) the workers share one
socket.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import socket
import sys
import tempfile
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from ._config import ENV_CONFIG, ServeConfig

__all__ = ["run_server", "uvicorn_options"]


def uvicorn_options(config: ServeConfig) -> dict[str, object]:
    return {
        "host": config.host,
        "port": config.port,
        "timeout_graceful_shutdown": config.graceful_timeout,
        "root_path": config.root_path,
        "proxy_headers": config.proxy_headers,
        "forwarded_allow_ips": config.forwarded_allow_ips,
        "access_log": False,  # ours is the JSON-lines access log
        "server_header": False,
        "log_level": "info",
        "lifespan": "on",
    }


def run_server(config: ServeConfig) -> None:
    if config.workers == 1:
        from ._app import create_app

        uvicorn.run(create_app(config), **uvicorn_options(config))  # type: ignore[arg-type]
        return
    metrics_dir = tempfile.mkdtemp(prefix="umlaut-serve-metrics-")
    # Where the workers share one socket (not Linux): libuv (uvloop, the [fast] extra)
    # accepts every pending connection at each wake-up, so one worker took all 8
    # keep-alive connections of a load generator and the other idled (iris, batched:
    # 1,208 req/s, one worker at 99% CPU). One accept per wake-up lets the other
    # worker take its share (both busy, 1,518 req/s). Read by libuv in each worker.
    single_accept = "UV_TCP_SINGLE_ACCEPT" not in os.environ and not _REUSE_PORT
    if single_accept:
        os.environ["UV_TCP_SINGLE_ACCEPT"] = "1"
    try:
        shared = dataclasses.replace(config, metrics_dir=metrics_dir)
        os.environ[ENV_CONFIG] = shared.to_json()
        options = uvicorn_options(config)
        uv_config = uvicorn.Config(
            "umlaut_server._app:app_from_environment",
            factory=True,
            workers=config.workers,
            **options,  # type: ignore[arg-type]
        )
        if _REUSE_PORT:
            sock = _ReusePortSocket.for_config(uv_config)
            host, port = sock.getsockname()[:2]
            logging.getLogger("uvicorn.error").info(
                "Uvicorn running on http://%s:%d with %d workers, a socket each (SO_REUSEPORT)",
                host if ":" not in host else f"[{host}]",
                port,
                config.workers,
            )
        else:
            sock = uv_config.bind_socket()
        try:
            Multiprocess(uv_config, sockets=[sock]).run()
        except KeyboardInterrupt:  # as uvicorn.run: the supervisor has stopped the workers
            pass
        finally:
            sock.close()
    finally:
        os.environ.pop(ENV_CONFIG, None)
        if single_accept:
            os.environ.pop("UV_TCP_SINGLE_ACCEPT", None)
        shutil.rmtree(metrics_dir, ignore_errors=True)


_REUSE_PORT = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


class _ReusePortSocket(socket.socket):
    """The supervisor's socket: bound with ``SO_REUSEPORT`` and never listening, so it
    holds the port (and a port taken by another program fails here, before any worker
    starts) without ever being given a connection.

    uvicorn hands its socket to each worker it spawns, by pickling. This one pickles
    as a recipe instead of a duplicate: each worker, and each worker restarted after
    a crash, unpickles it as a fresh socket bound to the same address, which uvicorn
    then listens on. The kernel admits only sockets of the same user to the group."""

    @classmethod
    def for_config(cls, config: uvicorn.Config) -> socket.socket:
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        address = (config.host, config.port)
        # A plain bind first: SO_REUSEPORT alone would let a second server of the same
        # user (one left running) join this port's group and take half the traffic.
        probe = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock = cls(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
            address = (config.host, probe.getsockname()[1])  # the port chosen for 0
            probe.close()
            # SO_REUSEPORT only: with SO_REUSEADDR too, Linux would let any process bind
            # beside this socket while no worker listens (at start, or all restarting).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(address)
        except OSError as exc:
            sock.close()
            host = f"[{config.host}]" if ":" in config.host else config.host
            logging.getLogger("uvicorn.error").error(
                "cannot listen on %s:%d (%s); stop what holds the port or choose another "
                "with --port",
                host,
                config.port,
                exc.strerror or exc,
            )
            sys.exit(STARTUP_FAILURE)
        finally:
            probe.close()
        return sock

    def __reduce__(self) -> tuple[Any, ...]:
        host, port = self.getsockname()[:2]  # the port itself, also when 0 was asked
        return _worker_socket, (self.family, host, port)


def _worker_socket(family: int, host: str, port: int) -> socket.socket:
    """A worker's own socket in the port's group (unpickled in the worker); with
    SO_REUSEADDR, as uvicorn's, so a restarted server binds beside the connections
    its predecessor left in TIME_WAIT."""
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock
