"""The root ``umlaut`` group: global options, the core's commands, plugins' commands."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from .context import CliContext, RootGroup

if TYPE_CHECKING:
    import pluggy

__all__ = ["CORE_COMMANDS", "main", "make_cli"]

_EPILOG = (
    "Settings come from the options above, else UMLAUT_TRACKING_URI / "
    "UMLAUT_ARTIFACT_URI / UMLAUT_PROFILE, else a pyproject.toml profile, else the "
    "embedded default (sqlite:///.umlaut/umlaut.db). Exit status: 0 success, 1 an "
    "error you can fix (one line on stderr; -v for the traceback), 2 bad usage."
)


#: The core's commands: each module is imported only when its command runs (or for
#: ``--help``), so a command pays for no other command's imports.
CORE_COMMANDS = {
    "models": "umlaut_core.cli.models:models",
    "versions": "umlaut_core.cli.versions:versions",
    "promote": "umlaut_core.cli.stages:promote",
    "stages": "umlaut_core.cli.stages:stages",
    "run": "umlaut_core.cli.running:run",
    "run-batch": "umlaut_core.cli.running:run_batch",
    "history": "umlaut_core.cli.history:history",
    "pending": "umlaut_core.cli.delivery:pending",
    "flush": "umlaut_core.cli.delivery:flush",
    "bundle": "umlaut_core.cli.bundles:bundle",
    "doctor": "umlaut_core.cli.doctor:doctor",
    "copy": "umlaut_core.cli.copying:copy",
    "gc": "umlaut_core.cli.gc:gc",
    "drift": "umlaut_core.cli.drift:drift",
    "datasets": "umlaut_core.cli.datasets:datasets",
    "runs": "umlaut_core.cli.training:runs",
}


def make_cli(plugin_manager: pluggy.PluginManager | None = None) -> RootGroup:
    """Build the ``umlaut`` command: the core's commands, then every plugin's.

    Plugins are asked for their commands (``umlaut_register_commands``) only when a
    name is not one of the core's, or to list every command (``--help``); the core's
    names always mean the core's commands, and a plugin that adds one of them is
    refused (``PluginError``) then.

    :param plugin_manager: whose ``umlaut_register_commands`` implementations add
        commands, and which the commands' ``Umlaut`` then uses (for tests). Default:
        :func:`umlaut_core.get_plugin_manager`, and each ``Umlaut`` makes its own.
    """

    @click.group(
        cls=RootGroup,
        lazy=CORE_COMMANDS,
        plugin_manager=plugin_manager,
        epilog=_EPILOG,
        context_settings={"max_content_width": 100},
    )
    @click.option("--tracking-uri", metavar="URI", help="Where metadata lives (sqlite:///…, "
                  "postgresql+psycopg://…, mlflow+http://…, memory:).")  # fmt: skip
    @click.option("--artifact-uri", metavar="URI", help="Where bundles live (a folder, s3://…).")
    @click.option("--profile", help="A [tool.umlaut.profiles.<name>] table of pyproject.toml.")
    @click.option("-v", "--verbose", is_flag=True, help="Tracebacks with errors; INFO logs.")
    @click.version_option(package_name="umlaut-core", prog_name="umlaut")
    @click.pass_context
    def cli(
        ctx: click.Context,
        tracking_uri: str | None,
        artifact_uri: str | None,
        profile: str | None,
        verbose: bool,
    ) -> None:
        """umlaut: models, versions, stages and audit records from the shell."""
        if verbose:
            logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
        ctx.obj = CliContext(
            tracking_uri=tracking_uri,
            artifact_uri=artifact_uri,
            profile=profile,
            verbose=verbose,
            plugin_manager=plugin_manager,
        )

    assert isinstance(cli, RootGroup)
    return cli


def _one_line_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    click.echo(f"{category.__name__}: {message}", err=True)


def main(
    args: Sequence[str] | None = None, *, plugin_manager: pluggy.PluginManager | None = None
) -> Any:
    """The console script ``umlaut``."""
    warnings.showwarning = _one_line_warning
    cli = make_cli(plugin_manager)
    return cli.main(args=list(args) if args is not None else None, prog_name="umlaut")
