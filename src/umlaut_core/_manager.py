"""Building a plugin manager: hookspecs, block list, entry points, then builtins."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable

import pluggy

from . import hookspecs
from .exceptions import PluginLoadError

__all__ = ["BUILTIN_PLUGINS", "get_plugin_manager"]

#: The core's own plugins, registered through the same call as outside ones, so they
#: can be blocked by name like any entry point.
BUILTIN_PLUGINS = {
    "umlaut.memory": "umlaut_core.stores.memory",
    "umlaut.folder": "umlaut_core.stores.folder",
    "umlaut.flavors": "umlaut_core.packer.flavors",
}


def _names(value: str | None) -> list[str]:
    return [n.strip() for n in (value or "").split(",") if n.strip()]


def get_plugin_manager(
    *, autoload: bool | None = None, blocked: Iterable[str] | None = None
) -> pluggy.PluginManager:
    """Return a new plugin manager with every installed umlaut plugin registered.

    The steps, in order: add the hookspecs; block the names in
    ``UMLAUT_DISABLE_PLUGINS`` and ``blocked``; load the ``umlaut`` entry-point group
    (unless autoload is off); register the builtins that are not blocked;
    ``check_pending()``. Each call builds a new manager: there is no global one.

    Plugins are blocked by **plugin name**, which is the *entry-point name* (the key
    on the left of ``[project.entry-points.umlaut]``, e.g. ``sql`` for umlaut-sql,
    ``mlflow``, ``s3``), not the distribution name (``umlaut-sql``) nor the module
    path. The core's builtins are named ``umlaut.memory`` (the ``memory:`` tracker and
    artifact store), ``umlaut.folder`` (the ``file:`` artifact store) and
    ``umlaut.flavors`` (the builtin flavors). ``umlaut doctor`` lists the names of
    the registered plugins.

    :param autoload: load the ``umlaut`` entry-point group; defaults to True unless
        ``UMLAUT_DISABLE_PLUGIN_AUTOLOAD`` is set (to any non-empty value). Builtins
        are registered either way.
    :param blocked: plugin names never to register, added to the comma-separated
        names in ``UMLAUT_DISABLE_PLUGINS`` (e.g. ``UMLAUT_DISABLE_PLUGINS=sql,umlaut.memory``).
    :return: the plugin manager; pass it to ``Umlaut(plugin_manager=...)``.
    :raises PluginLoadError: an entry point failed to import or register.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in [*_names(os.environ.get("UMLAUT_DISABLE_PLUGINS")), *(blocked or ())]:
        pm.set_blocked(name)
    if autoload is None:
        autoload = not os.environ.get("UMLAUT_DISABLE_PLUGIN_AUTOLOAD")
    if autoload:
        try:
            pm.load_setuptools_entrypoints(hookspecs.PROJECT)
        except Exception as exc:
            raise PluginLoadError(
                f"an 'umlaut' entry-point plugin failed to load: {exc!r}. Reinstall or "
                f"uninstall it, or skip it with UMLAUT_DISABLE_PLUGINS=<name>."
            ) from exc
    for name, module in BUILTIN_PLUGINS.items():
        if not pm.is_blocked(name) and pm.get_plugin(name) is None:
            pm.register(importlib.import_module(module), name)
    pm.check_pending()
    return pm
