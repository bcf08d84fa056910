"""Dynamic batching (``--batch-rows``) over HTTP: requests that queued together share
one model call, and each still gets its own answer, audit record, error and timeout.

To make requests queue, both model threads (``--threads 2``) are first taken by
``Slow`` requests; everything sent meanwhile waits and is then run batched.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import re
import threading
import time
from typing import Any

import httpx
import pytest
from servekit import (
    BOTH_TOKEN,
    IRIS_COLUMNS,
    SHARED_ARGS,
    Registry,
    ServerProcess,
    iris_pipeline,
    records_by_reference,
    records_for,
)

pytestmark = pytest.mark.slow

Request = tuple[str, Any, str]  # path, JSON body (or bytes), X-Request-ID

IRIS_ROWS = [
    {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
    {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3},
]


@pytest.fixture(scope="module")
def batched(sqlite_registry: Registry, server_factory: Any) -> ServerProcess:
    """The shared server's options plus ``--batch-rows 64``, on the SQLite registry."""
    server: ServerProcess = server_factory(sqlite_registry, *SHARED_ARGS, "--batch-rows", "64")
    return server


def _post(url: str, request: Request) -> httpx.Response:
    path, body, rid = request
    headers = {
        "Authorization": f"Bearer {BOTH_TOKEN}",
        "Content-Type": "application/json",
        "X-Request-ID": rid,
    }
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url + path, content=content, headers=headers, timeout=30)


def _while_busy(
    server: ServerProcess, requests: list[Request], hold: float = 1.0
) -> tuple[list[httpx.Response], list[httpx.Response]]:
    """Takes every model thread with a ``Slow`` call of ``hold`` seconds, sends
    ``requests`` all at once while they run; (their responses, the Slow ones').

    The Slow calls name the model by stage and by version: two selectors, so two
    calls at once (the batcher runs one call per model and selector at a time)."""
    tag = time.time_ns()
    hold_body = {"input": {"sleep": hold}}
    paths = ["/v1/models/Slow/run", "/v1/models/Slow/versions/1/run"]
    slow = [(path, hold_body, f"hold-{tag}-{n}") for n, path in enumerate(paths)]
    with concurrent.futures.ThreadPoolExecutor(len(slow) + len(requests)) as pool:
        holding = [pool.submit(_post, server.url, r) for r in slow]
        time.sleep(0.3)  # the Slow calls are running: what comes now has to wait
        sent = [pool.submit(_post, server.url, r) for r in requests]
        return [f.result() for f in sent], [f.result() for f in holding]


def _batch_counts(server: ServerProcess, model: str) -> tuple[int, int]:
    """(model calls, requests they answered) of ``model`` from /metrics."""
    with server.client() as client:
        text = client.get("/metrics").text
    line = rf'^umlaut_serve_batch_(calls|requests)_total\{{model="{model}"\}} (\d+)$'
    found = dict(re.findall(line, text, re.M))
    return int(found.get("calls", 0)), int(found.get("requests", 0))


def _split(row: dict[str, float]) -> dict[str, Any]:
    return {"dataframe_split": {"columns": IRIS_COLUMNS, "data": [[row[c] for c in IRIS_COLUMNS]]}}


def _v2(row: dict[str, float]) -> dict[str, Any]:
    tensors = [
        {"name": c, "shape": [1], "datatype": "FP64", "data": [row[c]]} for c in IRIS_COLUMNS
    ]
    return {"inputs": tensors}


def _expected(row: dict[str, float]) -> dict[str, Any]:
    import pandas as pd

    model = iris_pipeline()
    frame = pd.DataFrame([row], columns=IRIS_COLUMNS)
    (proba,) = model.predict_proba(frame)
    (label,) = model.predict(frame)
    return {"prediction": label, "probabilities": dict(zip(model.classes_, proba, strict=True))}


def _same(output: dict[str, Any], expected: dict[str, Any]) -> bool:
    # A stacked predict_proba may differ from a one-row one in the last bit (BLAS
    # chooses kernels by shape): the label is exact, the probabilities close.
    return output["prediction"] == expected["prediction"] and output["probabilities"] == {
        k: pytest.approx(v, rel=1e-9) for k, v in expected["probabilities"].items()
    }


