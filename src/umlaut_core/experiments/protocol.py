"""``ExperimentStore``: the contract a backend implements to keep training runs.

It is separate from :class:`~umlaut_core.Tracker` (versions, stages, audit records),
so neither grows into a god object. A plugin registers a factory for its tracker's
URI scheme::

    @hookimpl
    def umlaut_register_backends(registry):
        registry.add_tracker("mything", MyTracker)
        registry.add_experiment_store("mything", MyExperimentStore)

The facade calls ``factory(tracker)`` with the tracker it opened for that scheme,
so the store can share its connections. A backend that registers none lacks
experiments: ``Umlaut.start_run`` then raises ``BackendNotFoundError`` naming the
schemes that have them. :class:`umlaut_core.testing.ExperimentStoreTests` checks
this contract; :mod:`umlaut_core.experiments.memory` is its executable statement.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from ..protocols import Capability
from .filters import RunSearch
from .records import Experiment, MetricPoint, RunPage, TrainingRun
from .writes import RunWrite

__all__ = ["ArtifactKeepingStore", "ExperimentStore"]


@runtime_checkable
class ExperimentStore(Protocol):
    """Training runs: their params, metrics, tags, artifacts and lineage.

    Attributes: ``uri`` (safe to print, as a tracker's) and ``capabilities``, a class
    attribute; ``Capability.RUN_ARTIFACTS`` means the store keeps run artifacts
    itself (:class:`ArtifactKeepingStore`), else the facade puts them in the
    configured artifact store and records them with an ``ArtifactLogged`` write.

    Contract:

    * ``write`` applies the writes in order, idempotently (see
      :mod:`umlaut_core.experiments.writes` for each kind's rule), in one transaction
      where the backend has them. A write to a run the store does not hold (other
      than ``RunStarted``) raises ``TrainingRunNotFoundError`` and writes nothing
      of the batch that follows it: a shipper retries it later (writes of one run
      may arrive out of order when several processes ship one spool).
    * Metric summaries (last, min, max, count) are updated as points arrive, so
      ``get_run`` and ``search_runs`` never read a metric's history.
    * NaN, +inf and -inf are stored and returned as themselves.
    * Params and ``environment`` values are JSON values of any size, returned equal
      (a backend with a size limit stores them losslessly some other way).
    * Every method is safe from many threads and raises only ``UmlautError``
      subclasses; ``uri`` and messages never hold a password.
    """

    uri: str
    capabilities: frozenset[Capability]

    def write(self, writes: Sequence[RunWrite]) -> None:
        """Apply the writes (idempotent; see the module docs of ``writes``)."""
        ...

    def get_run(self, run_id: str) -> TrainingRun:
        """One training run with its params, tags, metric summaries, artifacts and
        linked versions; ``TrainingRunNotFoundError`` if the store has no such run."""
        ...

    def search_runs(self, search: RunSearch) -> RunPage:
        """Runs matching ``search``, ordered and paged exactly as
        :func:`umlaut_core.experiments.filters.select_training_runs` does. Page tokens
        are the store's own; one is only ever given back to the same store."""
        ...

    def metric_history(self, run_id: str, key: str) -> Iterator[MetricPoint]:
        """Every point of one metric, by ``step``, then ``timestamp_ms``, then
        ``point_id``; streamed, so a million points need not be held at once.
        An unknown run raises ``TrainingRunNotFoundError``; an unknown key yields
        nothing."""
        ...

    def list_experiments(self) -> list[Experiment]:
        """Every experiment that holds a run, sorted by name."""
        ...

    def close(self) -> None:
        """Release what the store opened itself (not the tracker's connections)."""
        ...


@runtime_checkable
class ArtifactKeepingStore(ExperimentStore, Protocol):
    """What a store declaring ``Capability.RUN_ARTIFACTS`` adds."""

    def put_artifact(self, run_id: str, path: str, data: bytes) -> str:
        """Store ``data`` as the run's artifact ``path``; return its URI. The facade
        then records it with an ``ArtifactLogged`` write as for any store."""
        ...

    def get_artifact(self, uri: str) -> bytes:
        """The bytes of an artifact this store put."""
        ...
