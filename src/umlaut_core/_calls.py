"""Model calls turned into audit records: timing, outcome, error text."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .encoding import check_input, encode_input, encode_output
from .exceptions import EncodingError
from .ids import new_run_id
from .records import ModelVersion, RecordFields

if TYPE_CHECKING:
    from .deadline import Deadline

#: What one model call gave: its record's fields, its output, its error.
Outcome = tuple[RecordFields, Any, BaseException | None]

__all__ = [
    "Outcome",
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
