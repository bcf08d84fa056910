"""Adds ``umlaut serve`` to the ``umlaut`` command line.

Cheap to import: starlette and uvicorn are imported only when the command runs,
click only when the command line is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from umlaut_core import hookimpl

if TYPE_CHECKING:
    import click


@hookimpl(optionalhook=True)
def umlaut_register_commands(cli: click.Group) -> None:
    from ._cli import serve

    cli.add_command(serve)
