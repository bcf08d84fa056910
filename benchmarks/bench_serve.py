"""``umlaut serve`` against ``mlflow models serve`` and a bare endpoint (issue #15).

One load generator for all, ``wrk`` (Debian's; installed with apt when missing and
running as root, as tests/_services/postgres.py does for PostgreSQL): one thread, 8
connections, POST /invocations with the same ``dataframe_split`` body of one iris row,
for 10 s per server (``--quick``: 3 s) after a 1 s warm-up. Servers, each with 1 and
2 workers, on 127.0.0.1:

* ``umlaut serve --model M@Production --no-auth --access-log off`` on the embedded
  SQLite registry: every request audited through the spool (``delivery=spooled``);
  once as it is by default, once with dynamic batching (``--batch-rows 64``: requests
  queued together answered by one ``run_batch``, still one audit record each);
* ``mlflow models serve -m <saved model> --env-manager local`` (not audited);
* a bare Starlette app under uvicorn answering a constant (``{"predictions": [1]}``).

Models: the iris pipeline (StandardScaler + LogisticRegression, scikit-learn) and a
trivial function (returns 1 per row). Targets: umlaut ≥ 2× MLflow's throughput with
auditing on, judged with batching on (the rows naming ``--batch-rows 64``; the default
server's ratio is reported beside it without a target); ≥ 60% of the bare endpoint's
throughput for the trivial model and umlaut's p99 ≤ MLflow's p50, judged for both.
The machine is shared (2 cores, wrk on one of them), so only the ratios measured side
by side mean much.

The baselines' two-worker runs are the best of three (each wrk run opens its
connections afresh). Their workers share one listening socket and race for each
connection, so wrk's 8 can all land on one worker, which then serves alone: MLflow's
two-worker iris server gave 489 req/s in such a run (its one-worker figure) and 1,116
in another. ``umlaut serve`` gives each worker its own socket (``SO_REUSEPORT``) and is
measured once. The best of three is the baseline least favourable to umlaut.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import Row, Stats, latency_row, throughput_row

COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
BODY = json.dumps({"dataframe_split": {"columns": COLUMNS, "data": [[5.1, 3.5, 1.4, 0.2]]}})
BACKEND = "sqlite (embedded), spooled"
#: The dynamic-batching option of the batched umlaut server, as rows name it.
BATCHED = ("--batch-rows", "64")

BARE_APP = """
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

async def invocations(request):
    await request.body()
    return Response('{"predictions": [1]}', media_type="application/json")

app = Starlette(routes=[Route("/invocations", invocations, methods=["POST"])])
"""

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [=[%s]=]
wrk.headers["Content-Type"] = "application/json"
"""


def trivial(rows: Any) -> Any:
    return [1 for _ in rows] if isinstance(rows, list) else 1


def _iris() -> Any:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    iris = load_iris(as_frame=True)
    x = iris.data.set_axis(COLUMNS, axis=1)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        x, iris.target_names[iris.target]
    )


