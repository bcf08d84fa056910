"""Authentication, limits and hostile requests against the shared SQLite server:
status, error code, and never a traceback, a token or an input value in a body."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from servekit import BOTH_TOKEN, READ_TOKEN, RUN_TOKEN, TOKENS, ServerProcess, records_for

pytestmark = pytest.mark.slow

SECRET = "s3cr3t-input-value"


def _clean(response: httpx.Response) -> dict[str, str]:
    """The error body, checked to hold no traceback and no input value."""
    assert "Traceback" not in response.text and SECRET not in response.text
    body: dict[str, str] = response.json()
    assert set(body) >= {"error_code", "message"}
    return body


class TestAuthentication:
    """Bearer tokens by sha256 hash and scope; refusals counted, never logged."""

    @pytest.mark.parametrize(
        ("token", "path", "status", "code"),
        [
            (None, "/v1/models/Double/run", 401, "UNAUTHENTICATED"),
            ("not-a-known-token", "/v1/models/Double/run", 401, "UNAUTHENTICATED"),
            (READ_TOKEN, "/v1/models/Double/run", 403, "PERMISSION_DENIED"),
            (RUN_TOKEN, "/v1/models/Double/run", 200, None),
        ],
    )
    def test_run_route(
        self, sqlite_server: ServerProcess, token: str | None, path: str, status: int, code: str
    ) -> None:
        with sqlite_server.client(token=token) as client:
            response = client.post(path, json={"input": {"v": 1}})
        assert response.status_code == status
        if code is not None:
            assert _clean(response)["error_code"] == code
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")

    def test_read_scope_and_refusals_in_metrics(self, sqlite_server: ServerProcess) -> None:
        with sqlite_server.client(token=RUN_TOKEN) as client:
            assert client.get("/metrics").status_code == 403
        with sqlite_server.client(token=READ_TOKEN) as client:
            metrics = client.get("/metrics").text
        assert 'umlaut_serve_auth_refused_total{reason="scope"}' in metrics
        assert "umlaut_serve_spool_depth" in metrics
        assert "umlaut_serve_request_duration_seconds_bucket" in metrics

    def test_logs_never_hold_a_token_or_its_hash(self, sqlite_server: ServerProcess) -> None:
        with sqlite_server.client(token="wrong-" + RUN_TOKEN) as client:
            client.post("/v1/models/Double/run", json={"input": {"v": 1}})
        with sqlite_server.client() as client:
            client.post("/v1/models/Failing/run", json={"input": {"x": SECRET}})
        time.sleep(0.2)
        logs = sqlite_server.stderr + sqlite_server.access_log.read_text()
        assert "refused POST /v1/models/Double/run" in logs
        for token in (RUN_TOKEN, READ_TOKEN, BOTH_TOKEN):
            assert token not in logs
        for entry in TOKENS.split(";"):
            assert entry.split("=")[0].removeprefix("sha256:")[:8] not in logs
        lines = [json.loads(line) for line in sqlite_server.access_log.read_text().splitlines()]
        assert set(lines[-1]) == {
            "ts", "request_id", "method", "path", "status", "duration_ms", "protocol", "model",
            "version", "bytes_in", "bytes_out", "client", "error_code", "auth", "worker",
        }  # fmt: skip
        assert {line["auth"] for line in lines} >= {"ok", "unknown", "none"}
        assert SECRET not in logs  # bodies are never logged


class TestBadRequests:
    """Malformed, mistyped, oversized and hostile bodies get MLflow-style errors."""

    @pytest.mark.parametrize(
        ("content", "content_type", "status", "code"),
        [
            (b'{"dataframe_records": [', "application/json", 400, "MALFORMED_REQUEST"),
            (b'{"inputs": [1], "instances": [2]}', "application/json", 400, "BAD_REQUEST"),
            (b'[{"a": 1}]', "application/json", 400, "BAD_REQUEST"),
            (b'{"inputs": "\xff\xfe"}', "application/json", 400, "MALFORMED_REQUEST"),
            (b"[" * 100_000 + b"]" * 100_000, "application/json", 400, "MALFORMED_REQUEST"),
            # Parses, but nested deeper than an audit record may hold.
            (b'{"inputs": ' + b"[" * 500 + b"]" * 500 + b"}", "application/json", 400,
             "BAD_REQUEST"),
            (b'{"inputs": [1]}', "text/plain", 415, "BAD_REQUEST"),
            (b'{"inputs": [1]}', "application/json; charset=latin-1", 415, "BAD_REQUEST"),
            (b'{"inputs": [1]}', "application/json; format=pandas-split", 415, "BAD_REQUEST"),
            (b"x" * 200_001, "application/json", 413, "REQUEST_LIMIT_EXCEEDED"),
            # The client's own text as a field name: never repeated in the error body.
            (b'{"inputs": [1], "%s": 1}' % SECRET.encode(), "application/json", 400,
             "BAD_REQUEST"),
            (b'{"dataframe_split": {"data": [[1]], "%s": 1}}' % SECRET.encode(),
             "application/json", 400, "BAD_REQUEST"),
        ],
        ids=["truncated", "two-keys", "list", "not-utf8", "deep", "nested-500", "text", "latin1",
             "param", "big", "secret-key", "secret-split-key"],
    )  # fmt: skip
    def test_invocations(
        self,
        sqlite_server: ServerProcess,
        content: bytes,
        content_type: str,
        status: int,
        code: str,
    ) -> None:
        with sqlite_server.client() as client:
            response = client.post(
                "/invocations", content=content, headers={"Content-Type": content_type}
            )
        assert response.status_code == status, response.text
        assert _clean(response)["error_code"] == code

    def test_streamed_body_over_the_limit_and_a_secret_tensor_name(
        self, sqlite_server: ServerProcess
    ) -> None:
        def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
            yield b'{"inputs": ['
            for _ in range(30):
                yield b"1," * 5_000
            yield b"1]}"

        tensor = {"name": SECRET, "shape": [2], "datatype": "FP32", "data": [1.0]}
        with sqlite_server.client() as client:
            big = client.post(
                "/invocations", content=chunks(), headers={"Content-Type": "application/json"}
            )
            v2 = client.post("/v2/models/Double/infer", json={"inputs": [tensor]})
        assert big.status_code == 413 and "content-length" not in big.request.headers
        assert _clean(big)["error_code"] == "REQUEST_LIMIT_EXCEEDED"
        assert v2.status_code == 400 and "input tensor 0" in _clean(v2)["message"]

    def test_model_error_names_its_type_only(self, sqlite_server: ServerProcess) -> None:
        with sqlite_server.client() as client:
            response = client.post(
                "/v1/models/Failing/run",
                json={"input": {"x": SECRET}},
                headers={"X-Request-ID": "failing-1"},
            )
        assert response.status_code == 400
        body = _clean(response)
        assert "ValueError" in body["message"] and response.headers["X-Umlaut-Version"] == "1"
        with sqlite_server.registry.umlaut() as umlaut:
            (record,) = records_for(umlaut, "failing-1")
        assert record.status == "error" and SECRET in (record.error_message or "")

    def test_unknown_model_route_and_request_id(self, sqlite_server: ServerProcess) -> None:
        with sqlite_server.client() as client:
            unserved = client.post("/v1/models/Unknown/run", json={"input": 1})
            route = client.get("/no/such/route")
            method = client.get("/invocations")
            bad_id = client.post(
                "/v1/models/Double/run", json={"input": {"v": 1}}, headers={"X-Request-ID": "a b"}
            )
        assert (unserved.status_code, _clean(unserved)["error_code"]) == (
            404,
            "RESOURCE_DOES_NOT_EXIST",
        )
        assert (route.status_code, _clean(route)["error_code"]) == (404, "ENDPOINT_NOT_FOUND")
        assert method.status_code == 405
        assert (bad_id.status_code, _clean(bad_id)["error_code"]) == (
            400,
            "INVALID_PARAMETER_VALUE",
        )


class TestTimeouts:
    """A slow model is answered 504 and audited as an error; slow clients hold no thread."""

    def test_model_over_its_deadline(self, sqlite_server: ServerProcess) -> None:
        started = time.monotonic()
        with sqlite_server.client() as client:
            response = client.post(
                "/v1/models/Slow/run",
                json={"input": {"sleep": 3}},
                headers={"X-Request-ID": "slow-1"},
            )
        assert response.status_code == 504
        assert _clean(response)["error_code"] == "DEADLINE_EXCEEDED"
        assert time.monotonic() - started < 2.9  # answered at the deadline, not the end
        with sqlite_server.registry.umlaut() as umlaut:
            (record,) = records_for(umlaut, "slow-1")
        assert record.status == "error" and record.output is None
        assert record.error_type == "umlaut_core.exceptions.DeadlineExceededError"

    def test_batch_over_its_deadline(self, sqlite_server: ServerProcess) -> None:
        """``/batch`` shares the limit: 504 at the deadline; the input that finished in
        time keeps its output, the one that overran and the one that never started
        are recorded as DeadlineExceededError (one record each)."""
        started = time.monotonic()
        with sqlite_server.client() as client:
            response = client.post(
                "/v1/models/Slow/batch",
                json={"inputs": [{"sleep": 0.1}, {"sleep": 3}, {"sleep": 0.2}]},
                headers={"X-Request-ID": "slow-batch"},
            )
        assert response.status_code == 504
        assert _clean(response)["error_code"] == "DEADLINE_EXCEEDED"
        assert time.monotonic() - started < 2.9
        with sqlite_server.registry.umlaut() as umlaut:
            records = records_for(umlaut, "slow-batch", expect=3)
        by_sleep = {r.inputs["sleep"]: r for r in records}
        assert len(records) == 3 and by_sleep[0.1].status == "ok"
        for overran, message in ((3, "returned after"), (0.2, "did not run")):
            record = by_sleep[overran]
            assert record.error_type == "umlaut_core.exceptions.DeadlineExceededError"
            assert message in (record.error_message or "") and record.output is None

    def test_slow_body_is_served_and_a_stalled_one_refused(
        self, sqlite_server: ServerProcess
    ) -> None:
        def trickle() -> Iterator[bytes]:
            for part in (b'{"input": ', b'{"v": ', b"21}}"):
                time.sleep(0.4)
                yield part

        with sqlite_server.client() as client:
            slow = client.post(
                "/v1/models/Double/run",
                content=trickle(),
                headers={"Content-Type": "application/json"},
            )
        assert slow.status_code == 200 and slow.json()["output"] == 42
        port = int(sqlite_server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as stalled:
            stalled.sendall(
                b"POST /v1/models/Double/run HTTP/1.1\r\nHost: x\r\n"
                b"Authorization: Bearer " + BOTH_TOKEN.encode() + b"\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
            )
            assert httpx.get(sqlite_server.url + "/ping").status_code == 200  # not blocked
            answer = stalled.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408")
