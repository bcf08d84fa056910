"""The ``memory:`` dataset store: the executable statement of the contract.

State belongs to the tracker it was opened for (like the memory experiment store).
"""

from __future__ import annotations

import dataclasses
import threading
import weakref
from collections.abc import Sequence
from typing import Any, BinaryIO

from ..clock import utcnow
from ..exceptions import ArtifactError, DatasetNotFoundError
from ..protocols import Capability
from .records import DatasetDraft, DatasetInfo, DatasetLink, DatasetVersion

__all__ = ["MemoryDatasetStore", "select_links"]


def select_links(
    links: Sequence[DatasetLink],
    *,
    dataset: tuple[str, int | None] | None = None,
    model: tuple[str, int | None] | None = None,
    run_id: str | None = None,
) -> list[DatasetLink]:
    """The links a ``links(...)`` query returns, in the given (oldest first) order."""
    out = []
    for link in links:
        if dataset is not None and (
            link.dataset_name != dataset[0]
            or (dataset[1] is not None and link.dataset_version != dataset[1])
        ):
            continue
        if model is not None and (
            link.model_name != model[0] or (model[1] is not None and link.model_version != model[1])
        ):
            continue
        if run_id is not None and link.run_id != run_id:
            continue
        out.append(link)
    return out


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.versions: dict[str, list[DatasetVersion]] = {}
        self.links: list[DatasetLink] = []
        self.identities: set[tuple[Any, ...]] = set()
        self.data: dict[str, bytes] = {}


_STATES: weakref.WeakKeyDictionary[Any, _State] = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


class MemoryDatasetStore:
    """Dataset versions and links in plain lists under one lock."""

    #: The memory tracker keeps bundles itself, so there may be no artifact store:
    #: this store keeps dataset bytes too.
    capabilities: frozenset[Capability] = frozenset({Capability.DATASET_BYTES})

    def __init__(self, tracker: Any) -> None:
        self.uri = tracker.uri
        with _STATES_LOCK:
            self._state = _STATES.setdefault(tracker, _State())

    def put_data(self, sha256: str, data: BinaryIO) -> str:
        uri = f"memory:datasets/{sha256}.parquet"
        with self._state.lock:
            self._state.data.setdefault(uri, data.read())
        return uri

    def get_data(self, uri: str) -> bytes:
        with self._state.lock:
            try:
                return self._state.data[uri]
            except KeyError:
                raise ArtifactError(f"no dataset data at {uri!r} in the memory store") from None

    def find_dataset(self, name: str, digest: str) -> DatasetVersion | None:
        with self._state.lock:
            for dv in self._state.versions.get(name, ()):
                if dv.digest == digest:
                    return dataclasses.replace(dv, created=False)
        return None

    def register_dataset(self, draft: DatasetDraft) -> DatasetVersion:
        with self._state.lock:
            found = self.find_dataset(draft.name, draft.digest)
            if found is not None:
                return found
            versions = self._state.versions.setdefault(draft.name, [])
            fields = {f.name: getattr(draft, f.name) for f in dataclasses.fields(draft)}
            dv = DatasetVersion(version=len(versions) + 1, created=True, **fields)
            versions.append(dataclasses.replace(dv, tags=dict(dv.tags)))
            return dv

    def get_dataset(self, name: str, version: int | None = None) -> DatasetVersion:
        with self._state.lock:
            versions = self._state.versions.get(name)
            if not versions:
                raise DatasetNotFoundError.for_name(name, sorted(self._state.versions))
            if version is None:
                return dataclasses.replace(versions[-1], created=False)
            for dv in versions:
                if dv.version == version:
                    return dataclasses.replace(dv, created=False)
            raise DatasetNotFoundError.for_version(name, version, [v.version for v in versions])

    def list_datasets(self) -> list[DatasetInfo]:
        with self._state.lock:
            return [
                DatasetInfo(name, vs[-1].version, vs[-1].description)
                for name, vs in sorted(self._state.versions.items())
            ]

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        with self._state.lock:
            versions = self._state.versions.get(name)
            if not versions:
                raise DatasetNotFoundError.for_name(name, sorted(self._state.versions))
            return [dataclasses.replace(v, created=False) for v in versions]

    def add_links(self, links: Sequence[DatasetLink]) -> int:
        with self._state.lock:
            for link in links:  # all or nothing: check every target first
                self.get_dataset(link.dataset_name, link.dataset_version)
            added = 0
            for link in links:
                if link.identity in self._state.identities:
                    continue
                self._state.identities.add(link.identity)
                stamped = (
                    link if link.created_at else dataclasses.replace(link, created_at=utcnow())
                )
                self._state.links.append(stamped)
                added += 1
            return added

    def links(
        self,
        *,
        dataset: tuple[str, int | None] | None = None,
        model: tuple[str, int | None] | None = None,
        run_id: str | None = None,
    ) -> list[DatasetLink]:
        with self._state.lock:
            return select_links(self._state.links, dataset=dataset, model=model, run_id=run_id)

    def close(self) -> None:
        pass
