"""``DatasetStore``: the contract a backend implements to keep datasets and lineage.

Separate from the ``Tracker`` and the ``ExperimentStore``. A plugin registers a
factory for its tracker's URI scheme (``registry.add_dataset_store(scheme,
factory)``); the facade calls ``factory(tracker)``. Dataset bytes (Parquet) live in
the artifact store, content-addressed; the store keeps the metadata. A backend that
registers none lacks datasets: ``Umlaut.track_dataset`` then raises
``BackendNotFoundError`` naming the schemes that have them.
:class:`umlaut_core.testing.DatasetStoreTests` checks this contract;
:mod:`umlaut_core.datasets.memory` is its executable statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..protocols import Capability
from .records import DatasetDraft, DatasetInfo, DatasetLink, DatasetVersion

__all__ = ["DatasetStore"]


@runtime_checkable
class DatasetStore(Protocol):
    """Dataset versions and the lineage links that use them.

    Contract:

    * ``register_dataset`` is atomic: it assigns the next number for the name (1, 2,
      3 … gap-free, also under concurrent writers) and returns the version with
      ``created=True``; if the name already has a version with the same digest it
      returns that one with ``created=False`` and writes nothing. Identity is per
      name: the same digest under another name is a new dataset.
    * ``get_dataset`` returns the version asked for, or the newest; it raises
      ``DatasetNotFoundError`` listing the names (or versions) that exist.
    * Every field of the draft, column profiles included, is returned equal (profile
      values are JSON: numbers, strings, None; NaN never appears in a profile).
    * ``add_links`` is idempotent per link identity (see ``DatasetLink``); a link to
      a dataset version the store does not hold raises ``DatasetNotFoundError`` and
      adds nothing of the batch.
    * ``links`` returns the links matching every given filter, oldest first.
    * Safe from many threads; raises only ``UmlautError`` subclasses.
    """

    uri: str
    capabilities: frozenset[Capability]

    def find_dataset(self, name: str, digest: str) -> DatasetVersion | None:
        """The version of ``name`` with this digest, or None."""
        ...

    def register_dataset(self, draft: DatasetDraft) -> DatasetVersion:
        """Register a new version (or return the existing one with this digest)."""
        ...

    def get_dataset(self, name: str, version: int | None = None) -> DatasetVersion:
        """One version (the newest when ``version`` is None)."""
        ...

    def list_datasets(self) -> list[DatasetInfo]:
        """Every dataset name with its newest version, sorted by name."""
        ...

    def list_dataset_versions(self, name: str) -> list[DatasetVersion]:
        """Every version of ``name``, oldest first; ``DatasetNotFoundError`` if none."""
        ...

    def add_links(self, links: Sequence[DatasetLink]) -> int:
        """Record lineage links; return how many were new."""
        ...

    def links(
        self,
        *,
        dataset: tuple[str, int | None] | None = None,
        model: tuple[str, int | None] | None = None,
        run_id: str | None = None,
    ) -> list[DatasetLink]:
        """Links of a dataset (any version when None), of a model version (any when
        None), or of a training run."""
        ...

    def close(self) -> None:
        """Release what the store opened itself (not the tracker's connections)."""
        ...
