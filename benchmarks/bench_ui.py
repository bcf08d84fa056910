"""The web UI's pages over a big store (issue #17).

Target: every page answers in ≤ 100 ms of server time on a store holding 1,000,000
audit records and 10,000 training runs (100,000 and 1,000 with ``--quick``), on
SQLite and PostgreSQL.

The store: five models (one version each, in Production), their audit records
spread over the last 48 hours (each with a reference id, 3% failed), 10,000
finished training runs of 10 params and 10 metrics in five experiments, and one
dataset (10,000 × 5) linked to the ``drift`` model's version as ``train``, so the
datasets and drift pages have something to show. Records go straight to
``tracker.record_runs`` and runs to the experiment store's ``write()`` in batches;
the SQLite file is cached in ``/tmp/umlaut-bench-cache`` (see :func:`_cached`),
PostgreSQL (``_servers.postgres()``, fsync on) is filled the same way each run.

The UI is built in-process as ``umlaut ui`` builds it (``create_ui_app`` with
``warm_up=True``; no auth) and driven through httpx's ASGI transport; the time
taken is the page's own ``Server-Timing: total;dur=…`` (the request inside the app:
reading the store, rendering, the thread hop), not the client's.

First, what a user of ``umlaut ui`` meets: the app's lifespan startup runs (uvicorn
takes no connection before it ends; its time is an informational row), then the
first request of every page in turn, each a target row (``…, first request``). The
drift reports warmed at startup are still computing in the background then, so the
drift page may answer with its "computing" state (the row says which). Then, once
that background work is done, each page gets one warm-up request and ``N`` rounds
of every page in turn; a row is a page's median.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _servers
from _harness import Row, Stats, latency_row

from umlaut_core import Umlaut
from umlaut_core.exceptions import BackendNotFoundError
from umlaut_core.experiments.records import MetricPoint, RunStatus
from umlaut_core.experiments.writes import MetricsLogged, ParamsLogged, RunEnded, RunStarted
from umlaut_core.ids import encode_id
from umlaut_core.records import AuditRecord
from umlaut_core.testing.models import Threshold

#: Bumped when what the cached database holds changes.
DATA_VERSION = "1"
CACHE = Path(tempfile.gettempdir()) / "umlaut-bench-cache"
MODELS = ["drift", "churn", "fraud", "pricing", "ranking"]
EXPERIMENTS = [f"exp-{m}" for m in MODELS]
REGIONS = ["north", "south", "east", "west", "centre"]
TARGET_MS = 100.0
_TOTAL = re.compile(r"total;dur=([0-9.]+)")


# -- the data ------------------------------------------------------------------------


def _end_ms() -> int:
    """The newest record's millisecond: a minute ago, rounded to the hour so a cached
    file made this hour has the same ids (a cache older than a day still renders, its
    windows only hold fewer records)."""
    return (time.time_ns() // 3_600_000_000_000) * 3_600_000 - 60_000


def _record_id(i: int, total: int, end_ms: int) -> str:
    start_ms = end_ms - 48 * 3_600_000
    return encode_id(start_ms + (i * (end_ms - start_ms)) // total, i)


def _records(first: int, stop: int, total: int, end_ms: int) -> Iterator[AuditRecord]:
    """Records ``first`` to ``stop`` of ``total``: 48 hours of calls of five models
    taking turns, each with its own reference id; every 33rd failed."""
    import random

    rng = random.Random(first)
    start_ms = end_ms - 48 * 3_600_000
    span = end_ms - start_ms
    for i in range(first, stop):
        ms = start_ms + (i * span) // total
        inputs = (
            f'{{"x0":{rng.gauss(0, 1):.4f},"x1":{rng.gauss(5, 2):.4f},'
            f'"x2":{rng.gauss(10, 3):.4f},"x3":{rng.randrange(50)},'
            f'"region":"{REGIONS[rng.randrange(5)]}"}}'
        )
        failed = i % 33 == 7
        yield AuditRecord(
            _record_id(i, total, end_ms), MODELS[i % 5], 1, "stage=Production", inputs,
            None if failed else f"{rng.random():.6f}", "error" if failed else "ok",
            datetime.fromtimestamp(ms / 1000, UTC), round(rng.lognormvariate(-0.5, 0.6), 4),
            reference_id=f"order-{i:08d}",
            error_type="ValueError" if failed else None,
            error_message="bad luck" if failed else None,
        )  # fmt: skip


def _training_frame(rows: int = 10_000) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(17)
    return pd.DataFrame({
        "x0": rng.normal(0, 1, rows), "x1": rng.normal(5, 2, rows),
        "x2": rng.normal(10, 3, rows), "x3": rng.integers(0, 50, rows),
        "region": rng.choice(REGIONS, rows), "label": rng.random(rows),
    })  # fmt: skip


def _populate(um: Umlaut, records: int, runs: int, end_ms: int) -> dict[str, Any]:
    """Fill an empty store; what the pages need to know of it."""
    datasets: dict[str, Any] = {}
    keeps = True
    try:
        datasets["train"] = um.track_dataset(_training_frame(), "drift-train", target="label")
    except BackendNotFoundError:
        keeps = False
    for name in MODELS:
        um.track_model(Threshold(0.5), name, stage="Production",
                       datasets=datasets if name == "drift" else None)  # fmt: skip
    for first in range(0, records, 50_000):
        um.tracker.record_runs(_records(first, min(first + 50_000, records), records, end_ms))
    has_runs = True
    try:
        _populate_runs(um._training.store, runs)
    except BackendNotFoundError:
        has_runs = False
    return {"datasets": keeps, "training_runs": has_runs}


def _populate_runs(store: Any, runs: int) -> None:
    import random

    rng = random.Random(17)
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)
    env = {"python": "3.11", "host": "bench", "pid": 1}
    for first in range(0, runs, 5_000):
        writes: list[Any] = []
        for i in range(first, min(first + 5_000, runs)):
            run_id = f"bench-{i:08d}"
            at = base + timedelta(seconds=60 * i)
            ms = int(at.timestamp() * 1000)
            writes += [
                RunStarted(run_id, EXPERIMENTS[i % 5], f"run-{i}", at, user="bench",
                           host="bench", environment=env),
                ParamsLogged(run_id, {f"p{k}": rng.random() for k in range(10)}),
                MetricsLogged(run_id, tuple(
                    MetricPoint(f"m{k}", rng.random(), 0, ms, 1) for k in range(10)
                )),
                RunEnded(run_id, RunStatus.FINISHED, at + timedelta(seconds=30)),
            ]  # fmt: skip
        store.write(writes)


def _cache_key() -> str:
    """The data made here, the SQL store's version and the text of its schema and
    write code (hashed: a store still changing in development is never read through
    a stale file)."""
    import umlaut_sql

    digest = hashlib.sha256(DATA_VERSION.encode())
    digest.update(importlib.metadata.version("umlaut-sql").encode())
    for name in ("_schema.py", "_audit.py", "_datasets.py", "_experiment_writes.py"):
        path = Path(umlaut_sql.__file__).parent / name
        digest.update(path.read_bytes() if path.exists() else b"-")
    return digest.hexdigest()[:16]


def _cached(records: int, runs: int, end_ms: int) -> tuple[Path, dict[str, Any], float | None]:
    """The SQLite file (its artifacts beside it, its facts in a ``.json``); made
    (seconds returned) or found in the cache (None). The hour of ``end_ms`` is in
    the name: the records stay in the pages' windows."""
    CACHE.mkdir(exist_ok=True)
    key = _cache_key()
    path = CACHE / f"ui-{key}-{records}-{runs}-{end_ms}.db"
    facts = path.with_suffix(".json")
    if path.exists() and facts.exists():
        return path, json.loads(facts.read_text()), None
    for old in CACHE.glob("ui-*"):  # another key, or this size from an older hour
        if old.name.startswith(path.stem) or (
            old.name.startswith(f"ui-{key}-") and f"-{records}-{runs}-" not in old.name
        ):
            continue  # this file, or the other size (--quick or not) still current
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
    building = path.with_suffix(f".{os.getpid()}.building")
    artifacts = path.with_suffix(".artifacts")
    start = time.perf_counter()
    with Umlaut(f"sqlite:///{building}", str(artifacts), delivery="sync") as um:
        found = _populate(um, records, runs, end_ms)
    building.rename(path)  # the facade closed its connections: the WAL is folded in
    facts.write_text(json.dumps(found))
    return path, found, time.perf_counter() - start


