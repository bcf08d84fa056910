"""The client side: pin the version, submit one task per partition, write or count
what comes back, and hand the outputs over as a Dask DataFrame held on the cluster."""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import pandas as pd

from umlaut_core import ConfigurationError, ModelVersion, Umlaut
from umlaut_core.ids import decode_id, encode_id, is_id, new_run_id

from ._errors import RowKeyError, repeated_across
from ._job import (
    BATCH_TAG,
    SELECTOR_TAG,
    Job,
    Payload,
    Records,
    WorkerDelivery,
    Writer,
    settings_key,
    worker_settings,
    writer,
)
from ._worker import score_partition

__all__ = ["ScoredBatch", "new_batch_id", "run_batch", "score_bag", "score_frame"]

OnError = Literal["raise", "continue"]
#: Rows per partition when ``run_batch`` splits an ordinary iterable.
PARTITION_ROWS = 50_000


@dataclass(frozen=True)
class ScoredBatch:
    """A finished scoring job: every partition's records are stored when it returns.

    ``frame`` holds the outputs (one row per input row, indexed like the input; a
    Bag's rows are indexed by their key), computed and kept in the workers' memory;
    ``frame.compute()`` brings them to the client, ``frame.to_parquet(...)`` writes
    them from the workers. Partitions skipped because a resumed batch had already
    stored them (``skipped``) contribute no rows: their outputs are in the audit
    records (tag ``umlaut.batch_id``).
    """

    batch_id: str
    version: ModelVersion
    frame: Any
    partitions: int
    rows: int
    skipped: tuple[int, ...]
    writer: Writer
    #: The output partitions as ``distributed`` futures, in order (``frame`` is made
    #: from them): ``client.gather(futures)`` gives the pandas frames as they are.
    futures: tuple[Any, ...] = ()


def new_batch_id() -> str:
    """A new batch id: an umlaut id whose time part is now, the batch's millisecond."""
    return new_run_id()


def score_frame(
    umlaut: Umlaut,
    frame: Any,
    model_name: str,
    *,
    key: str,
    stage: str | None = None,
    version: int | None = None,
    meta: Any = None,
    input_columns: Sequence[str] | None = None,
    batch_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    on_error: OnError = "raise",
    return_outputs: bool = True,
    id_column: str | None = "umlaut_id",
    client: Any = None,
    retries: int = 3,
    worker_profile: str | None = None,
    worker_delivery: WorkerDelivery = "sync",
    after_partition: Callable[[int], object] | None = None,
) -> ScoredBatch:
    """Score every row of a Dask DataFrame with one pinned version; one audit record
    per row, however often a task is retried.

    :param umlaut: the client's facade: the version is resolved here, once.
    :param frame: a ``dask.dataframe.DataFrame``; each row reaches the model as a dict
        of column → value (``input_columns`` selects the columns).
    :param key: the column holding each row's stable, unique key (an order id, a
        customer number); a row's record id is derived from the batch id and it.
    :param meta: the outputs' columns and dtypes (a dict or an empty pandas
        DataFrame); default one ``output`` column of objects. The model never runs to
        find them out.
    :param batch_id: an earlier batch's id, to resume it: partitions whose records are
        all stored are skipped. Default: a new batch.
    :param return_outputs: False keeps the outputs only in the audit records: the
        tasks return no rows, so a worker's memory is bounded by one partition
        however large the batch (as ``Umlaut.run_batch(..., return_outputs=False)``).
    :param id_column: an output column with each row's record id (None: none).
    :param client: a ``distributed.Client`` (default: the current one).
    :param retries: Dask retries per task (a lost worker, a dropped connection).
    :param worker_profile: workers open ``Umlaut(profile=...)`` from their own
        environment instead of settings sent in the task graph.
    :param worker_delivery: ``sync`` (records stored before the task ends) or
        ``spooled`` (through each worker's local spool, e.g. to an MLflow server).
    :param after_partition: called on the worker with the partition number once its
        records are stored (or handed to the client); for progress and fault tests.
    """
    import dask.dataframe as dd

    if not isinstance(frame, dd.DataFrame):
        raise ConfigurationError(
            f"score_frame takes a dask.dataframe.DataFrame, not {type(frame).__name__}"
        )
    if not isinstance(key, str) or key not in frame.columns:
        raise ConfigurationError(
            f"key must name a column of the frame holding each row's unique key, not "
            f"{key!r}; columns: {list(frame.columns)}"
        )
    if input_columns is not None:
        missing = [c for c in input_columns if c not in frame.columns]
        if missing:
            raise ConfigurationError(f"input_columns {missing} are not columns of the frame")
    job = _job(
        umlaut, model_name, stage, version, meta, batch_id, tags, on_error, id_column,
        worker_profile, worker_delivery, after_partition, key=key,
        input_columns=tuple(input_columns) if input_columns is not None else None,
        return_outputs=bool(return_outputs),
    )  # fmt: skip
    divisions = frame.divisions if frame.known_divisions else None
    index_meta = frame._meta.index[:0]
    return _submit(umlaut, job, frame.to_delayed(), client, retries, index_meta, divisions)


