"""Experiment tracking (issue 13): training runs, measured against what users replace.

Every ratio comes from rounds measured side by side in one run, alternating round by
round (:func:`_alternate`), so a shared machine that slows down mid-run slows both
sides alike. Every row that claims points or runs were stored counts them afterwards.

1. ``log_metric`` in a loop on the embedded default (``Umlaut()`` in a fresh folder:
   ``./.umlaut/umlaut.db``, SQLite WAL): µs per call with the writer's queue empty at
   the start of each round, against MLflow's own fluent ``mlflow.log_metric`` on its
   SQLite store (``synchronous=False``, and the synchronous default for reference).
   A second row times the loop *and* the ``flush()`` that stores it: points stored
   per second, the honest throughput.
2. Against a real ``mlflow server`` (``_servers.mlflow()``): the same loop through
   the durable spool and its shipper, against the embedded loop; and shipping
   throughput, from the first ``log_metric`` until ``Umlaut.flush()`` returns with
   every point on the server, against ``MlflowClient.log_batch`` (1,000 metrics a
   call, MLflow's own limit) on the same server. The same two for PostgreSQL, for
   reference (no target): it exercises the spool without the MLflow plugin.
3. ``@step`` on a trivial function on the embedded default: tracking on against a
   raw ``sqlite3`` insert-and-commit into a table shaped like
   ``umlaut_training_runs`` (its indexes copied from the database umlaut made; WAL,
   ``synchronous=NORMAL`` as the tracker uses, the same folder); tracking off
   (:func:`set_tracking_enabled`) against a bare call of the same function.
4. ``search_training_runs`` over 100,000 runs with 10 params and 10 metrics each
   (10,000 with ``--quick``): an AND filter ordered by a metric, an OR filter
   ordered by a param, and a page deep in the keyset. The store is filled directly
   through ``ExperimentStore.write`` in big batches and cached (see :func:`_cached`).
5. ``metric_history`` of one metric with 1,000,000 points (100,000 with
   ``--quick``), with a raw ``sqlite3`` fetch of the same rows for reference.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib.metadata
import logging
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _servers
from _harness import Row, Stats, faster_row, latency_row, measure, throughput_row

from umlaut_core import Umlaut
from umlaut_core.experiments import set_default_umlaut, set_tracking_enabled, step
from umlaut_core.experiments.records import MetricPoint, RunStatus
from umlaut_core.experiments.writes import MetricsLogged, ParamsLogged, RunEnded, RunStarted

EMBEDDED = "sqlite (embedded default)"
#: Bumped when what the cached search/history database holds changes.
DATA_VERSION = "1"
CACHE = Path(tempfile.gettempdir()) / "umlaut-bench-cache"
_AND = "params.p3 > 0.5 and metrics.m2.max < 0.8"
_AND_ORDER = "metrics.m1 DESC"
_OR = "params.p1 < 0.1 or metrics.m4.min > 0.9"
_OR_ORDER = "params.p0"


def _alternate(sides: dict[str, Callable[[], float]], *, repeat: int) -> dict[str, Stats]:
    """Rounds of every side in turn (the order rotating), after one warm-up round each.

    A side is one round: it does its own untimed preparation, times its own work and
    returns seconds per unit of work. Sides of very different speeds need different
    numbers of calls per round, which ``measure_interleaved`` cannot give them.
    """
    names = list(sides)
    for name in names:
        sides[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(repeat):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            gc.collect()
            samples[name].append(sides[name]())
    return {n: Stats(statistics.median(s), min(s), max(s), repeat) for n, s in samples.items()}


def _values(n: int) -> list[float]:
    rng = random.Random(n)
    return [rng.random() for _ in range(n)]


# -- 1. log_metric on the embedded default against MLflow's fluent API ---------------


def _embedded_loop(quick: bool, um: Umlaut, folder: Path) -> list[Row]:
    import mlflow
    from mlflow import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # "Creating initial tables..."
    repeat = 3 if quick else 7
    ours_n, async_n, async_flush_n, sync_n = (
        (20_000, 100, 50, 10) if quick else (50_000, 500, 100, 30)
    )
    ours_vals, async_vals, sync_vals = _values(ours_n), _values(async_n), _values(sync_n)
    logged: dict[str, int] = {}
    run = um.start_run("bench-log-metric", name="loop")
    log = run.log_metric

    def ours(key: str, flush: bool) -> Callable[[], float]:
        def one_round() -> float:
            um.flush()  # each round starts with the writer's queue empty
            start = time.perf_counter()
            for v in ours_vals:
                log(key, v)
            if flush:
                um.flush()
            logged[key] = logged.get(key, 0) + ours_n
            return (time.perf_counter() - start) / ours_n

        return one_round

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    steps = iter(range(10**9))  # MLflow drops a point equal to one it holds: no repeats
    ml_run = mlflow.start_run(run_name="bench-log-metric")
    ml_log = mlflow.log_metric

    def theirs(key: str, n: int, vals: list[float], synchronous: bool, flush: bool) -> Any:
        def one_round() -> float:
            mlflow.flush_async_logging()
            start = time.perf_counter()
            for v in vals[:n]:
                ml_log(key, v, step=next(steps), synchronous=synchronous)
            if flush:
                mlflow.flush_async_logging()
            logged[f"mlflow/{key}"] = logged.get(f"mlflow/{key}", 0) + n
            return (time.perf_counter() - start) / n

        return one_round

    try:
        got = _alternate(
            {
                "loop": ours("loop", False),
                "stored": ours("stored", True),
                "async": theirs("async", async_n, async_vals, False, False),
                "async stored": theirs("async_stored", async_flush_n, async_vals, False, True),
                "sync": theirs("sync", sync_n, sync_vals, True, False),
            },
            repeat=repeat,
        )
        mlflow.flush_async_logging()
        client = MlflowClient()
        counts = {
            key: len(client.get_metric_history(ml_run.info.run_id, key.removeprefix("mlflow/")))
            for key in logged
            if key.startswith("mlflow/")
        }
    finally:
        mlflow.end_run()
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    run.end()
    for key in ("loop", "stored"):
        counts[key] = len(um.metric_history(run.run_id, key))
    complete = all(counts[k] == logged[k] for k in logged)
    checked: dict[str, Any] = {
        "points_logged": logged,
        "points_stored": counts,
        "all_stored": complete,
    }
    base = "mlflow.log_metric(synchronous=False), SQLite store"
    rows = [
        latency_row(
            "log_metric in a loop", EMBEDDED, got["loop"], got["async"], base, max_value=5,
            calls_per_round=ours_n, **checked,
        ),
        faster_row(
            "log_metric in a loop vs mlflow.log_metric(synchronous=False)", EMBEDDED,
            got["loop"], got["async"], base, min_speedup=20, unit="µs/call",
            calls_per_round=ours_n, baseline_calls_per_round=async_n,
        ),
        latency_row(
            "log_metric in a loop vs mlflow.log_metric (synchronous)", EMBEDDED, got["loop"],
            got["sync"], "mlflow.log_metric (synchronous), SQLite store",
            baseline_calls_per_round=sync_n,
        ),
        throughput_row(
            "log_metric loop + flush(): points stored per second", EMBEDDED, got["stored"],
            got["async stored"], "mlflow.log_metric(synchronous=False) + flush_async_logging()",
            points_per_round=ours_n, baseline_points_per_round=async_flush_n, **checked,
        ),
    ]  # fmt: skip
    if not complete:  # a throughput of points that did not arrive is no throughput
        for row in rows:
            row.met = False
    return rows


# -- 2. the same loop against remote stores, through the spool -----------------------


def _remote(
    quick: bool,
    um: Umlaut,
    uri: str,
    backend: str,
    folder: Path,
    *,
    artifacts: str | None,
    mlflow_url: str | None,
) -> list[Row]:
    repeat = 3 if quick else 7
    # Long loops: shorter ones end before the writer first wakes, and would leave
    # out what the spool costs the loop.
    loop_n = 20_000 if quick else 30_000
    ship_n = 5_000 if quick else 20_000
    ship_repeat = 2 if quick else 5
    vals = _values(max(loop_n, ship_n))
    spool = folder / f"spool-{backend.split()[0]}.db"
    with Umlaut(uri, artifacts, spool_path=str(spool)) as remote:
        if remote.delivery_mode != "spooled":
            raise RuntimeError(f"{backend}: expected spooled delivery, got {remote.delivery_mode}")
        try:
            far = remote.start_run("bench-remote", name="loop")
        except Exception as exc:  # e.g. a backend without an experiment store yet
            return [_skipped(f"log_metric against {backend}", backend, exc)]
        near = um.start_run("bench-remote", name="loop")

        def loop(facade: Umlaut, run: Any) -> Callable[[], float]:
            log = run.log_metric

            def one_round() -> float:
                _flush(facade, backend)
                start = time.perf_counter()
                for v in vals[:loop_n]:
                    log("loop", v)
                return (time.perf_counter() - start) / loop_n

            return one_round

        got = _alternate({"far": loop(remote, far), "near": loop(um, near)}, repeat=repeat)
        far.end()
        near.end()
        shipped: list[int] = []

        def ship() -> float:
            start = time.perf_counter()  # the baseline creates its run in the time too
            run = remote.start_run("bench-remote", name="ship")
            log = run.log_metric
            for v in vals[:ship_n]:
                log("ship", v)
            _flush(remote, backend)
            took = time.perf_counter() - start
            run.end()
            shipped.append(len(remote.metric_history(run.run_id, "ship")))
            return took / ship_n

        sides = {"ours": ship}
        shipped_by_mlflow: list[int] = []
        if mlflow_url is not None:
            sides["log_batch"] = _log_batch(mlflow_url, vals[:ship_n], shipped_by_mlflow)
        ship_stats = _alternate(sides, repeat=ship_repeat)
    complete = all(n == ship_n for n in shipped)
    rows = [
        throughput_row(
            f"log_metric in a loop, spooled to {backend}", backend, got["far"], got["near"],
            "the same loop on the embedded default", min_ratio=0.5 if mlflow_url else None,
            calls_per_round=loop_n,
        ),
    ]  # fmt: skip
    checked: dict[str, Any] = {
        "points_per_round": ship_n,
        "points_visible": shipped,
        "all_visible": complete,
    }
    if mlflow_url is not None:
        checked["baseline_points_visible"] = shipped_by_mlflow
        complete = complete and all(n == ship_n for n in shipped_by_mlflow)
        row = throughput_row(
            f"log_metric shipping {ship_n:,} points to {backend} (first log → on the server)",
            backend, ship_stats["ours"], ship_stats["log_batch"],
            "MlflowClient.log_batch, 1,000 metrics a call", min_ratio=1.0, **checked,
        )  # fmt: skip
    else:
        row = throughput_row(
            f"log_metric shipping {ship_n:,} points to {backend} (first log → stored)",
            backend, ship_stats["ours"], **checked,
        )  # fmt: skip
    if not complete:
        row.met = False
    rows.append(row)
    return rows


def _flush(um: Umlaut, backend: str, timeout: float = 300) -> None:
    # Bounded: a store that cannot keep up must end as a reason in the table, not as
    # a benchmark that never returns.
    if not um.flush(timeout):
        raise RuntimeError(
            f"{backend}: Umlaut.flush() had not delivered everything after {timeout:g} s "
            f"({um.pending()})"
        )


def _log_batch(url: str, vals: list[float], counts: list[int]) -> Callable[[], float]:
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    client = MlflowClient(url)
    experiment = client.get_experiment_by_name("bench-log-batch")
    exp_id = experiment.experiment_id if experiment else client.create_experiment("bench-log-batch")

    def one_round() -> float:
        start = time.perf_counter()
        run_id = client.create_run(exp_id).info.run_id
        # Built inside the timing, as our loop builds its points: it is the user's cost.
        for i in range(0, len(vals), 1000):
            now = int(time.time() * 1000)
            chunk = [Metric("ship", v, now, i + j) for j, v in enumerate(vals[i : i + 1000])]
            client.log_batch(run_id, metrics=chunk, synchronous=True)
        took = time.perf_counter() - start
        counts.append(len(client.get_metric_history(run_id, "ship")))
        client.set_terminated(run_id)
        return took / len(vals)

    return one_round


def _servers_rows(quick: bool, um: Umlaut, folder: Path) -> list[Row]:
    rows: list[Row] = []
    try:
        url = _servers.mlflow()
    except _servers.Unavailable as exc:
        rows.append(_skipped("log_metric against an MLflow server", "mlflow server", exc))
    else:
        try:
            rows += _remote(
                quick, um, f"mlflow+{url}", "mlflow server", folder, artifacts=None, mlflow_url=url
            )
        except Exception as exc:  # one backend failing keeps the other rows
            rows.append(_skipped("log_metric against an MLflow server", "mlflow server", exc))
    try:
        pg = _servers.postgres().create_database("bench_experiments")
    except _servers.Unavailable as exc:
        rows.append(_skipped("log_metric against PostgreSQL", "postgresql", exc))
    else:
        backend = "postgresql (local, fsync on)"
        artifacts = str(folder / "pg-artifacts")
        try:
            rows += _remote(quick, um, pg, backend, folder, artifacts=artifacts, mlflow_url=None)
        except Exception as exc:
            rows.append(_skipped("log_metric against PostgreSQL", backend, exc))
    return rows


def _skipped(scenario: str, backend: str, exc: BaseException) -> Row:
    why = f"{type(exc).__name__}: {exc}"[:300]
    return Row(scenario, backend, "", 0, 0, 0, extra={"skipped": why})


# -- 3. the decorator ----------------------------------------------------------------


def _raw_training_runs(db: Path, raw: sqlite3.Connection) -> Callable[[], None]:
    """A one-row insert-and-commit into a copy of ``umlaut_training_runs`` (its
    indexes too, read from the database umlaut made, so the two cannot drift apart),
    with the environment JSON of a real step run: like for like."""
    with contextlib.closing(sqlite3.connect(db)) as made:
        ddl = made.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'umlaut_training_runs' "
            "AND sql IS NOT NULL ORDER BY type DESC"  # the table before its indexes
        ).fetchall()
        sample = made.execute(
            "SELECT * FROM umlaut_training_runs ORDER BY started_at DESC LIMIT 1"
        ).fetchone()
    for (sql,) in ddl:
        raw.execute(sql.replace("umlaut_training_runs", "raw_training_runs").replace(" ix_", " r_"))
    insert = f"INSERT INTO raw_training_runs VALUES ({', '.join('?' * len(sample))})"
    ids = iter(range(10**12))

    def insert_one() -> None:
        raw.execute("BEGIN")
        raw.execute(insert, (f"{next(ids):026d}", *sample[1:]))
        raw.execute("COMMIT")

    return insert_one


def _decorator(quick: bool, um: Umlaut, folder: Path) -> list[Row]:
    repeat = 3 if quick else 7
    on_n, off_n = (50, 20_000) if quick else (200, 100_000)

    def bare(x: float) -> float:
        return x

    tracked = step(experiment="bench-step")(bare)
    set_default_umlaut(um)
    raw = sqlite3.connect(folder / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    try:
        set_tracking_enabled(True)
        for _ in range(20):
            tracked(1.0)
        insert_one = _raw_training_runs(folder / ".umlaut" / "umlaut.db", raw)
        calls = {"n": 0}

        def timed(fn: Callable[[], Any], n: int, count: bool = False) -> Callable[[], float]:
            def one_round() -> float:
                start = time.perf_counter()
                for _ in range(n):
                    fn()
                if count:
                    calls["n"] += n
                return (time.perf_counter() - start) / n

            return one_round

        before = _count_runs(um, "bench-step")
        on = _alternate(
            {
                "tracked": timed(lambda: tracked(1.0), on_n, count=True),
                "raw": timed(insert_one, on_n),
            },
            repeat=repeat,
        )
        stored = _count_runs(um, "bench-step") - before
        set_tracking_enabled(False)
        off = _alternate(
            {
                "tracked": timed(lambda: tracked(1.0), off_n),
                "bare": timed(lambda: bare(1.0), off_n),
            },
            repeat=repeat,
        )
        untracked = _count_runs(um, "bench-step") - before - stored
    finally:
        set_tracking_enabled(None)
        set_default_umlaut(None)
        raw.close()
    on_row = latency_row(
        "@step on a trivial function, tracking on", EMBEDDED, on["tracked"], on["raw"],
        "raw sqlite3 insert+commit, same indexes as umlaut_training_runs", max_ratio=3,
        runs_called=calls["n"], runs_stored=stored,
    )  # fmt: skip
    if stored != calls["n"]:
        on_row.met = False
    overhead = (off["tracked"].median - off["bare"].median) * 1e6
    off_row = latency_row(
        "@step on a trivial function, tracking off", EMBEDDED, off["tracked"], off["bare"],
        "a bare call of the same function", overhead_us=round(overhead, 4),
        runs_stored=untracked,
    )  # fmt: skip
    off_row.target = "≤ 1 µs over a bare call"
    off_row.met = overhead <= 1 and untracked == 0
    return [on_row, off_row]


def _count_runs(um: Umlaut, experiment: str) -> int:
    um.flush()
    total, token = 0, None
    while True:
        page = um.search_training_runs(experiment, limit=10_000, page_token=token)
        total += len(page.runs)
        token = page.next_page_token
        if token is None:
            return total


# -- 4 and 5. a big store: search and history ----------------------------------------


def _cache_key() -> str:
    """What the cached database depends on: the data made here, the SQL store's
    version and the text of its schema and write code (hashed, so a schema still
    changing in development is never read through a stale file)."""
    import umlaut_sql

    digest = hashlib.sha256(DATA_VERSION.encode())
    digest.update(importlib.metadata.version("umlaut-sql").encode())
    for name in ("_schema.py", "_experiment_writes.py"):
        digest.update((Path(umlaut_sql.__file__).parent / name).read_bytes())
    return digest.hexdigest()[:16]


def _cached(runs: int, points: int) -> tuple[Path, float | None]:
    """The database with ``runs`` search runs and one ``points``-point history; made
    (seconds returned) or found in the cache (None)."""
    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"experiments-{_cache_key()}-{runs}-{points}.db"
    if path.exists():
        return path, None
    building = path.with_suffix(f".{os.getpid()}.building")
    with contextlib.suppress(FileNotFoundError):
        building.unlink()
    start = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="umlaut-bench-artifacts-") as artifacts,
        Umlaut(f"sqlite:///{building}", artifacts) as um,
    ):
        store = um._training.store
        _populate_runs(store, runs)
        _populate_history(store, points)
    # The facade closed its connections, so SQLite folded the WAL into the file.
    building.rename(path)
    for old in CACHE.glob("experiments-*.db"):  # other keys: stale, and hundreds of MB
        if old != path and not old.name.startswith(f"experiments-{_cache_key()}-"):
            old.unlink(missing_ok=True)
    return path, time.perf_counter() - start


def _populate_runs(store: Any, runs: int) -> None:
    rng = random.Random(13)
    base = datetime(2024, 1, 1, tzinfo=UTC)
    env = {"python": "3.11", "host": "bench", "pid": 1}
    for first in range(0, runs, 5_000):
        writes: list[Any] = []
        for i in range(first, min(first + 5_000, runs)):
            run_id = f"bench-{i:08d}"
            at = base + timedelta(seconds=i)
            ms = int(at.timestamp() * 1000)
            writes += [
                RunStarted(run_id, "search", f"run-{i}", at, user="bench", host="bench",
                           environment=env),
                ParamsLogged(run_id, {f"p{k}": rng.random() for k in range(10)}),
                MetricsLogged(run_id, tuple(
                    MetricPoint(f"m{k}", rng.random(), 0, ms, 1) for k in range(10)
                )),
                RunEnded(run_id, RunStatus.FINISHED, at + timedelta(seconds=1)),
            ]  # fmt: skip
        store.write(writes)


def _populate_history(store: Any, points: int) -> None:
    at = datetime(2024, 1, 1, tzinfo=UTC)
    ms = int(at.timestamp() * 1000)
    store.write([RunStarted("bench-history", "history", "history", at)])
    rng = random.Random(points)
    for first in range(0, points, 50_000):
        chunk = tuple(
            MetricPoint("loss", rng.random(), i, ms + i, i + 1)
            for i in range(first, min(first + 50_000, points))
        )
        store.write([MetricsLogged("bench-history", chunk)])
    store.write([RunEnded("bench-history", RunStatus.FINISHED, at + timedelta(hours=1))])


def _and_ok(runs: list[Any]) -> bool:
    firsts = [r.metrics["m1"].last for r in runs]
    return firsts == sorted(firsts, reverse=True) and all(
        r.params["p3"] > 0.5 and r.metrics["m2"].max < 0.8 for r in runs
    )


def _or_ok(runs: list[Any]) -> bool:
    firsts = [r.params["p0"] for r in runs]
    return firsts == sorted(firsts) and all(
        r.params["p1"] < 0.1 or r.metrics["m4"].min > 0.9 for r in runs
    )


def _search(quick: bool, folder: Path) -> list[Row]:
    runs, points = (10_000, 100_000) if quick else (100_000, 1_000_000)
    cached, built = _cached(runs, points)
    db = folder / "search.db"
    shutil.copyfile(cached, db)  # the facade may write (e.g. mark a run KILLED)
    number, repeat = (3, 3) if quick else (5, 7)
    hist_repeat = 3 if quick else 5
    made = {"store_built_s": round(built, 1)} if built else {"store": "cached"}
    label = f"{runs:,} runs × 10 params × 10 metrics"
    with Umlaut(f"sqlite:///{db}", str(folder / "search-artifacts")) as um:

        def page(filter: str, order: str, token: str | None = None, limit: int = 100) -> Any:
            return um.search_training_runs(
                "search", filter=filter, order_by=order, limit=limit, page_token=token
            )

        # The deep page: about three quarters into the AND filter's ~40% of the runs,
        # reached by walking big pages (untimed); then one ordinary page from there.
        token: str | None = None
        walked, last_before = 0, 1.0
        step_size = 1_000 if quick else 10_000
        while walked < int(runs * 0.4 * 0.75):
            walk = page(_AND, _AND_ORDER, token, limit=step_size)
            walked += len(walk.runs)
            token, last_before = walk.next_page_token, walk.runs[-1].metrics["m1"].last
        queries: dict[str, tuple[Callable[[], Any], Callable[[list[Any]], bool]]] = {
            "AND": (lambda: page(_AND, _AND_ORDER), _and_ok),
            "OR": (lambda: page(_OR, _OR_ORDER), _or_ok),
            "deep": (
                lambda: page(_AND, _AND_ORDER, token),
                lambda rs: _and_ok(rs) and rs[0].metrics["m1"].last <= last_before,
            ),
        }
        checks: dict[str, bool] = {}
        for name, (query, ok) in queries.items():
            result = query()
            checks[name] = len(result.runs) == 100 and ok(result.runs)
        timed = {name: measure(q, number=number, repeat=repeat) for name, (q, _) in queries.items()}

        def history() -> list[MetricPoint]:
            return um.metric_history("bench-history", "loss")

        read = len(history())
        ours = measure(history, number=1, repeat=hist_repeat)
    with contextlib.closing(sqlite3.connect(db)) as raw:

        def raw_history() -> list[Any]:
            return raw.execute(
                "SELECT value, step, timestamp_ms, point_id FROM umlaut_metric_points "
                "WHERE run_id = ? AND key = ? ORDER BY step, timestamp_ms, point_id",
                ("bench-history", "loss"),
            ).fetchall()

        base = measure(raw_history, number=1, repeat=hist_repeat)
    names = {
        "AND": f"search_training_runs, {label}: AND filter, ordered by a metric, page of 100",
        "OR": f"search_training_runs, {label}: OR filter, ordered by a param, page of 100",
        "deep": f"search_training_runs, {label}: AND filter, page of 100 after {walked:,} rows",
    }
    filters = {"AND": (_AND, _AND_ORDER), "OR": (_OR, _OR_ORDER), "deep": (_AND, _AND_ORDER)}
    rows = []
    for name, scenario in names.items():
        row = latency_row(
            scenario, "sqlite", timed[name], unit="ms/call", max_value=50,
            filter=filters[name][0], order_by=filters[name][1], results_ok=checks[name], **made,
        )  # fmt: skip
        if not checks[name]:
            row.met = False
        rows.append(row)
    row = latency_row(
        f"metric_history, {points:,} points of one metric", "sqlite", ours, base,
        "raw sqlite3 fetchall of the same rows", unit="ms/call", max_value=1000,
        points_read=read, points_per_s=round(points / ours.median),
    )  # fmt: skip
    if read != points:
        row.met = False
    rows.append(row)
    return rows


# -- the module ----------------------------------------------------------------------


@contextlib.contextmanager
def _in(folder: Path) -> Iterator[None]:
    """The embedded default is ``./.umlaut``: work in ``folder`` for the duration."""
    here = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(here)


def run(quick: bool) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="umlaut-bench-experiments-") as tmp:
        folder = Path(tmp)
        with _in(folder), Umlaut() as um:
            rows += _embedded_loop(quick, um, folder)
            rows += _decorator(quick, um, folder)
            rows += _servers_rows(quick, um, folder)
        rows += _search(quick, folder)
    return rows


if __name__ == "__main__":
    _servers.run_alone(run)
