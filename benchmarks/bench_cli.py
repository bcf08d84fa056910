"""The ``umlaut`` command line: start-up and ``history --export`` (issue #14).

* Start-up: ``umlaut --help`` and ``umlaut models list`` on the embedded default, each
  a fresh process, against a fresh ``python -c "import sqlalchemy"`` — measured
  interleaved in one run. Target: ≤ 1.5×.
* ``umlaut history --export out.csv`` of 1,000,000 audit records (50,000 with
  ``--quick``) on the embedded SQLite file, the whole command, against a script that
  reads the same table with ``sqlite3`` and writes it with ``csv.writer`` (also a fresh
  process). Targets: ≥ 50% of its rows/s; peak RSS (``VmHWM``) < 200 MB.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from _harness import Row, latency_row, measure_interleaved, throughput_row

from umlaut_core import Umlaut
from umlaut_core.testing.models import Echo

BACKEND = "sqlite (embedded default)"

#: Runs the console script's ``main`` in this process, then reports its peak RSS.
_MEASURED = """
import sys
from umlaut_core.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    if exit.code:
        raise
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(peak / 1024, file=sys.stderr)
"""

#: The same export by hand: sqlite3 + csv.writer, newest first like umlaut's.
_BY_HAND = """
import csv, sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
with open(sys.argv[2], "w", newline="", encoding="utf-8") as out:
    writer = csv.writer(out, lineterminator="\\n")
    cursor = conn.execute("SELECT * FROM umlaut_runs ORDER BY id DESC")
    writer.writerow([d[0] for d in cursor.description])
    while rows := cursor.fetchmany(5000):
        writer.writerows(rows)
"""


def _umlaut() -> list[str]:
    script = shutil.which("umlaut", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "umlaut_core.cli"]


def _runner(cmd: list[str], cwd: Path, env: dict[str, str]) -> Callable[[], None]:
    def run() -> None:
        subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, timeout=3600)

    return run


def _start_rows(home: Path, env: dict[str, str], quick: bool) -> list[Row]:
    umlaut = _umlaut()
    fns = {
        "help": _runner([*umlaut, "--help"], home, env),
        "models": _runner([*umlaut, "models", "list"], home, env),
        "sqlalchemy": _runner([sys.executable, "-c", "import sqlalchemy"], home, env),
    }
    stats = measure_interleaved(fns, number=1, repeat=5 if quick else 21, warmup=1)
    base = "process: python -c 'import sqlalchemy'"
    return [
        latency_row(
            "CLI start: umlaut --help", BACKEND, stats["help"], stats["sqlalchemy"], base,
            unit="ms/call", max_ratio=1.5,
        ),
        latency_row(
            "CLI start: umlaut models list", BACKEND, stats["models"], stats["sqlalchemy"],
            base, unit="ms/call", max_ratio=1.5,
        ),
    ]  # fmt: skip


def _export_rows(home: Path, env: dict[str, str], quick: bool) -> list[Row]:
    n = 50_000 if quick else 1_000_000
    with Umlaut() as umlaut:
        umlaut.track_model(Echo(), "export")
        inputs = ({"x": i, "order": f"o-{i}"} for i in range(n))
        umlaut.run_batch("export", inputs, version=1, return_outputs=False)
    database = home / ".umlaut" / "umlaut.db"
    ours_csv, raw_csv = home / "ours.csv", home / "raw.csv"
    export = [sys.executable, "-c", _MEASURED, "history", "--export", str(ours_csv)]
    peaks: list[float] = []

    def ours() -> None:
        done = subprocess.run(
            export, cwd=home, env=env, check=True, capture_output=True, text=True, timeout=3600
        )
        peaks.append(float(done.stderr.strip().splitlines()[-1]))

    fns = {
        "ours": ours,
        "raw": _runner([sys.executable, "-c", _BY_HAND, str(database), str(raw_csv)], home, env),
    }
    stats = measure_interleaved(fns, number=1, per=n, repeat=3, warmup=0)
    with open(ours_csv, newline="", encoding="utf-8") as f:
        exported = sum(1 for _ in csv.reader(f)) - 1
    assert exported == n, (exported, n)
    peak = max(peaks)
    return [
        throughput_row(
            f"history --export to CSV, {n:,} records (whole command)", BACKEND, stats["ours"],
            stats["raw"], "sqlite3 + csv.writer by hand (whole process)", min_ratio=0.5,
        ),
        Row(
            f"history --export to CSV, {n:,} records, peak RSS", BACKEND, "MB", peak,
            min(peaks), peak, target="< 200 MB", met=peak < 200,
            extra={"records": n, "page_size": 5000},
        ),
    ]  # fmt: skip


def run(quick: bool) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="umlaut-bench-cli-") as tmp:
        home = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("UMLAUT_")}
        env["UMLAUT_HOME"] = str(home / ".umlaut")
        old_cwd, old_home = os.getcwd(), os.environ.get("UMLAUT_HOME")
        os.chdir(home)
        os.environ["UMLAUT_HOME"] = env["UMLAUT_HOME"]
        try:
            with Umlaut() as umlaut:  # models list reads a real file with a model in it
                umlaut.track_model(Echo(), "start")
            rows = _start_rows(home, env, quick)
            rows += _export_rows(home, env, quick)
        finally:
            os.chdir(old_cwd)
            if old_home is None:
                os.environ.pop("UMLAUT_HOME", None)
            else:
                os.environ["UMLAUT_HOME"] = old_home
    return rows
