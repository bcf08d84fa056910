"""How cost grows with work, on the embedded SQLite default and on PostgreSQL.

* ``run_model`` median and p99 (every call timed) with 0, 100,000 and 1,000,000 audit
  records already stored; baseline: the same call on the empty store, same run.
  "Flat" here means the median stays within 1.5× and p99 within 2× of the empty
  store's. Pre-existing records go straight into the documented ``umlaut_runs``
  table (sqlite3 ``executemany``, PostgreSQL ``COPY``), spread over ten models,
  100 days and ``reference_id`` values shared by three records each.
* ``history()`` pages (100 records) over 1,000,000 records: by model (first page and
  a page half-way back), by time range, by model + time range, by reference id.
  Target on SQLite: ≤ 50 ms per page.
* ``run_batch`` of 1,000,000 inputs from a generator in a fresh process, peak RSS
  (``VmHWM`` from /proc) against a process that opened the store and ran once. Target:
  < 300 MB, for the streaming form (``return_outputs=False``: outputs live only in the
  audit records). For comparison, the same batch returning its list of outputs (small
  dicts, then bools): that list alone is most of the peak.
* Throughput of 1, 2 and 4 processes calling ``run_model`` on one store at once.
* PostgreSQL only: shipping throughput of spooled delivery (records/s).

All audit writes here are ``delivery="sync"`` (the record is in the store before the
call returns), so the store's own cost is what is measured. Quick mode uses 100 and
1,000 stored records, a 20,000-input batch and fewer calls.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _servers
from _harness import Row, Stats, latency_row, measure, measure_each

from umlaut_core import Umlaut
from umlaut_core.ids import encode_id
from umlaut_core.testing.models import ExampleModel, Threshold

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_scale_worker.py"
MODELS = [f"hist-{k}" for k in range(10)]
DAY_MS = 86_400_000
# Pre-existing records: the 100 days ending 2 days ago (newer than that is the run's).
_END_MS = (time.time_ns() // 1_000_000) - 2 * DAY_MS
_START_MS = _END_MS - 100 * DAY_MS
_COLUMNS = (
    "id, model_name, version, selector, inputs, output, status, error_type, "
    "error_message, reference_id, started_at, duration_ms, tags"
)


def _record(i: int, total: int, rng: random.Random) -> tuple[Any, ...]:
    """Record ``i`` of the synthetic history, in the umlaut_runs column order."""
    ms = _START_MS + (i * (100 * DAY_MS)) // total
    ulid = encode_id(ms, rng.getrandbits(79))
    when = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="microseconds")
    return (
        ulid, MODELS[i % 10], 1, "stage=Production", f'{{"x":{i}}}', '{"above":true}',
        "ok", None, None, f"order-{i // 3}", when, 0.012, "{}",
    )  # fmt: skip


def _records(start: int, stop: int, total: int) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(start)
    return (_record(i, total, rng) for i in range(start, stop))


class _Store:
    """One umlaut store and a raw connection that fills its runs table."""

    def __init__(self, name: str, url: str, artifacts: str) -> None:
        self.name, self.url, self.artifacts = name, url, artifacts
        self.stored = 0

    def fill(self, upto: int, total: int) -> float:
        """Insert synthetic records ``[stored, upto)``; return seconds taken."""
        start = time.perf_counter()
        if self.url.startswith("sqlite"):
            conn = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None)
            conn.execute("BEGIN")
            marks = ", ".join("?" * 13)
            rows = _records(self.stored, upto, total)
            while chunk := [r for _, r in zip(range(50_000), rows, strict=False)]:
                conn.executemany(f"INSERT INTO umlaut_runs ({_COLUMNS}) VALUES ({marks})", chunk)
            conn.execute("COMMIT")
            conn.execute("ANALYZE")
            conn.close()
        else:
            import psycopg

            with psycopg.connect(self.url.replace("+psycopg", ""), autocommit=True) as conn:
                copy = f"COPY umlaut_runs ({_COLUMNS}) FROM STDIN"
                with conn.cursor() as cur, cur.copy(copy) as cp:
                    for row in _records(self.stored, upto, total):
                        cp.write_row(row)
                conn.execute("ANALYZE umlaut_runs")
        self.stored = upto
        return time.perf_counter() - start


def _flat_rows(store: _Store, levels: list[int], quick: bool) -> list[Row]:
    number, repeat = (200, 3) if quick else (2000, 5)
    rows: list[Row] = []
    base: tuple[Stats, float] | None = None
    with Umlaut(store.url, store.artifacts, delivery="sync") as um:
        for n in levels:
            fill_s = store.fill(n, levels[-1]) if n > store.stored else 0.0
            stats, p99 = measure_each(
                lambda: um.run_model("scale", {"x": 7}, stage="Production"),
                number=number,
                repeat=repeat,
            )
            base = base or (stats, p99)
            label = f"run_model with {n:,} records stored"
            rows.append(
                latency_row(
                    label, store.name, stats, base[0], "same call, empty store",
                    max_ratio=1.5, p99_us=round(p99 * 1e6, 1), fill_seconds=round(fill_s, 1),
                )
            )  # fmt: skip
            p99_stats = Stats(p99, p99, p99, 1)
            rows.append(
                latency_row(
                    f"{label} (p99)", store.name, p99_stats, Stats(base[1], base[1], base[1], 1),
                    "p99 on the empty store", max_ratio=2,
                )
            )  # fmt: skip
    return rows


def _history_rows(store: _Store, quick: bool) -> list[Row]:
    number, repeat = (5, 3) if quick else (20, 7)
    total = store.stored
    rows: list[Row] = []
    since = dt.datetime.fromtimestamp((_START_MS + 40 * DAY_MS) / 1000, dt.UTC)
    until = since + dt.timedelta(days=1)
    with Umlaut(store.url, store.artifacts, delivery="sync") as um:
        back = 10_000 if total > 200_000 else 50
        middle = um.history("hist-3", limit=back)[-1].id
        queries: dict[str, Callable[[], Any]] = {
            "by model, first page": lambda: um.history("hist-3", limit=100),
            f"by model, page {back:,} records back": lambda: um.history(
                "hist-3", before=middle, limit=100
            ),
            "by time range (one day)": lambda: um.history(since=since, until=until, limit=100),
            "by model + time range": lambda: um.history(
                "hist-3", since=since, until=until, limit=100
            ),
            "by reference id": lambda: um.history(reference_id=f"order-{total // 6}"),
        }
        for label, query in queries.items():
            found = len(query())
            stats = measure(query, number=number, repeat=repeat)
            rows.append(
                latency_row(
                    f"history() {label}, {total:,} stored", store.name, stats, unit="ms/call",
                    max_value=50 if store.url.startswith("sqlite") else None, returned=found,
                )
            )  # fmt: skip
    return rows


def _worker(mode: str, store: _Store, n: int, model: str = "scale") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WORKER), mode, store.url, store.artifacts, str(n), model],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=3600)
    if proc.returncode:
        raise RuntimeError(f"bench worker failed ({proc.returncode}); see stderr above")
    return dict(json.loads(out.strip().splitlines()[-1]))


def _memory_rows(store: _Store, quick: bool) -> list[Row]:
    n = 20_000 if quick else 1_000_000
    floor = _result(_worker("idle", store, 0))["peak_rss_mb"]
    rows = []
    cases = (
        ("stream", "scale", "return_outputs=False, dict outputs", True),
        ("batch", "scale", "outputs returned: small dicts", False),
        ("batch", "scale-bool", "outputs returned: bools", False),
    )
    for mode, model, returns, targeted in cases:
        got = _result(_worker(mode, store, n, model))
        assert got["outputs"] == n, got
        rss = got["peak_rss_mb"]
        rows.append(
            Row(
                f"run_batch {n:,} from a generator, peak RSS ({returns})",
                store.name, "MB", rss, rss, rss, "process that opened the store",
                floor, rss / floor, "< 300 MB" if targeted else "",
                rss < 300 if targeted else None,
                {"records_per_s": round(n / got["seconds"]), "seconds": round(got["seconds"], 1)},
            )
        )  # fmt: skip
    return rows


def _processes_rows(store: _Store, quick: bool) -> list[Row]:
    calls, repeat = (100, 2) if quick else (1500, 3)
    rows: list[Row] = []
    one: Stats | None = None
    for k in (1, 2, 4):
        rates = []
        for _ in range(repeat):
            procs = [_worker("loop", store, calls) for _ in range(k)]
            for p in procs:
                assert p.stdout is not None and p.stdout.readline().strip() == "ready"
            for p in procs:
                assert p.stdin is not None
                p.stdin.write("go\n")
                p.stdin.flush()
            results = [_result(p) for p in procs]
            wall = max(r["end"] for r in results) - min(r["start"] for r in results)
            rates.append(k * calls / wall)
        stats = Stats(1 / statistics.median(rates), 1 / max(rates), 1 / min(rates), repeat)
        one = one or stats
        rows.append(
            Row(
                f"run_model throughput, {k} process{'es' if k > 1 else ''} on one store",
                store.name, "rows/s", 1 / stats.median, 1 / stats.max, 1 / stats.min,
                "1 process" if k > 1 else "", 1 / one.median if k > 1 else None,
                one.median / stats.median if k > 1 else None, "", None, {"calls_each": calls},
            )
        )  # fmt: skip
    return rows


def _shipping_row(store: _Store, folder: Path, quick: bool) -> Row:
    """Spooled delivery to PostgreSQL: records/s from a full spool to an empty one."""
    n, repeat = (1000, 2) if quick else (20_000, 3)
    samples = []
    with Umlaut(
        store.url, store.artifacts, delivery="spooled", spool_path=str(folder / "spool.db")
    ) as um:
        for _ in range(repeat):
            um.run_batch("scale", [{"x": i} for i in range(n)], version=1)
            start = time.perf_counter()  # the shipper starts once the batch is spooled
            assert um.flush(timeout=600)
            samples.append((time.perf_counter() - start) / n)
    stats = Stats(statistics.median(samples), min(samples), max(samples), repeat)
    return Row(
        f"spooled delivery: shipping {n:,} records", store.name, "rows/s",
        1 / stats.median, 1 / stats.max, 1 / stats.min, extra={"records": n},
    )  # fmt: skip


def _prepare(store: _Store) -> None:
    with Umlaut(store.url, store.artifacts, delivery="sync") as um:
        um.track_model(Threshold(5), "scale", stage="Production")
        um.track_model(ExampleModel(), "scale-bool")


def _scenarios(store: _Store, levels: list[int], quick: bool, folder: Path) -> list[Row]:
    _prepare(store)
    rows = _flat_rows(store, levels, quick)
    rows += _history_rows(store, quick)
    rows += _memory_rows(store, quick)
    rows += _processes_rows(store, quick)
    if not store.url.startswith("sqlite"):
        rows.append(_shipping_row(store, folder, quick))
    return rows


def run(quick: bool) -> list[Row]:
    levels = [0, 100, 1000] if quick else [0, 100_000, 1_000_000]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="umlaut-bench-scale-") as tmp:
        folder = Path(tmp)
        sqlite_store = _Store(
            "sqlite (embedded file)", f"sqlite:///{folder / 'scale.db'}", str(folder / "art")
        )
        rows += _scenarios(sqlite_store, levels, quick, folder)
        try:
            server = _servers.postgres()
        except _servers.Unavailable as exc:
            rows.append(Row("scale on PostgreSQL", "postgresql", "", 0, 0, 0,
                            extra={"skipped": str(exc)}))  # fmt: skip
            return rows
        pg = _Store("postgresql (local, fsync on)", server.create_database("scale"),
                    str(folder / "pg-art"))  # fmt: skip
        rows += _scenarios(pg, levels, quick, folder)
    return rows


if __name__ == "__main__":
    _servers.run_alone(run)