# -- the requests --------------------------------------------------------------------


class _Client:
    """httpx over the ASGI app, driven synchronously; returns the server's total ms.
    :meth:`start` and :meth:`stop` run the app's lifespan as uvicorn does."""

    def __init__(self, app: Any) -> None:
        import httpx

        self.app = app
        self.runner = asyncio.Runner()
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )
        self.last = ""  # the body of the last page

    def start(self) -> float:
        """Run the lifespan's startup; its wall time in ms."""
        started = time.perf_counter()
        self.runner.run(self._lifespan())
        return (time.perf_counter() - started) * 1000

    async def _lifespan(self) -> None:
        loop = asyncio.get_running_loop()
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        started, self._ended = loop.create_future(), loop.create_future()

        async def send(message: dict[str, Any]) -> None:
            done = started if message["type"].startswith("lifespan.startup") else self._ended
            done.set_result(message)

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.ensure_future(self.app(scope, self._events.get, send))
        await self._events.put({"type": "lifespan.startup"})
        if (message := await started)["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"the UI did not start: {message}")

    def stop(self) -> None:
        async def shutdown() -> None:
            await self._events.put({"type": "lifespan.shutdown"})
            await self._task

        self.runner.run(shutdown())

    def server_ms(self, url: str) -> float:
        response = self.runner.run(self.http.get(url))
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code}\n{response.text[:500]}")
        found = _TOTAL.search(response.headers.get("server-timing", ""))
        if found is None:
            raise RuntimeError(f"GET {url}: no Server-Timing total")
        self.last = response.text
        return float(found.group(1))

    def close(self) -> None:
        self.runner.run(self.http.aclose())
        self.runner.close()