def score_bag(
    umlaut: Umlaut,
    bag: Any,
    model_name: str,
    *,
    key: str | Callable[[Any], Hashable],
    stage: str | None = None,
    version: int | None = None,
    meta: Any = None,
    batch_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    on_error: OnError = "raise",
    return_outputs: bool = True,
    id_column: str | None = "umlaut_id",
    client: Any = None,
    retries: int = 3,
    worker_profile: str | None = None,
    worker_delivery: WorkerDelivery = "sync",
    after_partition: Callable[[int], object] | None = None,
) -> ScoredBatch:
    """Score every item of a Dask Bag (usually dicts) like :func:`score_frame`; each
    item reaches the model as it is. ``key`` is the field holding the item's unique
    key, or a function of the item; the outputs frame is indexed by those keys."""
    import dask.bag as db

    if not isinstance(bag, db.Bag):
        raise ConfigurationError(f"score_bag takes a dask.bag.Bag, not {type(bag).__name__}")
    return _score_items(
        umlaut, bag, model_name, key, None, stage, version, meta, batch_id, tags, on_error,
        id_column, client, retries, worker_profile, worker_delivery, after_partition,
        index_meta=pd.Index([], dtype=object), return_outputs=bool(return_outputs),
    )  # fmt: skip


def run_batch(
    umlaut: Umlaut,
    model_name: str,
    inputs: Iterable[Any],
    *,
    stage: str | None = None,
    version: int | None = None,
    batch_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    on_error: OnError = "raise",
    client: Any = None,
    partition_rows: int = PARTITION_ROWS,
    retries: int = 3,
    worker_profile: str | None = None,
    worker_delivery: WorkerDelivery = "sync",
) -> list[Any]:
    """``Umlaut.run_batch`` on a cluster: the outputs of ``inputs``, in order.

    The inputs are numbered on the client before they are distributed, and each
    number is its row key: pass the same inputs in the same order with
    ``batch_id=`` to resume. With ``on_error="continue"`` a failed item's place holds
    None (its audit record holds the error).
    """
    import dask.bag as db

    if isinstance(inputs, (str, bytes, Mapping)):
        raise ConfigurationError("run_batch takes an iterable of inputs (a list, a generator)")
    if not isinstance(partition_rows, int) or partition_rows < 1:
        raise ConfigurationError(f"partition_rows must be a positive integer, not {partition_rows}")
    numbered = list(enumerate(inputs))
    if not numbered:
        return []
    bag = db.from_sequence(numbered, partition_size=partition_rows)
    scored = _score_items(
        umlaut, bag, model_name, operator.itemgetter(0), operator.itemgetter(1), stage,
        version, {"output": object}, batch_id, tags, on_error, None, client, retries,
        worker_profile, worker_delivery, None, index_meta=pd.Index([], dtype="int64"),
    )  # fmt: skip
    client = client if client is not None else _default_client()
    # Gathered as pandas frames: a Dask DataFrame would turn object columns (dict
    # outputs) into strings.
    frames = client.gather(list(scored.futures))
    outputs = pd.concat(frames)["output"] if frames else pd.Series([], dtype=object)
    if scored.skipped:
        raise ConfigurationError(
            f"batch {scored.batch_id} was resumed and {len(scored.skipped)} partitions "
            f"were already stored: their outputs are in the audit records, not here"
        )
    return list(outputs.sort_index())


# -- shared -----------------------------------------------------------------------------


