"""A model's drift report, with a chart per feature.

A report reads every audit record of its window: seconds on a store of a million
records, so no page waits for one. Reports are kept per model, selector and window
in the UI's stale-while-revalidate cache (:mod:`.cache`), and the page shows what
the cache holds:

* a report (fresh, or older than ``report_ttl`` while one refresh runs), with the
  time it was computed;
* nothing yet: a "computing" state that reloads itself every
  :data:`REFRESH_SECONDS` (``<meta http-equiv="refresh">``: no script) until the
  report is there;
* a failed computation: its error, on the page instead of the report (or beside
  the last good report); the next request tries again.

The default window, the last 24 hours, is one key however the minutes pass: a
refresh computes the 24 hours before it runs. ``umlaut ui`` and ``serve --ui`` warm
the default window of each model on the models page's first page at startup
(:func:`warm_jobs`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from umlaut_core.clock import utcnow
from umlaut_core.datasets.drift_report import DriftReport, FeatureDrift, Thresholds
from umlaut_core.exceptions import BackendNotFoundError

from .app import Page, PageRequest
from .audit_filters import parse_time
from .errors import UiError, from_exception
from .model_pages import current_stages
from .svg import Bar, drift_bars

if TYPE_CHECKING:
    from umlaut_core import ModelVersion, Umlaut

__all__ = ["REFRESH_SECONDS", "Window", "drift", "warm_jobs"]

#: How often the "computing" state reloads itself.
REFRESH_SECONDS = 2
DEFAULT_SPAN = dt.timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Window:
    """Which report: a model, a stage or a version (the version wins), and a time
    window; ``since`` None means the last 24 hours up to when it is computed."""

    model: str
    stage: str | None
    version: int | None
    since: dt.datetime | None
    until: dt.datetime | None

    def compute(self, um: Umlaut) -> DriftReport:
        since = self.since if self.since is not None else _minute(utcnow()) - DEFAULT_SPAN
        return um.drift_report(
            self.model, stage=self.stage, version=self.version, since=since, until=self.until
        )


def _minute(moment: dt.datetime) -> dt.datetime:
    return moment.replace(second=0, microsecond=0)


def _field(moment: dt.datetime) -> str:
    """As ``<input type="datetime-local">`` shows it, in UTC."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M")


def _window(
    query: Mapping[str, str], name: str, versions: list[ModelVersion], aliases: dict[str, int]
) -> Window:
    """The window a query string asks for; without one, Production (else the latest
    version) over the last 24 hours."""
    stage = query.get("stage", "").strip() or None
    text = query.get("version", "").strip()
    if text and (not text.isdigit() or int(text) < 1):
        raise UiError(400, "Bad request", "version must be a whole number from 1")
    version = int(text) if text else None
    if version is None and stage is None:
        if "Production" in aliases:
            stage = "Production"
        else:
            version = versions[-1].version
    since_text = query.get("since", "").strip()
    until_text = query.get("until", "").strip()
    since = parse_time(since_text, "since") if since_text else None
    until = parse_time(until_text, "until") if until_text else None
    return Window(name, stage if version is None else None, version, since, until)


def warm_jobs(um: Umlaut, limit: int) -> Iterator[tuple[Window, Callable[[], DriftReport]]]:
    """The default window of each of the first ``limit`` models, to compute ahead of
    the first page (read lazily: the cache's background thread lists them)."""
    for info in um.list_models()[:limit]:
        versions = um.list_versions(info.name)
        aliases = current_stages(um.stage_history(versions[0].name))
        window = _window({}, versions[0].name, versions, aliases)
        yield window, partial(window.compute, um)


def drift(page: PageRequest) -> Page:
    name = page.path("name")
    versions = page.um.list_versions(name)
    name = versions[0].name
    aliases = current_stages(page.um.stage_history(name))
    window = _window(page.query, name, versions, aliases)
    # A selector naming nothing is a 404 now, not after the "computing" state.
    mv = page.um.get_version(name, version=window.version, stage=window.stage)
    cached = page.ui.reports.get(window, partial(window.compute, page.um))
    report: DriftReport | None = cached.value
    failure = None
    if cached.error is not None and not cached.computing:
        if report is None and isinstance(cached.error, BackendNotFoundError):
            return page.ui.missing("datasets", str(cached.error))
        failure = from_exception(cached.error, f"{page.request.method} {page.request.url.path}")
    since = window.since or _minute(page.now) - DEFAULT_SPAN
    context: dict[str, Any] = {
        "name": name,
        "report": report,
        "computed_at": cached.computed_at,
        "refreshing": report is not None and cached.computing,
        "computing": report is None and cached.computing,
        "refresh_seconds": REFRESH_SECONDS,
        "failure": failure,
        "shown_version": report.version if report is not None else mv.version,
        "stage": window.stage or "",
        "version": "" if window.version is None else str(window.version),
        "stage_choices": sorted(aliases),
        "since": _field(since),
        "until": _field(window.until) if window.until else "",
    }
    if report is not None:
        context["features"] = _charts(report.features, report.thresholds, "drift-feature")
        context["predictions"] = _charts(report.predictions, report.thresholds, "drift-prediction")
    status = failure.status if failure is not None and report is None else 200
    title = f"Drift: {name} v{context['shown_version']}"
    return Page("drift.html", context, title=title, nav="models", status=status)


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
