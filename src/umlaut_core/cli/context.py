"""What every command shares: the global options, the facade they open, and errors.

A command (the core's or a plugin's) takes the :class:`CliContext` with
``click.pass_obj``. Failures a user can fix are reported in one line on stderr with
exit status 1 (:class:`CliError`); ``-v`` adds the traceback.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import IO, TYPE_CHECKING, Any

import click

from ..exceptions import PluginError, UmlautError

if TYPE_CHECKING:
    import pluggy

    from .._api import Umlaut
    from ..config import Settings

__all__ = ["CliContext", "CliError", "RootGroup", "one_line"]


def one_line(text: str) -> str:
    """``text`` with credentials masked and every line break folded into one line."""
    from ..registry import redact

    return " ".join(redact(str(text)).split())


class CliError(click.ClickException):
    """A failure the user can fix: one line on stderr, exit status 1.

    :param message: what happened and what to do, shown after ``label: ``.
    :param label: the first word of the line (an exception's class name, ``ModelError``).
    :param cause: the exception behind it, whose traceback ``-v`` prints.
    """

    exit_code = 1

    def __init__(
        self, message: str, *, label: str = "Error", cause: BaseException | None = None
    ) -> None:
        super().__init__(one_line(message))
        self.label = label
        self.cause = cause
        self.verbose = False

    @classmethod
    def from_exception(cls, exc: BaseException, *, label: str | None = None) -> CliError:
        if label is None:
            return cls(str(exc), label=type(exc).__name__, cause=exc)
        return cls(f"{type(exc).__name__}: {exc}", label=label, cause=exc)

    def format_message(self) -> str:
        return f"{self.label}: {self.message}"

    def show(self, file: IO[Any] | None = None) -> None:
        stream = file if file is not None else sys.stderr
        if self.verbose and self.cause is not None:
            text = "".join(traceback.format_exception(self.cause))
            click.echo(one_line_per_line(text), file=stream, nl=False)
        click.echo(self.format_message(), file=stream)


def one_line_per_line(text: str) -> str:
    """A traceback with credentials masked line by line (``-v`` must not leak either)."""
    from ..registry import redact

    return "".join(redact(line) + "\n" for line in text.splitlines())


class CliContext:
    """The state of one ``umlaut`` invocation, given to commands as ``click.pass_obj``.

    :param tracking_uri: ``--tracking-uri`` (None: the environment, a profile or the
        embedded default decide, as for ``Umlaut()``).
    :param artifact_uri: ``--artifact-uri``.
    :param profile: ``--profile``.
    :param verbose: ``-v``: tracebacks with errors, INFO logging.
    :param plugin_manager: a plugin manager given to ``make_cli`` (tests): the facade
        is then opened with it. None: ``Umlaut`` makes its own, exactly as in a script.
    """

    def __init__(
        self,
        *,
        tracking_uri: str | None,
        artifact_uri: str | None,
        profile: str | None,
        verbose: bool,
        plugin_manager: pluggy.PluginManager | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_uri = artifact_uri
        self.profile = profile
        self.verbose = verbose
        self._explicit = plugin_manager
        self._pm = plugin_manager
        self._settings: Settings | None = None
        self._umlaut: Umlaut | None = None

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The installed plugins (the one given to ``make_cli``, else built on first use)."""
        if self._pm is None:
            from .._manager import get_plugin_manager

            self._pm = get_plugin_manager()
        return self._pm

    @property
    def settings(self) -> Settings:
        """The settings ``Umlaut(...)`` would use, resolved without opening anything."""
        if self._settings is None:
            from ..config import resolve_settings

            self._settings = resolve_settings(
                self.tracking_uri, self.artifact_uri, profile=self.profile
            )
        return self._settings

    def umlaut(self) -> Umlaut:
        """The facade for these options, opened on first use and closed after the command."""
        if self._umlaut is None:
            from .._api import Umlaut

            self._umlaut = Umlaut(
                self.tracking_uri,
                self.artifact_uri,
                profile=self.profile,
                plugin_manager=self._explicit,
            )
        return self._umlaut

    def open_registry(
        self,
        tracking_uri: str | None,
        artifact_uri: str | None,
        *,
        profile: str | None,
        **options: Any,
    ) -> Umlaut:
        """Another registry than the global options name (``umlaut copy`` opens two),
        with the plugin manager given to ``make_cli`` if any. The caller closes it.

        Only what is given counts: ``UMLAUT_TRACKING_URI``, ``UMLAUT_ARTIFACT_URI`` and
        ``UMLAUT_PROFILE`` are ignored, so the environment can never make both sides of
        a copy the same store.
        """
        import os

        from .._api import Umlaut

        saved = {
            var: os.environ.pop(var)
            for var in ("UMLAUT_TRACKING_URI", "UMLAUT_ARTIFACT_URI", "UMLAUT_PROFILE")
            if var in os.environ
        }
        try:
            return Umlaut(
                tracking_uri,
                artifact_uri,
                profile=profile,
                plugin_manager=self._explicit,
                **options,
            )
        finally:
            os.environ.update(saved)

    def close(self) -> None:
        """Close the facade if a command opened it (ships spooled records first)."""
        umlaut, self._umlaut = self._umlaut, None
        if umlaut is not None:
            umlaut.close()


class RootGroup(click.Group):
    """The ``umlaut`` group: commands imported when used, plugins' commands added when
    a name is not the core's (or for ``--help``), and an ``UmlautError`` from any
    command turned into one line.

    :param lazy: command name → ``module:attribute`` of the core's commands.
    :param plugin_manager: whose ``umlaut_register_commands`` implementations add
        commands (None: :func:`umlaut_core.get_plugin_manager`, built when needed).
    """

    def __init__(
        self,
        *args: Any,
        lazy: dict[str, str],
        plugin_manager: pluggy.PluginManager | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)
        self._pm = plugin_manager
        self._plugins_added = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.add_plugin_commands()
        return sorted({*self.lazy, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:  # the core's own names always mean the core's command
            module, _, attribute = self.lazy[cmd_name].partition(":")
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        if cmd_name not in self.commands:
            self.add_plugin_commands()
        return self.commands.get(cmd_name)

    def add_plugin_commands(self) -> None:
        """Ask each plugin in turn, so a name taken twice can name both plugins.

        Raises :class:`CliError` (one line, exit 1) for a plugin that fails to load or
        takes a name already taken.
        """
        if self._plugins_added:
            return
        self._plugins_added = True
        try:
            if self._pm is None:
                from .._manager import get_plugin_manager

                self._pm = get_plugin_manager()
            owners = dict.fromkeys([*self.lazy, *self.commands], "umlaut-core")
            for impl in self._pm.hook.umlaut_register_commands.get_hookimpls():
                before = dict(self.commands)
                impl.function(cli=self)
                for name, command in self.commands.items():
                    if name in owners and before.get(name) is not command:
                        raise PluginError(
                            f"plugin {impl.plugin_name!r} adds the command {name!r}, which "
                            f"{owners[name]} already provides; rename one, or skip the "
                            f"plugin with UMLAUT_DISABLE_PLUGINS={impl.plugin_name}"
                        )
                    owners.setdefault(name, f"plugin {impl.plugin_name!r}")
        except UmlautError as exc:
            raise CliError.from_exception(exc) from exc

    def invoke(self, ctx: click.Context) -> Any:
        state = ctx.obj if isinstance(ctx.obj, CliContext) else None
        try:
            try:
                return super().invoke(ctx)
            finally:
                state = ctx.obj if isinstance(ctx.obj, CliContext) else state
                if state is not None:
                    state.close()
        except UmlautError as exc:
            error = CliError.from_exception(exc)
            error.verbose = bool(state and state.verbose)
            raise error from exc
        except CliError as error:
            error.verbose = bool(state and state.verbose)
            raise


def stderr_is_terminal() -> bool:
    return _isatty(sys.stderr)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
