"""``umlaut versions``: the immutable versions of one model."""

from __future__ import annotations

from typing import Any

import click

from .context import CliContext
from .output import emit_object, emit_rows, format_option, plain

__all__ = ["VERSION_FIELDS", "versions"]

#: Fields of ``versions list``, in order.
VERSION_FIELDS = (
    "name",
    "version",
    "digest",
    "flavor",
    "created_at",
    "created_by",
    "description",
    "stages",
)


def _stages(state: CliContext, name: str) -> dict[int, list[str]]:
    by_version: dict[int, list[str]] = {}
    for info in state.umlaut().list_models():
        if info.name == name:
            for alias, number in sorted(info.aliases.items()):
                by_version.setdefault(number, []).append(alias)
    return by_version


@click.group()
def versions() -> None:
    """Versions of a model: list them, or show one in full."""


@versions.command("list")
@click.argument("name")
@format_option()
@click.pass_obj
def list_versions(state: CliContext, name: str, fmt: str) -> None:
    """Every version of NAME, oldest first, with the stages pointing at each."""
    found = state.umlaut().list_versions(name)
    stages = _stages(state, found[0].name)
    rows = []
    for mv in found:
        row = plain(mv)
        row["stages"] = stages.get(mv.version, [])
        rows.append(row)
    emit_rows(rows, fmt, VERSION_FIELDS)


@versions.command("show")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@format_option()
@click.pass_obj
def show_version(state: CliContext, name: str, version: int, fmt: str) -> None:
    """One version in full: manifest, digest, input signature, params, metrics, tags,
    and lineage fields when the store keeps them."""
    mv = state.umlaut().get_version(name, version=version)
    obj: dict[str, Any] = plain(mv)
    obj.pop("created", None)  # says whether a track_model call made it; not stored
    obj["stages"] = _stages(state, mv.name).get(mv.version, [])
    obj["signature"] = plain(mv.manifest.get("signature"))
    emit_object(obj, fmt)
