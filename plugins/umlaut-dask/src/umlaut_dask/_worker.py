"""What runs inside a Dask task: score one partition, write or hand back its records.

Each worker process keeps one ``Umlaut`` per settings digest (so a bundle is loaded
and verified once per process, then served from the facade's cache by digest) and
remembers which pinned versions it has checked against the client's digest.
"""

from __future__ import annotations

import atexit
import contextlib
import operator
import pickle
import threading
from collections.abc import Collection, Sequence
from typing import Any

import pandas as pd

from umlaut_core import AuditRecord, IntegrityError, Umlaut
from umlaut_core.ids import decode_id, derived_ids, encode_id
from umlaut_core.records import RecordFields, fields_of

from ._errors import RowKeyError, repeated_across
from ._job import Job, Payload, Records

__all__ = ["facade", "key_text", "score_partition"]

_lock = threading.Lock()
_facades: dict[str, Umlaut] = {}
_checked: set[tuple[str, str, int, str]] = set()
_first = operator.itemgetter(0)


def facade(job: Job) -> Umlaut:
    """This process's facade for the job's settings, opened on first use."""
    found = _facades.get(job.settings_key)
    if found is not None:
        return found
    with _lock:
        found = _facades.get(job.settings_key)
        if found is None:
            if job.profile is not None:
                found = Umlaut(profile=job.profile, delivery=job.worker_delivery)
            else:
                found = Umlaut(**job.settings, delivery=job.worker_delivery)
            _facades[job.settings_key] = found
    return found


@atexit.register
def _close_facades() -> None:
    for umlaut in list(_facades.values()):
        with contextlib.suppress(Exception):  # exit must not fail
            umlaut.close()
    _facades.clear()


def _check_version(umlaut: Umlaut, job: Job) -> None:
    """The version this worker would run is the one pinned on the client."""
    key = (job.settings_key, job.model_name, job.version, job.digest)
    if key in _checked:
        return
    found = umlaut.get_version(job.model_name, version=job.version)
    if found.digest != job.digest:
        raise IntegrityError(
            f"{job.model_name!r} version {job.version} has digest {found.digest} in the "
            f"store this worker opened ({umlaut.tracker.uri}), but the job pinned "
            f"{job.digest}: the workers and the client do not see the same registry"
        )
    _checked.add(key)


def key_text(value: Any) -> str:
    """A row key as the text its record id is derived from (ints as digits)."""
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and value != value):
        raise RowKeyError(
            "a row key is missing (None/NaN); every row needs its own key: fill it, or "
            "choose a key column without gaps"
        )
    item = getattr(value, "item", None)  # numpy scalars → Python
    return str(item() if callable(item) else value)


def _committed(umlaut: Umlaut, job: Job, last_id: str) -> bool:
    """True when the record of the partition's last row is stored: a partition is
    written in one transaction, and a batch stopped by a model error never wrote its
    last row's record, so one keyset probe tells whether all of it is there."""
    ms, rand = decode_id(last_id)
    after = encode_id(ms, rand + 1) if rand < (1 << 80) - 1 else encode_id(ms + 1, 0)
    found = umlaut.history(job.model_name, before=after, limit=1, include_pending=False)
    return bool(found) and found[0].id == last_id


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (it goes back to the client), else a stand-in."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__qualname__}: {exc}")
    return exc


