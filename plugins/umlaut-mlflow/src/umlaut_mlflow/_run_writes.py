"""Applying training-run writes to MLflow, idempotently (``writes.py`` has the rules).

MLflow has no transactions, so each write is laid out in an order that makes a
half-applied write safe to replay: what a later read depends on lands last (a
param's slots before the param, a metric's points before its summary, an ended
run's tags before its final status, a big ``RunStarted`` before its kind tag).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

from umlaut_core.experiments.records import MetricPoint, RunStatus
from umlaut_core.experiments.writes import (
    ArtifactLogged,
    Heartbeat,
    MetricsLogged,
    ParamsLogged,
    RunEnded,
    RunStarted,
    RunWrite,
    TagsSet,
    VersionLinked,
)

from . import _codec as codec
from ._errors import error_code
from ._run_index import RunIndex, RunState, state_of
from ._run_layout import STARTING, TRAINING, T, param_entries, start_tags, tag_entries
from ._run_metrics import (
    SUMMARY,
    Summary,
    dump_summary,
    fold,
    identity,
    read_history,
    recount,
)
from ._run_values import (
    Batch,
    batch_body,
    encode_key,
    key_hash,
    plan_batches,
    put_slot,
    slot_artifact,
)

__all__ = ["RunWriter"]

#: A key's history identities are kept after a recount only up to this many points.
_HISTORY_CACHE = 100_000


class RunWriter:
    """``ExperimentStore.write`` for one tracker."""

    def __init__(self, tracker: Any, index: RunIndex) -> None:
        self._t = tracker
        self._index = index

    def write(self, writes: Sequence[RunWrite]) -> None:
        index = self._index
        for w in _coalesce(writes):
            with self._t._errors(f"writing training run {w.run_id!r}"), index.lock(w.run_id):
                if isinstance(w, RunStarted):
                    self._start(w)
                    continue
                state = index.state(w.run_id)
                try:
                    self._apply(state, w)
                except BaseException:
                    index.forget(w.run_id)
                    raise

    # -- requests -------------------------------------------------------------------

    def _send(self, mlflow_id: str, batches: list[Batch]) -> None:
        """``log-batch`` requests: straight over the tracker's REST session where it
        has one (NaN and ±inf spelled as proto3 JSON spells them), else through
        MLflow's store."""
        rest = self._t._rest
        for b in batches:
            if rest is None:
                _store_batch(self._t._store, mlflow_id, b)
            else:
                rest._post("log-batch", batch_body(mlflow_id, b))

    def _send_tags(self, mlflow_id: str, tags: dict[str, str], artifacts: dict[str, str]) -> None:
        for path, text in artifacts.items():  # before the tags that point at them
            self._t._client.log_text(mlflow_id, text, path)
        self._send(mlflow_id, plan_batches(tags=tags.items()))

    def _put_slot(self, st: RunState, slot: str, text: str, **more: str) -> None:
        tags: dict[str, str] = {}
        spilled = put_slot(tags, slot, text)
        artifacts = {} if spilled is None else {slot_artifact(slot): spilled}
        self._send_tags(st.mlflow_id, {**tags, **more}, artifacts)

    # -- writes ---------------------------------------------------------------------

    def _start(self, w: RunStarted) -> None:
        index = self._index
        if index.known(w.run_id) is not None:
            return
        exp_id = index.experiment(w.experiment)
        found = index.find(w.run_id, [exp_id])
        if found is not None and found.data.tags.get(T.KIND) == TRAINING:
            index.remember(w.run_id, state_of(found))
            return
        parent = index.mlflow_id(w.parent_id)
        tags, artifacts = start_tags(w, parent)
        start_ms = codec.to_ms(w.started_at)
        name = w.name or ""  # MLflow then makes one up for the UI
        if found is None and not artifacts and len(plan_batches(tags=tags.items())) == 1:
            mlflow_id = self._t._create_run(exp_id, start_ms, {**tags, T.KIND: TRAINING}, name)
        else:
            # Too much for one request: invisible to searches until complete, and
            # completed by a replay if this process dies half-way.
            if found is None:
                first = {k: tags[k] for k in (T.RUN_ID, T.EXPERIMENT, T.STARTED)}
                mlflow_id = self._t._create_run(exp_id, start_ms, {**first, T.KIND: STARTING}, name)
            else:
                mlflow_id = found.info.run_id
            self._send_tags(mlflow_id, tags, artifacts)
            self._send_tags(mlflow_id, {T.KIND: TRAINING}, {})
        state = RunState(
            mlflow_id=mlflow_id,
            params=set(),
            summaries={},
            heartbeat=tags[T.HEARTBEAT],
            links=set(),
            parent_pending=w.parent_id is not None and parent is None,
        )
        index.remember(w.run_id, state)

    def _apply(self, st: RunState, w: RunWrite) -> None:
        if isinstance(w, ParamsLogged):
            self._log_params(st, dict(w.params))
        elif isinstance(w, MetricsLogged):
            self._log_metrics(st, w.points)
        elif isinstance(w, TagsSet):
            self._send_tags(st.mlflow_id, *tag_entries(w.tags))
        elif isinstance(w, RunEnded):
            self._end(st, w)
        elif isinstance(w, Heartbeat):
            if st.heartbeat is None or _utc(w.at) > _utc(dt.datetime.fromisoformat(st.heartbeat)):
                self._send_tags(st.mlflow_id, {T.HEARTBEAT: w.at.isoformat()}, {})
                st.heartbeat = w.at.isoformat()
        elif isinstance(w, ArtifactLogged):
            body = {"path": w.path, "uri": w.uri, "size": w.size, "sha256": w.sha256}
            self._put_slot(st, T.ARTIFACT + key_hash(w.path), codec.dumps(body))
        elif isinstance(w, VersionLinked):
            slot = T.LINKED + key_hash(f"{w.model_name}\x00{w.version}")
            if slot not in st.links:
                # The time orders a run's versions as they were linked.
                body = {"model": w.model_name, "version": w.version, "at": time.time_ns()}
                self._put_slot(st, slot, codec.dumps(body))
                st.links.add(slot)

    def _log_params(self, st: RunState, params: dict[str, Any]) -> None:
        """The first value of a param wins; a later different one is dropped here
        (the facade refuses it before writing). MLflow refuses a changed param with
        INVALID_PARAMETER_VALUE: that error alone is swallowed, after re-reading
        which params the run holds (another process may have logged them)."""
        todo = {k: v for k, v in params.items() if k not in st.params}
        for attempt in (1, 2):
            if not todo:
                return
            support, native, artifacts = param_entries(todo)
            try:
                self._send_tags(st.mlflow_id, support, artifacts)
                self._send(st.mlflow_id, plan_batches(params=native.items()))
            except Exception as exc:
                if attempt == 2 or not _param_conflict(exc):
                    raise
                st.params = state_of(self._t._client.get_run(st.mlflow_id)).params
                todo = {k: v for k, v in todo.items() if k not in st.params}
                continue
            st.params.update(todo)
            return

    def _log_metrics(self, st: RunState, points: Sequence[MetricPoint]) -> None:
        """Points and the summaries they change in one request (see ``_run_metrics``
        for when a summary is folded and when it is recounted)."""
        by_key: dict[str, dict[Any, MetricPoint]] = {}
        for p in points:
            distinct = by_key.get(p.key)
            if distinct is None:
                distinct = by_key[p.key] = {}
            # MLflow keeps one of several identical points; so do the summaries.
            distinct.setdefault(identity(p), p)
        support: dict[str, str] = {}
        entries: list[tuple[str, float, int, int]] = []
        folded: dict[str, Summary] = {}
        recounts: list[tuple[str, str]] = []
        for key, pts in by_key.items():
            mlflow_key = encode_key(key, support)
            entries += [(mlflow_key, p.value, p.timestamp_ms, p.step) for p in pts.values()]
            prev, known = st.summaries.get(key), st.history.get(key)
            if known is not None:
                new = fold(prev, (p for i, p in pts.items() if i not in known))
            elif prev is None or all(prev.is_new(p) for p in pts.values()):
                new = fold(prev, pts.values())
            else:
                recounts.append((key, mlflow_key))
                continue
            if new is not None:
                folded[key] = new
        summary_tags = [(SUMMARY + encode_key(k, {}), dump_summary(s)) for k, s in folded.items()]
        self._send(
            st.mlflow_id, plan_batches(metrics=entries, tags=[*support.items(), *summary_tags])
        )
        for key, mlflow_key in recounts:
            history = read_history(self._t._store, st.mlflow_id, mlflow_key)
            summary = recount(key, history, st.summaries.get(key), by_key[key].values())
            if summary is None:
                continue
            self._send_tags(st.mlflow_id, {SUMMARY + mlflow_key: dump_summary(summary)}, {})
            folded[key] = summary
            if len(history) <= _HISTORY_CACHE:
                st.history[key] = {identity(p) for p in history}
        st.summaries.update(folded)
        for key, pts in by_key.items():
            if key in st.history:
                st.history[key].update(pts)

    def _end(self, st: RunState, w: RunEnded) -> None:
        """A final status stays, but KILLED gives way to the run's own FINISHED or
        FAILED. The status is read fresh: a reader elsewhere may have set KILLED."""
        run = self._t._client.get_run(st.mlflow_id)
        status = run.info.status
        if status not in ("RUNNING", "SCHEDULED") and not (
            status == "KILLED" and w.status is not RunStatus.KILLED
        ):
            return
        self._put_slot(st, T.ERROR, codec.dumps(w.error), **{T.ENDED: w.ended_at.isoformat()})
        self._t._finish(st.mlflow_id, w.status.value, codec.to_ms(w.ended_at))
        if st.parent_pending:
            # The parent had not arrived when this run started; it may have now.
            parent = self._index.mlflow_id(run.data.tags.get(T.PARENT))
            if parent is not None:
                self._send_tags(st.mlflow_id, {T.PARENT_RUN: parent}, {})
                st.parent_pending = False


def _param_conflict(exc: BaseException) -> bool:
    return error_code(exc) == "INVALID_PARAMETER_VALUE" and "Changing param values" in str(exc)


def _coalesce(writes: Sequence[RunWrite]) -> list[RunWrite]:
    """Consecutive metric writes of one run become one (one request, not many)."""
    out: list[RunWrite] = []
    for w in writes:
        last = out[-1] if out else None
        if (
            isinstance(w, MetricsLogged)
            and isinstance(last, MetricsLogged)
            and last.run_id == w.run_id
        ):
            out[-1] = MetricsLogged(w.run_id, (*last.points, *w.points))
        else:
            out.append(w)
    return out


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment


def _store_batch(store: Any, mlflow_id: str, b: Batch) -> None:
    from mlflow.entities import Metric, Param, RunTag

    store.log_batch(
        mlflow_id,
        metrics=[Metric(k, v, ts, step) for k, v, ts, step in b.metrics],
        params=[Param(k, v) for k, v in b.params],
        tags=[RunTag(k, v) for k, v in b.tags],
    )
