"""Resolving a selector to a version and loading it: the facade's hot-path caches.

A mixin of :class:`~umlaut_core.Umlaut`. ``version=`` lookups are kept for good
(versions are immutable); ``stage=``/latest lookups are reused for ``resolve_ttl``
and, under spooled delivery, through a tracker outage; unpacked models are kept in
an LRU keyed by digest (``cache_size``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from . import naming
from ._arguments import version_number
from .exceptions import BackendError
from .packer import LoadedModel, unpack
from .protocols import ArtifactStore, Capability, Tracker
from .records import ModelVersion

if TYPE_CHECKING:
    import pluggy

    from .config import Settings
    from .delivery import Delivery

__all__ = ["VersionLoading"]

#: After a failed stage lookup under spooled delivery, serve the last known version
#: this long before asking the tracker again.
_OUTAGE_BACKOFF_S = 1.0


class VersionLoading:
    """Selectors to versions, versions to runnable models (state set by ``Umlaut``)."""

    _tracker: Tracker
    _store: ArtifactStore | None
    _pm: pluggy.PluginManager
    _delivery: Delivery
    _cache: OrderedDict[str, LoadedModel]
    _pinned: dict[tuple[str, int], ModelVersion]
    _recent: dict[tuple[str, str | None], tuple[float, ModelVersion]]
    _tracker_down_until: float
    _resolve_ttl: float
    _lock: threading.Lock
    settings: Settings

    def _check_open(self) -> None:  # provided by Umlaut
        raise NotImplementedError

    def get_version(
        self, model_name: str, *, version: int | None = None, stage: str | None = None
    ) -> ModelVersion:  # provided by Umlaut
        raise NotImplementedError

    def load_model(
        self, model_name: str, *, version: int | None = None, stage: str | None = None
    ) -> Any:
        """A private copy of a stored version's object, verified like ``run_model``'s.

        Each call unpacks a new copy: changing it (``obj.threshold = 100``) never
        changes what ``run_model`` computes, which runs its own cached copy.
        """
        mv = self.get_version(model_name, version=version, stage=stage)
        return self._unpack(mv, self.fetch_bundle(mv)).obj

    def _resolve(self, name: str, version: int | None, stage: str | None) -> ModelVersion:
        if version is not None:
            number = version_number(version)
            pinned = self._pinned.get((name, number))
            if pinned is None:
                # Versions are immutable, so a pinned lookup can be kept for good.
                pinned = self._tracker.get_version(name, version=number)
                self._pinned[(name, number)] = pinned
            return pinned
        alias = naming.check_alias(stage) if stage is not None else None
        key = (name, alias)
        now = time.monotonic()
        recent = self._recent.get(key)
        ttl = self._resolve_ttl
        if recent is not None and (
            (ttl > 0 and now - recent[0] < ttl) or now < self._tracker_down_until
        ):
            return recent[1]
        try:
            mv = self._tracker.get_version(name, alias=alias)
        except BackendError:
            # Spooled delivery promises to keep serving through an outage: fall back to
            # what this selector resolved to when the tracker last answered, and do not
            # ask again for a second (a client's retries can take seconds per call).
            if recent is None or self._delivery.mode != "spooled":
                raise
            self._tracker_down_until = time.monotonic() + _OUTAGE_BACKOFF_S
            return recent[1]
        self._recent[key] = (now, mv)
        return mv

    def _load(self, mv: ModelVersion) -> LoadedModel:
        loaded = self._cache.get(mv.digest)
        if loaded is not None:
            return loaded
        loaded = self._unpack(mv, self.fetch_bundle(mv))
        with self._lock:
            self._cache[mv.digest] = loaded
            while len(self._cache) > max(self.settings.cache_size, 1):
                self._cache.popitem(last=False)
        return loaded

    def fetch_bundle(self, mv: ModelVersion) -> bytes:
        """A version's bundle file as stored, *unverified* and never unpickled (for
        tools that inspect or copy bundles; ``load_model`` is the verified way in)."""
        self._check_open()
        bundles_in_tracker = Capability.STORES_BUNDLES in self._tracker.capabilities
        # A tracker that keeps bundles may also hold versions made without our store
        # (e.g. registered straight in MLflow): ask the store only for what it has.
        if self._store is not None and (
            not bundles_in_tracker or self._store.exists(mv.artifact_uri)
        ):
            return self._store.get(mv.artifact_uri)
        return self._tracker.load_bundle(mv)

    def _unpack(self, mv: ModelVersion, data: bytes) -> LoadedModel:
        return unpack(
            data,
            self._pm,
            expected_digest=mv.digest,
            # Versions registered before the checksum was kept have the digest check.
            expected_sha256=mv.bundle_sha256,
            env_policy=self.settings.env_policy,  # type: ignore[arg-type]
            signing_key=self.settings.signing_key,
        )
