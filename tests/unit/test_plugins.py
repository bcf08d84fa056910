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
        assert registry.tracker_schemes["memory"] == "umlaut-core (umlaut.memory)"
        assert registry.artifact_schemes["file"] == "umlaut-core (umlaut.folder)"

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
        assert "'memory' from umlaut-core (umlaut.memory)" in message
        assert isinstance(info.value, LookupError)
        assert info.value.providers["memory"] == "umlaut-core (umlaut.memory)"

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


class TestDisabledPlugins:
    """UMLAUT_DISABLE_PLUGINS takes plugin names; an unknown scheme names who would add it."""

    def test_blocked_builtin_is_named_with_how_to_enable_it(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("UMLAUT_DISABLE_PLUGINS", "umlaut.memory")
        with pytest.raises(BackendNotFoundError) as info:
            Umlaut("memory:", plugin_manager=get_plugin_manager(autoload=False))
        message = str(info.value)
        assert "umlaut-core is installed and handles it" in message
        assert "its plugin 'umlaut.memory' is disabled" in message
        assert "remove 'umlaut.memory' from UMLAUT_DISABLE_PLUGINS" in message
        assert info.value.disabled is not None

    def test_blocked_by_argument_says_so(self) -> None:
        pm = get_plugin_manager(autoload=False, blocked=["umlaut.folder"])
        with pytest.raises(BackendNotFoundError) as info:
            Umlaut("memory:", "file:///tmp/x", plugin_manager=pm)
        assert "get_plugin_manager(blocked=['umlaut.folder'])" in str(info.value)
        assert info.value.kind == "artifact store"

    def test_unknown_scheme_without_a_disabled_provider_gives_the_install_hint(self) -> None:
        with pytest.raises(BackendNotFoundError) as info:
            Umlaut("nothing-here://x", plugin_manager=get_plugin_manager(autoload=False))
        assert info.value.disabled is None
        assert "Installed tracker schemes: 'memory' from umlaut-core (umlaut.memory)" in str(
            info.value
        )

    def test_disabled_plugin_that_cannot_load_is_skipped(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from umlaut_core import registry as registry_module

        def broken() -> object:
            raise ImportError("no such client library")

        @hookimpl
        def umlaut_register_backends(registry: BackendRegistry) -> None:
            registry.add_tracker("later", MemoryTracker)

        def unregistered(pm: pluggy.PluginManager) -> Any:
            yield "broken", "umlaut-broken", broken
            yield (
                "later",
                "umlaut-later",
                lambda: _plugin("later", umlaut_register_backends=umlaut_register_backends),
            )

        monkeypatch.setattr(registry_module, "_unregistered_plugins", unregistered)
        with pytest.raises(BackendNotFoundError) as info:
            Umlaut("later://x", plugin_manager=get_plugin_manager(autoload=False))
        message = str(info.value)
        assert "umlaut-later is installed and handles it" in message
        assert "UMLAUT_DISABLE_PLUGIN_AUTOLOAD" in message
        assert "umlaut-broken" not in message

    @needs_example
    def test_disable_takes_the_entry_point_name(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("UMLAUT_DISABLE_PLUGINS", "umlaut-example-plugin")  # a distribution
        assert get_plugin_manager().get_plugin("example") is not None
        monkeypatch.setenv("UMLAUT_DISABLE_PLUGINS", "example")  # its entry-point name
        pm = get_plugin_manager()
        assert pm.get_plugin("example") is None and pm.is_blocked("example")
        with pytest.raises(BackendNotFoundError) as info:
            Umlaut("example:", plugin_manager=pm)
        message = str(info.value)
        assert "umlaut-example-plugin is installed and handles it" in message
        assert "remove 'example' from UMLAUT_DISABLE_PLUGINS" in message

    @needs_example
    def test_autoload_off_names_the_distribution(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("UMLAUT_DISABLE_PLUGIN_AUTOLOAD", "1")
        with pytest.raises(BackendNotFoundError) as info:
            Umlaut("example:")
        message = str(info.value)
        assert "umlaut-example-plugin is installed and handles it" in message
        assert "its plugin 'example' is disabled" in message
        assert "unset UMLAUT_DISABLE_PLUGIN_AUTOLOAD" in message

    @needs_example
    def test_installed_schemes_are_listed_with_their_distributions(self) -> None:
        with pytest.raises(BackendNotFoundError) as info:
            Umlaut("nothing-here://x")
        assert "'example' from umlaut-example-plugin (example)" in str(info.value)


class TestShippedExamplePlugin:
    """umlaut_core.testing.example_plugin works once registered, as its docstring shows."""

    def test_registered_module_opens_toy_uris(
        self, register_plugin: Callable[..., Any], plugin_manager: pluggy.PluginManager
    ) -> None:
        from umlaut_core.testing import example_plugin
        from umlaut_core.testing.models import Threshold

        register_plugin(example_plugin, "toy")
        registry = BackendRegistry.from_plugins(plugin_manager)
        assert registry.tracker_schemes["toy"] == "toy"
        umlaut = Umlaut("toy:", plugin_manager=plugin_manager)
        assert isinstance(umlaut.tracker, example_plugin.ToyTracker)
        umlaut.track_model(Threshold(1), "toy model", stage="Production")
        assert umlaut.run_model("toy model", {"x": 2}, stage="Production")["above"] is True
        assert len(umlaut.history("toy model")) == 1

    def test_it_is_not_registered_by_default(self, plugin_manager: pluggy.PluginManager) -> None:
        assert "toy" not in BackendRegistry.from_plugins(plugin_manager).tracker_schemes
