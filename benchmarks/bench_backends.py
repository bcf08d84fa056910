"""The same user code on every backend, side by side; baseline ``memory:``.

One model (the original README's ``ExampleModel``), tracked and promoted, then:
``run_model`` by stage in steady state (model cached, audit written synchronously),
the first ``run_model`` in a new ``Umlaut`` (bundle fetched from the artifact store
and unpacked), and ``track_model`` of a changed model. Backends: ``memory:``,
embedded SQLite (file + folder), PostgreSQL + folder, SQLite + S3 on the shared moto
server over HTTP, and the MLflow server when umlaut-mlflow is installed. The MLflow
side of the comparison with the original umlaut and plain MLflow is in
``bench_original.py``; the raw drivers are the baselines in ``bench_sql.py``,
``bench_s3.py`` and ``bench_raw.py``.
"""

from __future__ import annotations

import importlib.util
import itertools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _servers
from _harness import Row, Stats, latency_row, measure

from umlaut_core import Umlaut
from umlaut_core.testing.models import ExampleModel, Threshold


def _setups(folder: Path) -> list[tuple[str, Callable[[], tuple[str, str | None]]]]:
    def s3() -> tuple[str, str | None]:
        import boto3

        endpoint = _servers.moto()
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="bench-backends")
        # umlaut-s3 resolves the endpoint the boto3 way
        import os

        os.environ["AWS_ENDPOINT_URL_S3"] = endpoint
        return f"sqlite:///{folder / 's3.db'}", "s3://bench-backends/bundles"

    def pg() -> tuple[str, str | None]:
        return _servers.postgres().create_database("backends"), str(folder / "pg-art")

    setups: list[tuple[str, Callable[[], tuple[str, str | None]]]] = [
        ("memory:", lambda: ("memory:", None)),
        ("sqlite (embedded file)", lambda: (f"sqlite:///{folder / 'e.db'}", str(folder / "e"))),
        ("postgresql + folder", pg),
        ("sqlite + s3 (moto server)", s3),
    ]
    if importlib.util.find_spec("umlaut_mlflow") is not None:
        setups.append(("mlflow server", lambda: (f"mlflow+{_servers.mlflow()}", None)))
    return setups


def run(quick: bool) -> list[Row]:
    rows: list[Row] = []
    base: dict[str, Stats] = {}
    with tempfile.TemporaryDirectory(prefix="umlaut-bench-backends-") as tmp:
        for label, setup in _setups(Path(tmp)):
            try:
                tracking, artifacts = setup()
            except _servers.Unavailable as exc:
                rows.append(Row("backends", label, "", 0, 0, 0, extra={"skipped": str(exc)}))
                continue
            remote = label in ("postgresql + folder", "mlflow server")
            number = (20 if quick else 100) if remote else (200 if quick else 2000)
            repeat = 3 if quick else 5
            got = _measure(tracking, artifacts, number, repeat, quick)
            for key, scenario in (
                ("run", "run_model by stage, steady state (audit sync)"),
                ("first", "first run_model in a new Umlaut (fetch + unpack)"),
                ("track", "track_model (new version)"),
            ):
                base.setdefault(key, got[key])
                rows.append(
                    latency_row(
                        scenario, label, got[key], base[key] if label != "memory:" else None,
                        "memory:" if label != "memory:" else "",
                        unit="µs/call" if key == "run" else "ms/call",
                    )
                )  # fmt: skip
    return rows


def _measure(
    tracking: str, artifacts: str | None, number: int, repeat: int, quick: bool
) -> dict[str, Stats]:
    got: dict[str, Stats] = {}
    opts: dict[str, Any] = {"delivery": "sync"} if tracking != "memory:" else {}
    with Umlaut(tracking, artifacts, **opts) as um:
        um.track_model(ExampleModel(), "backends", stage="Production")
        got["run"] = measure(
            lambda: um.run_model("backends", {"revenue": 7}, stage="Production"),
            number=number,
            repeat=repeat,
        )
        limits = itertools.count(1)
        got["track"] = measure(
            lambda: um.track_model(Threshold(next(limits)), "backends-track"),
            number=1 if tracking.startswith("mlflow") else 5,
            repeat=repeat,
        )
        if tracking == "memory:":  # a memory store cannot be reopened: same instance
            um._cache.clear()
            got["first"] = measure(
                lambda: (um._cache.clear(), um.run_model("backends", {"revenue": 7}, version=1)),
                number=5,
                repeat=repeat,
            )
            return got
    samples = []
    for _ in range(repeat):
        with Umlaut(tracking, artifacts, **opts) as fresh:
            start = time.perf_counter()
            fresh.run_model("backends", {"revenue": 7}, version=1)
            samples.append(time.perf_counter() - start)
    samples.sort()
    got["first"] = Stats(samples[len(samples) // 2], samples[0], samples[-1], repeat)
    return got


if __name__ == "__main__":
    _servers.run_alone(run)
