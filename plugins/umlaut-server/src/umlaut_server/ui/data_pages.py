"""Datasets (their profile and the models trained on them) and a model's drift report
with a chart per feature.

A drift report reads every audit record of its window, so the page asks for the last
24 hours unless told otherwise (a wider window costs in proportion), and a report is
reused for ``report_ttl`` seconds (60) for the same model, selector and window.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from umlaut_core.datasets.drift_report import FeatureDrift, Thresholds

from .app import Page, PageRequest
from .audit_filters import parse_time
from .errors import UiError
from .model_pages import current_stages
from .svg import Bar, drift_bars

__all__ = ["dataset", "datasets", "drift"]

#: Versions listed on a dataset's page (newest first).
MAX_VERSIONS = 50


def datasets(page: PageRequest) -> Page:
    found = page.um.list_datasets()
    return Page("datasets.html", {"datasets": found}, title="Datasets", nav="datasets")


def dataset(page: PageRequest) -> Page:
    name = page.path("name")
    text = page.query.get("version", "").strip()
    if text and (not text.isdigit() or int(text) < 1):
        raise UiError(400, "Bad request", "version must be a whole number from 1")
    dv = page.um.get_dataset(name, int(text) if text else None)
    versions = page.um.list_dataset_versions(dv.name)[::-1][:MAX_VERSIONS]
    links = page.um.dataset_links(dataset=(dv.name, dv.version))
    context = {
        "dv": dv,
        "versions": versions,
        "models": [link for link in links if link.kind == "model_version"],
        "training_runs": [link for link in links if link.kind == "training_run"],
        "tags": sorted(dv.tags.items()),
    }
    return Page("dataset.html", context, title=f"{dv.name} v{dv.version}", nav="datasets")


@dataclass(frozen=True, slots=True)
class FeatureChart:
    feature: FeatureDrift
    svg: Any


def _bars(item: FeatureDrift, t: Thresholds) -> list[Bar]:
    measures = (
        ("PSI", item.psi, t.psi),
        ("KS", item.ks, t.ks),
        ("Wasserstein (σ)", item.wasserstein_norm, t.wasserstein),
        ("Unseen share", item.unseen_share, t.unseen),
        (
            "Null rate change",
            None if item.null_rate_change is None else abs(item.null_rate_change),
            t.null_rate,
        ),
    )
    return [
        Bar(label, value, warn, alert)
        for label, value, (warn, alert) in measures
        if value is not None
    ]


def _charts(items: tuple[FeatureDrift, ...], t: Thresholds, prefix: str) -> list[FeatureChart]:
    out = []
    for i, item in enumerate(items):
        bars = _bars(item, t)
        svg = (
            drift_bars(bars, chart_id=f"{prefix}-{i}", title=f"Drift of {item.name}")
            if bars
            else None
        )
        out.append(FeatureChart(item, svg))
    return out


def drift(page: PageRequest) -> Page:
    name = page.path("name")
    versions = page.um.list_versions(name)
    name = versions[0].name
    aliases = current_stages(page.um.stage_history(name))
    stage = page.query.get("stage", "").strip() or None
    text = page.query.get("version", "").strip()
    if text and (not text.isdigit() or int(text) < 1):
        raise UiError(400, "Bad request", "version must be a whole number from 1")
    version = int(text) if text else None
    if version is None and stage is None:
        if "Production" in aliases:
            stage = "Production"
        else:
            version = versions[-1].version
    since_text = page.query.get("since", "").strip()
    until_text = page.query.get("until", "").strip()
    minute = page.now.replace(second=0, microsecond=0)
    since = parse_time(since_text, "since") if since_text else minute - dt.timedelta(hours=24)
    until = parse_time(until_text, "until") if until_text else None
    stage = stage if version is None else None
    report = page.ui.reports.get(
        (name, stage, version, since, until),
        lambda: page.um.drift_report(name, stage=stage, version=version, since=since, until=until),
    )
    t = report.thresholds
    context = {
        "name": name,
        "report": report,
        "features": _charts(report.features, t, "drift-feature"),
        "predictions": _charts(report.predictions, t, "drift-prediction"),
        "stage": stage or "",
        "version": "" if version is None else str(version),
        "stage_choices": sorted(aliases),
        "since": since.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M"),
        "until": until.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M") if until else "",
    }
    return Page("drift.html", context, title=f"Drift: {name} v{report.version}", nav="models")
