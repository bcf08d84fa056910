"""``umlaut copy`` SQLite → PostgreSQL of 1,000,000 audit records (issue #14).

The source is a SQLite registry with one model and 1,000,000 records (50,000 with
``--quick``). Each round copies it into a fresh, empty PostgreSQL database:

* ours: the whole ``umlaut copy SRC DST`` command in a fresh process — the version and
  its bundle, the ledger, every record (``scan_runs`` pages from SQLite, written with
  ``import_runs``: COPY under a savepoint), and the closing verification;
* raw: a script that reads the same rows with ``sqlite3`` and writes them with
  psycopg's ``COPY umlaut_runs … FROM STDIN`` (``write_row``) in one transaction,
  into a database that already has umlaut's schema — also a fresh process.

The two alternate round by round. Target: ours ≥ 50% of raw's rows/s.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _servers
from _harness import Row, Stats, throughput_row

from umlaut_core import Umlaut
from umlaut_core.ids import encode_id
from umlaut_core.testing.models import Threshold

BACKEND = "sqlite → postgresql"
MODEL = "copy-bench"
_COLUMNS = (
    "id, model_name, version, selector, inputs, output, status, error_type, "
    "error_message, reference_id, started_at, duration_ms, tags"
)

#: The same rows by hand: sqlite3 → psycopg COPY, one transaction.
_BY_HAND = f"""
import sqlite3, sys, psycopg
src = sqlite3.connect(sys.argv[1])
with psycopg.connect(sys.argv[2]) as conn, conn.cursor() as cur:
    with cur.copy("COPY umlaut_runs ({_COLUMNS}) FROM STDIN") as copy:
        rows = src.execute("SELECT {_COLUMNS} FROM umlaut_runs ORDER BY id")
        while batch := rows.fetchmany(10000):
            for row in batch:
                copy.write_row(row)
"""


def _rows(n: int) -> Iterator[tuple[Any, ...]]:
    """Synthetic records of the last 30 days, like run_model writes them."""
    rng = random.Random(14)
    end = time.time_ns() // 1_000_000 - 86_400_000
    start = end - 30 * 86_400_000
    for i in range(n):
        ms = start + (i * (end - start)) // n
        when = dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="microseconds")
        failed = i % 50 == 0
        yield (
            encode_id(ms, rng.getrandbits(79)), MODEL, 1, "stage=Production",
            f'{{"x":{i},"order":"o-{i}"}}', None if failed else '{"above":true,"limit":5}',
            "error" if failed else "ok", "ValueError" if failed else None,
            "x must be >= 0" if failed else None, f"order-{i // 3}" if i % 4 else None,
            when, 0.012 + (i % 7) / 1000, '{"batch":"nightly"}' if i % 10 == 0 else "{}",
        )  # fmt: skip


def _source(folder: Path, n: int) -> str:
    url = f"sqlite:///{folder / 'src' / 'umlaut.db'}"
    with Umlaut(url, delivery="sync") as umlaut:
        umlaut.track_model(Threshold(5), MODEL, stage="Production")
    conn = sqlite3.connect(folder / "src" / "umlaut.db", isolation_level=None)
    conn.execute("BEGIN")
    rows = _rows(n)
    marks = ", ".join("?" * 13)
    while chunk := [r for _, r in zip(range(50_000), rows, strict=False)]:
        conn.executemany(f"INSERT INTO umlaut_runs ({_COLUMNS}) VALUES ({marks})", chunk)
    conn.execute("COMMIT")
    conn.close()
    return url


def _umlaut() -> list[str]:
    script = shutil.which("umlaut", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "umlaut_core.cli"]


def run(quick: bool) -> list[Row]:
    n = 50_000 if quick else 1_000_000
    repeat = 3
    try:
        server = _servers.postgres()
    except _servers.Unavailable as exc:
        return [Row("umlaut copy SQLite → PostgreSQL", BACKEND, "rows/s", 0, 0, 0,
                    extra={"skipped": str(exc)})]  # fmt: skip
    from umlaut_sql import SqlTracker

    with tempfile.TemporaryDirectory(prefix="umlaut-bench-copy-") as tmp:
        folder = Path(tmp)
        src = _source(folder, n)
        env = {k: v for k, v in os.environ.items() if not k.startswith("UMLAUT_")}
        env["UMLAUT_HOME"] = str(folder / ".umlaut")

        def ours() -> float:
            dst = server.create_database()
            cmd = [*_umlaut(), "copy", src, dst, "--dst-artifact-uri", str(folder / "dst")]
            start = time.perf_counter()
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
            took = time.perf_counter() - start
            assert done.returncode == 0, done.stderr[-2000:]
            assert f"{n:,}/{n:,}" in done.stdout, done.stdout
            return took

        def raw() -> float:
            dst = server.create_database()
            SqlTracker(dst).close()  # umlaut's schema, made before the clock starts
            cmd = [sys.executable, "-c", _BY_HAND, src.removeprefix("sqlite:///"),
                   dst.replace("+psycopg", "")]  # fmt: skip
            start = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=3600)
            return time.perf_counter() - start

        samples: dict[str, list[float]] = {"ours": [], "raw": []}
        for i in range(repeat):  # interleaved, the order alternating
            order = [("ours", ours), ("raw", raw)]
            for name, fn in order if i % 2 == 0 else order[::-1]:
                samples[name].append(fn() / n)
    stats = {k: Stats(statistics.median(v), min(v), max(v), repeat) for k, v in samples.items()}
    return [
        throughput_row(
            f"umlaut copy SQLite → PostgreSQL, {n:,} records (whole command)", BACKEND,
            stats["ours"], stats["raw"], "sqlite3 read + psycopg COPY by hand (whole process)",
            min_ratio=0.5, records=n, chunk_size=10_000,
        )
    ]  # fmt: skip


if __name__ == "__main__":
    _servers.run_alone(run)
