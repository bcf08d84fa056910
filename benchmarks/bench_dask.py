"""umlaut-dask: scoring on a LocalCluster (2 worker processes) against one process.

1,000,000 rows (``--quick``: 40,000) of iris measurements go through the iris
pipeline (``StandardScaler`` + ``LogisticRegression`` fitted on iris), once with a
single-process ``Umlaut.run_batch`` and once with ``umlaut_dask.score_frame`` on a
``LocalCluster(n_workers=2, threads_per_worker=1)``, each into a fresh SQLite file
(the embedded default store; on the cluster the client writes each partition's
records as partitions complete), then each into a PostgreSQL database (fsync on; the
workers write). One run each; the cluster's start-up and a first tiny job (each
worker opening its facade and loading the bundle) are reported apart, and the input
is persisted in the workers' memory before the clock starts, as the single process
holds it in its own. Reported: rows/s of both and their ratio (target ≥ 1.5×),
the per-row cost of each, and the workers' peak RSS against one partition's size.

The 1,000,000 rows go through the fitted scikit-learn ``Pipeline`` itself (the
``sklearn`` flavor), which ``run_batch`` runs vectorized: one ``predict`` per chunk of
1,024 rows, a few microseconds a row, so these rows measure what umlaut and Dask add
per row (encoding, audit records, the store); the outputs frame keeps each row's
predicted class (``meta={"prediction": object}``), the probabilities stay in the audit
records. A second pair of rows tracks a model that cannot be vectorized:
the same pipeline called one row at a time from a class with ``run`` (about a
millisecond a row, as a model doing real work per row), on 20,000 rows
(``--quick``: 4,000): the case a cluster is for.
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import Row, Stats, throughput_row

from umlaut_core import Umlaut

WORKERS = 2
VERSIONS: dict[str, str] = {}


class RowByRow:
    """The fitted pipeline, one row per call: a model that cannot be vectorized."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    def run(self, row: dict[str, Any]) -> str:
        import pandas as pd

        return str(self.pipeline.predict(pd.DataFrame([row]))[0])


COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    iris = load_iris(as_frame=True)
    x = iris.data.set_axis(COLUMNS, axis=1)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    pipeline.fit(x, iris.target_names[iris.target])
    return x.to_numpy(), pipeline


