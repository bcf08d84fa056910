"""Reading request bodies within limits, and decoding JSON and CSV as MLflow does.

Limits: a ``Content-Length`` above ``max_size`` is refused before anything is read
(413), so is a chunked body the moment it grows past it; a body that is not fully
received within ``timeout`` seconds of the request is refused with 408 (a slow
client holds one connection, never a model thread).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import Any

from starlette.requests import Request

from ._errors import ApiError, malformed, unsupported_media

__all__ = ["decode_json", "media_type", "parse_csv", "read_body"]


async def read_body(request: Request, max_size: int, timeout: float) -> bytes:
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise malformed("Content-Length is not a number") from None
        if declared > max_size:
            raise _too_large(max_size)

    # A timer that cancels this task, rather than asyncio.wait_for: no extra task per
    # request (most bodies have arrived with their headers).
    task = asyncio.current_task()
    assert task is not None
    late = False

    def expire() -> None:
        nonlocal late
        late = True
        task.cancel()

    timer = asyncio.get_running_loop().call_later(timeout, expire)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_size:
                raise _too_large(max_size)
            chunks.append(chunk)
    except asyncio.CancelledError:
        if not late:
            raise  # cancelled by someone else (the server stopping)
        task.uncancel()
        raise ApiError(
            408, "DEADLINE_EXCEEDED", f"the request body was not received within {timeout:g} s"
        ) from None
    finally:
        timer.cancel()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(max_size: int) -> ApiError:
    return ApiError(
        413, "REQUEST_LIMIT_EXCEEDED", f"the request body is larger than {max_size} bytes"
    )


def media_type(content_type: str | None, allowed: tuple[str, ...]) -> str:
    """The media type of a Content-Type header, by MLflow's rules: parameters other
    than ``charset`` are refused, a charset other than UTF-8 too (415)."""
    if not content_type:
        raise unsupported_media(f"no Content-Type; send one of {', '.join(allowed)}")
    mime, *params = (p.strip() for p in content_type.split(";"))
    mime = mime.lower()
    values: dict[str, str] = {}
    for param in params:
        key, _, value = param.partition("=")
        values[key.strip().lower()] = value.strip().strip('"')
    if values.get("charset", "utf-8").lower() != "utf-8":
        raise unsupported_media("the server only supports UTF-8 (charset=utf-8)")
    extra = sorted(set(values) - {"charset"})
    if extra:
        raise unsupported_media(f"unrecognized Content-Type parameters: {', '.join(extra)}")
    if mime not in allowed:
        raise unsupported_media(
            f"this route accepts the content types {', '.join(allowed)}; got {mime!r}"
        )
    return mime


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def decode_json(body: bytes) -> Any:
    """JSON from UTF-8 bytes; 400 MALFORMED_REQUEST otherwise, without echoing it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise malformed(f"the body is not valid UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise malformed("the JSON body is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise malformed(
            f"the body is not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})"
        ) from None
    except ValueError:
        raise malformed("the body is not valid JSON: NaN and Infinity are not JSON") from None


def csv_cell(cell: str) -> Any:
    """A cell that parses as JSON is that value; any other cell is its text (the
    rule of ``umlaut run-batch``)."""
    try:
        return json.loads(cell, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return cell


def parse_csv(body: bytes) -> list[dict[str, Any]]:
    """A header row, then one input row per line, as a list of dicts."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise malformed(f"the body is not valid UTF-8 (byte {exc.start})") from None
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if header is None:
            raise malformed("the CSV body is empty: send a header row, then one row per input")
        rows = []
        for number, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise malformed(f"CSV line {number} has {len(row)} cells for {len(header)} columns")
            rows.append({k: csv_cell(v) for k, v in zip(header, row, strict=True)})
    except csv.Error as exc:
        raise malformed(f"the body is not valid CSV: {exc}") from None
    return rows
