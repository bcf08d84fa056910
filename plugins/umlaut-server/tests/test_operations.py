"""Operations under load: a stage move, SIGTERM, two workers. Every response is
matched with its audit record by its X-Request-ID."""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import http.client
import json
import signal
import socket
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from servekit import BOTH_TOKEN, Registry, ServerProcess, records_by_reference

pytestmark = pytest.mark.slow


def _hammer(
    url: str, path: str, body: Any, stop: threading.Event, prefix: str, threads: int = 4
) -> list[tuple[str, int, dict[str, Any] | None, float]]:
    """Requests from ``threads`` clients until ``stop``: (request id, status, body,
    time sent); connection errors are recorded with status 0."""
    out: list[tuple[str, int, dict[str, Any] | None, float]] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {BOTH_TOKEN}"}, timeout=30
        ) as http:
            i = 0
            while not stop.is_set():
                rid = f"{prefix}-{n}-{i}"
                i += 1
                sent = time.time()
                try:
                    r = http.post(path, json=body, headers={"X-Request-ID": rid})
                    item = (rid, r.status_code, r.json() if r.status_code == 200 else None, sent)
                except httpx.HTTPError:
                    item = (rid, 0, None, sent)
                with lock:
                    out.append(item)
                if item[1] == 0:
                    return

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for n in range(threads):
            pool.submit(client, n)
    return out


class TestStageMove:
    """A promotion made elsewhere reaches the server within resolve_ttl, no restart."""

    def test_every_response_matches_its_record_and_the_ledger(
        self, any_server: ServerProcess
    ) -> None:
        registry = any_server.registry
        prefix = f"move-{registry.name}-{time.time_ns()}"
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        with registry.umlaut() as umlaut:
            umlaut.promote("Moving", 1, "Production")
            time.sleep(0.5)  # past the server's 0.2 s TTL
            stop = threading.Event()
            results: list[Any] = []
            worker = threading.Thread(
                target=lambda: results.extend(
                    _hammer(any_server.url, "/v1/models/Moving/run", {"input": {}}, stop, prefix)
                )
            )
            worker.start()
            time.sleep(1.0)
            change = umlaut.promote("Moving", 2, "Production", reason="serve test")
            time.sleep(1.5)
            stop.set()
            worker.join()
            umlaut.promote("Moving", 1, "Production")
            assert results and all(status == 200 for _, status, _, _ in results)
            for _, _, body, _ in results:
                assert body is not None and body["output"] == body["version"]
            found = records_by_reference(umlaut, "Moving", since, {r[0] for r in results})
            records = {}
            for rid, _, body, _ in results:
                (record,) = found[rid]
                assert body is not None and record.version == body["version"]
                records[rid] = record
            history = umlaut.stage_history("Moving", "Production")
        moved_at = change.changed_at
        assert any(h.to_version == 2 and h.changed_at == moved_at for h in history)
        for record in records.values():
            if record.started_at < moved_at:
                assert record.version == 1
            elif record.started_at > moved_at + dt.timedelta(seconds=0.2 + 0.5):
                assert record.version == 2
        versions = [records[rid].version for rid, *_ in sorted(results, key=lambda r: r[3])]
        assert versions[0] == 1 and versions[-1] == 2


class TestShutdown:
    """SIGTERM drains in-flight requests; every answered request has its record."""

    @pytest.mark.parametrize(
        "registry_name", ["sqlite_registry", "postgres_s3_registry", "mlflow_registry"]
    )
    def test_sigterm_under_load_loses_no_record(
        self, registry_name: str, request: pytest.FixtureRequest, server_factory: Any
    ) -> None:
        registry: Registry = request.getfixturevalue(registry_name)
        server: ServerProcess = server_factory(registry, "--model", "Slow@Production")
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        prefix = f"term-{registry.name}-{time.time_ns()}"
        stop = threading.Event()
        results: list[Any] = []
        worker = threading.Thread(
            target=lambda: results.extend(
                _hammer(server.url, "/invocations", {"inputs": [{"sleep": 0.2}]}, stop, prefix, 6)
            )
        )
        worker.start()
        time.sleep(1.5)
        # …and one long call in flight when the signal comes: drained, not dropped.
        in_flight = concurrent.futures.ThreadPoolExecutor(1).submit(
            httpx.post, server.url + "/invocations", json={"inputs": [{"sleep": 1.0}]},
            headers={"Authorization": f"Bearer {BOTH_TOKEN}", "X-Request-ID": prefix + "-long"},
            timeout=30,
        )  # fmt: skip
        time.sleep(0.3)
        code = server.stop(signal.SIGTERM)
        stop.set()
        worker.join()
        assert in_flight.result().status_code == 200
        # uvicorn re-raises the signal once it has shut down cleanly.
        assert code in (0, -signal.SIGTERM), server.stderr
        assert "Application shutdown complete" in server.stderr
        answered = [rid for rid, status, _, _ in results if status == 200] + [prefix + "-long"]
        assert len(answered) >= 13
        assert {status for _, status, _, _ in results} <= {200, 503, 0}
        with registry.umlaut() as umlaut:
            # The server shipped its spool before it exited: every record is in the
            # store itself, none left for another process to ship.
            assert umlaut.pending().depth == 0
            found = records_by_reference(umlaut, "Slow", since, set(answered), timeout=0)
        assert all(len(found.get(rid, [])) == 1 for rid in answered)


