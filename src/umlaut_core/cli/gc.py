"""``umlaut gc``: bundles no version references, listed and (with --delete) removed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from .context import CliContext
from .output import emit_rows, format_option, plain

__all__ = ["gc"]

_COLUMNS = ("key", "uri", "size", "modified", "age_s", "action")


class Age(click.ParamType):  # type: ignore[type-arg]
    """An age: seconds, or a number with s, m, h, d or w (``30m``, ``2d``)."""

    name = "AGE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from ..exceptions import ConfigurationError
        from ..garbage import parse_age

        if isinstance(value, dt.timedelta):
            return value
        try:
            return parse_age(value)
        except ConfigurationError as exc:
            self.fail(str(exc), param, ctx)


@click.command()
@click.option("--delete", is_flag=True, help="Delete the unreferenced bundles (else only list).")
@click.option(
    "--older-than",
    type=Age(),
    default="1h",
    show_default=True,
    help="Spare bundles younger than this (an upload whose version is being registered): "
    "seconds, or 30m, 2d, 1w.",
)
@format_option()
@click.pass_obj
def gc(state: CliContext, delete: bool, older_than: dt.timedelta, fmt: str) -> None:
    """List bundles in the artifact store that no version references (what a process
    killed between upload and registration leaves), with size and age.

    Deletes them only with --delete, never one a version references, and never one
    younger than --older-than. Run it with the tracker that owns the store.
    """
    from ..garbage import collect_garbage

    orphans = collect_garbage(state.umlaut(), older_than=older_than, delete=delete)
    rows = [{**plain(o), "age_s": round(o.age_s, 1)} for o in orphans]
    emit_rows(rows, fmt, _COLUMNS)
    size = sum(o.size for o in orphans)
    young = sum(o.action == "kept (too young)" for o in orphans)
    done = sum(o.action == "deleted" for o in orphans)
    line = f"{len(orphans)} unreferenced bundle(s), {size:,} bytes"
    if young:
        line += f"; {young} younger than {older_than} kept"
    if delete:
        line += f"; {done} deleted"
    elif len(orphans) > young:
        line += "; run with --delete to remove them"
    click.echo(line, err=True)
