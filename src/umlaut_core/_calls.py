"""One model call turned into its audit record: timing, outcome, error text."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .clock import utcnow
from .encoding import encode_input, encode_output
from .exceptions import EncodingError, OutputEncodingError
from .ids import new_run_id
from .records import ModelVersion, RecordFields

__all__ = ["call_model", "encode_item", "error_message", "error_type", "selector_text"]


def call_model(
    run: Callable[[Any], Any],
    mv: ModelVersion,
    selector: str,
    item: Any,
    inputs_json: str,
    reference_id: str | None,
    tags: Mapping[str, str],
    result_keys: Sequence[str] | None,
) -> tuple[RecordFields, Any, BaseException | None]:
    """Run the model once and return its audit record's fields (see
    :func:`~umlaut_core.records.audit_record`), its output and its error; never
    raises the model's error."""
    run_id = new_run_id()
    started = utcnow()
    t0 = time.perf_counter()
    output: Any = None
    error: BaseException | None = None
    output_json: str | None = None
    try:
        output = run(item)
        if result_keys is not None and isinstance(output, Mapping):
            output = {k: output[k] for k in result_keys if k in output}
        output_json = encode_output(output)
    except OutputEncodingError as exc:
        error = exc
    except BaseException as exc:  # the model's own error: recorded, then re-raised
        error = exc
    duration_ms = (time.perf_counter() - t0) * 1000.0
    if error is None:
        ok: RecordFields = (
            run_id, mv.name, mv.version, selector, inputs_json, output_json, "ok", started,
            duration_ms, reference_id, None, None, tags, False,
        )  # fmt: skip
        return ok, output, None
    failed: RecordFields = (
        run_id, mv.name, mv.version, selector, inputs_json, None, "error", started,
        duration_ms, reference_id, error_type(error), error_message(error), tags, False,
    )  # fmt: skip
    return failed, output, error


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
