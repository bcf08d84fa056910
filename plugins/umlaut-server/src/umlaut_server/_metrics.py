"""``/metrics`` in Prometheus' text format (0.0.4), with no client library.

Per worker process the counters live in memory. With several workers each writes a
snapshot to ``metrics_dir`` (one JSON file per process, at most once a second and
at shutdown); ``/metrics`` then sums every worker's latest snapshot with its own live
counters, so whichever worker answers a scrape reports the whole server.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

__all__ = ["BUCKETS", "Metrics"]

#: Latency histogram bucket bounds, seconds.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Key = tuple[str, str, str]  # (model, version, protocol)


class Metrics:
    """Counters for one worker; ``render()`` gives the server-wide text."""

    def __init__(self, metrics_dir: str | None = None) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, str, str], int] = defaultdict(int)
        self.errors: dict[tuple[str, str, str, str], int] = defaultdict(int)
        self.hist: dict[Key, list[float]] = {}
        self.refused: dict[str, int] = defaultdict(int)
        self.http: dict[str, int] = defaultdict(int)
        #: Dynamic batching, per model: [model calls made, requests they answered].
        self.batches: dict[str, list[int]] = {}
        self.in_flight = 0
        self._dir = Path(metrics_dir) if metrics_dir else None
        self._last_dump = 0.0

    def observe(self, model: str, version: str, protocol: str, status: int, seconds: float) -> None:
        """One request that named a model (``version`` "" when none answered)."""
        code = str(status)
        with self._lock:
            self.requests[(model, version, protocol, code)] += 1
            if status >= 400:
                self.errors[(model, version, protocol, code)] += 1
            h = self.hist.get((model, version, protocol))
            if h is None:
                h = self.hist[(model, version, protocol)] = [0.0] * (len(BUCKETS) + 2)
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    h[i] += 1
                    break
            else:
                h[len(BUCKETS)] += 1
            h[-1] += seconds
        self.maybe_dump()

    def count_http(self, status: int) -> None:
        with self._lock:
            self.http[str(status)] += 1

    def count_batch(self, model: str, requests: int) -> None:
        with self._lock:
            counts = self.batches.get(model)
            if counts is None:
                counts = self.batches[model] = [0, 0]
            counts[0] += 1
            counts[1] += requests

    def count_refused(self, reason: str) -> None:
        with self._lock:
            self.refused[reason] += 1

    # -- several workers ----------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": [[*k, v] for k, v in self.requests.items()],
                "errors": [[*k, v] for k, v in self.errors.items()],
                "hist": [[*k, list(v)] for k, v in self.hist.items()],
                "refused": dict(self.refused),
                "http": dict(self.http),
                "batches": {k: list(v) for k, v in self.batches.items()},
                "in_flight": self.in_flight,
            }

    def maybe_dump(self, force: bool = False) -> None:
        if self._dir is None:
            return
        now = time.monotonic()
        if not force and now - self._last_dump < 1.0:
            return
        self._last_dump = now
        path = self._dir / f"worker-{os.getpid()}.json"
        tmp = path.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps(self.snapshot()))
            os.replace(tmp, path)

    def _merged(self) -> dict[str, Any]:
        mine = self.snapshot()
        if self._dir is None:
            return mine
        own = f"worker-{os.getpid()}.json"
        snaps = [mine]
        with contextlib.suppress(OSError):
            for path in self._dir.glob("worker-*.json"):
                if path.name != own:
                    with contextlib.suppress(OSError, ValueError):
                        snaps.append(json.loads(path.read_text()))
        total: dict[str, Any] = {
            "requests": defaultdict(int),
            "errors": defaultdict(int),
            "hist": {},
            "refused": defaultdict(int),
            "http": defaultdict(int),
            "batches": {},
            "in_flight": 0,
        }
        for snap in snaps:
            for kind in ("requests", "errors"):
                for *key, value in snap[kind]:
                    total[kind][tuple(key)] += value
            for *key, values in snap["hist"]:
                into = total["hist"].setdefault(tuple(key), [0.0] * len(values))
                for i, v in enumerate(values):
                    into[i] += v
            for kind in ("refused", "http"):
                for key, value in snap[kind].items():
                    total[kind][key] += value
            for model, counts in snap.get("batches", {}).items():
                into = total["batches"].setdefault(model, [0, 0])
                into[0] += counts[0]
                into[1] += counts[1]
            total["in_flight"] += snap["in_flight"]
        total["requests"] = [[*k, v] for k, v in total["requests"].items()]
        total["errors"] = [[*k, v] for k, v in total["errors"].items()]
        total["hist"] = [[*k, v] for k, v in total["hist"].items()]
        return total

    def render(self, spool_depth: int | None, spool_oldest_s: float | None) -> str:
        data = self._merged()
        out: list[str] = []
        add = out.append
        add("# HELP umlaut_serve_requests_total Requests that named a model, by status.")
        add("# TYPE umlaut_serve_requests_total counter")
        for model, version, protocol, code, value in sorted(data["requests"]):
            labels = _labels(model=model, version=version, protocol=protocol, code=code)
            add(f"umlaut_serve_requests_total{{{labels}}} {value}")
        add("# HELP umlaut_serve_errors_total Of those, the ones answered with status >= 400.")
        add("# TYPE umlaut_serve_errors_total counter")
        for model, version, protocol, code, value in sorted(data["errors"]):
            labels = _labels(model=model, version=version, protocol=protocol, code=code)
            add(f"umlaut_serve_errors_total{{{labels}}} {value}")
        add("# HELP umlaut_serve_request_duration_seconds Time from request to response.")
        add("# TYPE umlaut_serve_request_duration_seconds histogram")
        for model, version, protocol, values in sorted(data["hist"]):
            base = _labels(model=model, version=version, protocol=protocol)
            running = 0.0
            for bound, count in zip(BUCKETS, values, strict=False):
                running += count
                add(
                    f'umlaut_serve_request_duration_seconds_bucket{{{base},le="{bound:g}"}} '
                    f"{running:g}"
                )
            running += values[len(BUCKETS)]
            add(f'umlaut_serve_request_duration_seconds_bucket{{{base},le="+Inf"}} {running:g}')
            add(f"umlaut_serve_request_duration_seconds_count{{{base}}} {running:g}")
            add(f"umlaut_serve_request_duration_seconds_sum{{{base}}} {values[-1]:.6f}")
        add("# HELP umlaut_serve_http_responses_total Every response, by status.")
        add("# TYPE umlaut_serve_http_responses_total counter")
        for code, value in sorted(data["http"].items()):
            add(f'umlaut_serve_http_responses_total{{code="{code}"}} {value}')
        add("# HELP umlaut_serve_auth_refused_total Requests refused by authentication.")
        add("# TYPE umlaut_serve_auth_refused_total counter")
        for reason, value in sorted(data["refused"].items()):
            add(f'umlaut_serve_auth_refused_total{{reason="{reason}"}} {value}')
        if data["batches"]:  # only with --batch-rows
            add("# HELP umlaut_serve_batch_calls_total Model calls made by dynamic batching.")
            add("# TYPE umlaut_serve_batch_calls_total counter")
            for model, (calls, _) in sorted(data["batches"].items()):
                add(f"umlaut_serve_batch_calls_total{{{_labels(model=model)}}} {calls}")
            add("# HELP umlaut_serve_batch_requests_total Requests those calls answered.")
            add("# TYPE umlaut_serve_batch_requests_total counter")
            for model, (_, requests) in sorted(data["batches"].items()):
                add(f"umlaut_serve_batch_requests_total{{{_labels(model=model)}}} {requests}")
        add("# HELP umlaut_serve_in_flight Requests being answered now.")
        add("# TYPE umlaut_serve_in_flight gauge")
        add(f"umlaut_serve_in_flight {data['in_flight']}")
        if spool_depth is not None:
            add("# HELP umlaut_serve_spool_depth Audit records waiting in the spool.")
            add("# TYPE umlaut_serve_spool_depth gauge")
            add(f"umlaut_serve_spool_depth {spool_depth}")
            add("# HELP umlaut_serve_spool_oldest_seconds Age of the oldest waiting record.")
            add("# TYPE umlaut_serve_spool_oldest_seconds gauge")
            add(f"umlaut_serve_spool_oldest_seconds {spool_oldest_s or 0.0:.3f}")
        return "\n".join(out) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