class TestBatchedAnswers:
    """Requests that queued together get their own outputs, versions and records."""

    def test_every_protocol_and_model_in_one_queue(self, batched: ServerProcess) -> None:
        tag = f"b-{time.time_ns()}"
        inv = [("/invocations", _split(IRIS_ROWS[i % 2]), f"{tag}-inv-{i}") for i in range(4)]
        v2 = [("/v2/models/Iris/infer", _v2(IRIS_ROWS[i % 2]), f"{tag}-v2-{i}") for i in range(4)]
        run = [("/v1/models/Double/run", {"input": {"v": i}}, f"{tag}-run-{i}") for i in range(4)]
        before = _batch_counts(batched, "Iris"), _batch_counts(batched, "Double")
        responses, held = _while_busy(batched, [*inv, *v2, *run])
        assert [r.status_code for r in (*responses, *held)] == [200] * 14
        assert all(r.headers["X-Umlaut-Version"] == "1" for r in responses)
        expected = [_expected(row) for row in IRIS_ROWS]
        for i, r in enumerate(responses[:4]):
            (output,) = r.json()["predictions"]
            assert _same(output, expected[i % 2])
        for i, r in enumerate(responses[4:8]):
            body = r.json()
            assert body["id"] == f"{tag}-v2-{i}" and body["model_version"] == "1"
            tensors = {t["name"]: t["data"] for t in body["outputs"]}
            assert tensors["prediction"] == [expected[i % 2]["prediction"]]
        assert [r.json()["output"] for r in responses[8:]] == [0, 2, 4, 6]
        # The queued requests shared calls: fewer calls than requests, per model.
        after = _batch_counts(batched, "Iris"), _batch_counts(batched, "Double")
        for sent, (calls0, requests0), (calls1, requests1) in zip(
            (8, 4), before, after, strict=True
        ):
            assert requests1 - requests0 == sent and calls1 - calls0 < sent
        with batched.registry.umlaut() as umlaut:
            for (_, body, rid), response in zip([*inv, *v2, *run], responses, strict=True):
                (record,) = records_for(umlaut, rid)
                assert record.reference_id == rid and record.status == "ok"
                assert record.version == 1
                assert response.headers["X-Umlaut-Record-ID"] == record.id
                if rid.startswith(f"{tag}-run"):
                    assert record.inputs == body["input"]
                    assert record.output == response.json()["output"]
                elif rid.startswith(f"{tag}-inv"):
                    assert record.output == response.json()["predictions"]
                    (values,) = body["dataframe_split"]["data"]
                    assert record.inputs == [dict(zip(IRIS_COLUMNS, values, strict=True))]


class TestBatchedErrors:
    """One bad request among good ones fails alone; a timeout is per request."""

    def test_a_bad_request_fails_alone(self, batched: ServerProcess) -> None:
        tag = f"bad-{time.time_ns()}"
        not_a_number = {**IRIS_ROWS[0], "petal_width": "wide"}
        iris_path, double_path = "/v1/models/Iris/run", "/v1/models/Double/run"
        iris = [(iris_path, {"input": [IRIS_ROWS[i % 2]]}, f"{tag}-iris-{i}") for i in range(3)]
        iris.insert(1, (iris_path, {"input": [not_a_number]}, f"{tag}-iris-bad"))
        double = [(double_path, {"input": {"v": i}}, f"{tag}-dbl-{i}") for i in range(3)]
        # A model error (KeyError), and an input umlaut cannot encode (a lone
        # surrogate), which makes run_batch refuse the whole batch before it runs.
        double.insert(1, (double_path, {"input": {"w": 1}}, f"{tag}-dbl-raises"))
        unencodable = b'{"input": {"v": "\\ud800"}}'
        double.insert(3, (double_path, unencodable, f"{tag}-dbl-unencodable"))
        calls, requests = _batch_counts(batched, "Iris")
        responses, _ = _while_busy(batched, [*iris, *double])
        calls_after, requests_after = _batch_counts(batched, "Iris")
        assert requests_after - requests == 4 and calls_after - calls < 4  # shared a call
        by_id = {rid: r for (_, _, rid), r in zip([*iris, *double], responses, strict=True)}
        status = {rid: r.status_code for rid, r in by_id.items()}
        bad = {f"{tag}-iris-bad", f"{tag}-dbl-raises", f"{tag}-dbl-unencodable"}
        assert {rid for rid, code in status.items() if code != 200} == bad
        assert {status[rid] for rid in bad} == {400}
        outputs = {rid: r.json() for rid, r in by_id.items()}
        assert outputs[f"{tag}-iris-bad"]["error_code"] == "BAD_REQUEST"
        assert [outputs[f"{tag}-dbl-{i}"]["output"] for i in range(3)] == [0, 2, 4]
        with batched.registry.umlaut() as umlaut:
            for rid in status:
                found = records_for(umlaut, rid, timeout=1 if rid.endswith("unencodable") else 30)
                if rid.endswith("unencodable"):
                    assert found == []  # refused before any model ran, as unbatched
                    continue
                (record,) = found
                assert record.status == ("error" if rid in bad else "ok"), rid
                if record.status == "ok":
                    assert record.output == outputs[rid]["output"]

    def test_timeouts_are_per_request(self, batched: ServerProcess) -> None:
        """Two calls overrun the 2 s timeout; a request queued behind them expires
        while it waits: all three are 504, each with its own DeadlineExceededError."""
        tag = f"late-{time.time_ns()}"
        started = time.monotonic()
        queued, held = _while_busy(
            batched, [("/v1/models/Echo/run", {"input": 1}, f"{tag}-queued")], hold=2.6
        )
        (response,) = queued
        assert [r.status_code for r in (response, *held)] == [504] * 3
        assert all(r.json()["error_code"] == "DEADLINE_EXCEEDED" for r in (response, *held))
        assert time.monotonic() - started < 2.6 + 0.3  # answered at its deadline
        with batched.registry.umlaut() as umlaut:
            (record,) = records_for(umlaut, f"{tag}-queued")
            held_records = [records_for(umlaut, r.headers["X-Request-ID"])[0] for r in held]
        assert record.status == "error" and record.output is None
        assert record.error_type == "umlaut_core.exceptions.DeadlineExceededError"
        assert "did not run" in (record.error_message or "")
        for held_record in held_records:
            assert held_record.error_type == "umlaut_core.exceptions.DeadlineExceededError"
            assert "returned after" in (held_record.error_message or "")


