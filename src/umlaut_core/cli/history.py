"""``umlaut history``: audit records, newest first, streamed page by page."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from .context import CliContext
from .options import INSTANT
from .output import FORMATS, Progress, write_records

if TYPE_CHECKING:
    from .._api import Umlaut

__all__ = ["history", "record_pages"]

#: The largest page ``Umlaut.history`` serves.
MAX_PAGE = 10_000


def record_pages(
    umlaut: Umlaut, filters: dict[str, Any], *, limit: int | None, before: str | None, page: int
) -> Iterator[list[Any]]:
    """Pages of audit records, newest first, keyset-paged with ``before=``: each
    record once, in order, with at most two pages in memory.

    The next page is fetched on a worker thread while the caller writes this one: the
    database's own work runs without the GIL, so reading and writing overlap.
    """
    from concurrent.futures import Future, ThreadPoolExecutor

    def fetch(cursor: str | None, size: int) -> list[Any]:
        return umlaut.history(**filters, limit=size, before=cursor)

    remaining = limit
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="umlaut-history") as pool:
        size = page if remaining is None else min(page, remaining)
        ahead: Future[list[Any]] | None = pool.submit(fetch, before, size)
        while ahead is not None:
            records = ahead.result()
            ahead = None
            if remaining is not None:
                remaining -= len(records)
            if len(records) == size and (remaining is None or remaining > 0):
                size = page if remaining is None else min(page, remaining)
                ahead = pool.submit(fetch, records[-1].id, size)
            if records:
                yield records


@click.command()
@click.option("--model", "model_name", help="Only this model.")
@click.option("--version", type=click.IntRange(min=1), help="Only this version.")
@click.option("--since", type=INSTANT, help="Started at or after (ISO 8601; UTC if no offset).")
@click.option("--until", type=INSTANT, help="Started before (exclusive).")
@click.option("--status", type=click.Choice(["ok", "error"]), help="Only ok or failed calls.")
@click.option("--reference-id", help="Only calls with this reference id.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    help="At most this many records. Default: 100 for table and json; every record for "
    "csv, jsonl and --export.",
)
@click.option("--before", metavar="ID", help="Only records older than this record id (paging).")
@click.option(
    "--export",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this .csv or .jsonl file instead of stdout, streaming.",
)
@click.option(
    "--page-size",
    type=click.IntRange(1, MAX_PAGE),
    default=5000,
    show_default=True,
    help="Records fetched per query while streaming.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    help="table (default), json, jsonl or csv; with --export, taken from its extension.",
)
@click.pass_obj
def history(
    state: CliContext,
    model_name: str | None,
    version: int | None,
    since: dt.datetime | None,
    until: dt.datetime | None,
    status: str | None,
    reference_id: str | None,
    limit: int | None,
    before: str | None,
    export: str | None,
    page_size: int,
    fmt: str | None,
) -> None:
    """Audit records, newest first, with every filter of Umlaut.history.

    Records still waiting in the local spool are included (status "ok (pending)" in a
    table, "pending": true in the machine formats).
    """
    if export is not None:
        suffix = export.rsplit(".", 1)[-1].lower()
        if suffix not in ("csv", "jsonl"):
            raise click.BadParameter("the file must end in .csv or .jsonl", param_hint="--export")
        if fmt not in (None, suffix):
            raise click.UsageError(f"--format {fmt} contradicts --export {export}")
        fmt = suffix
    fmt = fmt or "table"
    if limit is None and fmt in ("table", "json"):
        limit = 100
    filters = {
        "model_name": model_name,
        "version": version,
        "since": since,
        "until": until,
        "status": status,
        "reference_id": reference_id,
    }
    pages = record_pages(state.umlaut(), filters, limit=limit, before=before, page=page_size)
    if export is None:
        write_records(pages, fmt, sys.stdout)
        return
    with (
        open(export, "w", encoding="utf-8", newline="") as out,
        Progress("records") as bar,
    ):
        count = write_records(pages, fmt, out, bar)
    click.echo(f"{count:,} records written to {export}", err=True)