def _partition(number: int, rows: int, measurements: Any) -> Any:
    """Rows ``number * rows`` … of the benchmark's data: iris flowers with noise, the
    same wherever made (the workers make their own partitions, as they would read
    them from storage)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(18 + number)
    picks = rng.integers(0, len(measurements), rows)
    noise = rng.normal(0, 0.1, (rows, 4)).round(2)
    frame = pd.DataFrame(measurements[picks] + noise, columns=COLUMNS)
    start = number * rows
    frame.insert(0, "row_id", np.arange(start, start + rows, dtype="int64") * 7 + 11)
    frame.index = pd.RangeIndex(start, start + rows)
    return frame


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _store_uris(kind: str, folder: Path) -> tuple[str, str]:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'single.db'}", f"sqlite:///{folder / 'dask.db'}"
    import _servers

    server = _servers.postgres()
    return server.create_database(), server.create_database()


def run(quick: bool) -> list[Row]:
    import dask
    import distributed
    import pandas as pd

    VERSIONS.update({"dask": dask.__version__, "distributed": distributed.__version__})
    measurements, pipeline = _iris()
    folder = Path(tempfile.mkdtemp(prefix="umlaut-bench-dask-"))
    out: list[Row] = []
    # The scenario: the iris pipeline, vectorized by run_batch, so the rows
    # measure what umlaut and Dask add per row.
    rows = 40_000 if quick else 1_000_000
    # 40,000 rows a partition: run_batch holds them in memory (it spills past 50,000).
    per = 10_000 if quick else 40_000
    frame = pd.concat([_partition(i, per, measurements) for i in range(rows // per)])
    for kind in ("sqlite", "postgresql"):
        out += _measure(
            kind, pipeline, "the iris pipeline", frame, per, measurements, folder,
            # The predicted class per row (the probabilities stay in the audit records).
            meta={"prediction": object},
        )  # fmt: skip
    # …and a model doing about a millisecond of work per row: the case a cluster is for.
    model = RowByRow(pipeline)
    rows = 4_000 if quick else 20_000
    per = 500 if quick else 2_500
    frame = pd.concat([_partition(i, per, measurements) for i in range(rows // per)])
    sample = frame.head(50)
    assert [model.run(r) for r in sample[COLUMNS].to_dict("records")] == list(
        pipeline.predict(sample[COLUMNS])
    )
    for kind in ("sqlite", "postgresql"):
        out += _measure(
            kind, model, "a row-by-row model", frame, per, measurements, folder,
            meta={"output": object},
        )  # fmt: skip
    return out


def _measure(
    kind: str,
    model: Any,
    what: str,
    frame: Any,
    per: int,
    measurements: Any,
    folder: Path,
    meta: dict[str, Any],
) -> list[Row]:
    import _servers
    import dask.dataframe as dd
    from distributed import Client, LocalCluster
    from umlaut_dask import score_frame

    rows = len(frame)
    partitions = rows // per
    label = f"{rows:,} rows through {what}"
    backend = "sqlite (client writes)" if kind == "sqlite" else "postgresql (workers write)"
    try:
        single_uri, dask_uri = _store_uris(kind, folder)
    except _servers.Unavailable as exc:
        skipped = Row(f"score_frame {label}", backend, "rows/s", 0, 0, 0)
        skipped.extra["skipped"] = str(exc)
        return [skipped]
    artifacts = str(folder / f"artifacts-{kind}")
    inputs = frame[COLUMNS]
    with Umlaut(single_uri, artifacts, delivery="sync") as umlaut:
        umlaut.track_model(model, "Iris", stage="Production")
        started = time.perf_counter()
        done = umlaut.run_batch("Iris", inputs, stage="Production", return_outputs=False)
        single_s = time.perf_counter() - started
        assert done == rows
    started = time.perf_counter()
    with (
        LocalCluster(
            n_workers=WORKERS, threads_per_worker=1, processes=True,
            dashboard_address=None, silence_logs=50,
        ) as cluster,
        Client(cluster) as client,
        Umlaut(dask_uri, artifacts, delivery="sync") as umlaut,
    ):  # fmt: skip
        startup_s = time.perf_counter() - started
        umlaut.track_model(model, "Iris", stage="Production")
        # Each worker makes the partitions it scores (as it would read them), so
        # it never holds more of the input than the partition in hand.
        data = dd.from_map(
            _partition, range(partitions), rows=per, measurements=measurements,
            meta=frame.head(0),
            divisions=[i * per for i in range(partitions)] + [rows - 1],
        )  # fmt: skip
        # Each worker process opens its facade and loads the bundle once; a first
        # small job pays that (reported apart, as the cluster's start-up is).
        started = time.perf_counter()
        warm = dd.from_pandas(frame.head(4 * WORKERS), npartitions=WORKERS)
        score_frame(umlaut, warm, "Iris", key="row_id", input_columns=COLUMNS, client=client)
        warmup_s = time.perf_counter() - started
        baseline_rss = client.run(_peak_rss_mb)
        started = time.perf_counter()
        scored = score_frame(
            umlaut, data, "Iris", key="row_id", stage="Production",
            input_columns=COLUMNS, meta=meta, client=client,
        )  # fmt: skip
        dask_s = time.perf_counter() - started
        assert scored.rows == rows
        peaks = client.run(_peak_rss_mb)
        assert len(umlaut.history("Iris", limit=10)) == 10
    return _rows(
        label, backend, rows, partitions, frame, single_s, dask_s, startup_s, warmup_s,
        baseline_rss, peaks,
    )  # fmt: skip


def _rows(
    label: str,
    backend: str,
    rows: int,
    partitions: int,
    frame: Any,
    single_s: float,
    dask_s: float,
    startup_s: float,
    warmup_s: float,
    baseline_rss: dict[str, float],
    peaks: dict[str, float],
) -> list[Row]:
    partition_mb = frame.memory_usage(deep=True).sum() / partitions / 1e6
    dataset_mb = frame.memory_usage(deep=True).sum() / 1e6
    single = Stats(single_s / rows, single_s / rows, single_s / rows, 1)
    ours = Stats(dask_s / rows, dask_s / rows, dask_s / rows, 1)
    row = throughput_row(
        f"score_frame {label}, LocalCluster({WORKERS} workers) vs single-process run_batch",
        backend,
        ours,
        single,
        f"single-process run_batch {label}",
        min_ratio=1.5,
        speedup=round(single_s / dask_s, 2),
        single_us_per_row=round(single_s / rows * 1e6, 2),
        dask_us_per_row=round(dask_s / rows * 1e6, 2),
        # CPU-time per row the cluster spends beyond one process, with both workers busy.
        overhead_us_per_row=round((WORKERS * dask_s - single_s) / rows * 1e6, 2),
        cluster_startup_s=round(startup_s, 2),
        first_job_s=round(warmup_s, 2),
        cpus=os.cpu_count(),
    )
    row.target = "≥ 1.5× single-process rows/s"
    row.met = (single_s / dask_s) >= 1.5
    worst = max(peaks.values())
    growth = worst - max(baseline_rss.values())
    memory = Row(
        f"score_frame {label}: peak RSS per worker",
        backend,
        "MB",
        worst,
        min(peaks.values()),
        worst,
        "one partition of the input (MB)",
        partition_mb,
        None,
        "grows with the partition, not the dataset (informational)",
        None,
        {
            "growth_mb": round(growth, 1),
            "rows_per_partition": rows // partitions,
            "dataset_mb": round(dataset_mb, 1),
            "partition_mb": round(partition_mb, 1),
            "partitions": partitions,
            "worker_rss_before_mb": [round(v) for v in baseline_rss.values()],
        },
    )
    return [row, memory]
