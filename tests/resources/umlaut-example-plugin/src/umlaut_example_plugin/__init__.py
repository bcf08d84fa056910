"""A third-party plugin as small as it gets: one tracker scheme and one flavor.

Installed only in the test environment, where the core's tests check that an entry
point is discovered, can be blocked by its entry-point name (``example``), is named
in ``BackendNotFoundError`` when disabled, and works end to end. Not shipped: the
example for plugin authors is :mod:`umlaut_core.testing.example_plugin`, in the core
wheel.
"""

from __future__ import annotations

from typing import Any

from umlaut_core import BackendRegistry, hookimpl
from umlaut_core.packer import Flavor
from umlaut_core.stores.memory import MemoryTracker


class ExampleTracker(MemoryTracker):
    """An in-memory tracker reached through the ``example:`` scheme."""


class Shouter:
    """An object only this plugin's flavor can run: it has ``shout``, not ``run``."""

    def shout(self, text: str) -> str:
        return text.upper() + "!"


SHOUT = Flavor("example-shout", "shout", lambda obj: lambda data: obj.shout(data["text"]))


@hookimpl
def umlaut_register_backends(registry: BackendRegistry) -> None:
    registry.add_tracker("example", ExampleTracker)


@hookimpl
def umlaut_detect_flavor(obj: Any) -> Flavor | None:
    return SHOUT if callable(getattr(obj, "shout", None)) else None


@hookimpl
def umlaut_get_flavor(name: str) -> Flavor | None:
    return SHOUT if name == SHOUT.name else None
