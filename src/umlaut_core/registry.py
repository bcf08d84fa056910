"""Which plugin handles which URI scheme.

Filled by the ``umlaut_register_backends`` hook; each implementation is called with
the registry told which plugin is speaking, so a conflict can name both sides.
Each scheme is shown with its provider as ``<distribution> (<plugin name>)``, e.g.
``umlaut-sql (sql)`` or ``umlaut-core (umlaut.memory)``; the plugin name is what
``UMLAUT_DISABLE_PLUGINS`` takes.

An unknown scheme raises :class:`~umlaut_core.BackendNotFoundError` listing the
registered schemes with their providers. When an installed plugin that is not
registered (blocked by name, or entry points not loaded because
``UMLAUT_DISABLE_PLUGIN_AUTOLOAD`` is set) would handle the scheme, the error names
its distribution and how to enable it: to find out, and only on this error path,
the registry imports such plugins and calls their ``umlaut_register_backends`` on a
scratch registry (nothing is registered, and a plugin that fails to import is
skipped).
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import pluggy

from .exceptions import BackendConflictError, BackendNotFoundError, ConfigurationError
from .protocols import ArtifactStore, Tracker
from .redaction import looks_secret, redact

__all__ = ["BackendRegistry", "looks_secret", "redact", "scheme_of"]

T = TypeVar("T")
TrackerFactory = Callable[..., Tracker]
ArtifactStoreFactory = Callable[..., ArtifactStore]
#: ``factory(tracker)`` → an :class:`~umlaut_core.experiments.ExperimentStore`.
ExperimentStoreFactory = Callable[[Tracker], Any]

#: Which distribution adds a scheme that is not installed, for the error message.
KNOWN_SCHEMES = {
    "sqlite": "umlaut-sql",
    "postgresql": "umlaut-sql",
    "postgres": "umlaut-sql",
    "mlflow": "umlaut-mlflow",
    "s3": "umlaut-s3",
}

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*$")


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
        self._experiments: dict[str, _Entry[Any]] = {}
        self._datasets: dict[str, _Entry[Any]] = {}
        self._speaker = "<unknown>"
        self._pm: pluggy.PluginManager | None = None

    @classmethod
    def from_plugins(cls, pm: pluggy.PluginManager) -> BackendRegistry:
        """Ask every plugin to register, one at a time, so conflicts name both."""
        registry = cls()
        registry._pm = pm
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

    def add_experiment_store(self, scheme: str, factory: ExperimentStoreFactory) -> None:
        """Keep training runs for trackers of ``scheme``: ``factory(tracker)`` is called
        with the tracker the facade opened (so the store may share its connections)
        and returns an :class:`~umlaut_core.experiments.ExperimentStore`."""
        self._add(self._experiments, "experiment store", scheme, factory)

    def add_dataset_store(self, scheme: str, factory: ExperimentStoreFactory) -> None:
        """Keep datasets and their lineage for trackers of ``scheme``: ``factory(tracker)``
        returns a :class:`~umlaut_core.datasets.DatasetStore`."""
        self._add(self._datasets, "dataset store", scheme, factory)

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

    @property
    def experiment_schemes(self) -> dict[str, str]:
        """Tracker schemes with an experiment store, and the plugin providing each."""
        return {s: e.plugin for s, e in sorted(self._experiments.items())}

    def open_experiment_store(self, tracker: Tracker) -> Any:
        """The experiment store for ``tracker`` (looked up by its URI's scheme);
        ``BackendNotFoundError`` naming the schemes that have one, if none."""
        return self._lookup(self._experiments, "experiment store", tracker.uri).factory(tracker)

    @property
    def dataset_schemes(self) -> dict[str, str]:
        """Tracker schemes with a dataset store, and the plugin providing each."""
        return {s: e.plugin for s, e in sorted(self._datasets.items())}

    def open_dataset_store(self, tracker: Tracker) -> Any:
        """The dataset store for ``tracker``; ``BackendNotFoundError`` if none."""
        return self._lookup(self._datasets, "dataset store", tracker.uri).factory(tracker)

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
        # For a concern of a tracker that is installed (experiments, datasets), the
        # tracker's distribution is no answer: it is there and lacks the concern.
        concern = table is self._experiments or table is self._datasets
        tracked = concern and (scheme in self._trackers or base in self._trackers)
        raise BackendNotFoundError(
            kind,
            scheme,
            {s: e.plugin for s, e in table.items()},
            None if tracked else KNOWN_SCHEMES.get(base),
            disabled=None if tracked else self._disabled_provider(kind, (scheme, base)),
        )

    def _disabled_provider(self, kind: str, schemes: tuple[str, ...]) -> str | None:
        """Name the installed but unregistered plugin that would handle a scheme."""
        if self._pm is None:
            return None
        pm = self._pm
        from ._manager import _names  # _manager is imported lazily: it imports plugins

        from_env = set(_names(os.environ.get("UMLAUT_DISABLE_PLUGINS")))
        for name, dist, load in _unregistered_plugins(pm):
            probe = BackendRegistry()
            probe._speaker = name
            try:
                hook = getattr(load(), "umlaut_register_backends", None)
                if hook is None:
                    continue
                hook(registry=probe)
            except Exception:  # a plugin that cannot even register: not the answer
                continue
            table: dict[str, Any] = {
                "tracker": probe._trackers,
                "experiment store": probe._experiments,
                "dataset store": probe._datasets,
            }.get(kind, probe._stores)
            if not table.keys() & set(schemes):
                continue
            if not pm.is_blocked(name):
                how = (
                    "unset UMLAUT_DISABLE_PLUGIN_AUTOLOAD (or call "
                    "get_plugin_manager(autoload=True)) to load entry points"
                )
            elif name in from_env:
                how = f"remove {name!r} from UMLAUT_DISABLE_PLUGINS to enable it"
            else:
                how = f"it was blocked by name (get_plugin_manager(blocked=[{name!r}]))"
            return (
                f"{dist} is installed and handles it, but its plugin {name!r} is disabled: {how}."
            )
        return None


def _unregistered_plugins(
    pm: pluggy.PluginManager,
) -> Iterator[tuple[str, str, Callable[[], object]]]:
    """(plugin name, distribution, loader) of each installed plugin not registered."""
    from ._manager import BUILTIN_PLUGINS  # _manager builds registries' managers
    from .hookspecs import PROJECT

    for name, module in BUILTIN_PLUGINS.items():
        if pm.get_plugin(name) is None:
            yield name, "umlaut-core", functools.partial(importlib.import_module, module)
    for ep in importlib.metadata.entry_points(group=PROJECT):
        if pm.get_plugin(ep.name) is None:
            dist = ep.dist.name if ep.dist is not None else ep.value
            yield ep.name, dist, ep.load


def _distribution_names(pm: pluggy.PluginManager) -> dict[int, str]:
    """How each registered plugin is named in messages: ``<distribution> (<name>)``."""
    from ._manager import BUILTIN_PLUGINS

    names: dict[int, str] = {}
    for plugin, dist in pm.list_plugin_distinfo():
        names[id(plugin)] = f"{dist.project_name} ({pm.get_name(plugin)})"
    for name, plugin in pm.list_name_plugin():
        if plugin is not None and name in BUILTIN_PLUGINS:
            names.setdefault(id(plugin), f"umlaut-core ({name})")
        names.setdefault(id(plugin), name)
    return names
