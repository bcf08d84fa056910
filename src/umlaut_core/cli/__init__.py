"""The ``umlaut`` console script (``pip install umlaut-core``; rich for tables and
progress bars with ``umlaut-core[cli]``).

Not imported by ``import umlaut_core``: only the console script loads it, and each
command imports what it needs (the facade's backends, rich) when it runs.

Plugins add commands through the ``umlaut_register_commands(cli)`` hook::

    # umlaut_mystore/plugin.py
    from umlaut_core import hookimpl

    @hookimpl(optionalhook=True)       # still loads with an umlaut-core before 0.2
    def umlaut_register_commands(cli):
        from ._cli import mystore      # a click.Group; import click only here
        cli.add_command(mystore)

    # umlaut_mystore/_cli.py
    import click
    from umlaut_core.cli import CliContext

    @click.group()
    def mystore(): "Commands for mystore."

    @mystore.command()
    @click.pass_obj
    def ping(state: CliContext):
        "Open the configured store and count its models."
        click.echo(len(state.umlaut().list_models()))

``state.settings`` is what ``Umlaut(...)`` would use for the global options,
resolved without opening anything; ``state.umlaut()`` opens the facade (closed after
the command). An ``UmlautError`` (or a :class:`CliError`) becomes one line on stderr
and exit status 1; :mod:`umlaut_core.cli.output` prints the ``--format`` choices.
"""

from .app import main, make_cli
from .context import CliContext, CliError

__all__ = ["CliContext", "CliError", "main", "make_cli"]
