"""umlaut on an MLflow server beside what users would pick instead, in one run.

Compared, each on a real ``mlflow server`` started like the tests' one
(``--workers 1``, job execution off, artifacts proxied):

* the original **umlaut 0.3.4** (it pins mlflow 1.28), in its own virtual
  environment under ``benchmarks/.venvs/umlaut-0.3.4`` built here on first use
  (``umlaut==0.3.4`` plus ``setuptools<70``: mlflow 1.28 imports ``pkg_resources``,
  which newer setuptools dropped). Its 1.28 client cannot talk to an MLflow 3 server
  (the model registry's ``/api/2.0/preview/...`` endpoints are gone: HTTP 404), so it
  runs against its **own MLflow 1.28 server** started with the same flags; the probe
  that shows this runs every time and its answer is in the rows' ``extra``. Measured:
  ``track_model`` (each call registers a new version) and steady-state
  ``run_model`` (after one warm-up call) with HTTP requests per call; its
  ``run_model`` rounds alternate with umlaut-mlflow's synchronous ones, so the
  ratios between them are measured side by side.
* **plain MLflow 3 by hand**: ``mlflow.pyfunc.load_model`` once, then per prediction
  one run (``start_run`` → ``predict`` → ``set_tags`` with the JSON inputs and
  output → ``end_run``); and registering a pyfunc with explicit pip requirements.
* **umlaut-mlflow** on the MLflow 3 server: ``run_model`` by stage with the audit
  written synchronously (``delivery="sync"``) and spooled (the default for remote
  trackers), each with the default ``resolve_ttl`` (1 s for a remote tracker) and with
  ``resolve_ttl=0`` (an alias lookup on every call), and pinned to a version;
  ``track_model`` of a changed model; shipping throughput of the spool.
* **umlaut on the embedded SQLite default**, the baseline of issue 8's target.

Requests are counted by wrapping ``requests.Session.request`` in this process (the
umlaut-mlflow and plain MLflow sides) and in the 0.3.4 driver process.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _servers
from _harness import (
    Row,
    Stats,
    each_stats,
    faster_row,
    latency_row,
    measure,
    measure_each,
    time_calls,
)

from umlaut_core import Umlaut
from umlaut_core.testing.models import ExampleModel, Threshold

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venvs" / "umlaut-0.3.4"
DRIVER = HERE / "_original_driver.py"
ORIGINAL = "umlaut 0.3.4 (own mlflow 1.28 server)"
VERSIONS: dict[str, str] = {}
_COUNT = {"n": 0}


class _Skip(Exception):
    pass


# -- the original's virtual environment ------------------------------------------------


def _venv_python(quick: bool) -> Path:
    python = VENV / "bin" / "python"
    marker = VENV / ".ready"
    if marker.exists():
        return python
    if quick:
        raise _Skip(
            f"umlaut 0.3.4 venv not cached at {VENV} (quick mode does not build it; "
            "a full run does)"
        )
    shutil.rmtree(VENV, ignore_errors=True)
    uv = Path(sys.executable).with_name("uv")
    uv_exe = str(uv) if uv.exists() else shutil.which("uv")
    pins = ["umlaut==0.3.4", "setuptools<70"]
    if uv_exe:
        steps = [[uv_exe, "venv", "-q", "-p", sys.executable, str(VENV)]]
        steps.append([uv_exe, "pip", "install", "-q", "-p", str(python), *pins])
    else:
        steps = [[sys.executable, "-m", "venv", str(VENV)]]
        steps.append([str(python), "-m", "pip", "install", "-q", *pins])
    steps.append([str(python), "-W", "ignore", "-c", "import mlflow, umlaut.umlaut"])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=1200)
        if done.returncode:
            raise _Skip(
                f"umlaut 0.3.4 cannot be installed/imported on Python "
                f"{sys.version.split()[0]}: `{' '.join(step[-3:])}` failed: "
                f"{(done.stderr or done.stdout).strip()[-600:]}"
            )
    marker.write_text("ok\n")
    return python


class _Driver:
    """The 0.3.4 driver process (``_original_driver.py``), set up and waiting for
    rounds of ``run_model`` calls, so they can alternate with ours."""

    def __init__(self, python: Path, url: str, tracks: int) -> None:
        self.proc = subprocess.Popen(
            [str(python), str(DRIVER), url, str(tracks)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.rounds: list[list[float]] = []
        self.requests: list[float] = []
        self.ready = self._answer()

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=60)
            assert self.proc.stderr is not None
            lines = self.proc.stderr.read().strip().splitlines() or ["?"]
            errors = [x for x in lines if "Exception:" in x or "Error:" in x]
            raise RuntimeError((errors or lines)[-1][:400])
        return dict(json.loads(line))

    def round(self, calls: int) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{calls}\n")
        self.proc.stdin.flush()
        got = self._answer()
        self.rounds.append(got["run_s"])
        self.requests.append(got["run_requests"])

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def _original(quick: bool, mlflow3_url: str) -> tuple[_Driver, str]:
    """The 0.3.4 driver on its own MLflow 1.28 server, and why not on the 3.x one."""
    python = _venv_python(quick)
    try:  # does the 1.28 client work against the MLflow 3 server?
        _Driver(python, mlflow3_url, 1).close()
        probe = "the 1.28 client works against the MLflow 3 server"
    except RuntimeError as exc:
        probe = f"1.28 client against the MLflow 3 server fails: {exc}"[:300]
    url = _servers.mlflow_at(
        str(VENV / "bin" / "mlflow"), label="mlflow-1.28", extra_path=str(VENV / "bin")
    )
    driver = _Driver(python, url, 2 if quick else 5)
    VERSIONS["umlaut (original)"] = "0.3.4"
    VERSIONS["mlflow (original's)"] = driver.ready["mlflow"]
    return driver, probe


# -- this process: plain MLflow and umlaut-mlflow --------------------------------------


def _count_requests() -> None:
    import requests

    if getattr(requests.Session.request, "_bench_counted", False):
        return
    original = requests.Session.request

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        _COUNT["n"] += 1
        return original(self, *args, **kwargs)

    counted._bench_counted = True  # type: ignore[attr-defined]
    requests.Session.request = counted  # type: ignore[method-assign]


def _per_call(fn: Callable[[], Any], calls: int) -> float:
    before = _COUNT["n"]
    for _ in range(calls):
        fn()
    return (_COUNT["n"] - before) / calls


def _plain_mlflow(url: str, quick: bool) -> dict[str, Any]:
    import mlflow

    class Revenue(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return ExampleModel().run(model_input)

    mlflow.set_tracking_uri(url)
    name = "plain-mlflow"
    reqs = ["mlflow", "cloudpickle"]  # explicit: no requirement-inference subprocess

    def register() -> None:
        with mlflow.start_run():
            mlflow.pyfunc.log_model(
                name="model", python_model=Revenue(), registered_model_name=name,
                pip_requirements=reqs,
            )  # fmt: skip

    track_n = 2 if quick else 5
    track = measure(register, number=1, repeat=track_n, warmup=0)
    track_req = _per_call(register, 1)
    model = mlflow.pyfunc.load_model(f"models:/{name}/1")
    exp = mlflow.set_experiment("plain-mlflow-audit").experiment_id

    def predict_and_log() -> Any:
        payload = {"revenue": 7}
        with mlflow.start_run(experiment_id=exp):
            out = model.predict(payload)
            mlflow.set_tags({"inputs": json.dumps(payload), "output": json.dumps(out)})
        return out

    assert predict_and_log() is True
    number, repeat = (10, 2) if quick else (30, 5)
    run, p99 = measure_each(predict_and_log, number=number, repeat=repeat, warmup=2)
    return {
        "track": track,
        "track_req": track_req,
        "run": run,
        "run_p99": p99,
        "run_req": _per_call(predict_and_log, 5),
    }


def _ours(url: str, quick: bool, folder: Path, original: _Driver | None) -> dict[str, Any]:
    number, repeat = (10, 2) if quick else (50, 5)
    got: dict[str, Any] = {}
    name, payload = "bench-original", {"revenue": 7}
    # Sync: by stage with the default resolve_ttl (1 s for a remote tracker: about one
    # alias lookup a second) and with 0 (an alias lookup on every call), and pinned.
    with (
        Umlaut(f"mlflow+{url}", delivery="sync") as um,
        Umlaut(f"mlflow+{url}", delivery="sync", resolve_ttl=0) as strict,
    ):
        um.track_model(ExampleModel(), name, stage="Production")
        calls: dict[str, Callable[[], Any]] = {
            "sync": lambda: um.run_model(name, payload, stage="Production"),
            "sync_ttl0": lambda: strict.run_model(name, payload, stage="Production"),
            "sync_pinned": lambda: um.run_model(name, payload, version=1),
        }
        # Round by round, each of ours and then one of the original (its own process
        # and server): a machine that changes speed mid-run slows both sides alike.
        samples: dict[str, list[list[float]]] = {key: [] for key in calls}
        for call in calls.values():
            for _ in range(3):
                call()
        for _ in range(repeat):
            for key, call in calls.items():
                samples[key].append(time_calls(call, number))
            if original is not None:
                original.round(number // 2)
        for key, call in calls.items():
            got[key], got[f"{key}_p99"] = each_stats(samples[key])
            got[f"{key}_req"] = _per_call(call, 10)
        limits = itertools.count(100)

        def track() -> None:
            um.track_model(Threshold(next(limits)), "bench-original-track")

        got["track"] = measure(track, number=1, repeat=2 if quick else 5)
        got["track_req"] = _per_call(track, 1)
    # Spooled: the shipper runs alongside (it ships ~40 records/s to this server), so
    # what is measured is the steady state under load; the backlog is not waited for.
    # resolve_ttl: the spooled default (1 s) against 0, where every by-stage call asks
    # the tracker — the documented freshness/speed trade-off.
    for ttl in (1.0, 0.0):
        with Umlaut(
            f"mlflow+{url}", delivery="spooled", spool_path=str(folder / f"spool-{ttl}.db"),
            exit_flush_timeout=1, resolve_ttl=ttl,
        ) as um:  # fmt: skip
            calls = {"spooled" if ttl else "spooled_ttl0": lambda: um.run_model(
                name, payload, stage="Production")}  # fmt: skip
            if ttl:
                calls["spooled_pinned"] = lambda: um.run_model(name, payload, version=1)
            for key, call in calls.items():
                n = {"spooled_ttl0": 100}.get(key, 1000) // (10 if quick else 1)
                got[key], got[f"{key}_p99"] = measure_each(call, number=n, repeat=repeat, warmup=20)
    # Shipping from a thread of this process, so that its requests are counted here.
    with Umlaut(
        f"mlflow+{url}", delivery="spooled", spool_path=str(folder / "mlflow-ship.db"),
        shipper="thread",
    ) as um:  # fmt: skip
        n = 30 if quick else 300
        samples, before = [], _COUNT["n"]
        for _ in range(2 if quick else 3):
            um.run_batch(name, [{"revenue": i} for i in range(n)], version=1)
            start = time.perf_counter()  # the shipper starts once the batch is spooled
            assert um.flush(timeout=900)
            samples.append((time.perf_counter() - start) / n)
        got["ship"] = Stats(statistics.median(samples), min(samples), max(samples), len(samples))
        got["ship_req"] = (_COUNT["n"] - before) / (n * len(samples))
    return got


def _embedded(folder: Path, quick: bool) -> tuple[Stats, float]:
    with Umlaut(f"sqlite:///{folder / 'embedded.db'}", str(folder / "art")) as um:
        um.track_model(ExampleModel(), "bench-original", stage="Production")
        return measure_each(
            lambda: um.run_model("bench-original", {"revenue": 7}, stage="Production"),
            number=300 if quick else 2000,
            repeat=3 if quick else 5,
        )


def _stats(samples: list[float]) -> Stats:
    return Stats(statistics.median(samples), min(samples), max(samples), len(samples))


def _rows(
    orig: dict[str, Any] | None, skip: str | None, plain: dict[str, Any], ours: dict[str, Any],
    embedded: tuple[Stats, float],
) -> list[Row]:  # fmt: skip
    ml3 = "umlaut-mlflow, mlflow 3 server"
    emb, emb_p99 = embedded
    synced = (
        ("sync", "by stage (default resolve_ttl=1 s)"),
        ("sync_ttl0", "by stage, resolve_ttl=0,"),
        ("sync_pinned", "version pinned"),
    )
    rows = [
        latency_row("run_model by stage (audit sync)", "sqlite (embedded default)", emb,
                    p99_us=round(emb_p99 * 1e6, 1)),
        latency_row("plain MLflow by hand: predict + 1 run (loaded once)", "mlflow 3 server",
                    plain["run"], unit="ms/call", requests_per_call=plain["run_req"],
                    p99_ms=round(plain["run_p99"] * 1e3, 2)),
        latency_row("plain MLflow: log_model + register (explicit pip reqs)", "mlflow 3 server",
                    plain["track"], unit="ms/call", requests_per_call=plain["track_req"]),
    ]  # fmt: skip
    for key, how in synced:
        rows.append(
            latency_row(f"run_model {how} (audit sync)", ml3, ours[key], plain["run"],
                        "plain MLflow by hand", unit="ms/call",
                        requests_per_call=ours[f"{key}_req"],
                        p99_ms=round(ours[f"{key}_p99"] * 1e3, 2))
        )  # fmt: skip
    spooled = (
        ("spooled", "by stage (default resolve_ttl=1 s)"),
        ("spooled_ttl0", "by stage, resolve_ttl=0,"),
        ("spooled_pinned", "version pinned"),
    )
    for key, how in spooled:
        rows.append(
            latency_row(f"run_model {how} (audit spooled)", ml3, ours[key], emb,
                        "embedded SQLite run_model", max_ratio=2,
                        p99_us=round(ours[f"{key}_p99"] * 1e6, 1))
        )  # fmt: skip
    _context_only(rows)
    rows.append(
        Row("spooled delivery: shipping to MLflow (thread shipper)", ml3, "rows/s",
            1 / ours["ship"].median, 1 / ours["ship"].max, 1 / ours["ship"].min,
            extra={"requests_per_record": round(ours["ship_req"], 2)})
    )  # fmt: skip
    if orig is None:
        rows.append(Row("umlaut 0.3.4 comparison", ORIGINAL, "", 0, 0, 0,
                        extra={"skipped": skip}))  # fmt: skip
        rows.append(latency_row("track_model (new version)", ml3, ours["track"],
                                unit="ms/call", requests_per_call=ours["track_req"]))  # fmt: skip
        return rows
    o_run, _ = each_stats(orig["run_s"])
    o_track = _stats(orig["track_s"])
    o_track_req = statistics.median(orig["track_requests"])
    base = "umlaut 0.3.4 run_model"
    rows += [
        latency_row("run_model by stage (steady state)", ORIGINAL, o_run, unit="ms/call",
                    requests_per_call=orig["run_requests"], server=orig["probe"]),
        latency_row("track_model (new version)", ORIGINAL, o_track, unit="ms/call",
                    requests_per_call=o_track_req),
    ]  # fmt: skip
    for key, how in synced:
        rows.append(
            faster_row(f"run_model {how} (audit sync) vs original", ml3, ours[key], o_run,
                       base, min_speedup=3, requests_per_call=ours[f"{key}_req"],
                       baseline_requests=orig["run_requests"])
        )  # fmt: skip
    for key, how in spooled:
        rows.append(
            faster_row(f"run_model {how} (audit spooled) vs original", ml3, ours[key], o_run,
                       base, min_speedup=50)
        )  # fmt: skip
    rows.append(
        faster_row("track_model (new version) vs original", ml3, ours["track"], o_track,
                   "umlaut 0.3.4 track_model", min_speedup=5,
                   requests_per_call=ours["track_req"], baseline_requests=o_track_req)
    )  # fmt: skip
    context = faster_row("plain MLflow by hand vs original", "mlflow 3 server", plain["run"],
                         o_run, base, min_speedup=1)  # fmt: skip
    context.target, context.met = "", None  # context only, no target
    _context_only(rows)
    return [*rows, context]


def _context_only(rows: list[Row]) -> None:
    """``resolve_ttl=0`` asks the MLflow server for the stage's version on every call,
    by definition a round trip per call: its rows show that price, but the targets of
    issues #4 and #8 are about the default (``resolve_ttl`` 1 s) and pinned calls."""
    for row in rows:
        if "resolve_ttl=0" in row.scenario:
            row.target, row.met = "", None


def run(quick: bool) -> list[Row]:
    import mlflow
    import umlaut_mlflow  # noqa: F401  # the plugin must be installed

    warnings.filterwarnings("ignore", module="mlflow")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    VERSIONS["mlflow"] = mlflow.__version__
    _count_requests()
    url = _servers.mlflow()
    with tempfile.TemporaryDirectory(prefix="umlaut-bench-orig-") as tmp:
        folder = Path(tmp)
        orig: dict[str, Any] | None = None
        driver: _Driver | None = None
        skip = probe = None
        try:
            driver, probe = _original(quick, url)
        except (_Skip, _servers.Unavailable, RuntimeError) as exc:
            skip = str(exc)
        try:
            plain = _plain_mlflow(url, quick)
            ours = _ours(url, quick, folder, driver)
        finally:
            if driver is not None:
                driver.close()
        if driver is not None:
            orig = {
                **driver.ready,
                "run_s": driver.rounds,
                "run_requests": statistics.median(driver.requests),
                "probe": probe,
            }
        embedded = _embedded(folder, quick)
    return _rows(orig, skip, plain, ours, embedded)


if __name__ == "__main__":
    _servers.run_alone(run)
