"""``umlaut runs``: training runs (not audit records: those are ``umlaut history``)."""

from __future__ import annotations

import click

from .context import CliContext
from .output import emit_object, emit_rows, format_option, plain

__all__ = ["runs"]

_FILTER_HELP = "e.g. \"params.C > 0.5 and (metrics.acc.max > 0.9 or tags.team = 'a')\""
_LIST = ("run_id", "experiment", "name", "status", "started_at", "parent_id")


@click.group()
def runs() -> None:
    """Training runs: search them, show one with its params and metrics."""


@runs.command("list")
@click.argument("experiment", required=False)
@click.option("--filter", "filter_", metavar="EXPR", help=_FILTER_HELP)
@click.option("--order-by", metavar="FIELD [ASC|DESC]", help="e.g. 'metrics.acc DESC'.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--page-token", metavar="TOKEN", help="The token printed after a full page.")
@format_option()
@click.pass_obj
def list_runs(
    state: CliContext,
    experiment: str | None,
    filter_: str | None,
    order_by: str | None,
    limit: int,
    page_token: str | None,
    fmt: str,
) -> None:
    """Training runs of an experiment (or all), newest first unless --order-by."""
    page = state.umlaut().search_training_runs(
        experiment, filter=filter_, order_by=order_by, limit=limit, page_token=page_token
    )
    rows = [{k: plain(getattr(r, k)) for k in _LIST} for r in page.runs]
    emit_rows(rows, fmt, _LIST)
    if page.next_page_token:
        click.echo(f"more: --page-token {page.next_page_token}", err=True)


@runs.command("show")
@click.argument("run_id")
@format_option()
@click.pass_obj
def show_run(state: CliContext, run_id: str, fmt: str) -> None:
    """One training run: params, metric summaries, tags, artifacts, versions."""
    run = state.umlaut().get_training_run(run_id)
    obj = plain(run)
    obj["metrics"] = [plain(m) for m in run.metrics.values()]
    emit_object(obj, fmt)