def score_partition(data: Any, job: Job, number: int) -> tuple[pd.DataFrame, Payload]:
    """Score one partition (a pandas DataFrame, or a list of bag items) with the job's
    pinned version; return its outputs frame and what the client must know."""
    if isinstance(data, pd.DataFrame):
        frame = data
        key = job.key
        if not isinstance(key, str):
            raise TypeError("a DataFrame's row key is a column name")
        column = frame[key]
        keys: Sequence[Any] = column.tolist()
        integers = column.dtype.kind in "iu"
        inputs: Any = frame if job.input_columns is None else frame[list(job.input_columns)]
        index = frame.index
    else:
        items = list(data)
        if callable(job.key):
            keys = [job.key(item) for item in items]
        else:
            keys = [item[job.key] for item in items]
        integers = False
        inputs = items if job.value is None else [job.value(item) for item in items]
        index = pd.Index(keys)
    try:
        texts = _key_texts(keys, integers, job.key, number)
    except RowKeyError as exc:  # the same keys on every attempt: no retry, no record
        return _empty(job, index[:0]), Payload(number, 0, error=exc)
    ids = derived_ids(job.ms, (job.batch_id,), texts)
    umlaut = facade(job)
    _check_version(umlaut, job)
    if job.resume and ids and _committed(umlaut, job, ids[-1]):
        return _empty(job, index[:0]), Payload(number, 0, skipped=True)

    handed: list[list[RecordFields]] = []
    delivered = False
    held = 0

    def deliver(records: Collection[AuditRecord]) -> None:
        nonlocal delivered, held
        tuples = getattr(records, "field_tuples", None)
        # In id order: derived ids are spread over the whole id space, and rows
        # inserted at random places of a large id index cost the store three times
        # what rows inserted in order do (pages read and split once, not per row).
        rows = sorted(tuples() if callable(tuples) else map(fields_of, records), key=_first)
        if job.writer == "client":
            handed.append(rows)
        else:
            new = umlaut.tracker.record_runs(Records(rows))  # one transaction; held skipped
            if 0 < new < len(rows) and not job.resume:
                held = len(rows) - new
        delivered = True

    error: BaseException | None = None
    try:
        options: dict[str, Any] = {
            "version": job.version,
            "tags": job.tags,
            "on_error": job.on_error,
            "record_ids": ids,
            "return_outputs": job.return_outputs,
            "deliver_to": deliver if job.worker_delivery == "sync" else None,
        }
        outputs: Any = umlaut.run_batch(job.model_name, inputs, **options)
    except Exception as exc:
        if not delivered and job.worker_delivery == "sync":
            raise  # nothing was stored (the store failed?): let Dask retry the task
        # A model error (or an input that cannot be encoded) stopped the partition
        # after its records so far were stored: the same would happen on a retry.
        error, outputs = _portable(exc), []
    if job.after_partition is not None:
        job.after_partition(number)
    records = handed[0] if handed else None
    if held:
        error = repeated_across(job.key, number, len(ids), held)
    if error is not None:
        return _empty(job, index[:0]), Payload(number, len(ids), records=records, error=error)
    if not job.return_outputs:
        return _empty(job, index[:0]), Payload(number, len(ids), records=records)
    return _frame(job, outputs, index, ids), Payload(number, len(ids), records=records)


def _key_texts(keys: Sequence[Any], integers: bool, key: Any, number: int) -> list[str]:
    """The keys as the texts record ids are derived from; none missing or repeated."""
    # Integer keys (the common case) need no per-value checks: no None, no NaN.
    texts = list(map(str, keys)) if integers else [key_text(k) for k in keys]
    if len(set(texts)) != len(texts):
        repeated = pd.Series(texts)[pd.Series(texts).duplicated()].iloc[0]
        raise RowKeyError(
            f"the row key {key!r} repeats {repeated!r} in partition {number}: row keys "
            f"must be unique in the batch, one audit record per key; make the key unique "
            f"(or choose a column that is)"
        )
    return texts


def _empty(job: Job, index: pd.Index) -> pd.DataFrame:
    return _frame(job, [], index, [])


def _frame(job: Job, outputs: list[Any], index: pd.Index, ids: list[str]) -> pd.DataFrame:
    """The outputs as the job's columns: a dict output fills the columns of its keys;
    any other output fills the only column. A failed row (``on_error="continue"``)
    has missing values; its audit record holds the error."""
    columns = job.columns
    single = columns[0] if len(columns) == 1 else None
    data: dict[str, list[Any]] = {c: [] for c in columns}
    for out in outputs:
        if isinstance(out, BaseException):
            for c in columns:
                data[c].append(None)
        elif isinstance(out, dict) and (single is None or single in out):
            for c in columns:
                data[c].append(out.get(c))
        elif single is not None:
            data[single].append(out)
        else:
            raise TypeError(
                f"the model returned a {type(out).__name__}, not a dict, so it cannot "
                f"fill the columns {list(columns)}; pass meta with one column"
            )
    frame = pd.DataFrame(data, index=index)
    for c in columns:
        with contextlib.suppress(TypeError, ValueError):  # e.g. None in an int column
            frame[c] = frame[c].astype(job.dtypes[c])
    if job.id_column is not None:
        frame[job.id_column] = pd.Series(ids, index=index, dtype=object)
    return frame