def _pages(records: int, runs: int, end_ms: int, found: dict[str, Any]) -> dict[str, str]:
    deep = _record_id(records // 10, records, end_ms)  # 90% of the way back
    one = records // 2
    pages = {
        "models": "/ui/",
        "model": "/ui/models/fraud",
        "version": "/ui/versions/1/fraud",
        "records, first page": "/ui/records",
        "records, a page deep via before=": f"/ui/records?before={deep}",
        "records filtered by reference id": f"/ui/records?reference_id=order-{one + 3:08d}",
        "one record": f"/ui/records/{_record_id(one, records, end_ms)}",
        "training runs": "/ui/training-runs",
        "one training run": f"/ui/training-runs/bench-{runs // 2:08d}",
        "datasets": "/ui/datasets",
        "one dataset": "/ui/datasets/drift-train",
        "drift": "/ui/drift/drift",
    }
    if not found["training_runs"]:
        del pages["one training run"]
    if not found["datasets"]:
        del pages["one dataset"]
    return pages


def _stats(samples: list[float]) -> Stats:
    ordered = sorted(samples)
    return Stats(ordered[len(ordered) // 2] / 1000, ordered[0] / 1000, ordered[-1] / 1000,
                 len(ordered))  # fmt: skip


def _measure(
    um: Umlaut, backend: str, quick: bool, records: int, runs: int, end_ms: int,
    found: dict[str, Any],
) -> list[Row]:  # fmt: skip
    from umlaut_server.ui import UiSettings, create_ui_app

    rounds = 5 if quick else 20
    size = f"{records:,} records, {runs:,} training runs"
    pages = _pages(records, runs, end_ms, found)
    app = create_ui_app(um, UiSettings(no_auth=True, warm_up=True))  # as `umlaut ui` does
    client = _Client(app)
    try:
        startup = client.start()  # the traffic counts; the drift reports start behind it
        first: dict[str, float] = {}
        drift_answer = ""
        for name, url in pages.items():
            first[name] = client.server_ms(url)
            if name == "drift":
                computing = 'data-testid="drift-computing"' in client.last
                drift_answer = "computing state" if computing else "report"
        waited = time.perf_counter()
        if not app.state.ui.reports.wait_idle(600):  # the warm rows measure a quiet app
            raise RuntimeError("the drift reports warmed at startup took over 10 minutes")
        reports_waited = time.perf_counter() - waited
        warmup: dict[str, float] = {}
        for name, url in pages.items():
            warmup[name] = client.server_ms(url)
        samples: dict[str, list[float]] = {name: [] for name in pages}
        names = list(pages)
        for i in range(rounds):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                samples[name].append(client.server_ms(pages[name]))
        client.stop()
    finally:
        client.close()
    rows = []
    for name, got in samples.items():
        row = latency_row(
            f"UI page: {name}, {size}", backend, _stats(got), unit="ms/call",
            max_value=TARGET_MS, url=pages[name], requests=len(got),
            warmup_ms=round(warmup[name], 2), **found,
        )  # fmt: skip
        if name == "drift":
            row.extra["report_reused"] = (
                "the report is kept 60 s; a view after that shows it while one refresh runs"
            )
        rows.append(row)
    for name, ms in first.items():
        row = latency_row(
            f"UI page: {name}, first request, {size}", backend, _single(ms), unit="ms/call",
            max_value=TARGET_MS, url=pages[name], after="lifespan startup", **found,
        )  # fmt: skip
        if name == "drift":
            row.extra["answered"] = drift_answer
            row.extra["warm_up_reports_waited_s"] = round(reports_waited, 2)
        rows.append(row)
    row = latency_row(
        f"UI startup (lifespan: traffic counts warmed), {size}", backend, _single(startup),
        unit="ms/call", models=len(MODELS),
    )  # fmt: skip
    row.extra["informational"] = True
    rows.append(row)
    return rows


def _single(ms: float) -> Stats:
    return Stats(ms / 1000, ms / 1000, ms / 1000, 1)


def _sqlite(quick: bool, records: int, runs: int, folder: Path) -> list[Row]:
    end_ms = _end_ms()
    cached, found, built = _cached(records, runs, end_ms)
    db = folder / "ui.db"
    shutil.copyfile(cached, db)  # opening may write (a migration, the WAL)
    artifacts = str(cached.with_suffix(".artifacts"))
    with Umlaut(f"sqlite:///{db}", artifacts) as um:
        rows = _measure(um, "sqlite", quick, records, runs, end_ms, found)
    for row in rows:
        row.extra["store_built_s"] = round(built, 1) if built is not None else "cached"
    return rows


def _postgres(quick: bool, records: int, runs: int, folder: Path) -> list[Row]:
    backend = "postgresql (local, fsync on)"
    try:
        url = _servers.postgres().create_database("bench_ui")
    except _servers.Unavailable as exc:
        return [_skipped("UI pages on PostgreSQL", backend, exc)]
    end_ms = _end_ms()
    try:
        with Umlaut(url, str(folder / "pg-artifacts"), delivery="sync") as um:
            start = time.perf_counter()
            found = _populate(um, records, runs, end_ms)
            built = time.perf_counter() - start
            rows = _measure(um, backend, quick, records, runs, end_ms, found)
    except Exception as exc:  # one backend failing keeps the other's rows
        return [_skipped("UI pages on PostgreSQL", backend, exc)]
    for row in rows:
        row.extra["store_built_s"] = round(built, 1)
    return rows


def _skipped(scenario: str, backend: str, exc: BaseException) -> Row:
    why = f"{type(exc).__name__}: {exc}"[:300]
    return Row(scenario, backend, "", 0, 0, 0, extra={"skipped": why})


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    import logging

    logger = logging.getLogger("umlaut.ui")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def run(quick: bool) -> list[Row]:
    records, runs = (100_000, 1_000) if quick else (1_000_000, 10_000)
    rows: list[Row] = []
    sides: list[Callable[[bool, int, int, Path], list[Row]]] = [_sqlite, _postgres]
    with tempfile.TemporaryDirectory(prefix="umlaut-bench-ui-") as tmp, _quiet():
        for side in sides:
            rows += side(quick, records, runs, Path(tmp))
    return rows


if __name__ == "__main__":
    _servers.run_alone(run)
