"""``umlaut drift``: a model version's drift report over a window of audit records."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import click

from .context import CliContext
from .options import INSTANT, check_selector
from .output import emit_object

if TYPE_CHECKING:
    from ..datasets.drift import DriftReport, FeatureDrift

__all__ = ["drift"]


@click.command()
@click.argument("model_name", metavar="MODEL")
@click.option("--stage", help="The version this stage points at.")
@click.option("--version", type=click.IntRange(min=1), help="This version number.")
@click.option("--since", type=INSTANT, help="Calls started at or after (ISO 8601; UTC if naive).")
@click.option("--until", type=INSTANT, help="Calls started before (exclusive).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "markdown"]),
    default="table",
    show_default=True,
    help="table for reading, json for scripts (Umlaut.drift_report(...).to_dict()), "
    "markdown for a ticket or a wiki.",
)
@click.pass_obj
def drift(
    state: CliContext,
    model_name: str,
    stage: str | None,
    version: int | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    fmt: str,
) -> None:
    """Compare MODEL's audited inputs and outputs with the data it was trained on.

    Per feature: PSI, KS and Wasserstein (numbers) or PSI and unseen share
    (categories), null rate change and out-of-range share; predictions against the
    version's first calls; calls, error and refusal rates, latency. The version is
    --version, else --stage, else the latest; the window is every call unless
    --since/--until narrow it.
    """
    check_selector(stage, version)
    report = state.umlaut().drift_report(
        model_name, stage=stage, version=version, since=since, until=until
    )
    if fmt == "json":
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False, indent=2))
    elif fmt == "markdown":
        click.echo(report.to_markdown(), nl=False)
    else:
        emit_object(_summary(report), "table")


def _summary(report: DriftReport) -> dict[str, Any]:
    ops = report.operations
    verdict = "not judged" if report.drifted is None else "DRIFT" if report.drifted else "no drift"
    window = f"{_when(report.since, 'first call')} to {_when(report.until, 'now')}"
    out: dict[str, Any] = {
        "model": f"{report.model_name} v{report.version}",
        "window": window,
        "dataset": ""
        if report.dataset is None
        else f"{report.dataset[0]} v{report.dataset[1]} "
        f"({'training data' if report.reference == 'data' else 'stored profile'})",
        "verdict": f"{verdict} ({report.alerts} of {report.judged} judged features alert)",
        "calls": f"{ops.calls:,}" + (f" ({report.rows:,} input rows)" if report.features else ""),
        "errors": f"{ops.errors:,} ({_pct(ops.error_rate)}), refused {ops.refused:,} "
        f"({_pct(ops.refused_rate)})",
        "latency": f"p50 {_num(ops.latency_p50_ms)} ms, p95 {_num(ops.latency_p95_ms)} ms",
        "baseline": f"the first {report.baseline_calls:,} successful calls",
    }
    if report.features:
        out["features"] = [_row(f) for f in report.features]
    if report.predictions:
        out["predictions"] = [_row(p) for p in report.predictions]
    for i, note in enumerate(report.notes, 1):
        out[f"note {i}"] = note
    return out


def _row(item: FeatureDrift) -> dict[str, str]:
    row = {
        "name": item.name,
        "status": item.status,
        "rows": f"{item.rows:,}",
        "PSI": _num(item.psi),
        "KS": _num(item.ks),
        "W (σ)": _num(item.wasserstein_norm),
    }
    if item.role == "feature":
        row.update(
            unseen=_pct(item.unseen_share),
            outside=_pct(item.out_of_range_share),
            **{"null Δ": _pct(item.null_rate_change, signed=True)},
        )
    row["why"] = "; ".join(item.reasons) or (item.note or "")
    return row


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def _pct(value: float | None, *, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def _when(value: dt.datetime | None, default: str) -> str:
    return default if value is None else value.isoformat(timespec="seconds")
