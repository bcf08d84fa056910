"""Every hook umlaut calls: the plugin author's reference.

A plugin is a module (or object) with functions marked ``@umlaut_core.hookimpl``
and named after a spec below, published under the ``umlaut`` entry-point group::

    [project.entry-points.umlaut]
    mystore = "umlaut_mystore.plugin"

Implementations take only the arguments they need, and never give them defaults.
``help(umlaut_core.hookspecs)`` lists every hook (they are in ``__all__``); the
plugin author's guide (``docs/plugins.md``) and the generated hook reference are
checked against this module by ``tests/meta``. A complete example plugin ships in
the core: :mod:`umlaut_core.testing.example_plugin`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .packer import Flavor
    from .records import AuditRecord, ModelVersion
    from .registry import BackendRegistry

__all__ = [
    "PROJECT",
    "hookimpl",
    "hookspec",
    # registration
    "umlaut_register_backends",
    "umlaut_detect_flavor",
    "umlaut_get_flavor",
    # tracking
    "umlaut_before_track",
    "umlaut_after_track",
    "umlaut_on_track_error",
    # running
    "umlaut_before_run",
    "umlaut_after_run",
    "umlaut_on_run_error",
    # command line
    "umlaut_register_commands",
]

#: The one place the project name lives: entry-point group and marker name.
PROJECT = "umlaut"

#: Marks a hook specification (only this module declares them).
hookspec = pluggy.HookspecMarker(PROJECT)
#: Marks a hook implementation in a plugin: ``@umlaut_core.hookimpl``.
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---------------------------------------------------------------------------
# Registration: what a plugin provides
# ---------------------------------------------------------------------------


@hookspec
def umlaut_register_backends(registry: BackendRegistry) -> None:
    """Register tracker and artifact-store factories by URI scheme.

    Call ``registry.add_tracker(scheme, factory)`` and
    ``registry.add_artifact_store(scheme, factory)``; a factory takes the URI and
    keyword options and returns the store. Import heavy dependencies inside the
    factory, not at module level, so discovering the plugin stays cheap.

    :param registry: the registry being filled; a scheme already claimed by another
        plugin raises ``BackendConflictError`` naming both.
    :return: None.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def umlaut_detect_flavor(obj: Any) -> Flavor | None:
    """Choose the flavor that knows how to pack and run ``obj``.

    Plugins are asked newest-registered first, so a plugin can claim objects before
    the builtin flavors (a class with ``run``, a function, a scikit-learn estimator).

    :param obj: the object passed to ``track_model``.
    :return: a ``Flavor`` that can run ``obj``, or None to let others decide.
        The call stops at the first non-None result.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def umlaut_get_flavor(name: str) -> Flavor | None:
    """Return the flavor called ``name``, to run a bundle that names it.

    :param name: the ``flavor`` field of a bundle's manifest.
    :return: that ``Flavor``, or None if this plugin does not provide it.
        The call stops at the first non-None result.

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------
# Tracking: around track_model
# ---------------------------------------------------------------------------


@hookspec
def umlaut_before_track(model_name: str, model: Any) -> None:
    """Called before a model is packed and stored.

    :param model_name: the name it will be tracked under (already validated).
    :param model: the object being tracked.
    :return: None. An exception raised here aborts the call before anything is
        stored.

    .. versionadded:: 0.1
    """


@hookspec
def umlaut_after_track(version: ModelVersion) -> None:
    """Called after ``track_model`` stored (or found) a version.

    :param version: the version returned to the caller; ``version.created`` tells
        whether it is new.
    :return: None.

    .. versionadded:: 0.1
    """


@hookspec
def umlaut_on_track_error(model_name: str, error: BaseException) -> None:
    """Called when ``track_model`` fails, before the error reaches the caller.

    :param model_name: the name that was being tracked.
    :param error: the exception about to be raised.
    :return: None.

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------
# Running: around run_model and run_batch
# ---------------------------------------------------------------------------


@hookspec
def umlaut_before_run(version: ModelVersion, inputs: Any) -> None:
    """Called after the selector resolved and the input encoded, before the model runs.

    :param version: the version about to run.
    :param inputs: the input as the caller passed it.
    :return: None.

    .. versionadded:: 0.1
    """


@hookspec
def umlaut_after_run(record: AuditRecord) -> None:
    """Called after a successful run, once its audit record is written.

    :param record: the audit record, as stored.
    :return: None.

    .. versionadded:: 0.1
    """


@hookspec
def umlaut_on_run_error(record: AuditRecord, error: BaseException) -> None:
    """Called when the model raised, once the error's audit record is written.

    :param record: the audit record with ``status == "error"``.
    :param error: the model's exception, which then reaches the caller unchanged.
    :return: None.

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------
# Command line: what the ``umlaut`` console script offers
# ---------------------------------------------------------------------------


@hookspec
def umlaut_register_commands(cli: click.Group) -> None:
    """Add commands or command groups to the ``umlaut`` console script.

    Called at most once per invocation, when the command named is not one of the
    core's or every command is listed (``umlaut --help``), so a core command never
    waits for plugins. Call ``cli.add_command(command)``; import click (and anything
    heavy) inside the implementation, not at module level, so ``import umlaut_core``
    and discovering the plugin stay cheap. A command gets the global options (``--tracking-uri``,
    ``--artifact-uri``, ``--profile``) through ``click.pass_obj``: a
    ``umlaut_core.cli.CliContext`` whose ``settings`` are resolved the API's way and
    whose ``umlaut()`` opens the facade. An ``UmlautError`` raised by a command is
    printed as one line and exits with status 1, like the core's own commands.

    :param cli: the root ``click.Group`` of the ``umlaut`` command. Adding a name
        the core or another plugin already uses is an error (``PluginError``, naming
        both, shown as one line); the core's names always mean the core's commands.
    :return: None.

    .. versionadded:: 0.2
    """
