"""Adds ``umlaut serve`` and ``umlaut ui`` to the ``umlaut`` command line.

Cheap to import: starlette, uvicorn and jinja2 are imported only when a command
runs, click only when the command line is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from umlaut_core import hookimpl

if TYPE_CHECKING:
    import click


@hookimpl(optionalhook=True)
def umlaut_register_commands(cli: click.Group) -> None:
    from ._cli import serve
    from ._ui_cli import ui

    cli.add_command(serve)
    cli.add_command(ui)
