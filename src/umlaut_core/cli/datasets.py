"""``umlaut datasets``: the datasets in the store, their profiles and lineage."""

from __future__ import annotations

import click

from .context import CliContext
from .output import emit_object, emit_rows, format_option, plain

__all__ = ["datasets"]

_LIST = ("name", "latest_version", "description")
_VERSIONS = ("version", "rows", "columns", "digest", "created_at", "created_by")
_PROFILE = (
    "name", "logical_type", "dtype", "role", "nullable", "null_count", "distinct_count",
    "min", "max", "mean", "std",
)  # fmt: skip


@click.group()
def datasets() -> None:
    """Datasets: list them, show a version's profile and the models that used it."""


@datasets.command("list")
@format_option()
@click.pass_obj
def list_datasets(state: CliContext, fmt: str) -> None:
    """Every dataset with its newest version."""
    emit_rows([plain(d) for d in state.umlaut().list_datasets()], fmt, _LIST)


@datasets.command("versions")
@click.argument("name")
@format_option()
@click.pass_obj
def list_versions(state: CliContext, name: str, fmt: str) -> None:
    """Every version of a dataset, oldest first."""
    rows = [
        {**plain(v), "columns": len(v.columns)} for v in state.umlaut().list_dataset_versions(name)
    ]
    emit_rows(rows, fmt, _VERSIONS)


@datasets.command("show")
@click.argument("name")
@click.option("--version", "version", type=int, help="A version number (default: the newest).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "markdown"]),
    default="table",
    show_default=True,
    help="table: the column profile; markdown: the printable profile; json: everything.",
)
@click.pass_obj
def show_dataset(state: CliContext, name: str, version: int | None, fmt: str) -> None:
    """One dataset version: its column profile, and the models and runs that used it."""
    umlaut = state.umlaut()
    dv = umlaut.get_dataset(name, version)
    if fmt == "markdown":
        click.echo(dv.profile_table())
        return
    links = umlaut.dataset_links(dataset=dv)
    if fmt == "json":
        obj = plain(dv)
        obj.pop("loader", None)
        obj["used_by"] = [plain(link) for link in links]
        emit_object(obj, "json")
        return
    click.echo(
        f"{dv.name} v{dv.version}: {dv.rows:,} rows, {len(dv.columns)} columns, {dv.digest}",
        err=True,
    )
    emit_rows([plain(c) for c in dv.columns], "table", _PROFILE)
    for link in links:
        who = (
            f"model {link.model_name!r} v{link.model_version}"
            if link.kind == "model_version"
            else f"training run {link.run_id}"
        )
        click.echo(f"used by {who} ({link.context})", err=True)
