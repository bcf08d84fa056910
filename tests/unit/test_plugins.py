"""Plugin loading: entry points, builtins registered the same way, conflicts, block list."""

from __future__ import annotations

import importlib.metadata
import os
import types
from collections.abc import Callable
from typing import Any

import pluggy
import pytest

from umlaut_core import (
    BackendConflictError,
    BackendNotFoundError,
    BackendRegistry,
    ConfigurationError,
    Umlaut,
    get_plugin_manager,
    hookimpl,
)
from umlaut_core.stores.memory import MemoryTracker


def _example_installed() -> bool:
    try:
        importlib.metadata.distribution("umlaut-example-plugin")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


needs_example = pytest.mark.skipif(
    not _example_installed() and not os.environ.get("CI"),
    reason="tests/resources/umlaut-example-plugin is not installed (tox installs it)",
)


def _plugin(name: str, **impls: Any) -> types.SimpleNamespace:
    return types.SimpleNamespace(__name__=name, **impls)


class TestBuiltins:
    """The core's stores and flavors are plugins registered through the same call."""

    def test_builtins_are_registered_by_name(self, plugin_manager: pluggy.PluginManager) -> None:
        names = {name for name, _ in plugin_manager.list_name_plugin()}
        assert {"umlaut.memory", "umlaut.folder", "umlaut.flavors"} <= names
        registry = BackendRegistry.from_plugins(plugin_manager)
        assert registry.tracker_schemes["memory"] == "umlaut.memory"
        assert registry.artifact_schemes["file"] == "umlaut.folder"

    def test_a_builtin_can_be_blocked(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("UMLAUT_DISABLE_PLUGINS", "umlaut.memory, something-else")
        pm = get_plugin_manager(autoload=False)
        with pytest.raises(BackendNotFoundError, match="'memory'"):
            Umlaut("memory:", plugin_manager=pm)

    def test_unknown_scheme_lists_installed_and_names_the_package(self) -> None:
        with pytest.raises(BackendNotFoundError) as info:
            Umlaut("mlflow+http://127.0.0.1:1", plugin_manager=get_plugin_manager(autoload=False))
        message = str(info.value)
        assert "'mlflow+http'" in message and "umlaut-mlflow" in message
        assert "'memory'" in message
        assert isinstance(info.value, LookupError)

    @pytest.mark.parametrize("uri", ["", "   ", "::::", "memory:\x00"])
    def test_unreadable_uris_are_configuration_errors(self, uri: str) -> None:
        with pytest.raises(ConfigurationError):
            Umlaut(uri or " ", plugin_manager=get_plugin_manager(autoload=False))


class TestConflicts:
    """Two plugins claiming one scheme is an error naming both."""

    def test_conflict_names_both_plugins(
        self, register_plugin: Callable[..., Any], plugin_manager: pluggy.PluginManager
    ) -> None:
        @hookimpl
        def umlaut_register_backends(registry: BackendRegistry) -> None:
            registry.add_tracker("memory", MemoryTracker)

        register_plugin(
            _plugin("rogue", umlaut_register_backends=umlaut_register_backends), "rogue"
        )
        with pytest.raises(BackendConflictError) as info:
            BackendRegistry.from_plugins(plugin_manager)
        assert "umlaut.memory" in str(info.value) and "rogue" in str(info.value)

    def test_new_scheme_from_a_registered_plugin_works(
        self, register_plugin: Callable[..., Any], plugin_manager: pluggy.PluginManager
    ) -> None:
        @hookimpl
        def umlaut_register_backends(registry: BackendRegistry) -> None:
            registry.add_tracker("scratch", MemoryTracker)

        register_plugin(_plugin("scratch", umlaut_register_backends=umlaut_register_backends))
        umlaut = Umlaut("scratch://x", plugin_manager=plugin_manager)
        assert umlaut.tracker.uri == "scratch://x"


@needs_example
class TestEntryPointDiscovery:
    """An installed distribution with an `umlaut` entry point is found and used."""

    def test_example_plugin_is_discovered(self) -> None:
        pm = get_plugin_manager()
        assert pm.get_plugin("example") is not None
        dists = {dist.project_name for _, dist in pm.list_plugin_distinfo()}
        assert "umlaut-example-plugin" in dists

    def test_example_plugin_runs_end_to_end(self) -> None:
        from umlaut_example_plugin import Shouter  # type: ignore[import-not-found]

        umlaut = Umlaut("example:")
        mv = umlaut.track_model(Shouter(), "shouter")
        assert mv.flavor == "example-shout"
        assert umlaut.run_model("shouter", {"text": "hi"}) == "HI!"

    def test_example_plugin_can_be_blocked_or_autoload_skipped(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("UMLAUT_DISABLE_PLUGINS", "example")
        assert get_plugin_manager().get_plugin("example") is None
        monkeypatch.delenv("UMLAUT_DISABLE_PLUGINS")
        monkeypatch.setenv("UMLAUT_DISABLE_PLUGIN_AUTOLOAD", "1")
        with pytest.raises(BackendNotFoundError, match="example"):
            Umlaut("example:")
