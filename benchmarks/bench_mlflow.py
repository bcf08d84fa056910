"""umlaut-mlflow on a real ``mlflow server`` (started here like the tests' one).

Baseline, measured in the same run on the same server: a hand-written MLflow audit
of one call with ``MlflowClient`` — ``create_run`` with the data as tags, then
``set_terminated`` — which is the least any "one run per call" design can do.
Ours: ``run_model`` (pinned version and alias; audit written synchronously),
alternating round by round with the baseline, and ``track_model`` of a changed model
(new version every call). Each row carries the HTTP requests per call, counted by
wrapping ``requests.Session.request``.

Needs mlflow and umlaut-mlflow installed in the interpreter that runs it.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import _servers
from _harness import Row, latency_row, measure, measure_interleaved

from umlaut_core import Umlaut
from umlaut_core.testing.models import Threshold

_COUNT = {"n": 0}


def _count_requests() -> None:
    import requests

    if getattr(requests.Session.request, "_umlaut_counted", False):
        return
    original = requests.Session.request

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        _COUNT["n"] += 1
        return original(self, *args, **kwargs)

    counted._umlaut_counted = True  # type: ignore[attr-defined]
    requests.Session.request = counted  # type: ignore[method-assign]


def _requests_per_call(fn: Callable[[], Any], calls: int = 10) -> float:
    before = _COUNT["n"]
    for _ in range(calls):
        fn()
    return (_COUNT["n"] - before) / calls


@contextmanager
def _server() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="bench-mlflow-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exe = str(Path(sys.executable).with_name("mlflow"))
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    cmd = [exe, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    cmd += ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--serve-artifacts"]
    cmd += ["--artifacts-destination", str(root / "artifacts")]
    with (root / "log").open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"mlflow server did not start; see {root / 'log'}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def run(quick: bool) -> list[Row]:
    from mlflow import MlflowClient

    _count_requests()
    number, repeat = (10, 3) if quick else (30, 7)
    rows: list[Row] = []
    with _server() as url:
        client = MlflowClient(url)
        exp = client.create_experiment("raw audit")

        def raw_audit() -> None:
            run = client.create_run(exp, tags={"inputs": '{"x":1}', "output": "true"})
            client._tracking_client.store.update_run_info(
                run.info.run_id, run_status=3, end_time=int(time.time() * 1000), run_name=None
            )

        # sync: each call writes its own run, as the raw baseline does (the spooled
        # default is measured in bench_original.py). The three alternate round by round.
        with Umlaut(f"mlflow+{url}", delivery="sync") as u:
            u.track_model(Threshold(5), "bench", stage="Production")

            def pinned_call() -> None:
                u.run_model("bench", {"x": 7}, version=1)

            def alias_call() -> None:
                u.run_model("bench", {"x": 7}, stage="Production")

            got = measure_interleaved(
                {"raw": raw_audit, "pinned": pinned_call, "alias": alias_call},
                number=number,
                repeat=repeat,
            )
            base, pinned, alias = got["raw"], got["pinned"], got["alias"]
            base_req = _requests_per_call(raw_audit)
            pinned_req = _requests_per_call(pinned_call)
            alias_req = _requests_per_call(alias_call)
            limits = itertools.count(100)
            track = measure(
                lambda: u.track_model(Threshold(next(limits)), "bench track"),
                number=max(3, number // 5),
                repeat=repeat,
            )
            track_req = _requests_per_call(
                lambda: u.track_model(Threshold(next(limits)), "bench track"), calls=3
            )
    rows.append(
        latency_row(
            "run_model, version pinned (audit sync)",
            "mlflow server",
            pinned,
            base,
            "raw MlflowClient create_run+terminate",
            unit="ms/call",
            requests_per_call=pinned_req,
            baseline_requests=base_req,
        )
    )
    rows.append(
        latency_row(
            "run_model, by alias, default resolve_ttl=1 s (audit sync)",
            "mlflow server",
            alias,
            base,
            "raw MlflowClient create_run+terminate",
            unit="ms/call",
            requests_per_call=alias_req,
            baseline_requests=base_req,
        )
    )
    rows.append(
        latency_row(
            "track_model (new version)",
            "mlflow server",
            track,
            None,
            "",
            unit="ms/call",
            requests_per_call=track_req,
        )
    )
    return rows


if __name__ == "__main__":
    _servers.run_alone(run)
