"""Running the app under uvicorn: one process, or ``--workers N`` through uvicorn's
multiprocess supervisor.

With one worker the app is built here and served in this process. With several,
uvicorn binds the socket once, spawns N processes that each build the app with
:func:`~umlaut_server._app.app_from_environment` (the configuration travels in
``UMLAUT_SERVE_CONFIG``), restarts a worker that dies, and on SIGTERM/SIGINT tells
every worker to stop: each stops accepting, lets in-flight requests finish (up to
``--graceful-timeout``), then within as long again waits for its model threads and
ships the spool, and closes its ``Umlaut``; whatever is left (the store is down)
stays in the spool file and is shipped by the next process that opens it. A
response is only ever sent after its record is in the spool, so a stop loses none.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile

import uvicorn

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
    # The workers share one listening socket, and libuv (uvloop, the [fast] extra)
    # accepts every pending connection at each wake-up: one worker took all 8
    # keep-alive connections of a load generator and the other idled (iris, batched:
    # 1,208 req/s, one worker at 99% CPU). One accept per wake-up lets the other
    # worker take its share (both busy, 1,518 req/s). Read by libuv in each worker.
    single_accept = "UV_TCP_SINGLE_ACCEPT" not in os.environ
    if single_accept:
        os.environ["UV_TCP_SINGLE_ACCEPT"] = "1"
    try:
        shared = dataclasses.replace(config, metrics_dir=metrics_dir)
        os.environ[ENV_CONFIG] = shared.to_json()
        uvicorn.run(
            "umlaut_server._app:app_from_environment",
            factory=True,
            workers=config.workers,
            **uvicorn_options(config),  # type: ignore[arg-type]
        )
    finally:
        os.environ.pop(ENV_CONFIG, None)
        if single_accept:
            os.environ.pop("UV_TCP_SINGLE_ACCEPT", None)
        shutil.rmtree(metrics_dir, ignore_errors=True)
