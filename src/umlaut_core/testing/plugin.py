"""pytest plugin (entry point ``pytest11: umlaut``): fixtures for umlaut tests.

Importing pytest is deferred to the fixtures' module, which pytest itself loads;
nothing here runs unless pytest is in use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pluggy
import pytest

from .._manager import get_plugin_manager
from ..stores.memory import MemoryTracker

__all__ = ["memory_tracker", "plugin_manager", "register_plugin"]


@pytest.fixture
def plugin_manager() -> pluggy.PluginManager:
    """A plugin manager with the builtins only (entry-point autoload off)."""
    return get_plugin_manager(autoload=False)


@pytest.fixture
def register_plugin(
    plugin_manager: pluggy.PluginManager,
) -> Iterator[Callable[[Any], Any]]:
    """Register plugin objects on ``plugin_manager``; unregistered after the test."""
    added: list[Any] = []

    def register(plugin: Any, name: str | None = None) -> Any:
        plugin_manager.register(plugin, name)
        added.append(plugin)
        return plugin

    yield register
    for plugin in added:
        if plugin_manager.is_registered(plugin):
            plugin_manager.unregister(plugin)


@pytest.fixture
def memory_tracker() -> Iterator[MemoryTracker]:
    """A fresh in-memory tracker."""
    tracker = MemoryTracker()
    yield tracker
    tracker.close()
