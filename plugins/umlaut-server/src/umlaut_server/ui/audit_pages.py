"""The audit trail: filtered keyset pages, one call on its own page, and the filter
exported as CSV or JSON lines.

Pages are ``Umlaut.history`` keyset pages of ``page_size`` records (one more is
fetched to know whether an older page exists); the "Older" link carries the last
record's id as ``before=``, so a page deep in millions of records costs what the
first does, and no query uses OFFSET. An export fetches its first page before
answering (so a bad filter is an error page, not a broken file), then streams the
rest a page at a time: memory holds one page, whatever the total.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

from starlette.responses import Response, StreamingResponse

from umlaut_core import AuditRecord, Umlaut
from umlaut_core.exceptions import BackendNotFoundError, NotFoundError
from umlaut_core.ids import is_id

from .app import Page, PageRequest
from .audit_filters import AuditFilter
from .errors import UiError
from .model_pages import TRAINING_RUN_TAG
from .templating import pretty_json

__all__ = ["export_csv", "export_jsonl", "record", "record_json", "records"]

log = logging.getLogger("umlaut.ui")

CSV_COLUMNS = (
    "id", "started_at", "model_name", "version", "selector", "status", "duration_ms",
    "reference_id", "error_type", "error_message", "inputs", "output", "tags",
)  # fmt: skip


def records(page: PageRequest) -> Page:
    found = AuditFilter.from_query(page.query)
    kwargs = found.history_kwargs(page.um)
    size = page.settings.page_size
    got = page.um.history(**kwargs, limit=size + 1, before=found.before)
    shown, older = got[:size], len(got) > size
    params = found.params()
    context = {
        "filter": found,
        "records": shown,
        "resolved_version": kwargs["version"] if found.stage else None,
        "older_url": page.links.records(**found.params(before=shown[-1].id)) if older else None,
        "newest_url": page.links.records(**params) if found.before else None,
        "csv_url": page.links.export("csv", params),
        "jsonl_url": page.links.export("jsonl", params),
        "model_names": [m.name for m in page.um.list_models()[:1000]],
    }
    return Page("records.html", context, title="Audit trail", nav="records")


def find_record(umlaut: Umlaut, record_id: str) -> AuditRecord:
    """One record by id: a keyset page of one ending just above it (ids have one
    length and sort by time, so ``<id>0`` is the next possible id)."""
    if not is_id(record_id):
        raise UiError(404, "Not found", "That is not an audit record id.")
    hits = umlaut.history(before=record_id + "0", limit=1, include_pending=False)
    if not hits or hits[0].id != record_id:
        raise UiError(404, "Not found", f"There is no audit record {record_id}.")
    return hits[0]


def _lineage(page: PageRequest, rec: AuditRecord) -> dict[str, Any]:
    """Version, training run and datasets behind a record; each part may be missing
    (a backend without the concern, a run deleted) without failing the page."""
    out: dict[str, Any] = {"version": None, "run_id": None, "run": None, "datasets": None}
    try:
        mv = page.um.get_version(rec.model_name, version=rec.version)
    except NotFoundError:
        return out
    out["version"] = mv
    run_id = mv.tags.get(TRAINING_RUN_TAG)
    out["run_id"] = run_id
    if run_id:
        with contextlib.suppress(BackendNotFoundError, NotFoundError):
            out["run"] = page.um.get_training_run(run_id)
    try:
        links = page.um.dataset_links(model=(mv.name, mv.version))
        if run_id:
            links += page.um.dataset_links(run_id=run_id)
        out["datasets"] = links
    except BackendNotFoundError:
        pass
    return out


def _decoded(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def record(page: PageRequest) -> Page:
    rec = find_record(page.um, page.path("record_id"))
    inputs_text, inputs_cut = pretty_json(_decoded(rec.inputs_json))
    output_text, output_cut = (
        pretty_json(_decoded(rec.output_json)) if rec.output_json is not None else (None, False)
    )
    context = {
        "rec": rec,
        "inputs_text": inputs_text,
        "inputs_cut": inputs_cut,
        "output_text": output_text,
        "output_cut": output_cut,
        "tags": sorted(rec.tags.items()),
        "lineage": _lineage(page, rec),
    }
    return Page("record.html", context, title=f"Audit record {rec.id}", nav="records")


def _as_dict(rec: AuditRecord) -> dict[str, Any]:
    return {
        "id": rec.id,
        "model_name": rec.model_name,
        "version": rec.version,
        "selector": rec.selector,
        "status": rec.status,
        "started_at": rec.started_at.isoformat(),
        "duration_ms": rec.duration_ms,
        "reference_id": rec.reference_id,
        "error_type": rec.error_type,
        "error_message": rec.error_message,
        "tags": dict(rec.tags),
    }


def _json_line(rec: AuditRecord) -> str:
    """One record as a JSON object with ``inputs``/``output`` spliced in as stored
    (already JSON text: no decode and re-encode per record)."""
    head = json.dumps(_as_dict(rec), ensure_ascii=False)[:-1]
    inputs, output = rec.inputs_json, rec.output_json or "null"
    if "\n" in inputs or "\n" in output:  # a line break would end the JSON line
        inputs = json.dumps(json.loads(inputs), ensure_ascii=False)
        output = json.dumps(json.loads(output), ensure_ascii=False)
    return f'{head}, "inputs": {inputs}, "output": {output}}}\n'


def record_json(page: PageRequest) -> Response:
    rec = find_record(page.um, page.path("record_id"))
    return Response(_json_line(rec), media_type="application/json")


def _csv_rows(records: list[AuditRecord]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for rec in records:
        writer.writerow(
            (
                rec.id, rec.started_at.isoformat(), rec.model_name, rec.version, rec.selector,
                rec.status, rec.duration_ms, rec.reference_id or "", rec.error_type or "",
                rec.error_message or "", rec.inputs_json, rec.output_json or "",
                json.dumps(dict(rec.tags), ensure_ascii=False),
            )
        )  # fmt: skip
    return buffer.getvalue()


def _pages(
    umlaut: Umlaut, kwargs: dict[str, Any], size: int, first: list[AuditRecord]
) -> Iterator[list[AuditRecord]]:
    page = first
    while True:
        yield page
        if len(page) < size:
            return
        page = umlaut.history(**kwargs, limit=size, before=page[-1].id)


def _export(page: PageRequest, fmt: str) -> Response:
    found = AuditFilter.from_query(page.query)
    kwargs = found.history_kwargs(page.um)
    size = page.settings.export_page
    first = page.um.history(**kwargs, limit=size, before=found.before)
    pages = _pages(page.um, kwargs, size, first)

    def body() -> Iterator[str]:
        if fmt == "csv":
            yield ",".join(CSV_COLUMNS) + "\r\n"
        try:
            for chunk in pages:
                if fmt == "csv":
                    yield _csv_rows(chunk)
                else:
                    yield "".join(map(_json_line, chunk))
        except Exception:
            # The status line is sent: all that is left is to end the file short.
            log.exception("an export of the audit trail stopped early")

    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
    return StreamingResponse(
        body(),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="audit-records.{fmt}"'},
    )


def export_csv(page: PageRequest) -> Response:
    return _export(page, "csv")


def export_jsonl(page: PageRequest) -> Response:
    return _export(page, "jsonl")
