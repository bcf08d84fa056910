"""The facade's training-run methods (``Umlaut.start_run`` and friends).

A mixin of :class:`~umlaut_core.Umlaut` holding only argument handling and
delegation: the logic lives in :mod:`umlaut_core.experiments` (``TrainingRuns``
owns the store, the writer and the open runs), so ``_api.py`` stays about versions
and audit records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .exceptions import ConfigurationError, NotFoundError
from .records import RESERVED_TAG_PREFIX, AuditRecord, ModelVersion, RunQuery

if TYPE_CHECKING:
    from .datasets.records import DatasetLink
    from .experiments.active import ActiveTrainingRun
    from .experiments.records import Experiment, MetricPoint, RunPage, TrainingRun
    from .experiments.runs import Parent, TrainingRuns
    from .protocols import Tracker

__all__ = ["TRAINING_RUN_TAG", "Lineage", "TrainingApi"]


def _active_run_class() -> type[ActiveTrainingRun]:
    from .experiments.active import ActiveTrainingRun

    return ActiveTrainingRun


#: The version tag naming the training run that produced the version.
TRAINING_RUN_TAG = RESERVED_TAG_PREFIX + "training_run_id"


@dataclass(frozen=True, slots=True)
class Lineage:
    """From one audit record: the version that answered, the run that trained it and
    the data it learned from."""

    record: AuditRecord
    version: ModelVersion
    training_run: TrainingRun | None
    #: The datasets the version was tracked with and those its run logged as inputs.
    datasets: list[DatasetLink] = field(default_factory=list)


class TrainingApi:
    """Training runs: MLflow Tracking's habits (``start_run``, ``log_param``,
    ``log_metric``, ``set_tag``, ``log_artifact``) without its global state."""

    _training: TrainingRuns
    _tracker: Tracker
    settings: Any

    def _check_open(self) -> None:  # provided by Umlaut
        raise NotImplementedError

    def get_version(
        self, model_name: str, *, version: int | None = None, stage: str | None = None
    ) -> ModelVersion:  # provided by Umlaut
        raise NotImplementedError

    def _training_run_id(self, run: ActiveTrainingRun | TrainingRun | str | None) -> str | None:
        """The id of an existing training run, for lineage (checked: a typo'd id would
        link a version to nothing)."""
        if run is None:
            return None
        if isinstance(run, _active_run_class()):
            return run.run_id
        from .experiments.records import TrainingRun

        if isinstance(run, TrainingRun):  # e.g. the best run of a search
            run = run.run_id
        if not isinstance(run, str):
            raise ConfigurationError(
                f"run must be a training run (open or found) or its id, not {run!r:.60}"
            )
        self._training.flush(self.settings.exit_flush_timeout)
        return self._training.get(run, detect_killed=False).run_id

    def start_run(
        self,
        experiment: str | None = None,
        *,
        name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        parent: Parent = "auto",
        run_id: str | None = None,
    ) -> ActiveTrainingRun:
        """Open a training run and make it the current run of this context.

        Use it as ``with um.start_run("iris") as run:``; the run ends FINISHED, or
        FAILED when an exception escapes (which is re-raised unchanged).

        :param experiment: the group it belongs to (created on first use); default:
            the parent's, else ``UMLAUT_EXPERIMENT``, else ``"Default"``.
        :param parent: ``"auto"`` (default): the current run of this context (threads
            with a copied context and asyncio tasks included), else the run id in
            ``UMLAUT_PARENT_RUN_ID`` (a child process, see
            :meth:`~umlaut_core.experiments.active.ActiveTrainingRun.child_env`),
            else none. ``None``: a root run. A run or a run id: that parent.
        :param run_id: resume this existing run instead of starting one: its params
            stay fixed, automatic steps continue after the last ones logged.
        """
        self._check_open()
        return self._training.start(experiment, name=name, tags=tags, parent=parent, run_id=run_id)

    def get_training_run(self, run_id: str) -> TrainingRun:
        """One training run with its params, tags, metric summaries, artifacts and the
        versions it produced; ``TrainingRunNotFoundError`` if there is none. A run
        still RUNNING whose process died is marked KILLED on the way."""
        self._check_open()
        return self._training.get(run_id)

    def search_training_runs(
        self,
        experiment: str | Sequence[str] | None = None,
        *,
        filter: str | None = None,
        order_by: str | None = None,
        limit: int = 100,
        page_token: str | None = None,
    ) -> RunPage:
        """Training runs matching ``filter``, in ``order_by`` order, one page at a time.

        ``filter`` and ``order_by`` use the language of
        :mod:`umlaut_core.experiments.filters` (AND, OR, parentheses; params, tags,
        metric summaries ``metrics.loss.min``, attributes). Pass the page's
        ``next_page_token`` as ``page_token`` for the next page; ``page.to_pandas()``
        gives a DataFrame when pandas is installed.
        """
        self._check_open()
        return self._training.search(experiment, filter, order_by, limit, page_token)

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """Every point of one metric of a run, by step then time."""
        self._check_open()
        return self._training.metric_history(run_id, key)

    def list_experiments(self) -> list[Experiment]:
        """Every experiment holding a training run, by name."""
        self._check_open()
        return list(self._training.store.list_experiments())

    def load_artifact(self, run_id: str, path: str) -> bytes:
        """The bytes of a run's artifact, checked against the sha256 logged with it."""
        self._check_open()
        return self._training.load_artifact(run_id, path)

    def lineage(self, record_id: str | None = None, *, reference_id: str | None = None) -> Lineage:
        """From an audit record (by id, or the newest with ``reference_id``): the
        version that answered and the training run that produced it (None when the
        version was tracked without ``run=``)."""
        self._check_open()
        if (record_id is None) == (reference_id is None):
            raise ConfigurationError("lineage takes exactly one of record_id or reference_id")
        if record_id is not None:
            # Ids sort by time and have one length: "<id>0" sorts right after it.
            hits = self._tracker.query_runs(RunQuery(before=f"{record_id}0", limit=1))
            hits = [r for r in hits if r.id == record_id]
        else:
            hits = self._tracker.query_runs(RunQuery(reference_id=reference_id, limit=1))
        if not hits:
            wanted = f"id {record_id!r}" if record_id else f"reference_id {reference_id!r}"
            raise NotFoundError(f"no audit record with {wanted} in {self._tracker.uri}")
        record = hits[0]
        version = self.get_version(record.model_name, version=record.version)
        run_id = version.tags.get(TRAINING_RUN_TAG)
        run = self._training.get(run_id) if run_id else None
        return Lineage(record, version, run, self._lineage_datasets(version, run_id))

    def _lineage_datasets(self, version: ModelVersion, run_id: str | None) -> list[DatasetLink]:
        from .exceptions import BackendNotFoundError

        try:
            store = self._datasets  # type: ignore[attr-defined]
        except BackendNotFoundError:  # a backend without datasets: no data lineage
            return []
        links: list[DatasetLink] = store.links(model=(version.name, version.version))
        if run_id is not None:
            links += store.links(run_id=run_id)
        return links
