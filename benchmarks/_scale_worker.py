"""A separate process for bench_scale: memory and multi-process scenarios.

``python _scale_worker.py MODE TRACKING_URI ARTIFACT_URI N [MODEL]`` prints one JSON
line. MODEL (default ``scale``) is a model the parent tracked as version 1.

* ``idle`` — open the store and run the model once: the resident-memory floor.
* ``batch`` / ``stream`` — ``run_batch`` of N inputs from a generator (sync delivery),
  returning the outputs / with ``return_outputs=False``;
  reports peak RSS (``VmHWM``) and the time taken.
* ``loop`` — warm up, print ``ready``, wait for a line on stdin, then N ``run_model``
  calls (sync delivery); reports wall-clock start and end.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def _peak_rss_mb() -> float:
    """This process's peak resident memory.

    ``ru_maxrss`` is not used first: Linux carries it across ``execve``, so a child of
    a large parent (run.py, with mlflow imported) reports the parent's peak.
    ``VmHWM`` belongs to the process's own address space.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    mode, tracking, artifacts, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    model = sys.argv[5] if len(sys.argv) > 5 else "scale"
    from umlaut_core import Umlaut

    with Umlaut(tracking, artifacts, delivery="sync") as um:
        um.run_model(model, {"x": 1, "revenue": 1}, version=1)
        out: dict[str, float] = {}
        if mode in ("batch", "stream"):
            start = time.perf_counter()
            inputs = ({"x": i, "revenue": i % 10} for i in range(n))
            if mode == "stream":  # outputs only in the audit records
                out["outputs"] = um.run_batch(model, inputs, version=1, return_outputs=False)
            else:
                outputs = um.run_batch(model, inputs, version=1)
                out["outputs"] = len(outputs)
                del outputs
            out["seconds"] = time.perf_counter() - start
        elif mode == "loop":
            for _ in range(20):
                um.run_model(model, {"x": 1}, version=1)
            print("ready", flush=True)
            sys.stdin.readline()
            out["start"] = time.time()
            for i in range(n):
                um.run_model(model, {"x": i}, version=1)
            out["end"] = time.time()
    out["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
