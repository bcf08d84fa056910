"""``TrainingRuns``: the facade's part for training runs, composed into ``Umlaut``.

It opens the backend's experiment store on first use (a backend without one raises
``BackendNotFoundError`` naming the schemes that have one), owns the writer that
buffers a process's writes, keeps the runs open in this process, and answers reads,
marking runs whose process died as KILLED on the way (see :meth:`get`).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import datetime as dt
import gc
import hashlib
import os
import socket
import sys
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ..clock import current_user, utcnow
from ..exceptions import ConfigurationError, IntegrityError, TrainingRunNotFoundError
from ..ids import new_run_id
from ..naming import check_text
from ..protocols import Capability
from .active import ActiveTrainingRun
from .context import current_run
from .environment import process_alive, run_environment
from .filters import RunSearch, parse_filter, parse_order_by
from .records import MetricPoint, RunArtifact, RunPage, RunStatus, TrainingRun
from .values import check_key, check_run_tags
from .writer import HEARTBEAT_S, TrainingWriter
from .writes import ArtifactLogged, RunEnded, RunStarted, RunWrite, VersionLinked, to_json

if TYPE_CHECKING:
    from .._api import Umlaut

__all__ = ["DEFAULT_EXPERIMENT", "TrainingRuns"]

#: The experiment of a run that names none (MLflow's default experiment's name).
DEFAULT_EXPERIMENT = "Default"
#: A run on another host whose heartbeat is older than this is taken for dead.
STALE_AFTER_S = 10 * HEARTBEAT_S
_live: weakref.WeakSet[TrainingRuns] = weakref.WeakSet()

Parent = ActiveTrainingRun | str | None | Literal["auto"]


class TrainingRuns:
    """Training runs of one facade: start, log (through the writer), read."""

    def __init__(self, umlaut: Umlaut, open_store: Callable[[], Any]) -> None:
        self.umlaut = umlaut
        self._open_store = open_store
        self._store: Any = None
        self._writer: TrainingWriter | None = None
        self._lock = threading.Lock()
        self._open: dict[str, ActiveTrainingRun] = {}
        self.flush_timeout = umlaut.settings.exit_flush_timeout
        _live.add(self)

    # -- plumbing ----------------------------------------------------------------------

    @property
    def store(self) -> Any:
        """The backend's experiment store (opened on first use)."""
        if self._store is None:
            with self._lock:
                if self._store is None:
                    store = self._open_store()
                    delivery = self.umlaut._delivery
                    delivery.use_experiment_store(lambda: store)
                    self._store = store
        return self._store

    @property
    def writer(self) -> TrainingWriter:
        if self._writer is None:
            store = self.store  # fail here, at start_run, if the backend has none
            with self._lock:
                if self._writer is None:
                    self._writer = TrainingWriter(
                        self._deliver_to(store), exit_timeout_s=self.flush_timeout
                    )
        return self._writer

    def _deliver_to(self, store: Any) -> Callable[[list[RunWrite]], None]:
        delivery = self.umlaut._delivery
        if delivery.mode == "spooled":
            # Remote stores: the durable spool, shipped with the audit records.
            return lambda batch: delivery.spool_writes([to_json(w) for w in batch])
        return store.write  # type: ignore[no-any-return]

    def flush(self, timeout: float | None = None) -> bool:
        if self._writer is None:
            return True
        return self._writer.flush(timeout)

    def close(self) -> None:
        self.end_open_runs()
        if self._writer is not None:
            self._writer.close()
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
        _live.discard(self)

    def end_open_runs(self) -> None:
        """End the runs still open here: FINISHED, or FAILED when the interpreter is
        going down with an uncaught exception (what MLflow does at exit, too)."""
        failing = getattr(sys, "last_exc", None) or getattr(sys, "last_value", None)
        for run in list(self._open.values()):
            if failing is not None:
                run.end(RunStatus.FAILED, error=failing)
            else:
                run.end()

    # -- starting ----------------------------------------------------------------------

    def start(
        self,
        experiment: str | None = None,
        *,
        name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        parent: Parent = "auto",
        run_id: str | None = None,
    ) -> ActiveTrainingRun:
        if run_id is not None:
            return self._resume(run_id)
        name = check_text(name, "run name", 250)
        clean_tags = check_run_tags(tags)
        parent_id, parent_experiment = self._parent(parent)
        experiment = experiment or parent_experiment or os.environ.get("UMLAUT_EXPERIMENT")
        experiment = check_key(experiment or DEFAULT_EXPERIMENT, "experiment")
        env = run_environment()
        writer = self.writer
        run = ActiveTrainingRun(self, new_run_id(), experiment, name, parent_id)
        writer.put(
            RunStarted(
                run_id=run.run_id,
                experiment=experiment,
                name=name,
                started_at=utcnow(),
                parent_id=parent_id,
                user=current_user(),
                host=socket.gethostname(),
                tags=clean_tags,
                environment=env,
            )
        )
        self._opened(run)
        return run

    def _parent(self, parent: Parent) -> tuple[str | None, str | None]:
        if parent == "auto":
            here = current_run()
            if here is not None and here._runs is self:
                return here.run_id, here.experiment
            from_env = os.environ.get("UMLAUT_PARENT_RUN_ID")
            return (from_env, None) if from_env else (None, None)
        if parent is None:
            return None, None
        if isinstance(parent, ActiveTrainingRun):
            return parent.run_id, parent.experiment
        if isinstance(parent, str) and parent:
            return parent, None
        raise ConfigurationError(
            f"parent must be a run, a run id, None or 'auto', not {parent!r:.60}"
        )

    def _resume(self, run_id: str) -> ActiveTrainingRun:
        self.flush(self.flush_timeout)
        known = self.get(run_id, detect_killed=False)
        steps = {k: m.last_step for k, m in known.metrics.items()}
        run = ActiveTrainingRun(
            self, known.run_id, known.experiment, known.name, known.parent_id,
            params=known.params, steps=steps,
        )  # fmt: skip
        self.writer  # noqa: B018  (started now: the resumed run beats from here on)
        self._opened(run)
        return run

    def _opened(self, run: ActiveTrainingRun) -> None:
        self._open[run.run_id] = run
        self.writer.opened(run.run_id)
        run._make_current()

    def ended(self, run: ActiveTrainingRun, *, wait: bool = True) -> None:
        """Called by ``run.end()``, after its RunEnded write was queued."""
        self._open.pop(run.run_id, None)
        writer = self.writer
        writer.forget(run.run_id)
        if not wait or writer.failing:
            # The store is refusing writes: waiting would only stall every step end
            # (and, in an async step, the event loop); the writes are retried anyway.
            return
        writer.flush(self.flush_timeout)
        if run.parent_id is None and self.umlaut._delivery.mode == "spooled":
            # A pipeline's end is when its results are wanted: wait (bounded) for the
            # shipper too. Children only wait for their writes to reach the spool.
            self.umlaut._delivery.flush(self.flush_timeout)

    # -- artifacts and lineage ---------------------------------------------------------

    def put_artifact(self, run_id: str, path: str, data: bytes) -> RunArtifact:
        artifact = self.store_artifact(run_id, path, data)
        self.writer.put(ArtifactLogged(run_id, path, artifact.uri, artifact.size, artifact.sha256))
        return artifact

    def in_store(self) -> None:
        """Wait (bounded) until what was logged so far is in the store itself, not
        only queued or spooled: for the calls that write to the store directly
        (artifacts kept by the store, dataset inputs), whose run must exist there."""
        self.flush(self.flush_timeout)
        delivery = self.umlaut._delivery
        if delivery.mode == "spooled":
            delivery.flush(self.flush_timeout)

    def store_artifact(self, run_id: str, path: str, data: bytes) -> RunArtifact:
        """Put the bytes where this backend keeps run artifacts (nothing recorded)."""
        sha = hashlib.sha256(data).hexdigest()
        store = self.store
        if Capability.RUN_ARTIFACTS in getattr(store, "capabilities", frozenset()):
            if run_id in self._open:
                self.in_store()  # the store files them under the run: it must be there
            uri = store.put_artifact(run_id, path, data)
        else:
            artifacts = self.umlaut.artifact_store
            if artifacts is None:
                raise ConfigurationError(
                    f"the experiment store {store.uri} keeps no artifacts and no "
                    f"artifact store is configured; set artifact_uri"
                )
            uri = artifacts.put(f"training/{sha[:2]}/{sha}", data)
        return RunArtifact(path, uri, len(data), sha)

    def load_artifact(self, run_id: str, path: str) -> bytes:
        run = self.get(run_id, detect_killed=False)
        for artifact in run.artifacts:
            if artifact.path == path:
                break
        else:
            raise TrainingRunNotFoundError(
                f"training run {run_id} has no artifact {path!r}; it has "
                f"{[a.path for a in run.artifacts][:20]}"
            )
        store = self.store
        if Capability.RUN_ARTIFACTS in getattr(store, "capabilities", frozenset()):
            data: bytes = store.get_artifact(artifact.uri)
        else:
            artifacts = self.umlaut.artifact_store
            assert artifacts is not None
            data = artifacts.get(artifact.uri)
        if hashlib.sha256(data).hexdigest() != artifact.sha256:
            raise IntegrityError(
                f"artifact {path!r} of training run {run_id} at {artifact.uri} does not "
                f"match the sha256 recorded when it was logged"
            )
        return data

    def link_version(self, run_id: str, model_name: str, version: int) -> None:
        self.writer.put(VersionLinked(run_id, model_name, version))

    # -- reading -----------------------------------------------------------------------

    def get(self, run_id: str, *, detect_killed: bool = True) -> TrainingRun:
        if not isinstance(run_id, str) or not run_id:
            raise ConfigurationError(f"a training run id is a non-empty string, not {run_id!r:.60}")
        run: TrainingRun = self.store.get_run(run_id)
        return self._killed(run) if detect_killed else run

    def search(
        self,
        experiment: str | Sequence[str] | None = None,
        filter: str | None = None,
        order_by: str | None = None,
        limit: int = 100,
        page_token: str | None = None,
    ) -> RunPage:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ConfigurationError(f"limit must be an integer from 1 to 10000, not {limit!r}")
        names = (experiment,) if isinstance(experiment, str) else tuple(experiment or ())
        search = RunSearch(
            experiments=tuple(check_key(n, "experiment") for n in names),
            where=parse_filter(filter),
            order_by=parse_order_by(order_by),
            limit=limit,
            page_token=page_token,
        )
        page: RunPage = self.store.search_runs(search)
        runs = [self._killed(r) for r in page.runs]
        return RunPage(runs, page.next_page_token)

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        points = self.store.metric_history(run_id, check_key(key, "metric"))
        # A million fresh tuples would trigger the cyclic collector again and again,
        # each pass scanning them all (more than the reading itself); none can be
        # part of a cycle, so it is paused while the list is built.
        paused = gc.isenabled()
        gc.disable()
        try:
            return list(points)
        finally:
            if paused:
                gc.enable()

    def _killed(self, run: TrainingRun) -> TrainingRun:
        """``run``, marked KILLED first if it is RUNNING but its process is gone:
        on this host, the pid (with its start time) no longer runs; elsewhere, no
        heartbeat for ``STALE_AFTER_S``."""
        if run.status is not RunStatus.RUNNING or run.run_id in self._open:
            return run
        env = run.environment
        now = utcnow()
        if env.get("host") == socket.gethostname() and isinstance(env.get("pid"), int):
            dead = not process_alive(env["pid"], env.get("process_started"))
        else:
            beat = run.heartbeat_at or run.started_at
            dead = (now - beat) > dt.timedelta(seconds=STALE_AFTER_S)
        if not dead:
            return run
        ended = run.heartbeat_at or now
        note = "the process running it ended without ending the run"
        self.store.write([RunEnded(run.run_id, RunStatus.KILLED, ended, note)])
        return dataclasses.replace(run, status=RunStatus.KILLED, ended_at=ended, error=note)


@atexit.register
def _end_at_exit() -> None:
    # Registered after the writer's and the delivery's exit hooks (this module imports
    # them first), so it runs before both: runs end, then their writes are flushed.
    for runs in list(_live):
        with contextlib.suppress(Exception):
            runs.end_open_runs()
