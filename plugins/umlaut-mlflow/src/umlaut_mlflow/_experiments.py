"""``MlflowExperimentStore``: training runs as native MLflow runs and experiments.

Where things live is ``_run_layout``; keys and values past MLflow's limits are
``_run_values``; metric summaries ``_run_metrics``; what a search asks the server
``_run_search``; finding runs by umlaut id ``_run_index``; applying writes
``_run_writes``. The store shares its tracker's client, REST session, error
mapping and artifact root, so it opens nothing but a scratch folder.

Audit records (``_audit``) are MLflow runs too, tagged ``umlaut.kind = audit`` in
the experiments ``umlaut/<model>``; training runs are tagged ``umlaut.kind =
training`` and every query of either side filters on its own kind, so neither
ever shows up in the other's results, whatever the experiments are called.
"""

from __future__ import annotations

import posixpath
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from umlaut_core.exceptions import ArtifactError, ConfigurationError, TrainingRunNotFoundError
from umlaut_core.experiments.filters import RunSearch, select_training_runs
from umlaut_core.experiments.records import Experiment, MetricPoint, RunPage, TrainingRun
from umlaut_core.experiments.writes import RunWrite
from umlaut_core.protocols import Capability

from . import _codec as codec
from ._run_index import RunIndex
from ._run_layout import decode_run
from ._run_metrics import read_history, sorted_points
from ._run_search import server_filter
from ._run_values import encode_key
from ._run_writes import RunWriter
from ._tracker import MlflowTracker

__all__ = ["MlflowExperimentStore"]


class MlflowExperimentStore:
    """The ``ExperimentStore`` of an :class:`MlflowTracker` (``mlflow+…`` URIs).

    Searches fetch every training run that the server-side part of the filter lets
    through and finish filtering, ordering and paging here, with the reference
    semantics: exact, and quick enough for the few thousand runs an MLflow
    experiment usually holds.
    """

    capabilities: frozenset[Capability] = frozenset({Capability.RUN_ARTIFACTS})

    def __init__(self, tracker: Any) -> None:
        if not isinstance(tracker, MlflowTracker):
            raise ConfigurationError(
                f"the MLflow experiment store needs an MlflowTracker, not {type(tracker).__name__}"
            )
        self._t = tracker
        self.uri = tracker.uri
        self._index = RunIndex(tracker)
        self._writer = RunWriter(tracker, self._index)
        self._tmp = Path(tempfile.mkdtemp(prefix="umlaut-mlflow-runs-"))

    def __repr__(self) -> str:
        return f"MlflowExperimentStore({self.uri!r})"

    def write(self, writes: Sequence[RunWrite]) -> None:
        self._writer.write(writes)

    # -- reading --------------------------------------------------------------------

    def _loader(self, mlflow_id: str) -> Callable[[str], str]:
        """Reads a value that was too big for tags (a run artifact)."""

        def load(path: str) -> str:
            dest = Path(tempfile.mkdtemp(dir=self._tmp))
            try:
                local = self._t._client.download_artifacts(mlflow_id, path, str(dest))
                return Path(local).read_text(encoding="utf-8")
            finally:
                shutil.rmtree(dest, ignore_errors=True)

        return load

    def _decode(self, run: Any) -> TrainingRun:
        return decode_run(run, self._loader(run.info.run_id))

    def get_run(self, run_id: str) -> TrainingRun:
        with self._t._errors(f"reading training run {run_id!r}"):
            return self._decode(self._index.fetch(run_id))

    def search_runs(self, search: RunSearch) -> RunPage:
        runs: list[TrainingRun] = []
        with self._t._errors("searching training runs"):
            exp_ids = self._index.experiment_ids(search.experiments)
            if exp_ids:
                flt = server_filter(search.where)
                runs = [self._decode(r) for r in self._t._search(exp_ids, flt, order_by=[])]
        page, token = select_training_runs(runs, search)
        return RunPage(page, token)

    def metric_history(self, run_id: str, key: str) -> Iterator[MetricPoint]:
        """MLflow returns a history by time, not by step: it is read whole (in pages
        of 25,000) before the first point is yielded."""
        with self._t._errors(f"reading training run {run_id!r}"):
            mlflow_id = str(self._index.fetch(run_id).info.run_id)
        return self._history(run_id, mlflow_id, key)

    def _history(self, run_id: str, mlflow_id: str, key: str) -> Iterator[MetricPoint]:
        with self._t._errors(
            f"reading the history of {key!r} in training run {run_id!r}",
            not_found=lambda: TrainingRunNotFoundError(f"no training run {run_id!r} in {self.uri}"),
        ):
            points = read_history(self._t._store, mlflow_id, encode_key(key, {}))
        yield from sorted_points(key, points)

    def list_experiments(self) -> list[Experiment]:
        with self._t._errors("listing experiments"):
            exps = self._index.training_experiments()
        out = [
            Experiment(e.name, codec.from_ms(e.creation_time), str(e.experiment_id)) for e in exps
        ]
        return sorted(out, key=lambda e: e.name)

    # -- artifacts ------------------------------------------------------------------

    def put_artifact(self, run_id: str, path: str, data: bytes) -> str:
        """Upload to the run's MLflow artifact repository (so the UI lists it)."""
        clean = posixpath.normpath(path.replace("\\", "/")) if path else ""
        if not clean or clean.startswith(("/", "..")) or clean == ".":
            raise ConfigurationError(
                f"artifact path {path!r} must be relative and stay inside the run, "
                f"e.g. 'plots/loss.png'"
            )
        with self._t._errors(f"storing artifact {clean!r} of training run {run_id!r}"):
            try:
                run = self._index.fetch(run_id)
            except TrainingRunNotFoundError as exc:
                # MLflow keeps artifacts per MLflow run, which RunStarted creates.
                raise TrainingRunNotFoundError(
                    f"{exc}: an artifact goes into the MLflow run, so the run's "
                    f"RunStarted must reach MLflow first (flush its writes)"
                ) from exc
            folder, _, name = clean.rpartition("/")
            dest = Path(tempfile.mkdtemp(dir=self._tmp))
            try:
                (dest / name).write_bytes(data)
                self._t._client.log_artifact(run.info.run_id, str(dest / name), folder or None)
            finally:
                shutil.rmtree(dest, ignore_errors=True)
        return f"{run.info.artifact_uri.rstrip('/')}/{clean}"

    def get_artifact(self, uri: str) -> bytes:
        dest = Path(tempfile.mkdtemp(dir=self._tmp))
        try:
            with self._t._errors(
                f"reading artifact {uri}",
                not_found=lambda: ArtifactError(f"no artifact at {uri} ({self.uri})"),
            ):
                try:
                    local = self._t._mlflow.artifacts.download_artifacts(
                        artifact_uri=uri,
                        dst_path=str(dest),
                        tracking_uri=self._t._target.tracking_uri,
                    )
                except FileNotFoundError as exc:  # a local artifact root
                    raise ArtifactError(f"no artifact at {uri} ({self.uri})") from exc
            return Path(local).read_bytes()
        except OSError as exc:
            raise ArtifactError(f"the artifact at {uri} is unreadable: {exc}") from exc
        finally:
            shutil.rmtree(dest, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