def _wrk() -> str | None:
    found = shutil.which("wrk")
    if found is None and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        # A fresh machine may have no package lists yet: update, then install.
        for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "wrk"]):
            subprocess.run(cmd, capture_output=True, timeout=600)
        found = shutil.which("wrk")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start(
    command: list[str], port: int, env: dict[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    import urllib.request

    log = open(cwd / f"server-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{command[:3]} exited: {(cwd / f'server-{port}.log').read_text()}")
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations",
                data=BODY.encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
    _stop(proc)
    raise RuntimeError(f"{command[:3]} did not answer in 120 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _unit(value: str, unit: str) -> float:
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


def _load(
    wrk: str, port: int, seconds: int, script: Path, tries: int = 1
) -> tuple[float, float, float]:
    """(requests/s, p50 s, p99 s) of the fastest of ``tries`` wrk runs (after a 1 s
    warm-up run)."""
    url = f"http://127.0.0.1:{port}/invocations"
    base = [wrk, "-t1", "-c8", "-s", str(script), "--latency"]
    subprocess.run([*base, "-d1s", url], capture_output=True, timeout=60)
    runs = []
    for _ in range(tries):
        out = subprocess.run(
            [*base, f"-d{seconds}s", url], capture_output=True, text=True, timeout=seconds + 60
        ).stdout
        runs.append(_parsed(out, port))
    if tries > 1:
        print("     tries: " + ", ".join(f"{rps:.0f} req/s" for rps, _, _ in runs), flush=True)
    return max(runs)


def _parsed(out: str, port: int) -> tuple[float, float, float]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p50 and p99, out
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"port {port}: {errors.group(1)} error responses under load")
    return rps, _unit(*p50.groups()), _unit(*p99.groups())


def _stats(value: float) -> Stats:
    return Stats(value, value, value, 1)


def run(quick: bool) -> list[Row]:
    wrk = _wrk()
    if wrk is None:
        return [
            Row("umlaut serve", BACKEND, "rows/s", 0, 0, 0, extra={"skipped": "wrk is missing"})
        ]
    import mlflow.pyfunc
    import mlflow.sklearn

    from umlaut_core import Umlaut

    seconds = 3 if quick else 10
    root = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("UMLAUT_")}
    env["UMLAUT_HOME"] = str(root / "home")
    # mlflow models serve runs `uvicorn` from PATH: the one of this interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    tracking = f"sqlite:///{root / 'registry.db'}"
    artifacts = str(root / "artifacts")
    iris = _iris()

    class Trivial(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
            return [1] * len(model_input)

    with Umlaut(tracking, artifacts, delivery="sync") as umlaut:
        umlaut.track_model(iris, "Iris", stage="Production")
        umlaut.track_model(trivial, "Trivial", stage="Production")
    mlflow.sklearn.save_model(iris, str(root / "mlflow-iris"))
    mlflow.pyfunc.save_model(str(root / "mlflow-trivial"), python_model=Trivial())
    (root / "bare.py").write_text(BARE_APP)
    script = root / "post.lua"
    script.write_text(WRK_SCRIPT % BODY)
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))

    def umlaut_cmd(model: str, port: int, workers: int) -> list[str]:
        return [
            sys.executable, "-m", "umlaut_core.cli", "--tracking-uri", tracking,
            "--artifact-uri", artifacts, "serve", "--model", f"{model}@Production",
            "--no-auth", "--access-log", "off", "--port", str(port), "--workers", str(workers),
        ]  # fmt: skip

    def mlflow_cmd(model: str, port: int, workers: int) -> list[str]:
        return [
            mlflow_bin, "models", "serve", "-m", str(root / f"mlflow-{model.lower()}"),
            "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers),
        ]  # fmt: skip

    def bare_cmd(model: str, port: int, workers: int) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "bare:app", "--host", "127.0.0.1", "--port",
            str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip

    def batched_cmd(model: str, port: int, workers: int) -> list[str]:
        return [*umlaut_cmd(model, port, workers), *BATCHED]

    measured: dict[tuple[str, str, int], tuple[float, float, float]] = {}
    plan = [
        (kind, model, workers)
        for workers in (1, 2)
        for model in ("Iris", "Trivial")
        for kind in ("umlaut", "batched", "mlflow", "bare")
        if not (kind == "bare" and model == "Iris")
    ]
    names = {"umlaut": "umlaut serve", "batched": f"umlaut serve {' '.join(BATCHED)}",
             "mlflow": "mlflow models serve", "bare": "bare"}  # fmt: skip
    commands = {
        "umlaut": umlaut_cmd,
        "batched": batched_cmd,
        "mlflow": mlflow_cmd,
        "bare": bare_cmd,
    }
    try:
        for kind, model, workers in plan:
            port = _free_port()
            proc = _start(commands[kind](model, port, workers), port, env, root)
            try:
                tries = 3 if workers > 1 and kind in ("mlflow", "bare") else 1
                measured[(kind, model, workers)] = _load(wrk, port, seconds, script, tries)
            finally:
                _stop(proc)
            rps, p50, p99 = measured[(kind, model, workers)]
            print(f"   {names[kind]}, {model}, workers={workers}: {rps:.0f} req/s, "
                  f"p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(root, ignore_errors=True)

    rows: list[Row] = []
    for workers in (1, 2):
        for model in ("Iris", "Trivial"):
            for kind in ("umlaut", "batched"):
                rows += _rows(measured, kind, model, workers)
    return rows


def _rows(
    measured: dict[tuple[str, str, int], tuple[float, float, float]],
    kind: str,
    model: str,
    workers: int,
) -> list[Row]:
    """The rows of one umlaut server (``kind`` "umlaut": default options, or
    "batched": with :data:`BATCHED`) against MLflow and the bare endpoint."""
    ours = measured[(kind, model, workers)]
    theirs = measured[("mlflow", model, workers)]
    options = " ".join(BATCHED) if kind == "batched" else "default"
    label = f"{model.lower()}, {workers} worker{'s' if workers > 1 else ''}, c=8, {options}"
    rows: list[Row] = []
    extra = {
        "p50_ms": ours[1] * 1e3,
        "p99_ms": ours[2] * 1e3,
        "mlflow_p50_ms": theirs[1] * 1e3,
        "mlflow_p99_ms": theirs[2] * 1e3,
    }
    rows.append(
        throughput_row(
            f"umlaut serve vs mlflow models serve ({label})",
            BACKEND,
            _stats(1 / ours[0]),
            _stats(1 / theirs[0]),
            "mlflow models serve (not audited)",
            # The 2x target is judged with batching on; the default is shown.
            min_ratio=2.0 if kind == "batched" else None,
            **extra,
        )
    )
    rows.append(
        latency_row(
            f"umlaut serve p99 vs mlflow models serve p50 ({label})",
            BACKEND,
            _stats(ours[2]),
            _stats(theirs[1]),
            "mlflow p50",
            unit="ms/call",
            max_ratio=1.0,
        )
    )
    if model == "Trivial":
        bare = measured[("bare", model, workers)]
        rows.append(
            throughput_row(
                f"umlaut serve vs bare Starlette endpoint ({label})",
                BACKEND,
                _stats(1 / ours[0]),
                _stats(1 / bare[0]),
                "bare Starlette/uvicorn constant",
                min_ratio=0.6,
                bare_p50_ms=bare[1] * 1e3,
                bare_p99_ms=bare[2] * 1e3,
            )
        )
    return rows
