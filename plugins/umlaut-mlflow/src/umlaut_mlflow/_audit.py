"""Audit records as MLflow runs: one run per call in the experiment ``umlaut/<name>``,
written over REST (or MlflowClient), read back with paged searches. A mixin of
:class:`~umlaut_mlflow._tracker.MlflowTracker`, which supplies the client, the REST
writer, the error mapping and the experiments.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from umlaut_core.clock import utcnow
from umlaut_core.ids import decode_id, is_id
from umlaut_core.records import (
    AuditRecord,
    RunQuery,
)

from . import _codec as codec
from ._codec import K
from ._filters import PAGE, quote, safe

__all__ = ["MlflowAuditRuns"]

#: Audit runs written per request round (create + finish each).
_RECORD_CHUNK = 200


class MlflowAuditRuns:
    """``record_runs``, ``import_runs``, ``query_runs``, ``scan_runs``, ``count_runs``."""

    _client: Any
    _rest: Any

    def _search(
        self, exp_ids: list[str], flt: str, *, order_by: list[str], page: int = PAGE
    ) -> Iterator[Any]:
        token = None
        while True:
            runs = self._client.search_runs(
                exp_ids, flt, max_results=page, order_by=order_by, page_token=token
            )
            yield from runs
            token = runs.token
            if not token:
                return

    def _create_run(self, exp_id: str, start: int, tags: dict[str, str], name: str) -> str:
        if self._rest is not None:
            return self._rest.create_run(exp_id, start_time=start, tags=tags, run_name=name)
        run = self._client.create_run(exp_id, start_time=start, tags=tags, run_name=name)
        return str(run.info.run_id)

    def _finish(self, run_id: str, status: str, end_ms: int | None) -> None:
        end = end_ms if end_ms is not None else int(time.time() * 1000)
        if self._rest is not None:
            self._rest.finish_run(run_id, status, end)
            return
        from mlflow.entities import RunStatus

        self._store.update_run_info(
            run_id, run_status=RunStatus.from_string(status), end_time=end, run_name=None
        )

    def record_runs(self, records: Iterable[AuditRecord]) -> int:
        """One MLflow run per record: ``create_run`` (all data as tags) + a status update.

        Idempotency: a record's id is its run's ``umlaut.id`` tag and run name. Ids this
        tracker wrote are skipped without a request. Ids it never saw are looked up in
        MLflow (one search per chunk of 200) unless the record started less than
        ``verify_ids_after`` seconds ago: a fresh record from ``run_model`` cannot have
        been written before, and ``search_runs`` is the slowest MLflow call (MLflow
        3.17 servers spend ~40 ms on each). The one case this misses: another process
        replays a record within that window after a write that failed half-way *and*
        whose clean-up failed too.

        MLflow has no transactions: if a write fails, the runs this call created are
        deleted (best effort), their ids are marked for checking, and BackendError
        is raised; a replay then skips whatever did get written.
        """
        written = 0
        created: list[tuple[str, str]] = []
        chunk: list[AuditRecord] = []
        try:
            for record in records:
                chunk.append(record)
                if len(chunk) >= _RECORD_CHUNK:
                    written += self._write_chunk(chunk, created)
                    chunk = []
            if chunk:
                written += self._write_chunk(chunk, created)
        except BaseException:
            self._undo(created)
            raise
        return written

    def import_runs(self, records: Iterable[AuditRecord]) -> int:
        """``record_runs`` that checks every id with MLflow however fresh the record (a
        copy replays records of any age; one search per chunk of 200)."""
        written = 0
        created: list[tuple[str, str]] = []
        chunk: list[AuditRecord] = []
        try:
            for record in records:
                chunk.append(record)
                if len(chunk) >= _RECORD_CHUNK:
                    written += self._write_chunk(chunk, created, check_all=True)
                    chunk = []
            if chunk:
                written += self._write_chunk(chunk, created, check_all=True)
        except BaseException:
            self._undo(created)
            raise
        return written

    def _write_chunk(
        self, chunk: list[AuditRecord], created: list[tuple[str, str]], check_all: bool = False
    ) -> int:
        exp_ids = {}
        for r in chunk:
            if r.model_name not in exp_ids:
                exp_ids[r.model_name] = self._experiment_id(r.model_name, create=True)
        fresh_after = utcnow() - self._verify_after
        with self._guard:
            seen = {r.id for r in chunk if r.id in self._written}
            doubtful = [
                r
                for r in chunk
                if r.id not in seen
                and (check_all or r.id in self._uncertain or r.started_at < fresh_after)
            ]
        if doubtful:
            seen |= self._existing_ids(doubtful, sorted({exp_ids[r.model_name] for r in doubtful}))
        count = 0
        with self._errors("writing audit runs"):
            for r in chunk:
                if r.id in seen:
                    continue
                tags, artifacts = _audit_tags(r)
                start = codec.to_ms(r.started_at)
                run_id = self._create_run(exp_ids[r.model_name], start, tags, r.id)
                created.append((r.id, run_id))
                for file, text in artifacts.items():
                    self._client.log_text(run_id, text, file)
                end = start + int(r.duration_ms)
                self._finish(run_id, "FINISHED" if r.status == "ok" else "FAILED", end)
                seen.add(r.id)
                count += 1
        with self._guard:
            for r in chunk:
                self._written[r.id] = None
                self._uncertain.discard(r.id)
            while len(self._written) > 100_000:
                self._written.popitem(last=False)
        return count

    def _existing_ids(self, chunk: list[AuditRecord], exp_ids: list[str]) -> set[str]:
        """Ids of the chunk that already have a run: one search, by id or time window.

        A replayed record keeps its ``started_at``, so its earlier run lies inside the
        chunk's start-time window.
        """
        flt = f"tags.`{K.KIND}` = 'audit'"
        if len(chunk) == 1:
            flt += f" and tags.`{K.ID}` = '{safe(chunk[0].id)}'"
        else:
            lo = min(codec.to_ms(r.started_at) for r in chunk)
            hi = max(codec.to_ms(r.started_at) for r in chunk)
            flt += f" and attributes.start_time >= {lo} and attributes.start_time <= {hi}"
        wanted = {r.id for r in chunk}
        with self._errors("checking for audit runs already written"):
            return {
                run.data.tags.get(K.ID, "") for run in self._search(exp_ids, flt, order_by=[])
            } & wanted

    def _undo(self, created: list[tuple[str, str]]) -> None:
        with self._guard:
            self._uncertain.update(record_id for record_id, _ in created)
        for record_id, run_id in created:
            try:
                self._client.delete_run(run_id)
            except Exception:  # best effort: the store is probably what failed
                continue
            with self._guard:
                self._written.pop(record_id, None)

    def query_runs(self, query: RunQuery) -> list[AuditRecord]:
        exp_ids, flt, post = self._audit_search(query)
        if not exp_ids:
            return []
        out: list[AuditRecord] = []
        page = min(max(query.limit + 1, 50), PAGE)
        with self._errors("searching audit runs"):
            for run in self._search(exp_ids, flt, order_by=[f"tags.`{K.ID}` DESC"], page=page):
                t = run.data.tags
                rid = t.get(K.ID, "")
                if query.before is not None and rid >= query.before:
                    continue
                if not all(check(t) for check in post):
                    continue
                out.append(self._to_record(run))
                if len(out) >= query.limit:
                    break
        return out

    def scan_runs(self, query: RunQuery, after: str | None = None) -> Iterator[AuditRecord]:
        """One search, ordered by the id tag ascending, paged by MLflow's own token; a
        time window narrows it to ``after``'s millisecond (ids carry it), less a
        minute of slack, and the ids themselves are compared here."""
        lower = None
        if after is not None:
            lower = decode_id(after)[0] - 60_000 if is_id(after) else None
        exp_ids, flt, post = self._audit_search(query, lower_ms=lower)
        if not exp_ids:
            return
        with self._errors("scanning audit runs"):
            for run in self._search(exp_ids, flt, order_by=[f"tags.`{K.ID}` ASC"]):
                t = run.data.tags
                rid = t.get(K.ID, "")
                if after is not None and rid <= after:
                    continue
                if query.before is not None and rid >= query.before:
                    continue
                if not all(check(t) for check in post):
                    continue
                yield self._to_record(run)

    def count_runs(self, query: RunQuery) -> int:
        """MLflow has no count: the matching runs are listed (tags only) and counted."""
        exp_ids, flt, post = self._audit_search(query)
        if not exp_ids:
            return 0
        count = 0
        with self._errors("counting audit runs"):
            for run in self._search(exp_ids, flt, order_by=[]):
                t = run.data.tags
                if query.before is not None and t.get(K.ID, "") >= query.before:
                    continue
                count += all(check(t) for check in post)
        return count

    def _audit_search(
        self, query: RunQuery, lower_ms: int | None = None
    ) -> tuple[list[str], str, list[Callable[[Mapping[str, str]], bool]]]:
        """Experiments, filter string and the checks MLflow's filter cannot make, for
        the audit runs ``query`` selects (``lower_ms``: a lower bound on start time)."""
        if query.model_name is not None:
            exp_id = self._experiment_id(query.model_name, create=False)
            exp_ids = [exp_id] if exp_id else []
        else:
            exp_ids = self._umlaut_experiments()
        parts = [f"tags.`{K.KIND}` = 'audit'"]
        post: list[Callable[[Mapping[str, str]], bool]] = []
        if query.version is not None:
            parts.append(f"tags.`{K.VERSION}` = '{int(query.version)}'")
        if query.status is not None:
            parts.append(f"tags.`{K.STATUS}` = '{safe(query.status)}'")
        if query.reference_id is not None:
            ref = query.reference_id
            quoted = quote(ref)
            if quoted is not None:
                parts.append(f"tags.`{K.REFERENCE}` = {quoted}")
            post.append(lambda t: t.get(K.REFERENCE) == ref)
        if query.since is not None:
            parts.append(f"attributes.start_time >= {codec.to_ms(query.since)}")
            since = query.since
            post.append(lambda t: dt.datetime.fromisoformat(t[K.STARTED]) >= since)
        if lower_ms is not None:
            parts.append(f"attributes.start_time >= {max(lower_ms, 0)}")
        if query.until is not None:
            parts.append(f"attributes.start_time <= {codec.to_ms(query.until)}")
            until = query.until
            post.append(lambda t: dt.datetime.fromisoformat(t[K.STARTED]) < until)
        return exp_ids, " and ".join(parts), post

    def _umlaut_experiments(self) -> list[str]:
        ids: list[str] = []
        token = None
        like = self._prefix.replace("'", "") + "%"
        with self._errors("listing umlaut experiments"):
            while True:
                page = self._client.search_experiments(
                    filter_string=f"name LIKE '{like}'", max_results=PAGE, page_token=token
                )
                ids.extend(e.experiment_id for e in page)
                token = page.token
                if not token:
                    return ids

    def _to_record(self, run: Any) -> AuditRecord:
        t = run.data.tags
        inputs = codec.join_text(t, K.INPUTS)
        if inputs is None:
            inputs = self._artifact_text(run, t[f"{K.INPUTS}.artifact"])
        output = None
        if K.OUTPUT in t:
            output = codec.join_text(t, K.OUTPUT)
            if output is None:
                output = self._artifact_text(run, t[f"{K.OUTPUT}.artifact"])
        return AuditRecord(
            id=t[K.ID],
            model_name=t[K.MODEL],
            version=int(t[K.VERSION]),
            selector=t[K.SELECTOR],
            inputs_json=inputs,
            output_json=output,
            status="ok" if t[K.STATUS] == "ok" else "error",
            started_at=dt.datetime.fromisoformat(t[K.STARTED]),
            duration_ms=float(t[K.DURATION]),
            reference_id=t.get(K.REFERENCE),
            error_type=t.get(K.ERROR_TYPE),
            error_message=codec.join_text(t, K.ERROR_MESSAGE),
            tags=json.loads(t[K.TAGS]) if K.TAGS in t else {},
        )

    def _artifact_text(self, run: Any, path: str) -> str:
        dest = Path(tempfile.mkdtemp(dir=self._downloads))
        try:
            local = self._client.download_artifacts(run.info.run_id, path, str(dest))
            return Path(local).read_text(encoding="utf-8")
        finally:
            shutil.rmtree(dest, ignore_errors=True)


def _audit_tags(r: AuditRecord) -> tuple[dict[str, str], dict[str, str]]:
    tags = codec.native_user_tags(r.tags, set())
    tags = {k: v for k, v in tags.items() if not k.startswith("umlaut.")}
    tags.update(
        {
            K.KIND: "audit",
            K.ID: r.id,
            K.MODEL: r.model_name,
            K.VERSION: str(r.version),
            K.SELECTOR: r.selector,
            K.STATUS: r.status,
            K.STARTED: r.started_at.isoformat(),
            K.DURATION: repr(float(r.duration_ms)),
        }
    )
    if r.reference_id is not None:
        tags[K.REFERENCE] = r.reference_id
    if r.tags:
        tags[K.TAGS] = codec.dumps(dict(r.tags))
    if r.error_type is not None:
        tags[K.ERROR_TYPE] = r.error_type[: codec.CHUNK]
    artifacts: dict[str, str] = {}
    pieces = [(K.INPUTS, r.inputs_json), (K.OUTPUT, r.output_json)]
    for key, text in [*pieces, (K.ERROR_MESSAGE, r.error_message)]:
        if text is None:
            continue
        spilled = codec.split_text(tags, key, text)
        if spilled is not None:
            artifacts[tags[f"{key}.artifact"]] = spilled
    return tags, artifacts
