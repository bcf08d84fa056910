"""Model calls turned into audit records: timing, outcome, error text."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from .encoding import encode_input, encode_output
from .exceptions import EncodingError
from .ids import new_run_id
from .records import ModelVersion, RecordFields

__all__ = ["call_model", "encode_item", "error_message", "error_type", "selector_text"]

_UTC = dt.UTC


def call_model(
    run: Callable[[Any], Any],
    mv: ModelVersion,
    selector: str,
    items: Iterable[tuple[Any, str, str | None]],
    tags: Mapping[str, str],
    result_keys: Sequence[str] | None = None,
    before: Callable[[Any], object] | None = None,
) -> Iterator[tuple[RecordFields, Any, BaseException | None]]:
    """Run the model on each ``(input, inputs_json, reference_id)`` in turn and yield
    its audit record's fields (see :func:`~umlaut_core.records.audit_record`), its
    output and its error; never raises the model's error.

    One generator serves ``run_model`` (one item) and ``run_batch`` (many): per item
    it does only what a call must, with everything else looked up once, because for a
    batch of trivial models this loop is most of the Python umlaut adds to a write.
    ``before(input)`` runs first for each item (the observer hook).
    """
    name, number = mv.name, mv.version
    new_id, now, clock, encode = new_run_id, dt.datetime.now, time.perf_counter, encode_output
    for item, inputs_json, reference_id in items:
        if before is not None:
            before(item)
        run_id = new_id()
        started = now(_UTC)
        t0 = clock()
        output: Any = None
        error: BaseException | None = None
        try:
            output = run(item)
            if result_keys is not None and isinstance(output, Mapping):
                output = {k: output[k] for k in result_keys if k in output}
            output_json = encode(output)
        except BaseException as exc:  # the model's own error: recorded, then re-raised
            error = exc
        duration_ms = (clock() - t0) * 1000.0
        if error is None:
            ok: RecordFields = (
                run_id, name, number, selector, inputs_json, output_json, "ok", started,
                duration_ms, reference_id, None, None, tags, False,
            )  # fmt: skip
            yield ok, output, None
        else:
            failed: RecordFields = (
                run_id, name, number, selector, inputs_json, None, "error", started,
                duration_ms, reference_id, error_type(error), error_message(error), tags,
                False,
            )  # fmt: skip
            yield failed, output, error


def error_type(exc: BaseException) -> str:
    kind = type(exc)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def error_message(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 10_000 else text[:10_000] + "… (truncated)"


def encode_item(item: Any, index: int) -> str:
    try:
        return encode_input(item)
    except EncodingError as exc:
        raise type(exc)(f"batch item {index}: {exc}") from None


def selector_text(version: int | None, stage: str | None) -> str:
    if version is not None:
        return f"version={version}"
    if stage is not None:
        return f"stage={stage}"
    return "latest"
