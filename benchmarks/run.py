"""Run every benchmarks/bench_*.py, write results/latest.{json,md,png}, update README.

    python benchmarks/run.py            # full run (minutes)
    python benchmarks/run.py --quick    # CI smoke mode: fewer rounds, same scenarios
    python benchmarks/run.py --only core,sql

A module whose backend is not installed here is reported as skipped, with why.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import importlib.metadata
import json
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
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    latency = [r for r in rows if r["metric"].startswith(("µs", "ms"))]
    rate = [r for r in rows if r["metric"] == "rows/s"]
    fig, axes = plt.subplots(1, 2, figsize=(14, max(4, 0.35 * max(len(latency), len(rate)) + 1)))
    for ax, group, label in (
        (axes[0], latency, "latency (µs, log)"),
        (axes[1], rate, "rows/s (log)"),
    ):
        names = [f"{r['scenario']} [{r['backend']}]" for r in group]
        values = [r["median"] * (1000 if r["metric"].startswith("ms") else 1) for r in group]
        ax.barh(names, values)
        if values:
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
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
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    from _harness import machine

    wanted = {w.strip() for w in args.only.split(",") if w.strip()}
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    failed = False
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
        for row in produced:
            rows.append(row.as_dict())
            print(
                f"   {row.scenario} [{row.backend}]: {fmt(row.median)} {row.metric}"
                + (f"  ratio {row.ratio:.2f}× {row.target}" if row.ratio is not None else "")
            )
    RESULTS.mkdir(exist_ok=True)
    result = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": machine(),
        "versions": versions(),
        "rows": rows,
        "skipped": skipped,
    }
    suffix = "-quick" if args.quick else ""
    (RESULTS / f"latest{suffix}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
    md = table(rows)
    info = result["machine"]
    footer = (
        f"\n\nMeasured {result['when']} on {info['cpus']} CPUs, Python {info['python']}, "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items())
        + (f". Skipped: {skipped}." if skipped else ".")
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
