"""Drive the original umlaut 0.3.4 against an MLflow server, one round at a time.

Runs inside the 0.3.4 virtual environment (mlflow 1.28), started by
``bench_original.py``: ``python _original_driver.py URL TRACKS``. It tracks ``TRACKS``
versions of the example model (each ``track_model`` call makes a new version: 0.3.4
has no dedupe), moves version 1 to ``Production``, makes one warm-up ``run_model``
call and prints one JSON line (track timings, requests, versions). Then each line
``N`` on stdin times ``N`` ``run_model`` calls and prints their timings and requests
per call as one JSON line, so the caller can alternate these rounds with its own;
``quit`` or end of input stops it. HTTP requests are counted by wrapping
``requests.Session.request``, which every MLflow 1.28 REST and artifact call goes
through.
"""

from __future__ import annotations

import json
import sys
import time
import warnings

warnings.filterwarnings("ignore")

COUNT = {"n": 0}


def _count_requests() -> None:
    import requests

    original = requests.Session.request

    def counted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        COUNT["n"] += 1
        return original(self, *args, **kwargs)

    requests.Session.request = counted  # type: ignore[method-assign]


class ExampleModel:
    """The original README's example model (revenue above a target)."""

    def run(self, model_input: dict) -> bool:  # type: ignore[type-arg]
        return model_input.get("revenue", 0) > 5


def main() -> None:
    url, tracks = sys.argv[1], int(sys.argv[2])
    import logging

    import mlflow
    from mlflow.tracking import MlflowClient
    from umlaut.umlaut import Umlaut

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    _count_requests()
    um = Umlaut()
    mlflow.set_tracking_uri(url)  # 0.3.4 reads a PostgreSQL URI from DB_* env vars
    name = f"bench original {time.time_ns()}"
    track_s, track_req = [], []
    for _ in range(tracks):
        before, start = COUNT["n"], time.perf_counter()
        um.track_model(ExampleModel(), name)
        track_s.append(time.perf_counter() - start)
        track_req.append(COUNT["n"] - before)
    MlflowClient().transition_model_version_stage(name, "1", "Production")
    um.run_model(name, {"revenue": 7})  # warm-up: first-time imports
    ready = {
        "track_s": track_s,
        "track_requests": track_req,
        "mlflow": mlflow.__version__,
        "python": sys.version.split()[0],
    }
    print(json.dumps(ready), flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        runs = int(line)
        samples = []
        before = COUNT["n"]
        for _ in range(runs):
            start = time.perf_counter()
            result = um.run_model(name, {"revenue": 7})
            samples.append(time.perf_counter() - start)
            assert result is True, result
        requests = (COUNT["n"] - before) / runs
        print(json.dumps({"run_s": samples, "run_requests": requests}), flush=True)


if __name__ == "__main__":
    main()