def _score_items(
    umlaut: Umlaut,
    bag: Any,
    model_name: str,
    key: str | Callable[[Any], Hashable],
    value: Callable[[Any], Any] | None,
    stage: str | None,
    version: int | None,
    meta: Any,
    batch_id: str | None,
    tags: Mapping[str, Any] | None,
    on_error: OnError,
    id_column: str | None,
    client: Any,
    retries: int,
    worker_profile: str | None,
    worker_delivery: WorkerDelivery,
    after_partition: Callable[[int], object] | None,
    *,
    index_meta: Any,
    return_outputs: bool = True,
) -> ScoredBatch:
    if not (isinstance(key, str) or callable(key)):
        raise ConfigurationError(f"key must be a field name or a function, not {key!r}")
    job = _job(
        umlaut, model_name, stage, version, meta, batch_id, tags, on_error, id_column,
        worker_profile, worker_delivery, after_partition, key=key, value=value,
        return_outputs=return_outputs,
    )  # fmt: skip
    return _submit(umlaut, job, bag.to_delayed(), client, retries, index_meta, None)


def _job(
    umlaut: Umlaut,
    model_name: str,
    stage: str | None,
    version: int | None,
    meta: Any,
    batch_id: str | None,
    tags: Mapping[str, Any] | None,
    on_error: OnError,
    id_column: str | None,
    worker_profile: str | None,
    worker_delivery: WorkerDelivery,
    after_partition: Callable[[int], object] | None,
    **where: Any,
) -> Job:
    if on_error not in ("raise", "continue"):
        raise ConfigurationError(f"on_error must be 'raise' or 'continue', not {on_error!r}")
    if worker_delivery not in ("sync", "spooled"):
        raise ConfigurationError(
            f"worker_delivery must be 'sync' or 'spooled', not {worker_delivery!r}"
        )
    columns, dtypes = _columns(meta)
    if id_column is not None and id_column in columns:
        raise ConfigurationError(f"id_column {id_column!r} is also a column of meta")
    # Resolved once, here: every row of the batch is scored by this version.
    mv = umlaut.get_version(model_name, version=version, stage=stage)
    selector = (
        f"version={version}" if version is not None else f"stage={stage}" if stage else "latest"
    )
    resume = batch_id is not None
    if batch_id is None:
        batch_id = new_batch_id()
    elif not is_id(batch_id):
        raise ConfigurationError(
            f"batch_id must be the id of an earlier batch (ScoredBatch.batch_id), not {batch_id!r}"
        )
    ms = decode_id(batch_id)[0]
    if resume:
        _check_resumed_version(umlaut, mv, batch_id, ms)
    where_to = writer(umlaut)
    settings = {} if worker_profile is not None else worker_settings(umlaut)
    delivery: WorkerDelivery = "sync" if where_to == "client" else worker_delivery
    clean_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    clean_tags.update({BATCH_TAG: batch_id, SELECTOR_TAG: selector})
    job = Job(
        model_name=mv.name, version=mv.version, digest=mv.digest, selector=selector,
        batch_id=batch_id, ms=ms, writer=where_to, resume=resume, settings=settings,
        profile=worker_profile, worker_delivery=delivery, tags=clean_tags,
        on_error=on_error, columns=columns, dtypes=dtypes, id_column=id_column,
        after_partition=after_partition, **where,
    )  # fmt: skip
    return replace(job, settings_key=settings_key(settings, worker_profile, delivery))


