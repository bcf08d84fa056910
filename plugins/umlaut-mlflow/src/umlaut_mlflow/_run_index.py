"""Finding training runs in MLflow: experiments, umlaut id → MLflow id, write state.

umlaut makes run ids on the client; MLflow makes its own. The umlaut id is the
MLflow run's tag ``umlaut.run_id``, found with a search over the experiments tagged
``umlaut.training`` and then cached in process (an LRU of ids, and of the state
writes need: which params a run holds, its metric summaries, its heartbeat).

That state assumes one process writes a run at a time, as the spool's shipper
does: MLflow has no compare-and-set, so two processes writing metrics of one run at
once could each overwrite the other's summary. A failed write drops the state of
its run (``forget``), so a retry starts again from what MLflow holds.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from umlaut_core.exceptions import BackendError, TrainingRunNotFoundError

from ._errors import error_code
from ._filters import PAGE, quote
from ._run_layout import TRAINING, T, summaries
from ._run_metrics import Summary
from ._run_values import param_key

__all__ = ["RunIndex", "RunState", "state_of"]

#: Runs whose MLflow id / write state this process remembers.
_ID_CACHE = 100_000
_STATE_CACHE = 1_000


@dataclass
class RunState:
    """What writes to one run need to know (see the module docstring)."""

    mlflow_id: str
    params: set[str]
    summaries: dict[str, Summary]
    heartbeat: str | None
    links: set[str]
    parent_pending: bool
    #: Identities of a key's points in MLflow, kept after a recount (``_run_metrics``).
    history: dict[str, set[Any]] = field(default_factory=dict)


def state_of(run: Any) -> RunState:
    """The write state of an MLflow run as MLflow holds it now."""
    tags = dict(run.data.tags)
    return RunState(
        mlflow_id=run.info.run_id,
        params={param_key(k, tags) for k in run.data.params},
        summaries=summaries(tags),
        heartbeat=tags.get(T.HEARTBEAT),
        links={t for t in tags if t.startswith(T.LINKED)},
        parent_pending=T.PARENT in tags and T.PARENT_RUN not in tags,
    )


class RunIndex:
    """Experiments and runs of one tracker, and what this process knows of them."""

    def __init__(self, tracker: Any) -> None:
        self._t = tracker
        self._guard = threading.Lock()
        # Writes to one run are serialised; a fixed set of locks bounds the memory.
        self._locks = [threading.RLock() for _ in range(64)]
        self._ids: OrderedDict[str, str] = OrderedDict()
        self._states: OrderedDict[str, RunState] = OrderedDict()
        self._experiments: dict[str, str] = {}

    def lock(self, run_id: str) -> threading.RLock:
        return self._locks[hash(run_id) % len(self._locks)]

    def known(self, run_id: str) -> str | None:
        """The MLflow id of a run this process has seen complete, if it remembers."""
        with self._guard:
            return self._ids.get(run_id)

    def remember(self, run_id: str, state: RunState) -> RunState:
        with self._guard:
            self._ids[run_id] = state.mlflow_id
            self._ids.move_to_end(run_id)
            self._states[run_id] = state
            self._states.move_to_end(run_id)
            while len(self._ids) > _ID_CACHE:
                self._ids.popitem(last=False)
            while len(self._states) > _STATE_CACHE:
                self._states.popitem(last=False)
        return state

    def forget(self, run_id: str) -> None:
        with self._guard:
            self._states.pop(run_id, None)

    # -- experiments ----------------------------------------------------------------

    def experiment(self, name: str) -> str:
        """The id of the experiment ``name``, created (and tagged) if need be."""
        with self._guard:
            cached = self._experiments.get(name)
        if cached is not None:
            return cached
        client = self._t._client
        exp = client.get_experiment_by_name(name)
        if exp is not None and exp.lifecycle_stage != "active":
            raise BackendError(
                f"MLflow at {self._t._shown}: the experiment {name!r} is deleted; restore it "
                f"(mlflow experiments restore) or delete it for good (mlflow gc)"
            )
        if exp is None:
            try:
                exp_id = str(
                    client.create_experiment(
                        name, artifact_location=self._location(name), tags={T.EXPERIMENT_TAG: "1"}
                    )
                )
            except Exception as exc:
                if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                    raise
                return self.experiment(name)  # another process made it just now
        else:
            exp_id = str(exp.experiment_id)
            if (exp.tags or {}).get(T.EXPERIMENT_TAG) != "1":
                client.set_experiment_tag(exp_id, T.EXPERIMENT_TAG, "1")
        with self._guard:
            self._experiments[name] = exp_id
        return exp_id

    def _location(self, name: str) -> str | None:
        # As the tracker places its own experiments (beside a SQLite file, say).
        base = self._t._artifact_base
        if base is None:
            return None
        return f"{base.rstrip('/')}/{hashlib.sha256(name.encode()).hexdigest()[:20]}"

    def training_experiments(self) -> list[Any]:
        """Every MLflow experiment that holds training runs (one search)."""
        found: list[Any] = []
        token = None
        while True:
            page = self._t._client.search_experiments(
                filter_string=f"tags.`{T.EXPERIMENT_TAG}` = '1'", max_results=PAGE, page_token=token
            )
            found.extend(page)
            token = page.token
            if not token:
                break
        with self._guard:
            self._experiments.update({e.name: str(e.experiment_id) for e in found})
        return found

    def experiment_ids(self, names: tuple[str, ...]) -> list[str]:
        """Ids of the experiments holding training runs among ``names`` (all of
        them when empty), without creating any."""
        if not names:
            return [str(e.experiment_id) for e in self.training_experiments()]
        ids = set()
        for name in set(names):
            exp = self._t._client.get_experiment_by_name(name)
            if (
                exp is not None
                and exp.lifecycle_stage == "active"
                and (exp.tags or {}).get(T.EXPERIMENT_TAG) == "1"
            ):
                ids.add(str(exp.experiment_id))
        return sorted(ids)

    # -- runs -----------------------------------------------------------------------

    def find(self, run_id: str, exp_ids: list[str] | None = None) -> Any | None:
        """The MLflow run holding ``run_id`` (training or half-started), or None."""
        literal = quote(run_id)
        if literal is None:
            return None
        ids = self.experiment_ids(()) if exp_ids is None else exp_ids
        if not ids:
            return None
        flt = f"tags.`{T.RUN_ID}` = {literal}"
        runs = [r for r in self._t._search(ids, flt, order_by=[]) if r.data.tags.get(T.KIND)]
        # A training run wins over a half-made one (there is at most one of each).
        runs.sort(key=lambda r: r.data.tags.get(T.KIND) != TRAINING)
        return runs[0] if runs else None

    def fetch(self, run_id: str) -> Any:
        """The MLflow run of a training run, read now; TrainingRunNotFoundError."""
        mlflow_id = self.known(run_id)
        if mlflow_id is not None:
            try:
                run = self._t._client.get_run(mlflow_id)
                if run.info.lifecycle_stage == "active":
                    return run
            except Exception as exc:
                if error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
                    raise
            with self._guard:  # deleted in MLflow since: look again
                self._ids.pop(run_id, None)
                self._states.pop(run_id, None)
        run = self.find(run_id)
        if run is None or run.data.tags.get(T.KIND) != TRAINING:
            raise TrainingRunNotFoundError(f"no training run {run_id!r} in {self._t.uri}")
        return run

    def state(self, run_id: str) -> RunState:
        with self._guard:
            state = self._states.get(run_id)
        if state is not None:
            return state
        return self.remember(run_id, state_of(self.fetch(run_id)))

    def mlflow_id(self, run_id: str | None) -> str | None:
        """MLflow's id of a training run, or None when it has not arrived (yet)."""
        if run_id is None:
            return None
        cached = self.known(run_id)
        if cached is not None:
            return cached
        run = self.find(run_id)
        if run is None or run.data.tags.get(T.KIND) != TRAINING:
            return None
        return str(run.info.run_id)