class TestWorkers:
    """Two worker processes share one spool; /metrics adds both workers' counters."""

    @pytest.mark.parametrize("registry_name", ["sqlite_registry", "postgres_s3_registry"])
    def test_two_workers(
        self, registry_name: str, request: pytest.FixtureRequest, server_factory: Any
    ) -> None:
        registry: Registry = request.getfixturevalue(registry_name)
        server: ServerProcess = server_factory(
            registry, "--model", "Double@Production", "--workers", "2"
        )
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        deadline = time.monotonic() + 60
        while server.stderr.count("Application startup complete") < 2:
            assert time.monotonic() < deadline, server.stderr
            time.sleep(0.1)
        stop = threading.Event()
        timer = threading.Timer(2.0, stop.set)
        timer.start()
        results = _hammer(server.url, "/invocations", {"inputs": [{"v": 1}]}, stop, "two", 8)
        assert results and all(status == 200 for _, status, _, _ in results)
        time.sleep(1.2)
        lines = [json.loads(line) for line in server.access_log.read_text().splitlines()]
        workers = {line["worker"] for line in lines if line["path"] == "/invocations"}
        assert len(workers) == 2
        with server.client() as client:
            metrics = client.get("/metrics").text
        total = sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith('umlaut_serve_requests_total{model="Double"')
        )
        assert total == len(results)
        with registry.umlaut() as umlaut:
            found = records_by_reference(umlaut, "Double", since, {r[0] for r in results})
        assert all(len(found.get(rid, [])) == 1 for rid, *_ in results)

    def test_connections_spread_over_workers(
        self, sqlite_registry: Registry, server_factory: Any
    ) -> None:
        """Each worker listens on a socket of its own (SO_REUSEPORT), on loopback only,
        and the kernel spreads connections over them: 24 keep-alive connections
        opened at once are not taken by whichever worker is awake (a shared socket
        gave 8/0 or 7/1 of 8)."""
        if sys.platform != "linux":
            pytest.skip("SO_REUSEPORT balances connections on Linux only; elsewhere one socket")
        server: ServerProcess = server_factory(
            sqlite_registry, "--model", "Double@Production", "--workers", "2"
        )
        deadline = time.monotonic() + 60
        while server.stderr.count("Application startup complete") < 2:
            assert time.monotonic() < deadline, server.stderr
            time.sleep(0.1)
        port = int(server.url.rsplit(":", 1)[1])
        # "startup complete" is logged just before a worker listens: wait for both.
        while len(_listening(port)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _listening(port) == [f"0100007F:{port:04X}"] * 2  # one per worker, loopback
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=30) for _ in range(24)]
        for connection in connections:
            connection.connect()  # all open before any request: each is placed once
        headers = {"Authorization": f"Bearer {BOTH_TOKEN}", "Content-Type": "application/json"}
        for i, connection in enumerate(connections):
            connection.request(
                "POST",
                "/invocations",
                b'{"inputs": [{"v": 1}]}',
                {**headers, "X-Request-ID": f"spread-{i}"},
            )
        assert [c.getresponse().status for c in connections] == [200] * 24
        for connection in connections:
            connection.close()
        time.sleep(1.2)  # the access log is flushed in the background
        lines = [json.loads(line) for line in server.access_log.read_text().splitlines()]
        per_worker = Counter(
            line["worker"] for line in lines if line["request_id"].startswith("spread-")
        )
        # Binomial(24, 1/2): a worker has fewer than 3 with probability 4e-5.
        assert sum(per_worker.values()) == 24 and len(per_worker) == 2
        assert min(per_worker.values()) >= 3, per_worker

    @pytest.mark.parametrize("holder_listens", [True, False])
    def test_a_port_in_use_is_refused(
        self, holder_listens: bool, sqlite_registry: Registry, server_factory: Any
    ) -> None:
        """Another server of the same user on the port is not joined, whether its
        workers listen already or it holds the port as our supervisor does (bound with
        SO_REUSEPORT, not listening): the second stops with a message."""
        with socket.socket() as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            other.bind(("127.0.0.1", 0))
            if holder_listens:
                other.listen()
            port = other.getsockname()[1]
            with pytest.raises(RuntimeError, match=f"cannot listen on 127.0.0.1:{port}"):
                server_factory(
                    sqlite_registry, "--all-models", "--workers", "2", "--port", str(port)
                )
            assert _listening(port) == ([f"0100007F:{port:04X}"] if holder_listens else [])


def _listening(port: int) -> list[str]:
    """The local addresses (hex, as /proc/net/tcp gives them) listening on ``port``."""
    table = Path("/proc/net/tcp")
    return [
        fields[1]
        for fields in (line.split() for line in table.read_text().splitlines()[1:])
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port  # 0A: LISTEN
    ]


class TestBinding:
    """Without ``--host`` the server listens on the loopback interface only."""

    def test_listens_on_loopback_only(self, sqlite_server: ServerProcess) -> None:
        table = Path("/proc/net/tcp")
        if not table.exists():
            pytest.skip("reads the kernel's socket table, /proc/net/tcp (Linux only)")
        port = int(sqlite_server.url.rsplit(":", 1)[1])
        assert _listening(port) == [f"0100007F:{port:04X}"]  # 127.0.0.1, nothing on 0.0.0.0
