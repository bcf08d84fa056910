"""Which plugin handles which URI scheme.

Filled by the ``umlaut_register_backends`` hook; each implementation is called with
the registry told which plugin is speaking, so a conflict can name both sides.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import pluggy

from .exceptions import BackendConflictError, BackendNotFoundError, ConfigurationError
from .protocols import ArtifactStore, Tracker

__all__ = ["BackendRegistry", "redact", "scheme_of"]

T = TypeVar("T")
TrackerFactory = Callable[..., Tracker]
ArtifactStoreFactory = Callable[..., ArtifactStore]

#: Which distribution adds a scheme that is not installed, for the error message.
KNOWN_SCHEMES = {
    "sqlite": "umlaut-sql",
    "postgresql": "umlaut-sql",
    "postgres": "umlaut-sql",
    "mlflow": "umlaut-mlflow",
    "s3": "umlaut-s3",
}

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*$")
_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@?#]*:)[^@/?#]*(?P<at>@)")


def redact(uri: str) -> str:
    """Return ``uri`` with any password replaced by ``***``."""
    return _PASSWORD.sub(r"\g<head>***\g<at>", uri)


def scheme_of(uri: str) -> str:
    """The scheme of a URI; a bare path (or ``C:\\`` path) is ``file``."""
    if not uri or not uri.strip():
        raise ConfigurationError("an empty URI was given; pass e.g. 'sqlite:///umlaut.db'")
    if "\x00" in uri:
        raise ConfigurationError(f"URI {redact(uri)!r} contains a NUL byte")
    if os.path.isabs(uri) or uri.startswith((".", "~")) or ("://" not in uri and ":" not in uri):
        return "file"
    scheme = urlsplit(uri).scheme if "://" in uri else uri.split(":", 1)[0]
    if len(scheme) == 1:  # a Windows drive letter
        return "file"
    if not _SCHEME.match(scheme):
        raise ConfigurationError(f"cannot read a scheme from URI {redact(uri)!r}")
    return scheme.lower()


@dataclass(frozen=True)
class _Entry(Generic[T]):
    factory: Callable[..., T]
    plugin: str


class BackendRegistry:
    """Scheme → factory tables for trackers and artifact stores."""

    def __init__(self) -> None:
        self._trackers: dict[str, _Entry[Tracker]] = {}
        self._stores: dict[str, _Entry[ArtifactStore]] = {}
        self._speaker = "<unknown>"

    @classmethod
    def from_plugins(cls, pm: pluggy.PluginManager) -> BackendRegistry:
        """Ask every plugin to register, one at a time, so conflicts name both."""
        registry = cls()
        names = _distribution_names(pm)
        # pluggy lists implementations oldest first; calling them one by one (rather
        # than through pm.hook) is what lets the registry know who is registering.
        for impl in pm.hook.umlaut_register_backends.get_hookimpls():
            registry._speaker = names.get(id(impl.plugin), impl.plugin_name)
            impl.function(registry=registry)
        registry._speaker = "<unknown>"
        return registry

    def add_tracker(self, scheme: str, factory: TrackerFactory) -> None:
        """Handle tracking URIs with ``scheme`` (the part before ``://`` or ``+``)."""
        self._add(self._trackers, "tracker", scheme, factory)

    def add_artifact_store(self, scheme: str, factory: ArtifactStoreFactory) -> None:
        """Handle artifact URIs with ``scheme``."""
        self._add(self._stores, "artifact store", scheme, factory)

    def _add(self, table: dict[str, Any], kind: str, scheme: str, factory: Any) -> None:
        scheme = scheme.lower()
        if scheme in table and table[scheme].plugin != self._speaker:
            raise BackendConflictError(kind, scheme, table[scheme].plugin, self._speaker)
        table[scheme] = _Entry(factory, self._speaker)

    @property
    def tracker_schemes(self) -> dict[str, str]:
        """Registered tracker schemes and the plugin that provides each."""
        return {s: e.plugin for s, e in sorted(self._trackers.items())}

    @property
    def artifact_schemes(self) -> dict[str, str]:
        """Registered artifact-store schemes and the plugin that provides each."""
        return {s: e.plugin for s, e in sorted(self._stores.items())}

    def open_tracker(self, uri: str, **options: Any) -> Tracker:
        """Build the tracker for ``uri`` with the plugin that claims its scheme."""
        return self._lookup(self._trackers, "tracker", uri).factory(uri, **options)

    def open_artifact_store(self, uri: str, **options: Any) -> ArtifactStore:
        """Build the artifact store for ``uri``."""
        return self._lookup(self._stores, "artifact store", uri).factory(uri, **options)

    def _lookup(self, table: dict[str, _Entry[T]], kind: str, uri: str) -> _Entry[T]:
        scheme = scheme_of(uri)
        # "postgresql+psycopg" is handled by "postgresql"; "mlflow+http" by "mlflow".
        for candidate in (scheme, scheme.split("+", 1)[0]):
            if candidate in table:
                return table[candidate]
        base = scheme.split("+", 1)[0]
        raise BackendNotFoundError(kind, scheme, table, KNOWN_SCHEMES.get(base))


def _distribution_names(pm: pluggy.PluginManager) -> dict[int, str]:
    names: dict[int, str] = {}
    for plugin, dist in pm.list_plugin_distinfo():
        names[id(plugin)] = f"{dist.project_name} ({pm.get_name(plugin)})"
    for name, plugin in pm.list_name_plugin():
        names.setdefault(id(plugin), name)
    return names
