"""The registry's pages: the models, one model (versions, the stage ledger, "what was
Production on this date"), one version (manifest, signature, environment, lineage)
and promoting a version from its page."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from starlette.responses import RedirectResponse, Response

from umlaut_core import ModelInfo, ModelVersion, StageChange
from umlaut_core.exceptions import (
    BackendNotFoundError,
    InvalidNameError,
    NotFoundError,
)

from .app import Page, PageRequest
from .errors import UiError
from .ledger import lanes, ordered_stages, stage_on, stages_of
from .svg import hourly_bars, stage_lanes
from .templating import pretty_json
from .traffic import DayTraffic

__all__ = ["model", "models", "promote", "version"]

log = logging.getLogger("umlaut.ui")

TRAINING_RUN_TAG = "umlaut.training_run_id"
_STAGES = ("Production", "Staging", "Archived")


@dataclass(frozen=True, slots=True)
class ModelRow:
    info: ModelInfo
    stages: list[tuple[str, int]]
    traffic: DayTraffic
    trend: Any


def _page_number(text: str | None) -> int:
    if not text:
        return 1
    if not text.isdigit() or int(text) < 1:
        raise UiError(400, "Bad request", "page must be a whole number from 1")
    return int(text)


def models(page: PageRequest) -> Page:
    infos = page.um.list_models()
    wanted = page.query.get("q", "").strip()
    if wanted:
        infos = [m for m in infos if wanted.casefold() in m.name.casefold()]
    number = _page_number(page.query.get("page"))
    size = page.settings.page_size
    shown = infos[(number - 1) * size : number * size]
    rows = []
    for i, info in enumerate(shown):
        day = page.ui.traffic.day(info.name, page.now)
        trend = hourly_bars(
            day.calls, day.errors, chart_id=f"trend-{i}", title=f"Calls per hour: {info.name}"
        )
        stages = [(s, info.aliases[s]) for s in ordered_stages(info.aliases)]
        rows.append(ModelRow(info, stages, day, trend))
    context = {
        "rows": rows,
        "q": wanted,
        "page_number": number,
        "more": len(infos) > number * size,
        "count": len(infos),
    }
    return Page("models.html", context, title="Models", nav="models")


def current_stages(changes: list[StageChange]) -> dict[str, int]:
    """Where each stage points now: the last move of each in the ledger."""
    aliases: dict[str, int] = {}
    for change in sorted(changes, key=lambda c: c.changed_at):
        aliases[change.stage] = change.to_version
    return aliases


def _dataset_links(page: PageRequest, name: str, version: int | None) -> list[Any] | None:
    """The datasets a model (version) used; None on a backend that keeps no datasets."""
    try:
        return page.um.dataset_links(model=(name, version))
    except BackendNotFoundError:
        return None


def model(page: PageRequest) -> Page:
    name = page.path("name")
    versions = page.um.list_versions(name)
    name = versions[0].name  # as stored (NFC)
    changes = page.um.stage_history(name)
    aliases = current_stages(changes)
    links = _dataset_links(page, name, None)
    by_version: dict[int, list[Any]] = {}
    for link in links or ():
        if link.model_version is not None:
            by_version.setdefault(link.model_version, []).append(link)
    stage = page.query.get("stage", "").strip() or "Production"
    answer = None
    day_text = page.query.get("on", "").strip()
    if day_text:
        try:
            day = dt.date.fromisoformat(day_text)
        except ValueError:
            raise UiError(400, "Bad date", "on must be a date like 2026-03-01") from None
        answer = stage_on(changes, stage, day)
    number = _page_number(page.query.get("page"))
    size = page.settings.page_size
    newest_first = versions[::-1]
    shown = newest_first[(number - 1) * size : number * size]
    timeline = lanes(changes, page.now)
    chart = (
        stage_lanes(timeline, now=page.now, chart_id="stage-lanes", title=f"Stages of {name}")
        if timeline
        else None
    )
    context = {
        "name": name,
        "versions": shown,
        "count": len(versions),
        "page_number": number,
        "more": len(versions) > number * size,
        "aliases": aliases,
        "stage_rows": [(s, aliases[s]) for s in ordered_stages(aliases)],
        "stages_of": stages_of,
        "ledger": sorted(changes, key=lambda c: c.changed_at, reverse=True),
        "lanes_chart": chart,
        "datasets": by_version,
        "keeps_datasets": links is not None,
        "run_tag": TRAINING_RUN_TAG,
        "stage": stage,
        "stage_choices": ordered_stages([*_STAGES, *aliases]),
        "day": day_text,
        "answer": answer,
    }
    return Page("model.html", context, title=name, nav="models")


def _lineage_run(page: PageRequest, run_id: str | None) -> tuple[Any, str | None]:
    """The training run a version names, or why it cannot be shown."""
    if run_id is None:
        return None, None
    try:
        return page.um.get_training_run(run_id), None
    except BackendNotFoundError:
        return None, "this backend keeps no training runs"
    except NotFoundError:
        return None, "the training run is not in the store"


def version_context(page: PageRequest, mv: ModelVersion) -> dict[str, Any]:
    changes = page.um.stage_history(mv.name)
    aliases = current_stages(changes)
    run_id = mv.tags.get(TRAINING_RUN_TAG)
    run, run_note = _lineage_run(page, run_id)
    manifest = dict(mv.manifest)
    signature = manifest.get("signature")
    manifest_text, manifest_cut = pretty_json(manifest)
    inputs = None
    if isinstance(signature, dict):  # a table signature lists columns; older ones, inputs
        inputs = signature.get("columns", signature.get("inputs"))
    columns: list[str] = []
    if isinstance(inputs, list) and all(isinstance(i, dict) for i in inputs):
        for item in inputs:
            columns += [k for k in item if k not in columns]
    else:
        inputs = None
    packages = manifest.get("packages")
    return {
        "mv": mv,
        "stages": stages_of(aliases, mv.version),
        "aliases": aliases,
        "stage_choices": ordered_stages([*_STAGES, *aliases]),
        "run_id": run_id,
        "run": run,
        "run_note": run_note,
        "datasets": _dataset_links(page, mv.name, mv.version),
        "signature": signature,
        "signature_text": pretty_json(signature)[0] if signature is not None else None,
        "signature_inputs": inputs,
        "signature_columns": columns,
        "signature_source": signature.get("source") if isinstance(signature, dict) else None,
        "environment": [
            (key, manifest[key])
            for key in ("python", "cloudpickle", "flavor", "entry", "object")
            if key in manifest
        ],
        "packages": sorted(packages.items()) if isinstance(packages, dict) else [],
        "manifest_text": manifest_text,
        "manifest_cut": manifest_cut,
        "user_tags": sorted((k, v) for k, v in mv.tags.items() if not k.startswith("umlaut.")),
        "history": [
            c for c in changes if c.to_version == mv.version or c.from_version == mv.version
        ],
        "promoted": page.query.get("promoted"),
        "form_error": None,
        "form_stage": "",
        "form_reason": "",
    }


def version(page: PageRequest) -> Page:
    mv = page.um.get_version(page.path("name"), version=page.path("version"))
    context = version_context(page, mv)
    return Page("version.html", context, title=f"{mv.name} v{mv.version}", nav="models")


def promote(page: PageRequest) -> Page | Response:
    """Point a stage at this version with a reason: ``Umlaut.promote``, so the move
    reaches the ledger like any other. Admin scope and CSRF are checked before."""
    mv = page.um.get_version(page.path("name"), version=page.path("version"))
    stage = page.form.get("stage", "").strip()
    reason = page.form.get("reason", "").strip()
    problem = None
    if not stage:
        problem = "Choose a stage."
    elif not reason:
        problem = "Give a reason: it is written to the ledger with the move."
    if problem is None:
        try:
            change = page.um.promote(mv.name, mv.version, stage, reason=reason)
        except InvalidNameError as exc:
            problem = str(exc)
        else:
            client = page.request.client.host if page.request.client else "?"
            log.info(
                "promoted %r v%d to %s from the web UI (%s); was v%s",
                mv.name, mv.version, change.stage, client, change.from_version,
            )  # fmt: skip
            target = page.links.version(mv.name, mv.version, promoted=change.stage)
            return RedirectResponse(target, status_code=303)
    context = version_context(page, mv)
    context.update(form_error=problem, form_stage=stage, form_reason=reason)
    return Page("version.html", context, title=f"{mv.name} v{mv.version}", nav="models", status=400)
