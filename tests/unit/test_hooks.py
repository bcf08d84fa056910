"""Each hook in hookspecs.py is called when and with what its docstring says."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy
import pytest

from umlaut_core import AuditRecord, BackendRegistry, ModelVersion, Umlaut, hookimpl
from umlaut_core.packer import Flavor
from umlaut_core.stores.memory import MemoryTracker
from umlaut_core.testing.models import Failing, Threshold


class Recorder:
    """Observer plugin that writes down every call it gets."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    @hookimpl
    def umlaut_before_track(self, model_name: str, model: Any) -> None:
        self.calls.append(("before_track", model_name))

    @hookimpl
    def umlaut_after_track(self, version: ModelVersion) -> None:
        self.calls.append(("after_track", (version.version, version.created)))

    @hookimpl
    def umlaut_on_track_error(self, model_name: str, error: BaseException) -> None:
        self.calls.append(("on_track_error", type(error).__name__))

    @hookimpl
    def umlaut_before_run(self, version: ModelVersion, inputs: Any) -> None:
        self.calls.append(("before_run", inputs))

    @hookimpl
    def umlaut_after_run(self, record: AuditRecord) -> None:
        self.calls.append(("after_run", record.output))

    @hookimpl
    def umlaut_on_run_error(self, record: AuditRecord, error: BaseException) -> None:
        self.calls.append(("on_run_error", (record.status, str(error))))


@pytest.fixture
def recorded(
    register_plugin: Callable[..., Any], plugin_manager: pluggy.PluginManager
) -> tuple[Umlaut, Recorder]:
    recorder = register_plugin(Recorder(), "recorder")
    return Umlaut(tracker=MemoryTracker(), plugin_manager=plugin_manager), recorder


class TestRegistrationHooks:
    """Hooks that let a plugin provide stores and flavors."""

    def test_umlaut_register_backends(
        self, register_plugin: Callable[..., Any], plugin_manager: pluggy.PluginManager
    ) -> None:
        class Plugin:
            @hookimpl
            def umlaut_register_backends(self, registry: BackendRegistry) -> None:
                registry.add_tracker("hooked", MemoryTracker)

        register_plugin(Plugin())
        assert Umlaut("hooked:", plugin_manager=plugin_manager).tracker.uri == "hooked:"

    def test_umlaut_detect_flavor(
        self, register_plugin: Callable[..., Any], plugin_manager: pluggy.PluginManager
    ) -> None:
        negate = Flavor("negate", "run", lambda obj: lambda data: -obj.run(data)["limit"])

        class Plugin:
            @hookimpl
            def umlaut_detect_flavor(self, obj: Any) -> Flavor | None:
                return negate if isinstance(obj, Threshold) else None

            @hookimpl
            def umlaut_get_flavor(self, name: str) -> Flavor | None:
                return negate if name == "negate" else None

        register_plugin(Plugin())
        umlaut = Umlaut(tracker=MemoryTracker(), plugin_manager=plugin_manager)
        assert umlaut.track_model(Threshold(4), "t").flavor == "negate"
        assert umlaut.run_model("t", {"x": 1}) == -4

    def test_umlaut_get_flavor(
        self, register_plugin: Callable[..., Any], plugin_manager: pluggy.PluginManager
    ) -> None:
        umlaut = Umlaut(tracker=MemoryTracker(), plugin_manager=plugin_manager)
        umlaut.track_model(Threshold(4), "t")

        class Plugin:
            @hookimpl(tryfirst=True)
            def umlaut_get_flavor(self, name: str) -> Flavor | None:
                return Flavor(name, "run", lambda obj: lambda data: "overridden")

        register_plugin(Plugin())
        fresh = Umlaut(tracker=umlaut.tracker, plugin_manager=plugin_manager)
        assert fresh.run_model("t", {"x": 1}) == "overridden"


class TestTrackHooks:
    """Observers around track_model."""

    def test_umlaut_before_track(self, recorded: tuple[Umlaut, Recorder]) -> None:
        umlaut, rec = recorded
        umlaut.track_model(Threshold(1), "m")
        assert rec.calls[0] == ("before_track", "m")

    def test_umlaut_after_track(self, recorded: tuple[Umlaut, Recorder]) -> None:
        umlaut, rec = recorded
        umlaut.track_model(Threshold(1), "m")
        umlaut.track_model(Threshold(1), "m")
        assert [c for c in rec.calls if c[0] == "after_track"] == [
            ("after_track", (1, True)),
            ("after_track", (1, False)),
        ]

    def test_umlaut_on_track_error(self, recorded: tuple[Umlaut, Recorder]) -> None:
        umlaut, rec = recorded
        with pytest.raises(TypeError):
            umlaut.track_model(object(), "m")
        assert rec.calls[-1] == ("on_track_error", "UnsupportedModelError")


class TestRunHooks:
    """Observers around run_model and run_batch."""

    def test_umlaut_before_run(self, recorded: tuple[Umlaut, Recorder]) -> None:
        umlaut, rec = recorded
        umlaut.track_model(Threshold(1), "m")
        umlaut.run_model("m", {"x": 3})
        assert ("before_run", {"x": 3}) in rec.calls

    def test_umlaut_after_run(self, recorded: tuple[Umlaut, Recorder]) -> None:
        umlaut, rec = recorded
        umlaut.track_model(Threshold(1), "m")
        umlaut.run_batch("m", [{"x": 0}, {"x": 3}])
        outputs = [c[1] for c in rec.calls if c[0] == "after_run"]
        assert outputs == [{"above": False, "limit": 1}, {"above": True, "limit": 1}]

    def test_umlaut_on_run_error(self, recorded: tuple[Umlaut, Recorder]) -> None:
        umlaut, rec = recorded
        umlaut.track_model(Failing(), "f")
        with pytest.raises(ValueError):
            umlaut.run_model("f", {"x": -1})
        assert rec.calls[-1] == ("on_run_error", ("error", "x must be >= 0, got -1"))
