"""Model calls turned into audit records: timing, outcome, error text."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .encoding import check_input, encode_input, encode_output
from .exceptions import EncodingError
from .ids import new_run_id
from .records import ModelVersion, RecordFields

if TYPE_CHECKING:
    from .deadline import Deadline

Outcome = tuple[RecordFields, Any, BaseException | None]
#: Inputs per vectorized call in ``run_batch``: enough that a scikit-learn call's
#: fixed cost (about a millisecond) is about a microsecond a row, few enough that
#: a chunk's outputs stay small.
CHUNK = 1024

__all__ = [
    "CHUNK",
    "call_chunks",
    "call_model",
    "check_item",
    "encode_item",
    "error_message",
    "error_type",
    "selector_text",
]

_UTC = dt.UTC


def call_model(
    run: Callable[[Any], Any],
    mv: ModelVersion,
    selector: str,
    items: Iterable[tuple[Any, str, str | None]],
    tags: Mapping[str, str],
    result_keys: Sequence[str] | None = None,
    before: Callable[[Any], object] | None = None,
    ids: Iterable[str] | None = None,
    check: Callable[[Any], tuple[Any, Mapping[str, str] | None]] | None = None,
    deadlines: Iterable[Deadline] | None = None,
) -> Iterator[Outcome]:
    """Run the model on each ``(input, inputs_json, reference_id)`` in turn and yield
    its audit record's fields (see :func:`~umlaut_core.records.audit_record`), its
    output and its error; never raises the model's error.

    One generator serves ``run_model`` (one item) and ``run_batch`` (many): per item
    it does only what a call must, with everything else looked up once, because for a
    batch of trivial models this loop is most of the Python umlaut adds to a write.
    ``before(input)`` runs first for each item (the observer hook). ``ids`` gives
    each item's record id, in order (checked by the caller, one per item); without it
    each record gets a new :func:`~umlaut_core.ids.new_run_id`. ``check(input)`` (the
    version's input checks) runs inside the timed call, before the model: it returns
    the input to use and findings to add to the record's tags, or raises
    ``InputValidationError``, recorded like a model's error, the model never run.
    ``deadlines`` gives each item's :class:`~umlaut_core.deadline.Deadline`, in order.
    """
    name, number = mv.name, mv.version
    limits = None if deadlines is None else iter(deadlines)
    new_id = new_run_id if ids is None else iter(ids).__next__
    now, clock, encode = dt.datetime.now, time.perf_counter, encode_output
    for item, inputs_json, reference_id in items:
        if before is not None:
            before(item)
        run_id = new_id()
        started = now(_UTC)
        t0 = clock()
        output: Any = None
        error: BaseException | None = None
        item_tags = tags
        try:
            if check is not None:
                item, findings = check(item)
                if findings:
                    item_tags = {**tags, **findings}
            output = run(item) if limits is None else next(limits).guard(run)(item)
            if result_keys is not None and isinstance(output, Mapping):
                output = {k: output[k] for k in result_keys if k in output}
            output_json = encode(output)
        except BaseException as exc:  # the model's own error: recorded, then re-raised
            error = exc
        duration_ms = (clock() - t0) * 1000.0
        if error is None:
            ok: RecordFields = (
                run_id, name, number, selector, inputs_json, output_json, "ok", started,
                duration_ms, reference_id, None, None, item_tags, False,
            )  # fmt: skip
            yield ok, output, None
        else:
            failed: RecordFields = (
                run_id, name, number, selector, inputs_json, None, "error", started,
                duration_ms, reference_id, error_type(error), error_message(error), item_tags,
                False,
            )  # fmt: skip
            yield failed, output, error


def call_chunks(
    run: Callable[[Any], Any],
    run_many: Callable[[Sequence[Any]], list[Any]] | None,
    mv: ModelVersion,
    selector: str,
    items: Iterable[tuple[Any, str, str | None]],
    tags: Mapping[str, str],
    *,
    stop_at_error: bool,
    before: Callable[[Any], object] | None = None,
    ids: Iterable[str] | None = None,
    check: Callable[[Any], tuple[Any, Mapping[str, str] | None]] | None = None,
    deadlines: Iterable[Deadline] | None = None,
) -> Iterator[list[Outcome]]:
    """:func:`call_model` for ``run_batch``, vectorized when ``run_many`` is given.

    Yields lists of outcomes: every item of a list ran (or was refused) already, so
    the caller keeps all of a list's records even past an error, and stops after
    the list when it stops at errors. Without ``run_many`` each list is one item,
    run lazily as :func:`call_model` runs it.

    With ``run_many``, up to :data:`CHUNK` items at a time: each item's observer hook,
    input checks and deadline start, then one ``run_many`` over the items that passed
    (with ``stop_at_error``, only those before the first refused one), each output
    encoded, each deadline finished. The items share the call's start time and split
    its duration. If ``run_many`` raises an ``Exception`` (an input it refuses, rows
    that do not stack) the items run one by one instead, so each error is its own
    item's record and, with ``stop_at_error``, no item after it runs.
    """
    if run_many is None:
        outcomes = call_model(
            run, mv, selector, items, tags, None, before, ids, check, deadlines
        )  # fmt: skip
        yield from ([outcome] for outcome in outcomes)
        return
    new_id = new_run_id if ids is None else iter(ids).__next__
    limits = None if deadlines is None else iter(deadlines)
    source = iter(items)
    while block := list(itertools.islice(source, CHUNK)):
        block_ids = [new_id() for _ in block]
        block_limits = None if limits is None else [next(limits) for _ in block]
        yield from _call_block(
            run, run_many, mv, selector, block, block_ids, block_limits, tags,
            stop_at_error, before, check,
        )  # fmt: skip


def _call_block(
    run: Callable[[Any], Any],
    run_many: Callable[[Sequence[Any]], list[Any]],
    mv: ModelVersion,
    selector: str,
    block: list[tuple[Any, str, str | None]],
    ids: list[str],
    limits: list[Deadline] | None,
    tags: Mapping[str, str],
    stop_at_error: bool,
    before: Callable[[Any], object] | None,
    check: Callable[[Any], tuple[Any, Mapping[str, str] | None]] | None,
) -> Iterator[list[Outcome]]:
    started = dt.datetime.now(_UTC)
    t0 = time.perf_counter()
    taken: list[tuple[int, Any, Mapping[str, str]]] = []  # (position, input, tags)
    refused: dict[int, BaseException] = {}
    for i, (item, _, _) in enumerate(block):
        if before is not None:
            before(item)
        item_tags = tags
        try:
            if check is not None:
                item, findings = check(item)
                if findings:
                    item_tags = {**tags, **findings}
            late = None if limits is None else limits[i].start()
            if late is not None:
                raise late
        except BaseException as exc:
            refused[i] = exc
            if stop_at_error:
                del block[i + 1 :]
                break
            continue
        taken.append((i, item, item_tags))
    outcomes: dict[int, tuple[Any, str | None, BaseException | None]] = dict.fromkeys(
        refused, (None, None, None)
    )
    try:
        outputs = run_many([item for _, item, _ in taken]) if taken else []
        if len(outputs) != len(taken):
            raise ValueError(f"run_many gave {len(outputs)} outputs for {len(taken)} inputs")
    except Exception:
        yield from _one_by_one(
            run, mv, selector, block, ids, limits, tags, taken, refused, t0, started
        )  # fmt: skip
        return
    except BaseException as exc:  # KeyboardInterrupt…: every item of the call was in it
        outputs = None
        for i, _, _ in taken:
            outcomes[i] = (None, None, exc)
    if outputs is not None:
        for (i, _, _), output in zip(taken, outputs, strict=True):
            try:
                outcomes[i] = (output, encode_output(output), None)
            except BaseException as exc:
                outcomes[i] = (None, None, exc)
    if limits is not None:
        for i, _, _ in taken:
            output, text, error = outcomes[i]
            late = limits[i].finish(error)
            if late is not None:
                outcomes[i] = (None, None, late)
    share = (time.perf_counter() - t0) * 1000.0 / len(block)
    tags_at = {i: t for i, _, t in taken}
    done: list[Outcome] = []
    for i, (_, inputs_json, reference_id) in enumerate(block):
        output, text, error = outcomes[i]
        error = refused.get(i, error)
        fields = _fields(
            ids[i], mv, selector, inputs_json, text, started, share, reference_id,
            error, tags_at.get(i, tags),
        )  # fmt: skip
        done.append((fields, output if error is None else None, error))
    yield done


def _one_by_one(
    run: Callable[[Any], Any],
    mv: ModelVersion,
    selector: str,
    block: list[tuple[Any, str, str | None]],
    ids: list[str],
    limits: list[Deadline] | None,
    tags: Mapping[str, str],
    taken: list[tuple[int, Any, Mapping[str, str]]],
    refused: dict[int, BaseException],
    t0: float,
    started: dt.datetime,
) -> Iterator[list[Outcome]]:
    """A block whose vectorized call failed, item by item (checks and deadline
    starts already done); refused items keep their place and their error."""
    checked = {i: (item, item_tags) for i, item, item_tags in taken}
    # Refused items' share of the failed attempt: what they cost before the model.
    share = (time.perf_counter() - t0) * 1000.0 / len(block)
    for i, (_, inputs_json, reference_id) in enumerate(block):
        if i in refused:
            fields = _fields(
                ids[i], mv, selector, inputs_json, None, started, share, reference_id,
                refused[i], tags,
            )  # fmt: skip
            yield [(fields, None, refused[i])]
            continue
        item, item_tags = checked[i]
        when = dt.datetime.now(_UTC)
        t1 = time.perf_counter()
        output: Any = None
        text: str | None = None
        error: BaseException | None = None
        try:
            output = run(item)
            text = encode_output(output)
        except BaseException as exc:
            error = exc
        if limits is not None:
            late = limits[i].finish(error)
            if late is not None:
                error = late
        took = (time.perf_counter() - t1) * 1000.0
        fields = _fields(
            ids[i], mv, selector, inputs_json, text, when, took, reference_id, error, item_tags
        )
        yield [(fields, output if error is None else None, error)]


def _fields(
    run_id: str,
    mv: ModelVersion,
    selector: str,
    inputs_json: str,
    output_json: str | None,
    started: dt.datetime,
    duration_ms: float,
    reference_id: str | None,
    error: BaseException | None,
    tags: Mapping[str, str],
) -> RecordFields:
    if error is None:
        return (
            run_id, mv.name, mv.version, selector, inputs_json, output_json, "ok", started,
            duration_ms, reference_id, None, None, tags, False,
        )  # fmt: skip
    return (
        run_id, mv.name, mv.version, selector, inputs_json, None, "error", started,
        duration_ms, reference_id, error_type(error), error_message(error), tags, False,
    )  # fmt: skip


def error_type(exc: BaseException) -> str:
    """The exception's class name, module-qualified unless builtin; text every backend
    can store (see :func:`error_message`)."""
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    if name.isascii() and "\x00" not in name:
        return name
    return name.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def error_message(exc: BaseException) -> str:
    """``str(exc)`` cut at 10,000 characters, as text every backend can store: lone
    surrogates and NUL (which PostgreSQL text cannot hold) are escaped (``\\ud800``,
    ``\\x00``), and an exception whose ``__str__`` fails gives ``<unprintable X>``."""
    try:
        text = str(exc)
    except Exception:
        return f"<unprintable {error_type(exc)}>"
    if len(text) > 10_000:
        text = text[:10_000] + "… (truncated)"
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if text.isascii():
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def encode_item(item: Any, index: int) -> str:
    try:
        return encode_input(item)
    except EncodingError as exc:
        raise type(exc)(f"batch item {index}: {exc}") from None


def check_item(item: Any, index: int) -> None:
    """Refuse batch item ``index`` as :func:`encode_item` would, building no text."""
    try:
        check_input(item)
    except EncodingError as exc:
        raise type(exc)(f"batch item {index}: {exc}") from None


def selector_text(version: int | None, stage: str | None) -> str:
    if version is not None:
        return f"version={version}"
    if stage is not None:
        return f"stage={stage}"
    return "latest"
