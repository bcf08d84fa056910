"""Run every benchmarks/bench_*.py, write results/latest.{json,md,png}, update README.

    python benchmarks/run.py            # full run (minutes)
    python benchmarks/run.py --quick    # CI smoke mode: fewer rounds, same scenarios
    python benchmarks/run.py --only core,sql
    python benchmarks/run.py --only scale --merge   # re-run some, keep the others' rows

A module whose backend is not installed here is reported as skipped, with why.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import importlib.metadata
import json
import re
import sys
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE.parent / "README.md"
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"
PACKAGES = [
    "umlaut-core",
    "umlaut-sql",
    "umlaut-s3",
    "umlaut-mlflow",
    "sqlalchemy",
    "psycopg",
    "boto3",
    "moto",
    "mlflow",
    "cloudpickle",
]


# Every speed target stated in the backend issues, and the rows that measure it:
# (issue, target, scenario prefix, backend substring). A target with no row is listed
# as "not measured" so a missing benchmark is visible, not silently absent.
TARGETS = [
    ("#3", "run_model + audit ≤ 3× raw sqlite3 insert+commit",
     r"^run_model \(trivial model \+ audit\)$", "sqlite"),
    ("#3", "run_batch 10,000 ≥ 50% of raw executemany rows/s", r"^run_batch \(10,000", "sqlite"),
    ("#3", "track_model small class ≤ 10 ms", r"^track_model \(small class, new\)$", "sqlite"),
    ("#3", "track_model unchanged ≤ 3 ms", r"^track_model \(unchanged\)$", "sqlite"),
    ("#3", "fresh process Umlaut() + run_model ≤ 2× import sqlalchemy + open",
     r"^fresh process", "sqlite"),
    ("#4", "run_model (audit sync) ≥ 3× faster than umlaut 0.3.4",
     r"^run_model .*\(audit sync\) vs original$", "mlflow"),
    ("#4", "track_model ≥ 5× faster than umlaut 0.3.4",
     r"^track_model \(new version\) vs original$", "mlflow"),
    ("#5", "S3 store put/get 1 KB and 50 MB ≥ 80% of raw boto3", r"^(put|get) (1 KB|50 MB)$",
     "s3"),
    ("#8", "spooled run_model on MLflow ≤ 2× embedded SQLite run_model",
     r"^run_model .*\(audit spooled\)$", "mlflow"),
    ("#8", "spooled run_model on MLflow ≥ 50× faster than umlaut 0.3.4",
     r"^run_model .*\(audit spooled\) vs original$", "mlflow"),
    ("#7", "run_model flat with 100k / 1M records stored (median ≤ 1.5×, p99 ≤ 2×)",
     r"^run_model with", "sqlite"),
    ("#7", "history() ≤ 50 ms per page over 1M records (SQLite)", r"^history\(\)", "sqlite"),
    ("#7", "run_batch 1M from a generator: peak RSS < 300 MB",
     r"^run_batch [0-9,]+ from a generator", ""),
    ("#18", "run_batch on Dask, LocalCluster(2 workers) ≥ 1.5× single-process rows/s",
     r"^score_frame .* vs single-process run_batch$", ""),
    ("#14", "umlaut --help and models list start ≤ 1.5× python -c 'import sqlalchemy'",
     r"^CLI start: ", "sqlite"),
    ("#14", "history --export 1M records to CSV ≥ 50% of sqlite3 + csv.writer rows/s",
     r"^history --export to CSV, [0-9,]+ records \(whole command\)$", "sqlite"),
    ("#14", "history --export 1M records: peak RSS < 200 MB",
     r"^history --export to CSV, [0-9,]+ records, peak RSS$", "sqlite"),
    ("#14", "umlaut copy 1M records SQLite → PostgreSQL ≥ 50% of raw psycopg COPY rows/s",
     r"^umlaut copy SQLite → PostgreSQL, [0-9,]+ records", "postgresql"),
    ("#15", "umlaut serve (audited, spooled) ≥ 2× mlflow models serve throughput, c=8",
     r"^umlaut serve vs mlflow models serve", "sqlite"),
    ("#15", "umlaut serve ≥ 60% of a bare Starlette endpoint's throughput, trivial model",
     r"^umlaut serve vs bare Starlette endpoint", "sqlite"),
    ("#15", "umlaut serve p99 ≤ mlflow models serve p50",
     r"^umlaut serve p99 vs mlflow models serve p50", "sqlite"),
    ("#13", "log_metric in a loop, embedded default ≤ 5 µs per call",
     r"^log_metric in a loop$", "sqlite"),
    ("#13", "log_metric loop ≥ 20× faster than mlflow.log_metric(synchronous=False) on SQLite",
     r"^log_metric in a loop vs mlflow\.log_metric\(synchronous=False\)$", "sqlite"),
    ("#13", "log_metric loop against an MLflow server ≥ 50% of the embedded loop's speed",
     r"^log_metric in a loop, spooled to mlflow server$", "mlflow"),
    ("#13", "shipping to an MLflow server ≥ MLflow's own log_batch throughput",
     r"^log_metric shipping [0-9,]+ points to mlflow server", "mlflow"),
    ("#13", "@step on a trivial function, tracking on ≤ 3× raw sqlite3 insert+commit",
     r"^@step on a trivial function, tracking on$", "sqlite"),
    ("#13", "@step, tracking off ≤ 1 µs over a bare call",
     r"^@step on a trivial function, tracking off$", "sqlite"),
    ("#13", "100,000 runs × 10 params × 10 metrics: a filtered, ordered page ≤ 50 ms (SQLite)",
     r"^search_training_runs, [0-9,]+ runs", "sqlite"),
    ("#13", "metric_history of 1,000,000 points of one metric ≤ 1 s (SQLite)",
     r"^metric_history, [0-9,]+ points", "sqlite"),
    ("#16", "track_dataset 1,000,000 × 10 numeric frame ≤ 2× df.to_parquet() + sha256",
     r"^track_dataset, [0-9,]+ × 10 numeric DataFrame$", ""),
    ("#16", "input checks add ≤ 5 µs or ≤ 20% to run_model of a trivial model, embedded",
     r"^input checks: run_model of a trivial model", "sqlite"),
    ("#16", "drift report over 1,000,000 audit records ≤ 10 s",
     r"^drift_report over [0-9,]+ audit records \(10 features\)$", "sqlite"),
    ("#16", "drift report over 1,000,000 audit records: peak RSS < 300 MB",
     r"^drift_report over [0-9,]+ audit records \(10 features\), peak RSS$", "sqlite"),
    ("#17", "every UI page ≤ 100 ms server time, 1,000,000 records + 10,000 runs (SQLite)",
     r"^UI page: ", "sqlite"),
    ("#17", "every UI page ≤ 100 ms server time, 1,000,000 records + 10,000 runs (PostgreSQL)",
     r"^UI page: ", "postgresql"),
]  # fmt: skip


def targets(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| issue | target | measured by | median | ratio | met |",
        "| --- | --- | --- | ---: | ---: | :---: |",
    ]
    for issue, text, pattern, backend in TARGETS:
        hits = [
            r for r in rows
            if re.search(pattern, r["scenario"]) and backend in r["backend"]
            and r.get("met") is not None
        ]  # fmt: skip
        if not hits:
            lines.append(f"| {issue} | {text} | not measured in this run | | | ⚠️ |")
        for r in hits:
            ratio = f"{r['ratio']:.3g}×" if r.get("ratio") is not None else ""
            met = "✅" if r["met"] else "❌"
            lines.append(
                f"| {issue} | {text} | {r['scenario']} [{r['backend']}] | "
                f"{fmt(r['median'])} {r['metric']} | {ratio} | {met} |"
            )
    return "\n".join(lines)


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def fmt(value: float | None) -> str:
    if value is None:
        return ""
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| scenario | backend | median | min–max | unit | baseline (same run) | ratio | target "
        "| met |",
        "| --- | --- | ---: | ---: | --- | --- | ---: | --- | :---: |",
    ]
    for r in rows:
        ratio = f"{r['ratio']:.2f}×" if r.get("ratio") is not None else ""
        base = f"{r['baseline']} ({fmt(r['baseline_median'])})" if r.get("baseline") else ""
        met = {True: "✅", False: "❌", None: ""}[r.get("met")]
        lines.append(
            f"| {r['scenario']} | {r['backend']} | {fmt(r['median'])} | "
            f"{fmt(r['min'])}–{fmt(r['max'])} | {r['metric']} | {base} | {ratio} | "
            f"{r.get('target', '')} | {met} |"
        )
    return "\n".join(lines)


def chart(rows: list[dict[str, Any]], path: Path) -> bool:
    """Four panels, log scales, one colour per backend: latency, rows/s, MB/s, RSS."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    panels = [
        ("latency per call (µs, log; lower is better)", ("µs/call", "ms/call")),
        ("throughput (rows/s, log; higher is better)", ("rows/s",)),
        ("transfer (MB/s, log; higher is better)", ("MB/s",)),
        ("peak resident memory (MB; lower is better)", ("MB",)),
    ]
    groups = [[r for r in rows if r["metric"] in metrics] for _, metrics in panels]
    backends = sorted({r["backend"] for r in rows})
    colours = plt.get_cmap("tab20")  # more than ten backends: tab10 would repeat colours
    colour = {b: colours(i % 20) for i, b in enumerate(backends)}
    heights = [max(2.0, 0.24 * len(g) + 1.0) for g in groups]
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(13, sum(heights) + 1.5),
        gridspec_kw={"height_ratios": heights},
    )  # fmt: skip
    for ax, (title, _), group in zip(axes, panels, groups, strict=True):
        names = [r["scenario"] for r in group]
        scale = [1000 if r["metric"] == "ms/call" else 1 for r in group]
        values = [r["median"] * k for r, k in zip(group, scale, strict=True)]
        lows = [v - r["min"] * k for v, r, k in zip(values, group, scale, strict=True)]
        highs = [r["max"] * k - v for v, r, k in zip(values, group, scale, strict=True)]
        y = range(len(group))
        ax.barh(
            y, values, xerr=[[max(0, x) for x in lows], [max(0, x) for x in highs]],
            color=[colour[r["backend"]] for r in group], error_kw={"lw": 0.8},
        )  # fmt: skip
        ax.set_yticks(list(y), names, fontsize=7)
        ax.invert_yaxis()
        for i, (v, r) in enumerate(zip(values, group, strict=True)):
            mark = {True: " ✓", False: " ✗", None: ""}[r.get("met")]
            ax.text(v, i, f" {fmt(v)}{mark}", va="center", fontsize=6.5)
        if values and "log" in title:
            ax.set_xscale("log")
        ax.set_title(title, fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=7)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[b]) for b in backends]
    fig.legend(handles, backends, loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--no-readme", action="store_true")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="with --only: replace those modules' rows in the existing results, keep the rest",
    )
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    import _servers
    from _harness import machine

    wanted = {w.strip() for w in args.only.split(",") if w.strip()}
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    failed = False
    extra_versions: dict[str, str] = {}
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if wanted and name not in wanted:
            continue
        print(f"== {name}", flush=True)
        try:
            module = importlib.import_module(path.stem)
            produced = module.run(args.quick)
        except ModuleNotFoundError as exc:
            skipped[name] = f"not installed here: {exc.name}"
            print(f"   skipped: {skipped[name]}")
            continue
        except Exception:
            traceback.print_exc()
            skipped[name] = "failed: see the log"
            failed = True
            continue
        extra_versions.update(getattr(module, "VERSIONS", {}))
        for row in produced:
            if "skipped" in row.extra:  # a scenario that could not run here, with why
                skipped[f"{name}: {row.scenario} [{row.backend}]"] = row.extra["skipped"]
                print(f"   skipped {row.scenario}: {row.extra['skipped']}")
                continue
            rows.append({**row.as_dict(), "module": name})
            print(
                f"   {row.scenario} [{row.backend}]: {fmt(row.median)} {row.metric} "
                f"(min {fmt(row.min)}, max {fmt(row.max)})"
                + (f"  ratio {row.ratio:.3g}× {row.target}" if row.ratio is not None else "")
                + ({True: " ✓", False: " ✗", None: ""}[row.met])
            )
    _servers.stop_all()
    RESULTS.mkdir(exist_ok=True)
    suffix = "-quick" if args.quick else ""
    previous = RESULTS / f"latest{suffix}.json"
    merged_from = None
    if args.merge and wanted and previous.exists():
        old = json.loads(previous.read_text())
        fresh = {(r["scenario"], r["backend"]) for r in rows}
        # Rows written before rows named their module are matched by scenario+backend.
        kept = [
            r for r in old["rows"]
            if r.get("module") not in wanted and (r["scenario"], r["backend"]) not in fresh
        ]  # fmt: skip
        rows = kept + rows
        merged_from = old["when"]
        extra_versions = {**old.get("versions", {}), **extra_versions}
        skipped = {
            **{k: v for k, v in old["skipped"].items() if k.split(":")[0] not in wanted},
            **skipped,
        }
    result = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "versions": {**versions(), **extra_versions},
        "rows": rows,
        "skipped": skipped,
    }
    if merged_from:  # say which rows are older
        result["merged"] = f"{sorted(wanted)} re-run; other rows from the run of {merged_from}"
    md = "### Targets\n\n" + targets(rows) + "\n\n### All rows\n\n" + table(rows)
    if wanted and not args.merge:
        # Some modules alone are not the results: writing them over latest.* (and the
        # README) once lost every other module's rows. --merge puts them in place.
        print(md + "\n\n(--only without --merge: results files and README left as they were)")
        return 1 if failed else 0
    (RESULTS / f"latest{suffix}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    info = result["machine"]
    footer = (
        f"\n\nMeasured {result['when']} on {info['cpus']} CPUs, Python {info['python']}, "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items())
        + "."
        + "".join(f"\n\n*Skipped* {k}: {v}" for k, v in skipped.items())
    )
    (RESULTS / f"latest{suffix}.md").write_text(md + footer + "\n")
    chart(rows, RESULTS / f"latest{suffix}.png")
    if not args.quick and not args.no_readme and README.exists():
        text = README.read_text(encoding="utf-8")
        if START in text and END in text:
            head, rest = text.split(START, 1)
            _, tail = rest.split(END, 1)
            README.write_text(f"{head}{START}\n{md}{footer}\n{END}{tail}", encoding="utf-8")
    print(md + footer)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