def _columns(meta: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    if meta is None:
        return ("output",), {"output": object}
    if isinstance(meta, pd.DataFrame):
        dtypes = {str(c): meta.dtypes[c] for c in meta.columns}
    elif isinstance(meta, Mapping):
        dtypes = {str(c): d for c, d in meta.items()}
    else:
        raise ConfigurationError(
            f"meta gives the outputs' columns: a dict of column → dtype or an empty "
            f"pandas DataFrame, not {type(meta).__name__}"
        )
    if not dtypes:
        raise ConfigurationError("meta names no columns")
    return tuple(dtypes), dtypes


def _check_resumed_version(umlaut: Umlaut, mv: ModelVersion, batch_id: str, ms: int) -> None:
    """A resumed batch must run the version its stored part ran."""
    newest = umlaut.history(mv.name, before=encode_id(ms + 1, 0), limit=1, include_pending=False)
    if newest and newest[0].id >= encode_id(ms, 0):
        record = newest[0]
        if record.tags.get(BATCH_TAG) == batch_id and record.version != mv.version:
            raise ConfigurationError(
                f"batch {batch_id} was scored with {mv.name!r} version {record.version}; "
                f"this selector now gives version {mv.version}. Resume it with "
                f"version={record.version}"
            )


def _meta_frame(job: Job, index_meta: Any) -> pd.DataFrame:
    data = {c: pd.Series([], dtype=job.dtypes[c]) for c in job.columns}
    frame = pd.DataFrame(data, index=index_meta)
    if job.id_column is not None:
        frame[job.id_column] = pd.Series([], dtype=object, index=index_meta)
    return frame


def _submit(
    umlaut: Umlaut,
    job: Job,
    parts: list[Any],
    client: Any,
    retries: int,
    index_meta: Any,
    divisions: Any,
    max_pending: int | None = None,
) -> ScoredBatch:
    import dask.dataframe as dd
    from dask.delayed import delayed
    from distributed import as_completed

    client = client if client is not None else _default_client()
    # Unique per submission: a resumed batch must not be served the futures of an
    # earlier submission of the same batch that this client still holds.
    token = f"{job.batch_id.lower()}-{uuid.uuid4().hex[:8]}"
    tasks = [
        delayed(score_partition, pure=False)(part, job, i, dask_key_name=f"umlaut-{token}-{i}")
        for i, part in enumerate(parts)
    ]
    # When the client writes, finished partitions wait in the workers' memory until
    # it has: at most `window` partitions are submitted and not yet written, so a
    # client slower than the cluster bounds the workers' memory by partitions, not
    # by the dataset. Workers that write need no such bound (they send back a count).
    window = len(tasks) if job.writer == "workers" else _window(client, max_pending)
    outputs: list[Any] = [None] * len(tasks)
    pending = as_completed()
    submitted: list[Any] = []

    def track(i: int, result: Any) -> None:
        """Outputs stay on the cluster; the payload comes to the client. (The workers
        keep the task's result while either view needs it.)"""
        outputs[i] = client.submit(operator.getitem, result, 0, key=f"umlaut-out-{token}-{i}")
        sent = client.submit(operator.getitem, result, 1, key=f"umlaut-rec-{token}-{i}")
        submitted.append(sent)
        pending.add(sent)

    if window >= len(tasks):  # one submission: the scheduler sees every partition
        for i, result in enumerate(client.compute(tasks, retries=retries)):
            track(i, result)
        following = len(tasks)
    else:
        for i in range(window):
            track(i, client.compute(tasks[i], retries=retries))
        following = window
    rows, skipped = 0, []
    try:
        for future in pending:
            payload: Payload = future.result()
            future.release()
            if payload.records is not None:
                # The client is the single writer: one transaction per partition, and
                # each partition reaches it once, so any id already held (outside a
                # resume) is a key another partition had.
                new = umlaut.tracker.record_runs(Records(payload.records))
                if new < len(payload.records) and not job.resume:
                    raise repeated_across(
                        job.key, payload.partition, len(payload.records),
                        len(payload.records) - new,
                    )  # fmt: skip
            if payload.error is not None:
                raise payload.error
            rows += payload.rows
            if payload.skipped:
                skipped.append(payload.partition)
            if following < len(tasks):
                track(following, client.compute(tasks[following], retries=retries))
                following += 1
    except BaseException as exc:
        client.cancel([f for f in outputs if f is not None] + submitted)
        if not isinstance(exc, RowKeyError):  # resuming would meet the same keys
            exc.add_note(
                f"umlaut-dask: the partitions stored so far keep their records; finish "
                f"the job with batch_id={job.batch_id!r}"
            )
        raise
    meta = _meta_frame(job, index_meta)
    frame = dd.from_delayed(outputs, meta=meta, divisions=divisions, verify_meta=False)
    mv = umlaut.get_version(job.model_name, version=job.version)
    return ScoredBatch(
        job.batch_id,
        mv,
        frame,
        len(parts),
        rows,
        tuple(sorted(skipped)),
        job.writer,
        tuple(outputs),
    )


def _window(client: Any, max_pending: int | None) -> int:
    """Partitions in flight when the client writes: two per worker thread, so every
    worker has its next partition while the client writes the last one."""
    if max_pending is not None:
        return max(1, max_pending)
    workers = client.scheduler_info()["workers"].values()
    threads = int(sum(w.get("nthreads", 1) for w in workers))
    return max(2, 2 * threads)


def _default_client() -> Any:
    from distributed import get_client

    return get_client()
