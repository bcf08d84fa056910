"""``umlaut models``: the models in the store."""

from __future__ import annotations

import click

from .context import CliContext
from .output import emit_object, emit_rows, format_option, plain

__all__ = ["MODEL_FIELDS", "models"]

#: Fields of ``models list`` (and the head of ``models show``), in order.
MODEL_FIELDS = ("name", "latest_version", "aliases", "description")


@click.group()
def models() -> None:
    """Models: list them, or show one with its versions and stages."""


@models.command("list")
@format_option()
@click.pass_obj
def list_models(state: CliContext, fmt: str) -> None:
    """Every model with its latest version and where its stages point."""
    rows = [plain(info) for info in state.umlaut().list_models()]
    emit_rows(rows, fmt, MODEL_FIELDS)


@models.command("show")
@click.argument("name")
@format_option()
@click.pass_obj
def show_model(state: CliContext, name: str, fmt: str) -> None:
    """One model: its latest version, stages and the list of its versions."""
    umlaut = state.umlaut()
    versions = umlaut.list_versions(name)  # ModelNotFoundError names the existing ones
    canonical = versions[0].name
    info = next((m for m in umlaut.list_models() if m.name == canonical), None)
    aliases = dict(info.aliases) if info is not None else {}
    obj = {
        "name": canonical,
        "latest_version": max(v.version for v in versions),
        "aliases": aliases,
        "description": info.description if info is not None else None,
        "versions": [
            {
                "version": v.version,
                "digest": v.digest,
                "created_at": plain(v.created_at),
                "created_by": v.created_by,
                "stages": sorted(a for a, n in aliases.items() if n == v.version),
            }
            for v in versions
        ],
    }
    emit_object(obj, fmt)