class TestBatchingOff:
    """Without --batch-rows the server calls run_model per request, as before."""

    def test_no_batch_metrics(self, sqlite_server: ServerProcess) -> None:
        with sqlite_server.client() as client:
            assert client.post("/v1/models/Double/run", json={"input": {"v": 1}}).status_code == 200
            assert "umlaut_serve_batch" not in client.get("/metrics").text


class TestBatchedShutdown:
    """SIGTERM with requests still queued: they run, are answered, and keep their records."""

    def test_sigterm_drains_the_queue(self, sqlite_registry: Registry, server_factory: Any) -> None:
        server: ServerProcess = server_factory(
            sqlite_registry, "--model", "Slow@Production", "--batch-rows", "8", "--threads", "1"
        )
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
        tag = f"drain-{time.time_ns()}"
        requests = [("/invocations", {"inputs": [{"sleep": 0.6}]}, f"{tag}-{n}") for n in range(4)]
        stopped = threading.Timer(0.35, server.stop)  # the first runs, three are queued
        stopped.start()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            responses = list(pool.map(lambda r: _post(server.url, r), requests))
        stopped.join()
        assert [r.status_code for r in responses] == [200] * 4
        assert "Application shutdown complete" in server.stderr
        with sqlite_registry.umlaut() as umlaut:
            assert umlaut.flush(30)
            found = records_by_reference(umlaut, "Slow", since, {rid for *_, rid in requests})
        assert all(len(found[rid]) == 1 for *_, rid in requests)


def _double(x: int) -> int:
    return 2 * x


class TestBurst:
    """Requests that arrive in one turn of the event loop share a call even when their
    model is idle: a closed-loop client's or a proxy's burst is not split into a lone
    first call and a batch of the rest."""

    def test_one_call_for_a_burst(self, tmp_path: Any) -> None:
        import asyncio

        from umlaut_server._batching import Batcher

        from umlaut_core import Umlaut
        from umlaut_core.deadline import Deadline

        calls: list[int] = []
        with Umlaut(f"sqlite:///{tmp_path}/burst.db", delivery="sync") as umlaut:
            umlaut.track_model(_double, "Double", stage="Production")

            async def burst() -> list[Any]:
                with concurrent.futures.ThreadPoolExecutor(2) as pool:
                    batcher = Batcher(umlaut, pool, 64, 2, lambda _, n: calls.append(n))
                    deadlines = [Deadline(30) for _ in range(3)]
                    futures = [
                        batcher.submit("Double", None, "Production", i, f"burst-{i}", d)
                        for i, d in enumerate(deadlines)
                    ]
                    outcomes = await asyncio.gather(*futures)
                    return [outcomes, [d.record.output for d in deadlines if d.record]]

            outcomes, outputs = asyncio.run(burst())
            assert calls == [3]  # one call, not a lone first request and then two
            assert outcomes == [None, None, None] and outputs == [0, 2, 4]
            records = umlaut.history("Double", limit=10)
            references = sorted(r.reference_id or "" for r in records)
            assert references == ["burst-0", "burst-1", "burst-2"]
