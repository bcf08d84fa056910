"""Training runs: a searchable table with params and metrics as columns, one run with
its metric charts, and several runs side by side.

The table is one ``search_training_runs`` page (keyset, ``page_token``); its columns
are the params and metrics the page's runs have, most common first, at most
:data:`MAX_COLUMNS` each. A chart reads one ``metric_history`` per metric.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from umlaut_core.exceptions import ConfigurationError, NotFoundError
from umlaut_core.experiments.records import TrainingRun

from .app import Page, PageRequest
from .errors import UiError
from .svg import Series, metric_chart

__all__ = ["compare", "run", "runs"]

MAX_COLUMNS = 8
MAX_CHARTS = 12
MAX_COMPARED = 8


def _common_keys(maps: Iterable[Iterable[str]], limit: int) -> list[str]:
    counts = Counter(key for keys in maps for key in keys)
    return sorted(sorted(counts), key=lambda k: -counts[k])[:limit]


def runs(page: PageRequest) -> Page:
    experiments = page.um.list_experiments()
    experiment = page.query.get("experiment", "").strip() or None
    where = page.query.get("filter", "").strip() or None
    order_by = page.query.get("order_by", "").strip() or None
    token = page.query.get("page_token", "").strip() or None
    problem = None
    try:
        found = page.um.search_training_runs(
            experiment, filter=where, order_by=order_by, limit=page.settings.page_size,
            page_token=token,
        )  # fmt: skip
        shown, next_token = found.runs, found.next_page_token
    except ConfigurationError as exc:
        problem, shown, next_token = str(exc), [], None
    params = {"experiment": experiment, "filter": where, "order_by": order_by}
    context = {
        "experiments": experiments,
        "experiment": experiment or "",
        "where": where or "",
        "order_by": order_by or "",
        "runs": shown,
        "param_keys": _common_keys((r.params for r in shown), MAX_COLUMNS),
        "metric_keys": _common_keys((r.metrics for r in shown), MAX_COLUMNS),
        "problem": problem,
        "next_url": page.links.training_runs(**params, page_token=next_token)
        if next_token
        else None,
        "first_url": page.links.training_runs(**params) if token else None,
    }
    status = 400 if problem else 200
    return Page("training_runs.html", context, title="Training runs", nav="training-runs",
                status=status)  # fmt: skip


def _series(page: PageRequest, run_id: str, key: str) -> list[tuple[int, float]]:
    return [(p.step, p.value) for p in page.um.metric_history(run_id, key)]


def _children(page: PageRequest, parent: TrainingRun) -> list[TrainingRun]:
    """Child runs, when the id can be quoted in the filter language as it is."""
    if not parent.run_id.replace("-", "").replace("_", "").isalnum():
        return []
    found = page.um.search_training_runs(
        parent.experiment, filter=f"parent_id = '{parent.run_id}'", limit=50
    )
    return found.runs


@dataclass(frozen=True, slots=True)
class Chart:
    key: str
    svg: Any
    names: list[str]


def run(page: PageRequest) -> Page:
    found = page.um.get_training_run(page.path("run_id"))
    charts = []
    for i, key in enumerate(sorted(found.metrics)[:MAX_CHARTS]):
        series = [Series(key, _series(page, found.run_id, key))]
        svg = metric_chart(series, chart_id=f"metric-{i}", title=f"{key} over steps")
        charts.append(Chart(key, svg, [key]))
    try:
        links = page.um.dataset_links(run_id=found.run_id)
    except Exception:  # a backend without datasets; the run page stands without them
        links = None
    context = {
        "run": found,
        "params": sorted(found.params.items()),
        "metrics": sorted(found.metrics.values(), key=lambda m: m.key),
        "tags": sorted(found.tags.items()),
        "environment": sorted((k, v) for k, v in found.environment.items() if k != "packages"),
        "packages": sorted((found.environment.get("packages") or {}).items()),
        "charts": charts,
        "children": _children(page, found),
        "datasets": links,
        "more_charts": len(found.metrics) > MAX_CHARTS,
    }
    title = f"Training run {found.name or found.run_id}"
    return Page("training_run.html", context, title=title, nav="training-runs")


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the comparison: a key and each run's value (None: absent)."""

    key: str
    values: list[Any]

    @property
    def differs(self) -> bool:
        return len({repr(v) for v in self.values}) > 1


def _rows(keys: Sequence[str], runs: Sequence[TrainingRun], kind: str) -> list[Row]:
    out = []
    for key in keys:
        if kind == "param":
            values = [r.params.get(key) for r in runs]
        else:
            values = [r.metrics[key].last if key in r.metrics else None for r in runs]
        out.append(Row(key, values))
    return out


def compare(page: PageRequest) -> Page:
    ids = list(dict.fromkeys(i.strip() for i in page.query_list("run") if i.strip()))
    if len(ids) < 2:
        raise UiError(400, "Pick runs to compare", "Select at least two training runs.")
    if len(ids) > MAX_COMPARED:
        raise UiError(400, "Too many runs", f"Compare at most {MAX_COMPARED} runs at once.")
    chosen = []
    for run_id in ids:
        try:
            chosen.append(page.um.get_training_run(run_id))
        except NotFoundError:
            raise UiError(404, "Not found", f"There is no training run {run_id}.") from None
    param_keys = sorted({k for r in chosen for k in r.params})
    metric_keys = sorted({k for r in chosen for k in r.metrics})
    names = [r.name or r.run_id for r in chosen]
    charts = []
    for i, key in enumerate(metric_keys[:MAX_CHARTS]):
        series = [
            Series(name, _series(page, r.run_id, key) if key in r.metrics else [])
            for name, r in zip(names, chosen, strict=True)
        ]
        svg = metric_chart(series, chart_id=f"compare-{i}", title=f"{key} over steps")
        charts.append(Chart(key, svg, names))
    context = {
        "runs": chosen,
        "names": names,
        "param_rows": _rows(param_keys, chosen, "param"),
        "metric_rows": _rows(metric_keys, chosen, "metric"),
        "charts": charts,
    }
    return Page("compare.html", context, title="Compare training runs", nav="training-runs")
