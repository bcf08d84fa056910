"""A worker process for the reliability tests, run as ``python _worker.py '<json>'``.

It opens its own ``Umlaut`` from URIs (as a separate host would), prints ``ready``,
waits for ``go`` on stdin so every worker starts its work at the same moment, does
one job, and prints one JSON line with what it did. Models come from
``umlaut_core.testing.models`` (an installed module, so every process can load them).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from umlaut_core import Umlaut
from umlaut_core.clock import utcnow
from umlaut_core.testing.models import Echo, Threshold


def _open(job: dict[str, Any]) -> Umlaut:
    return Umlaut(
        job["tracking"],
        job.get("artifact"),
        artifact_options=job.get("artifact_options") or {},
        **job.get("options", {}),
    )


def track(u: Umlaut, job: dict[str, Any]) -> dict[str, Any]:
    """Track ``count`` distinct Threshold bundles (or ``same`` one) under one name."""
    out = []
    for i in range(job["count"]):
        limit = job["same"] if "same" in job else job["worker"] * 1000 + i
        mv = u.track_model(Threshold(limit), job["name"])
        out.append([mv.version, mv.digest, mv.created, limit])
    return {"tracked": out}


def run(u: Umlaut, job: dict[str, Any]) -> dict[str, Any]:
    """``count`` run_model calls with inputs naming this worker and the call."""
    w = job["worker"]
    wrong = 0
    for i in range(job["count"]):
        result = u.run_model(job["name"], {"w": w, "i": i}, reference_id=f"w{w}-{i}")
        wrong += result != {"w": w, "i": i}
    flushed = u.flush(timeout=120)
    return {"wrong": wrong, "flushed": flushed, "mode": u.delivery_mode}


def run_alias(u: Umlaut, job: dict[str, Any]) -> dict[str, Any]:
    """Run by alias until ``seconds`` pass; the record says which version ran."""
    deadline = time.monotonic() + job["seconds"]
    calls = 0
    while time.monotonic() < deadline:
        # t0 is taken before run_model resolves the alias; the record's started_at
        # after. The alias was read at some instant between the two.
        t0 = utcnow().isoformat()
        u.run_model(job["name"], {"x": 0, "t0": t0}, stage=job["alias"])
        calls += 1
    return {"calls": calls, "flushed": u.flush(timeout=120), "resolve_ttl": u.resolve_ttl}


def move_alias(u: Umlaut, job: dict[str, Any]) -> dict[str, Any]:
    """Move the alias back and forth; report every move that certainly wrote."""
    deadline = time.monotonic() + job["seconds"]
    moves = []
    done = {}
    k = 0
    while time.monotonic() < deadline:
        target = job["versions"][k % len(job["versions"])]
        reason = f"w{job['worker']}-{k}"
        change = u.promote(job["name"], target, job["alias"], reason=reason)
        done[reason] = utcnow().isoformat()  # the move, if any, committed before this
        # promote() returns from == to without writing when the alias is already
        # there, so only a change with from != to is certainly in the ledger.
        if change.from_version != change.to_version:
            moves.append(reason)
        k += 1
        time.sleep(job["pause"])
    return {"moves": moves, "done": done}


def batch(u: Umlaut, job: dict[str, Any]) -> dict[str, Any]:
    """One run_batch of ``count`` items tagged ``batch=<tag>``; announce each phase."""
    size, tag = job["count"], job["tag"]

    delivery = u._delivery
    original = delivery.deliver

    def deliver(records: Any) -> None:
        # Observation only: the real tracker (or spool) does the write; the parent
        # kills this process once it reads "writing".
        print("writing", flush=True)
        original(records)

    delivery.deliver = deliver  # type: ignore[method-assign]
    marker = job.get("model_phase_marker")

    def items() -> Any:
        for i in range(size):
            if marker and i == size // 2:
                print("modelling", flush=True)
            yield {"i": i, "pad": "x" * 200}

    u.run_batch(job["name"], items(), tags={"batch": tag})
    print("written", flush=True)
    return {"flushed": u.flush(timeout=120)}


def track_forever(u: Umlaut, job: dict[str, Any]) -> dict[str, Any]:
    """Track new versions until killed (bundles optionally padded to ``pad`` bytes)."""
    pad = os.urandom(job.get("pad", 0))
    i = 0
    while True:
        model = Echo(tag=f"{job['worker']}-{i}-{time.time_ns()}")
        if pad:
            model.blob = pad  # type: ignore[attr-defined]
        u.track_model(model, job["name"])
        i += 1
        if i == 1:
            print("tracking", flush=True)


JOBS = {
    "track": track,
    "run": run,
    "run_alias": run_alias,
    "move_alias": move_alias,
    "batch": batch,
    "track_forever": track_forever,
}


def main() -> None:
    job = json.loads(sys.argv[1])
    u = _open(job)
    print("ready", flush=True)
    if job.get("wait", True):
        sys.stdin.readline()
    result = JOBS[job["op"]](u, job)
    u.close()
    print(json.dumps({"result": result}), flush=True)


if __name__ == "__main__":
    main()
