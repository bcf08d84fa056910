"""Raw limits not measured elsewhere: psycopg ``COPY`` beside ``executemany``.

The other raw limits are the baselines of other modules' rows, measured in the same
run: sqlite3 single-row insert-and-commit and ``executemany`` and psycopg
``execute``/``executemany`` in ``bench_sql.py``; boto3 ``upload_fileobj`` /
``download_fileobj`` in ``bench_s3.py``. Here: 10,000 rows shaped like
``umlaut_runs`` into a table on the shared PostgreSQL server (fsync on), one
transaction each, ``COPY FROM STDIN`` against ``executemany``.
"""

from __future__ import annotations

import itertools
from typing import Any

import _servers
from _harness import Row, measure, throughput_row

_COLUMNS = (
    "id TEXT PRIMARY KEY, model_name TEXT, version INTEGER, selector TEXT, inputs TEXT, "
    "output TEXT, status TEXT, error_type TEXT, error_message TEXT, reference_id TEXT, "
    "started_at TEXT, duration_ms DOUBLE PRECISION, tags TEXT"
)
_ROW = (
    "m", 1, "latest", '{"x":1}', '{"above":true}', "ok", None, None, None,
    "2024-03-01T09:30:00.000000+00:00", 0.01, "{}",
)  # fmt: skip


def run(quick: bool) -> list[Row]:
    import psycopg

    try:
        server = _servers.postgres()
    except _servers.Unavailable as exc:
        return [Row("psycopg COPY", "postgresql", "", 0, 0, 0, extra={"skipped": str(exc)})]
    batch, repeat = (2000, 3) if quick else (10_000, 7)
    url = server.create_database("raw").replace("+psycopg", "")
    ids = (f"{n:026d}" for n in itertools.count())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE raw_runs ({_COLUMNS})")
        sql = "INSERT INTO raw_runs VALUES (" + ", ".join(["%s"] * 13) + ")"

        def many() -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(sql, [(next(ids), *_ROW) for _ in range(batch)])

        def copy() -> Any:
            copy_sql = "COPY raw_runs FROM STDIN"
            with conn.transaction(), conn.cursor() as cur, cur.copy(copy_sql) as cp:
                for _ in range(batch):
                    cp.write_row((next(ids), *_ROW))

        base = measure(many, number=1, repeat=repeat, per=batch)
        ours = measure(copy, number=1, repeat=repeat, per=batch)
    return [
        throughput_row(
            f"raw psycopg COPY ({batch:,} rows, 1 transaction)",
            "postgresql (local, fsync on)",
            ours,
            base,
            f"raw psycopg executemany {batch:,}",
        )
    ]


if __name__ == "__main__":
    _servers.run_alone(run)
